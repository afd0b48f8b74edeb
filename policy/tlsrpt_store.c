/*
 * tlsrpt_store.c - the TLSRPT counts on LMDB (see tlsrpt.h for the API,
 * tlsrpt_int.h for the layout).
 *
 * Its own environment (three named databases do not fit store_open(),
 * which opens the default one).  Every tlsrpt_record() is one write
 * transaction, on the event loop of the worker that saw the attempt.
 *
 * Durability.  The environment is opened MDB_NOSYNC: a commit writes to
 * the OS (the page cache), not to the disk, and tlsrpt_record() flushes
 * (mdb_env_sync(env, 1), tr_sync()) at most once a second: on the first
 * record after a second has passed, and tlsrpt_rec.c arms a timer for
 * the tail.  tlsrpt_mark_sent() and tlsrpt_prune() flush before they
 * return 0, tlsrpt_store_close() before it closes; tlsrpt_mark_batch()
 * when asked (report.c writes a report's delivery state with one flush
 * per (day, domain) pair, not one per value: see tlsrpt.h).  A synchronous commit
 * took 0.5-2 ms on ext4 under the one writer lock that every worker
 * shares: the whole daemon counted at most 500-1000 attempts a second
 * and each worker's loop stalled meanwhile.  What is traded: a crash or
 * kill -9 of the process loses nothing (the OS has the pages); a crash of
 * the OS or a power loss loses the commits of the last second or so, and
 * LMDB promises the file stays consistent then only where the file
 * system keeps the order of writes (lmdb.h, MDB_NOSYNC).  MDB_NOMETASYNC,
 * which keeps the file consistent everywhere, still syncs the data pages
 * at every commit (0.33 against 0.45 ms here: no cure).  A tlsrpt.mdb
 * that no longer opens after an OS crash holds counts only: removing it
 * loses the unsent reports, nothing else.  A sent mark is on disk before
 * tlsrpt_mark_sent() returns 0, so a crash neither sends a report twice
 * nor drops one because of this.
 *
 * Bounds are checked inside the write transaction.  A newcomer (a new
 * domain of the day, a new policy of a domain, a new failure bucket) is
 * stored only while
 *   - the day has fewer than max_domains domains (new domains),
 *     the domain fewer than max_policies policies (new policies),
 *     fewer than max_buckets buckets and the entry stays within
 *     max_entry bytes (new buckets),
 *   - the day's entries take less than day_bytes of the file
 *     (tr_foot(): leaf pages half full at worst, or the value's own
 *     overflow pages), day_bytes = max_domains x TR_DOMAIN_BYTES (8 KiB;
 *     40 MiB a day by default: 5000 domains of 1-2 KiB, a flood of
 *     large ones fills it with a few hundred),
 *   - and the map is less than 3/4 used (store_room()).
 * What does not fit is counted (the day's overflow_sessions, the entry's
 * detail_overflow), and the first refusal of a day for each reason is
 * logged once (event=tlsrpt-day-full, the TR_FULL_* bits of the day's
 * budget record).  An update that does not grow an entry (a success, a
 * bucket that exists) is never refused, so a full day or a full store
 * still counts every domain that made it in: the last quarter of the map
 * is kept for those copy-on-write updates.
 *
 * The "sent" database holds, besides each pair's sent mark, the delivery
 * state of tlsproxy/report.c: TR_PAIR_VALUES values per pair and
 * TR_URI_VALUES per report destination (one URI of one pair).  Those are
 * bounded per day too: a destination is counted (tlsrpt_dest_claim(),
 * the days record day | 'u') before its first value is written, at most
 * max_destinations a day (2 x max_domains by default: a wildcard
 * _smtp._tls record makes every subdomain a policy domain, each with up
 * to 8 URIs); the first refusal of a day is logged once
 * (event=tlsrpt-day-full reason=max-destinations), every one counted.
 *
 * The map is derived from the limits: TR_DAYS_MAX days (tlsrpt_retention
 * is at most 366, core/config.c; pruning runs once a day after
 * midnight, so retention + 2 days are in the file at most) of day_bytes
 * plus the sent marks and the delivery state at their bounds, and a
 * third more for the reserve above.  The
 * store is not told the retention (tlsrpt_store_open() has no such
 * argument), so the map fits the largest one: 25 GiB of address space
 * by default, which costs nothing: LMDB maps the file read-only and the
 * file grows only with what is written (a new store is 12 KiB).  The
 * disk used is at most about (retention + 2) x (day_bytes + the day's
 * sent marks and delivery state, 12.8 MiB): 9 x 51.8 MiB = 467 MiB with
 * the defaults (7 days), 19 GiB at the largest retention (366); newcomers never take
 * more than 3/4 of the map whatever happens (pruning not run, a wrong
 * estimate), updates the rest.  A map
 * that the limits would make larger than 1 TiB (256 MiB where size_t is
 * 32 bits), or a mapsize given in the limits, is used as it is, and
 * day_bytes is lowered to fit it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <lmdb.h>
#include <openssl/evp.h>

#include "core/log.h"
#include "policy/store.h"
#include "policy/tlsrpt.h"
#include "policy/tlsrpt_int.h"

static const char *const policy_type_names[TLSRPT_POLICY_NTYPES] = {
	"sts", "tlsa", "no-policy-found",
};

static const char *const result_names[TLSRPT_NRESULTS] = {
	NULL,
	"starttls-not-supported",
	"certificate-host-mismatch",
	"certificate-expired",
	"certificate-not-trusted",
	"validation-failure",
	"tlsa-invalid",
	"dnssec-invalid",
	"dane-required",
	"sts-policy-fetch-error",
	"sts-policy-invalid",
	"sts-webpki-invalid",
};

const char *
tlsrpt_policy_type_name(enum tlsrpt_policy_type t)
{
	return (unsigned)t < TLSRPT_POLICY_NTYPES ? policy_type_names[t] :
	    NULL;
}

const char *
tlsrpt_result_name(enum tlsrpt_result r)
{
	return (unsigned)r < TLSRPT_NRESULTS ? result_names[r] : NULL;
}

int64_t
tlsrpt_day(int64_t t)
{
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

void
tr_seterr(struct tlsrpt_store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
}

const char *
tlsrpt_store_error(const struct tlsrpt_store *st)
{
	return st->err;
}

/* ---- encoding helpers ---- */

