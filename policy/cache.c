/*
 * cache.c - persistent MTA-STS policy cache on LMDB (see cache.h).
 *
 * Value layout (host byte order; the file is local state, never shipped):
 *   "MXS2" | fetched i64 | expires i64 | checked i64 | last_used i64 |
 *   mode u8 | mx_over u24 | id[33] | bodylen u32 | body
 * mx_over is the policy's count of mx patterns past STS_MAX_MX (sts.h):
 * a body stored as its fields (compact()) no longer has them, and a host
 * only they could list must still defer as this gateway's limit, not as
 * the domain's failure.  Records written before it have 0 there (the
 * three bytes were zero padding), and their count comes from the body.
 * Records of the first layout ("MXS1": no last_used, no mode) are still
 * read; the mode then comes from parsing the body.
 *
 * Eviction (cache.h) scans the whole store: it happens only when a
 * newcomer finds the cache full, at most once per policy fetched, and a
 * scan reads headers only.  The same scan drops every expired record, so
 * the next newcomers usually find room without one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/stats.h"
#include "policy/store.h"
#include "policy/cache.h"

#define MAGIC1		"MXS1"
#define MAGIC2		"MXS2"
#define HDR1_LEN	(4 + 8 + 8 + 8 + (STS_ID_MAX + 1) + 4)
#define HDR2_LEN	(4 + 8 + 8 + 8 + 8 + 4 + (STS_ID_MAX + 1) + 4)
#define MAX_BODY	(1024 * 1024)
#define MODE_INVALID	0xff	/* the body does not parse */
#define OVER_MAX	0xffffff	/* mx_over's room in the header */
#define TOUCH_S		3600	/* last_used granularity */
#define PUT_TRIES	8	/* evict-and-retry rounds on MDB_MAP_FULL (and when
				 * another worker took the room) */
#define SCAN_DROP_MAX	1024	/* expired records dropped by one scan: one
				 * write transaction stays small */

struct sts_cache {
	MDB_env	*env;
	MDB_dbi	 dbi;
	size_t	 max_entries;
	size_t	 entry_max;
};

/* One record as stored; body points into the LMDB page. */
struct rec {
	int64_t		 fetched, expires, checked, last_used;
	int		 mode;		/* enum sts_mode, or MODE_INVALID */
	uint32_t	 over;		/* mx patterns dropped (sts.h) */
	char		 id[STS_ID_MAX + 1];
	const char	*body;
	uint32_t	 bl;
};

/*
 * The body's mode, and in *over (may be NULL) its dropped mx patterns.
 * The parse goes into a buffer of its own (one thread a process), not
 * one allocated: a failed allocation read as "does not parse" stored a
 * live enforce policy as MODE_INVALID (sts_cache_put()), which make_room()
 * drops first and sts_cache_due() never lists, so a passing shortage of
 * memory left the policy to the first newcomer in a full cache.
 */
static int
body_mode(const char *body, size_t len, uint32_t *over)
{
	static struct sts_policy p;
	char perr[128];
	int mode = MODE_INVALID;

	if (over != NULL)
		*over = 0;
	if (sts_policy_parse(body, len, &p, perr, sizeof(perr)) == 0) {
		mode = (int)p.mode;
		if (over != NULL)
			*over = p.mx_over > OVER_MAX ? OVER_MAX :
			    (uint32_t)p.mx_over;
	}
	return mode;
}

static int
time_ok(int64_t t)
{
	return t >= 0 && t <= CLOCK_TIME_MAX;
}

