// WRAP: mdb_env_sync
/*
 * test_tlsrpt_store.c - the TLSRPT store under load: its bounds fit its
 * map, a full day or a full store still counts the domains already in,
 * and recording does not wait for the disk (policy/tlsrpt_store.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "policy/tlsrpt.h"
#include "policy/tlsrpt_int.h"

/* flushes to disk, counted */
static int env_syncs;

int __real_mdb_env_sync(MDB_env *, int);
int __wrap_mdb_env_sync(MDB_env *, int);

int
__wrap_mdb_env_sync(MDB_env *env, int force)
{
	env_syncs++;
	return __real_mdb_env_sync(env, force);
}

#define DAY	19844		/* 2024-05-01 */

static char dir[128];

/* base: a file system that syncs for real for the timing test, RAM for
 * the large ones */
static int
mkdir_in(const char *base)
{
	snprintf(dir, sizeof(dir), "%s/mxg-tlsrpt-store-XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		snprintf(dir, sizeof(dir), "/tmp/mxg-tlsrpt-store-XXXXXX");
		if (mkdtemp(dir) == NULL)
			return -1;
	}
	return 0;
}

static int
setup_shm(void **state)
{
	return mkdir_in("/dev/shm");
}

static int
setup_disk(void **state)
{
	return mkdir_in("/var/tmp");
}

static int saved_fd = -1;
static char logpath[160];

static int
teardown(void **state)
{
	char cmd[200], line[1024];
	FILE *f;

	/* a test that failed while the log was captured: stderr back, and
	 * what cmocka said there with it */
	if (saved_fd >= 0) {
		fflush(stderr);
		dup2(saved_fd, 2);
		close(saved_fd);
		saved_fd = -1;
		if ((f = fopen(logpath, "r")) != NULL) {
			while (fgets(line, sizeof(line), f) != NULL)
				if (strstr(line, "day-full") == NULL)
					fputs(line, stderr);
			fclose(f);
		}
		unlink(logpath);
	}

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct tlsrpt_store *
open_store(const struct tlsrpt_limits *lim)
{
	char err[256];
	struct tlsrpt_store *st = tlsrpt_store_open(dir, lim, err, sizeof(err));

	if (st == NULL)
		fail_msg("open: %s", err);
	return st;
}

static int
rec(struct tlsrpt_store *st, int64_t day, const struct tlsrpt_attempt *a)
{
	int r = tlsrpt_record(st, day, a);

	if (r == -1)
		fail_msg("tlsrpt_record(day %lld, %s) failed: %s",
		    (long long)day, a->policy_domain,
		    tlsrpt_store_error(st));
	return r;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* stderr (the log) into a file while a test runs, and back. */
static void
log_capture(void)
{
	int fd;

	snprintf(logpath, sizeof(logpath), "%s.log", dir);
	fflush(stderr);
	saved_fd = dup(2);
	assert_true(saved_fd >= 0);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
}

/* Restores stderr; the lines of the capture that contain s. */
static int
log_count(const char *s)
{
	char line[1024];
	FILE *f;
	int n = 0;

	fflush(stderr);
	assert_int_equal(dup2(saved_fd, 2), 2);
	close(saved_fd);
	saved_fd = -1;
	assert_non_null(f = fopen(logpath, "r"));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, s) != NULL)
			n++;
	fclose(f);
	unlink(logpath);
	return n;
}

/* The file's pages in use: its high-water mark. */
static uint64_t
file_used(struct tlsrpt_store *st)
{
	MDB_envinfo ei;

	assert_int_equal(mdb_env_info(st->env, &ei), 0);
	return ((uint64_t)ei.me_last_pgno + 1) * TR_PAGE;
}

/* ---- the attacker and the legitimate domains ---- */

static char big[12][2501];
static char fr[3][256];

static void
big_init(void)
{
	int i;

	for (i = 0; i < 12; i++) {
		memset(big[i], 'a' + i, 2500);
		big[i][2500] = '\0';
		memcpy(big[i], "3 1 1 ", 6);
	}
	for (i = 0; i < 3; i++) {
		memset(fr[i], 'x' + i, 255);
		fr[i][255] = '\0';
	}
}

/*
 * A domain as an attacker makes it, near every per-domain bound: 4 tlsa
 * policies (one per MX host) of 30 KB each, a failure bucket of long
 * strings in each.  Returns what the first attempt of the domain got.
 */
