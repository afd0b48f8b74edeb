/*
 * test_control.c - the control socket and the metrics endpoint
 * (cmd/control.c) on a real event loop, with real sockets: the unix
 * socket and the TCP endpoint keep separate budgets of connections, idle
 * and trickling metrics clients are closed at their deadline, refusals
 * are counted and logged once per flood.  Both show the digest of the
 * configuration run (and, in the supervisor, a worker that says it runs
 * another).
 *
 * cmd/ is not in libmxguard.a, so the module is compiled in here (with
 * the request grammar it calls); the test sees its constants.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <poll.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmd/control.c"
#include "cmd/ctlreq.c"

/* more than the one limit of 32 both listeners used to share */
#define NIDLE		40

static struct ev_loop *loop;

static void
stop_cb(void *arg)
{
	ev_loop_stop(loop);
}

/* Runs the loop for ms milliseconds. */
static void
pump(uint64_t ms)
{
	struct ev_timer *t = ev_timer_new(loop, stop_cb, NULL);

	assert_non_null(t);
	ev_timer_arm(t, ms);
	assert_int_equal(ev_loop_run(loop), 0);
	ev_timer_free(t);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A free TCP port on 127.0.0.1 (bound, read, released). */
static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd, port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int
tcp_connect(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	assert_true((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) >=
	    0);
	/* loopback: the handshake completes in the kernel's backlog */
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		assert_int_equal(errno, EINPROGRESS);
	return fd;
}

/*
 * What a client socket says now, without blocking: 1 closed by the peer
 * (EOF or reset; what it got before is appended to buf), 0 still open.
 */
static int
peer_closed(int fd, char *buf, size_t bufsz)
{
	size_t have = strlen(buf);
	ssize_t n;

	for (;;) {
		n = recv(fd, buf + have, bufsz - 1 - have, MSG_DONTWAIT);
		if (n > 0) {
			have += (size_t)n;
			buf[have] = '\0';
			if (have == bufsz - 1)
				have = 0;	/* only the end matters */
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return 1;
		return 0;
	}
}

/*
 * `mxguard status` as cmd/status.c asks it: "status\n" (or req), shut
 * down, read to EOF, while the daemon's loop runs (same thread: pumped in
 * slices).
 */
static void
unix_ask(const char *path, const char *req, char *out, size_t outsz)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	uint64_t until = now_ms() + 2000;
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL),
	    (ssize_t)strlen(req));
	shutdown(fd, SHUT_WR);
	out[0] = '\0';
	while (!peer_closed(fd, out, outsz) && now_ms() < until)
		pump(10);
	close(fd);
}

static void
unix_status(const char *path, char *out, size_t outsz)
{
	unix_ask(path, "status\n", out, outsz);
}

/*
 * Each test's directory (the socket, the captured log), its daemon side
 * and the config, undone by teardown() also when an assertion failed:
 * stderr comes back, and the captured lines (cmocka's message of the
 * failure among them) are copied to it then.
 */
static char dir[64], path[96], logpath[96];
static int saved_stderr = -1, passed;
static struct config *cfg;
static struct control *ctl;

