/*
 * history.c - the TLS history on LMDB (see history.h).
 *
 * Value layout (host byte order; local state only):
 *   "MXH1" | first_tls i64 | last_tls i64 | last_fail i64 | last_seen i64 |
 *   tls_count u32 | fail_count u32
 *
 * Eviction (history.h) scans the store when a newcomer finds it full and
 * drops records that expect no TLS any more (at most SCAN_DROP_MAX per
 * scan, so one write transaction stays small).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
#include "policy/history.h"
#include "policy/verdict.h"

#define MAGIC	"MXH1"
#define VAL_LEN	(4 + 4 * 8 + 2 * 4)
#define PUT_TRIES	6	/* evict-and-retry rounds on MDB_MAP_FULL (and when
				 * another worker took the room) */
#define SCAN_DROP_MAX	4096

struct history {
	MDB_env	*env;
	MDB_dbi	 dbi;
	size_t	 max_entries;
	int64_t	 window_s;
};

static void
gauge(struct history *h, MDB_txn *txn)
{
	stats_set(stats_get("mxguard_tls_history_entries",
	    "Records in the TLS history"), (int64_t)store_count(txn, h->dbi));
}

static void
count_reason(const char *family, const char *help, const char *reason)
{
	char name[120];

	snprintf(name, sizeof(name), "%s{reason=\"%s\"}", family, reason);
	stats_add(stats_get(name, help), 1);
}

static int	decode(const MDB_val *, struct history_entry *);

/* Times ahead of now (the clock stepped back since they were written, or
 * a merged Redis value within its skew) are brought back to now as the
 * record is written: it still expects TLS (history_expects_tls()), for a
 * window from now, not until a far-future time plus one. */
static void
clamp_to(struct history_entry *e, int64_t now)
{
	if (e->first_tls > now)
		e->first_tls = now;
	if (e->last_tls > now)
		e->last_tls = now;
	if (e->last_fail > now)
		e->last_fail = now;
	if (e->last_seen > now)
		e->last_seen = now;
}

struct history *
history_open_limits(const char *dir, size_t max_entries, int64_t window_s,
    size_t mapsize, char *err, size_t errsz)
{
	struct history *h;
	struct store_limits l;
	MDB_txn *txn;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	h->max_entries = max_entries ? max_entries : HISTORY_ENTRIES;
	h->window_s = window_s > 0 ? window_s : 30 * 86400;
	l.max_entries = h->max_entries;
	l.entry_max = HISTORY_KEY_MAX + VAL_LEN;
	l.mapsize = mapsize;
	if (store_open(dir, "history.mdb", &l, &h->env, &h->dbi, err,
	    errsz) == -1) {
		free(h);
		return NULL;
	}
	if (store_txn_begin(h->env, MDB_RDONLY, &txn) == 0) {
		gauge(h, txn);
		mdb_txn_abort(txn);
	}
	return h;
}

struct history *
history_open(const char *dir, char *err, size_t errsz)
{
	return history_open_limits(dir, HISTORY_ENTRIES, 30 * 86400, 0, err,
	    errsz);
}

void
history_set_window(struct history *h, int64_t window_s)
{
	if (h != NULL && window_s > 0)
		h->window_s = window_s;
}

size_t
history_count(struct history *h)
{
	MDB_txn *txn;
	size_t n;

	if (h == NULL || store_txn_begin(h->env, MDB_RDONLY, &txn) != 0)
		return 0;
	n = store_count(txn, h->dbi);
	mdb_txn_abort(txn);
	return n;
}

void
history_close(struct history *h)
{
	if (h == NULL)
		return;
	mdb_env_close(h->env);
	free(h);
}

/* history_key(), and the MX host's own record "host|" (dst NULL, host
 * not empty): whatever address the host had */
static int
hkey(const char *host, const struct sockaddr *dst, char *buf, size_t sz)
{
	char a[INET6_ADDRSTRLEN];
	int n;

	if (host != NULL && strlen(host) > 255)
		return -1;
	if (dst == NULL) {
		if (host == NULL || *host == '\0')
			return -1;
		n = snprintf(buf, sz, "%s|", host);
		return n < 0 || (size_t)n >= sz ? -1 : 0;
	}
	if (dst->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)dst)->sin_addr,
		    a, sizeof(a));
	else if (dst->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)dst)->sin6_addr, a,
		    sizeof(a));
	else
		return -1;
	n = snprintf(buf, sz, "%s|%s", host ? host : "", a);
	return n < 0 || (size_t)n >= sz ? -1 : 0;
}

