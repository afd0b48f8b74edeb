/* fuzz_sts_policy.c - the MTA-STS policy parser and the MX matcher. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * RFC 8461 section 3.2's ABNF, as sts.c read it before the leniences of
 * docs/policy.md's table (6d99b82^): a file it takes must be taken by
 * sts_policy_parse() and read as the same policy, with no lenient bit.
 * Bodies cached before the leniences (LMDB, Redis peers of an older
 * version) were checked this way, and must still load as they were.
 */
static int
strict_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int
strict_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
strict_mx(const char *v, size_t len, char *out, size_t outsz)
{
	size_t i;

	if (len == 0 || len >= outsz)
		return -1;
	for (i = 0; i < len; i++)
		out[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
	out[len] = '\0';
	if (len > 2 && out[0] == '*' && out[1] == '.')
		return sts_valid_hostname(out + 2) ? 0 : -1;
	return sts_valid_hostname(out) ? 0 : -1;
}

static int
strict_parse(const char *body, size_t len, struct sts_policy *p)
{
	size_t i = 0;
	int have_ver = 0, have_mode = 0, have_age = 0, blank_seen = 0;

	memset(p, 0, sizeof(*p));
	while (i < len) {
		size_t ls = i, le, ks, ke, vs, ve, k;

		while (i < len && body[i] != '\n')
			i++;
		le = i;
		if (i < len)
			i++;
		if (le > ls && body[le - 1] == '\r')
			le--;
		if (le == ls) {
			blank_seen = 1;
			continue;
		}
		if (blank_seen || !strict_alnum((unsigned char)body[ls]))
			return -1;
		ks = ke = ls;
		while (ke < le && (strict_alnum((unsigned char)body[ke]) ||
		    body[ke] == '_' || body[ke] == '-' || body[ke] == '.'))
			ke++;
		if (ke - ks > 32 || ke == le || body[ke] != ':')
			return -1;
		vs = ke + 1;
		while (vs < le && strict_wsp((unsigned char)body[vs]))
			vs++;
		ve = le;
		while (ve > vs && strict_wsp((unsigned char)body[ve - 1]))
			ve--;
		for (k = vs; k < ve; k++) {
			unsigned char c = (unsigned char)body[k];

			if ((c < 0x21 || c == 0x7f) && c != ' ' && c != '\t')
				return -1;
		}
		if (ve == vs)
			return -1;
#define KEY(s) (ke - ks == sizeof(s) - 1 && memcmp(body + ks, s, ke - ks) == 0)
#define VAL(s) (ve - vs == sizeof(s) - 1 && memcmp(body + vs, s, ve - vs) == 0)
		if (KEY("version")) {
			if (have_ver++ || !VAL("STSv1"))
				return -1;
		} else if (KEY("mode")) {
			if (have_mode++)
				return -1;
			if (VAL("enforce"))
				p->mode = STS_MODE_ENFORCE;
			else if (VAL("testing"))
				p->mode = STS_MODE_TESTING;
			else if (VAL("none"))
				p->mode = STS_MODE_NONE;
			else
				return -1;
		} else if (KEY("max_age")) {
			unsigned long long v = 0;

			if (have_age++ || ve - vs > 10)
				return -1;
			for (k = vs; k < ve; k++) {
				if (body[k] < '0' || body[k] > '9')
					return -1;
				v = v * 10 + (unsigned)(body[k] - '0');
			}
			if (v > STS_MAX_AGE)
				return -1;
			p->max_age = (uint32_t)v;
		} else if (KEY("mx")) {
			if (p->nmx >= STS_MAX_MX || strict_mx(body + vs,
			    ve - vs, p->mx[p->nmx], sizeof(p->mx[0])) == -1)
				return -1;
			p->nmx++;
		}
#undef KEY
#undef VAL
	}
	if (!have_ver || !have_mode || !have_age ||
	    (p->mode != STS_MODE_NONE && p->nmx == 0))
		return -1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sts_policy p;
	char err[128], host[256];
	size_t hl;
	int i;

	static struct sts_policy sp;
	int lenient_rc = sts_policy_parse((const char *)data, size, &p, err,
	    sizeof(err));

	/* what the ABNF takes is read as the ABNF reads it */
	if (strict_parse((const char *)data, size, &sp) == 0) {
		if (lenient_rc != 0 || p.lenient != 0 || p.mode != sp.mode ||
		    p.max_age != sp.max_age || p.nmx != sp.nmx)
			__builtin_trap();
		for (i = 0; i < p.nmx; i++)
			if (strcmp(p.mx[i], sp.mx[i]) != 0)
				__builtin_trap();
	}
	if (lenient_rc == 0) {
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