static int
setup(void **state)
{
	char err[256];
	int fd;

	snprintf(dir, sizeof(dir), "/tmp/test_control.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	if ((fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		return -1;
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init("mxguard", 0, LOG_LVL_INFO);
	passed = 0;
	if ((cfg = config_load(NULL, err, sizeof(err))) == NULL)
		return -1;
	free(cfg->control_socket);
	free(cfg->metrics_listen);
	free(cfg->user);
	cfg->control_socket = strdup(path);
	cfg->user = strdup("");
	if (asprintf(&cfg->metrics_listen, "127.0.0.1:%d", free_port()) ==
	    -1)
		cfg->metrics_listen = NULL;
	if (cfg->control_socket == NULL || cfg->user == NULL ||
	    cfg->metrics_listen == NULL || (loop = ev_loop_new()) == NULL)
		return -1;
	if ((ctl = control_open(loop, cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "control_open: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	char buf[4096];
	ssize_t n;
	int fd;

	control_close(ctl);
	ctl = NULL;
	ev_loop_free(loop);
	loop = NULL;
	config_free(cfg);
	cfg = NULL;
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	if (!passed && (fd = open(logpath, O_RDONLY)) != -1) {
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			(void)!write(STDERR_FILENO, buf, (size_t)n);
		close(fd);
	}
	unlink(logpath);
	unlink(path);
	rmdir(dir);
	return 0;
}

static int
metrics_port(void)
{
	return atoi(strrchr(cfg->metrics_listen, ':') + 1);
}

static int
log_count(const char *needle)
{
	char line[1024];
	FILE *fp;
	int n = 0;

	fflush(stderr);
	assert_non_null(fp = fopen(logpath, "r"));
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(fp);
	return n;
}

static int64_t
counter(const char *name)
{
	return stats_value(stats_get(name, NULL));
}

/*
 * One metrics client trickles its request a byte at a time, NIDLE more
 * connect and say nothing: `mxguard status` on the unix socket is still
 * answered; the metrics clients beyond CTL_MAX_METRICS are refused at
 * once (503), counted, and logged in one line; the idle and the
 * trickling ones are closed at CTL_METRICS_TIMEOUT_MS, not later; then
 * the endpoint serves a scrape again.
 */
static void
test_metrics_flood_leaves_control_socket(void **state)
{
	char out[65536], got[NIDLE + 1][256], line[128];
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	int idle[NIDLE], trickle, port = metrics_port(), i, open_n, busy;
	size_t sent = 0;
	uint64_t t0, closed_at = 0;

	/* the flood, accepted (or refused) as it comes: the listen backlog
	 * is short, and a SYN beyond it would wait for a retransmission */
	t0 = now_ms();
	trickle = tcp_connect(port);
	pump(2);
	for (i = 0; i < NIDLE; i++) {
		idle[i] = tcp_connect(port);
		pump(2);
	}
	pump(100);
	memset(got, 0, sizeof(got));

	/* the operator gets in */
	unix_status(path, out, sizeof(out));
	assert_non_null(strstr(out, "# mxguard pid "));
	assert_non_null(strstr(out, "mxguard_control_requests_total "));

	/* beyond the metrics budget: 503 at once, one log line */
	open_n = busy = 0;
	for (i = 0; i < NIDLE; i++) {
		if (!peer_closed(idle[i], got[i], sizeof(got[i])))
			open_n++;
		else if (strncmp(got[i], "HTTP/1.1 503 ", 13) == 0)
			busy++;
	}
	/* the trickling client holds the first slot */
	assert_int_equal(open_n, CTL_MAX_METRICS - 1);
	assert_int_equal(busy, NIDLE - (CTL_MAX_METRICS - 1));
	assert_int_equal(counter("mxguard_control_refused_total{listener="
	    "\"metrics\",reason=\"max_connections\"}"),
	    NIDLE - (CTL_MAX_METRICS - 1));
	assert_int_equal(counter("mxguard_control_refused_total{listener="
	    "\"unix\",reason=\"max_connections\"}"), 0);
	/* a flood is one line (the first refusal), not one per connection */
	snprintf(line, sizeof(line), "event=control-refused listener=metrics "
	    "reason=max_connections limit=%d refused=1", CTL_MAX_METRICS);
	assert_int_equal(log_count(line), 1);
	assert_int_equal(log_count("event=control-refused"), 1);

	/* the deadline: every idle client closed at CTL_METRICS_TIMEOUT_MS,
	 * the trickling one too, its bytes notwithstanding */
	for (;;) {
		if (sent < sizeof(req) - 2)
			(void)!send(trickle, req + sent++, 1, MSG_NOSIGNAL);
		pump(100);
		for (i = 0, open_n = 0; i < NIDLE; i++)
			if (idle[i] != -1 && !peer_closed(idle[i], got[i],
			    sizeof(got[i])))
				open_n++;
		got[NIDLE][0] = '\0';
		if (open_n == 0 && peer_closed(trickle, got[NIDLE],
		    sizeof(got[NIDLE]))) {
			closed_at = now_ms();
			break;
		}
		if (now_ms() - t0 > CTL_METRICS_TIMEOUT_MS + 1500)
			fail_msg("%d idle metrics clients still open after "
			    "%llu ms", open_n,
			    (unsigned long long)(now_ms() - t0));
	}
	assert_true(closed_at - t0 >= CTL_METRICS_TIMEOUT_MS - 200);
	assert_string_equal(got[NIDLE], "");	/* closed unanswered */
	assert_true(counter("mxguard_control_timeouts_total{listener="
	    "\"metrics\"}") >= CTL_MAX_METRICS);
	for (i = 0; i < NIDLE; i++)
		close(idle[i]);
	close(trickle);

	/* slots free again: a scrape is served */
	{
		int fd = tcp_connect(port);
		uint64_t until = now_ms() + 2000;

		pump(50);
		assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL),
		    (ssize_t)(sizeof(req) - 1));
		out[0] = '\0';
		while (!peer_closed(fd, out, sizeof(out)) && now_ms() < until)
			pump(10);
		close(fd);
		assert_int_equal(strncmp(out, "HTTP/1.1 200 OK\r\n", 17), 0);
		assert_non_null(strstr(out, "mxguard_control_refused_total{"));
	}
	passed = 1;
}

/*
 * The unix socket's own budget: a flood of idle local clients fills it,
 * but the metrics endpoint still answers (and the unix clients beyond
 * the budget hear "error busy").
 */
static void
test_unix_flood_leaves_metrics(void **state)
{
	char out[65536], got[CTL_MAX_UNIX + 4][64];
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fds[CTL_MAX_UNIX + 4], port = metrics_port(), i, fd, busy = 0;
	uint64_t until;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	for (i = 0; i < CTL_MAX_UNIX + 4; i++) {
		assert_true((fds[i] = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&sun,
		    sizeof(sun)), 0);
		pump(5);	/* the backlog is short: accept as we go */
	}
	pump(50);
	memset(got, 0, sizeof(got));
	for (i = 0; i < CTL_MAX_UNIX + 4; i++)
		if (peer_closed(fds[i], got[i], sizeof(got[i])) &&
		    strcmp(got[i], "error busy\n") == 0)
			busy++;
	assert_int_equal(busy, 4);

	fd = tcp_connect(port);
	pump(50);
	assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL),
	    (ssize_t)(sizeof(req) - 1));
	out[0] = '\0';
	until = now_ms() + 2000;
	while (!peer_closed(fd, out, sizeof(out)) && now_ms() < until)
		pump(10);
	close(fd);
	assert_int_equal(strncmp(out, "HTTP/1.1 200 OK\r\n", 17), 0);

	for (i = 0; i < CTL_MAX_UNIX + 4; i++)
		close(fds[i]);
	assert_int_equal(log_count("event=control-refused listener=unix "
	    "reason=max_connections"), 1);
	passed = 1;
}

