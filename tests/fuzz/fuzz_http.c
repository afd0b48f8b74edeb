/* fuzz_http.c - the HTTP response parser, whole and in two pieces, and
 * the POST's status reader, which must agree with it on where the final
 * status line is. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_resp r;
	enum http_result a, b, s;
	size_t maxb = 1024;
	int code = 0;

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
	/* both step over the same interim responses: a status the parser
	 * accepted is the one the POST reads */
	s = http_status_line((const char *)data, size, &code);
	if (a == HTTP_DONE && (s != HTTP_DONE || code != 200))
		__builtin_trap();
	if (s == HTTP_DONE && (code < 100 || code > 599))
		__builtin_trap();
	return 0;
}