static uint16_t
get16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static uint32_t
get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t
get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void
put16(unsigned char *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void
put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void
put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void
put_day(unsigned char *p, int64_t day)
{
	uint32_t d = (uint32_t)day;

	p[0] = (unsigned char)(d >> 24);
	p[1] = (unsigned char)(d >> 16);
	p[2] = (unsigned char)(d >> 8);
	p[3] = (unsigned char)d;
}

static int64_t
get_day(const unsigned char *p)
{
	return (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3]);
}

static int
day_ok(int64_t day)
{
	return day >= 0 && day <= (int64_t)UINT32_MAX;
}

/* Skips one length-prefixed string within [*pp, end); -1 if it overruns. */
static int
skip_str(const unsigned char **pp, const unsigned char *end)
{
	uint16_t n;

	if (end - *pp < 2)
		return -1;
	n = get16(*pp);
	if (end - *pp - 2 < n)
		return -1;
	*pp += 2 + n;
	return 0;
}

int
tr_entry_decode(const void *v, size_t len, struct tr_entry *e)
{
	const unsigned char *b = v, *p, *end = b + len;
	uint32_t i;
	int k;

	if (len < TR_HDR || memcmp(b, TR_MAGIC, 4) != 0)
		return -1;
	e->type = b[TR_OFF_TYPE];
	if (e->type >= TLSRPT_POLICY_NTYPES)
		return -1;
	e->successful = get64(b + TR_OFF_SUCC);
	e->failed = get64(b + TR_OFF_FAIL);
	e->detail_overflow = get64(b + TR_OFF_OVER);
	e->nbuckets = get32(b + TR_OFF_NBUCK);
	e->nstr = get16(b + TR_OFF_NSTR);
	e->nmx = get16(b + TR_OFF_NMX);
	p = e->strs = b + TR_HDR;
	for (i = 0; i < e->nstr; i++)
		if (skip_str(&p, end) == -1)
			return -1;
	e->mx = p;
	for (i = 0; i < e->nmx; i++)
		if (skip_str(&p, end) == -1)
			return -1;
	e->buckets = p;
	for (i = 0; i < e->nbuckets; i++) {
		if (end - p < 9 || p[0] == TLSRPT_SUCCESS ||
		    p[0] >= TLSRPT_NRESULTS)
			return -1;
		p += 9;
		for (k = 0; k < TR_BUCKET_STRS; k++)
			if (skip_str(&p, end) == -1)
				return -1;
	}
	if (p != end)
		return -1;
	e->end = end;
	return 0;
}

void
tr_next_str(const unsigned char **pp, struct tr_str *s)
{
	s->n = get16(*pp);
	s->p = *pp + 2;
	*pp += 2 + s->n;
}

void
tr_next_bucket(const unsigned char **pp, struct tr_bucket *bk)
{
	int k;

	bk->result = (*pp)[0];
	bk->count = get64(*pp + 1);
	*pp += 9;
	for (k = 0; k < TR_BUCKET_STRS; k++)
		tr_next_str(pp, &bk->s[k]);
}

int
tr_domain_prefix(int64_t day, const char *domain, unsigned char *buf)
{
	size_t n = strlen(domain), i;

	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (!day_ok(day) || !tlsrpt_valid_host(domain, n))
		return -1;
	put_day(buf, day);
	for (i = 0; i < n; i++)
		buf[4 + i] = (unsigned char)(domain[i] >= 'A' &&
		    domain[i] <= 'Z' ? domain[i] + 32 : domain[i]);
	buf[4 + n] = '\0';
	return (int)(4 + n + 1);
}

/* ---- open, close, sync ---- */

uint64_t
tr_foot(size_t klen, size_t vlen)
{
	size_t node = 8 + klen + vlen;

	if (node <= TR_NODE_MAX)
		return 2 * (uint64_t)(node + 2);
	return (uint64_t)(vlen + 16 + TR_PAGE - 1) / TR_PAGE * TR_PAGE +
	    2 * (uint64_t)(8 + klen + 8 + 2);
}

/* A sent mark (day | domain -> when) at its largest. */
#define SENT_FOOT	tr_foot(4 + 253, 8)
/* A delivery state value (day | state name -> int64, report.c). */
#define STATE_FOOT	tr_foot(4 + TR_STATE_NAME, 8)
#define MAP_SLACK	(16ULL << 20)	/* branch pages, free list, meta */
#define MAP_MAX		(sizeof(size_t) < 8 ? 256ULL << 20 : 1ULL << 40)

/*
 * day_bytes and the map from the limits (the head comment says why):
 * map = 4/3 x TR_DAYS_MAX x (day_bytes + sent marks + delivery state)
 * + slack, or the
 * mapsize given; day_bytes lowered until that many days fit 3/4 of it.
 */
