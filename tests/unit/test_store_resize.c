/*
 * test_store_resize.c - two processes on the same store files with maps
 * of different sizes: a worker restarted after a SIGHUP that raised
 * tls_history_max_entries or sts_cache_max_entries, next to a worker (or
 * a `mxguard policy` run) that opened the files with the old limits.
 * Once the larger one has grown a file past the smaller one's map, LMDB
 * refuses every transaction of the smaller one with MDB_MAP_RESIZED until
 * it adopts the file's size (store_txn_begin()).  Before that was done,
 * history_get() and sts_cache_get() failed and the verdict took it for
 * "no record": the TLS history no longer raised an address to encrypt,
 * a cached enforce policy was no longer applied.
 *
 * Process A (this one) opens both stores with small limits and learns an
 * address that completed STARTTLS and an enforce policy; process B (a
 * child, its own handles, forked before A opened anything) opens the same
 * files with limits 1000 times larger and writes until each file is
 * larger than A's map; then A must still read and write both.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/stats.h"
#include "policy/cache.h"
#include "policy/history.h"
#include "policy/store.h"
#include "policy/verdict.h"

#define A_HIST		100
#define A_STS		10
#define GROWTH		1000		/* B's limits: A's times this */
#define WINDOW		86400
#define MX		"mx.example"
#define ENF_DOMAIN	"enforce.example"

static char dir[64];

static const char *ENF = "version: STSv1\nmode: enforce\nmx: mx.example\n"
    "max_age: 86400\n";

/* On tmpfs where there is one: B's thousands of synchronous commits take
 * a fraction of a second there, some seconds on a disk. */
static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/mxg-resize-XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
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

static int64_t
ctr(const char *name)
{
	return stats_value(stats_get(name, NULL));
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

static off_t
fsize(const char *file)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* A's maps, at least: store_mapsize() of A's limits, the history's
 * record size taken a little larger than history.c's (which is private;
 * the map only grows with it). */
static size_t
a_map_hist(void)
{
	struct store_limits l = { A_HIST, HISTORY_KEY_MAX + 64, 0 };

	return store_mapsize(&l);
}

static size_t
a_map_sts(void)
{
	struct store_limits l = { A_STS, STS_CACHE_ENTRY_MAX, 0 };

	return store_mapsize(&l);
}

static void
fill(struct sts_cache_entry *e, const char *id, const char *body,
    int64_t fetched)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->body = (char *)body;
	e->bodylen = strlen(body);
	e->fetched = fetched;
	e->checked = fetched;
	e->expires = fetched + 86400;
}

/*
 * Process B: the same files with limits GROWTH times larger, written
 * until each is larger than A's map.  History records with long host
 * names (few records fill a page) and policies of about 7 KB (two
 * overflow pages each) keep that to a few thousand synchronous commits.
 * Its exit status: 0, or which step failed.
 */
