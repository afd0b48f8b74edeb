/*
 * test_history.c - the persistent TLS history: keys, records surviving a
 * reopen, the window rule, independence of host+address keys; the bound:
 * a full store evicts records that expect no TLS, never one that does,
 * refuses newcomers then, survives MDB_MAP_FULL, counts; another
 * worker's write between eviction and put is kept (store_txn_begin
 * wrapped to put it there); a record in a layout this version cannot
 * read counts as unreadable.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <time.h>

#include <lmdb.h>

#include "core/clock.h"
#include "core/stats.h"
#include "policy/history.h"
#include "policy/policy.h"
#include "policy/store.h"
#include "tests/unit/lmdbraw.h"
#include "tests/unit/timestep.h"

// WRAP: store_txn_begin time

static char dir[64];

/* store_txn_begin() as it is, unless armed: then, at the armed-th call,
 * another writer's record goes in first (race_fn), as another worker's
 * would between two of this process's transactions. */
int __real_store_txn_begin(MDB_env *, unsigned int, MDB_txn **);
static int race_at;
static void (*race_fn)(void);
static int fail_at;	/* armed: the fail_at-th call fails (EIO) */

int
__wrap_store_txn_begin(MDB_env *env, unsigned int flags, MDB_txn **txn)
{
	if (fail_at > 0 && --fail_at == 0)
		return EIO;
	if (race_at > 0 && --race_at == 0 && race_fn != NULL)
		race_fn();
	return __real_store_txn_begin(env, flags, txn);
}

static struct sockaddr_in
sin4(const char *a)
{
	struct sockaddr_in s;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	inet_pton(AF_INET, a, &s.sin_addr);
	return s;
}

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/mxg-history-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_key(void **state)
{
	struct sockaddr_in a = sin4("192.0.2.1");
	struct sockaddr_in6 b;
	char k[128];

	assert_int_equal(history_key("mx.example", (struct sockaddr *)&a, k,
	    sizeof(k)), 0);
	assert_string_equal(k, "mx.example|192.0.2.1");
	assert_int_equal(history_key("", (struct sockaddr *)&a, k,
	    sizeof(k)), 0);
	assert_string_equal(k, "|192.0.2.1");
	memset(&b, 0, sizeof(b));
	b.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::25", &b.sin6_addr);
	assert_int_equal(history_key("h", (struct sockaddr *)&b, k,
	    sizeof(k)), 0);
	assert_string_equal(k, "h|2001:db8::25");
	assert_int_equal(history_key("h", (struct sockaddr *)&b, k, 5), -1);
	assert_int_equal(history_key("h", NULL, k, sizeof(k)), -1);
	{
		/* a record's size is bounded: no host name beyond 255 */
		char big[400], kb[512];

		memset(big, 'a', 300);
		big[300] = '\0';
		assert_int_equal(history_key(big, (struct sockaddr *)&a, kb,
		    sizeof(kb)), -1);
		big[255] = '\0';
		assert_int_equal(history_key(big, (struct sockaddr *)&a, kb,
		    sizeof(kb)), 0);
		assert_true(strlen(kb) <= HISTORY_KEY_MAX);
	}
}

static void
test_record_and_window(void **state)
{
	char err[256];
	struct history *h = history_open(dir, err, sizeof(err));
	struct sockaddr_in a = sin4("192.0.2.1"), b = sin4("192.0.2.2");
	struct history_entry e, prev;

	assert_non_null(h);
	assert_int_equal(history_get(h, "mx", (struct sockaddr *)&a, &e), 0);
	assert_false(history_expects_tls(&e, 1000, 86400));
	/* a plaintext-only server never becomes "expected TLS" */
	assert_int_equal(history_record(h, "mx", (struct sockaddr *)&b, 0, 0,
	    1000, NULL), 0);
	assert_int_equal(history_get(h, "mx", (struct sockaddr *)&b, &e), 1);
	assert_false(history_expects_tls(&e, 1001, 86400));
	assert_int_equal(e.fail_count, 1);
	/* TLS once */
	assert_int_equal(history_record(h, "mx", (struct sockaddr *)&a, 1, 1,
	    1000, &prev), 0);
	assert_int_equal(prev.last_tls, 0);
	assert_int_equal(history_get(h, "mx", (struct sockaddr *)&a, &e), 1);
	assert_int_equal(e.first_tls, 1000);
	assert_int_equal(e.last_tls, 1000);
	assert_true(history_expects_tls(&e, 1000 + 86400, 86400));
	assert_false(history_expects_tls(&e, 1001 + 86400, 86400));
	assert_false(history_expects_tls(&e, 1000, 0));	/* window 0: off */
	/* other host name, same address: separate key */
	assert_int_equal(history_get(h, "mx2", (struct sockaddr *)&a, &e), 0);
	/* a stripped attempt keeps last_tls, counts the failure */
	assert_int_equal(history_record(h, "mx", (struct sockaddr *)&a, 0, 0,
	    2000, &prev), 0);
	assert_int_equal(prev.last_tls, 1000);
	assert_true(history_expects_tls(&prev, 2000, 86400));
	history_close(h);

	/* persistent across reopen */
	h = history_open(dir, err, sizeof(err));
	assert_non_null(h);
	assert_int_equal(history_get(h, "mx", (struct sockaddr *)&a, &e), 1);
	assert_int_equal(e.last_tls, 1000);
	assert_int_equal(e.last_fail, 2000);
	assert_int_equal(e.tls_count, 1);
	assert_int_equal(e.fail_count, 1);
	assert_int_equal(history_del(h, "mx", (struct sockaddr *)&a), 0);
	assert_int_equal(history_get(h, "mx", (struct sockaddr *)&a, &e), 0);
	history_close(h);
}