static int
rec_decode(const MDB_val *v, struct rec *r, int need_mode)
{
	const unsigned char *p = v->mv_data;
	size_t hl;

	memset(r, 0, sizeof(*r));
	if (v->mv_size >= HDR2_LEN && memcmp(p, MAGIC2, 4) == 0) {
		hl = HDR2_LEN;
		memcpy(&r->fetched, p + 4, 8);
		memcpy(&r->expires, p + 12, 8);
		memcpy(&r->checked, p + 20, 8);
		memcpy(&r->last_used, p + 28, 8);
		r->mode = p[36];
		r->over = (uint32_t)p[37] | (uint32_t)p[38] << 8 |
		    (uint32_t)p[39] << 16;
		memcpy(r->id, p + 40, STS_ID_MAX + 1);
		memcpy(&r->bl, p + 40 + STS_ID_MAX + 1, 4);
	} else if (v->mv_size >= HDR1_LEN && memcmp(p, MAGIC1, 4) == 0) {
		hl = HDR1_LEN;
		memcpy(&r->fetched, p + 4, 8);
		memcpy(&r->expires, p + 12, 8);
		memcpy(&r->checked, p + 20, 8);
		r->last_used = r->checked;
		r->mode = -1;
		memcpy(r->id, p + 28, STS_ID_MAX + 1);
		memcpy(&r->bl, p + 28 + STS_ID_MAX + 1, 4);
	} else
		return -1;
	r->id[STS_ID_MAX] = '\0';
	if (r->bl > MAX_BODY || v->mv_size != hl + (size_t)r->bl)
		return -1;
	/* times no clock of ours wrote (a corrupt file): differences with
	 * them (sts_cache_due(), sts_cache_touch(), `mxguard policy`)
	 * would overflow */
	if (!time_ok(r->fetched) || !time_ok(r->expires) ||
	    !time_ok(r->checked) || !time_ok(r->last_used))
		return -1;
	r->body = (const char *)p + hl;
	if (r->mode == -1 && need_mode)
		r->mode = body_mode(r->body, r->bl, NULL);
	if (r->mode != -1 && r->mode != STS_MODE_NONE &&
	    r->mode != STS_MODE_TESTING && r->mode != STS_MODE_ENFORCE)
		r->mode = MODE_INVALID;
	return 0;
}

/* The value for r (r->body, r->bl); malloc'd, *len set. */
static unsigned char *
rec_encode(const struct rec *r, size_t *len)
{
	unsigned char *p;

	if ((p = calloc(1, HDR2_LEN + (size_t)r->bl)) == NULL)
		return NULL;
	memcpy(p, MAGIC2, 4);
	memcpy(p + 4, &r->fetched, 8);
	memcpy(p + 12, &r->expires, 8);
	memcpy(p + 20, &r->checked, 8);
	memcpy(p + 28, &r->last_used, 8);
	p[36] = (unsigned char)r->mode;
	p[37] = (unsigned char)(r->over & 0xff);
	p[38] = (unsigned char)(r->over >> 8 & 0xff);
	p[39] = (unsigned char)(r->over >> 16 & 0xff);
	memcpy(p + 40, r->id, strnlen(r->id, STS_ID_MAX));
	memcpy(p + 40 + STS_ID_MAX + 1, &r->bl, 4);
	if (r->bl)
		memcpy(p + HDR2_LEN, r->body, r->bl);
	*len = HDR2_LEN + (size_t)r->bl;
	return p;
}

/* ---- counters ---- */

static void
gauge(struct sts_cache *c, MDB_txn *txn)
{
	MDB_txn *own = NULL;

	if (txn == NULL) {
		if (store_txn_begin(c->env, MDB_RDONLY, &own) != 0)
			return;
		txn = own;
	}
	stats_set(stats_get("mxguard_sts_cache_entries",
	    "MTA-STS policies in the persistent cache"),
	    (int64_t)store_count(txn, c->dbi));
	if (own != NULL)
		mdb_txn_abort(own);
}

/* What one make_room() dropped: counted and logged once its transaction
 * is committed (an aborted one dropped nothing). */
enum { EV_INVALID, EV_EXPIRED, EV_NONE, EV_TESTING, EV_N };
static const char *ev_reason[EV_N] = { "invalid", "expired", "mode-none",
    "mode-testing" };

struct evictions {
	int	 n[EV_N];
	char	 lru[256];	/* the least recently used victim, if any */
};

static int
evicted(const struct evictions *ev)
{
	int i, total = 0;

	for (i = 0; i < EV_N; i++)
		total += ev->n[i];
	return total;
}

static void
report(const struct evictions *ev)
{
	char name[120];
	int i, total = 0;

	for (i = 0; i < EV_N; i++) {
		if (ev->n[i] == 0)
			continue;
		snprintf(name, sizeof(name), "mxguard_sts_cache_evictions_total"
		    "{reason=\"%s\"}", ev_reason[i]);
		stats_add(stats_get(name, "MTA-STS policies evicted from a "
		    "full cache"), ev->n[i]);
		total += ev->n[i];
	}
	if (total > 0) {
		char q[300];

		log_info("event=sts-cache-evict invalid=%d expired=%d "
		    "mode_none=%d mode_testing=%d lru=%s", ev->n[EV_INVALID],
		    ev->n[EV_EXPIRED], ev->n[EV_NONE], ev->n[EV_TESTING],
		    log_q(q, sizeof(q), ev->lru[0] ? ev->lru : "-"));
	}
}