static int
attack(struct tlsrpt_store *st, int64_t day, const char *domain)
{
	const char *strs[12], *mx[1];
	char mxh[160];
	struct tlsrpt_attempt a;
	int p, i, r, first = -2;

	for (i = 0; i < 12; i++)
		strs[i] = big[i];
	for (p = 0; p < 4; p++) {
		snprintf(mxh, sizeof(mxh), "mx%d.%s", p, domain);
		mx[0] = mxh;
		memset(&a, 0, sizeof(a));
		a.policy_domain = domain;
		a.policy_type = TLSRPT_POLICY_TLSA;
		a.policy_strings = strs;
		a.npolicy_strings = 12;
		a.mx_hosts = mx;
		a.nmx_hosts = 1;
		a.result = TLSRPT_SUCCESS;
		r = rec(st, day, &a);
		if (first == -2)
			first = r;
		if (r == 1)
			return first;
		a.result = TLSRPT_TLSA_INVALID;
		a.receiving_mx_hostname = mxh;
		a.failure_reason = fr[0];
		a.additional_info = fr[1];
		a.receiving_mx_helo = fr[2];
		(void)rec(st, day, &a);
	}
	return first;
}

static const char *const sts_lines[] = {
	"version: STSv1", "mode: enforce", "mx: mx.legit.example",
	"max_age: 86400",
};
static const char *const sts_mx[] = { "mx.legit.example" };

static void
legit(struct tlsrpt_attempt *a, const char *domain, enum tlsrpt_result r)
{
	memset(a, 0, sizeof(*a));
	a->policy_domain = domain;
	a->policy_type = TLSRPT_POLICY_STS;
	a->policy_strings = sts_lines;
	a->npolicy_strings = 4;
	a->mx_hosts = sts_mx;
	a->nmx_hosts = 1;
	a->result = r;
	a->receiving_ip = "192.0.2.25";
	if (r != TLSRPT_SUCCESS)
		a->failure_reason = "certificate expired";
}

/*
 * The default limits and a flood of large domains, three days long (the
 * reviewer's run hit MDB_MAP_FULL on the fourth day, and then every
 * record failed).  Each day the flood fills what the day may take and is
 * refused from then on; the domain that was there before the flood still
 * counts, successes and failures; a newcomer of a full day is counted in
 * the day's overflow (and the day is logged as full once); the next day
 * takes newcomers again; and what three
 * full days took of the file, TR_DAYS_MAX days would take of 3/4 of the
 * map at most.
 */
