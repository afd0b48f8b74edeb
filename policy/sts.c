/*
 * sts.c - MTA-STS parsers and matcher (see sts.h).
 *
 * The parsers follow the ABNF of RFC 8461 strictly: anything that does not
 * match is refused with a reason, never guessed at.  Inputs are bounded
 * byte ranges that may hold NULs.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "policy/sts.h"

#define ERR(...) do { snprintf(err, errsz, __VA_ARGS__); return -1; } while (0)

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

const char *
sts_mode_name(enum sts_mode m)
{
	switch (m) {
	case STS_MODE_ENFORCE:	return "enforce";
	case STS_MODE_TESTING:	return "testing";
	default:		return "none";
	}
}

int
sts_policy_format(const struct sts_policy *p, char *buf, size_t sz)
{
	size_t n;
	int i, w;

	w = snprintf(buf, sz, "version: STSv1\nmode: %s\n",
	    sts_mode_name(p->mode));
	if (w < 0 || (size_t)w >= sz)
		return -1;
	n = (size_t)w;
	for (i = 0; i < p->nmx; i++) {
		w = snprintf(buf + n, sz - n, "mx: %s\n", p->mx[i]);
		if (w < 0 || (size_t)w >= sz - n)
			return -1;
		n += (size_t)w;
	}
	w = snprintf(buf + n, sz - n, "max_age: %u\n", p->max_age);
	if (w < 0 || (size_t)w >= sz - n)
		return -1;
	return (int)(n + (size_t)w);
}

/*
 * The field grammar that RFC 8461's sts-field and RFC 8460's tlsrpt-field
 * share (see sts.h): the delimiter, then "name=".
 */
int
txt_field_next(const char *txt, size_t len, size_t *ip, size_t *ns,
    size_t *ne, char *err, size_t errsz)
{
	size_t i = *ip;

	while (i < len && is_wsp((unsigned char)txt[i]))
		i++;
	if (i == len)
		return 0;
	if (txt[i] != ';')
		ERR("expected ';' at offset %zu", i);
	i++;
	while (i < len && is_wsp((unsigned char)txt[i]))
		i++;
	if (i == len)
		return 0;		/* trailing delimiter */
	*ns = i;
	if (!is_alnum((unsigned char)txt[i]))
		ERR("bad field name at offset %zu", i);
	while (i < len && (is_alnum((unsigned char)txt[i]) ||
	    txt[i] == '_' || txt[i] == '-' || txt[i] == '.'))
		i++;
	*ne = i;
	if (*ne - *ns > 32)
		ERR("field name longer than 32 at offset %zu", *ns);
	if (i == len || txt[i] != '=')
		ERR("expected '=' after field name at offset %zu", i);
	*ip = i + 1;
	return 1;
}

int
txt_field_value(const char *txt, size_t len, size_t *ip, size_t *vs,
    size_t *ve, char *err, size_t errsz)
{
	size_t i = *ip;

	*vs = i;
	while (i < len && (unsigned char)txt[i] >= 0x21 &&
	    (unsigned char)txt[i] <= 0x7e && txt[i] != ';' && txt[i] != '=')
		i++;
	*ve = *ip = i;
	if (*ve == *vs)
		ERR("empty value at offset %zu", *vs);
	return 0;
}

/*
 * sts-text-record = sts-version 1*(sts-field-delim sts-field)
 *                   [sts-field-delim]
 * sts-version     = %s"v=STSv1"
 * sts-field-delim = *WSP ";" *WSP
 * sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
 * sts-extension   = sts-ext-name "=" sts-ext-value
 * sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 * sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
 */
int
sts_txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1],
    char *err, size_t errsz)
{
	size_t i = 7;
	int have_id = 0, nfields = 0;

	id[0] = '\0';
	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0)
		return 0;
	if (len > 7 && txt[7] != ';' && !is_wsp((unsigned char)txt[7]))
		return 0;		/* v=STSv10 ...: another version */
	for (;;) {
		size_t ns, ne, vs, ve;
		int rc;

		if ((rc = txt_field_next(txt, len, &i, &ns, &ne, err,
		    errsz)) == -1)
			return -1;
		if (rc == 0)
			break;
		if (txt_field_value(txt, len, &i, &vs, &ve, err, errsz) == -1)
			return -1;
		nfields++;
		if (ne - ns == 2 && memcmp(txt + ns, "id", 2) == 0) {
			size_t k;

			if (have_id)
				ERR("repeated id field");
			if (ve - vs > STS_ID_MAX)
				ERR("id longer than 32 characters");
			for (k = vs; k < ve; k++)
				if (!is_alnum((unsigned char)txt[k]))
					ERR("id holds a character other than "
					    "letters and digits");
			memcpy(id, txt + vs, ve - vs);
			id[ve - vs] = '\0';
			have_id = 1;
		}
	}
	if (nfields == 0 || !have_id) {
		id[0] = '\0';
		ERR("no id field");
	}
	return 1;
}

