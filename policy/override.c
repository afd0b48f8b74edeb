/*
 * override.c - per-destination overrides (see override.h): the tls_policy
 * lines of mxguard.conf and a Postfix smtp_tls_policy_maps source file,
 * parsed into one table the caller owns (ovr_clear frees it).
 */
#include <sys/types.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/ssl.h>

#include "core/log.h"
#include "core/netaddr.h"
#include "policy/override.h"
#include "policy/sts.h"

#define NLEVELS	8

/* by enum ovr_level */
static const char *lvl_names[NLEVELS] = {
	"none", "may", "encrypt", "dane-only", "verify", "secure", "dane",
	"fingerprint",
};

/* protocols=, lowest first; SSLv2 is not in OpenSSL 3 (never offered) */
static const struct {
	const char	*name;
	int		 version;
} protos[] = {
	{ "SSLv2", 0 }, { "SSLv3", SSL3_VERSION }, { "TLSv1", TLS1_VERSION },
	{ "TLSv1.1", TLS1_1_VERSION }, { "TLSv1.2", TLS1_2_VERSION },
	{ "TLSv1.3", TLS1_3_VERSION },
};
#define NPROTOS	(int)(sizeof(protos) / sizeof(protos[0]))

const char *
ovr_level_name(enum ovr_level l)
{
	return (unsigned)l < NLEVELS ? lvl_names[l] : "?";
}

void
ovr_clear(struct ovr_table *t)
{
	free(t->e);
	free(t->didx);
	t->e = NULL;
	t->didx = NULL;
	t->n = t->nd = 0;
}

static void fail(char *, size_t, const char *, const char *, ...)
    __attribute__((format(printf, 4, 5)));
static void warn(struct ovr_table *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* where: the prefix of every error, "tls_policy \"LINE\"" or FILE:LINE */
static void
fail(char *err, size_t errsz, const char *where, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errsz, "%s: %s", where, msg);
}

static void
warn(struct ovr_table *t, const char *fmt, ...)
{
	char q[sizeof(t->warn)], *c;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->warn, sizeof(t->warn), fmt, ap);
	va_end(ap);
	t->nwarn++;
	/* one logfmt value: no double quote inside */
	snprintf(q, sizeof(q), "%s", t->warn);
	for (c = q; *c != '\0'; c++)
		if (*c == '"' || *c == '\\')
			*c = '\'';
	log_warn("event=config-warning note=\"%s\"", q);
}

static int
proto_index(const char *s)
{
	int i;

	for (i = 0; i < NPROTOS; i++)
		if (strcasecmp(s, protos[i].name) == 0)
			return i;
	return -1;
}

/* protocols=: the allowed set must be one contiguous range */
static int
parse_protocols(char *v, struct ovr_entry *e, char *err, size_t errsz,
    const char *where)
{
	int allow[NPROTOS], gone[NPROTOS], i, k, lo = -1, hi = -1;
	int incl = 0, excl = 0;
	char *p, *save = NULL;

	for (i = 0; i < NPROTOS; i++)
		allow[i] = gone[i] = 0;
	if (strncmp(v, ">=", 2) == 0 || strncmp(v, "<=", 2) == 0) {
		if ((k = proto_index(v + 2)) == -1)
			goto bad;
		for (i = 0; i < NPROTOS; i++)
			allow[i] = v[0] == '>' ? i >= k : i <= k;
	} else {
		for (p = strtok_r(v, ":, ", &save); p != NULL;
		    p = strtok_r(NULL, ":, ", &save)) {
			if ((k = proto_index(p + (p[0] == '!'))) == -1)
				goto bad;
			if (p[0] == '!') {
				excl = 1;
				gone[k] = 1;
			} else {
				incl = 1;
				allow[k] = 1;
			}
		}
		if (incl && excl) {
			fail(err, errsz, where, "protocols=: mix of included "
			    "and excluded protocols");
			return -1;
		}
		if (excl)
			for (i = 0; i < NPROTOS; i++)
				allow[i] = !gone[i];
	}
	/* SSLv2 is never offered: it does not count for the range */
	allow[0] = 0;
	for (i = 0; i < NPROTOS; i++)
		if (allow[i]) {
			if (lo == -1)
				lo = i;
			else if (hi != i - 1) {
				fail(err, errsz, where, "protocols=: only a "
				    "contiguous range of versions is supported");
				return -1;
			}
			hi = i;
		}
	if (lo == -1) {
		fail(err, errsz, where, "protocols=: no TLS version left");
		return -1;
	}
	e->min_proto = protos[lo].version;
	e->max_proto = hi == NPROTOS - 1 ? 0 : protos[hi].version;
	return 0;
bad:
	fail(err, errsz, where, "protocols=: unknown protocol in \"%s\" "
	    "(SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", v);
	return -1;
}