static void
test_flood_default_limits(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_attempt a;
	struct tlsrpt_counts c;
	struct tlsrpt_day_stats ds0, ds1;
	char domain[128];
	uint64_t used;
	int64_t day;
	int i, r;

	big_init();
	log_capture();
	for (day = DAY; day < DAY + 3; day++) {
		legit(&a, "legit.example", TLSRPT_SUCCESS);
		assert_int_equal(rec(st, day, &a), 0);
		for (i = 0; i < 6000; i++) {
			snprintf(domain, sizeof(domain),
			    "a%d.d%lld.attack.example", i, (long long)day);
			if ((r = attack(st, day, domain)) == 1)
				break;
			assert_int_equal(r, 0);
		}
		assert_true(i < 6000);		/* the day filled up */
		/* what a large domain no longer fits, small ones fill */
		for (i = 0; i < 6000; i++) {
			snprintf(domain, sizeof(domain),
			    "s%d.d%lld.attack.example", i, (long long)day);
			memset(&a, 0, sizeof(a));
			a.policy_domain = domain;
			a.policy_type = TLSRPT_POLICY_NONE;
			if (rec(st, day, &a) == 1)
				break;
		}
		assert_true(i < 1000);
		/* the domain already in: counted in detail, also now */
		legit(&a, "legit.example", TLSRPT_SUCCESS);
		assert_int_equal(rec(st, day, &a), 0);
		legit(&a, "legit.example", TLSRPT_CERTIFICATE_EXPIRED);
		assert_int_equal(rec(st, day, &a), 0);
		assert_int_equal(rec(st, day, &a), 0);
		assert_int_equal(tlsrpt_counts(st, day, "legit.example", &c),
		    1);
		assert_int_equal(c.successful, 2);
		assert_int_equal(c.failed, 2);
		/* its failure has a bucket, or, if the day had no room
		 * for one, is in detail_overflow; never lost */
		assert_true((c.buckets == 1 && c.detail_overflow == 0) ||
		    (c.buckets == 0 && c.detail_overflow == 2));
		/* a newcomer of the full day: counted in the overflow */
		assert_int_equal(tlsrpt_day_stats(st, day, &ds0), 0);
		legit(&a, "late.example", TLSRPT_CERTIFICATE_EXPIRED);
		assert_int_equal(rec(st, day, &a), 1);
		assert_int_equal(tlsrpt_day_stats(st, day, &ds1), 0);
		assert_int_equal(ds1.overflow_sessions,
		    ds0.overflow_sessions + 1);
		assert_int_equal(ds1.domains, ds0.domains);
		assert_int_equal(tlsrpt_counts(st, day, "late.example", &c),
		    0);
	}
	/* each full day logged once, not once per refusal */
	assert_int_equal(log_count("event=tlsrpt-day-full"), 3);
	/* the next day is not starved by the flood of the days before */
	legit(&a, "late.example", TLSRPT_CERTIFICATE_EXPIRED);
	assert_int_equal(rec(st, day, &a), 0);
	assert_int_equal(tlsrpt_counts(st, day, "late.example", &c), 1);
	assert_int_equal(c.failed, 1);
	assert_int_equal(c.buckets, 1);
	/* the bounds fit the map: TR_DAYS_MAX days like these within the
	 * part of the map newcomers may take */
	used = file_used(st);
	print_message("3 flooded days: %llu MiB of the file, map %llu MiB, "
	    "day budget %llu MiB\n", (unsigned long long)(used >> 20),
	    (unsigned long long)(st->lim.mapsize >> 20),
	    (unsigned long long)(st->day_bytes >> 20));
	assert_true(used / 3 * TR_DAYS_MAX <= st->lim.mapsize / 4 * 3);
	tlsrpt_store_close(st);
}

/*
 * A store that does fill (days never pruned, more than TR_DAYS_MAX of
 * them, in a small map): newcomers are refused and counted in the day's
 * overflow, never an error; the domains already in keep counting, many
 * times over, from the reserve; pruning makes room again.
 */
static void
test_store_full_keeps_counting(void **state)
{
	struct tlsrpt_limits lim = { .max_domains = 8,
	    .mapsize = 32 << 20 };
	struct tlsrpt_store *st = open_store(&lim);
	struct tlsrpt_attempt a;
	struct tlsrpt_counts c;
	struct tlsrpt_day_stats ds;
	const char *strs[1];
	char domain[64], pol[3001];
	int64_t day, full = -1;
	int i, r;

	memset(pol, 'p', 3000);
	pol[3000] = '\0';
	strs[0] = pol;
	for (day = DAY; day < DAY + 5000 && full == -1; day++)
		for (i = 0; i < 8; i++) {
			snprintf(domain, sizeof(domain), "d%d.example", i);
			memset(&a, 0, sizeof(a));
			a.policy_domain = domain;
			a.policy_type = TLSRPT_POLICY_STS;
			a.policy_strings = strs;
			a.npolicy_strings = 1;
			r = rec(st, day, &a);
			if (r == 1 && i == 0) {
				full = day;	/* not the day's bound */
				break;
			}
		}
	assert_true(full != -1);
	print_message("store full after %lld days (day budget %llu)\n",
	    (long long)(full - DAY), (unsigned long long)st->day_bytes);
	assert_true(full - DAY >= TR_DAYS_MAX);
	assert_int_equal(tlsrpt_day_stats(st, full, &ds), 0);
	assert_int_equal(ds.overflow_sessions, 1);
	/* the domains of the day before keep counting: successes and
	 * failures of a bucket that exists, a thousand times each */
	memset(&a, 0, sizeof(a));
	a.policy_domain = "d0.example";
	a.policy_type = TLSRPT_POLICY_STS;
	a.policy_strings = strs;
	a.npolicy_strings = 1;
	assert_int_equal(tlsrpt_counts(st, full - 1, "d0.example", &c), 1);
	for (i = 0; i < 1000; i++) {
		a.result = TLSRPT_SUCCESS;
		assert_int_equal(rec(st, full - 1, &a), 0);
		a.result = TLSRPT_CERTIFICATE_EXPIRED;
		a.receiving_ip = "192.0.2.1";
		assert_int_equal(rec(st, full - 1, &a), 0);
		a.receiving_ip = NULL;
		/* and a newcomer is refused each time, no error */
		snprintf(domain, sizeof(domain), "n%d.example", i);
		a.policy_domain = domain;
		assert_int_equal(rec(st, full, &a), 1);
		a.policy_domain = "d0.example";
	}
	assert_int_equal(tlsrpt_counts(st, full - 1, "d0.example", &c), 1);
	assert_int_equal(c.successful, 1000 + 1);
	assert_int_equal(c.failed, 1000);
	assert_int_equal(tlsrpt_day_stats(st, full, &ds), 0);
	assert_int_equal(ds.overflow_sessions, 1 + 1000);
	/* pruning the old days gives newcomers room again */
	assert_true(tlsrpt_prune(st, full, 7) > 0);
	a.policy_domain = "again.example";
	assert_int_equal(rec(st, full, &a), 0);
	tlsrpt_store_close(st);
}