/* the policy engine's view: record through history_note(), decide
 * through history_apply() */
static void
test_apply(void **state)
{
	char err[256];
	struct history *h = history_open(dir, err, sizeof(err));
	struct sockaddr_in a = sin4("192.0.2.9"), b = sin4("192.0.2.10");
	struct policy_verdict v;

	assert_non_null(h);
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	snprintf(v.mx_host, sizeof(v.mx_host), "mx.example");
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 0);
	history_note(h, 86400, (struct sockaddr *)&a, "mx.example", 1, 1);
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v.source, "tls-history");
	/* the MX host unknown this time (DNS failed): the address record */
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 1);
	/* another address: nothing known */
	v.level = TLS_LEVEL_MAY;
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&b, &v), 0);
	/* only opportunistic verdicts are raised; window 0 is off */
	v.level = TLS_LEVEL_NONE;
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 0);
	v.level = TLS_LEVEL_MAY;
	assert_int_equal(history_apply(h, 0, (struct sockaddr *)&a, &v), 0);
	assert_int_equal(history_apply(NULL, 86400, (struct sockaddr *)&a,
	    &v), 0);
	/* a stripped attempt does not erase the history */
	history_note(h, 86400, (struct sockaddr *)&a, "mx.example", 0, 0);
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 1);
	history_close(h);
}

static int64_t
ctr(const char *name)
{
	return stats_value(stats_get(name, NULL));
}

static struct history *
fresh(const char *sub, size_t max, int64_t window, size_t mapsize)
{
	char d[128], err[256];
	struct history *h;

	snprintf(d, sizeof(d), "%s/%s", dir, sub);
	if ((h = history_open_limits(d, max, window, mapsize, err,
	    sizeof(err))) == NULL)
		fail_msg("open: %s", err);
	return h;
}

/*
 * A full history: a newcomer evicts the records that expect no TLS (never
 * completed STARTTLS, or not within the window), never a record that
 * still expects TLS; with only those left it is refused, and they stay
 * and keep being updated.
 */