/*
 * The last CTL_ROOT_ONLY unix slots are root's: a process of another uid
 * (the daemon's `user`, the socket's group) that opens CTL_MAX_UNIX idle
 * connections gets CTL_MAX_UNIX - CTL_ROOT_ONLY of them, and root (what
 * `rules watch` runs as) still gets status answered and may hold the
 * rest; beyond them root hears "error busy" too.
 */
static void
test_root_slots_kept(void **state)
{
	char out[65536], busy[64];
	const char *name = "mxguard_control_refused_total{listener=\"unix\","
	    "reason=\"max_connections\"}";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int ready[2], done[2], fds[CTL_ROOT_ONLY + 1], i;
	int64_t c0 = counter(name);
	uint64_t until;
	pid_t pid;
	char b;

	if (geteuid() != 0)
		fail_msg("needs root (a peer of another uid)");
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(done), 0);
	if ((pid = fork()) == 0) {
		int cfd[CTL_MAX_UNIX];

		close(ready[0]);
		close(done[1]);
		if (setgid(65534) == -1 || setuid(65534) == -1)
			_exit(2);
		for (i = 0; i < CTL_MAX_UNIX; i++)
			if ((cfd[i] = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
			    connect(cfd[i], (struct sockaddr *)&sun,
			    sizeof(sun)) == -1)
				_exit(3);
		(void)!write(ready[1], "r", 1);
		(void)!read(done[0], &b, 1);
		_exit(0);
	}
	assert_true(pid > 0);
	close(ready[1]);
	close(done[0]);
	/* accept while the child connects (the backlog is short) */
	until = now_ms() + 5000;
	for (;;) {
		struct pollfd p = { .fd = ready[0], .events = POLLIN };

		pump(5);
		if (poll(&p, 1, 0) == 1)
			break;
		assert_true(now_ms() < until);
	}
	assert_int_equal(read(ready[0], &b, 1), 1);
	pump(50);
	assert_int_equal(counter(name) - c0, CTL_ROOT_ONLY);

	/* root is answered, and holds the rest */
	unix_status(path, out, sizeof(out));
	assert_non_null(strstr(out, "# mxguard pid "));
	for (i = 0; i < CTL_ROOT_ONLY + 1; i++) {
		assert_true((fds[i] = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&sun,
		    sizeof(sun)), 0);
		pump(5);
	}
	pump(50);
	for (i = 0; i < CTL_ROOT_ONLY; i++) {
		busy[0] = '\0';
		assert_false(peer_closed(fds[i], busy, sizeof(busy)));
	}
	busy[0] = '\0';
	assert_true(peer_closed(fds[CTL_ROOT_ONLY], busy, sizeof(busy)));
	assert_string_equal(busy, "error busy\n");
	assert_int_equal(counter(name) - c0, CTL_ROOT_ONLY + 1);
	for (i = 0; i < CTL_ROOT_ONLY + 1; i++)
		close(fds[i]);
	(void)!write(done[1], "d", 1);
	close(done[1]);
	close(ready[0]);
	assert_int_equal(waitpid(pid, &i, 0), pid);
	assert_true(WIFEXITED(i) && WEXITSTATUS(i) == 0);
	passed = 1;
}