/*
 * Recording does not wait for the disk: 10000 records on a disk file
 * system (/var/tmp) in well under a second; with a synchronous commit
 * (0.3-2 ms each on ext4) they took 3.4 s and more.  Proved by what the
 * store does, not by the time (a loaded machine takes seconds either
 * way; speed is the benchmarks'): commits are not synchronous
 * (MDB_NOSYNC), and the records flushed to disk (mdb_env_sync()) at most
 * once a second.  Everything counted is there after closing and
 * reopening; a sent mark is on disk when tlsrpt_mark_sent() returns.
 */
static void
test_fast_and_durable(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_attempt a;
	struct tlsrpt_counts c;
	char domain[64];
	double t0, dt;
	int i, n = 10000, syncs;
	unsigned int flags;

	assert_int_equal(mdb_env_get_flags(st->env, &flags), 0);
	assert_true(flags & MDB_NOSYNC);
	syncs = env_syncs;
	t0 = now_s();
	for (i = 0; i < n; i++) {
		snprintf(domain, sizeof(domain), "d%d.example", i % 50);
		legit(&a, domain, i % 5 == 0 ? TLSRPT_CERTIFICATE_EXPIRED :
		    TLSRPT_SUCCESS);
		assert_int_equal(rec(st, DAY, &a), 0);
	}
	dt = now_s() - t0;
	syncs = env_syncs - syncs;
	print_message("%d records in %.3f s, %d flushes (%s)\n", n, dt, syncs,
	    dir);
	/* once a second at most (and a second's slack for the clocks'
	 * roundings), never once a record */
	assert_true(syncs <= 2 + (int)dt);
	assert_int_equal(tr_dirty(st), 1);	/* the last second's */
	assert_int_equal(tlsrpt_mark_sent(st, DAY, "d1.example", 1), 0);
	assert_int_equal(tr_dirty(st), 0);	/* flushed with the mark */
	legit(&a, "d1.example", TLSRPT_SUCCESS);
	assert_int_equal(rec(st, DAY, &a), 0);
	tlsrpt_store_close(st);			/* flushes */

	st = open_store(NULL);
	for (i = 0; i < 50; i++) {
		snprintf(domain, sizeof(domain), "d%d.example", i);
		assert_int_equal(tlsrpt_counts(st, DAY, domain, &c), 1);
		assert_int_equal(c.successful + c.failed,
		    (uint64_t)(n / 50 + (i == 1)));
		assert_int_equal(c.failed, i % 5 == 0 ? n / 50 : 0);
	}
	assert_int_equal(tlsrpt_is_sent(st, DAY, "d1.example", NULL), 1);
	tlsrpt_store_close(st);
}

/*
 * Several values in one transaction: all or none (a name that is no host
 * name fails the batch before anything is written), flushed to disk only
 * when asked (tlsrpt_mark_batch() with sync, tlsrpt_store_sync()), so
 * that a report's delivery state costs one flush per pair, not one per
 * value (tlsproxy/report.c).
 */