static void
test_bounded(void **state)
{
	struct history *h = fresh("bounded", 4, 86400, 0);
	struct sockaddr_in a = sin4("192.0.2.1");
	struct history_entry e;
	int64_t now = (int64_t)time(NULL);
	int64_t full = ctr("mxguard_tls_history_refusals_total"
	    "{reason=\"full\"}");
	int64_t gone = ctr("mxguard_tls_history_evictions_total"
	    "{reason=\"no-tls-in-window\"}");

	/* two servers that completed STARTTLS, one that never did, one
	 * whose last TLS is outside the window */
	assert_int_equal(history_record(h, "live1", (struct sockaddr *)&a, 1,
	    1, now - 100, NULL), 0);
	assert_int_equal(history_record(h, "live2", (struct sockaddr *)&a, 1,
	    1, now - 100, NULL), 0);
	assert_int_equal(history_record(h, "plain", (struct sockaddr *)&a, 0,
	    0, now - 10, NULL), 0);
	assert_int_equal(history_record(h, "stale", (struct sockaddr *)&a, 1,
	    1, now - 90000, NULL), 0);
	assert_int_equal(history_count(h), 4);
	assert_int_equal(ctr("mxguard_tls_history_entries"), 4);
	/* a newcomer: both records that decide nothing go */
	assert_int_equal(history_record(h, "new1", (struct sockaddr *)&a, 1,
	    1, now, NULL), 0);
	assert_int_equal(history_get(h, "plain", (struct sockaddr *)&a, &e),
	    0);
	assert_int_equal(history_get(h, "stale", (struct sockaddr *)&a, &e),
	    0);
	assert_int_equal(ctr("mxguard_tls_history_evictions_total"
	    "{reason=\"no-tls-in-window\"}"), gone + 2);
	assert_int_equal(history_record(h, "new2", (struct sockaddr *)&a, 1,
	    1, now, NULL), 0);
	/* full of records that expect TLS: newcomers are refused */
	assert_int_equal(history_record(h, "new3", (struct sockaddr *)&a, 1,
	    1, now, NULL), -1);
	assert_int_equal(history_record(h, "new4", (struct sockaddr *)&a, 0,
	    0, now, NULL), -1);
	assert_int_equal(ctr("mxguard_tls_history_refusals_total"
	    "{reason=\"full\"}"), full + 2);
	assert_int_equal(history_get(h, "new3", (struct sockaddr *)&a, &e),
	    0);
	assert_int_equal(history_count(h), 4);
	/* the learned ones stay, and a stripped attempt on one still
	 * records (an update, not a newcomer) */
	assert_int_equal(history_record(h, "live1", (struct sockaddr *)&a, 0,
	    0, now, NULL), 0);
	assert_int_equal(history_get(h, "live1", (struct sockaddr *)&a, &e),
	    1);
	assert_true(history_expects_tls(&e, now, 86400));
	assert_int_equal(e.fail_count, 1);
	assert_int_equal(history_get(h, "live2", (struct sockaddr *)&a, &e),
	    1);
	history_close(h);
}

/*
 * A full store refuses the record of an MX name not yet seen: the
 * address's own record is still brought up to date, so the history of an
 * address reached under a new name does not run out of its window (and
 * a strip then goes unnoticed) while the store stays full.
 */
static void
test_full_store_keeps_address(void **state)
{
	struct history *h = fresh("fulladdr", 2, 30 * 86400, 0);
	struct sockaddr_in a = sin4("192.0.2.9");
	struct history_entry e;
	int64_t now = (int64_t)time(NULL), then = now - 20 * 86400;

	assert_int_equal(history_record(h, "mxa.test", (struct sockaddr *)&a,
	    1, 1, then, NULL), 0);
	assert_int_equal(history_record(h, "", (struct sockaddr *)&a, 1, 1,
	    then, NULL), 0);
	history_note(h, 30 * 86400, (struct sockaddr *)&a, "mxb.test", 1, 1);
	assert_int_equal(history_get(h, "mxb.test", (struct sockaddr *)&a,
	    &e), 0);			/* refused: the store is full */
	assert_int_equal(history_get(h, "", (struct sockaddr *)&a, &e), 1);
	assert_true(e.last_tls >= now);
	history_close(h);
}

/* The file's bound before the count's (MDB_MAP_FULL): never fatal;
 * dead records are evicted, live ones stay and stay updatable. */
static void
test_map_full(void **state)
{
	struct history *h = fresh("mapfull", 1000000, 86400, 128 * 1024);
	struct sockaddr_in a = sin4("192.0.2.7");
	struct history_entry e;
	char host[300];
	int64_t now = (int64_t)time(NULL);
	int i, ok = 0, refused = 0;

	memset(host, 'h', 250);
	host[250] = '\0';
	assert_int_equal(history_record(h, "learned", (struct sockaddr *)&a,
	    1, 1, now, NULL), 0);
	/* plaintext-only servers: each newcomer finds room */
	for (i = 0; i < 2000; i++) {
		snprintf(host, sizeof(host), "%0240d.p", i);
		if (history_record(h, host, (struct sockaddr *)&a, 0, 0, now,
		    NULL) == 0)
			ok++;
	}
	assert_int_equal(ok, 2000);
	assert_true(history_count(h) < 2000);
	/* servers that completed STARTTLS: room runs out, then refused */
	for (i = 0, ok = 0; i < 2000; i++) {
		snprintf(host, sizeof(host), "%0240d.t", i);
		if (history_record(h, host, (struct sockaddr *)&a, 1, 1, now,
		    NULL) == 0)
			ok++;
		else
			refused++;
	}
	assert_true(ok > 0 && refused > 0);
	assert_int_equal(history_get(h, "learned", (struct sockaddr *)&a,
	    &e), 1);
	assert_int_equal(history_record(h, "learned", (struct sockaddr *)&a,
	    0, 0, now, NULL), 0);
	history_close(h);
}