/*
 * accept() failing for lack of descriptors (EMFILE): the listener rests
 * CTL_PAUSE_MS instead of being woken again at once for ever (epoll is
 * level-triggered and the connection stays in the backlog), the failure
 * is counted and logged once, and afterwards the waiting client is
 * served.
 */
static void
test_emfile_rests_listener(void **state)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	const char *name = "mxguard_control_refused_total{listener="
	    "\"metrics\",reason=\"accept_error\"}";
	char out[65536];
	struct rlimit old, low;
	int64_t before = counter(name);
	uint64_t until;
	int fd, next;

	fd = tcp_connect(metrics_port());
	assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL),
	    (ssize_t)(sizeof(req) - 1));
	/* no descriptor left for accept() */
	assert_true((next = dup(0)) >= 0);
	close(next);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)next;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	pump(300);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	/* one failed accept in 300 ms, not one per loop turn */
	assert_int_equal(counter(name) - before, 1);
	assert_int_equal(log_count("event=control-refused listener=metrics "
	    "reason=accept_error refused=1 error=\"Too many open files\""), 1);
	/* rested, then back: the client that waited is answered */
	out[0] = '\0';
	until = now_ms() + CTL_PAUSE_MS + 3000;
	while (!peer_closed(fd, out, sizeof(out)) && now_ms() < until)
		pump(10);
	close(fd);
	assert_int_equal(strncmp(out, "HTTP/1.1 200 OK\r\n", 17), 0);
	assert_int_equal(counter(name) - before, 1);
	passed = 1;
}

/* control_close() takes the socket file away (the next daemon's check
 * for a live one must not find it). */
static void
test_close_unlinks(void **state)
{
	control_close(ctl);
	ctl = NULL;
	assert_int_equal(access(path, F_OK), -1);
	passed = 1;
}

/*
 * The configuration the daemon runs: status has its digest (the
 * configuration's, then the one a reload gave control_set_config()) and
 * when it was applied; metrics have mxguard_config_info{digest} and
 * mxguard_config_applied_timestamp_seconds, and no stale digest.  With
 * workers, a worker whose slot says another digest is named in status
 * and counted in mxguard_config_workers_other; one that says the same,
 * or nothing, is not.
 */
static void
test_config_digest(void **state)
{
	/* (the slots live as long as the process: no free) */
	static struct stats_shm *shm;
	char out[65536], want[128];
	uint32_t d = config_digest32(cfg);
	time_t before = time(NULL);
	pid_t pid;
	int st, i;

	unix_status(path, out, sizeof(out));
	snprintf(want, sizeof(want), "\n# config digest %08x, applied ", d);
	assert_non_null(strstr(out, want));
	unix_ask(path, "metrics\n", out, sizeof(out));
	snprintf(want, sizeof(want), "\nmxguard_config_info{digest=\"%08x\"} "
	    "1\n", d);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "\n# TYPE mxguard_config_info gauge\n"));
	assert_non_null(strstr(out,
	    "\nmxguard_config_applied_timestamp_seconds "));
	assert_null(strstr(out, "mxguard_config_workers_other"));

	control_set_config(ctl, d ^ 0x5a5a5a5a);
	unix_ask(path, "metrics\n", out, sizeof(out));
	snprintf(want, sizeof(want), "\nmxguard_config_info{digest=\"%08x\"} "
	    "1\n", d ^ 0x5a5a5a5a);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "digest=\"%08x\"", d);
	assert_null(strstr(out, want));
	{
		static const char ts[] =
		    "\nmxguard_config_applied_timestamp_seconds ";

		assert_true(atoll(strstr(out, ts) + sizeof(ts) - 1) >=
		    (long long)before);
	}

	/* three workers: 0 says the same digest, 1 another, 2 nothing */
	assert_non_null(shm = stats_shm_new(3));
	for (i = 0; i < 2; i++) {
		if ((pid = fork()) == 0) {
			stats_shm_attach(shm, i);
			stats_shm_config(i == 0 ? d ^ 0x5a5a5a5a : 0xabcdef01);
			_exit(0);
		}
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	control_set_workers(ctl, shm, 3);
	unix_status(path, out, sizeof(out));
	assert_non_null(strstr(out, "\n# worker 1 runs config digest "
	    "abcdef01, not "));
	assert_null(strstr(out, "# worker 0 "));
	assert_null(strstr(out, "# worker 2 "));
	unix_ask(path, "metrics\n", out, sizeof(out));
	assert_non_null(strstr(out, "\nmxguard_config_workers_other 1\n"));
	/* a dead worker's slot says nothing */
	stats_shm_retire(shm, 1);
	unix_ask(path, "metrics\n", out, sizeof(out));
	assert_non_null(strstr(out, "\nmxguard_config_workers_other 0\n"));
	control_set_workers(ctl, NULL, 0);
	passed = 1;
}