static void
test_mark_batch(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_mark m[3] = {
		{ "f-0123.tlsrpt.invalid", 11 },
		{ "t-0123.tlsrpt.invalid", 2 },
		{ "n-0123.tlsrpt.invalid", 33 },
	};
	struct tlsrpt_mark bad[2] = {
		{ "g-0123.tlsrpt.invalid", 44 },
		{ "not a host name", 55 },
	};
	int64_t v;

	(void)state;
	assert_int_equal(tlsrpt_store_sync(st), 0);	/* the open's */
	assert_int_equal(tr_dirty(st), 0);
	assert_int_equal(tlsrpt_mark_batch(st, DAY, m, 3, 0), 0);
	assert_int_equal(tr_dirty(st), 1);	/* not flushed */
	assert_int_equal(tlsrpt_is_sent(st, DAY, "t-0123.tlsrpt.invalid",
	    &v), 1);
	assert_int_equal(v, 2);
	assert_int_equal(tlsrpt_is_sent(st, DAY, "n-0123.tlsrpt.invalid",
	    &v), 1);
	assert_int_equal(v, 33);
	assert_int_equal(tlsrpt_store_sync(st), 0);
	assert_int_equal(tr_dirty(st), 0);

	assert_int_equal(tlsrpt_mark_batch(st, DAY, bad, 2, 1), -1);
	assert_int_equal(tlsrpt_is_sent(st, DAY, "g-0123.tlsrpt.invalid",
	    NULL), 0);
	assert_int_equal(tr_dirty(st), 0);

	m[0].domain = "d1.example";	/* a sent mark among the values */
	assert_int_equal(tlsrpt_mark_batch(st, DAY, m, 1, 1), 0);
	assert_int_equal(tr_dirty(st), 0);	/* flushed with it */
	assert_int_equal(tlsrpt_mark_batch(st, DAY, m, 0, 1), 0);
	tlsrpt_store_close(st);

	st = open_store(NULL);
	assert_int_equal(tlsrpt_is_sent(st, DAY, "f-0123.tlsrpt.invalid",
	    &v), 1);
	assert_int_equal(v, 11);
	assert_int_equal(tlsrpt_is_sent(st, DAY, "d1.example", NULL), 1);
	tlsrpt_store_close(st);
}

/*
 * The day's report destinations (tlsrpt_dest_claim()): max_destinations
 * claimed, then refused and counted, the refusal logged once a day; each
 * day on its own; pruned with the day.  The default is 2 x max_domains.
 */
static void
test_destination_bound(void **state)
{
	struct tlsrpt_limits lim = { .max_domains = 3,
	    .max_destinations = 2 };
	struct tlsrpt_store *st = open_store(&lim);
	struct tlsrpt_day_stats ds;
	int i;

	log_capture();
	assert_int_equal(tlsrpt_dest_claim(st, DAY), 1);
	assert_int_equal(tlsrpt_dest_claim(st, DAY), 1);
	for (i = 0; i < 5; i++)
		assert_int_equal(tlsrpt_dest_claim(st, DAY), 0);
	assert_int_equal(tlsrpt_dest_claim(st, DAY + 1), 1);
	assert_int_equal(log_count("reason=max-destinations"), 1);
	assert_int_equal(tlsrpt_day_stats(st, DAY, &ds), 0);
	assert_int_equal(ds.destinations, 2);
	assert_int_equal(ds.destinations_refused, 5);
	assert_true(tlsrpt_prune(st, DAY + 1, 0) >= 0);
	assert_int_equal(tlsrpt_day_stats(st, DAY, &ds), 0);
	assert_int_equal(ds.destinations, 0);
	assert_int_equal(tlsrpt_day_stats(st, DAY + 1, &ds), 0);
	assert_int_equal(ds.destinations, 1);
	tlsrpt_store_close(st);

	lim.max_destinations = 0;
	lim.max_domains = 1;
	st = open_store(&lim);
	assert_int_equal(st->lim.max_destinations, 2);
	tlsrpt_store_close(st);
}

/* A raw value under key (klen bytes) in one of the store's databases, as
 * a corrupt file or another version left it. */