/*
 * A newcomer's record in a full store: eviction commits in a transaction
 * of its own, then the record is written in a second one.  Another
 * worker's TLS success for the same key, written between the two, must
 * not be overwritten with the entry read before it (red before: the
 * failure record written over it had last_tls 0, so the history forgot
 * that the server did TLS).
 */
static struct history *race_h;

static void
other_worker_tls(void)
{
	struct sockaddr_in a = sin4("192.0.2.44");

	assert_int_equal(history_record(race_h, "new.test",
	    (struct sockaddr *)&a, 1, 1, (int64_t)time(NULL), NULL), 0);
}

static void
test_eviction_race(void **state)
{
	struct sockaddr_in a = sin4("192.0.2.44");
	struct history_entry e;
	int64_t now = (int64_t)time(NULL);

	(void)state;
	race_h = fresh("race", 2, 86400, 0);
	/* full of records that decide nothing (no TLS): evictable */
	assert_int_equal(history_record(race_h, "d1.test",
	    (struct sockaddr *)&a, 0, 0, now, NULL), 0);
	assert_int_equal(history_record(race_h, "d2.test",
	    (struct sockaddr *)&a, 0, 0, now, NULL), 0);
	/* the newcomer: its first transaction reads and evicts, and before
	 * its second the other worker writes */
	race_fn = other_worker_tls;
	race_at = 2;
	assert_int_equal(history_record(race_h, "new.test",
	    (struct sockaddr *)&a, 1, 0, now, NULL), 0);
	assert_int_equal(race_at, 0);
	race_fn = NULL;
	assert_int_equal(history_get(race_h, "new.test",
	    (struct sockaddr *)&a, &e), 1);
	if (e.last_tls == 0)
		fail_msg("the other worker's TLS success was overwritten");
	assert_true(e.last_fail >= now);	/* and this failure counted */
	history_close(race_h);
}

/*
 * An MX host that completed STARTTLS within the window, reached at an
 * address not seen before: the attacker who answers the (unsigned) A
 * query of the MX host, for the MTA and for mxguard, sends the mail to
 * an address of its own and strips STARTTLS there.  Neither
 * "host|address" nor "|address" knows the new address, so the verdict
 * stayed may and the mail went out in cleartext: the history must follow
 * the MX host's name, not only its address.
 */
static void
test_address_changed(void **state)
{
	struct history *h = fresh("moved", 100, 86400, 0);
	struct sockaddr_in a = sin4("192.0.2.9"), evil = sin4("198.51.100.66");
	struct policy_verdict v;

	history_note(h, 86400, (struct sockaddr *)&a, "mx.example", 1, 1);
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	snprintf(v.mx_host, sizeof(v.mx_host), "mx.example");
	/* mxguard's own MX walk says mx.example owns the new address */
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&evil,
	    &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v.source, "tls-history");
	/* a stripped attempt there does not erase the name's history */
	history_note(h, 86400, (struct sockaddr *)&evil, "mx.example", 0, 0);
	v.level = TLS_LEVEL_MAY;
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&evil,
	    &v), 1);
	/* another host at that address: nothing known of it */
	v.level = TLS_LEVEL_MAY;
	snprintf(v.mx_host, sizeof(v.mx_host), "mx.other");
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&evil,
	    &v), 0);
	history_close(h);
}

/*
 * The clock stepped back (an NTP correction, or an attacker's
 * unauthenticated NTP answers) since a server did TLS: its record's
 * last_tls is ahead of now.  It still expects TLS; the next write brings
 * its times back to now, so a record from far ahead expects TLS for one
 * window from then, not until its own time plus one.
 */
