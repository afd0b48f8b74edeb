/*
 * tlsrpt.c - the _smtp._tls TXT record and rua URI parsers (RFC 8460
 * section 3); see tlsrpt.h.  Pure functions: no I/O, no allocation.
 *
 * The record grammar, with RFC 7405 case-sensitive strings:
 *
 *   tlsrpt-record    = %s"v=TLSRPTv1" 1*(field-delim tlsrpt-field)
 *                      [field-delim]
 *   field-delim      = *WSP ";" *WSP
 *   tlsrpt-field     = tlsrpt-rua / tlsrpt-extension
 *   tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
 *   tlsrpt-uri       = URI (RFC 3986; ",", "!" and ";" percent-encoded)
 *   tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
 *   tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
 *
 * Choices where the RFC leaves room, all on the strict side, because a
 * record we misread sends a domain's reports somewhere it did not ask:
 * rua must appear exactly once; every URI in it must be one we can
 * deliver to (mailto: to one plain address, or https:), otherwise the
 * whole record is refused.  The RFC sets no bound on the URIs: the first
 * TLSRPT_RUA_MAX are used, the others checked and counted (rua_over),
 * not refused, or a domain listing nine would get no report.  Unlike DMARC,
 * RFC 8460 has no "!size" suffix: a raw "!" is refused as the RFC says
 * it must be encoded.  Whitespace at the very end of the record is
 * tolerated (zone tools add it; it cannot change the meaning).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/sts.h"
#include "policy/tlsrpt.h"

#define ERR(...) do {						\
	snprintf(err, errsz, __VA_ARGS__);			\
	return -1;						\
} while (0)

static int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static int
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * RFC 3986 characters other than "%" (checked with its two hex digits by
 * the caller), minus the three RFC 8460 wants encoded: "," "!" ";".
 */
static int
is_uri_char(unsigned char c)
{
	if (is_alnum(c))
		return 1;
	return c != '\0' && strchr("-._~:/?#[]@$&'()*+=", c) != NULL;
}

/* RFC 5322 atext. */
static int
is_atext(unsigned char c)
{
	return is_alnum(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* One DNS host-name rule for the whole of policy/: sts_valid_hostname(). */
int
tlsrpt_valid_host(const char *s, size_t n)
{
	char buf[254];

	if (n == 0 || n >= sizeof(buf) || memchr(s, '\0', n) != NULL)
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return sts_valid_hostname(buf);
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* mailto:addr-spec, percent-decoded; no header fields, one address. */
static int
parse_mailto(const char *s, size_t len, struct tlsrpt_uri *u, char *err,
    size_t errsz)
{
	char a[sizeof(u->addr)];
	size_t i, n = 0, at = 0, nat = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '?')
			ERR("mailto: header fields (\"?\") are not supported");
		if (c == '#')
			ERR("mailto: URI with a fragment");
		if (c == '%') {
			c = (unsigned char)(hexval((unsigned char)s[i + 1]) * 16 +
			    hexval((unsigned char)s[i + 2]));	/* checked */
			i += 2;
		}
		if (n + 1 >= sizeof(a))
			ERR("mailto: address too long");
		if (c == '@') {
			at = n;
			nat++;
		} else if (!is_atext(c) && c != '.')
			ERR("mailto: address holds a character (0x%02x) that "
			    "is not allowed in an address", c);
		a[n++] = (char)c;
	}
	a[n] = '\0';
	if (nat != 1)
		ERR("mailto: needs exactly one address local@domain");
	if (at == 0 || at > 64)
		ERR("mailto: local part empty or longer than 64");
	if (a[0] == '.' || a[at - 1] == '.' || strstr(a, "..") != NULL)
		ERR("mailto: local part is not a dot-atom");
	if (!tlsrpt_valid_host(a + at + 1, n - at - 1))
		ERR("mailto: bad domain");
	lower(a + at + 1);
	u->kind = TLSRPT_URI_MAILTO;
	memcpy(u->addr, a, n + 1);
	return 0;
}

/* https://host[:port][/path][?query]; no userinfo, no fragment. */
static int
parse_https(const char *s, size_t len, struct tlsrpt_uri *u, char *err,
    size_t errsz)
{
	size_t i = 0, hs, he;
	unsigned long port = 443;

	if (len < 2 || s[0] != '/' || s[1] != '/')
		ERR("https: URI without \"//\" authority");
	i = hs = 2;
	while (i < len && s[i] != ':' && s[i] != '/' && s[i] != '?' &&
	    s[i] != '#') {
		if (s[i] == '@')
			ERR("https: URI with user information");
		if (s[i] == '[')
			ERR("https: IP literal hosts are not supported");
		i++;
	}
	he = i;
	if (!tlsrpt_valid_host(s + hs, he - hs))
		ERR("https: bad host name");
	if (i < len && s[i] == ':') {
		size_t ps = ++i;

		port = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9' && i - ps < 6)
			port = port * 10 + (unsigned long)(s[i++] - '0');
		if (i == ps || port == 0 || port > 65535 ||
		    (i < len && s[i] != '/' && s[i] != '?' && s[i] != '#'))
			ERR("https: bad port");
	}
	if (memchr(s + i, '#', len - i) != NULL)
		ERR("https: URI with a fragment");
	if (memchr(s + i, '[', len - i) != NULL ||
	    memchr(s + i, ']', len - i) != NULL)
		ERR("https: \"[\" or \"]\" outside the host");
	memcpy(u->host, s + hs, he - hs);
	u->host[he - hs] = '\0';
	lower(u->host);
	u->port = (uint16_t)port;
	if (i == len || s[i] == '?') {
		u->path[0] = '/';
		memcpy(u->path + 1, s + i, len - i);
		u->path[len - i + 1] = '\0';
	} else {
		memcpy(u->path, s + i, len - i);
		u->path[len - i] = '\0';
	}
	u->kind = TLSRPT_URI_HTTPS;
	return 0;
}

int
tlsrpt_uri_parse(const char *s, size_t len, struct tlsrpt_uri *u,
    char *err, size_t errsz)
{
	size_t i;

	memset(u, 0, sizeof(*u));
	if (len == 0)
		ERR("empty URI");
	if (len > TLSRPT_URI_MAX)
		ERR("URI longer than %d", TLSRPT_URI_MAX);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= len || hexval((unsigned char)s[i + 1]) < 0 ||
			    hexval((unsigned char)s[i + 2]) < 0)
				ERR("bad percent-encoding at offset %zu", i);
			i += 2;
			continue;
		}
		if (c == ',' || c == '!' || c == ';')
			ERR("'%c' in a URI must be percent-encoded "
			    "(RFC 8460 section 3)", c);
		if (!is_uri_char(c))
			ERR("character 0x%02x not allowed in a URI", c);
	}
	memcpy(u->uri, s, len);
	u->uri[len] = '\0';
	if (len >= 7 && strncasecmp(s, "mailto:", 7) == 0)
		return parse_mailto(s + 7, len - 7, u, err, errsz);
	if (len >= 6 && strncasecmp(s, "https:", 6) == 0)
		return parse_https(s + 6, len - 6, u, err, errsz);
	ERR("unsupported URI scheme (only mailto: and https:)");
}