int
history_key(const char *host, const struct sockaddr *dst, char *buf,
    size_t sz)
{
	if (dst == NULL)
		return -1;
	return hkey(host, dst, buf, sz);
}

static void
put64(unsigned char *p, int64_t v)
{
	memcpy(p, &v, 8);
}

static int64_t
get64(const unsigned char *p)
{
	int64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void
encode(const struct history_entry *e, unsigned char *b)
{
	memcpy(b, MAGIC, 4);
	put64(b + 4, e->first_tls);
	put64(b + 12, e->last_tls);
	put64(b + 20, e->last_fail);
	put64(b + 28, e->last_seen);
	memcpy(b + 36, &e->tls_count, 4);
	memcpy(b + 40, &e->fail_count, 4);
}

static int
time_ok(int64_t t)
{
	return t >= 0 && t <= CLOCK_TIME_MAX;
}

static int
decode(const MDB_val *v, struct history_entry *e)
{
	const unsigned char *b = v->mv_data;

	if (v->mv_size != VAL_LEN || memcmp(b, MAGIC, 4) != 0)
		return -1;
	e->first_tls = get64(b + 4);
	e->last_tls = get64(b + 12);
	e->last_fail = get64(b + 20);
	e->last_seen = get64(b + 28);
	memcpy(&e->tls_count, b + 36, 4);
	memcpy(&e->fail_count, b + 40, 4);
	/* times no clock of ours wrote (a corrupt file): unreadable, as a
	 * layout we do not know is (it may have expected TLS); taken, their
	 * differences with now (record_once()) would overflow */
	if (!time_ok(e->first_tls) || !time_ok(e->last_tls) ||
	    !time_ok(e->last_fail) || !time_ok(e->last_seen))
		return -1;
	return 0;
}

static int
get_txn(struct history *h, MDB_txn *txn, const char *key,
    struct history_entry *e)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc;

	memset(e, 0, sizeof(*e));
	if ((rc = mdb_get(txn, h->dbi, &k, &v)) == MDB_NOTFOUND)
		return 0;
	if (rc != 0) {
		store_error("history", "read", rc);
		return -1;
	}
	if (decode(&v, e) == -1) {
		memset(e, 0, sizeof(*e));
		return HISTORY_UNREADABLE;
	}
	return 1;
}

int
history_get(struct history *h, const char *host, const struct sockaddr *dst,
    struct history_entry *e)
{
	MDB_txn *txn;
	char key[512];
	int rc;

	memset(e, 0, sizeof(*e));
	if (h == NULL || hkey(host, dst, key, sizeof(key)) == -1)
		return -1;
	/* an error is never silent: history_apply() takes it for "no
	 * record" (the verdict stays as it was) */
	if ((rc = store_txn_begin(h->env, MDB_RDONLY, &txn)) != 0) {
		store_error("history", "read", rc);
		return -1;
	}
	rc = get_txn(h, txn, key, e);
	mdb_txn_abort(txn);
	return rc;
}

/* A success younger than this is not written again: the history window
 * is days, a write per delivery would be a synchronous commit each. */
#define REFRESH_S	600

/*
 * Makes room in txn for newcomers: drops records that expect no TLS any
 * more (they decide nothing) and unreadable ones, never the one being
 * written (keep).  Counts them in n[0] (unreadable) and n[1]; -1 on a
 * store error.
 */