static void
derive_bounds(struct tlsrpt_store *st)
{
	uint64_t sent = (uint64_t)st->lim.max_domains * (SENT_FOOT +
	    TR_PAIR_VALUES * STATE_FOOT) + (uint64_t)st->lim.max_destinations *
	    TR_URI_VALUES * STATE_FOOT;
	uint64_t worst, per_day, fit;

	st->day_bytes = (uint64_t)st->lim.max_domains * TR_DOMAIN_BYTES;
	/* no day can hold more than its domains' policies at their largest */
	worst = (uint64_t)st->lim.max_domains * st->lim.max_policies *
	    tr_foot(4 + 254 + 1 + 32, st->lim.max_entry);
	if (worst < st->day_bytes)
		st->day_bytes = worst;
	if (st->lim.mapsize == 0) {
		per_day = st->day_bytes + sent;
		st->lim.mapsize = (per_day * TR_DAYS_MAX + 2) / 3 * 4 +
		    MAP_SLACK;
		if (st->lim.mapsize > MAP_MAX)
			st->lim.mapsize = MAP_MAX;
		st->lim.mapsize = (st->lim.mapsize + (1 << 20) - 1) &
		    ~((uint64_t)(1 << 20) - 1);
	}
	/* the inverse: what TR_DAYS_MAX days may take of this map */
	fit = st->lim.mapsize - (st->lim.mapsize / 4 < MAP_SLACK ?
	    st->lim.mapsize / 4 : MAP_SLACK);
	fit = fit / 4 * 3 / TR_DAYS_MAX;
	fit = fit > sent ? fit - sent : 0;
	if (st->day_bytes > fit)
		st->day_bytes = fit;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
tr_dirty(const struct tlsrpt_store *st)
{
	return st->dirty;
}

int
tr_sync(struct tlsrpt_store *st, int force)
{
	uint64_t now;
	int rc;

	if (!st->dirty)
		return 0;
	now = now_ms();
	if (!force && now - st->synced_ms < 1000)
		return 0;
	if ((rc = mdb_env_sync(st->env, 1)) != 0) {
		tr_seterr(st, "sync: %s", mdb_strerror(rc));
		return -1;
	}
	st->dirty = 0;
	st->synced_ms = now;
	return 0;
}

/* After a commit of this handle. */
static void
committed(struct tlsrpt_store *st)
{
	st->dirty = 1;
}

struct tlsrpt_store *
tlsrpt_store_open(const char *dir, const struct tlsrpt_limits *lim,
    char *err, size_t errsz)
{
	struct tlsrpt_store *st;
	MDB_txn *txn = NULL;
	char path[4096];
	int rc;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	st->run_fd = -1;
	if (lim != NULL)
		st->lim = *lim;
	if (st->lim.max_domains == 0)
		st->lim.max_domains = 5000;
	if (st->lim.max_policies == 0)
		st->lim.max_policies = 4;
	if (st->lim.max_buckets == 0)
		st->lim.max_buckets = 64;
	if (st->lim.max_entry == 0)
		st->lim.max_entry = 32768;
	if (st->lim.max_destinations == 0)
		st->lim.max_destinations = st->lim.max_domains > UINT32_MAX / 2 ?
		    UINT32_MAX : 2 * st->lim.max_domains;
	derive_bounds(st);
	st->synced_ms = now_ms();
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errsz, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (snprintf(path, sizeof(path), "%s/tlsrpt.mdb", dir) >=
	    (int)sizeof(path)) {
		snprintf(err, errsz, "state_dir too long");
		goto fail;
	}
	/* no store through a symbolic link (store.c says why, and why this
	 * is defence in depth only) */
	if (store_check_files(path, err, errsz) == -1)
		goto fail;
	snprintf(st->lockpath, sizeof(st->lockpath), "%s/tlsrpt.run.lock",
	    dir);
	if ((rc = mdb_env_create(&st->env)) != 0)
		goto lmdb;
	/* MDB_NOSYNC: the head comment says what it trades */
	if ((rc = mdb_env_set_maxdbs(st->env, 3)) != 0 ||
	    (rc = mdb_env_set_mapsize(st->env, (size_t)st->lim.mapsize)) !=
	    0 || (rc = mdb_env_open(st->env, path, MDB_NOSUBDIR | MDB_NOTLS |
	    MDB_NOSYNC, 0600)) != 0)
		goto lmdb;
	/* read slots left by a killed process (a worker) pin old pages */
	(void)mdb_reader_check(st->env, NULL);
	if ((rc = store_txn_begin(st->env, 0, &txn)) != 0)
		goto lmdb;
	if ((rc = mdb_dbi_open(txn, "entries", MDB_CREATE, &st->entries)) ||
	    (rc = mdb_dbi_open(txn, "days", MDB_CREATE, &st->days)) ||
	    (rc = mdb_dbi_open(txn, "sent", MDB_CREATE, &st->sent)))
		goto lmdb;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto lmdb;
	committed(st);
	return st;
lmdb:
	snprintf(err, errsz, "opening %s: %s%s", path, mdb_strerror(rc),
	    rc == EACCES ? STORE_EACCES_HINT : "");
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (st->env != NULL)
		mdb_env_close(st->env);
	free(st);
	return NULL;
}

void
tlsrpt_store_close(struct tlsrpt_store *st)
{
	char q[300];

	if (st == NULL)
		return;
	if (tr_sync(st, 1) == -1)
		log_warn("event=tlsrpt-sync-failed error=%s",
		    log_q(q, sizeof(q), st->err));
	tlsrpt_run_unlock(st);
	mdb_env_close(st->env);
	free(st);
}

/* ---- recording ---- */

static size_t
cut(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strnlen(s, TLSRPT_FIELD_MAX + 1);
	return n > TLSRPT_FIELD_MAX ? TLSRPT_FIELD_MAX : n;
}

static void
digest_str(EVP_MD_CTX *md, const char *s)
{
	uint32_t n = (uint32_t)strlen(s);
	unsigned char l[4] = { n >> 24, n >> 16, n >> 8, n };

	EVP_DigestUpdate(md, l, 4);
	EVP_DigestUpdate(md, s, n);
}

/* The policy part of the key: type u8 | SHA-256 over the policy. */
static int
policy_digest(const struct tlsrpt_attempt *a, unsigned char *out)
{
	EVP_MD_CTX *md;
	unsigned char t = (unsigned char)a->policy_type;
	int i, ok;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, &t, 1) == 1;
	for (i = 0; ok && i < a->npolicy_strings; i++)
		digest_str(md, a->policy_strings[i]);
	/* separates the strings from the MX patterns */
	ok = ok && EVP_DigestUpdate(md, "\xff", 1) == 1;
	for (i = 0; ok && i < a->nmx_hosts; i++)
		digest_str(md, a->mx_hosts[i]);
	ok = ok && EVP_DigestFinal_ex(md, out, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* A fresh entry for the attempt's policy; NULL if it exceeds max. */
static unsigned char *
entry_new(const struct tlsrpt_attempt *a, size_t max, size_t *lenp)
{
	unsigned char *b, *p;
	size_t len = TR_HDR;
	int i;

	for (i = 0; i < a->npolicy_strings; i++)
		len += 2 + strlen(a->policy_strings[i]);
	for (i = 0; i < a->nmx_hosts; i++)
		len += 2 + strlen(a->mx_hosts[i]);
	if (len > max || (b = calloc(1, len)) == NULL)
		return NULL;
	memcpy(b, TR_MAGIC, 4);
	b[TR_OFF_TYPE] = (unsigned char)a->policy_type;
	put16(b + TR_OFF_NSTR, (uint16_t)a->npolicy_strings);
	put16(b + TR_OFF_NMX, (uint16_t)a->nmx_hosts);
	p = b + TR_HDR;
	for (i = 0; i < a->npolicy_strings; i++) {
		size_t n = strlen(a->policy_strings[i]);

		put16(p, (uint16_t)n);
		memcpy(p + 2, a->policy_strings[i], n);
		p += 2 + n;
	}
	for (i = 0; i < a->nmx_hosts; i++) {
		size_t n = strlen(a->mx_hosts[i]);

		put16(p, (uint16_t)n);
		memcpy(p + 2, a->mx_hosts[i], n);
		p += 2 + n;
	}
	*lenp = len;
	return b;
}

static const char *
bucket_field(const struct tlsrpt_attempt *a, int k)
{
	switch (k) {
	case 0: return a->sending_mta_ip;
	case 1: return a->receiving_mx_hostname;
	case 2: return a->receiving_mx_helo;
	case 3: return a->receiving_ip;
	case 4: return a->failure_reason;
	default: return a->additional_info;
	}
}

/* Offset of the attempt's bucket in the entry, or 0 if there is none. */
static size_t
bucket_find(const unsigned char *b, const struct tr_entry *e,
    const struct tlsrpt_attempt *a)
{
	const unsigned char *p = e->buckets, *start;
	struct tr_bucket bk;
	uint32_t i;
	int k;

	for (i = 0; i < e->nbuckets; i++) {
		start = p;
		tr_next_bucket(&p, &bk);
		if (bk.result != a->result)
			continue;
		for (k = 0; k < TR_BUCKET_STRS; k++) {
			const char *f = bucket_field(a, k);
			size_t n = cut(f);

			if (bk.s[k].n != n || (n > 0 &&
			    memcmp(bk.s[k].p, f, n) != 0))
				break;
		}
		if (k == TR_BUCKET_STRS)
			return (size_t)(start - b);
	}
	return 0;
}

static size_t
bucket_size(const struct tlsrpt_attempt *a)
{
	size_t len = 9;
	int k;

	for (k = 0; k < TR_BUCKET_STRS; k++)
		len += 2 + cut(bucket_field(a, k));
	return len;
}

static void
bucket_write(unsigned char *p, const struct tlsrpt_attempt *a)
{
	int k;

	p[0] = (unsigned char)a->result;
	put64(p + 1, 1);
	p += 9;
	for (k = 0; k < TR_BUCKET_STRS; k++) {
		const char *f = bucket_field(a, k);
		size_t n = cut(f);

		put16(p, (uint16_t)n);
		if (n > 0)
			memcpy(p + 2, f, n);
		p += 2 + n;
	}
}

/* Policies and failure buckets the domain holds on the day. */
static int
domain_usage(struct tlsrpt_store *st, MDB_txn *txn, const unsigned char *pfx,
    size_t plen, uint32_t *npol, uint64_t *nbuck)
{
	MDB_cursor *c;
	MDB_val k, v;
	struct tr_entry e;
	int rc;

	*npol = 0;
	*nbuck = 0;
	if ((rc = mdb_cursor_open(txn, st->entries, &c)) != 0) {
		tr_seterr(st, "cursor: %s", mdb_strerror(rc));
		return -1;
	}
	k.mv_data = (void *)pfx;
	k.mv_size = plen;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, pfx, plen) != 0)
			break;
		(*npol)++;
		if (tr_entry_decode(v.mv_data, v.mv_size, &e) == 0)
			*nbuck += e.nbuckets;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		tr_seterr(st, "cursor: %s", mdb_strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * The 16-byte records of the days database: the day's stats under
 * day (tag 0) and its byte budget under day | 'b' (tag 'b'), each led by
 * its 4-byte magic.  rec_get(): 1 with vb filled, 0 absent, -1 error.
 */
static int
rec_get(struct tlsrpt_store *st, MDB_txn *txn, int64_t day, char tag,
    const char *magic, unsigned char vb[16])
{
	unsigned char kb[5];
	MDB_val k = { tag ? 5 : 4, kb }, v;
	int rc;

	put_day(kb, day);
	kb[4] = (unsigned char)tag;
	rc = mdb_get(txn, st->days, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0) {
		tr_seterr(st, "days: %s", mdb_strerror(rc));
		return -1;
	}
	if (v.mv_size != 16 || memcmp(v.mv_data, magic, 4) != 0) {
		tr_seterr(st, "days: corrupt %s record", tag == 'b' ?
		    "budget" : tag ? "destinations" : "day");
		return -1;
	}
	memcpy(vb, v.mv_data, 16);
	return 1;
}

/* vb's first 4 bytes are set to magic here. */
static int
rec_put(struct tlsrpt_store *st, MDB_txn *txn, int64_t day, char tag,
    const char *magic, unsigned char vb[16])
{
	unsigned char kb[5];
	MDB_val k = { tag ? 5 : 4, kb }, v = { 16, vb };
	int rc;

	put_day(kb, day);
	kb[4] = (unsigned char)tag;
	memcpy(vb, magic, 4);
	if ((rc = mdb_put(txn, st->days, &k, &v, 0)) != 0) {
		tr_seterr(st, "days: %s", mdb_strerror(rc));
		return -1;
	}
	return 0;
}

static int
day_get(struct tlsrpt_store *st, MDB_txn *txn, int64_t day,
    struct tlsrpt_day_stats *ds)
{
	unsigned char vb[16];
	int rc;

	memset(ds, 0, sizeof(*ds));
	if ((rc = rec_get(st, txn, day, 0, "MXD1", vb)) != 1)
		return rc;
	ds->domains = get32(vb + 4);
	ds->overflow_sessions = get64(vb + 8);
	return 1;
}

static int
day_put(struct tlsrpt_store *st, MDB_txn *txn, int64_t day,
    const struct tlsrpt_day_stats *ds)
{
	unsigned char vb[16];

	put32(vb + 4, ds->domains);
	put64(vb + 8, ds->overflow_sessions);
	return rec_put(st, txn, day, 0, "MXD1", vb);
}

/* The day's byte budget record (tlsrpt_int.h): day | 'b'. */
struct day_budget {
	uint64_t	 bytes;
	uint32_t	 full;		/* TR_FULL_* logged */
	int		 changed;
};

static int
budget_get(struct tlsrpt_store *st, MDB_txn *txn, int64_t day,
    struct day_budget *b)
{
	unsigned char vb[16];
	int rc;

	memset(b, 0, sizeof(*b));
	if ((rc = rec_get(st, txn, day, 'b', "MXB1", vb)) != 1)
		return rc;
	b->bytes = get64(vb + 4);
	b->full = get32(vb + 12);
	return 0;
}

static int
budget_put(struct tlsrpt_store *st, MDB_txn *txn, int64_t day,
    const struct day_budget *b)
{
	unsigned char vb[16];

	if (!b->changed)
		return 0;
	put64(vb + 4, b->bytes);
	put32(vb + 12, b->full);
	return rec_put(st, txn, day, 'b', "MXB1", vb);
}

/* May a newcomer add `more` bytes to the day?  0, or the TR_FULL_* bit
 * that refuses it. */
static uint32_t
budget_room(struct tlsrpt_store *st, const struct day_budget *b,
    uint64_t more)
{
	/* bytes is read back from the file: one near UINT64_MAX (a
	 * corrupt or edited record) must not wrap below day_bytes */
	if (b->bytes > st->day_bytes || more > st->day_bytes - b->bytes)
		return TR_FULL_BYTES;
	if (!store_room(st->env))
		return TR_FULL_STORE;
	return 0;
}

/* A newcomer refused for reason `why`: logged once a day and reason. */
static void
budget_full(struct tlsrpt_store *st, int64_t day, struct day_budget *b,
    uint32_t why)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;
	char date[32] = "?";

	if (why == 0 || (b->full & why))
		return;
	b->full |= why;
	b->changed = 1;
	if (gmtime_r(&t, &tm) != NULL)
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	log_warn("event=tlsrpt-day-full day=%s reason=%s max_domains=%u "
	    "day_bytes=%llu mapsize=%llu note=\"newcomers of the day are "
	    "counted in overflow only; domains already in still count\"",
	    date, why == TR_FULL_DOMAINS ? "max-domains" :
	    why == TR_FULL_BYTES ? "day-bytes" : "store-full",
	    st->lim.max_domains, (unsigned long long)st->day_bytes,
	    (unsigned long long)st->lim.mapsize);
}

static int
attempt_ok(struct tlsrpt_store *st, const struct tlsrpt_attempt *a)
{
	int i;

	if (a == NULL || a->policy_domain == NULL) {
		tr_seterr(st, "attempt without a policy domain");
		return -1;
	}
	if ((unsigned)a->policy_type >= TLSRPT_POLICY_NTYPES ||
	    (unsigned)a->result >= TLSRPT_NRESULTS) {
		tr_seterr(st, "attempt with an unknown policy type or result");
		return -1;
	}
	if (a->npolicy_strings < 0 || a->npolicy_strings > UINT16_MAX ||
	    a->nmx_hosts < 0 || a->nmx_hosts > UINT16_MAX ||
	    (a->npolicy_strings > 0 && a->policy_strings == NULL) ||
	    (a->nmx_hosts > 0 && a->mx_hosts == NULL)) {
		tr_seterr(st, "attempt with bad policy string counts");
		return -1;
	}
	for (i = 0; i < a->npolicy_strings; i++)
		if (a->policy_strings[i] == NULL ||
		    strlen(a->policy_strings[i]) > UINT16_MAX) {
			tr_seterr(st, "policy string missing or too long");
			return -1;
		}
	for (i = 0; i < a->nmx_hosts; i++)
		if (a->mx_hosts[i] == NULL ||
		    strlen(a->mx_hosts[i]) > UINT16_MAX) {
			tr_seterr(st, "MX pattern missing or too long");
			return -1;
		}
	return 0;
}

int
tlsrpt_record(struct tlsrpt_store *st, int64_t day,
    const struct tlsrpt_attempt *a)
{
	unsigned char key[4 + 254 + 1 + 1 + 32], *b = NULL, *nb;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	struct tr_entry e;
	struct tlsrpt_day_stats ds;
	struct day_budget bud;
	size_t len = 0, off;
	uint64_t old_foot = 0, new_foot;
	uint32_t npol = 0, full = 0;
	uint64_t nbuck = 0;	/* the domain's buckets, read below */
	int plen, rc, ret = -1, new_domain = 0;
	char q[300];

	memset(&ds, 0, sizeof(ds));
	if (attempt_ok(st, a) == -1)
		return -1;
	if ((plen = tr_domain_prefix(day, a->policy_domain, key)) == -1) {
		tr_seterr(st, "bad policy domain or day");
		return -1;
	}
	key[plen] = (unsigned char)a->policy_type;
	if (policy_digest(a, key + plen + 1) == -1) {
		tr_seterr(st, "SHA-256 failed");
		return -1;
	}
	k.mv_data = key;
	k.mv_size = (size_t)plen + 1 + 32;
	if ((rc = store_txn_begin(st->env, 0, &txn)) != 0) {
		tr_seterr(st, "txn: %s", mdb_strerror(rc));
		return -1;
	}
	if (budget_get(st, txn, day, &bud) == -1)
		goto fail;
	rc = mdb_get(txn, st->entries, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		tr_seterr(st, "entries: %s", mdb_strerror(rc));
		goto fail;
	}
	if (rc == 0) {
		if (tr_entry_decode(v.mv_data, v.mv_size, &e) == -1) {
			tr_seterr(st, "entries: corrupt entry");
			goto fail;
		}
		len = v.mv_size;
		old_foot = tr_foot(k.mv_size, len);
		if ((b = malloc(len)) == NULL) {
			tr_seterr(st, "out of memory");
			goto fail;
		}
		memcpy(b, v.mv_data, len);
	} else {
		/* a new policy for the day: within the bounds? */
		if (domain_usage(st, txn, key, (size_t)plen, &npol,
		    &nbuck) == -1 || day_get(st, txn, day, &ds) == -1)
			goto fail;
		new_domain = npol == 0;
		if (new_domain && ds.domains >= st->lim.max_domains) {
			full = TR_FULL_DOMAINS;
			goto overflow;
		}
		if (npol >= st->lim.max_policies ||
		    (b = entry_new(a, st->lim.max_entry, &len)) == NULL)
			goto overflow;
		if ((full = budget_room(st, &bud, tr_foot(k.mv_size,
		    len))) != 0)
			goto overflow;
	}
	if (tr_entry_decode(b, len, &e) == -1) {
		tr_seterr(st, "entries: corrupt entry");
		goto fail;
	}
	if (a->result == TLSRPT_SUCCESS) {
		put64(b + TR_OFF_SUCC, e.successful + 1);
	} else if ((off = bucket_find(b, &e, a)) != 0) {
		put64(b + TR_OFF_FAIL, e.failed + 1);
		put64(b + off + 1, get64(b + off + 1) + 1);
	} else {
		size_t bs = bucket_size(a);

		put64(b + TR_OFF_FAIL, e.failed + 1);
		if (rc == 0 && domain_usage(st, txn, key, (size_t)plen, &npol,
		    &nbuck) == -1)
			goto fail;
		if (nbuck >= st->lim.max_buckets ||
		    len + bs > st->lim.max_entry ||
		    (full = budget_room(st, &bud, tr_foot(k.mv_size,
		    len + bs) - tr_foot(k.mv_size, len))) != 0) {
			/* the session counts, its detail does not fit */
			put64(b + TR_OFF_OVER, e.detail_overflow + 1);
		} else {
			if ((nb = realloc(b, len + bs)) == NULL) {
				tr_seterr(st, "out of memory");
				goto fail;
			}
			b = nb;
			bucket_write(b + len, a);
			len += bs;
			put32(b + TR_OFF_NBUCK, e.nbuckets + 1);
		}
	}
	v.mv_data = b;
	v.mv_size = len;
	if ((rc = mdb_put(txn, st->entries, &k, &v, 0)) != 0) {
		tr_seterr(st, "entries: %s", mdb_strerror(rc));
		goto fail;
	}
	if (new_domain) {
		ds.domains++;
		if (day_put(st, txn, day, &ds) == -1)
			goto fail;
	}
	if ((new_foot = tr_foot(k.mv_size, len)) != old_foot) {
		bud.bytes += new_foot - old_foot;	/* entries only grow */
		bud.changed = 1;
	}
	ret = 0;
	goto commit;
overflow:
	ds.overflow_sessions++;
	if (day_put(st, txn, day, &ds) == -1)
		goto fail;
	ret = 1;
commit:
	budget_full(st, day, &bud, full);
	if (budget_put(st, txn, day, &bud) == -1)
		goto fail;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0) {
		tr_seterr(st, "commit: %s", mdb_strerror(rc));
		ret = -1;
	} else {
		committed(st);
		/* at most once a second; a failed flush loses nothing yet */
		if (tr_sync(st, 0) == -1)
			log_warn("event=tlsrpt-sync-failed error=%s",
			    log_q(q, sizeof(q), st->err));
	}
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	free(b);
	return ret;
}

