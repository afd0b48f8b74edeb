/*
 * sts.c - MTA-STS parsers and matcher (see sts.h).
 *
 * The parsers follow the ABNF of RFC 8461, with the leniences of
 * docs/policy.md's table for what only a file's layout gets wrong; what
 * could change what the policy says is refused with a reason, never
 * guessed at.  Inputs are bounded byte ranges that may hold NULs.
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
 * share (see sts.h): the delimiter, then "name=".  With wsp non-NULL
 * (the _mta-sts record only), blanks around the '=' are taken too and
 * *wsp set.
 */
static int
field_next(const char *txt, size_t len, size_t *ip, size_t *ns, size_t *ne,
    int *wsp, char *err, size_t errsz)
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
	while (wsp != NULL && i < len && is_wsp((unsigned char)txt[i])) {
		i++;
		*wsp = 1;
	}
	if (i == len || txt[i] != '=')
		ERR("expected '=' after field name at offset %zu", i);
	i++;
	while (wsp != NULL && i < len && is_wsp((unsigned char)txt[i])) {
		i++;
		*wsp = 1;
	}
	*ip = i;
	return 1;
}

int
txt_field_next(const char *txt, size_t len, size_t *ip, size_t *ns,
    size_t *ne, char *err, size_t errsz)
{
	return field_next(txt, len, ip, ns, ne, NULL, err, errsz);
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

int
sts_id_char(int c)
{
	return is_alnum(c) || c == '-' || c == '_' || c == '.';
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
 * Also taken (docs/policy.md's table, bits in *lenient): blanks around
 * a field's '=', '-', '_' and '.' in the id, the same id twice, and
 * "ID=" (any case) when the record has no "id=": with one, the others
 * are extensions, as the ABNF reads them.  Two different ids stay
 * invalid: which one names the policy nobody knows.
 */
static int
txt_id(const char *v, size_t n, char id[STS_ID_MAX + 1], int *have,
    unsigned *fix, char *err, size_t errsz)
{
	size_t k;

	if (n > STS_ID_MAX)
		ERR("id longer than 32 characters");
	/* an id only tells a new policy from the cached one: the
	 * separators of a date are as good as letters */
	for (k = 0; k < n; k++) {
		if (!sts_id_char((unsigned char)v[k]))
			ERR("id holds a character other than letters, digits, "
			    "'-', '_' and '.'");
		if (!is_alnum((unsigned char)v[k]))
			*fix |= STS_LENIENT_TXT_ID_CHARS;
	}
	if (*have) {
		if (strlen(id) != n || memcmp(id, v, n) != 0)
			ERR("two different id fields");
		*fix |= STS_LENIENT_TXT_REPEAT;
		return 0;
	}
	memcpy(id, v, n);
	id[n] = '\0';
	*have = 1;
	return 0;
}

int
sts_txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1],
    unsigned *lenient, char *err, size_t errsz)
{
	size_t i = 7, k = 7;
	int have_id = 0, have_ci = 0, nfields = 0;
	unsigned fix = 0, cifix = 0;
	char ciid[STS_ID_MAX + 1], cierr[128];
	const char *cibad = NULL;

	id[0] = '\0';
	if (lenient != NULL)
		*lenient = 0;
	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0)
		return 0;
	if (len > 7 && txt[7] != ';' && !is_wsp((unsigned char)txt[7]))
		return 0;		/* v=STSv10 ...: another version */
	/*
	 * Section 3.1 discards the records that do not begin with
	 * "v=STSv1;": one without the ';' ("v=STSv1", "v=STSv1 id=x") is
	 * no record, not an invalid one, so it cannot make a domain's
	 * valid record one of two.  Blanks before the ';' are the ABNF's.
	 */
	while (k < len && is_wsp((unsigned char)txt[k]))
		k++;
	if (k == len || txt[k] != ';')
		return 0;
	for (;;) {
		size_t ns, ne, vs, ve;
		int rc, wsp = 0;

		if ((rc = field_next(txt, len, &i, &ns, &ne, &wsp, err,
		    errsz)) == -1)
			goto fail;
		if (rc == 0)
			break;
		if (wsp)
			fix |= STS_LENIENT_TXT_EQ_WSP;
		if (txt_field_value(txt, len, &i, &vs, &ve, err, errsz) == -1)
			goto fail;
		nfields++;
		if (ne - ns != 2 || strncasecmp(txt + ns, "id", 2) != 0)
			continue;
		if (memcmp(txt + ns, "id", 2) == 0) {
			if (txt_id(txt + vs, ve - vs, id, &have_id, &fix, err,
			    errsz) == -1)
				goto fail;
		} else if (cibad == NULL && txt_id(txt + vs, ve - vs, ciid,
		    &have_ci, &cifix, cierr, sizeof(cierr)) == -1)
			cibad = cierr;	/* matters only without "id=" */
	}
	if (!have_id && (cibad != NULL || have_ci)) {
		if (cibad != NULL) {
			snprintf(err, errsz, "%s", cibad);
			goto fail;
		}
		memcpy(id, ciid, sizeof(ciid));
		have_id = 1;
		fix |= cifix | STS_LENIENT_TXT_KEY_CASE;
	}
	if (nfields == 0 || !have_id) {
		snprintf(err, errsz, "no id field");
		goto fail;
	}
	if (lenient != NULL)
		*lenient = fix;
	return 1;
fail:
	id[0] = '\0';
	return -1;
}

