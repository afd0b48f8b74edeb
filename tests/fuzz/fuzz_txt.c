/* fuzz_txt.c - the _mta-sts TXT record parser and selector. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * RFC 8461 section 3.1's ABNF, as sts_txt_parse() read it before the
 * leniences (855aca8^; txt_field_next() is still that grammar): a record
 * it takes must be taken with the same id and no lenient bit, so no
 * domain's id (and so no cached policy) changes under the new parser.
 */
static int
strict_txt(const char *txt, size_t len, char id[STS_ID_MAX + 1])
{
	size_t i = 7, ns, ne, vs, ve, k;
	int have = 0, nf = 0, rc;
	char err[128];

	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0)
		return 0;
	if (len > 7 && txt[7] != ';' && txt[7] != ' ' && txt[7] != '\t')
		return 0;
	while ((rc = txt_field_next(txt, len, &i, &ns, &ne, err,
	    sizeof(err))) == 1) {
		if (txt_field_value(txt, len, &i, &vs, &ve, err,
		    sizeof(err)) == -1)
			return -1;
		nf++;
		if (ne - ns != 2 || memcmp(txt + ns, "id", 2) != 0)
			continue;
		if (have++ || ve - vs > STS_ID_MAX)
			return -1;
		for (k = vs; k < ve; k++)
			if (!((txt[k] >= 'a' && txt[k] <= 'z') ||
			    (txt[k] >= 'A' && txt[k] <= 'Z') ||
			    (txt[k] >= '0' && txt[k] <= '9')))
				return -1;
		memcpy(id, txt + vs, ve - vs);
		id[ve - vs] = '\0';
	}
	return rc == -1 || nf == 0 || !have ? -1 : 1;
}

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
	/* what the ABNF takes is read as the ABNF reads it */
	{
		char sid[STS_ID_MAX + 1];
		int sr = strict_txt((const char *)data, size, sid);

		if (sr == 1 && (r != 1 || fix != 0 || strcmp(sid, id) != 0))
			__builtin_trap();
		if (sr == 0 && r != 0)
			__builtin_trap();
	}
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