/* ---- reading ---- */

int
tlsrpt_counts(struct tlsrpt_store *st, int64_t day, const char *domain,
    struct tlsrpt_counts *c)
{
	unsigned char pfx[4 + 254 + 1];
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct tr_entry e;
	int plen, rc, found = 0;

	memset(c, 0, sizeof(*c));
	if ((plen = tr_domain_prefix(day, domain, pfx)) == -1) {
		tr_seterr(st, "bad domain or day");
		return -1;
	}
	if ((rc = store_txn_begin(st->env, MDB_RDONLY, &txn)) != 0) {
		tr_seterr(st, "txn: %s", mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_cursor_open(txn, st->entries, &cur)) != 0) {
		mdb_txn_abort(txn);
		tr_seterr(st, "cursor: %s", mdb_strerror(rc));
		return -1;
	}
	k.mv_data = pfx;
	k.mv_size = (size_t)plen;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < (size_t)plen ||
		    memcmp(k.mv_data, pfx, (size_t)plen) != 0)
			break;
		if (tr_entry_decode(v.mv_data, v.mv_size, &e) == -1)
			continue;
		found = 1;
		c->policies++;
		c->buckets += e.nbuckets;
		c->successful += e.successful;
		c->failed += e.failed;
		c->detail_overflow += e.detail_overflow;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return found;
}