static void
refused(struct sts_cache *c, const char *domain, const char *reason,
    const char *detail)
{
	char name[120], qd[300], qt[300];

	snprintf(name, sizeof(name), "mxguard_sts_cache_refusals_total"
	    "{reason=\"%s\"}", reason);
	stats_add(stats_get(name, "MTA-STS policies not cached"), 1);
	log_warn("event=sts-cache-refused domain=%s reason=%s max_entries=%zu "
	    "detail=%s", log_q(qd, sizeof(qd), domain), reason,
	    c->max_entries, log_q(qt, sizeof(qt), detail));
}

/* ---- open, get ---- */

struct sts_cache *
sts_cache_open_limits(const char *dir, size_t max_entries, size_t entry_max,
    size_t mapsize, char *err, size_t errsz)
{
	struct sts_cache *c;
	struct store_limits l;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	c->max_entries = max_entries ? max_entries : STS_CACHE_ENTRIES;
	c->entry_max = entry_max ? entry_max : STS_CACHE_ENTRY_MAX;
	l.max_entries = c->max_entries;
	l.entry_max = c->entry_max;
	l.mapsize = mapsize;
	if (store_open(dir, "sts-cache.mdb", &l, &c->env, &c->dbi, err,
	    errsz) == -1) {
		free(c);
		return NULL;
	}
	gauge(c, NULL);
	return c;
}

struct sts_cache *
sts_cache_open(const char *dir, char *err, size_t errsz)
{
	return sts_cache_open_limits(dir, STS_CACHE_ENTRIES,
	    STS_CACHE_ENTRY_MAX, 0, err, errsz);
}

void
sts_cache_close(struct sts_cache *c)
{
	if (c == NULL)
		return;
	mdb_env_close(c->env);
	free(c);
}

void
sts_cache_entry_clear(struct sts_cache_entry *e)
{
	free(e->body);
	e->body = NULL;
	e->bodylen = 0;
}

size_t
sts_cache_count(struct sts_cache *c)
{
	MDB_txn *txn;
	size_t n;

	if (store_txn_begin(c->env, MDB_RDONLY, &txn) != 0)
		return 0;
	n = store_count(txn, c->dbi);
	mdb_txn_abort(txn);
	return n;
}

int
sts_cache_get(struct sts_cache *c, const char *domain,
    struct sts_cache_entry *e)
{
	MDB_txn *txn;
	MDB_val k, v;
	struct rec r;
	char perr[128];
	uint32_t over;
	int rc;

	memset(e, 0, sizeof(*e));
	k.mv_data = (void *)domain;
	k.mv_size = strlen(domain);
	if (k.mv_size == 0 || k.mv_size > 255)
		return 0;
	/* an error is never silent, nor "no cached policy": the engine
	 * defers a domain with no policy fetched (store-error) */
	if ((rc = store_txn_begin(c->env, MDB_RDONLY, &txn)) != 0) {
		store_error("sts-cache", "read", rc);
		return -1;
	}
	rc = mdb_get(txn, c->dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return 0;
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		store_error("sts-cache", "read", rc);
		return -1;
	}
	if (rec_decode(&v, &r, 0) == -1) {
		/* the store holds something for the domain and cannot say
		 * what: an error, as a failed read is (a policy fetched now
		 * still decides; eviction drops the record at the next
		 * write that makes room) */
		mdb_txn_abort(txn);
		log_err("event=sts-cache-corrupt domain=%s what=record "
		    "note=\"taken as a read error\"", domain);
		return -1;
	}
	over = r.over;
	e->fetched = r.fetched;
	e->expires = r.expires;
	e->checked = r.checked;
	e->last_used = r.last_used;
	memcpy(e->id, r.id, sizeof(e->id));
	if ((e->body = malloc((size_t)r.bl + 1)) == NULL) {
		mdb_txn_abort(txn);
		store_error("sts-cache", "read", ENOMEM);
		return -1;
	}
	memcpy(e->body, r.body, r.bl);
	e->body[r.bl] = '\0';
	e->bodylen = r.bl;
	mdb_txn_abort(txn);
	if (sts_policy_parse(e->body, e->bodylen, &e->pol, perr,
	    sizeof(perr)) == -1) {
		/* a record whose policy no longer parses (a stricter parser
		 * since): an invalid policy is none (RFC 8461 section 3.3),
		 * and so is its fetch now */
		log_warn("event=sts-cache-corrupt domain=%s what=policy", domain);
		sts_cache_entry_clear(e);
		return 0;
	}
	/* a body stored as its fields lost the patterns past STS_MAX_MX:
	 * the header remembers how many there were */
	if ((uint32_t)e->pol.mx_over < over)
		e->pol.mx_over = (int)over;
	return 1;
}