static void
test_clock_stepped_back(void **state)
{
	struct history *h = fresh("clockback", 100, 86400, 0);
	struct sockaddr_in a = sin4("192.0.2.9");
	struct history_entry e;
	struct policy_verdict v;
	int64_t now = (int64_t)time(NULL);

	(void)state;
	/* written an hour "later" than now: the clock has stepped back */
	assert_int_equal(history_record(h, "mx.example", (struct sockaddr *)&a,
	    1, 1, now + 3600, NULL), 0);
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	snprintf(v.mx_host, sizeof(v.mx_host), "mx.example");
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);

	/* ten years ahead: expects TLS, and a stripped attempt now brings
	 * it back to now, where the window runs out as usual */
	assert_int_equal(history_record(h, "far.example",
	    (struct sockaddr *)&a, 1, 1, now + 10 * 365 * 86400LL, NULL), 0);
	assert_int_equal(history_get(h, "far.example", (struct sockaddr *)&a,
	    &e), 1);
	assert_true(history_expects_tls(&e, now, 86400));
	assert_int_equal(history_record(h, "far.example",
	    (struct sockaddr *)&a, 0, 0, now, NULL), 0);
	assert_int_equal(history_get(h, "far.example", (struct sockaddr *)&a,
	    &e), 1);
	assert_true(e.last_tls <= now && e.first_tls <= e.last_tls);
	assert_int_equal(e.last_fail, now);
	assert_true(history_expects_tls(&e, now + 86400, 86400));
	assert_false(history_expects_tls(&e, now + 86401, 86400));
	history_close(h);
}

/* The wall clock stepped forward past the window (an attacker's NTP
 * answer): the record of the server's TLS still stands, as no time has
 * passed to end it. */
static void
test_clock_stepped_forward(void **state)
{
	struct history *h = fresh("clockfwd", 100, 86400, 0);
	struct sockaddr_in a = sin4("192.0.2.9");
	struct policy_verdict v;

	history_note(h, 86400, (struct sockaddr *)&a, "mx.example", 1, 1);
	time_step = 30 * 86400LL;
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	snprintf(v.mx_host, sizeof(v.mx_host), "mx.example");
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 1);
	time_step = 0;
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	history_close(h);
}

/* The wall clock stepped back a year, a TLS delivery noted, the clock set
 * right, the daemon restarted (a new anchor): the record still expects
 * TLS.  Had the policy clock followed the step back, the record would
 * carry a time a year old and be forgotten after the restart. */
static void
test_clock_stepped_back_then_restart(void **state)
{
	struct history *h = fresh("clockbackfwd", 100, 86400, 0);
	struct sockaddr_in a = sin4("192.0.2.9");
	struct policy_verdict v;

	time_step = -365 * 86400LL;
	history_note(h, 86400, (struct sockaddr *)&a, "mx.back.example", 1,
	    1);
	time_step = 0;
	clock_anchor();
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	snprintf(v.mx_host, sizeof(v.mx_host), "mx.back.example");
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	history_close(h);
}

/*
 * A record in a layout this version cannot read (a later version's, met
 * after a downgrade) may expect TLS: it counts as a store that cannot
 * answer (encrypt), and a failed attempt does not overwrite it with a
 * record that expects nothing; a TLS success replaces it.  Before, it
 * read as no record: may, and the next stripped attempt wrote over it.
 */
static void
test_unreadable_record(void **state)
{
	char d[128], path[160], key[512], err[256];
	struct sockaddr_in a = sin4("192.0.2.77");
	struct policy_verdict v;
	struct history_entry e;
	struct history *h;

	h = fresh("layout", 0, 86400, 0);
	history_close(h);
	snprintf(d, sizeof(d), "%s/layout", dir);
	assert_int_equal(history_key("", (struct sockaddr *)&a, key,
	    sizeof(key)), 0);
	snprintf(path, sizeof(path), "%s/history.mdb", d);
	lmdb_put_raw(path, key, "MXH9 a later layout", 19);
	assert_non_null(h = history_open(d, err, sizeof(err)));
	assert_int_equal(history_get(h, "", (struct sockaddr *)&a, &e),
	    HISTORY_UNREADABLE);
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	assert_non_null(strstr(v.detail, "layout"));
	/* a stripped attempt keeps it */
	history_note(h, 86400, (struct sockaddr *)&a, "", 0, 0);
	assert_int_equal(history_get(h, "", (struct sockaddr *)&a, &e),
	    HISTORY_UNREADABLE);
	/* a TLS success replaces it */
	history_note(h, 86400, (struct sockaddr *)&a, "", 1, 1);
	assert_int_equal(history_get(h, "", (struct sockaddr *)&a, &e), 1);
	assert_true(history_expects_tls(&e, clock_now(), 86400));
	history_close(h);
}

/*
 * A process killed inside a read transaction (a worker, or `mxguard
 * policy` run by hand and killed, OOM) leaves its reader slot in the
 * lock file, and that slot pins the snapshot it read: no page freed since
 * can be used again, and every commit grows the file until MDB_MAP_FULL.
 * The slot was cleared only when some process opened the store
 * (mdb_reader_check() in store_open()): a process that had it open
 * already (the single process, every worker but the dead one's
 * successor) hit the bound and then refused even updates of the records
 * it keeps, so a server's TLS success stopped being noted and its record
 * ran out of its window.  A writer clears dead readers' slots itself.
 */