static void
raw_put(struct tlsrpt_store *st, MDB_dbi dbi, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	MDB_txn *txn;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	assert_int_equal(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
}

/*
 * A pair's sent mark that does not read back (a value not 8 bytes long:
 * a corrupt file, another version's) made tlsrpt_due_list() fail
 * whole: every report run failed before it started (report_run(): the
 * daemon logs event=tlsrpt-run-failed and tries at the next midnight),
 * so no domain's report was ever sent again, and the daemon prunes only
 * after a run that started, so the store was never pruned either and
 * grew to its map's bound (3/4 of 25 GiB by default) whatever
 * tlsrpt_retention said.  Now such a pair is listed as due (its
 * delivery state still says which URIs have the report, so none gets it
 * twice; the run's sent mark replaces the bad one) and the other pairs
 * with it.  Red before: -1, "sent: unreadable record".
 */
static void
test_corrupt_sent_mark(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_attempt a;
	struct tlsrpt_due due[8];
	unsigned char kb[4 + 254 + 1];
	int plen;
	size_t n = 0;
	uint32_t bad = 7;

	(void)state;
	legit(&a, "a.example", TLSRPT_SUCCESS);
	assert_int_equal(rec(st, DAY, &a), 0);
	legit(&a, "b.example", TLSRPT_SUCCESS);
	assert_int_equal(rec(st, DAY, &a), 0);
	legit(&a, "c.example", TLSRPT_SUCCESS);
	assert_int_equal(rec(st, DAY, &a), 0);
	assert_int_equal(tlsrpt_mark_sent(st, DAY, "c.example", 5), 0);
	plen = tr_domain_prefix(DAY, "a.example", kb);
	assert_true(plen > 0);
	raw_put(st, st->sent, kb, (size_t)plen - 1, &bad, sizeof(bad));
	assert_int_equal(tlsrpt_is_sent(st, DAY, "a.example", NULL), -1);
	log_capture();
	if (tlsrpt_due_list(st, DAY + 1, due, 8, &n) != 2) {
		(void)log_count("");
		fail_msg("the due list failed or left pairs out: %s",
		    tlsrpt_store_error(st));
	}
	assert_int_equal(log_count("event=tlsrpt-sent-corrupt"), 1);
	assert_int_equal(n, 2);
	assert_string_equal(due[0].domain, "a.example");
	assert_string_equal(due[1].domain, "b.example");
	/* the run's mark replaces it */
	assert_int_equal(tlsrpt_mark_sent(st, DAY, "a.example", 9), 0);
	assert_int_equal(tlsrpt_due_list(st, DAY + 1, due, 8, &n), 1);
	assert_string_equal(due[0].domain, "b.example");
	tlsrpt_store_close(st);
}

/*
 * The day's byte budget (day | 'b') read back near UINT64_MAX (a corrupt
 * or edited tlsrpt.mdb): budget_room()'s bytes + more wrapped below
 * day_bytes, so the day took newcomers as if its budget were empty, and
 * the stored sum wrapped too.  A budget at or past day_bytes is a full
 * day, whatever its value.  Red before: the newcomer stored (0, not 1).
 */
static void
test_budget_near_max(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_attempt a;
	struct tlsrpt_day_stats ds;
	unsigned char kb[5], vb[16];
	uint64_t vals[] = { UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 4095,
	    (uint64_t)1 << 63 };
	uint32_t d, full = TR_FULL_BYTES;
	char dom[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		/* the layout of tlsrpt_int.h: the day big-endian, the
		 * values in host order */
		d = (uint32_t)(DAY + (int64_t)i);
		kb[0] = (unsigned char)(d >> 24);
		kb[1] = (unsigned char)(d >> 16);
		kb[2] = (unsigned char)(d >> 8);
		kb[3] = (unsigned char)d;
		kb[4] = 'b';
		memcpy(vb, "MXB1", 4);
		memcpy(vb + 4, &vals[i], 8);
		memcpy(vb + 12, &full, 4);	/* logged: quiet */
		raw_put(st, st->days, kb, 5, vb, 16);
		snprintf(dom, sizeof(dom), "n%zu.example", i);
		legit(&a, dom, TLSRPT_SUCCESS);
		if (rec(st, DAY + (int64_t)i, &a) != 1)
			fail_msg("a newcomer was stored under a budget of "
			    "%llu", (unsigned long long)vals[i]);
		assert_int_equal(tlsrpt_day_stats(st, DAY + (int64_t)i, &ds),
		    0);
		assert_int_equal(ds.domains, 0);
		assert_int_equal(ds.overflow_sessions, 1);
	}
	tlsrpt_store_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flood_default_limits,
		    setup_shm, teardown),
		cmocka_unit_test_setup_teardown(
		    test_store_full_keeps_counting, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_fast_and_durable,
		    setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_mark_batch, setup_shm,
		    teardown),
		cmocka_unit_test_setup_teardown(test_destination_bound,
		    setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_sent_mark,
		    setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_budget_near_max,
		    setup_shm, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