/* ---- eviction ---- */

/*
 * Makes room in txn for one more record.  Drops every unreadable record
 * and every expired one of mode none or testing (up to SCAN_DROP_MAX);
 * then, if the store still holds max_entries records (or force is set:
 * MDB_MAP_FULL, the file is full before the count), the least recently
 * used live policy of mode none, else of mode testing, else the least
 * recently used expired enforce policy.  An expired enforce policy still
 * protects its domain (a failed or empty TXT lookup fetches it again
 * under the cached id: refetch_expired() in policy.c), which none and
 * testing policies never do: a flood of newcomers (an attacker's own
 * domains) must not push it out while they are there to go.  Never a
 * live enforce policy, never the record of keep (the domain being
 * written).  -1 on a store error, else 0 with ev telling what went.
 */
#define VICTIMS	3	/* none, testing, expired enforce: in that order */
static int
make_room(struct sts_cache *c, MDB_txn *txn, const MDB_val *keep,
    int64_t now, int force, struct evictions *ev)
{
	static const int vreason[VICTIMS] = { EV_NONE, EV_TESTING,
	    EV_EXPIRED };
	MDB_cursor *cur;
	MDB_val k, v;
	struct rec r;
	char victim[VICTIMS][256];
	int64_t vused[VICTIMS] = { 0, 0, 0 };
	int have[VICTIMS] = { 0, 0, 0 }, dropped = 0, rc, t;

	if (mdb_cursor_open(txn, c->dbi, &cur) != 0)
		return -1;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0) {
		int why = -1;

		if (k.mv_size == keep->mv_size &&
		    memcmp(k.mv_data, keep->mv_data, k.mv_size) == 0)
			goto next;
		if (rec_decode(&v, &r, 1) == -1 || r.mode == MODE_INVALID)
			why = EV_INVALID;
		else if (now >= r.expires && r.mode != STS_MODE_ENFORCE)
			why = EV_EXPIRED;
		if (why != -1 && dropped < SCAN_DROP_MAX) {
			if (mdb_cursor_del(cur, 0) != 0) {
				mdb_cursor_close(cur);
				return -1;
			}
			ev->n[why]++;
			dropped++;
			/* after a delete, MDB_NEXT yields the record that
			 * followed the deleted one */
			goto next;
		}
		t = now >= r.expires ? 2 : r.mode == STS_MODE_NONE ? 0 :
		    r.mode == STS_MODE_TESTING ? 1 : -1;
		if (why == -1 && t >= 0 && k.mv_size < sizeof(victim[t]) &&
		    (!have[t] || r.last_used < vused[t])) {
			memcpy(victim[t], k.mv_data, k.mv_size);
			victim[t][k.mv_size] = '\0';
			vused[t] = r.last_used;
			have[t] = 1;
		}
next:
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return -1;
	if (store_count(txn, c->dbi) < c->max_entries && !(force &&
	    dropped == 0))
		return 0;
	for (t = 0; t < VICTIMS; t++) {
		if (!have[t])
			continue;
		k.mv_data = victim[t];
		k.mv_size = strlen(victim[t]);
		if (mdb_del(txn, c->dbi, &k, NULL) != 0)
			return -1;
		ev->n[vreason[t]]++;
		snprintf(ev->lru, sizeof(ev->lru), "%s", victim[t]);
		return 0;
	}
	return 0;
}

/* May a newcomer come in: fewer than max_entries records, and the map
 * not past the share kept for updates of the records already in
 * (store_room(), as last committed)? */