int
tlsrpt_day_stats(struct tlsrpt_store *st, int64_t day,
    struct tlsrpt_day_stats *ds)
{
	unsigned char vb[16];
	MDB_txn *txn;
	int rc;

	memset(ds, 0, sizeof(*ds));
	if (!day_ok(day)) {
		tr_seterr(st, "bad day");
		return -1;
	}
	if ((rc = store_txn_begin(st->env, MDB_RDONLY, &txn)) != 0) {
		tr_seterr(st, "txn: %s", mdb_strerror(rc));
		return -1;
	}
	rc = day_get(st, txn, day, ds);
	if (rc != -1 && (rc = rec_get(st, txn, day, 'u', "MXU1", vb)) == 1) {
		ds->destinations = get32(vb + 4);
		ds->destinations_refused = get32(vb + 8);
	}
	mdb_txn_abort(txn);
	return rc == -1 ? -1 : 0;
}

/* The first refusal of a day: why later URIs of the day are skipped. */
static void
dests_full_log(struct tlsrpt_store *st, int64_t day)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;
	char date[32] = "?";

	if (gmtime_r(&t, &tm) != NULL)
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	log_warn("event=tlsrpt-day-full day=%s reason=max-destinations "
	    "max_destinations=%u note=\"the day's report URIs not tried yet "
	    "are skipped (mxguard_tlsrpt_destinations_refused_total); those "
	    "already tried go on\"", date, st->lim.max_destinations);
}