static int
make_room(struct history *h, MDB_txn *txn, const MDB_val *keep, int64_t now,
    int n[2])
{
	MDB_cursor *cur;
	MDB_val k, v;
	struct history_entry e;
	int rc;

	if (mdb_cursor_open(txn, h->dbi, &cur) != 0)
		return -1;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0 && n[0] + n[1] < SCAN_DROP_MAX) {
		int why = -1;

		if (k.mv_size != keep->mv_size ||
		    memcmp(k.mv_data, keep->mv_data, k.mv_size) != 0) {
			if (decode(&v, &e) == -1)
				why = 0;
			else if (!history_expects_tls(&e, now, h->window_s))
				why = 1;
		}
		if (why != -1) {
			if (mdb_cursor_del(cur, 0) != 0) {
				mdb_cursor_close(cur);
				return -1;
			}
			n[why]++;
		}
		/* after a delete, MDB_NEXT yields the record that followed
		 * the deleted one */
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

static void
report(const int n[2])
{
	static const char *why[2] = { "invalid", "no-tls-in-window" };
	int i;

	for (i = 0; i < 2; i++)
		if (n[i] > 0) {
			char name[120];

			snprintf(name, sizeof(name),
			    "mxguard_tls_history_evictions_total"
			    "{reason=\"%s\"}", why[i]);
			stats_add(stats_get(name, "TLS history records "
			    "evicted from a full store"), n[i]);
		}
	if (n[0] + n[1] > 0)
		log_info("event=tls-history-evict invalid=%d "
		    "no_tls_in_window=%d", n[0], n[1]);
}

static int
admits(struct history *h, MDB_txn *txn)
{
	return store_count(txn, h->dbi) < h->max_entries &&
	    store_room(h->env);
}

/*
 * One attempt: 0 written or nothing to write, 1 refused (a newcomer, and
 * every record still expects TLS), else an LMDB error code.  Eviction runs
 * in a transaction of its own, committed before the write; force (an
 * earlier attempt hit MDB_MAP_FULL) evicts even below the bound.
 */
static int
record_once(struct history *h, const char *key, int starttls_offered,
    int tls_ok, int64_t now, struct history_entry *prev, int force,
    const struct history_entry *merge)
{
	struct history_entry e;
	unsigned char buf[VAL_LEN];
	MDB_txn *txn;
	MDB_val k, v;
	int rc, exists, n[2] = { 0, 0 };

	k.mv_size = strlen(key);
	k.mv_data = (void *)key;
	if ((rc = store_txn_begin(h->env, 0, &txn)) != 0)
		return rc;
	if ((exists = get_txn(h, txn, key, &e)) == -1) {
		mdb_txn_abort(txn);
		return MDB_PANIC;
	}
	if (prev != NULL)
		*prev = e;
	/* a record another version wrote may expect TLS: only a record
	 * that does (a success, or a merge that brings one) replaces it */
	if (exists == HISTORY_UNREADABLE && !(merge != NULL ?
	    history_expects_tls(merge, now, h->window_s) :
	    starttls_offered && tls_ok)) {
		mdb_txn_abort(txn);
		return 0;
	}
	if (merge != NULL) {
		struct history_entry m = e;

		history_entry_merge(&m, merge);
		clamp_to(&m, now);
		if (memcmp(&m, &e, sizeof(m)) == 0 ||
		    (!exists && !history_expects_tls(&m, now, h->window_s))) {
			/* nothing new; or a newcomer that decides nothing */
			mdb_txn_abort(txn);
			return 0;
		}
	} else if (starttls_offered && tls_ok && e.first_tls != 0 &&
	    now - e.last_tls >= 0 && now - e.last_tls < REFRESH_S) {
		/* nothing the window could notice: spare the disk a
		 * synchronous write per delivery */
		mdb_txn_abort(txn);
		return 0;
	}
	if (force || (!exists && !admits(h, txn))) {
		if (make_room(h, txn, &k, now, n) == -1) {
			mdb_txn_abort(txn);
			return MDB_PANIC;
		}
		if ((rc = mdb_txn_commit(txn)) != 0)
			return rc;
		report(n);
		if ((rc = store_txn_begin(h->env, 0, &txn)) != 0)
			return rc;
		/* read again: another process (a worker) may have written
		 * this key between the two transactions, and the update
		 * below must go onto its record, not over it (a TLS success
		 * lost would make the history forget the server's TLS) */
		if ((exists = get_txn(h, txn, key, &e)) == -1) {
			mdb_txn_abort(txn);
			return MDB_PANIC;
		}
		if (prev != NULL)
			*prev = e;
		if (!exists && !admits(h, txn) && n[0] + n[1] > 0) {
			/* another process (a worker) took the room between
			 * the two transactions: evict again */
			mdb_txn_abort(txn);
			return MDB_MAP_FULL;
		}
		if (!exists && !admits(h, txn)) {
			/* every record still expects TLS: keep them */
			gauge(h, txn);
			mdb_txn_abort(txn);
			return 1;
		}
	}
	if (merge != NULL) {
		history_entry_merge(&e, merge);
		clamp_to(&e, now);
	} else {
		clamp_to(&e, now);
		if (starttls_offered && tls_ok) {
			if (e.first_tls == 0)
				e.first_tls = now;
			e.last_tls = now;
			e.tls_count++;
		} else {
			e.last_fail = now;
			e.fail_count++;
		}
		e.last_seen = now;
	}
	encode(&e, buf);
	v.mv_size = sizeof(buf);
	v.mv_data = buf;
	if ((rc = mdb_put(txn, h->dbi, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	gauge(h, txn);
	return mdb_txn_commit(txn);
}

static int record(struct history *, const char *,
    const struct sockaddr *, int, int, int64_t, struct history_entry *,
    const struct history_entry *);

int
history_record(struct history *h, const char *host,
    const struct sockaddr *dst, int starttls_offered, int tls_ok,
    int64_t now, struct history_entry *prev)
{
	return record(h, host, dst, starttls_offered, tls_ok, now, prev, NULL);
}

int
history_merge(struct history *h, const struct sockaddr *dst,
    const struct history_entry *other, int64_t now)
{
	return record(h, "", dst, 0, 0, now, NULL, other);
}

int
history_merge_host(struct history *h, const char *host,
    const struct history_entry *other, int64_t now)
{
	if (host == NULL || *host == '\0')
		return -1;
	return record(h, host, NULL, 0, 0, now, NULL, other);
}

void
history_entry_merge(struct history_entry *e, const struct history_entry *o)
{
	if (o->first_tls != 0 && (e->first_tls == 0 ||
	    o->first_tls < e->first_tls))
		e->first_tls = o->first_tls;
	if (o->last_tls > e->last_tls)
		e->last_tls = o->last_tls;
	if (o->last_fail > e->last_fail)
		e->last_fail = o->last_fail;
	if (o->last_seen > e->last_seen)
		e->last_seen = o->last_seen;
	if (o->tls_count > e->tls_count)
		e->tls_count = o->tls_count;
	if (o->fail_count > e->fail_count)
		e->fail_count = o->fail_count;
}

static int
record(struct history *h, const char *host, const struct sockaddr *dst,
    int starttls_offered, int tls_ok, int64_t now,
    struct history_entry *prev, const struct history_entry *merge)
{
	char key[512], qk[600];
	const char *reason;
	int rc, i;

	if (prev != NULL)
		memset(prev, 0, sizeof(*prev));
	if (h == NULL || hkey(host, dst, key, sizeof(key)) == -1)
		return -1;
	/* MDB_MAP_FULL: the file's bound was reached before the count's;
	 * evict and retry */
	for (i = 0, rc = MDB_MAP_FULL; i < PUT_TRIES && store_full(rc); i++)
		rc = record_once(h, key, starttls_offered, tls_ok, now, prev,
		    i > 0, merge);
	if (rc == 0)
		return 0;
	reason = rc == 1 ? (history_count(h) >= h->max_entries ? "full" :
	    "map-full") : store_full(rc) ? "map-full" : "error";
	count_reason("mxguard_tls_history_refusals_total",
	    "TLS history records not written", reason);
	log_warn("event=history-refused key=%s reason=%s max_entries=%zu "
	    "detail=\"%s\"", log_q(qk, sizeof(qk), key), reason,
	    h->max_entries,
	    strcmp(reason, "full") == 0 ? "every record still expects TLS: "
	    "a newcomer never evicts one" : strcmp(reason, "map-full") == 0 ?
	    "the store file is at its bound (its last quarter is kept for "
	    "updates of the records in)" : mdb_strerror(rc == MDB_PANIC ?
	    EIO : rc));
	return -1;
}

int
history_del(struct history *h, const char *host, const struct sockaddr *dst)
{
	MDB_txn *txn;
	MDB_val k;
	char key[512];
	int rc;

	if (h == NULL || history_key(host, dst, key, sizeof(key)) == -1)
		return -1;
	if (store_txn_begin(h->env, 0, &txn) != 0)
		return -1;
	k.mv_size = strlen(key);
	k.mv_data = key;
	rc = mdb_del(txn, h->dbi, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return -1;
	}
	return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

int
history_expects_tls(const struct history_entry *e, int64_t now,
    int64_t window_s)
{
	/* A last_tls ahead of the clock is recent evidence: the clock
	 * stepped back (an NTP correction, or an attacker's unauthenticated
	 * NTP), and ignoring it would make every server forget its TLS.
	 * Redis values are brought back to now + REDIS_SKEW_S as they are
	 * read, and the next local write brings a record's times back to
	 * now (record_once()), so one ahead never pins beyond a window. */
	return e->last_tls > 0 && window_s > 0 && now - e->last_tls <=
	    window_s;
}

/* ---- the policy engine's view ----------------------------------------- */

static const char *
addr_str(const struct sockaddr *dst, char *buf, size_t sz)
{
	const void *a = dst->sa_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)dst)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)dst)->sin_addr;

	if (inet_ntop(dst->sa_family, a, buf, (socklen_t)sz) == NULL)
		snprintf(buf, sz, "?");
	return buf;
}

/* A store that cannot answer (failed: an error, else a record in a layout
 * this version cannot read) may hide a record that expects TLS: what the
 * history can demand at most is demanded. */
static void
unreadable(struct policy_verdict *v, const struct sockaddr *dst, int failed)
{
	history_unreadable(v, dst, failed ?
	    "the TLS history could not be read" : "a TLS history record is "
	    "in a layout this version cannot read (another version wrote "
	    "it)");
}

/* e, host's record (unowned: no MX host was found to own dst, and host's
 * address lookup failed), expects TLS: v requires it. */
static void
expects_tls(struct policy_verdict *v, const struct sockaddr *dst,
    const char *host, const struct history_entry *e, int64_t now,
    int64_t window_s, int unowned)
{
	char a[INET6_ADDRSTRLEN], qd[300], qm[300];

	addr_str(dst, a, sizeof(a));
	v->level = TLS_LEVEL_ENCRYPT;
	/* an MTA-STS testing policy's check stays reported (report_only is
	 * kept): the history only raises what is enforced */
	v->source = "tls-history";
	if (unowned)
		/* v->mx_host stays empty: no host was found to own dst, and
		 * the leg's attempt is recorded under the address alone */
		snprintf(v->detail, sizeof(v->detail), "%.60s completed "
		    "STARTTLS %llds ago (window %llds), its address lookup "
		    "failed: it may own [%s]: TLS required", host,
		    (long long)(now - e->last_tls), (long long)window_s, a);
	else
		snprintf(v->detail, sizeof(v->detail), "%.100s[%s] completed "
		    "STARTTLS %llds ago (history window %llds): TLS required",
		    host, a, (long long)(now - e->last_tls),
		    (long long)window_s);
	log_info("event=tls-history domain=%s mx=%s dst=%s last_tls_age=%llds "
	    "window=%llds level=encrypt%s", log_q(qd, sizeof(qd), v->domain),
	    log_q(qm, sizeof(qm), host), a, (long long)(now - e->last_tls),
	    (long long)window_s, unowned ? " note=\"no MX host found to own "
	    "the destination, and this one's address lookup failed\"" : "");
}

int
history_apply(struct history *h, int64_t window_s,
    const struct sockaddr *dst, struct policy_verdict *v)
{
	struct history_entry e;
	int64_t now = clock_now();
	int hr = 0, nr = 0, ar, failed;

	if (h == NULL || window_s <= 0 || v->level != TLS_LEVEL_MAY)
		return 0;
	/* the MX host's record at this address, the host's whatever its
	 * address (an attacker who answers the host's A query sends the
	 * mail to an address of its own, which no record knows), else the
	 * address's: a resolver that fails (or is made to fail) must not
	 * hide the history */
	if (v->mx_host[0] != '\0' && (hr = history_get(h, v->mx_host, dst,
	    &e)) == 1 && history_expects_tls(&e, now, window_s))
		goto expects;
	if (v->mx_host[0] != '\0' && (nr = history_get(h, v->mx_host, NULL,
	    &e)) == 1 && history_expects_tls(&e, now, window_s))
		goto expects;
	if ((ar = history_get(h, "", dst, &e)) == 1 &&
	    history_expects_tls(&e, now, window_s))
		goto expects;
	failed = hr == -1 || nr == -1 || ar == -1;
	if (!failed && hr != HISTORY_UNREADABLE && nr != HISTORY_UNREADABLE &&
	    ar != HISTORY_UNREADABLE)
		return 0;
	unreadable(v, dst, failed);
	return 1;
expects:
	expects_tls(v, dst, v->mx_host[0] ? v->mx_host : "-", &e, now,
	    window_s, 0);
	return 1;
}

int
history_apply_unowned(struct history *h, int64_t window_s,
    const struct sockaddr *dst, const char *host, struct policy_verdict *v)
{
	struct history_entry e;
	int64_t now = clock_now();
	int rc;

	if (h == NULL || window_s <= 0 || v->level != TLS_LEVEL_MAY ||
	    host == NULL || *host == '\0')
		return 0;
	rc = history_get(h, host, NULL, &e);
	if (rc == -1 || rc == HISTORY_UNREADABLE) {
		unreadable(v, dst, rc == -1);
		return 1;
	}
	if (rc != 1 || !history_expects_tls(&e, now, window_s))
		return 0;
	expects_tls(v, dst, host, &e, now, window_s, 1);
	return 1;
}

void
history_unreadable(struct policy_verdict *v, const struct sockaddr *dst,
    const char *why)
{
	char a[INET6_ADDRSTRLEN], qd[300], qw[200];

	if (v->level != TLS_LEVEL_MAY)
		return;
	v->level = TLS_LEVEL_ENCRYPT;
	v->source = "tls-history";
	snprintf(v->detail, sizeof(v->detail), "%s: TLS required for [%s] "
	    "until it can be", why, addr_str(dst, a, sizeof(a)));
	log_warn("event=tls-history-unreadable domain=%s dst=%s level=encrypt "
	    "detail=%s", log_q(qd, sizeof(qd), v->domain), a,
	    log_q(qw, sizeof(qw), why));
}

void
history_note(struct history *h, int64_t window_s, const struct sockaddr *dst,
    const char *mx_host, int starttls_offered, int tls_ok)
{
	struct history_entry prev;
	int64_t now = clock_now();
	char a[INET6_ADDRSTRLEN], qm[300];

	if (h == NULL || dst == NULL)
		return;
	/* per host and address, and per address alone */
	if (mx_host != NULL && *mx_host != '\0') {
		struct history_entry p2;
		int hr, ar, nr;

		/* the address's record even when a full store refused the
		 * host's: it is the one an MX name not yet seen still finds,
		 * and must not run out of its window */
		hr = history_record(h, mx_host, dst, starttls_offered, tls_ok,
		    now, &prev);
		ar = history_record(h, "", dst, starttls_offered, tls_ok, now,
		    &p2);
		if (ar == 0 && p2.last_tls > prev.last_tls)
			prev = p2;
		/* and the host's own, whatever its address */
		nr = history_record(h, mx_host, NULL, starttls_offered, tls_ok,
		    now, &p2);
		if (hr == -1 && ar == -1 && nr == -1)
			return;
		if (nr == 0 && p2.last_tls > prev.last_tls)
			prev = p2;
	} else if (history_record(h, "", dst, starttls_offered, tls_ok, now,
	    &prev) == -1)
		return;
	if (starttls_offered && tls_ok)
		return;
	if (!history_expects_tls(&prev, now, window_s))
		return;
	log_warn("event=starttls-stripped source=tls-history mx=%s dst=%s "
	    "what=%s last_tls_age=%llds window=%llds detail=\"completed "
	    "STARTTLS within the history window and now does not: treated "
	    "as stripped\"", log_q(qm, sizeof(qm), mx_host && *mx_host ?
	    mx_host : "-"),
	    addr_str(dst, a, sizeof(a)), !starttls_offered ?
	    "starttls-not-offered" : "starttls-or-handshake-failed",
	    (long long)(now - prev.last_tls), (long long)window_s);
}