static void
test_dead_reader_cleared(void **state)
{
	struct history *h = fresh("deadreader", 1000000, 86400, 128 * 1024);
	struct sockaddr_in a = sin4("192.0.2.77");
	char path[160];
	int64_t now = (int64_t)time(NULL);
	pid_t pid;
	int st, i, failed = 0;

	assert_int_equal(history_record(h, "learned", (struct sockaddr *)&a,
	    1, 1, now, NULL), 0);
	snprintf(path, sizeof(path), "%s/deadreader/history.mdb", dir);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;

		if (mdb_env_create(&env) != 0 || mdb_env_open(env, path,
		    MDB_NOSUBDIR | MDB_NOTLS | MDB_RDONLY, 0600) != 0 ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
			_exit(3);
		kill(getpid(), SIGKILL);	/* inside the read */
		_exit(4);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	/* the open store goes on being written: a stripped attempt each
	 * time (always written), then a success */
	for (i = 0; i < 500; i++)
		if (history_record(h, "learned", (struct sockaddr *)&a, 0, 0,
		    now, NULL) != 0)
			failed++;
	assert_int_equal(failed, 0);
	assert_int_equal(history_record(h, "learned", (struct sockaddr *)&a,
	    1, 1, now, NULL), 0);
	history_close(h);
}

/*
 * A record whose times no clock of ours wrote (a corrupt file, found by
 * fuzz_store_rec): last_tls INT64_MIN with a first_tls.  It decoded and
 * a TLS success took now - last_tls (record_once()'s "written less than
 * 10 minutes ago"), a signed overflow (undefined; UBSan's trap in the
 * ASan build).  Now it is unreadable, as a layout we do not know is: it
 * may have expected TLS, so the verdict is encrypt, a failed attempt
 * keeps it and a TLS success replaces it.  Red before: history_get() 1
 * (taken, "expects no TLS": may), and under UBSan "signed integer
 * overflow" in record_once().
 */
static void
test_record_times_out_of_range(void **state)
{
	char d[128], path[160], key[512], err[256];
	struct sockaddr_in a = sin4("192.0.2.78");
	unsigned char raw[4 + 4 * 8 + 2 * 4];
	int64_t first = 1, last = INT64_MIN, zero = 0;
	uint32_t n = 1;
	struct policy_verdict v;
	struct history_entry e;
	struct history *h;

	h = fresh("times", 0, 86400, 0);
	history_close(h);
	snprintf(d, sizeof(d), "%s/times", dir);
	assert_int_equal(history_key("mx.example", (struct sockaddr *)&a, key,
	    sizeof(key)), 0);
	memcpy(raw, "MXH1", 4);
	memcpy(raw + 4, &first, 8);
	memcpy(raw + 12, &last, 8);
	memcpy(raw + 20, &zero, 8);
	memcpy(raw + 28, &zero, 8);
	memcpy(raw + 36, &n, 4);
	memcpy(raw + 40, &n, 4);
	snprintf(path, sizeof(path), "%s/history.mdb", d);
	lmdb_put_raw(path, key, raw, sizeof(raw));
	assert_non_null(h = history_open(d, err, sizeof(err)));
	assert_int_equal(history_get(h, "mx.example", (struct sockaddr *)&a,
	    &e), HISTORY_UNREADABLE);
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	snprintf(v.mx_host, sizeof(v.mx_host), "mx.example");
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	/* a TLS success replaces it */
	assert_int_equal(history_record(h, "mx.example", (struct sockaddr *)&a,
	    1, 1, clock_now(), NULL), 0);
	assert_int_equal(history_get(h, "mx.example", (struct sockaddr *)&a,
	    &e), 1);
	assert_true(history_expects_tls(&e, clock_now(), 86400));
	history_close(h);
}

/*
 * A success within 10 minutes of the last one written is not written
 * again (a synchronous commit per delivery); one 10 minutes later is, or
 * the record would run out of its window while the server does TLS
 * every day.  first_tls stays the first.
 */
static void
test_success_refresh(void **state)
{
	struct history *h = fresh("refresh", 0, 86400, 0);
	struct sockaddr_in a = sin4("192.0.2.80");
	struct history_entry e;

	assert_int_equal(history_record(h, "mx", (struct sockaddr *)&a, 1, 1,
	    1000, NULL), 0);
	assert_int_equal(history_record(h, "mx", (struct sockaddr *)&a, 1, 1,
	    1599, NULL), 0);
	assert_int_equal(history_get(h, "mx", (struct sockaddr *)&a, &e), 1);
	assert_int_equal(e.last_tls, 1000);
	assert_int_equal(e.tls_count, 1);
	assert_int_equal(history_record(h, "mx", (struct sockaddr *)&a, 1, 1,
	    1600, NULL), 0);
	assert_int_equal(history_get(h, "mx", (struct sockaddr *)&a, &e), 1);
	assert_int_equal(e.first_tls, 1000);
	assert_int_equal(e.last_tls, 1600);
	assert_int_equal(e.tls_count, 2);
	/* a day later: still expected, from the latest success */
	assert_true(history_expects_tls(&e, 1600 + 86400, 86400));
	history_close(h);
}

/* A record with the current magic and another length is unreadable, not
 * read past its end nor taken in part. */
static void
test_record_wrong_length(void **state)
{
	char d[128], path[160], key[512], err[256];
	struct sockaddr_in a = sin4("192.0.2.81");
	unsigned char raw[4 + 4 * 8 + 2 * 4 + 8];
	int64_t t = 1000;
	struct history_entry e;
	struct history *h;

	h = fresh("length", 0, 86400, 0);
	history_close(h);
	snprintf(d, sizeof(d), "%s/length", dir);
	assert_int_equal(history_key("", (struct sockaddr *)&a, key,
	    sizeof(key)), 0);
	memset(raw, 0, sizeof(raw));
	memcpy(raw, "MXH1", 4);
	memcpy(raw + 4, &t, 8);
	memcpy(raw + 12, &t, 8);
	snprintf(path, sizeof(path), "%s/history.mdb", d);
	lmdb_put_raw(path, key, raw, sizeof(raw));
	assert_non_null(h = history_open(d, err, sizeof(err)));
	assert_int_equal(history_get(h, "", (struct sockaddr *)&a, &e),
	    HISTORY_UNREADABLE);
	history_close(h);
}

/* A merged record (Redis) that expects no TLS is not written as a
 * newcomer: it decides nothing and would take the room of one that does */
static void
test_merge_newcomer_no_tls(void **state)
{
	struct history *h = fresh("mergenew", 0, 86400, 0);
	struct sockaddr_in a = sin4("192.0.2.82");
	struct history_entry o, e;
	int64_t now = clock_now();

	memset(&o, 0, sizeof(o));
	o.last_fail = o.last_seen = now;
	o.fail_count = 3;
	assert_int_equal(history_merge(h, (struct sockaddr *)&a, &o, now), 0);
	o.first_tls = o.last_tls = now - 2 * 86400;	/* out of the window */
	o.tls_count = 1;
	assert_int_equal(history_merge(h, (struct sockaddr *)&a, &o, now), 0);
	assert_int_equal(history_merge_host(h, "mx.example", &o, now), 0);
	assert_int_equal(history_count(h), 0);
	o.last_tls = now - 60;
	assert_int_equal(history_merge(h, (struct sockaddr *)&a, &o, now), 0);
	assert_int_equal(history_count(h), 1);
	assert_int_equal(history_get(h, "", (struct sockaddr *)&a, &e), 1);
	assert_int_equal(e.last_tls, now - 60);
	history_close(h);
}

/* A read of the history that fails, whichever of the three records it
 * was, requires TLS: the record it could not read may expect it */
static void
test_apply_read_error(void **state)
{
	struct history *h = fresh("readerr", 0, 86400, 0);
	struct sockaddr_in a = sin4("192.0.2.83");
	struct policy_verdict v;
	int at;

	for (at = 1; at <= 3; at++) {
		memset(&v, 0, sizeof(v));
		v.level = TLS_LEVEL_MAY;
		v.source = "default";
		snprintf(v.mx_host, sizeof(v.mx_host), "mx.example");
		fail_at = at;
		assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a,
		    &v), 1);
		fail_at = 0;
		if (v.level != TLS_LEVEL_ENCRYPT)
			fail_msg("read %d of 3 failing: level %d", at,
			    (int)v.level);
		assert_non_null(strstr(v.detail, "could not be read"));
	}
	/* no MX host: the address's record alone */
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	fail_at = 1;
	assert_int_equal(history_apply(h, 86400, (struct sockaddr *)&a, &v),
	    1);
	fail_at = 0;
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	history_close(h);
}