int
sts_txt_select(const char *const *txts, const size_t *lens, int n,
    char id[STS_ID_MAX + 1], unsigned *lenient, char *err, size_t errsz)
{
	int i, found = 0, rc = 0;
	char tid[STS_ID_MAX + 1], terr[128];
	unsigned fix = 0, tfix;

	id[0] = '\0';
	if (lenient != NULL)
		*lenient = 0;
	for (i = 0; i < n; i++) {
		/* records not starting with "v=STSv1;" are discarded */
		int r = sts_txt_parse(txts[i], lens[i], tid, &tfix, terr,
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
			fix = tfix;
			rc = 1;
		}
	}
	if (rc == -1)
		id[0] = '\0';
	else if (lenient != NULL)
		*lenient = fix;
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

/*
 * Checks an mx value "[*.]Domain"; returns 0 and writes it lower case, in
 * A-labels.  One trailing dot (the absolute name) is dropped, and a
 * U-label domain is converted as the recipient domain is
 * (sts_domain_norm()): both name the host the domain published, the form
 * its MX records give (STS_LENIENT_MX_DOT, _MX_ULABEL in *fix).
 */
static int
mx_value(const char *v, size_t len, char *out, size_t outsz, unsigned *fix)
{
	char in[1024], *alabel = NULL;
	const char *d;
	size_t i, wild = 0, n;
	int ascii = 1;

	if (len == 0 || len >= sizeof(in))
		return -1;
	memcpy(in, v, len);
	in[len] = '\0';
	if (len > 2 && in[0] == '*' && in[1] == '.')
		wild = 2;
	d = in + wild;
	for (i = wild; i < len; i++)
		if ((unsigned char)in[i] >= 0x80)
			ascii = 0;
	if (!ascii) {
		if (idn2_to_ascii_8z(d, &alabel, IDN2_NONTRANSITIONAL |
		    IDN2_NFC_INPUT) != IDN2_OK)
			return -1;
		d = alabel;
		*fix |= STS_LENIENT_MX_ULABEL;
	}
	n = strlen(d);
	if (n > 1 && d[n - 1] == '.' && d[n - 2] != '.') {
		n--;
		*fix |= STS_LENIENT_MX_DOT;
	}
	if (wild + n >= outsz) {
		idn2_free(alabel);
		return -1;
	}
	memcpy(out, "*.", wild);
	for (i = 0; i < n; i++)
		out[wild + i] = (char)tolower((unsigned char)d[i]);
	out[wild + n] = '\0';
	idn2_free(alabel);
	return sts_valid_hostname(out + wild) ? 0 : -1;
}

/* An mx value checked as mx_value() does, not kept. */
static int
mx_check(const char *v, size_t len, unsigned *fix)
{
	char out[256];

	return mx_value(v, len, out, sizeof(out), fix);
}

static const char *const lenient_name[] = {
	"bom", "blank-line", "key-whitespace", "key-case", "value-case",
	"max-age-clamped", "repeated-field", "mx-trailing-dot", "mx-u-label",
	"empty-extension", "txt-whitespace-around-equals", "txt-key-case",
	"txt-repeated-id", "txt-id-characters",
};

const char *
sts_lenient_names(unsigned bits, char *buf, size_t sz)
{
	size_t i, n = 0;

	if (sz == 0)
		return buf;
	snprintf(buf, sz, "-");
	for (i = 0; i < sizeof(lenient_name) / sizeof(lenient_name[0]); i++) {
		int w;

		if (!(bits & (1u << i)))
			continue;
		w = snprintf(buf + n, sz - n, "%s%s", n ? "," : "",
		    lenient_name[i]);
		if (w < 0 || (size_t)w >= sz - n) {
			buf[n] = '\0';	/* whole names only */
			break;
		}
		n += (size_t)w;
	}
	return buf;
}

/*
 * One known key, any case (what is not its exact spelling is noted), or
 * a known value likewise.  With exact set (the file also has the key's
 * exact spelling), only that spelling is the key.
 */
static int
word_is(const char *s, size_t n, const char *w, int exact, unsigned *fix,
    unsigned bit)
{
	if (n != strlen(w) || strncasecmp(s, w, n) != 0)
		return 0;
	if (memcmp(s, w, n) != 0) {
		if (exact)
			return 0;
		*fix |= bit;
	}
	return 1;
}

enum { K_VERSION, K_MODE, K_MAX_AGE, K_MX };
static const char *const known_key[] = { "version", "mode", "max_age", "mx" };
#define KNOWN_N	(sizeof(known_key) / sizeof(known_key[0]))

/*
 * The known keys some line of the file spells exactly (bit i for
 * known_key[i]).  Next to such a line, another case of the key is what
 * the ABNF makes of it, an extension: a file the ABNF takes is read as
 * the ABNF reads it ("Mode: none" beside "mode: enforce" is no second
 * mode, "MX:" no pattern the domain's strict readers never saw), as
 * "ID=" beside "id=" in the TXT record.  Lines that would not parse do
 * not matter: sts_policy_parse() refuses the file for them.
 */
static unsigned
exact_keys(const char *body, size_t len, size_t i)
{
	unsigned seen = 0;
	size_t k;

	while (i < len) {
		size_t ks, ke;

		while (i < len && is_wsp((unsigned char)body[i]))
			i++;
		ks = ke = i;
		while (ke < len && (is_alnum((unsigned char)body[ke]) ||
		    body[ke] == '_' || body[ke] == '-' || body[ke] == '.'))
			ke++;
		for (k = 0; k < KNOWN_N; k++)
			if (ke - ks == strlen(known_key[k]) &&
			    memcmp(body + ks, known_key[k], ke - ks) == 0)
				seen |= 1u << k;
		while (i < len && body[i] != '\n')
			i++;
		if (i < len)
			i++;
	}
	return seen;
}

/*
 * RFC 8461 section 3.2, read as docs/policy.md's table says: what only
 * the layout of the file gets wrong (blank lines, blanks around keys, a
 * byte order mark, case: another case of a key only where no line spells
 * it exactly) is accepted and noted in p->lenient; what the
 * domain said is taken as it said it (max_age above the RFC's maximum is
 * that maximum; a repeated field is kept when each copy says the same,
 * max_age excepted: the first, as section 3.2 asks); what could make a
 * verdict of something the domain did not say (two modes, an unknown
 * mode or version, a malformed mx) makes the file invalid.
 */
int
sts_policy_parse(const char *body, size_t len, struct sts_policy *p,
    char *err, size_t errsz)
{
	size_t i = 0;
	int line = 0, have_ver = 0, have_age = 0;
	int blank_seen = 0;
	enum sts_mode mode = STS_MODE_NONE;
	int have_mode = 0;
	unsigned exact, later_fix = 0;
	/* mx lines in another case, where no line spells "mx": patterns
	 * only if the mode needs them (below); past the room for them, only
	 * counted (nover) and checked (overbad: the first bad line) */
	struct { size_t vs, ve; int line; } later[STS_MAX_MX];
	int nlater = 0, nover = 0, overbad = 0, overempty = 0;
	unsigned overfix = 0;

	memset(p, 0, sizeof(*p));
	if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0) {
		i = 3;
		p->lenient |= STS_LENIENT_BOM;
	}
	exact = exact_keys(body, len, i);
	while (i < len) {
		size_t ls = i, le, ks, ke, vs, ve;
		unsigned fix = 0;

		line++;
		while (i < len && body[i] != '\n')
			i++;
		le = i;
		if (i < len)
			i++;		/* the LF */
		if (le > ls && body[le - 1] == '\r')
			le--;
		while (ls < le && is_wsp((unsigned char)body[ls])) {
			ls++;
			fix |= STS_LENIENT_KEY_WSP;
		}
		if (le == ls) {		/* empty (or blank) line */
			blank_seen = 1;
			continue;
		}
		if (blank_seen)
			fix |= STS_LENIENT_BLANK;
		blank_seen = 0;
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
		vs = ke;
		while (vs < le && is_wsp((unsigned char)body[vs])) {
			vs++;
			fix |= STS_LENIENT_KEY_WSP;
		}
		if (vs == le || body[vs] != ':')
			ERR("line %d: expected ':' after field name", line);
		vs++;
		while (vs < le && is_wsp((unsigned char)body[vs]))
			vs++;
		ve = le;
		while (ve > vs && is_wsp((unsigned char)body[ve - 1]))
			ve--;
		/* no control byte; UTF-8 is allowed (RFC 8461's
		 * sts-policy-vchar), though only an extension and an mx
		 * pattern (U-labels) can use it */
		for (size_t k = vs; k < ve; k++) {
			unsigned char c = (unsigned char)body[k];

			if ((c < 0x21 || c == 0x7f) && c != ' ' && c != '\t')
				ERR("line %d: control byte", line);
		}
#define KEY(n) word_is(body + ks, ke - ks, known_key[n], \
	    (exact & (1u << (n))) != 0, &fix, STS_LENIENT_KEY_CASE)
#define VAL(s) word_is(body + vs, ve - vs, s, 0, &fix, STS_LENIENT_VALUE_CASE)
		if (KEY(K_MX) && !(exact & (1u << K_MX))) {
			/* known after the last line: with mode none a
			 * strict reader takes the file, this line for an
			 * extension, and so must we */
			if (nlater < STS_MAX_MX) {
				later[nlater].vs = vs;
				later[nlater].ve = ve;
				later[nlater].line = line;
				nlater++;
			} else if (ve == vs || mx_check(body + vs, ve - vs,
			    &overfix) == -1) {
				if (ve == vs)
					overempty = 1;
				if (overbad == 0)
					overbad = line;
			} else
				nover++;
			later_fix |= fix;
			continue;
		}
		if (!KEY(K_VERSION) && !KEY(K_MODE) && !KEY(K_MAX_AGE) &&
		    !KEY(K_MX)) {
			/* an extension, ignored, even one without a value */
			if (ve == vs)
				fix |= STS_LENIENT_EXT_EMPTY;
			p->lenient |= fix;
			continue;
		}
		if (ve == vs)
			ERR("line %d: empty value", line);
		if (KEY(K_VERSION)) {
			if (!VAL("STSv1"))
				ERR("line %d: version is not STSv1", line);
			if (have_ver++)
				fix |= STS_LENIENT_REPEAT;
		} else if (KEY(K_MODE)) {
			enum sts_mode m;

			if (VAL("enforce"))
				m = STS_MODE_ENFORCE;
			else if (VAL("testing"))
				m = STS_MODE_TESTING;
			else if (VAL("none"))
				m = STS_MODE_NONE;
			else
				ERR("line %d: unknown mode", line);
			/* which of two modes the domain meant nobody knows */
			if (have_mode++ && m != mode)
				ERR("line %d: a second, different mode", line);
			if (have_mode > 1)
				fix |= STS_LENIENT_REPEAT;
			mode = m;
		} else if (KEY(K_MAX_AGE)) {
			unsigned long long v = 0;

			for (size_t k = vs; k < ve; k++) {
				if (body[k] < '0' || body[k] > '9')
					ERR("line %d: max_age is not a number",
					    line);
				v = v * 10 + (unsigned)(body[k] - '0');
				if (v > STS_MAX_AGE) {
					/* saturate: digits may go on */
					v = STS_MAX_AGE + 1ULL;
				}
			}
			if (v > STS_MAX_AGE) {
				v = STS_MAX_AGE;
				fix |= STS_LENIENT_MAX_AGE;
			}
			/* RFC 8461 section 3.2: the first one */
			if (have_age++)
				fix |= STS_LENIENT_REPEAT;
			else
				p->max_age = (uint32_t)v;
		} else if (p->nmx >= STS_MAX_MX) {
			/* valid, and more than there is room for: not
			 * kept, so a host only it lists matches nothing
			 * (deferred under enforce, policy.c), where an
			 * invalid policy would be no policy at all */
			if (mx_check(body + vs, ve - vs, &fix) == -1)
				ERR("line %d: bad mx pattern", line);
			p->mx_over++;
		} else {
			if (mx_value(body + vs, ve - vs, p->mx[p->nmx],
			    sizeof(p->mx[0]), &fix) == -1)
				ERR("line %d: bad mx pattern", line);
			p->nmx++;
		}
#undef KEY
#undef VAL
		p->lenient |= fix;
	}
	p->mode = mode;
	if (mode == STS_MODE_NONE) {
		/* extensions, as the ABNF reads them (one without a value
		 * is what the table calls an empty extension) */
		for (int k = 0; k < nlater; k++)
			if (later[k].ve == later[k].vs)
				p->lenient |= STS_LENIENT_EXT_EMPTY;
		if (overempty)
			p->lenient |= STS_LENIENT_EXT_EMPTY;
		p->lenient |= later_fix & ~STS_LENIENT_KEY_CASE;
	} else {
		for (int k = 0; k < nlater; k++) {
			unsigned fix = 0;

			if (later[k].ve == later[k].vs)
				ERR("line %d: empty value", later[k].line);
			/* (no line spells "mx": nothing else kept) */
			if (mx_value(body + later[k].vs, later[k].ve -
			    later[k].vs, p->mx[p->nmx], sizeof(p->mx[0]),
			    &fix) == -1)
				ERR("line %d: bad mx pattern", later[k].line);
			p->nmx++;
			p->lenient |= fix;
		}
		if (overbad != 0)
			ERR("line %d: bad mx pattern", overbad);
		p->mx_over += nover;
		p->lenient |= later_fix | overfix;
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
