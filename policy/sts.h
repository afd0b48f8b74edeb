/*
 * sts.h - MTA-STS (RFC 8461) parsers and matcher: the _mta-sts TXT record
 * (section 3.1), the policy file (section 3.2), MX pattern matching
 * (section 4.1), and recipient-domain normalisation.  Pure functions, no
 * I/O: unit-tested and fuzzed.
 */
#ifndef MXG_STS_H
#define MXG_STS_H

#include <stddef.h>
#include <stdint.h>

#define STS_MAX_AGE	31557600u
#define STS_MAX_MX	64
#define STS_ID_MAX	32

enum sts_mode { STS_MODE_NONE, STS_MODE_TESTING, STS_MODE_ENFORCE };

/*
 * What a parse accepted outside RFC 8461's ABNF (docs/policy.md, "Policy
 * file and TXT record: what is accepted"): a bit for each kind of fix, so
 * the operator can tell the domain.  Nothing here changes what the policy
 * says; what could (two modes, an unknown mode) is still refused.
 */
#define STS_LENIENT_BOM		0x0001	/* UTF-8 byte order mark */
#define STS_LENIENT_BLANK	0x0002	/* empty line between fields */
#define STS_LENIENT_KEY_WSP	0x0004	/* blank before a key or ':' */
#define STS_LENIENT_KEY_CASE	0x0008	/* "Mode:", "MX:" */
#define STS_LENIENT_VALUE_CASE	0x0010	/* "Enforce", "stsv1" */
#define STS_LENIENT_MAX_AGE	0x0020	/* above 31557600: clamped */
#define STS_LENIENT_REPEAT	0x0040	/* version/mode/max_age repeated */
#define STS_LENIENT_MX_DOT	0x0080	/* mx pattern with a trailing dot */
#define STS_LENIENT_MX_ULABEL	0x0100	/* mx pattern in U-labels */
#define STS_LENIENT_EXT_EMPTY	0x0200	/* extension with no value */
#define STS_LENIENT_TXT_EQ_WSP	0x0400	/* TXT: blank around '=' */
#define STS_LENIENT_TXT_KEY_CASE 0x0800	/* TXT: "ID=" */
#define STS_LENIENT_TXT_REPEAT	0x1000	/* TXT: the same id twice */
#define STS_LENIENT_TXT_ID_CHARS 0x2000	/* TXT: id with '-', '_' or '.' */

struct sts_policy {
	enum sts_mode	 mode;
	uint32_t	 max_age;
	int		 nmx;
	unsigned	 lenient;		/* STS_LENIENT_* */
	int		 mx_over;	/* valid patterns past STS_MAX_MX, not
					 * kept: no host matches them */
	char		 mx[STS_MAX_MX][256];	/* lower case; "*.x" or "x" */
};

/* The names of the STS_LENIENT_* bits set, comma-separated ("-" for
 * none), in buf; returns buf. */
const char *sts_lenient_names(unsigned, char *buf, size_t sz);

/*
 * One TXT record: 1 = a valid STSv1 record (id filled), 0 = not an STSv1
 * record (does not start with "v=STSv1"), -1 = an STSv1 record that is
 * malformed (err says why).  *lenient (may be NULL) gets the
 * STS_LENIENT_TXT_* bits of what was accepted outside the ABNF.
 */
int	sts_txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1],
	    unsigned *lenient, char *err, size_t errsz);
/*
 * All TXT records of _mta-sts.D: 1 = exactly one STSv1 record, valid (id
 * filled, *lenient as sts_txt_parse() sets it); 0 = none; -1 = several,
 * or the one is malformed (err).
 */
int	sts_txt_select(const char *const *txts, const size_t *lens, int n,
	    char id[STS_ID_MAX + 1], unsigned *lenient, char *err,
	    size_t errsz);

/* The policy file: 0 = valid (p->lenient says what was fixed), -1 =
 * malformed (err says why). */
int	sts_policy_parse(const char *body, size_t len, struct sts_policy *,
	    char *err, size_t errsz);
const char *sts_mode_name(enum sts_mode);
/* The policy as the smallest policy file that parses to it again (the
 * version, mode, mx and max_age fields; no extensions): its length, or -1
 * when it does not fit in sz.  STS_FORMAT_MAX always fits. */
#define STS_FORMAT_MAX	(64 + STS_MAX_MX * 262)
int	sts_policy_format(const struct sts_policy *, char *buf, size_t sz);

/* 1 if host (any case, trailing dot allowed) matches pattern. */
int	sts_mx_match(const char *pattern, const char *host);
/* 1 if any pattern of the policy matches host. */
int	sts_policy_match(const struct sts_policy *, const char *host);

/*
 * Recipient domain as an MTA gave it, in the form it resolves: U-labels
 * converted to A-labels (IDNA2008 with the UTS #46 mapping, libidn2: the
 * separators U+3002, U+FF0E, U+FF61 become dots), then lower case, one
 * trailing dot removed.  0 or -1 with err.
 */
int	sts_domain_norm(const char *in, char *out, size_t outsz, char *err,
	    size_t errsz);
/*
 * Is c a character of an MTA-STS id as mxguard keeps one: RFC 8461's
 * letters and digits, and '-', '_', '.' (docs/policy.md: ids such as
 * "2024-01-01" are published).  The cache and Redis check ids with it.
 */
int	sts_id_char(int c);
/* Is s a syntactically valid host name (LDH labels, dots, <= 253)? */
int	sts_valid_hostname(const char *s);
/*
 * The TXT field grammar of RFC 8461 (sts-field) and RFC 8460
 * (tlsrpt-field): field-delim = *WSP ";" *WSP, then
 * name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") and "=".
 * txt_field_next(): from *i, 1 with [*ns, *ne) the name and *i after the
 * "=", 0 at the end of the record, -1 with err.  txt_field_value(): the
 * value 1*(%x21-3A / %x3C / %x3E-7E) at *i as [*vs, *ve); 0, or -1 when
 * it is empty.
 */
int	txt_field_next(const char *txt, size_t len, size_t *i, size_t *ns,
	    size_t *ne, char *err, size_t errsz);
int	txt_field_value(const char *txt, size_t len, size_t *i, size_t *vs,
	    size_t *ve, char *err, size_t errsz);
/*
 * Is name a DNS name mxguard may look up or connect to: 1 to 253 octets
 * (no trailing dot), labels of 1 to 63 octets of letters, digits and
 * hyphens (A-labels: IDNA normalisation comes first, sts_domain_norm()),
 * no hyphen at either end of a label; leading labels may be service
 * labels ("_mta-sts", "_25", "_tcp").  0, or -1 with err saying why.
 * The one check before every MTA-STS lookup (the engine) and every
 * policy fetch (http.c): a name is refused, never cut to fit.
 */
int	sts_dns_name_check(const char *name, char *err, size_t errsz);

#endif