int
tlsrpt_dest_claim(struct tlsrpt_store *st, int64_t day)
{
	unsigned char vb[16];
	MDB_txn *txn;
	uint32_t n = 0, refused = 0, full = 0;
	int rc, ret;

	if (!day_ok(day)) {
		tr_seterr(st, "bad day");
		return -1;
	}
	if ((rc = store_txn_begin(st->env, 0, &txn)) != 0) {
		tr_seterr(st, "txn: %s", mdb_strerror(rc));
		return -1;
	}
	if ((rc = rec_get(st, txn, day, 'u', "MXU1", vb)) == -1)
		goto fail;
	if (rc == 1) {
		n = get32(vb + 4);
		refused = get32(vb + 8);
		full = get32(vb + 12);
	}
	if (n < st->lim.max_destinations) {
		n++;
		ret = 1;
	} else {
		refused++;
		ret = 0;
		if (!full)
			dests_full_log(st, day);
		full = 1;
	}
	put32(vb + 4, n);
	put32(vb + 8, refused);
	put32(vb + 12, full);
	if (rec_put(st, txn, day, 'u', "MXU1", vb) == -1)
		goto fail;
	if ((rc = mdb_txn_commit(txn)) != 0) {
		tr_seterr(st, "commit: %s", mdb_strerror(rc));
		return -1;
	}
	committed(st);
	return ret;
fail:
	mdb_txn_abort(txn);
	return -1;
}

