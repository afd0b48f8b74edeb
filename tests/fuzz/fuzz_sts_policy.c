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
		/* the policy as formatted parses to itself, strictly */
		{
			static struct sts_policy q;
			char buf[STS_FORMAT_MAX];
			int n = sts_policy_format(&p, buf, sizeof(buf));

			if (n < 0 || sts_policy_parse(buf, (size_t)n, &q, err,
			    sizeof(err)) != 0 || q.lenient != 0 ||
			    q.mode != p.mode || q.max_age != p.max_age ||
			    q.nmx != p.nmx)
				__builtin_trap();
			for (i = 0; i < p.nmx; i++)
				if (strcmp(p.mx[i], q.mx[i]) != 0)
					__builtin_trap();
		}
		if (p.mode != STS_MODE_NONE && p.nmx == 0)
			__builtin_trap();
		for (i = 0; i < p.nmx; i++) {
			const char *m = p.mx[i];

			if (strchr(m + (m[0] == '*' ? 1 : 0), '*') != NULL)
				__builtin_trap();
			/* whatever the file's form (U-labels, a trailing
			 * dot, case): the form MX records give */
			if (!sts_valid_hostname(m + (m[0] == '*' ? 2 : 0)))
				__builtin_trap();
			for (const char *c = m; *c != '\0'; c++)
				if (*c >= 'A' && *c <= 'Z')
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
