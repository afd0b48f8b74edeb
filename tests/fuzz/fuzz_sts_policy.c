/* fuzz_sts_policy.c - the MTA-STS policy parser and the MX matcher. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sts_policy p;
	char err[128], host[256];
	size_t hl;
	int i;

	if (sts_policy_parse((const char *)data, size, &p, err,
	    sizeof(err)) == 0) {
		if (p.max_age > STS_MAX_AGE || p.nmx > STS_MAX_MX)
			__builtin_trap();
		if (p.mode != STS_MODE_NONE && p.nmx == 0)
			__builtin_trap();
		for (i = 0; i < p.nmx; i++) {
			const char *m = p.mx[i];

			if (strchr(m + (m[0] == '*' ? 1 : 0), '*') != NULL)
				__builtin_trap();
			/* a pattern matches itself (exact) or one label more */
			if (m[0] != '*' && !sts_mx_match(m, m))
				__builtin_trap();
		}
	}
	/* the matcher on arbitrary inputs: first line pattern, rest host */
	hl = size < sizeof(host) - 1 ? size : sizeof(host) - 1;
	memcpy(host, data, hl);
	host[hl] = '\0';
	(void)sts_mx_match("*.example.com", host);
	(void)sts_mx_match(host, "mail.example.com");
	(void)sts_domain_norm(host, host, sizeof(host), err, sizeof(err));
	return 0;
}