/* ---- sent, due, prune ---- */

static int
sent_key(int64_t day, const char *domain, unsigned char *buf, MDB_val *k)
{
	int plen = tr_domain_prefix(day, domain, buf);

	if (plen == -1)
		return -1;
	k->mv_data = buf;
	k->mv_size = (size_t)plen - 1;	/* without the NUL */
	return 0;
}

int
tlsrpt_mark_batch(struct tlsrpt_store *st, int64_t day,
    const struct tlsrpt_mark *m, size_t n, int sync)
{
	unsigned char kb[4 + 254 + 1];
	MDB_txn *txn;
	MDB_val k, v;
	int64_t when;
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		if (m[i].domain == NULL || sent_key(day, m[i].domain, kb,
		    &k) == -1) {
			tr_seterr(st, "bad domain or day");
			return -1;
		}
	if (n > 0) {
		if ((rc = store_txn_begin(st->env, 0, &txn)) != 0) {
			tr_seterr(st, "txn: %s", mdb_strerror(rc));
			return -1;
		}
		for (i = 0; i < n; i++) {
			(void)sent_key(day, m[i].domain, kb, &k);
			when = m[i].when;
			v.mv_size = 8;
			v.mv_data = &when;
			if ((rc = mdb_put(txn, st->sent, &k, &v, 0)) != 0) {
				mdb_txn_abort(txn);
				tr_seterr(st, "sent: %s", mdb_strerror(rc));
				return -1;
			}
		}
		if ((rc = mdb_txn_commit(txn)) != 0) {
			tr_seterr(st, "commit: %s", mdb_strerror(rc));
			return -1;
		}
		committed(st);
	}
	/* with sync, on disk before the caller goes on: a sent mark then
	 * never goes missing in a crash after the report went out */
	return sync ? tr_sync(st, 1) : 0;
}

int
tlsrpt_mark_sent(struct tlsrpt_store *st, int64_t day, const char *domain,
    int64_t when)
{
	struct tlsrpt_mark m = { domain, when };

	return tlsrpt_mark_batch(st, day, &m, 1, 1);
}