static int
admits(struct sts_cache *c, MDB_txn *txn)
{
	return store_count(txn, c->dbi) < c->max_entries &&
	    store_room(c->env);
}

/*
 * What txn holds for k: *exists set, and 1 when it is the policy of a
 * fetch started after this one (fetched), which stays; 0 when the put may
 * go on; -1 with the LMDB error in *err.  Fetches overlap (a refresh
 * under the old id, a lookup under a new one; other workers): the one
 * started last wins, whichever ends last, so that an attacker who holds
 * back an older response cannot put it over a newer policy.  A time far
 * ahead of the clock (it was stepped back) does not block updates for
 * long.
 */
static int
stored_newer(struct sts_cache *c, MDB_txn *txn, MDB_val *k,
    int64_t fetched, int64_t now, int *exists, int *err)
{
	struct rec cur;
	MDB_val old;
	int rc;

	rc = mdb_get(txn, c->dbi, k, &old);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		*err = rc;
		return -1;
	}
	*exists = rc == 0;
	return *exists && rec_decode(&old, &cur, 0) == 0 &&
	    cur.fetched > fetched && cur.fetched <= now + 300;
}

/*
 * One attempt: 0 stored, 1 refused (logged), 2 kept (a fetch started
 * later stored its policy), or an LMDB error code.  Eviction runs in a
 * transaction of its own, committed before the put: pages an aborted put
 * had freed would not be free.  force (an earlier attempt hit
 * MDB_MAP_FULL) evicts even when the count is below the bound.
 */
static int
put_once(struct sts_cache *c, const char *domain, const MDB_val *val,
    int64_t fetched, int64_t now, int force)
{
	struct evictions ev;
	MDB_txn *txn;
	MDB_val k, v = *val;
	int rc, exists;

	memset(&ev, 0, sizeof(ev));
	k.mv_data = (void *)domain;
	k.mv_size = strlen(domain);
	if ((rc = store_txn_begin(c->env, 0, &txn)) != 0)
		return rc;
	switch (stored_newer(c, txn, &k, fetched, now, &exists, &rc)) {
	case -1:
		goto abort;
	case 1:
		mdb_txn_abort(txn);
		return 2;
	}
	if (force || (!exists && !admits(c, txn))) {
		if (make_room(c, txn, &k, now, force ||
		    !store_room(c->env), &ev) == -1) {
			rc = MDB_PANIC;
			goto abort;
		}
		if ((rc = mdb_txn_commit(txn)) != 0)
			return rc;
		report(&ev);
		if ((rc = store_txn_begin(c->env, 0, &txn)) != 0)
			return rc;
		/* read again: another process (a worker) may have stored
		 * this domain between the two transactions, the policy of a
		 * fetch started after this one's among others; what was
		 * read before the eviction no longer says */
		switch (stored_newer(c, txn, &k, fetched, now, &exists,
		    &rc)) {
		case -1:
			goto abort;
		case 1:
			mdb_txn_abort(txn);
			return 2;
		}
		if (!exists && !admits(c, txn) && evicted(&ev)) {
			/* another process (a worker) took the room between
			 * the two transactions: evict again */
			mdb_txn_abort(txn);
			return MDB_MAP_FULL;
		}
		if (!exists && !admits(c, txn)) {
			/* only live enforce policies left: keep them */
			mdb_txn_abort(txn);
			gauge(c, NULL);
			if (sts_cache_count(c) >= c->max_entries)
				refused(c, domain, "full", "every cached "
				    "policy is a live enforce policy: a "
				    "newcomer never evicts one");
			else
				refused(c, domain, "map-full", "the store "
				    "file keeps its last quarter for updates "
				    "of live enforce policies");
			return 1;
		}
	}
	if ((rc = mdb_put(txn, c->dbi, &k, &v, 0)) != 0)
		goto abort;
	gauge(c, txn);
	return mdb_txn_commit(txn);
abort:
	mdb_txn_abort(txn);
	return rc;
}

/* e's policy as its deciding fields only (sts_policy_format): the
 * length in buf, or -1 (a body that does not parse is never shortened);
 * *over gets the patterns past STS_MAX_MX that the fields cannot hold.
 * A buffer of its own, as body_mode(): a failed allocation refused an
 * enforce policy as too large, left to a fetch an attacker can block. */