/* one SHA-256 digest, "AB:CD:..." or 64 hex digits */
static int
parse_digest(const char *s, unsigned char out[32])
{
	int n = 0, hi;

	while (*s != '\0') {
		if (*s == ':') {
			s++;
			continue;
		}
		if (n == 32 || !isxdigit((unsigned char)s[0]) ||
		    !isxdigit((unsigned char)s[1]))
			return -1;
		hi = isdigit((unsigned char)s[0]) ? s[0] - '0' :
		    tolower((unsigned char)s[0]) - 'a' + 10;
		out[n++] = (unsigned char)(hi << 4 |
		    (isdigit((unsigned char)s[1]) ? s[1] - '0' :
		    tolower((unsigned char)s[1]) - 'a' + 10));
		s += 2;
	}
	return n == 32 ? 0 : -1;
}

/*
 * One entry: DEST LEVEL [ATTR=VALUE ...].  postfix: the line comes from a
 * Postfix table (Postfix's "dane"; [host]:port keys).  Returns 0, 1 for
 * an entry skipped with a warning, -1 on error.
 */
/* A Postfix next hop's port is 25: "25", as Postfix also takes it with
 * leading zeros, or the service name "smtp" */
static int
port_is_25(const char *p)
{
	size_t n = strspn(p, "0");

	if (strcmp(p, "smtp") == 0)
		return 1;
	return strspn(p, "0123456789") == strlen(p) && strcmp(p + n, "25") == 0;
}

/* DEST of a line into e: an address, a domain or a ".parent"; 1 when a
 * Postfix [host]:port entry is skipped, -1 on error. */