/* The rua value at txt[*ip]: one or more URIs separated by ",". */
static int
parse_rua(const char *txt, size_t len, size_t *ip,
    struct tlsrpt_policy_record *r, char *err, size_t errsz)
{
	size_t i = *ip;
	char uerr[128];
	struct tlsrpt_uri over;		/* one past the bound, checked */

	for (;;) {
		size_t s = i;

		while (i < len && !is_wsp((unsigned char)txt[i]) &&
		    txt[i] != ',' && txt[i] != ';')
			i++;
		if (i == s)
			ERR("empty URI in rua at offset %zu", s);
		if (tlsrpt_uri_parse(txt + s, i - s, r->nrua < TLSRPT_RUA_MAX ?
		    &r->rua[r->nrua] : &over, uerr, sizeof(uerr)) == -1)
			ERR("rua URI %d: %s", r->nrua + r->rua_over + 1, uerr);
		if (r->nrua < TLSRPT_RUA_MAX)
			r->nrua++;
		else
			r->rua_over++;
		/* *WSP "," *WSP, or the end of the field */
		s = i;
		while (i < len && is_wsp((unsigned char)txt[i]))
			i++;
		if (i == len || txt[i] != ',') {
			*ip = s;
			return 0;
		}
		i++;
		while (i < len && is_wsp((unsigned char)txt[i]))
			i++;
	}
}

int
tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_policy_record *r,
    char *err, size_t errsz)
{
	size_t i = 10;
	int have_rua = 0;

	memset(r, 0, sizeof(*r));
	if (len < 10 || memcmp(txt, "v=TLSRPTv1", 10) != 0)
		return 0;
	if (len > 10 && txt[10] != ';' && !is_wsp((unsigned char)txt[10]))
		return 0;		/* v=TLSRPTv10 ...: another version */
	if (len > TLSRPT_TXT_MAX)
		ERR("record longer than %d", TLSRPT_TXT_MAX);
	for (;;) {
		size_t ns, ne, vs, ve;
		int rc;

		if ((rc = txt_field_next(txt, len, &i, &ns, &ne, err,
		    errsz)) == -1)
			return -1;
		if (rc == 0)
			break;
		if (ne - ns == 3 && memcmp(txt + ns, "rua", 3) == 0) {
			if (have_rua)
				ERR("repeated rua field");
			have_rua = 1;
			if (parse_rua(txt, len, &i, r, err, errsz) == -1)
				return -1;
			continue;
		}
		/* an extension: syntax checked, value ignored */
		if (txt_field_value(txt, len, &i, &vs, &ve, err, errsz) == -1)
			return -1;
	}
	if (!have_rua)
		ERR("no rua field");
	return 1;
}

int
tlsrpt_txt_select(const char *const *txts, const size_t *lens, int n,
    struct tlsrpt_policy_record *r, char *err, size_t errsz)
{
	struct tlsrpt_policy_record tmp;
	char terr[192];
	int i, found = 0, rc = 0;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < n; i++) {
		int p = tlsrpt_txt_parse(txts[i], lens[i], &tmp, terr,
		    sizeof(terr));

		if (p == 0)
			continue;	/* not TLSRPT: discarded */
		if (++found > 1) {
			memset(r, 0, sizeof(*r));
			snprintf(err, errsz, "more than one v=TLSRPTv1 TXT "
			    "record: the domain asks for no reports");
			return 0;
		}
		if (p == -1) {
			snprintf(err, errsz, "%s", terr);
			rc = -1;
		} else {
			memcpy(r, &tmp, sizeof(*r));
			rc = 1;
		}
	}
	if (found == 0)
		snprintf(err, errsz, "no v=TLSRPTv1 TXT record");
	return rc;
}
