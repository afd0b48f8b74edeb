/* fuzz_txt.c - the _mta-sts TXT record parser and selector. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[STS_ID_MAX + 1], err[128];
	const char *recs[4];
	size_t lens[4], i, start = 0;
	int n = 0, r;

	r = sts_txt_parse((const char *)data, size, id, err, sizeof(err));
	if (r == 1 && (strlen(id) == 0 || strlen(id) > STS_ID_MAX))
		__builtin_trap();
	/* split at 0xff into up to 4 records for the selector */
	for (i = 0; i <= size && n < 4; i++)
		if (i == size || data[i] == 0xff) {
			recs[n] = (const char *)data + start;
			lens[n++] = i - start;
			start = i + 1;
		}
	r = sts_txt_select(recs, lens, n, id, err, sizeof(err));
	if (r == 1 && strlen(id) == 0)
		__builtin_trap();
	return 0;
}