static int
parse_dest(struct ovr_table *t, char *dest, struct ovr_entry *e, int postfix,
    const char *where, char *err, size_t errsz)
{
	char nerr[128];
	size_t len = strlen(dest);

	/* Postfix strips a trailing dot from the recipient domain and so
	 * never looks such a key up: taken here, it would apply a level
	 * (a none or may too) that Postfix never does */
	if (postfix && dest[0] != '[' && len > 1 && dest[len - 1] == '.') {
		fail(err, errsz, where, "key %s ends in a dot: Postfix never "
		    "looks it up (the recipient domain has none); write it "
		    "without", dest);
		return -1;
	}
	if (postfix && dest[0] == '[') {
		char *rb = strchr(dest, ']');

		if (rb != NULL && rb[1] == ':') {
			if (!port_is_25(rb + 2)) {
				warn(t, "%s: %s: mxguard only sees port 25; "
				    "entry skipped", where, dest);
				return 1;
			}
			rb[1] = '\0';
		}
	}
	{
		char a[64];
		size_t dl = strlen(dest);

		if (dest[0] == '[' && dl > 2 && dl < sizeof(a) &&
		    dest[dl - 1] == ']') {
			memcpy(a, dest + 1, dl - 2);
			a[dl - 2] = '\0';
		} else
			snprintf(a, sizeof(a), "%s", dest);
		if (inet_pton(AF_INET, a, e->addr) == 1) {
			e->is_addr = 1;
			e->family = AF_INET;
		} else if (inet_pton(AF_INET6, a, e->addr) == 1) {
			/* kept as written: a mapped or NAT64 address is
			 * judged when it is compared (entry_judged()), by
			 * the nat64_prefix list in force then, as the
			 * engine judges the destination */
			e->is_addr = 1;
			e->family = AF_INET6;
		} else if (postfix && dest[0] == '[' && dest[dl - 1] == ']') {
			/* [host]: the host's own name, taken as a domain.
			 * In Postfix it is a relay's next hop, whatever the
			 * recipients' domains; mxguard sees only the address
			 * the MTA connects to, so mail through that relay
			 * does not get this level: said at every load */
			warn(t, "%s: %s is taken as the recipient domain %.*s "
			    "(mxguard sees the address the MTA connects to, "
			    "not its next hop): for a relay host, write its "
			    "address, [192.0.2.25]", where, dest, (int)dl - 2,
			    dest + 1);
			memmove(dest, dest + 1, dl - 2);
			dest[dl - 2] = '\0';
		}
	}
	if (!e->is_addr) {
		int dot = dest[0] == '.';
		const char *last;

		if (sts_domain_norm(dest + dot, e->dest + dot,
		    sizeof(e->dest) - 1, nerr, sizeof(nerr)) == -1) {
			fail(err, errsz, where, "%s", nerr);
			return -1;
		}
		if (dot)
			e->dest[0] = '.';
		/* an address inet_pton() does not read (192.0.2.25. with a
		 * dot, 192.0.2.025, 0300.0.2.25) was taken as a domain, whose
		 * line no mail ever met: no domain in the DNS ends in an
		 * all-digit label (RFC 3696 section 2), and the destination
		 * address got the default (may) in silence */
		last = strrchr(e->dest, '.');
		last = last != NULL ? last + 1 : e->dest;
		if (strspn(last, "0123456789") == strlen(last)) {
			fail(err, errsz, where, "%s is no IP address and no "
			    "domain (its last label is all digits): write an "
			    "address as 192.0.2.25, [192.0.2.25] or "
			    "2001:db8::25", dest);
			return -1;
		}
	}
	return 0;
}

/*
 * A match= name of verify or secure, in the form the certificate's names
 * are compared in: an A-label, lower case, no trailing dot (a U-label or
 * a trailing dot matched no certificate, so the mail was deferred for
 * good); a leading dot (subdomains) kept.  One that is no host name is
 * kept as written, with a warning: it matches nothing.
 */
static void
match_add(struct ovr_table *t, struct ovr_entry *e, const char *m,
    const char *where)
{
	char nm[256], nerr[160];
	int dot = m[0] == '.';

	if (sts_domain_norm(m + dot, nm + dot, sizeof(nm) - 1, nerr,
	    sizeof(nerr)) == 0) {
		if (dot)
			nm[0] = '.';
		snprintf(e->match[e->nmatch++], 256, "%s", nm);
		return;
	}
	warn(t, "%s: match=%s: %s: no certificate can match it", where, m,
	    nerr);
	snprintf(e->match[e->nmatch++], 256, "%s", m);
}

/* Between level and attributes, as Postfix splits a policy: white space
 * and commas ("secure,match=a" is "secure match=a"; a list inside a value
 * takes ':'). Level and attribute names are taken in any case. */
#define SEP	" \t\r\n,"