static int
compact(const struct sts_cache_entry *e, char *buf, size_t sz,
    uint32_t *over)
{
	static struct sts_policy p;
	char perr[160];
	int n = -1;

	if (e->body == NULL)
		return -1;
	if (sts_policy_parse(e->body, e->bodylen, &p, perr, sizeof(perr)) ==
	    0) {
		n = sts_policy_format(&p, buf, sz);
		*over = p.mx_over > OVER_MAX ? OVER_MAX :
		    (uint32_t)p.mx_over;
	}
	return n;
}

int
sts_cache_put(struct sts_cache *c, const char *domain,
    const struct sts_cache_entry *e)
{
	static char compact_buf[STS_FORMAT_MAX];	/* one thread a process */
	const char *body = e->body;
	size_t bodylen = e->bodylen;
	uint32_t over = 0;
	struct rec r;
	MDB_val v;
	unsigned char *p;
	size_t len, klen = strlen(domain);
	int64_t now = clock_now();
	int rc, i;

	if (klen == 0 || klen > 255) {
		refused(c, "-", "error", "bad domain name");
		return -1;
	}
	if (e->bodylen > MAX_BODY ||
	    klen + HDR2_LEN + e->bodylen > c->entry_max) {
		/* a valid policy too large as published (comments, long
		 * extensions) is kept as the fields that decide: one not
		 * cached would protect only the lookup that fetched it */
		int cl = compact(e, compact_buf, sizeof(compact_buf), &over);

		/* an enforce policy's fields are cached whatever the limit
		 * (at most STS_FORMAT_MAX): one not cached would leave every
		 * later lookup to a fetch an attacker can block (RFC 8461
		 * section 5.1); the limit keeps testing and none ones out */
		if (cl < 0 || (klen + HDR2_LEN + (size_t)cl > c->entry_max &&
		    body_mode(compact_buf, (size_t)cl, NULL) !=
		    STS_MODE_ENFORCE)) {
			char d[120];

			snprintf(d, sizeof(d), "policy of %zu bytes (%d as "
			    "its fields): more than sts_cache_max_entry_size "
			    "(%zu)", e->bodylen, cl, c->entry_max);
			refused(c, domain, "too-large", d);
			return -1;
		}
		body = compact_buf;
		bodylen = (size_t)cl;
	}
	memset(&r, 0, sizeof(r));
	r.fetched = e->fetched;
	r.expires = e->expires;
	r.checked = e->checked;
	r.last_used = e->last_used ? e->last_used : e->fetched;
	/* a compact body has no dropped patterns left to count: over is
	 * compact()'s count of them then */
	r.mode = body_mode(body ? body : "", bodylen, body == e->body ?
	    &r.over : NULL);
	if (body != e->body)
		r.over = over;
	snprintf(r.id, sizeof(r.id), "%s", e->id);
	r.body = body;
	r.bl = (uint32_t)bodylen;
	if ((p = rec_encode(&r, &len)) == NULL)
		return -1;
	v.mv_data = p;
	v.mv_size = len;
	/* MDB_MAP_FULL: the file's bound, not the count, was reached (large
	 * records, fragmentation); evict one more each round and retry */
	for (i = 0, rc = MDB_MAP_FULL; i < PUT_TRIES && store_full(rc); i++)
		rc = put_once(c, domain, &v, e->fetched, now, i > 0);
	free(p);
	if (rc == 0)
		return 0;
	if (rc == 2) {
		char qd[300];

		log_info("event=sts-cache-kept domain=%s note=\"a fetch "
		    "started later has stored its policy\"",
		    log_q(qd, sizeof(qd), domain));
		return 1;
	}
	if (rc == 1)
		return -1;
	if (store_full(rc))
		refused(c, domain, "map-full", "the store file is at its "
		    "bound and nothing more may be evicted");
	else {
		refused(c, domain, "error", mdb_strerror(rc));
		char qd[300], qe[300];

		log_warn("event=sts-cache-error domain=%s error=%s",
		    log_q(qd, sizeof(qd), domain),
		    log_q(qe, sizeof(qe), mdb_strerror(rc)));
	}
	return -1;
}