static int
grow(void)
{
	static char body[7200];
	struct history *h;
	struct sts_cache *c;
	struct sts_cache_entry e;
	struct sockaddr_in a = sin4("198.51.100.1");
	char err[256], host[256];
	int64_t now = (int64_t)time(NULL);
	size_t n, i;

	if ((h = history_open_limits(dir, A_HIST * GROWTH, WINDOW, 0, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "B: history: %s\n", err);
		return 10;
	}
	memset(host, 'h', 240);
	for (i = 0; fsize("history.mdb") <= (off_t)a_map_hist(); i++) {
		if (i == 20000) {
			fprintf(stderr, "B: history.mdb does not grow\n");
			return 11;
		}
		snprintf(host + 240, sizeof(host) - 240, ".%zu", i);
		if (history_record(h, host, (struct sockaddr *)&a, 1, 1, now,
		    NULL) != 0) {
			fprintf(stderr, "B: history_record %zu failed\n", i);
			return 12;
		}
	}
	history_close(h);

	if ((c = sts_cache_open_limits(dir, A_STS * GROWTH, 0, 0, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "B: sts cache: %s\n", err);
		return 20;
	}
	n = (size_t)snprintf(body, sizeof(body), "version: STSv1\n"
	    "mode: testing\nmx: mx.example\nmax_age: 86400\n");
	/* extensions: ignored by the parser, kept in the record */
	for (i = 0; n + 110 < sizeof(body); i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "x-pad%zu: "
		    "%0100zu\n", i, i);
	for (i = 0; fsize("sts-cache.mdb") <= (off_t)a_map_sts(); i++) {
		char dom[64];

		if (i == 5000) {
			fprintf(stderr, "B: sts-cache.mdb does not grow\n");
			return 21;
		}
		snprintf(dom, sizeof(dom), "pad%zu.example", i);
		fill(&e, "idb", body, now);
		if (sts_cache_put(c, dom, &e) != 0) {
			fprintf(stderr, "B: sts_cache_put %zu failed\n", i);
			return 22;
		}
	}
	sts_cache_close(c);
	return 0;
}

static void
test_grown_by_another_process(void **state)
{
	struct history *h;
	struct sts_cache *c;
	struct sts_cache_entry e;
	struct history_entry he, prev;
	struct policy_verdict v;
	struct sockaddr_in a = sin4("192.0.2.25");
	char err[256], x = 'x';
	int64_t now = (int64_t)time(NULL);
	int go[2], status;
	pid_t pid;

	/* B before A opens anything: no LMDB handle crosses the fork */
	assert_int_equal(pipe(go), 0);
	if ((pid = fork()) == 0) {
		close(go[1]);
		_exit(read(go[0], &x, 1) == 1 ? grow() : 1);
	}
	assert_true(pid > 0);
	close(go[0]);

	/* A: small limits; learns a server that completed STARTTLS and an
	 * enforce policy */
	h = history_open_limits(dir, A_HIST, WINDOW, 0, err, sizeof(err));
	if (h == NULL)
		fail_msg("A: history: %s", err);
	c = sts_cache_open_limits(dir, A_STS, 0, 0, err, sizeof(err));
	if (c == NULL)
		fail_msg("A: sts cache: %s", err);
	history_note(h, WINDOW, (struct sockaddr *)&a, MX, 1, 1);
	fill(&e, "ida", ENF, now);
	assert_int_equal(sts_cache_put(c, ENF_DOMAIN, &e), 0);

	/* B grows both files past A's maps */
	assert_int_equal(write(go[1], &x, 1), 1);
	close(go[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(fsize("history.mdb") > (off_t)a_map_hist());
	assert_true(fsize("sts-cache.mdb") > (off_t)a_map_sts());

	/* A still reads: the history still raises the verdict ... */
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	snprintf(v.mx_host, sizeof(v.mx_host), "%s", MX);
	assert_int_equal(history_apply(h, WINDOW, (struct sockaddr *)&a, &v),
	    1);
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v.source, "tls-history");
	assert_int_equal(history_get(h, MX, (struct sockaddr *)&a, &he), 1);
	assert_true(history_expects_tls(&he, now, WINDOW));
	/* ... and the enforce policy is still cached */
	assert_int_equal(sts_cache_get(c, ENF_DOMAIN, &e), 1);
	assert_int_equal(e.pol.mode, STS_MODE_ENFORCE);
	assert_string_equal(e.id, "ida");
	sts_cache_entry_clear(&e);

	/* A still writes: an attempt on the known server (an update goes
	 * through whatever the count), a refreshed policy */
	assert_int_equal(history_record(h, MX, (struct sockaddr *)&a, 0, 0,
	    now, &prev), 0);
	assert_true(history_expects_tls(&prev, now, WINDOW));
	assert_int_equal(history_get(h, MX, (struct sockaddr *)&a, &he), 1);
	assert_int_equal(he.fail_count, 1);
	fill(&e, "ida2", ENF, now + 1);
	assert_int_equal(sts_cache_put(c, ENF_DOMAIN, &e), 0);
	assert_int_equal(sts_cache_get(c, ENF_DOMAIN, &e), 1);
	assert_string_equal(e.id, "ida2");
	sts_cache_entry_clear(&e);
	/* and sees B's records, past its own old map */
	assert_true(history_count(h) > A_HIST);
	assert_true(sts_cache_count(c) > A_STS);
	/* none of it was a store error */
	assert_int_equal(ctr("mxguard_store_errors_total{store=\"history\","
	    "op=\"read\"}"), 0);
	assert_int_equal(ctr("mxguard_store_errors_total{store=\"sts-cache\","
	    "op=\"read\"}"), 0);

	history_close(h);
	sts_cache_close(c);
}

/* A store error that its caller takes for "no record" is counted each
 * time (its log line is rate-limited, its count never). */
static void
test_error_counted(void **state)
{
	const char *name = "mxguard_store_errors_total{store=\"history\","
	    "op=\"read\"}";
	int64_t n = ctr(name);
	int i;

	for (i = 0; i < 3; i++)
		store_error("history", "read", EIO);
	assert_int_equal(ctr(name), n + 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grown_by_another_process),
		cmocka_unit_test(test_error_counted),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