static int
parse_line(struct ovr_table *t, const char *line, struct ovr_entry *e,
    int postfix, const char *where, char *err, size_t errsz)
{
	char buf[2048], *tok, *save = NULL, *dest, *lvl;
	int i, protocols = 0;

	memset(e, 0, sizeof(*e));
	snprintf(e->line, sizeof(e->line), "%s", line);
	if (strlen(line) >= sizeof(buf)) {
		fail(err, errsz, where, "line too long");
		return -1;
	}
	strcpy(buf, line);
	dest = strtok_r(buf, " \t", &save);
	lvl = strtok_r(NULL, SEP, &save);
	if (dest == NULL || lvl == NULL) {
		fail(err, errsz, where, "want DEST LEVEL");
		return -1;
	}
	for (i = 0; i < NLEVELS; i++)
		if (strcasecmp(lvl, lvl_names[i]) == 0)
			break;
	if (i == NLEVELS) {
		fail(err, errsz, where, "unknown level %s (none|may|encrypt|"
		    "dane|dane-only|fingerprint|verify|secure)", lvl);
		return -1;
	}
	e->level = (enum ovr_level)i;
	if (e->level == OVR_DANE_MAY && !postfix) {
		/* mxguard's old spelling, kept for one release */
		e->level = OVR_DANE;
		warn(t, "%s: tls_policy 'dane' means Postfix's 'dane-only' "
		    "in this release; write dane-only (mandatory) or dane "
		    "(opportunistic, Postfix's meaning)", where);
	}
	if ((i = parse_dest(t, dest, e, postfix, where, err, errsz)) != 0)
		return i;
	while ((tok = strtok_r(NULL, SEP, &save)) != NULL) {
		if (strchr(tok, '=') == NULL) {
			fail(err, errsz, where, "not NAME=VALUE: %s (white "
			    "space and commas separate attributes, as in "
			    "Postfix: protocols=!SSLv2:!SSLv3)", tok);
			return -1;
		}
		if (strncasecmp(tok, "match=", 6) == 0 &&
		    e->level == OVR_FINGERPRINT) {
			char *m, *s2 = NULL;

			/* Postfix takes an empty match= as an invalid
			 * policy: never "no names, so the default" */
			if (tok[6 + strspn(tok + 6, "|")] == '\0') {
				fail(err, errsz, where, "match= with no digest");
				return -1;
			}
			for (m = strtok_r(tok + 6, "|", &s2); m != NULL;
			    m = strtok_r(NULL, "|", &s2)) {
				if (e->nfp >= OVR_MAX_MATCH) {
					fail(err, errsz, where,
					    "too many fingerprints");
					return -1;
				}
				if (parse_digest(m, e->fp[e->nfp]) == -1) {
					fail(err, errsz, where, "match=%s: not "
					    "a SHA-256 fingerprint", m);
					return -1;
				}
				e->nfp++;
			}
		} else if (strncasecmp(tok, "match=", 6) == 0) {
			char *m, *s2 = NULL;

			if (e->level != OVR_VERIFY && e->level != OVR_SECURE) {
				fail(err, errsz, where, "match= applies to "
				    "verify, secure and fingerprint only");
				return -1;
			}
			if (tok[6 + strspn(tok + 6, ":")] == '\0') {
				fail(err, errsz, where, "match= with no name");
				return -1;
			}
			for (m = strtok_r(tok + 6, ":", &s2); m != NULL;
			    m = strtok_r(NULL, ":", &s2)) {
				if (e->nmatch >= OVR_MAX_MATCH) {
					fail(err, errsz, where,
					    "too many match names");
					return -1;
				}
				match_add(t, e, m, where);
			}
		} else if (strncasecmp(tok, "protocols=", 10) == 0) {
			/* the last would win: refused, as Postfix does */
			if (protocols++) {
				fail(err, errsz, where, "protocols= given twice");
				return -1;
			}
			if (parse_protocols(tok + 10, e, err, errsz,
			    where) == -1)
				return -1;
		} else {
			fail(err, errsz, where, "unsupported attribute %s "
			    "(match=, protocols=)", tok);
			return -1;
		}
	}
	if (e->level == OVR_FINGERPRINT && e->nfp == 0) {
		fail(err, errsz, where, "fingerprint needs match= with "
		    "SHA-256 digests");
		return -1;
	}
	return 0;
}

