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

	unsigned fix;

	r = sts_txt_parse((const char *)data, size, id, &fix, err,
	    sizeof(err));
	if (r == 1 && (strlen(id) == 0 || strlen(id) > STS_ID_MAX))
		__builtin_trap();
	/* however lenient, the id is letters, digits, '-', '_', '.' */
	for (i = 0; r == 1 && id[i] != '\0'; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') ||
		    (id[i] >= 'A' && id[i] <= 'Z') ||
		    (id[i] >= '0' && id[i] <= '9') || id[i] == '-' ||
		    id[i] == '_' || id[i] == '.'))
			__builtin_trap();
	if (r != 1 && fix != 0)
		__builtin_trap();
	/* split at 0xff into up to 4 records for the selector */
	for (i = 0; i <= size && n < 4; i++)
		if (i == size || data[i] == 0xff) {
			recs[n] = (const char *)data + start;
			lens[n++] = i - start;
			start = i + 1;
		}
	r = sts_txt_select(recs, lens, n, id, NULL, err, sizeof(err));
	if (r == 1 && strlen(id) == 0)
		__builtin_trap();
	return 0;
}