int
sts_txt_select(const char *const *txts, const size_t *lens, int n,
    char id[STS_ID_MAX + 1], char *err, size_t errsz)
{
	int i, found = 0, rc = 0;
	char tid[STS_ID_MAX + 1], terr[128];

	id[0] = '\0';
	for (i = 0; i < n; i++) {
		/* records not starting with "v=STSv1;" are discarded */
		int r = sts_txt_parse(txts[i], lens[i], tid, terr,
		    sizeof(terr));

		if (r == 0)
			continue;
		if (++found > 1) {
			id[0] = '\0';
			ERR("more than one v=STSv1 TXT record");
		}
		if (r == -1) {
			snprintf(err, errsz, "%s", terr);
			rc = -1;
		} else {
			memcpy(id, tid, sizeof(tid));
			rc = 1;
		}
	}
	if (rc == -1)
		id[0] = '\0';
	return rc;
}

int
sts_valid_hostname(const char *s)
{
	size_t n = strlen(s), lab = 0, i;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-')
			return 0;
		if (c == '-' && lab == 0)
			return 0;
		if (++lab > 63)
			return 0;
	}
	return lab > 0 && s[n - 1] != '-';
}

int
sts_dns_name_check(const char *name, char *err, size_t errsz)
{
	size_t n = strlen(name), i, lab = 0, nlab = 0;
	int service = 1;	/* still in the leading service labels */

	if (n == 0)
		ERR("empty name");
	if (n > 253)
		ERR("%zu octets, more than the 253 of a DNS name", n);
	for (i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.' || c == '\0') {
			if (lab == 0)
				ERR("empty label at octet %zu", i);
			if (name[i - 1] == '-')
				ERR("label %zu ends with a hyphen", nlab + 1);
			nlab++;
			lab = 0;
			continue;
		}
		if (++lab > 63)
			ERR("label %zu longer than 63 octets", nlab + 1);
		if (lab == 1) {
			if (c == '_' && service)
				continue;
			service = 0;
			if (c == '-')
				ERR("label %zu starts with a hyphen", nlab + 1);
		}
		if (!is_alnum(c) && c != '-')
			ERR("octet 0x%02x at %zu is not a letter, digit or "
			    "hyphen", c, i);
	}
	return 0;
}

/* Checks an mx value "[*.]Domain"; returns 0 and writes it lower case. */
static int
mx_value(const char *v, size_t len, char *out, size_t outsz)
{
	size_t i;

	if (len == 0 || len >= outsz)
		return -1;
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)v[i]);
	out[len] = '\0';
	if (len > 2 && out[0] == '*' && out[1] == '.')
		return sts_valid_hostname(out + 2) ? 0 : -1;
	return sts_valid_hostname(out) ? 0 : -1;
}