static int
table_add(struct ovr_table *n, int *cap, char *err, size_t errsz)
{
	struct ovr_entry *ne;

	if (n->n < *cap)
		return 0;
	*cap = *cap ? *cap * 2 : 16;
	if ((ne = reallocarray(n->e, (size_t)*cap, sizeof(*ne))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	n->e = ne;
	return 0;
}

/* The texthash file (path; its bytes from text when not NULL): logical
 * lines (continuations joined) to entries. */
static int
load_file(struct ovr_table *n, int *cap, const char *path, const char *text,
    size_t tlen, char *err, size_t errsz)
{
	FILE *f;
	char *raw = NULL, logical[2048], where[600];
	size_t rawsz = 0, ll = 0;
	ssize_t len;
	int lineno = 0, start = 0, rc = -1, r;

	if (text != NULL && tlen == 0)
		return 0;		/* fmemopen() refuses a size of 0 */
	if ((f = text != NULL ? fmemopen((void *)text, tlen, "r") :
	    fopen(path, "r")) == NULL) {
		snprintf(err, errsz, "tls_policy_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	logical[0] = '\0';
	for (;;) {
		len = getline(&raw, &rawsz, f);
		if (len != -1) {
			lineno++;
			/* the line would end at the NUL, and the attributes
			 * after it (match=, protocols=) would be lost */
			if (memchr(raw, '\0', (size_t)len) != NULL) {
				snprintf(err, errsz, "%s:%d: NUL byte in the "
				    "line", path, lineno);
				goto out;
			}
			while (len > 0 && (raw[len - 1] == '\n' ||
			    raw[len - 1] == '\r'))
				raw[--len] = '\0';
		}
		/* Postfix: a line starting with whitespace continues the
		 * logical line; blank lines and "#" lines are ignored */
		if (len != -1 && (raw[strspn(raw, " \t")] == '\0' ||
		    raw[strspn(raw, " \t")] == '#'))
			continue;
		if (len != -1 && (raw[0] == ' ' || raw[0] == '\t') &&
		    ll > 0) {
			if (ll + 1 + (size_t)len >= sizeof(logical)) {
				snprintf(err, errsz, "%s:%d: line too long",
				    path, lineno);
				goto out;
			}
			logical[ll++] = ' ';
			memcpy(logical + ll, raw + strspn(raw, " \t"),
			    (size_t)len - strspn(raw, " \t") + 1);
			ll = strlen(logical);
			continue;
		}
		if (ll > 0) {
			snprintf(where, sizeof(where), "%s:%d", path, start);
			if (table_add(n, cap, err, errsz) == -1)
				goto out;
			if ((r = parse_line(n, logical, &n->e[n->n], 1, where,
			    err, errsz)) == -1)
				goto out;
			if (r == 0)
				n->n++;
			ll = 0;
		}
		if (len == -1)
			break;
		if (raw[0] == ' ' || raw[0] == '\t') {
			snprintf(err, errsz, "%s:%d: continuation line "
			    "without a line to continue", path, lineno);
			goto out;
		}
		if ((size_t)len >= sizeof(logical)) {
			snprintf(err, errsz, "%s:%d: line too long", path,
			    lineno);
			goto out;
		}
		memcpy(logical, raw, (size_t)len + 1);
		ll = (size_t)len;
		start = lineno;
	}
	if (ferror(f)) {
		snprintf(err, errsz, "tls_policy_file %s: read error", path);
		goto out;
	}
	rc = 0;
out:
	free(raw);
	fclose(f);
	return rc;
}

/*
 * An address entry as netaddr_judged() judges a destination: an IPv4
 * address in IPv6 clothes (mapped, or in a prefix of nat64_prefix) is
 * that IPv4 address.  Judged here, at each comparison, and not when the
 * line is read: a line written in the form of a network-specific prefix
 * (2001:db8:64::192.0.2.25) was kept as IPv6 and never matched the
 * destination the engine judged as 192.0.2.25, and one behind the
 * well-known prefix matched nothing under nat64_prefix = none; either
 * way the line did not apply and its destination got the default (may).
 */
static void
entry_judged(const struct ovr_entry *e, struct sockaddr_storage *out)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (e->family == AF_INET) {
		ss.ss_family = AF_INET;
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, e->addr, 4);
	} else {
		ss.ss_family = AF_INET6;
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, e->addr, 16);
	}
	(void)netaddr_judged((struct sockaddr *)&ss, out);
}

/* qsort_r() of domain entries' indices by dest, then by line order */
static int
didx_cmp(const void *a, const void *b, void *arg)
{
	const struct ovr_entry *e = arg;
	int ia = *(const int *)a, ib = *(const int *)b, c;

	if ((c = strcmp(e[ia].dest, e[ib].dest)) != 0)
		return c;
	return ia < ib ? -1 : ia > ib;
}

/*
 * One line per destination: the first match decides, so a second line
 * for the same one (a `may` in mxguard.conf shadowing a `secure` in the
 * file, a `monitor` before an `enforce`) would be ignored in silence,
 * whichever direction the operator meant.  Refused, naming both (the
 * earliest pair).  The domain entries are sorted into n->didx, which
 * ovr_find() searches: comparing every pair took seconds of a blocked
 * event loop for a policy file of tens of thousands of domains, at
 * every start and twice at every reload (the check, then the engine),
 * and every lookup read the whole table once per label.
 */
static int
dup_check(struct ovr_table *n, const char *what, char *err, size_t errsz)
{
	struct sockaddr_storage ja, jb;
	int i, j, k, bi = -1, bj = -1;

	free(n->didx);
	n->didx = NULL;
	n->nd = 0;
	if (n->n > 0 && (n->didx = calloc((size_t)n->n,
	    sizeof(*n->didx))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	for (i = 0; i < n->n; i++)
		if (!n->e[i].is_addr)
			n->didx[n->nd++] = i;
	if (n->nd > 1)
		qsort_r(n->didx, (size_t)n->nd, sizeof(*n->didx), didx_cmp,
		    n->e);
	/* a run of one dest: its first two lines, in line order */
	for (k = 1; k < n->nd; k++)
		if (strcmp(n->e[n->didx[k - 1]].dest,
		    n->e[n->didx[k]].dest) == 0 && (k < 2 ||
		    strcmp(n->e[n->didx[k - 2]].dest,
		    n->e[n->didx[k]].dest) != 0) &&
		    (bi == -1 || n->didx[k - 1] < bi)) {
			bi = n->didx[k - 1];
			bj = n->didx[k];
		}
	/* addresses (a few relay hosts): every pair, judged */
	for (i = 0; i < n->n; i++) {
		if (!n->e[i].is_addr || (bi != -1 && i > bi))
			continue;
		entry_judged(&n->e[i], &ja);
		for (j = i + 1; j < n->n; j++) {
			if (!n->e[j].is_addr)
				continue;
			entry_judged(&n->e[j], &jb);
			if (netaddr_same_host(&ja, &jb) && (bi == -1 || i < bi ||
			    (i == bi && j < bj))) {
				bi = i;
				bj = j;
				break;
			}
		}
	}
	if (bi == -1)
		return 0;
	snprintf(err, errsz, "%s: the same destination twice, "
	    "\"%.200s\" and \"%.200s\": only the first would "
	    "apply; keep one line per destination", what,
	    n->e[bi].line, n->e[bj].line);
	return -1;
}

int
ovr_load(struct ovr_table *t, const struct strlist *l, const char *file,
    const char *text, size_t len, char *err, size_t errsz)
{
	struct ovr_table n;
	char where[400];
	int i, cap = 0, r;

	memset(&n, 0, sizeof(n));
	for (i = 0; i < l->n; i++) {
		snprintf(where, sizeof(where), "tls_policy \"%.300s\"",
		    l->v[i]);
		if (table_add(&n, &cap, err, errsz) == -1)
			goto fail;
		if ((r = parse_line(&n, l->v[i], &n.e[n.n], 0, where, err,
		    errsz)) == -1)
			goto fail;
		if (r == 0)
			n.n++;
	}
	if (file != NULL && file[0] != '\0' &&
	    load_file(&n, &cap, file, text, len, err, errsz) == -1)
		goto fail;
	if (dup_check(&n, "tls_policy", err, errsz) == -1)
		goto fail;
	ovr_clear(t);
	*t = n;
	return 0;
fail:
	ovr_clear(&n);
	return -1;
}

int
ovr_load_enforcement(struct ovr_table *t, const struct strlist *l, char *err,
    size_t errsz)
{
	struct ovr_table n;
	char where[400], buf[600], *dest, *mode, *extra, *save;
	int i, cap = 0;

	memset(&n, 0, sizeof(n));
	for (i = 0; i < l->n; i++) {
		snprintf(where, sizeof(where), "enforcement_override "
		    "\"%.300s\"", l->v[i]);
		if (strlen(l->v[i]) >= sizeof(buf)) {
			fail(err, errsz, where, "line too long");
			goto fail;
		}
		strcpy(buf, l->v[i]);
		save = NULL;
		dest = strtok_r(buf, " \t", &save);
		mode = strtok_r(NULL, " \t", &save);
		extra = strtok_r(NULL, " \t", &save);
		if (dest == NULL || mode == NULL || extra != NULL ||
		    (strcmp(mode, "enforce") != 0 &&
		    strcmp(mode, "monitor") != 0)) {
			fail(err, errsz, where, "want DEST enforce|monitor");
			goto fail;
		}
		if (table_add(&n, &cap, err, errsz) == -1)
			goto fail;
		memset(&n.e[n.n], 0, sizeof(n.e[n.n]));
		snprintf(n.e[n.n].line, sizeof(n.e[n.n].line), "%s", l->v[i]);
		if (parse_dest(&n, dest, &n.e[n.n], 0, where, err,
		    errsz) == -1)
			goto fail;
		n.e[n.n].monitor = strcmp(mode, "monitor") == 0;
		n.n++;
	}
	if (dup_check(&n, "enforcement_override", err, errsz) == -1)
		goto fail;
	ovr_clear(t);
	*t = n;
	return 0;
fail:
	ovr_clear(&n);
	return -1;
}

/* The domain entry for dest (a domain or ".parent"): a binary search of
 * didx (dup_check() made it; one entry per dest) */
static const struct ovr_entry *
dest_find(const struct ovr_table *t, const char *dest)
{
	int lo = 0, hi = t->nd - 1, mid, c;

	while (lo <= hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(t->e[t->didx[mid]].dest, dest)) == 0)
			return &t->e[t->didx[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

const struct ovr_entry *
ovr_find(const struct ovr_table *t, const char *domain,
    const struct sockaddr *dst)
{
	struct sockaddr_storage jd, je;
	const struct ovr_entry *e;
	const char *p;
	int i;

	if (dst != NULL && netaddr_judged(dst, &jd) == 0)
		for (i = 0; i < t->n; i++) {
			if (!t->e[i].is_addr)
				continue;
			entry_judged(&t->e[i], &je);
			if (netaddr_same_host(&je, &jd))
				return &t->e[i];
		}
	if (domain == NULL || domain[0] == '\0')
		return NULL;
	if ((e = dest_find(t, domain)) != NULL)
		return e;
	for (p = strchr(domain, '.'); p != NULL; p = strchr(p + 1, '.'))
		if ((e = dest_find(t, p)) != NULL)
			return e;
	return NULL;
}
