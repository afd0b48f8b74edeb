/* fuzz_http.c - the HTTP response parser, whole and in two pieces. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_resp r;
	enum http_result a, b;
	size_t maxb = 1024;

	a = http_parse_response((const char *)data, size, 1, maxb, &r);
	if (a == HTTP_MORE)
		__builtin_trap();		/* eof: never "more" */
	if (a == HTTP_DONE) {
		if (r.bodylen > maxb || r.body[r.bodylen] != '\0')
			__builtin_trap();
		http_resp_clear(&r);
	}
	/* a prefix never gives a different final answer than DONE */
	b = http_parse_response((const char *)data, size / 2, 0, maxb, &r);
	if (b == HTTP_DONE)
		http_resp_clear(&r);
	return 0;
}