int
sts_cache_touch(struct sts_cache *c, const char *domain, int64_t now)
{
	MDB_txn *txn;
	MDB_val k, v;
	struct rec r;
	unsigned char *p;
	size_t len;
	int rc;

	k.mv_data = (void *)domain;
	k.mv_size = strlen(domain);
	if (c == NULL || k.mv_size == 0 || k.mv_size > 255)
		return 0;
	/* read first: most lookups find a recent mark and write nothing */
	if ((rc = store_txn_begin(c->env, MDB_RDONLY, &txn)) != 0) {
		store_error("sts-cache", "read", rc);
		return 0;
	}
	if (mdb_get(txn, c->dbi, &k, &v) != 0 || rec_decode(&v, &r, 0) ==
	    -1 || (now - r.last_used < TOUCH_S && r.mode != -1)) {
		mdb_txn_abort(txn);
		return 0;
	}
	mdb_txn_abort(txn);
	if ((rc = store_txn_begin(c->env, 0, &txn)) != 0) {
		store_error("sts-cache", "write", rc);
		return 0;
	}
	if (mdb_get(txn, c->dbi, &k, &v) != 0 || rec_decode(&v, &r, 1) ==
	    -1) {
		mdb_txn_abort(txn);
		return 0;
	}
	r.last_used = now;
	if ((p = rec_encode(&r, &len)) == NULL) {
		mdb_txn_abort(txn);
		return 0;
	}
	v.mv_data = p;
	v.mv_size = len;
	/* a full store only loses the mark: never worth an eviction */
	if ((rc = mdb_put(txn, c->dbi, &k, &v, 0)) == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rc != 0 && !store_full(rc))
		store_error("sts-cache", "write", rc);
	free(p);
	return rc == 0;
}

int
sts_cache_del(struct sts_cache *c, const char *domain)
{
	MDB_txn *txn;
	MDB_val k;
	int rc;

	k.mv_data = (void *)domain;
	k.mv_size = strlen(domain);
	if ((rc = store_txn_begin(c->env, 0, &txn)) != 0)
		return -1;
	rc = mdb_del(txn, c->dbi, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return -1;
	}
	gauge(c, txn);
	return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

size_t
sts_cache_due(struct sts_cache *c, int64_t now, int margin_pct,
    struct sts_cache_due *out, size_t max)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct rec r;
	size_t n = 0, i;
	int rc;

	if (c == NULL || max == 0)
		return 0;
	if (margin_pct < 0)
		margin_pct = 0;
	if (margin_pct > 100)
		margin_pct = 100;
	/* a failure leaves policies unrefreshed: counted */
	if ((rc = store_txn_begin(c->env, MDB_RDONLY, &txn)) != 0) {
		store_error("sts-cache", "read", rc);
		return 0;
	}
	if (mdb_cursor_open(txn, c->dbi, &cur) != 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int64_t age;

		if (k.mv_size == 0 || k.mv_size >= sizeof(out->domain) ||
		    rec_decode(&v, &r, 0) == -1 || r.mode == MODE_INVALID)
			continue;
		age = r.expires - r.fetched;
		/* same rule as sts_cache_state(): within the margin */
		if (age <= 0 || now >= r.expires ||
		    r.expires - now > age * margin_pct / 100)
			continue;
		/* recently used: a policy nobody needed in a whole max_age
		 * is left to expire (each use buys about one more life) */
		if (now - r.last_used > age)
			continue;
		/* keep the max soonest to expire, in order */
		if (n == max && r.expires >= out[n - 1].expires)
			continue;
		i = n < max ? n++ : n - 1;
		for (; i > 0 && out[i - 1].expires > r.expires; i--)
			out[i] = out[i - 1];
		memcpy(out[i].domain, k.mv_data, k.mv_size);
		out[i].domain[k.mv_size] = '\0';
		memcpy(out[i].id, r.id, sizeof(out[i].id));
		out[i].expires = r.expires;
		out[i].last_used = r.last_used;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return n;
}

enum sts_cache_state
sts_cache_state(const struct sts_cache_entry *e, int64_t now, int margin_pct)
{
	int64_t age = (int64_t)e->pol.max_age;

	if (now >= e->expires)
		return STS_CACHE_EXPIRED;
	if (margin_pct < 0)
		margin_pct = 0;
	if (margin_pct > 100)
		margin_pct = 100;
	if (e->expires - now <= age * margin_pct / 100)
		return STS_CACHE_REFRESH;
	return STS_CACHE_FRESH;
}