int
tlsrpt_run_lock(struct tlsrpt_store *st)
{
	int fd;

	if (st->run_fd >= 0)
		return 0;	/* a run of this handle */
	/* not through a symbolic link: the file is made in state_dir */
	if ((fd = open(st->lockpath, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		tr_seterr(st, "%s: %s", st->lockpath, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int e = errno;

		close(fd);
		if (e == EWOULDBLOCK)
			return 0;
		tr_seterr(st, "%s: lock: %s", st->lockpath, strerror(e));
		return -1;
	}
	st->run_fd = fd;
	return 1;
}

void
tlsrpt_run_unlock(struct tlsrpt_store *st)
{
	if (st->run_fd >= 0)
		close(st->run_fd);	/* the lock goes with it */
	st->run_fd = -1;
}

int
tlsrpt_store_sync(struct tlsrpt_store *st)
{
	return tr_sync(st, 1);
}

static int
is_sent(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, int64_t *when)
{
	MDB_val v;
	int rc = mdb_get(txn, dbi, k, &v);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0 || v.mv_size != 8)
		return -1;
	if (when != NULL)
		memcpy(when, v.mv_data, 8);
	return 1;
}

int
tlsrpt_is_sent(struct tlsrpt_store *st, int64_t day, const char *domain,
    int64_t *when)
{
	unsigned char kb[4 + 254 + 1];
	MDB_txn *txn;
	MDB_val k;
	int rc;

	if (sent_key(day, domain, kb, &k) == -1) {
		tr_seterr(st, "bad domain or day");
		return -1;
	}
	if ((rc = store_txn_begin(st->env, MDB_RDONLY, &txn)) != 0) {
		tr_seterr(st, "txn: %s", mdb_strerror(rc));
		return -1;
	}
	rc = is_sent(txn, st->sent, &k, when);
	mdb_txn_abort(txn);
	if (rc == -1)
		tr_seterr(st, "sent: unreadable record");
	return rc;
}

long
tlsrpt_due_list(struct tlsrpt_store *st, int64_t today,
    struct tlsrpt_due *out, size_t max, size_t *n)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v, sk;
	unsigned char last[4 + 254 + 1];
	char dom[254], q[600];
	size_t lastlen = 0, dlen;
	long due = 0;
	int rc, s;

	*n = 0;
	if ((rc = store_txn_begin(st->env, MDB_RDONLY, &txn)) != 0) {
		tr_seterr(st, "txn: %s", mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_cursor_open(txn, st->entries, &c)) != 0) {
		mdb_txn_abort(txn);
		tr_seterr(st, "cursor: %s", mdb_strerror(rc));
		return -1;
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const unsigned char *kp = k.mv_data;
		const unsigned char *nul;

		if (k.mv_size < 4 + 1 + 1 + 32)
			continue;
		if (get_day(kp) >= today)
			break;
		if ((nul = memchr(kp + 4, '\0', k.mv_size - 4)) == NULL)
			continue;
		dlen = (size_t)(nul - kp) - 4;
		if (dlen > 253)
			continue;
		if (lastlen == 4 + dlen && memcmp(last, kp, lastlen) == 0)
			continue;	/* another policy of the same pair */
		lastlen = 4 + dlen;
		memcpy(last, kp, lastlen);
		sk.mv_data = last;
		sk.mv_size = lastlen;
		/* a mark that does not read back (a corrupt file, another
		 * version's value) failed the whole list: every report run
		 * failed before it started, no report was sent again and
		 * the store, pruned after a run only, was never pruned.
		 * Listed as due instead: the pair's delivery state says
		 * which URIs have its report (none gets it twice), and its
		 * sent mark, written when it ends, replaces this one */
		if ((s = is_sent(txn, st->sent, &sk, NULL)) == -1) {
			memcpy(dom, kp + 4, dlen);
			dom[dlen] = '\0';
			log_warn("event=tlsrpt-sent-corrupt day=%lld "
			    "domain=%s note=\"an unreadable sent mark: the "
			    "pair is taken as not sent\"",
			    (long long)get_day(kp), log_q(q, sizeof(q), dom));
			s = 0;
		}
		if (s == 1)
			continue;
		due++;
		if (*n < max) {
			out[*n].day = get_day(kp);
			memcpy(out[*n].domain, kp + 4, dlen);
			out[*n].domain[dlen] = '\0';
			(*n)++;
		}
	}
	if (due != -1 && rc != 0 && rc != MDB_NOTFOUND) {
		tr_seterr(st, "cursor: %s", mdb_strerror(rc));
		due = -1;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return due;
}

long
tlsrpt_day_domains(struct tlsrpt_store *st, int64_t day, char (*out)[254],
    size_t max, size_t *n)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char start[4];
	char last[254] = "";
	size_t dlen;
	long all = 0;
	int rc;

	*n = 0;
	put_day(start, day);
	if ((rc = store_txn_begin(st->env, MDB_RDONLY, &txn)) != 0) {
		tr_seterr(st, "txn: %s", mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_cursor_open(txn, st->entries, &c)) != 0) {
		mdb_txn_abort(txn);
		tr_seterr(st, "cursor: %s", mdb_strerror(rc));
		return -1;
	}
	k.mv_data = start;
	k.mv_size = sizeof(start);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const unsigned char *kp = k.mv_data;
		const unsigned char *nul;

		if (k.mv_size < 4 + 1 + 1 + 32 || get_day(kp) != day)
			break;
		if ((nul = memchr(kp + 4, '\0', k.mv_size - 4)) == NULL)
			continue;
		dlen = (size_t)(nul - kp) - 4;
		if (dlen > 253 || (strlen(last) == dlen &&
		    memcmp(last, kp + 4, dlen) == 0))
			continue;	/* another policy of the same domain */
		memcpy(last, kp + 4, dlen);
		last[dlen] = '\0';
		all++;
		if (*n < max)
			memcpy(out[(*n)++], last, dlen + 1);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return all;
}

/* Deletes the records of days before cutoff from one database. */
static long
prune_dbi(struct tlsrpt_store *st, MDB_txn *txn, MDB_dbi dbi, int64_t cutoff)
{
	MDB_cursor *c;
	MDB_val k, v;
	long n = 0;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0) {
		tr_seterr(st, "cursor: %s", mdb_strerror(rc));
		return -1;
	}
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
		if (k.mv_size < 4 || get_day(k.mv_data) >= cutoff)
			break;
		/* a day's budget record (day | 'b') goes with the day,
		 * uncounted: it is no record of the API's */
		if (dbi == st->days && k.mv_size != 4) {
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			continue;
		}
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		n++;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		tr_seterr(st, "prune: %s", mdb_strerror(rc));
		return -1;
	}
	return n;
}

long
tlsrpt_prune(struct tlsrpt_store *st, int64_t today, int retention_days)
{
	MDB_txn *txn;
	int64_t cutoff = today - (retention_days < 0 ? 0 : retention_days);
	long n = 0, r;
	int rc;

	if ((rc = store_txn_begin(st->env, 0, &txn)) != 0) {
		tr_seterr(st, "txn: %s", mdb_strerror(rc));
		return -1;
	}
	if ((r = prune_dbi(st, txn, st->entries, cutoff)) == -1)
		goto fail;
	n += r;
	if ((r = prune_dbi(st, txn, st->sent, cutoff)) == -1)
		goto fail;
	n += r;
	if ((r = prune_dbi(st, txn, st->days, cutoff)) == -1)
		goto fail;
	n += r;
	if ((rc = mdb_txn_commit(txn)) != 0) {
		tr_seterr(st, "commit: %s", mdb_strerror(rc));
		return -1;
	}
	committed(st);
	return tr_sync(st, 1) == -1 ? -1 : n;
fail:
	mdb_txn_abort(txn);
	return -1;
}