/* history_apply_unowned(): the host's own record unreadable, or its read
 * failing, requires TLS as history_apply() does */
static void
test_unowned_unreadable(void **state)
{
	char d[128], path[160], key[512], err[256];
	struct sockaddr_in a = sin4("192.0.2.84");
	struct policy_verdict v;
	struct history *h;

	h = fresh("unowned", 0, 86400, 0);
	history_close(h);
	snprintf(d, sizeof(d), "%s/unowned", dir);
	snprintf(key, sizeof(key), "mx.example|");
	snprintf(path, sizeof(path), "%s/history.mdb", d);
	lmdb_put_raw(path, key, "MXH9 a later layout", 19);
	assert_non_null(h = history_open(d, err, sizeof(err)));
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	assert_int_equal(history_apply_unowned(h, 86400, (struct sockaddr *)&a,
	    "mx.example", &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	assert_non_null(strstr(v.detail, "layout"));
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	fail_at = 1;
	assert_int_equal(history_apply_unowned(h, 86400, (struct sockaddr *)&a,
	    "other.example", &v), 1);
	fail_at = 0;
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	/* nothing known of a host: nothing required */
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	assert_int_equal(history_apply_unowned(h, 86400, (struct sockaddr *)&a,
	    "other.example", &v), 0);
	assert_int_equal(v.level, TLS_LEVEL_MAY);
	history_close(h);
}

/* history_unreadable() only raises an opportunistic verdict: one that
 * demands more (verify, DANE) keeps its level and source */
static void
test_unreadable_never_lowers(void **state)
{
	struct sockaddr_in a = sin4("192.0.2.85");
	struct policy_verdict v;

	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_VERIFY;
	v.source = "mta-sts";
	history_unreadable(&v, (struct sockaddr *)&a, "store not open");
	assert_int_equal(v.level, TLS_LEVEL_VERIFY);
	assert_string_equal(v.source, "mta-sts");
	v.level = TLS_LEVEL_MAY;
	history_unreadable(&v, (struct sockaddr *)&a, "store not open");
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
}

/*
 * A full store makes room for a newcomer by dropping unreadable records
 * (they decide nothing this version can read; a failed read already
 * demands TLS where one is asked for) as it drops those that expect no
 * TLS.  No host (dst NULL, host empty) is no key.
 */
static void
test_full_store_drops_unreadable(void **state)
{
	char d[128], path[160], key[512], err[256];
	struct sockaddr_in a = sin4("192.0.2.86"), b = sin4("192.0.2.87");
	struct history_entry e;
	struct history *h;

	h = fresh("fullbad", 1, 86400, 0);
	history_close(h);
	snprintf(d, sizeof(d), "%s/fullbad", dir);
	assert_int_equal(history_key("", (struct sockaddr *)&a, key,
	    sizeof(key)), 0);
	snprintf(path, sizeof(path), "%s/history.mdb", d);
	lmdb_put_raw(path, key, "MXH9 a later layout", 19);
	assert_non_null(h = history_open_limits(d, 1, 86400, 0, err,
	    sizeof(err)));
	assert_int_equal(history_count(h), 1);
	assert_int_equal(history_record(h, "", (struct sockaddr *)&b, 1, 1,
	    clock_now(), NULL), 0);
	assert_int_equal(history_get(h, "", (struct sockaddr *)&b, &e), 1);
	assert_int_equal(history_get(h, "", (struct sockaddr *)&a, &e), 0);
	assert_int_equal(history_count(h), 1);
	assert_int_equal(history_get(h, "", NULL, &e), -1);
	history_close(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_record_and_window),
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_full_store_keeps_address),
		cmocka_unit_test(test_map_full),
		cmocka_unit_test(test_eviction_race),
		cmocka_unit_test(test_address_changed),
		cmocka_unit_test(test_clock_stepped_back),
		cmocka_unit_test(test_clock_stepped_forward),
		cmocka_unit_test(test_clock_stepped_back_then_restart),
		cmocka_unit_test(test_unreadable_record),
		cmocka_unit_test(test_dead_reader_cleared),
		cmocka_unit_test(test_record_times_out_of_range),
		cmocka_unit_test(test_success_refresh),
		cmocka_unit_test(test_record_wrong_length),
		cmocka_unit_test(test_merge_newcomer_no_tls),
		cmocka_unit_test(test_apply_read_error),
		cmocka_unit_test(test_unowned_unreadable),
		cmocka_unit_test(test_unreadable_never_lowers),
		cmocka_unit_test(test_full_store_drops_unreadable),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