int
sts_policy_parse(const char *body, size_t len, struct sts_policy *p,
    char *err, size_t errsz)
{
	size_t i = 0;
	int line = 0, have_ver = 0, have_mode = 0, have_age = 0;
	int blank_seen = 0;

	memset(p, 0, sizeof(*p));
	while (i < len) {
		size_t ls = i, le, ks, ke, vs, ve;

		line++;
		while (i < len && body[i] != '\n')
			i++;
		le = i;
		if (i < len)
			i++;		/* the LF */
		if (le > ls && body[le - 1] == '\r')
			le--;
		if (le == ls) {		/* empty line: only at the end */
			blank_seen = 1;
			continue;
		}
		if (blank_seen)
			ERR("line %d: field after an empty line", line);
		/* key */
		ks = ls;
		if (!is_alnum((unsigned char)body[ks]))
			ERR("line %d: bad field name", line);
		ke = ks;
		while (ke < le && (is_alnum((unsigned char)body[ke]) ||
		    body[ke] == '_' || body[ke] == '-' || body[ke] == '.'))
			ke++;
		if (ke - ks > 32)
			ERR("line %d: field name too long", line);
		if (ke == le || body[ke] != ':')
			ERR("line %d: expected ':' after field name", line);
		vs = ke + 1;
		while (vs < le && is_wsp((unsigned char)body[vs]))
			vs++;
		ve = le;
		while (ve > vs && is_wsp((unsigned char)body[ve - 1]))
			ve--;
		/* no control byte; UTF-8 is allowed (RFC 8461's
		 * sts-policy-vchar), though only an extension can use it:
		 * version, mode, max_age and mx are checked as ASCII below */
		for (size_t k = vs; k < ve; k++) {
			unsigned char c = (unsigned char)body[k];

			if ((c < 0x21 || c == 0x7f) && c != ' ' && c != '\t')
				ERR("line %d: control byte", line);
		}
		if (ve == vs)
			ERR("line %d: empty value", line);
#define KEY(s) (ke - ks == sizeof(s) - 1 && memcmp(body + ks, s, ke - ks) == 0)
#define VAL(s) (ve - vs == sizeof(s) - 1 && memcmp(body + vs, s, ve - vs) == 0)
		if (KEY("version")) {
			if (have_ver++)
				ERR("line %d: repeated version", line);
			if (!VAL("STSv1"))
				ERR("line %d: version is not STSv1", line);
		} else if (KEY("mode")) {
			if (have_mode++)
				ERR("line %d: repeated mode", line);
			if (VAL("enforce"))
				p->mode = STS_MODE_ENFORCE;
			else if (VAL("testing"))
				p->mode = STS_MODE_TESTING;
			else if (VAL("none"))
				p->mode = STS_MODE_NONE;
			else
				ERR("line %d: unknown mode", line);
		} else if (KEY("max_age")) {
			unsigned long long v = 0;

			if (have_age++)
				ERR("line %d: repeated max_age", line);
			if (ve - vs > 10)
				ERR("line %d: max_age has more than 10 digits",
				    line);
			for (size_t k = vs; k < ve; k++) {
				if (body[k] < '0' || body[k] > '9')
					ERR("line %d: max_age is not a number",
					    line);
				v = v * 10 + (unsigned)(body[k] - '0');
			}
			if (v > STS_MAX_AGE)
				ERR("line %d: max_age above %u", line,
				    STS_MAX_AGE);
			p->max_age = (uint32_t)v;
		} else if (KEY("mx")) {
			if (p->nmx >= STS_MAX_MX)
				ERR("line %d: more than %d mx patterns", line,
				    STS_MAX_MX);
			if (mx_value(body + vs, ve - vs, p->mx[p->nmx],
			    sizeof(p->mx[0])) == -1)
				ERR("line %d: bad mx pattern", line);
			p->nmx++;
		}
		/* other keys: extensions, ignored */
#undef KEY
#undef VAL
	}
	if (!have_ver)
		ERR("no version field");
	if (!have_mode)
		ERR("no mode field");
	if (!have_age)
		ERR("no max_age field");
	if (p->mode != STS_MODE_NONE && p->nmx == 0)
		ERR("mode %s without any mx field", sts_mode_name(p->mode));
	return 0;
}

int
sts_mx_match(const char *pattern, const char *host)
{
	size_t hl = strlen(host), pl;
	const char *dot;

	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (hl == 0)
		return 0;
	if (pattern[0] == '*' && pattern[1] == '.') {
		/* exactly one label in place of the '*' */
		pattern += 2;
		pl = strlen(pattern);
		if ((dot = memchr(host, '.', hl)) == NULL || dot == host)
			return 0;
		dot++;
		hl -= (size_t)(dot - host);
		return hl == pl && strncasecmp(dot, pattern, pl) == 0;
	}
	pl = strlen(pattern);
	return hl == pl && strncasecmp(host, pattern, pl) == 0;
}

int
sts_policy_match(const struct sts_policy *p, const char *host)
{
	int i;

	for (i = 0; i < p->nmx; i++)
		if (sts_mx_match(p->mx[i], host))
			return 1;
	return 0;
}

/*
 * The domain as the MTA resolves it.  Conversion comes before the
 * trailing dot is taken off: with IDN2_NONTRANSITIONAL libidn2 applies
 * the UTS #46 mapping, which makes the label separators of RFC 3490
 * section 3.1 (U+3002, U+FF0E, U+FF61) dots, as the MTA's conversion
 * does; "x.example\u3002" is then "x.example." and so "x.example".
 */
int
sts_domain_norm(const char *in, char *out, size_t outsz, char *err,
    size_t errsz)
{
	const char *d = in;
	char *alabel = NULL, buf[254];
	size_t n, i;

	if (in[0] == '[')
		ERR("address literal %.100s has no MX policy", in);
	for (i = 0; in[i] != '\0' && (unsigned char)in[i] < 0x80; i++)
		;
	if (in[i] != '\0') {
		int rc = idn2_to_ascii_8z(in, &alabel,
		    IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);

		if (rc != IDN2_OK)
			ERR("internationalised domain not convertible to "
			    "A-labels: %s", idn2_strerror(rc));
		d = alabel;
	}
	n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		n--;
	if (n >= sizeof(buf) || n >= outsz) {
		idn2_free(alabel);
		ERR("domain too long");
	}
	for (i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)d[i]);
	buf[n] = '\0';
	idn2_free(alabel);
	if (n == 0)
		ERR("empty domain");
	if (!sts_valid_hostname(buf))
		ERR("not a valid domain name");
	memcpy(out, buf, n + 1);
	return 0;
}
