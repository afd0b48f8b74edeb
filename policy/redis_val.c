/*
 * redis_val.c - what mxguard stores in Redis, and the rules for what it
 * reads back (redis.h).  Pure functions: no Redis, no clock of their own,
 * unit-tested without a server (tests/unit/test_redis_val.c).
 *
 * Everything read from Redis is untrusted: anyone who can write to the
 * network between a gateway and Redis, or to Redis itself, chooses it.
 * So a value is parsed strictly and refused whole when any part is off,
 * and even a well-formed value is only ever used where it can make a
 * verdict stricter (redis_sts_usable(), history_entry_merge()).  Each
 * value names its key (the domain, the MX host's address) in its
 * header, and a value read under another key is refused: a value copied
 * from one domain's key to another's would otherwise still decide the
 * other's verdict (an enforce policy with the first domain's MX patterns
 * defers all of the second's mail).  Values of the format before names
 * (MXGS1, MXGH1) are refused like malformed ones.  A time
 * of a history record ahead of the clock is not "off" but another
 * gateway's clock: brought back to now + REDIS_SKEW_S, never a reason to
 * drop TLS evidence.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/redis.h"

#define STS_MAGIC	"MXGS2 "
#define HIST_MAGIC	"MXGH2 "
#define STS_OLD		"MXGS1 "	/* no name: refused */
#define HIST_OLD	"MXGH1 "
#define MAX_BODY	(64 * 1024)
#define HIST_MAX	REDIS_HIST_MAX

/* A key's name as values carry it: 1 to REDIS_NAME_MAX printable ASCII
 * bytes without a space (the header's separator). */
static int
name_ok(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++)
		if (i >= REDIS_NAME_MAX || name[i] <= ' ' || name[i] > '~')
			return 0;
	return i > 0;
}

/* The name at *p (up to the next space, which *p moves past) is name;
 * -1 with err when it is not, or the header holds none. */
static int
name_is(const char **p, const char *lim, const char *name, char *err,
    size_t errsz)
{
	const char *s = *p;
	size_t n, want = strlen(name);

	while (s < lim && *s != ' ' && *s != '\n')
		s++;
	n = (size_t)(s - *p);
	if (s >= lim || *s != ' ' || n == 0) {
		snprintf(err, errsz, "no key name");
		return -1;
	}
	if (n != want || memcmp(*p, name, n) != 0) {
		/* copied from another key (or written for one): it would
		 * decide that key's verdict here */
		snprintf(err, errsz, "the value names another key (%.*s, not "
		    "%s)", n > 64 ? 64 : (int)n, *p, name);
		return -1;
	}
	*p = s + 1;
	return 0;
}

/* 0 when buf starts with magic; -1 otherwise, err naming the format of
 * an older mxguard when it is that one (old). */
static int
magic_is(const char *buf, size_t len, const char *magic, const char *old,
    char *err, size_t errsz)
{
	size_t ml = strlen(magic);

	if (len > ml && memcmp(buf, magic, ml) == 0)
		return 0;
	if (len >= strlen(old) && memcmp(buf, old, strlen(old)) == 0)
		snprintf(err, errsz, "%.5s, the format of an older mxguard "
		    "(no key name): not read", old);
	else
		snprintf(err, errsz, "no %.5s header", magic);
	return -1;
}

/* A decimal number of at most 18 digits (no sign, no leading junk) at
 * *p, followed by one of the bytes in end; *p moves past both. */
static int
num(const char **p, const char *lim, const char *end, int64_t *v)
{
	const char *s = *p;
	int64_t n = 0;
	int d = 0;

	while (s < lim && isdigit((unsigned char)*s) && d < 18) {
		n = n * 10 + (*s - '0');
		s++;
		d++;
	}
	if (d == 0 || s >= lim || strchr(end, *s) == NULL || *s == '\0')
		return -1;
	*v = n;
	*p = s + 1;
	return 0;
}

int
redis_sts_encode(const char *domain, const struct sts_cache_entry *e,
    char **out, size_t *len)
{
	char hdr[128 + REDIS_NAME_MAX];
	int n;

	if (!name_ok(domain))
		return -1;
	n = snprintf(hdr, sizeof(hdr), STS_MAGIC "%s %" PRId64 " %" PRId64
	    " %s\n", domain, e->fetched, e->expires, e->id);
	if (n < 0 || (size_t)n >= sizeof(hdr) || e->bodylen > MAX_BODY)
		return -1;
	if ((*out = malloc((size_t)n + e->bodylen + 1)) == NULL)
		return -1;
	memcpy(*out, hdr, (size_t)n);
	if (e->bodylen)
		memcpy(*out + n, e->body, e->bodylen);
	(*out)[(size_t)n + e->bodylen] = '\0';
	*len = (size_t)n + e->bodylen;
	return 0;
}