/* Lines of out that begin with prefix. */
static int
lines_starting(const char *out, const char *prefix)
{
	const char *p;
	int n = 0;

	for (p = out; (p = strstr(p, prefix)) != NULL; p++)
		if (p == out || p[-1] == '\n')
			n++;
	return n;
}

/*
 * A compromised worker registers metrics named like the families the
 * supervisor prints outside the registry (render_config()): its slot's
 * records were merged and printed before them, so the metrics said a
 * digest of the worker's choosing beside the supervisor's, a second
 * mxguard_config_workers_other sample, and each family twice with its
 * HELP and TYPE (a scraper that parses the text strictly throws the
 * whole answer away).  Now no record of those names is merged.
 */
static void
test_config_info_not_forged(void **state)
{
	static struct stats_shm *shm;
	char out[65536];
	pid_t pid;
	int st;

	assert_non_null(shm = stats_shm_new(1));
	if ((pid = fork()) == 0) {
		stats_shm_attach(shm, 0);
		stats_set(stats_gauge("mxguard_config_info{digest=\"deadbeef\"}",
		    "Forged"), 1);
		stats_set(stats_gauge("mxguard_config_workers_other", "Forged"),
		    -7);
		stats_set(stats_gauge("mxguard_config_applied_timestamp_seconds",
		    "Forged"), 1);
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	stats_shm_supervise(shm);
	control_set_workers(ctl, shm, 1);
	unix_ask(path, "metrics\n", out, sizeof(out));
	stats_shm_supervise(NULL);
	control_set_workers(ctl, NULL, 0);
	if (strstr(out, "deadbeef") != NULL ||
	    lines_starting(out, "# TYPE mxguard_config_info ") != 1 ||
	    lines_starting(out, "# TYPE mxguard_config_workers_other ") != 1 ||
	    lines_starting(out, "# TYPE mxguard_config_applied_timestamp_"
	    "seconds ") != 1 ||
	    lines_starting(out, "mxguard_config_workers_other ") != 1 ||
	    lines_starting(out, "mxguard_config_applied_timestamp_seconds ")
	    != 1)
		fail_msg("a worker's record printed as the supervisor's:\n%s",
		    out);
	assert_non_null(strstr(out, "\nmxguard_config_workers_other 0\n"));
	passed = 1;
}

/*
 * A control socket in a directory others may write: whoever writes it
 * can put a listening socket of theirs at the name before a start, which
 * then answers `mxguard status` and `rules watch` (its digest decides
 * whether rules a firewall reload took away go back in).  The open says
 * so (event=control-dir-unsafe; red before: no line); setup()'s
 * directory, root's or ours and 0700, draws none.
 */
static void
test_unsafe_dir_warned(void **state)
{
	char sub[300], sock[320];
	struct control *c2;
	char err[256];

	assert_int_equal(log_count("event=control-dir-unsafe"), 0);
	snprintf(sub, sizeof(sub), "%s/open", dir);
	snprintf(sock, sizeof(sock), "%s/control.sock", sub);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(chmod(sub, 01777), 0);
	free(cfg->control_socket);
	assert_non_null(cfg->control_socket = strdup(sock));
	free(cfg->metrics_listen);
	assert_non_null(cfg->metrics_listen = strdup(""));
	assert_non_null(c2 = control_open(loop, cfg, err, sizeof(err)));
	assert_int_equal(log_count("event=control-dir-unsafe"), 1);
	assert_int_equal(log_count("mode=1777"), 1);
	control_close(c2);
	assert_int_equal(rmdir(sub), 0);
	passed = 1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_metrics_flood_leaves_control_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unix_flood_leaves_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_root_slots_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emfile_rests_listener,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_unlinks, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_config_info_not_forged,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_digest, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_dir_warned, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
