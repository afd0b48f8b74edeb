/*
 * test_stats.c - the metric registry: a type said by the caller is the
 * type rendered (and wins over the "_total" guess for the whole family),
 * and a histogram renders as Prometheus expects: cumulative
 * _bucket{le=...} lines in ascending order, a last le="+Inf" bucket equal
 * to _count, then _sum and _count; a value equal to a bound counts in
 * that bound's bucket (le is "less or equal").
 *
 * Workers: their slots sum as they should, a worker can write its own
 * slot only (another's faults, and mprotect() cannot make it writable)
 * while it still reads every slot, and what a worker writes never lowers
 * the supervisor's own metrics nor any sum.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/stats.h"
#include "heapmeter.h"

/* The whole Prometheus text, NUL-terminated; the caller frees it. */
static char *
render(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = tmpfile();

	assert_non_null(fp);
	stats_write_prometheus(fp);
	len = (size_t)ftell(fp);
	rewind(fp);
	assert_non_null(buf = calloc(1, len + 1));
	assert_int_equal(fread(buf, 1, len, fp), len);
	fclose(fp);
	return buf;
}

static void
assert_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p;

	for (p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
	fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void
test_types(void **state)
{
	char *t;

	(void)state;
	/* the guess, for callers that do not say */
	assert_int_equal(stats_type(stats_get("t_guess_total", "g")),
	    STAT_COUNTER);
	assert_int_equal(stats_type(stats_get("t_guess_now", "g")),
	    STAT_GAUGE);
	/* a gauge whose name ends in _total is a gauge when it says so */
	stats_set(stats_gauge("t_queue_total{q=\"a\"}", "a gauge"), 7);
	/* a later untyped member of the family inherits the type */
	stats_set(stats_get("t_queue_total{q=\"b\"}", NULL), 3);
	/* a counter without the suffix */
	stats_add(stats_counter("t_events", "a counter"), 2);
	/* an explicit type given after a guess wins for the family */
	stats_add(stats_get("t_late{x=\"1\"}", "late"), 1);
	stats_counter("t_late{x=\"2\"}", NULL);
	t = render();
	assert_line(t, "# TYPE t_guess_total counter");
	assert_line(t, "# TYPE t_guess_now gauge");
	assert_line(t, "# TYPE t_queue_total gauge");
	assert_line(t, "t_queue_total{q=\"a\"} 7");
	assert_line(t, "t_queue_total{q=\"b\"} 3");
	assert_line(t, "# TYPE t_events counter");
	assert_line(t, "t_events 2");
	assert_line(t, "# TYPE t_late counter");
	assert_line(t, "t_late{x=\"1\"} 1");
	/* HELP and TYPE once per family */
	assert_null(strstr(strstr(t, "# TYPE t_queue_total") + 1,
	    "# TYPE t_queue_total"));
	free(t);
}

static void
test_histogram(void **state)
{
	static const double b[] = { 0.1, 1, 10 };
	struct stat_ctr *h;
	char *t;

	(void)state;
	h = stats_histogram("t_lat_seconds", "latency", b, 3);
	assert_ptr_equal(stats_histogram("t_lat_seconds", NULL, b, 3), h);
	assert_int_equal(stats_type(h), STAT_HISTOGRAM);
	stats_observe(h, 0.05);
	stats_observe(h, 0.1);		/* on the bound: le="0.1" */
	stats_observe(h, 0.5);
	stats_observe(h, 2);
	stats_observe(h, 20);		/* only +Inf */
	stats_add(h, 100);		/* not a counter: no effect */
	assert_int_equal(stats_value(h), 5);
	t = render();
	assert_line(t, "# HELP t_lat_seconds latency");
	assert_line(t, "# TYPE t_lat_seconds histogram");
	assert_non_null(strstr(t,
	    "t_lat_seconds_bucket{le=\"0.1\"} 2\n"
	    "t_lat_seconds_bucket{le=\"1\"} 3\n"
	    "t_lat_seconds_bucket{le=\"10\"} 4\n"
	    "t_lat_seconds_bucket{le=\"+Inf\"} 5\n"
	    "t_lat_seconds_sum 22.65\n"
	    "t_lat_seconds_count 5\n"));
	free(t);
}

static void
test_default_buckets(void **state)
{
	struct stat_ctr *h;
	char *t, *p;
	int n = 0;

	(void)state;
	h = stats_histogram("t_def_seconds", "default", NULL, 0);
	stats_observe(h, 0.0005);
	stats_observe(h, 1000);
	t = render();
	for (p = t; (p = strstr(p, "t_def_seconds_bucket{")) != NULL; p++)
		n++;
	assert_int_equal(n, 17);	/* 16 bounds and +Inf */
	assert_line(t, "t_def_seconds_bucket{le=\"0.001\"} 1");
	assert_line(t, "t_def_seconds_bucket{le=\"300\"} 1");
	assert_line(t, "t_def_seconds_bucket{le=\"+Inf\"} 2");
	assert_line(t, "t_def_seconds_count 2");
	free(t);
}

static void
test_plain(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	(void)state;
	stats_observe(stats_histogram("t_plain_seconds", "p", NULL, 0), 0.5);
	stats_write_plain(fp);
	fclose(fp);
	assert_line(buf, "t_plain_seconds_count 1");
	assert_line(buf, "t_plain_seconds_sum 0.5");
	free(buf);
}

/* A worker's life in a child: attach to slot, count, exit. */
static void
child(struct stats_shm *m, int slot, int64_t n, int64_t active, double secs)
{
	pid_t pid = fork();
	int st;

	assert_true(pid != -1);
	if (pid == 0) {
		stats_shm_attach(m, slot);
		stats_add(stats_counter("t_w_total", "Worker counts"), n);
		stats_set(stats_gauge("mxguard_sessions_active", "Open"),
		    active);
		stats_set(stats_gauge("mxguard_sts_cache_entries", "Shared"), 5);
		stats_observe(stats_histogram("t_w_seconds", "Times", NULL, 0),
		    secs);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(st, 0);
}

/* A worker forked after a worker's death: attaching frees the retired
 * totals it inherited from the supervisor (no module points into them).
 * They were dropped, a leak per worker life (LeakSanitizer in the
 * workers, ns 103 and 104 under ASan).  The heap counters say it
 * (heapmeter.h). */
static void
retired_freed_in_child(struct stats_shm *m)
{
	pid_t pid = fork();
	int st;

	assert_true(pid != -1);
	if (pid == 0) {
		size_t before = mallinfo2().uordblks;

		stats_shm_attach(m, 0);
		/* under ASan: LeakSanitizer in the workers of ns 103, 104 */
		if (!heap_measurable())
			_exit(0);
		_exit(mallinfo2().uordblks < before ? 0 : 5);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* After the single-process tests: it turns this process into a
 * supervisor (each later test supervises slots of its own). */
static void
test_workers(void **state)
{
	/* static: the slots live as long as the process, and a later
	 * test supervising its own must not make them a leak */
	static struct stats_shm *m;
	char *t;

	(void)state;
	assert_non_null(m = stats_shm_new(2));
	stats_add(stats_counter("t_sup_total", "Supervisor's"), 1);
	child(m, 0, 3, 2, 0.5);
	child(m, 1, 4, 1, 2);
	stats_shm_supervise(m);
	assert_int_equal(stats_shm_sum(m, "mxguard_sessions_active"), 3);
	t = render();
	assert_line(t, "t_w_total 7");		/* summed */
	assert_line(t, "t_sup_total 1");	/* the supervisor's own */
	assert_line(t, "mxguard_sessions_active 3");
	assert_line(t, "mxguard_sts_cache_entries 5");	/* shared: not 10 */
	assert_line(t, "t_w_seconds_count 2");
	assert_line(t, "t_w_seconds_bucket{le=\"0.5\"} 1");
	assert_line(t, "# TYPE t_w_total counter");
	assert_line(t, "# HELP t_w_total Worker counts");
	assert_null(strstr(strstr(t, "# TYPE t_w_total") + 1,
	    "# TYPE t_w_total"));
	free(t);

	/* worker 0 dies: its counters stay, its gauges go */
	stats_shm_retire(m, 0);
	assert_int_equal(stats_shm_sum(m, "mxguard_sessions_active"), 1);
	t = render();
	assert_line(t, "t_w_total 7");
	assert_line(t, "mxguard_sessions_active 1");
	assert_line(t, "t_w_seconds_count 2");
	free(t);

	/* a worker forked now frees the retired totals it inherits */
	retired_freed_in_child(m);

	/* its successor counts on from there: never backwards */
	child(m, 0, 1, 0, 1);
	t = render();
	assert_line(t, "t_w_total 8");
	assert_line(t, "t_w_seconds_count 3");
	assert_line(t, "mxguard_sessions_active 1");
	free(t);
}

/* fn(m, arg) in a child process; its wait status. */
static int
in_child(void (*fn)(struct stats_shm *, int), struct stats_shm *m, int arg)
{
	pid_t pid = fork();
	int st;

	assert_true(pid != -1);
	if (pid == 0) {
		fn(m, arg);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void
holds_sessions(struct stats_shm *m, int n)
{
	stats_shm_attach(m, 1);
	stats_set(stats_gauge("mxguard_sessions_active", "Open"), n);
	stats_shm_beat(1234);
}

/* Worker 0, compromised, after worker 1: it reads slot 1 but cannot get
 * write access to it.  Exit codes say which check failed. */
static void
peeks(struct stats_shm *m, int unused)
{
	char *other;
	int fd;

	stats_shm_attach(m, 0);
	/* its own slot: writable */
	stats_set(stats_gauge("mxguard_sessions_active", "Open"), 1);
	/* every slot: readable (the session limit is the daemon's) */
	if (stats_shm_sum(m, "mxguard_sessions_active") != 3)
		_exit(2);
	other = (char *)stats_shm_slot_view(m, 1);
	if (mprotect(other, (size_t)sysconf(_SC_PAGESIZE), PROT_READ |
	    PROT_WRITE) != -1 || errno != EACCES)
		_exit(3);
	/* nor through /proc/self/mem, which writes read-only pages of a
	 * private mapping (FOLL_FORCE) */
	if ((fd = open("/proc/self/mem", O_RDWR)) != -1 &&
	    pwrite(fd, "x", 1, (off_t)(uintptr_t)other) != -1)
		_exit(4);
	_exit(0);
}

/* The same worker stores into a slot (the byte it holds: only the store
 * matters, and a slot it may write stays as it was). */
static void
writes(struct stats_shm *m, int slot)
{
	volatile char *p;

	stats_shm_attach(m, 0);
	p = (volatile char *)stats_shm_slot_view(m, slot);
	signal(SIGSEGV, SIG_DFL);	/* not ASan's: the status says it */
	*p = *p;
	_exit(0);
}

static void
test_worker_own_slot_only(void **state)
{
	static struct stats_shm *m;
	int st;

	(void)state;
	assert_non_null(m = stats_shm_new(2));
	stats_shm_supervise(m);
	assert_int_equal(in_child(holds_sessions, m, 2), 0);
	assert_int_equal(stats_shm_last_beat(m, 1), 1234);

	st = in_child(peeks, m, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);

	st = in_child(writes, m, 1);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSEGV);
	/* its own slot it may write */
	assert_int_equal(in_child(writes, m, 0), 0);

	/* slot 1 as worker 1 left it */
	assert_int_equal(stats_shm_last_beat(m, 1), 1234);
	stats_shm_retire(m, 0);
	assert_int_equal(stats_shm_sum(m, "mxguard_sessions_active"), 2);
}

/* Worker 0: honest numbers.  Worker 1: numbers that, summed, would lower
 * what the supervisor shows, or wrap. */
static void
counts(struct stats_shm *m, int slot)
{
	stats_shm_attach(m, slot);
	if (slot == 0) {
		stats_add(stats_counter("t_neg_total", "Counts"), 4);
		stats_set(stats_gauge("mxguard_sessions_active", "Open"), 2);
		stats_add(stats_counter("t_big_total", "Big"), INT64_MAX);
		return;
	}
	/* the supervisor's own, of every type */
	stats_add(stats_counter("t_own_total", "Own"), -100);
	stats_set(stats_gauge("t_own_now", "Own"), -100);
	stats_observe(stats_histogram("t_own_seconds", "Own", NULL, 0), 1);
	stats_add(stats_counter("t_neg_total", "Counts"), -3);
	stats_set(stats_gauge("mxguard_sessions_active", "Open"), -5);
	stats_add(stats_counter("t_big_total", "Big"), INT64_MAX);
}

static void
test_worker_numbers_untrusted(void **state)
{
	static struct stats_shm *m;
	char *t;
	int round;

	(void)state;
	assert_non_null(m = stats_shm_new(2));
	stats_add(stats_counter("t_own_total", "Supervisor's"), 5);
	stats_set(stats_gauge("t_own_now", "Supervisor's"), 2);
	stats_observe(stats_histogram("t_own_seconds", "Supervisor's", NULL,
	    0), 0.5);
	stats_shm_supervise(m);
	assert_int_equal(in_child(counts, m, 0), 0);
	assert_int_equal(in_child(counts, m, 1), 0);
	/* slot 1's -5 counts as 0: it does not hide slot 0's sessions */
	assert_int_equal(stats_shm_sum(m, "mxguard_sessions_active"), 2);
	/* the same from the slots, then from the retired totals */
	for (round = 0; round < 2; round++) {
		t = render();
		assert_line(t, "t_own_total 5");
		assert_line(t, "t_own_now 2");
		assert_line(t, "t_own_seconds_count 1");
		assert_line(t, "t_neg_total 4");
		assert_line(t, "t_big_total 9223372036854775807");
		free(t);
		stats_shm_retire(m, 1);
		stats_shm_retire(m, 0);
	}
}

/* Worker 1, compromised, names its metrics so that the text it gets
 * printed holds lines of its making: a forged sample of the supervisor's
 * own counter after a newline in a name, and a comment and a sample in
 * a help text. */
static void
forges(struct stats_shm *m, int slot)
{
	stats_shm_attach(m, slot);
	stats_add(stats_counter("t_forge_total 1\nt_sup_own_total", "x"), 0);
	stats_add(stats_counter("t_forge2_total{a=\"1\"} 1\n"
	    "t_sup_own_total{b=\"2\"}", "x"), 0);
	stats_add(stats_counter("t_forge3_total", "help\nt_sup_own_total 0"),
	    1);
	stats_add(stats_counter("t_forge4_total{a=\"1\" 2", "x"), 1);
	/* an honest one beside them still counts */
	stats_add(stats_counter("t_fine_total{a=\"x y\"}", "Fine"), 2);
}

static void
test_worker_names_untrusted(void **state)
{
	static struct stats_shm *m;
	const char *p;
	char *t;
	int n;

	(void)state;
	assert_non_null(m = stats_shm_new(2));
	stats_add(stats_counter("t_sup_own_total", "Supervisor's"), 5);
	stats_shm_supervise(m);
	assert_int_equal(in_child(forges, m, 1), 0);
	t = render();
	/* the supervisor's counter: one sample, its own */
	for (n = 0, p = t; (p = strstr(p, "t_sup_own_total")) != NULL; p++)
		if (p == t || p[-1] == '\n')
			n++;
	if (n != 1) {
		fprintf(stderr, "%s", t);
		fail_msg("t_sup_own_total at the start of %d lines (above)",
		    n);
	}
	assert_line(t, "t_sup_own_total 5");
	assert_line(t, "t_fine_total{a=\"x y\"} 2");
	/* a sample line is NAME[{LABELS}] VALUE: no name with a newline,
	 * nor a label set left open, reaches the text */
	assert_null(strstr(t, "t_forge4_total"));
	free(t);
}

/* Worker 1, compromised, claims a million sessions; worker 0 holds 3. */
static void
claims_full(struct stats_shm *m, int slot)
{
	stats_shm_attach(m, slot);
	stats_set(stats_gauge("mxguard_sessions_active", "Open"),
	    slot == 1 ? 1000000 : 3);
}

/*
 * The supervisor's saturation check (cmd/workers.c) sums each worker's
 * sessions up to its share: a compromised worker alone cannot make a
 * daemon of max_sessions 100 look full (which fail_mode = open turns
 * into flows sent direct).  Red before: the plain sum, 1,000,003.
 */
static void
test_sum_capped(void **state)
{
	static struct stats_shm *m;

	(void)state;
	assert_non_null(m = stats_shm_new(2));
	stats_shm_supervise(m);
	assert_int_equal(in_child(claims_full, m, 0), 0);
	assert_int_equal(in_child(claims_full, m, 1), 0);
	assert_int_equal(stats_shm_sum(m, "mxguard_sessions_active"),
	    1000003);
	/* 2 workers, max_sessions 100: a share of 50 each */
	assert_int_equal(stats_shm_sum_capped(m, "mxguard_sessions_active",
	    50), 53);
	assert_true(stats_shm_sum_capped(m, "mxguard_sessions_active", 50) <
	    100);
	assert_int_equal(stats_shm_sum_capped(m, "mxguard_sessions_active",
	    -1), 1000003);
	stats_shm_retire(m, 0);
	stats_shm_retire(m, 1);
}

/* Worker 0, compromised again in each life (arg), registers 500 names
 * no other life had, beside an honest counter. */
static int life;

static void
new_names(struct stats_shm *m, int slot)
{
	char name[64];
	int i;

	stats_shm_attach(m, slot);
	stats_add(stats_counter("t_honest_total", "Honest"), 1);
	for (i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "t_life%d_n%d_total", life, i);
		stats_add(stats_counter(strdup(name), "x"), 1);
	}
}

/*
 * The retired totals keep a bounded number of names: 20 lives of a
 * worker with 500 new names each would add 10,000 (and every scrape
 * walks the list once per name); the honest counter, there from the
 * first life, goes on counting every life.  Red before: no bound.
 */
static void
test_retired_names_bounded(void **state)
{
	static struct stats_shm *m;
	const char *p;
	char *t;
	int n;

	(void)state;
	assert_non_null(m = stats_shm_new(1));
	stats_shm_supervise(m);
	for (life = 0; life < 20; life++) {
		assert_int_equal(in_child(new_names, m, 0), 0);
		stats_shm_retire(m, 0);
	}
	t = render();
	assert_line(t, "t_honest_total 20");
	for (n = 0, p = t; (p = strstr(p, "\nt_life")) != NULL; p++)
		n++;
	if (n > 4 * 512)
		fail_msg("%d names of dead workers kept", n);
	assert_true(n >= 1000);	/* the first lives' are there */
	free(t);
}

/* Worker 0, compromised, registers before worker 1 the names worker 1
 * counts its failures and health under, with other types: a failure
 * counter as a gauge of 0 (and, in a life that ends, as a histogram),
 * the resolver's health gauge as a counter of 1, Redis's as a histogram.
 * Worker 1, honest, says 5 failures and both unhealthy (0). */
static void
claims_types(struct stats_shm *m, int slot)
{
	static const double one[] = { 1 };

	stats_shm_attach(m, slot);
	if (slot == 1) {
		stats_add(stats_counter("t_fail_total", "Failures"), 5);
		stats_add(stats_counter("t_fail2_total", "Failures"), 5);
		stats_set(stats_gauge("mxguard_dns_validating", "Up"), 0);
		stats_set(stats_gauge("mxguard_redis_up", "Up"), 0);
		return;
	}
	if (life == 0) {	/* dies: into the retired totals */
		stats_observe(stats_histogram("t_fail2_total", "x", one, 1), 0);
		return;
	}
	stats_set(stats_gauge("t_fail_total", "x"), 0);
	stats_add(stats_counter("mxguard_dns_validating", "x"), 1);
	stats_observe(stats_histogram("mxguard_redis_up", "x", one, 1), 0);
}

/*
 * A worker's records of another type than the name's do not push the
 * honest workers' records of that name out of the merge: a counter is
 * a "_total" name and a "_total" name a counter (core/stats.h), and a
 * gauge wins over a histogram of the same name.  Red before: the first
 * claim fixed the type, and the honest records (5 failures, resolver and
 * Redis down) were dropped as of another type; from the retired totals,
 * for good.
 */
static void
test_worker_types_untrusted(void **state)
{
	static struct stats_shm *m;
	char *t;

	(void)state;
	assert_non_null(m = stats_shm_new(2));
	stats_shm_supervise(m);
	life = 0;
	assert_int_equal(in_child(claims_types, m, 0), 0);
	stats_shm_retire(m, 0);
	life = 1;
	assert_int_equal(in_child(claims_types, m, 0), 0);
	assert_int_equal(in_child(claims_types, m, 1), 0);
	t = render();
	assert_line(t, "# TYPE t_fail_total counter");
	assert_line(t, "t_fail_total 5");
	assert_line(t, "# TYPE t_fail2_total counter");
	assert_line(t, "t_fail2_total 5");
	assert_line(t, "# TYPE mxguard_dns_validating gauge");
	assert_line(t, "mxguard_dns_validating 0");
	assert_line(t, "# TYPE mxguard_redis_up gauge");
	assert_line(t, "mxguard_redis_up 0");
	assert_null(strstr(t, "mxguard_redis_up_bucket"));
	free(t);
	stats_shm_retire(m, 0);
	stats_shm_retire(m, 1);
}

/* Worker 0: an honest histogram.  Worker 1, compromised: gauges and a
 * histogram named like that histogram's lines. */
static void
shadows_histogram(struct stats_shm *m, int slot)
{
	static const double one[] = { 1 };

	stats_shm_attach(m, slot);
	if (slot == 0) {
		stats_observe(stats_histogram("t_shadow_seconds", "Latency", one,
		    1), 0.5);
		return;
	}
	stats_set(stats_gauge("t_shadow_seconds_count", "x"), 7);
	stats_observe(stats_histogram("t_shadow_seconds_sum", "x", one, 1),
	    7);
	stats_set(stats_gauge("t_shadow_seconds_bucket{le=\"1\"}", "x"), 7);
}

/* Lines of t that begin with prefix. */
static int
lines_starting(const char *t, const char *prefix)
{
	const char *p;
	int n = 0;

	for (p = t; (p = strstr(p, prefix)) != NULL; p++)
		if (p == t || p[-1] == '\n')
			n++;
	return n;
}

/*
 * A worker's gauges and histogram named like an honest histogram's
 * lines: printed as families of their own, they put a second sample of
 * a name in the text and a TYPE for a name the histogram's lines already
 * use, which a strict parser answers by refusing the whole scrape.  Red
 * before: printed.  They are left out; the histogram is as its worker
 * said.
 */
static void
test_worker_gauge_shadows_histogram(void **state)
{
	static struct stats_shm *m;
	char *t;

	(void)state;
	assert_non_null(m = stats_shm_new(2));
	stats_shm_supervise(m);
	assert_int_equal(in_child(shadows_histogram, m, 0), 0);
	assert_int_equal(in_child(shadows_histogram, m, 1), 0);
	t = render();
	if (lines_starting(t, "# TYPE t_shadow_seconds") != 1 ||
	    strstr(t, "t_shadow_seconds_sum_") != NULL ||
	    lines_starting(t, "t_shadow_seconds_count ") != 1 ||
	    lines_starting(t, "t_shadow_seconds_sum ") != 1 ||
	    lines_starting(t, "t_shadow_seconds_bucket{le=\"1\"} ") != 1)
		fail_msg("a record beside the histogram's lines:\n%s", t);
	assert_line(t, "t_shadow_seconds_count 1");
	assert_line(t, "t_shadow_seconds_bucket{le=\"1\"} 1");
	free(t);
	stats_shm_retire(m, 0);
	stats_shm_retire(m, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_default_buckets),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_workers),
		cmocka_unit_test(test_worker_own_slot_only),
		cmocka_unit_test(test_worker_numbers_untrusted),
		cmocka_unit_test(test_worker_names_untrusted),
		cmocka_unit_test(test_retired_names_bounded),
		cmocka_unit_test(test_sum_capped),
		cmocka_unit_test(test_worker_types_untrusted),
		cmocka_unit_test(test_worker_gauge_shadows_histogram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