int
redis_sts_decode(const char *buf, size_t len, const char *domain,
    int64_t now, struct sts_cache_entry *e, char *err, size_t errsz)
{
	const char *p = buf, *lim = buf + len, *id;
	char perr[128];
	int64_t fetched, expires;
	size_t idlen, i, bl;

	memset(e, 0, sizeof(*e));
	if (!name_ok(domain)) {
		snprintf(err, errsz, "not a key name mxguard writes");
		return -1;
	}
	if (magic_is(buf, len, STS_MAGIC, STS_OLD, err, errsz) == -1)
		return -1;
	p += sizeof(STS_MAGIC) - 1;
	if (name_is(&p, lim, domain, err, errsz) == -1)
		return -1;
	if (num(&p, lim, " ", &fetched) == -1 ||
	    num(&p, lim, " ", &expires) == -1) {
		snprintf(err, errsz, "bad times");
		return -1;
	}
	for (id = p; p < lim && *p != '\n'; p++)
		;
	idlen = (size_t)(p - id);
	if (p >= lim || idlen == 0 || idlen > STS_ID_MAX) {
		snprintf(err, errsz, "bad id");
		return -1;
	}
	for (i = 0; i < idlen; i++)
		if (!sts_id_char((unsigned char)id[i])) {
			snprintf(err, errsz, "bad id");
			return -1;
		}
	p++;
	bl = (size_t)(lim - p);
	if (bl > MAX_BODY) {
		snprintf(err, errsz, "policy text too large");
		return -1;
	}
	if (fetched > now + REDIS_SKEW_S) {
		snprintf(err, errsz, "fetched in the future");
		return -1;
	}
	if (sts_policy_parse(p, bl, &e->pol, perr, sizeof(perr)) == -1) {
		snprintf(err, errsz, "policy: %s", perr);
		return -1;
	}
	/* the expiry is the policy's own max_age from the fetch: a value
	 * that stretches it is not one mxguard wrote */
	if (expires != fetched + (int64_t)e->pol.max_age) {
		snprintf(err, errsz, "expiry is not fetch time + max_age");
		return -1;
	}
	if ((e->body = malloc(bl + 1)) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	memcpy(e->body, p, bl);
	e->body[bl] = '\0';
	e->bodylen = bl;
	memcpy(e->id, id, idlen);
	e->id[idlen] = '\0';
	e->fetched = fetched;
	e->expires = expires;
	e->checked = fetched;
	e->last_used = fetched;
	return 0;
}

int
redis_sts_usable(const struct sts_cache_entry *local,
    const struct sts_cache_entry *remote, int64_t now)
{
	/* this gateway's own valid policy always decides: a policy from
	 * Redis never replaces it, neither a weaker one nor an enforce
	 * policy with other MX patterns */
	if (local != NULL && now < local->expires)
		return 0;
	if (remote == NULL || now >= remote->expires ||
	    remote->fetched > now + REDIS_SKEW_S)
		return 0;
	/* where the local state has no policy the verdict would be
	 * opportunistic: only enforce is stricter than that; testing and
	 * none decide nothing a local miss does not */
	return remote->pol.mode == STS_MODE_ENFORCE;
}

int
redis_sts_replaces(int64_t cur_fetched, int64_t new_fetched)
{
	return new_fetched >= cur_fetched;
}

int
redis_hist_encode(const char *addr, const struct history_entry *e,
    char *buf, size_t sz)
{
	int n;

	if (!name_ok(addr))
		return -1;
	n = snprintf(buf, sz, HIST_MAGIC "%s %" PRId64 " %" PRId64 " %" PRId64
	    " %" PRId64 " %" PRIu32 " %" PRIu32, addr, e->first_tls,
	    e->last_tls, e->last_fail, e->last_seen, e->tls_count,
	    e->fail_count);
	return n < 0 || (size_t)n >= sz || n >= HIST_MAX ? -1 : 0;
}

int
redis_hist_decode(const char *buf, size_t len, const char *addr,
    int64_t now, struct history_entry *e, char *err, size_t errsz)
{
	const char *p;
	char tmp[HIST_MAX];
	int64_t v[6];
	int i;

	memset(e, 0, sizeof(*e));
	if (!name_ok(addr)) {
		snprintf(err, errsz, "not a key name mxguard writes");
		return -1;
	}
	if (magic_is(buf, len, HIST_MAGIC, HIST_OLD, err, errsz) == -1)
		return -1;
	/* a NUL-terminated copy: the last number ends at the NUL */
	if (len >= sizeof(tmp)) {
		snprintf(err, errsz, "too long");
		return -1;
	}
	memcpy(tmp, buf, len);
	tmp[len] = '\0';
	p = tmp + sizeof(HIST_MAGIC) - 1;
	if (name_is(&p, tmp + len, addr, err, errsz) == -1)
		return -1;
	for (i = 0; i < 6; i++) {
		int64_t n = 0;
		int d = 0;

		while (isdigit((unsigned char)*p) && d < 18) {
			n = n * 10 + (*p++ - '0');
			d++;
		}
		/* single spaces between, the last one ends the value */
		if (d == 0 || *p != (i < 5 ? ' ' : '\0')) {
			snprintf(err, errsz, "not six numbers");
			return -1;
		}
		v[i] = n;
		p++;
	}
	if (v[4] > UINT32_MAX || v[5] > UINT32_MAX) {
		snprintf(err, errsz, "count out of range");
		return -1;
	}
	if ((v[0] == 0) != (v[1] == 0) || v[0] > v[1]) {
		snprintf(err, errsz, "first_tls after last_tls");
		return -1;
	}
	/* a time ahead of this gateway's clock (another gateway's clock is
	 * ahead, or the value is made up) is brought back to
	 * now + REDIS_SKEW_S, the rest kept: refusing the record would lose
	 * the TLS evidence of a gateway whose clock is ahead, and a made-up
	 * last_tls far ahead would keep the record expecting TLS long after
	 * the window.  The same bound for each time keeps
	 * first_tls <= last_tls. */
	for (i = 0; i < 4; i++)
		if (v[i] > now + REDIS_SKEW_S)
			v[i] = now + REDIS_SKEW_S;
	e->first_tls = v[0];
	e->last_tls = v[1];
	e->last_fail = v[2];
	e->last_seen = v[3];
	e->tls_count = (uint32_t)v[4];
	e->fail_count = (uint32_t)v[5];
	return 0;
}
