/*
 * test_redis.c - the shared store's client (policy/redis.c) against a real
 * redis-server that the test starts on a unix socket in a temporary
 * directory (and kills at the end): write-through and read, the merge
 * rules as the server applies them (the newer fetch wins; history merged
 * towards TLS), malformed values ignored and counted, Redis going away
 * (killed, or hung: a command never waits beyond redis_timeout) and
 * coming back (reconnection, write-through resumes), AUTH with a password
 * and with an ACL user, and a process forked before or after the
 * connection making its own (never sharing the parent's).
 *
 * A fake server (a child process on the same unix socket) answers a GET
 * with an array header claiming 10^9 elements, or with a nested array
 * whose small integers it streams: refused at once, without the huge
 * allocation or the event loop stalled in freeing it.  Gateways whose
 * clocks differ: a history record with times ahead of Redis's clock
 * survives a failure-only write of another gateway.  A value copied to
 * another key (or in the format before values named their key) is not
 * used there, and does not outlive that key's next write.
 *
 * TLS (redis_tls): certificates made with openssl(1) in the temporary
 * directory (a CA, a server certificate for redis.test and 127.0.0.1, one
 * from another CA, a client certificate), redis-server on a TLS-only TCP
 * port: reads and writes over TLS, a certificate from another CA or for
 * another name refused (counted, operations fail at once), one naming
 * the server only in its subject CN refused (a subjectAltName is needed),
 * tls-auth-clients with and without a client certificate, AUTH over TLS;
 * the server certificate's validity judged on the policy clock (time()
 * wrapped: timestep.h); a peer that takes the connection and never
 * answers the handshake is waited for, not spun on (the process's CPU
 * time over the attempt).
 */
// WRAP: time
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/ev.h"
#include "core/stats.h"
#include "policy/redis.h"
#include "redisd.h"
#include "tests/unit/timestep.h"

static char dir[64], sock[128];
static pid_t srv = -1;
static struct ev_loop *loop;

/*
 * redis_timeout: a server that answers must never meet it, even with a
 * dozen sanitized test processes on two cores (300 ms once failed a plain
 * GET there), so the clients get REDIS_ANSWERS_MS; the tests of the
 * timeout itself (test_hung_server) take REDIS_HUNG_MS, with the server
 * stopped (SIGSTOP), so that the timeout is certain.  Waits for an answer
 * (REDIS_WAIT_MS) outlast the client's own timeout: the client decides.
 */
#define REDIS_ANSWERS_MS	5000
#define REDIS_HUNG_MS		300
#define REDIS_WAIT_MS		(REDIS_ANSWERS_MS + 5000)
static uint64_t redis_tmo = REDIS_ANSWERS_MS;

static const char enforce[] = "version: STSv1\nmode: enforce\n"
    "mx: mx.example.com\nmax_age: 86400\n";
static const char testing[] = "version: STSv1\nmode: testing\n"
    "mx: mx.example.com\nmax_age: 86400\n";

/* ---- the server ---- */

static redisContext *
sync_conn(const char *pass)
{
	return redisd_conn(sock, pass);
}

/* Starts redis-server with extra "--key value" pairs (NULL-ended);
 * returns once it answers PING. */
static void
srv_start(const char *pass, ...)
{
	va_list ap;

	va_start(ap, pass);
	srv = redisd_vstart(sock, dir, pass, ap);
	va_end(ap);
}

static void
srv_kill(void)
{
	redisd_kill(&srv, sock);
}

/* GET key over a synchronous connection; "" when absent. */
static void
srv_get(const char *key, char *out, size_t sz, const char *pass)
{
	redisContext *c = sync_conn(pass);
	redisReply *r;

	assert_non_null(c);
	r = redisCommand(c, "GET %s", key);
	assert_non_null(r);
	snprintf(out, sz, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
	freeReplyObject(r);
	redisFree(c);
}

static void
srv_set(const char *key, const char *val)
{
	redisContext *c = sync_conn(NULL);
	redisReply *r;

	assert_non_null(c);
	r = redisCommand(c, "SET %s %s", key, val);
	freeReplyObject(r);
	redisFree(c);
}

/* ---- the loop ---- */

typedef int cond_fn(void *);
struct waiter {
	struct ev_timer	*t;
	cond_fn		*cond;
	void		*arg;
	int		 left;
	int		 met;
};

static void
tick(void *a)
{
	struct waiter *w = a;

	if (w->cond != NULL && w->cond(w->arg)) {
		w->met = 1;
		ev_loop_stop(loop);
	} else if (--w->left <= 0)
		ev_loop_stop(loop);
	else
		ev_timer_arm(w->t, 10);
}

/* Runs the loop until cond holds (1) or ms pass (0); cond NULL: ms. */
static int
run_until(cond_fn *cond, void *arg, int ms)
{
	struct waiter w = { NULL, cond, arg, ms / 10, 0 };

	w.t = ev_timer_new(loop, tick, &w);
	ev_timer_arm(w.t, 0);
	ev_loop_run(loop);
	ev_timer_free(w.t);
	return w.met;
}

static int
is_up(void *a)
{
	return redis_up(a);
}

static int
is_down(void *a)
{
	return !redis_up(a);
}

/* a connect failed since *a was the count */
static int
connect_failed(void *a)
{
	return stats_value(stats_counter("mxguard_redis_errors_total"
	    "{op=\"connect\"}", "test")) > *(int64_t *)a;
}

static int
flag_set(void *a)
{
	return *(int *)a != 0;
}

static int64_t
ctr(const char *name)
{
	return stats_value(stats_counter(name, "test"));
}

static struct config *
cfg_for(const char *user, const char *pass)
{
	char err[256];
	struct config *cfg = config_load(NULL, err, sizeof(err));

	assert_non_null(cfg);
	free(cfg->redis_address);
	cfg->redis_address = strdup(sock);
	cfg->redis_timeout = redis_tmo;
	if (user != NULL) {
		free(cfg->redis_username);
		cfg->redis_username = strdup(user);
	}
	if (pass != NULL) {
		free(cfg->redis_password);
		cfg->redis_password = strdup(pass);
	}
	return cfg;
}

static struct redis *
client(const char *user, const char *pass)
{
	struct config *cfg = cfg_for(user, pass);
	char err[256];
	struct redis *rs = redis_new(loop, cfg, err, sizeof(err));

	assert_non_null(rs);
	config_free(cfg);
	return rs;
}

/* ---- callbacks ---- */

struct got {
	int		 n;
	int		 rc;
	char		 id[64];
	int		 mode;
	int64_t		 fetched;
	struct history_entry h;
};

static void
sts_cb(void *arg, int rc, const struct sts_cache_entry *e)
{
	struct got *g = arg;

	g->n++;
	g->rc = rc;
	if (rc == 1) {
		snprintf(g->id, sizeof(g->id), "%s", e->id);
		g->mode = (int)e->pol.mode;
		g->fetched = e->fetched;
	}
}

static void
hist_cb(void *arg, int rc, const struct history_entry *e)
{
	struct got *g = arg;

	g->n++;
	g->rc = rc;
	if (rc == 1)
		g->h = *e;
}

static void
put_policy(struct redis *rs, const char *domain, const char *id,
    const char *body, int64_t fetched)
{
	struct sts_cache_entry e;

	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "%s", id);
	e.fetched = fetched;
	e.expires = fetched + 86400;
	e.body = (char *)body;
	e.bodylen = strlen(body);
	redis_sts_put(rs, domain, &e);
}

static struct got
get_policy(struct redis *rs, const char *domain)
{
	struct got g;

	memset(&g, 0, sizeof(g));
	assert_non_null(redis_sts_get(rs, domain, sts_cb, &g));
	assert_int_equal(g.n, 0);	/* never from inside the get */
	assert_true(run_until(flag_set, &g.n, REDIS_WAIT_MS));
	return g;
}

/* The client's commands so far (write-through puts, which have no
 * callback) answered: a GET queued behind them on its one connection,
 * which Redis answers in order, has its answer.  What a put wrote is then
 * there for another connection (srv_get()) to read. */
static void
answered(struct redis *rs)
{
	struct got g;

	memset(&g, 0, sizeof(g));
	assert_non_null(redis_sts_get(rs, "answered.invalid", sts_cb, &g));
	assert_true(run_until(flag_set, &g.n, REDIS_WAIT_MS));
	assert_int_equal(g.rc, 0);
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

/* ---- a fake server ---- */

static pid_t fake = -1;

/* Reads from fd until what came holds want (0), or the client ends (-1). */
static int
fake_wait_for(int fd, char *buf, size_t sz, size_t *have, const char *want)
{
	ssize_t n;

	for (;;) {
		buf[*have] = '\0';
		if (strstr(buf, want) != NULL)
			return 0;
		if (*have + 1 >= sz)
			return -1;
		if ((n = read(fd, buf + *have, sz - 1 - *have)) <= 0)
			return -1;
		*have += (size_t)n;
	}
}

/* A child process listening on sock in place of redis-server, for one
 * connection: answers its PING (+PONG), then the GET that follows with
 * reply, then, when stream is set, ":1\r\n" array elements for as long as
 * the client takes them (3 s at most).  It accepts no second connection:
 * the test kills it and starts a real server. */
static void
fake_start(const char *reply, int stream)
{
	struct sockaddr_un un;
	int lfd;

	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_true(strlen(sock) < sizeof(un.sun_path));
	memcpy(un.sun_path, sock, strlen(sock) + 1);
	unlink(sock);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&un, sizeof(un)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	fake = fork();
	assert_true(fake >= 0);
	if (fake == 0) {
		static char in[4096], els[65536];
		struct timespec t0, t;
		size_t have = 0, i;
		int fd = accept(lfd, NULL, NULL);

		close(lfd);
		if (fd == -1 || fake_wait_for(fd, in, sizeof(in), &have,
		    "PING\r\n") == -1 || write(fd, "+PONG\r\n", 7) != 7 ||
		    fake_wait_for(fd, in, sizeof(in), &have, "GET\r\n") == -1 ||
		    fake_wait_for(fd, in, sizeof(in), &have, ".example\r\n") ==
		    -1 || write(fd, reply, strlen(reply)) !=
		    (ssize_t)strlen(reply))
			_exit(1);
		for (i = 0; i + 4 <= sizeof(els); i += 4)
			memcpy(els + i, ":1\r\n", 4);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (stream && write(fd, els, sizeof(els)) > 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (t.tv_sec - t0.tv_sec >= 3)
				break;
		}
		/* until the client goes */
		while (read(fd, in, sizeof(in)) > 0)
			;
		_exit(0);
	}
	close(lfd);
}

static void
fake_kill(void)
{
	if (fake <= 0)
		return;
	kill(fake, SIGKILL);
	waitpid(fake, NULL, 0);
	fake = -1;
	unlink(sock);
}

static int64_t
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) /
	    1000000;
}

static long
maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/*
 * A GET answered with an array (mxguard sends no command answered with
 * one): refused when its header comes, before hiredis's default reader
 * would allocate as many slots as it claims (8 GB for 10^9) and free them
 * one by one on the event loop (over a minute), or grow the tree with
 * every element streamed.  The get fails at once (not by redis_timeout:
 * REDIS_ANSWERS_MS here, beyond the 2 s bound), the loop's next timer is
 * on time, the process's memory does not grow, the connection is dropped
 * (counted) and made again with the real server.
 */
static void
array_refused(const char *reply, int stream)
{
	int64_t gets = ctr("mxguard_redis_errors_total{op=\"sts-get\"}");
	long rss0 = maxrss_kb();
	struct timespec t0;
	struct redis *rs;
	struct got g;
	int64_t ms, tick;

	fake_start(reply, stream);
	rs = client(NULL, NULL);
	assert_true(run_until(is_up, rs, 3000));
	memset(&g, 0, sizeof(g));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_non_null(redis_sts_get(rs, "array.example", sts_cb, &g));
	assert_true(run_until(flag_set, &g.n, 3000));
	ms = ms_since(&t0);
	assert_int_equal(g.rc, -1);
	assert_int_equal(ctr("mxguard_redis_errors_total{op=\"sts-get\"}"),
	    gets + 1);
	/* the answer, and the loop's next tick (20 ms) after it, on time:
	 * not after the minute the old reader spent allocating and freeing
	 * the claimed slots.  The bounds are only that: generous for a
	 * loaded or sanitized machine (seen: tens of ms); no allocation of
	 * the claimed size (below) is what proves the refusal. */
	print_message("array refused after %lld ms\n", (long long)ms);
	assert_true(ms < 2000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_until(NULL, NULL, 20);
	tick = ms_since(&t0);
	print_message("next 20 ms tick after %lld ms\n", (long long)tick);
	assert_true(tick < 1000);
	assert_false(redis_up(rs));
	/* no allocation of the claimed size (peak resident memory) */
	assert_true(maxrss_kb() - rss0 < 64 * 1024);

	/* back, with the real server */
	fake_kill();
	srv_start(NULL, NULL);
	assert_true(run_until(is_up, rs, 12000));
	put_policy(rs, "array.example", "real1", enforce,
	    (int64_t)time(NULL) - 1);
	answered(rs);
	g = get_policy(rs, "array.example");
	assert_int_equal(g.rc, 1);
	assert_string_equal(g.id, "real1");
	redis_free(rs);
	srv_kill();
}

static void
test_array_reply(void **state)
{
	array_refused("*1000000000\r\n", 0);
}

static void
test_array_streamed(void **state)
{
	/* a nested array whose elements keep coming */
	array_refused("*2\r\n:1\r\n*100000000\r\n", 1);
}

/* ---- TLS ---- */

static int tls_port;

/* A free TCP port on 127.0.0.1 (the kernel's choice). */
static int
free_port(void)
{
	struct sockaddr_in a = sin4("127.0.0.1");
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void sh(const char *, ...) __attribute__((format(printf, 1, 2)));

static void
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("failed: %s", cmd);
}

/* In dir: ca.pem (the CA the client trusts), srv.pem/srv.key (from it:
 * redis.test and 127.0.0.1), other.pem/other.key (the same names from
 * another CA), cli.pem/cli.key (a client certificate from ca.pem),
 * cn.pem/cn.key (from ca.pem, redis.test in the subject CN only, no
 * subjectAltName), ipsan.pem/ipsan.key (from ca.pem, CN redis.test,
 * subjectAltName IP:127.0.0.1 only), pwild.pem/wild.pem (from ca.pem,
 * subjectAltName r*.db.test, a partial wildcard, and *.db.test). */
static void
make_certs(void)
{
	static const char *ec = "-newkey ec -pkeyopt "
	    "ec_paramgen_curve:prime256v1 -nodes -days 2";

	sh("cd %s && openssl req -x509 %s -keyout ca.key -out ca.pem "
	    "-subj /CN=mxguard-test-ca 2>/dev/null", dir, ec);
	sh("cd %s && openssl req -x509 %s -keyout ca2.key -out ca2.pem "
	    "-subj /CN=other-ca 2>/dev/null", dir, ec);
	sh("cd %s && openssl req -x509 %s -keyout srv.key -out srv.pem "
	    "-subj /CN=redis.test -addext "
	    "subjectAltName=DNS:redis.test,IP:127.0.0.1 "
	    "-CA ca.pem -CAkey ca.key 2>/dev/null", dir, ec);
	sh("cd %s && openssl req -x509 %s -keyout other.key -out other.pem "
	    "-subj /CN=redis.test -addext "
	    "subjectAltName=DNS:redis.test,IP:127.0.0.1 "
	    "-CA ca2.pem -CAkey ca2.key 2>/dev/null", dir, ec);
	sh("cd %s && openssl req -x509 %s -keyout cli.key -out cli.pem "
	    "-subj /CN=mxguard-client -CA ca.pem -CAkey ca.key 2>/dev/null",
	    dir, ec);
	sh("cd %s && openssl req -x509 %s -keyout cn.key -out cn.pem "
	    "-subj /CN=redis.test -CA ca.pem -CAkey ca.key 2>/dev/null",
	    dir, ec);
	sh("cd %s && openssl req -x509 %s -keyout ipsan.key -out ipsan.pem "
	    "-subj /CN=redis.test -addext subjectAltName=IP:127.0.0.1 "
	    "-CA ca.pem -CAkey ca.key 2>/dev/null", dir, ec);
	sh("cd %s && openssl req -x509 %s -keyout pwild.key -out pwild.pem "
	    "-subj /CN=pwild -addext subjectAltName=DNS:r*.db.test "
	    "-CA ca.pem -CAkey ca.key 2>/dev/null", dir, ec);
	sh("cd %s && openssl req -x509 %s -keyout wild.key -out wild.pem "
	    "-subj /CN=wild -addext subjectAltName=DNS:*.db.test "
	    "-CA ca.pem -CAkey ca.key 2>/dev/null", dir, ec);
}

static void
srv_try_tls(const char *pass, ...)
{
	va_list ap;

	va_start(ap, pass);
	srv = redisd_vtry(sock, dir, pass, ap);
	va_end(ap);
}

/* redis-server with a TLS-only TCP port (and the plain unix socket the
 * helpers above use); cert is "srv" or "other".  free_port()'s port is
 * free only until it is closed: another process may take it before
 * redis-server binds it, so a server that exits is retried on another.
 * --bind 127.0.0.1: free_port() looked at that address only. */
static void
srv_start_tls(const char *pass, const char *cert, int auth_clients)
{
	static char port[16], crt[160], key[160], ca[160];
	int tries;

	snprintf(crt, sizeof(crt), "%s/%s.pem", dir, cert);
	snprintf(key, sizeof(key), "%s/%s.key", dir, cert);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	assert_true(srv < 0);
	for (tries = 0; tries < 5 && srv < 0; tries++) {
		tls_port = free_port();
		snprintf(port, sizeof(port), "%d", tls_port);
		if (pass != NULL)
			srv_try_tls(pass, "--bind", "127.0.0.1",
			    "--tls-port", port, "--tls-cert-file", crt, "--tls-key-file", key,
			    "--tls-ca-cert-file", ca, "--tls-auth-clients",
			    auth_clients ? "yes" : "no", "--requirepass", pass,
			    NULL);
		else
			srv_try_tls(NULL, "--bind", "127.0.0.1",
			    "--tls-port", port, "--tls-cert-file", crt, "--tls-key-file", key,
			    "--tls-ca-cert-file", ca, "--tls-auth-clients",
			    auth_clients ? "yes" : "no", NULL);
	}
	if (srv < 0)
		fail_msg("redis-server with a TLS port did not start");
}

static char *
in_dir(const char *name, const char *ext)
{
	char p[200];

	snprintf(p, sizeof(p), "%s/%s.%s", dir, name, ext);
	return strdup(p);
}

/* A TLS client of the server's TCP port: the CA ca.pem, a server name
 * ("" the default: the address's IP), a client certificate (NULL: none). */
static struct redis *
tls_client(const char *name, const char *clicert, const char *pass)
{
	struct config *cfg = cfg_for(NULL, pass);
	char err[256], a[64];
	struct redis *rs;

	snprintf(a, sizeof(a), "127.0.0.1:%d", tls_port);
	free(cfg->redis_address);
	cfg->redis_address = strdup(a);
	cfg->redis_tls = 1;
	free(cfg->redis_tls_ca_file);
	cfg->redis_tls_ca_file = in_dir("ca", "pem");
	free(cfg->redis_tls_server_name);
	cfg->redis_tls_server_name = strdup(name);
	if (clicert != NULL) {
		free(cfg->redis_tls_cert_file);
		cfg->redis_tls_cert_file = in_dir(clicert, "pem");
		free(cfg->redis_tls_key_file);
		cfg->redis_tls_key_file = in_dir(clicert, "key");
	}
	rs = redis_new(loop, cfg, err, sizeof(err));
	if (rs == NULL)
		fail_msg("redis_new: %s", err);
	config_free(cfg);
	return rs;
}

/* Up within the time, and a policy written and read back. */
static void
tls_works(struct redis *rs, const char *domain, const char *id)
{
	struct got g;

	assert_true(run_until(is_up, rs, 3000));
	put_policy(rs, domain, id, enforce, (int64_t)time(NULL) - 1);
	answered(rs);
	g = get_policy(rs, domain);
	assert_int_equal(g.rc, 1);
	assert_string_equal(g.id, id);
}

/* Never up; each failed attempt counted under op="tls"; an operation
 * meanwhile fails at once (NULL, counted). */
static void
tls_refused(struct redis *rs)
{
	int64_t tls = ctr("mxguard_redis_errors_total{op=\"tls\"}");
	int64_t gets = ctr("mxguard_redis_errors_total{op=\"sts-get\"}");
	struct got g;

	memset(&g, 0, sizeof(g));
	assert_false(run_until(is_up, rs, 1000));
	assert_true(ctr("mxguard_redis_errors_total{op=\"tls\"}") > tls);
	assert_null(redis_sts_get(rs, "refused.example", sts_cb, &g));
	assert_int_equal(ctr("mxguard_redis_errors_total{op=\"sts-get\"}"),
	    gets + 1);
	assert_int_equal(g.n, 0);
}

/* A TCP peer that takes the connection and never answers the TLS
 * handshake: done once the client has closed it (its redis_timeout). */
struct silent {
	int	 lfd, cfd;
};

static int
silent_closed(void *a)
{
	struct silent *sp = a;
	char buf[4096];
	ssize_t n;

	if (sp->cfd < 0 && (sp->cfd = accept4(sp->lfd, NULL, NULL,
	    SOCK_NONBLOCK)) < 0)
		return 0;
	while ((n = read(sp->cfd, buf, sizeof(buf))) > 0)
		;		/* the ClientHello: never answered */
	return n == 0 || (n == -1 && errno != EAGAIN);
}

static int64_t
cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/*
 * While the TLS handshake waits for the server, the client waits on the
 * socket: AUTH/PING was queued before the handshake, and the loop was
 * asked to report the socket writable whenever output was pending, so
 * it spun (the socket is writable all along) for the whole of
 * redis_timeout at every attempt against a server, or a path to it,
 * that holds its ServerHello back.  The process's CPU time over one such
 * attempt must stay well below its wall time.
 */
static void
test_tls_handshake_waits(void **state)
{
	struct sockaddr_in a = sin4("127.0.0.1");
	socklen_t al = sizeof(a);
	struct silent sl = { -1, -1 };
	struct config *cfg;
	struct timespec t0, t1;
	struct redis *rs;
	char err[256], addr[64];
	int64_t c0, cpu, wall;

	sl.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(sl.lfd >= 0);
	assert_int_equal(bind(sl.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(sl.lfd, 4), 0);
	assert_int_equal(getsockname(sl.lfd, (struct sockaddr *)&a, &al), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
	cfg = cfg_for(NULL, NULL);
	free(cfg->redis_address);
	cfg->redis_address = strdup(addr);
	cfg->redis_timeout = 400;
	cfg->redis_tls = 1;	/* the system's store: never gets that far */
	rs = redis_new(loop, cfg, err, sizeof(err));
	if (rs == NULL)
		fail_msg("redis_new: %s", err);
	config_free(cfg);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	c0 = cpu_ms();
	assert_true(run_until(silent_closed, &sl, 5000));
	cpu = cpu_ms() - c0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	wall = (t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000;
	print_message("handshake held back: %lld ms CPU in %lld ms\n",
	    (long long)cpu, (long long)wall);
	assert_false(redis_up(rs));
	assert_true(wall >= 300);	/* it waited for redis_timeout */
	assert_true(cpu * 3 < wall);
	redis_free(rs);
	close(sl.cfd);
	close(sl.lfd);
}

static void
test_tls(void **state)
{
	struct config *cfg;
	struct redis *rs;
	char err[256], v[1024];

	make_certs();
	srv_start_tls(NULL, "srv", 0);
	/* the default name is the address's IP, in the certificate */
	rs = tls_client("", NULL, NULL);
	tls_works(rs, "tls.example", "t1");
	srv_get("mxguard:sts:tls.example", v, sizeof(v), NULL);
	assert_non_null(strstr(v, " t1\n"));
	redis_free(rs);
	/* the certificate's DNS name */
	rs = tls_client("redis.test", NULL, NULL);
	tls_works(rs, "tls2.example", "t2");
	redis_free(rs);
	/* a name the certificate does not carry */
	rs = tls_client("wrong.test", NULL, NULL);
	tls_refused(rs);
	redis_free(rs);
	srv_kill();

	/* a certificate for the right names, from a CA not trusted */
	srv_start_tls(NULL, "other", 0);
	rs = tls_client("redis.test", NULL, NULL);
	tls_refused(rs);
	redis_free(rs);
	srv_kill();

	/* redis_tls over a unix socket: refused by redis_new() */
	cfg = cfg_for(NULL, NULL);
	cfg->redis_tls = 1;
	assert_null(redis_new(loop, cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "redis_tls"));
	config_free(cfg);
}

/* Never up, counted under op="tls" (as tls_refused()), with stderr in a
 * file meanwhile (nothing asserted there: a failure's message would go
 * to the file); 1 when what was logged holds want. */
static int
tls_refused_logs(struct redis *rs, const char *want)
{
	int64_t tls = ctr("mxguard_redis_errors_total{op=\"tls\"}");
	char path[200], buf[8192];
	int saved, fd, up;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	up = run_until(is_up, rs, 1000);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_false(up);
	assert_true(ctr("mxguard_redis_errors_total{op=\"tls\"}") > tls);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, want) != NULL;
}

/* The server's name must be a subjectAltName: a certificate naming it
 * only in the subject CN is refused (OpenSSL's default would take the CN
 * when there is no DNS subjectAltName), and the log says why. */
static void
test_tls_cn_only(void **state)
{
	struct redis *rs;

	make_certs();
	/* no subjectAltName at all: CN=redis.test */
	srv_start_tls(NULL, "cn", 0);
	rs = tls_client("redis.test", NULL, NULL);
	assert_true(tls_refused_logs(rs, "redis.test matches no DNS "
	    "subjectAltName of the certificate (its subject CN is not "
	    "used)"));
	redis_free(rs);
	srv_kill();

	/* an IP subjectAltName only, the DNS name in the CN: the IP is
	 * taken, the name is not */
	srv_start_tls(NULL, "ipsan", 0);
	rs = tls_client("redis.test", NULL, NULL);
	tls_refused(rs);
	redis_free(rs);
	rs = tls_client("", NULL, NULL);
	tls_works(rs, "ipsan.example", "i1");
	redis_free(rs);
	srv_kill();

	/* the name in a DNS subjectAltName: taken */
	srv_start_tls(NULL, "srv", 0);
	rs = tls_client("redis.test", NULL, NULL);
	tls_works(rs, "dnssan.example", "d1");
	redis_free(rs);
	srv_kill();
}

/* The server certificate's validity is judged on the policy clock
 * (core/clock.h): anchored 30 days behind the real clock, the certificate
 * made a moment ago is not yet valid; on the real clock it is. */
/* A wildcard is taken only as the whole leftmost label, as for MTA-STS:
 * r*.db.test does not name redis.db.test, *.db.test does. */
static void
test_tls_partial_wildcard(void **state)
{
	struct redis *rs;

	make_certs();
	srv_start_tls(NULL, "pwild", 0);
	rs = tls_client("redis.db.test", NULL, NULL);
	tls_refused(rs);
	redis_free(rs);
	srv_kill();
	srv_start_tls(NULL, "wild", 0);
	rs = tls_client("redis.db.test", NULL, NULL);
	tls_works(rs, "wild.example", "w1");
	redis_free(rs);
	srv_kill();
}

static void
test_tls_policy_clock(void **state)
{
	struct redis *rs;

	make_certs();
	srv_start_tls(NULL, "srv", 0);
	time_step = -86400 * 30;
	clock_anchor();
	rs = tls_client("redis.test", NULL, NULL);
	assert_true(tls_refused_logs(rs, "certificate is not yet valid"));
	redis_free(rs);
	time_step = 0;
	clock_anchor();
	rs = tls_client("redis.test", NULL, NULL);
	tls_works(rs, "clock.example", "k1");
	redis_free(rs);
	srv_kill();
}

static void
test_tls_client_cert(void **state)
{
	struct redis *rs;
	int64_t auth;

	make_certs();
	srv_start_tls("s3cret", "srv", 1);
	/* tls-auth-clients yes: no client certificate, no connection */
	rs = tls_client("redis.test", NULL, "s3cret");
	tls_refused(rs);
	redis_free(rs);
	/* with one, and AUTH over TLS */
	rs = tls_client("redis.test", "cli", "s3cret");
	tls_works(rs, "cli.example", "c1");
	redis_free(rs);
	/* the wrong password over TLS: refused by AUTH, counted */
	auth = ctr("mxguard_redis_errors_total{op=\"auth\"}");
	rs = tls_client("redis.test", "cli", "wrong");
	assert_false(run_until(is_up, rs, 1000));
	assert_true(ctr("mxguard_redis_errors_total{op=\"auth\"}") > auth);
	redis_free(rs);
	/* a client certificate from another CA */
	rs = tls_client("redis.test", "other", "s3cret");
	tls_refused(rs);
	redis_free(rs);
	srv_kill();
}

/* A TLS 1.2 server in a child (srv.pem, tls_port) for one connection:
 * it answers the client's PING with a HelloRequest and nothing else, and
 * exits 1 if a second ClientHello came on the connection, 0 if not (the
 * client's no_renegotiation alert ended it, or the client left). */
static int reneg_hellos;

static int
reneg_hello_cb(SSL *s, int *al, void *arg)
{
	(void)s; (void)al; (void)arg;
	reneg_hellos++;
	return SSL_CLIENT_HELLO_SUCCESS;
}

static void
reneg_server_start(void)
{
	struct sockaddr_in a = sin4("127.0.0.1");
	socklen_t al = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
	assert_int_equal(listen(lfd, 4), 0);
	tls_port = ntohs(a.sin_port);
	fake = fork();
	assert_true(fake >= 0);
	if (fake == 0) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		char crt[160], key[160], buf[4096];
		size_t have = 0;
		int fd, n;
		SSL *s;

		alarm(20);
		snprintf(crt, sizeof(crt), "%s/srv.pem", dir);
		snprintf(key, sizeof(key), "%s/srv.key", dir);
		if (ctx == NULL ||
		    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) != 1 ||
		    SSL_CTX_use_certificate_chain_file(ctx, crt) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
			_exit(3);
		SSL_CTX_set_client_hello_cb(ctx, reneg_hello_cb, NULL);
		if ((fd = accept(lfd, NULL, NULL)) == -1 ||
		    (s = SSL_new(ctx)) == NULL || SSL_set_fd(s, fd) != 1 ||
		    SSL_accept(s) != 1)
			_exit(4);
		for (;;) {
			n = SSL_read(s, buf + have, (int)(sizeof(buf) - 1 - have));
			if (n <= 0)
				_exit(5);
			have += (size_t)n;
			buf[have] = '\0';
			if (strstr(buf, "PING\r\n") != NULL)
				break;
		}
		if (SSL_renegotiate(s) != 1 || SSL_do_handshake(s) != 1)
			_exit(6);
		/* a ClientHello is handled inside SSL_read (the second
		 * handshake); the alert, or the client's close, ends it */
		while (SSL_read(s, buf, sizeof(buf)) > 0)
			;
		_exit(reneg_hellos > 1 ? 1 : 0);
	}
	close(lfd);
}

static int
fake_exited(void *a)
{
	int *st = a;

	if (fake <= 0 || waitpid(fake, st, WNOHANG) != fake)
		return 0;
	fake = -1;
	return 1;
}

/*
 * A Redis server that asks for a TLS 1.2 renegotiation in the middle of
 * the session (a HelloRequest in answer to PING) is refused, as on every
 * TLS context of the daemon.  Red before: the client sent a second
 * ClientHello and renegotiated.
 */
static void
test_tls_no_renegotiation(void **state)
{
	struct redis *rs;
	int st = -1;

	(void)state;
	make_certs();
	reneg_server_start();
	rs = tls_client("redis.test", NULL, NULL);
	assert_true(run_until(fake_exited, &st, REDIS_WAIT_MS));
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 1)
		fail_msg("the client answered the server's HelloRequest: a "
		    "second handshake on the connection");
	assert_int_equal(WEXITSTATUS(st), 0);
	redis_free(rs);
}

/* ---- tests ---- */

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/mxg-redis-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	loop = ev_loop_new();
	redis_tmo = REDIS_ANSWERS_MS;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	fake_kill();
	srv_kill();
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_sts_write_read(void **state)
{
	int64_t now = (int64_t)time(NULL);
	struct redis *rs;
	struct got g;
	char v[1024];

	srv_start(NULL, NULL);
	rs = client(NULL, NULL);
	assert_false(redis_up(rs));	/* connects from the loop */
	assert_true(run_until(is_up, rs, 3000));

	put_policy(rs, "example.com", "new1", enforce, now - 100);
	answered(rs);
	srv_get("mxguard:sts:example.com", v, sizeof(v), NULL);
	assert_non_null(strstr(v, "MXGS2 example.com "));
	g = get_policy(rs, "example.com");
	assert_int_equal(g.rc, 1);
	assert_string_equal(g.id, "new1");
	assert_int_equal(g.mode, STS_MODE_ENFORCE);

	/* an older fetch never replaces a newer one in Redis */
	put_policy(rs, "example.com", "old1", testing, now - 5000);
	answered(rs);
	g = get_policy(rs, "example.com");
	assert_string_equal(g.id, "new1");
	assert_int_equal(g.fetched, now - 100);
	/* a newer one does (readers use only enforce policies from Redis:
	 * redis_sts_usable(), test_redis_val) */
	put_policy(rs, "example.com", "newer2", testing, now - 10);
	answered(rs);
	g = get_policy(rs, "example.com");
	assert_string_equal(g.id, "newer2");
	assert_int_equal(g.mode, STS_MODE_TESTING);

	/* a value claiming a fetch in the future (an attacker's: readers
	 * refuse it) does not block the next honest write */
	{
		char fut[512];

		snprintf(fut, sizeof(fut), "MXGS2 example.com %lld %lld "
		    "fut1\n%s",
		    (long long)now + 100000, (long long)now + 100000 + 86400,
		    enforce);
		srv_set("mxguard:sts:example.com", fut);
		put_policy(rs, "example.com", "honest1", enforce, now - 5);
		answered(rs);
		g = get_policy(rs, "example.com");
		assert_int_equal(g.rc, 1);
		assert_string_equal(g.id, "honest1");
	}

	/* absent */
	g = get_policy(rs, "absent.example");
	assert_int_equal(g.rc, 0);

	/* malformed values: ignored and counted */
	{
		int64_t inv = ctr("mxguard_redis_invalid_total{kind=\"sts\"}");
		char bad[512];

		srv_set("mxguard:sts:bad.example", "garbage");
		g = get_policy(rs, "bad.example");
		assert_int_equal(g.rc, 0);
		/* a stretched expiry: not a value mxguard writes */
		snprintf(bad, sizeof(bad), "MXGS2 bad.example %lld %lld "
		    "abc\n%s",
		    (long long)now, (long long)now + 86400 * 1000, enforce);
		srv_set("mxguard:sts:bad.example", bad);
		g = get_policy(rs, "bad.example");
		assert_int_equal(g.rc, 0);
		assert_int_equal(ctr("mxguard_redis_invalid_total"
		    "{kind=\"sts\"}"), inv + 2);
	}
	redis_free(rs);
	srv_kill();
}

static void
test_history_merge(void **state)
{
	int64_t now = (int64_t)time(NULL);
	struct sockaddr_in a = sin4("192.0.2.25");
	struct history_entry e1 = { now - 5000, now - 100, 0, now - 100, 5, 0 };
	struct history_entry e2 = { now - 9000, now - 3000, now - 1, now - 1,
	    1, 1 };
	struct redis *rs;
	struct got g;
	char v[256], want[256];

	srv_start(NULL, NULL);
	rs = client(NULL, NULL);
	assert_true(run_until(is_up, rs, 3000));
	redis_hist_put(rs, (struct sockaddr *)&a, &e1);
	/* another gateway saw an older TLS and a later failure: the merge
	 * keeps the later TLS (never downgrades), takes the later failure */
	redis_hist_put(rs, (struct sockaddr *)&a, &e2);
	answered(rs);
	srv_get("mxguard:hist:192.0.2.25", v, sizeof(v), NULL);
	snprintf(want, sizeof(want), "MXGH2 192.0.2.25 %lld %lld %lld %lld "
	    "5 1",
	    (long long)(now - 9000), (long long)(now - 100),
	    (long long)(now - 1), (long long)(now - 1));
	assert_string_equal(v, want);

	memset(&g, 0, sizeof(g));
	assert_non_null(redis_hist_get(rs, (struct sockaddr *)&a, hist_cb,
	    &g));
	assert_true(run_until(flag_set, &g.n, REDIS_WAIT_MS));
	assert_int_equal(g.rc, 1);
	assert_int_equal(g.h.last_tls, now - 100);
	assert_int_equal(g.h.last_fail, now - 1);

	/* a last_tls far in the future (no gateway's clock is that far
	 * off): brought back to now + REDIS_SKEW_S, where it still counts
	 * (never a reason to throw TLS evidence away), not refused */
	{
		int64_t inv = ctr("mxguard_redis_invalid_total"
		    "{kind=\"history\"}");

		snprintf(v, sizeof(v), "MXGH2 192.0.2.26 %lld %lld 0 0 1 0",
		    (long long)now, (long long)now + 86400);
		srv_set("mxguard:hist:192.0.2.26", v);
		a = sin4("192.0.2.26");
		memset(&g, 0, sizeof(g));
		assert_non_null(redis_hist_get(rs, (struct sockaddr *)&a,
		    hist_cb, &g));
		assert_true(run_until(flag_set, &g.n, REDIS_WAIT_MS));
		assert_int_equal(g.rc, 1);
		assert_true(g.h.last_tls >= now + REDIS_SKEW_S &&
		    g.h.last_tls <= (int64_t)time(NULL) + REDIS_SKEW_S);
		assert_int_equal(g.h.first_tls, now);
		assert_int_equal(ctr("mxguard_redis_invalid_total"
		    "{kind=\"history\"}"), inv);
		/* and the next write merges with it, the future time
		 * brought back on the server too */
		redis_hist_put(rs, (struct sockaddr *)&a, &e1);
		answered(rs);
		memset(&g, 0, sizeof(g));
		assert_non_null(redis_hist_get(rs, (struct sockaddr *)&a,
		    hist_cb, &g));
		assert_true(run_until(flag_set, &g.n, REDIS_WAIT_MS));
		assert_int_equal(g.rc, 1);
		assert_int_equal(g.h.first_tls, now - 5000);
		assert_true(g.h.last_tls >= now + REDIS_SKEW_S &&
		    g.h.last_tls <= (int64_t)time(NULL) + REDIS_SKEW_S);
		assert_int_equal(g.h.tls_count, 5);
	}
	/* a value there that readers refuse (first_tls after last_tls, or
	 * only one of the two) is replaced by the next write, not merged
	 * into it */
	{
		long long bad[2][2] = { { now, now - 100 }, { 0, now - 50 } };
		char key[64];
		int i;

		for (i = 0; i < 2; i++) {
			snprintf(key, sizeof(key), "mxguard:hist:192.0.2.%d",
			    27 + i);
			snprintf(v, sizeof(v), "MXGH2 192.0.2.%d %lld %lld 0 0 "
			    "99 0", 27 + i, bad[i][0], bad[i][1]);
			srv_set(key, v);
			a = sin4(i == 0 ? "192.0.2.27" : "192.0.2.28");
			redis_hist_put(rs, (struct sockaddr *)&a, &e1);
			answered(rs);
			srv_get(key, v, sizeof(v), NULL);
			snprintf(want, sizeof(want), "MXGH2 192.0.2.%d %lld "
			    "%lld 0 %lld 5 0", 27 + i, (long long)(now - 5000),
			    (long long)(now - 100), (long long)(now - 100));
			assert_string_equal(v, want);
		}
	}
	redis_free(rs);
	srv_kill();
}

/* Two gateways whose clocks differ by more than REDIS_SKEW_S: the one
 * ahead stored TLS evidence with times ahead of Redis's clock; a
 * failure-only write of the other (what stripping STARTTLS on its path
 * causes) is merged with it, never replaces it: first_tls and last_tls
 * stay in Redis, and the peer's read of them expects TLS. */
static void
hist_survives(struct redis *rs, const char *addr, int64_t now)
{
	struct sockaddr_in a = sin4(addr);
	struct history_entry fail = { 0, 0, now, now, 0, 1 };
	long long f[6];
	char key[64], v[256], name[64];
	struct got g;

	redis_hist_put(rs, (struct sockaddr *)&a, &fail);
	answered(rs);
	snprintf(key, sizeof(key), "mxguard:hist:%s", addr);
	srv_get(key, v, sizeof(v), NULL);
	assert_int_equal(sscanf(v, "MXGH2 %63s %lld %lld %lld %lld %lld %lld",
	    name, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]), 7);
	assert_string_equal(name, addr);
	assert_int_equal(f[0], now - 5000);		/* first_tls */
	assert_true(f[1] >= now && f[1] <= (int64_t)time(NULL) +
	    REDIS_SKEW_S);				/* last_tls */
	assert_int_equal(f[2], now);			/* last_fail */
	assert_int_equal(f[4], 3);
	assert_int_equal(f[5], 1);

	memset(&g, 0, sizeof(g));
	assert_non_null(redis_hist_get(rs, (struct sockaddr *)&a, hist_cb,
	    &g));
	assert_true(run_until(flag_set, &g.n, REDIS_WAIT_MS));
	assert_int_equal(g.rc, 1);
	assert_int_equal(g.h.first_tls, now - 5000);
	assert_true(history_expects_tls(&g.h, (int64_t)time(NULL),
	    30 * 86400));
}

static void
test_history_skew(void **state)
{
	int64_t now = (int64_t)time(NULL);
	struct sockaddr_in a = sin4("192.0.2.40");
	/* gateway 2, 10 minutes ahead */
	struct history_entry ahead = { now - 5000, now + 600, 0, now + 600,
	    3, 0 };
	struct redis *rs;
	char v[256];

	srv_start(NULL, NULL);
	rs = client(NULL, NULL);
	assert_true(run_until(is_up, rs, 3000));
	/* written through the script */
	redis_hist_put(rs, (struct sockaddr *)&a, &ahead);
	answered(rs);
	hist_survives(rs, "192.0.2.40", now);
	/* there already (a value the script did not bring back) */
	snprintf(v, sizeof(v), "MXGH2 192.0.2.41 %lld %lld 0 %lld 3 0",
	    (long long)now - 5000, (long long)now + 600,
	    (long long)now + 600);
	srv_set("mxguard:hist:192.0.2.41", v);
	hist_survives(rs, "192.0.2.41", now);
	redis_free(rs);
	srv_kill();
}

/* GET from, SET to: what anyone who can write to Redis can do. */
static void
srv_copy(const char *from, const char *to)
{
	char v[1024];

	srv_get(from, v, sizeof(v), NULL);
	assert_true(v[0] != '\0');
	srv_set(to, v);
}

static struct got
get_hist(struct redis *rs, const char *addr)
{
	struct sockaddr_in a = sin4(addr);
	struct got g;

	memset(&g, 0, sizeof(g));
	assert_non_null(redis_hist_get(rs, (struct sockaddr *)&a, hist_cb,
	    &g));
	assert_true(run_until(flag_set, &g.n, REDIS_WAIT_MS));
	return g;
}

/* A value names its key: one copied to another domain's or address's key
 * (a.example's enforce policy would defer all of b.example's mail; a
 * server's TLS history would demand TLS of another) is not used there,
 * and counted; nor is a value of the format before names (MXGS1,
 * MXGH1).  The next write of the key's own value replaces such a value
 * (no merge of the copied history into it). */
static void
test_value_copied(void **state)
{
	int64_t now = (int64_t)time(NULL);
	struct sockaddr_in a = sin4("192.0.2.50"), b = sin4("192.0.2.51");
	struct history_entry tls = { now - 5000, now - 100, 0, now - 100, 5,
	    0 };
	struct history_entry fail = { 0, 0, now - 1, now - 1, 0, 1 };
	int64_t sinv = ctr("mxguard_redis_invalid_total{kind=\"sts\"}");
	int64_t hinv = ctr("mxguard_redis_invalid_total{kind=\"history\"}");
	struct redis *rs;
	struct got g;
	char v[1024];

	srv_start(NULL, NULL);
	rs = client(NULL, NULL);
	assert_true(run_until(is_up, rs, 3000));
	put_policy(rs, "a.example", "a1", enforce, now - 100);
	redis_hist_put(rs, (struct sockaddr *)&a, &tls);
	answered(rs);
	srv_copy("mxguard:sts:a.example", "mxguard:sts:b.example");
	srv_copy("mxguard:hist:192.0.2.50", "mxguard:hist:192.0.2.51");

	/* under its own key, taken; under the other, refused */
	g = get_policy(rs, "a.example");
	assert_int_equal(g.rc, 1);
	assert_string_equal(g.id, "a1");
	g = get_policy(rs, "b.example");
	assert_int_equal(g.rc, 0);
	assert_int_equal(ctr("mxguard_redis_invalid_total{kind=\"sts\"}"),
	    sinv + 1);
	g = get_hist(rs, "192.0.2.50");
	assert_int_equal(g.rc, 1);
	g = get_hist(rs, "192.0.2.51");
	assert_int_equal(g.rc, 0);
	assert_int_equal(ctr("mxguard_redis_invalid_total"
	    "{kind=\"history\"}"), hinv + 1);

	/* b's own writes replace the copies: the policy although its
	 * fetch is older than the copy's, the history without a's TLS */
	put_policy(rs, "b.example", "b1", testing, now - 5000);
	redis_hist_put(rs, (struct sockaddr *)&b, &fail);
	answered(rs);
	g = get_policy(rs, "b.example");
	assert_int_equal(g.rc, 1);
	assert_string_equal(g.id, "b1");
	g = get_hist(rs, "192.0.2.51");
	assert_int_equal(g.rc, 1);
	assert_int_equal(g.h.first_tls, 0);
	assert_int_equal(g.h.last_tls, 0);
	assert_int_equal(g.h.fail_count, 1);
	srv_get("mxguard:hist:192.0.2.51", v, sizeof(v), NULL);
	assert_non_null(strstr(v, "MXGH2 192.0.2.51 "));

	/* the format before names, well-formed as it was: refused */
	snprintf(v, sizeof(v), "MXGS1 %lld %lld c1\n%s", (long long)now - 10,
	    (long long)now - 10 + 86400, enforce);
	srv_set("mxguard:sts:c.example", v);
	g = get_policy(rs, "c.example");
	assert_int_equal(g.rc, 0);
	snprintf(v, sizeof(v), "MXGH1 %lld %lld 0 %lld 3 0",
	    (long long)now - 5000, (long long)now - 100, (long long)now - 100);
	srv_set("mxguard:hist:192.0.2.52", v);
	g = get_hist(rs, "192.0.2.52");
	assert_int_equal(g.rc, 0);
	assert_int_equal(ctr("mxguard_redis_invalid_total{kind=\"sts\"}"),
	    sinv + 2);
	assert_int_equal(ctr("mxguard_redis_invalid_total"
	    "{kind=\"history\"}"), hinv + 2);
	redis_free(rs);
	srv_kill();
}

static void
test_down_and_back(void **state)
{
	int64_t now = (int64_t)time(NULL);
	struct redis *rs;
	struct got g;
	int64_t conn, gets, puts, connects;
	char v[1024];

	srv_start(NULL, NULL);
	rs = client(NULL, NULL);
	assert_true(run_until(is_up, rs, 3000));
	assert_int_equal(stats_value(stats_gauge("mxguard_redis_up", NULL)),
	    1);

	/* Redis goes away: noticed, counted, every operation fails at once
	 * (nothing waits for a dead Redis) */
	conn = ctr("mxguard_redis_errors_total{op=\"connection\"}");
	gets = ctr("mxguard_redis_errors_total{op=\"sts-get\"}");
	puts = ctr("mxguard_redis_errors_total{op=\"sts-put\"}");
	connects = ctr("mxguard_redis_errors_total{op=\"connect\"}");
	srv_kill();
	assert_true(run_until(is_down, rs, 2000));
	assert_int_equal(stats_value(stats_gauge("mxguard_redis_up", NULL)),
	    0);
	assert_true(ctr("mxguard_redis_errors_total{op=\"connection\"}") >
	    conn);
	assert_null(redis_sts_get(rs, "example.com", sts_cb, &g));
	assert_int_equal(ctr("mxguard_redis_errors_total{op=\"sts-get\"}"),
	    gets + 1);
	put_policy(rs, "example.com", "lost1", enforce, now - 50);
	assert_int_equal(ctr("mxguard_redis_errors_total{op=\"sts-put\"}"),
	    puts + 1);
	/* reconnection attempts fail (counted) and back off */
	assert_true(run_until(connect_failed, &connects, 3000));

	/* it comes back: reconnected, write-through resumes */
	srv_start(NULL, NULL);
	assert_true(run_until(is_up, rs, 12000));
	put_policy(rs, "example.com", "back1", enforce, now - 10);
	answered(rs);
	srv_get("mxguard:sts:example.com", v, sizeof(v), NULL);
	assert_non_null(strstr(v, " back1\n"));
	g = get_policy(rs, "example.com");
	assert_string_equal(g.id, "back1");
	redis_free(rs);
	srv_kill();
}

/* A reply of more than 1 MiB (no value mxguard writes is): the
 * connection is dropped before it can take the process's memory, the
 * lookup fails, and the client comes back for the next one. */
static void
test_huge_reply(void **state)
{
	static char big[2 * 1024 * 1024 + 1];
	struct redis *rs;
	struct got g;

	memset(big, 'a', sizeof(big) - 1);
	srv_start(NULL, NULL);
	rs = client(NULL, NULL);
	assert_true(run_until(is_up, rs, 3000));
	srv_set("mxguard:sts:huge.example", big);
	g = get_policy(rs, "huge.example");
	assert_int_equal(g.rc, -1);
	assert_true(run_until(is_up, rs, 12000));
	g = get_policy(rs, "absent.example");
	assert_int_equal(g.rc, 0);
	redis_free(rs);
	srv_kill();
}

static void
test_hung_server(void **state)
{
	struct redis *rs;
	struct got g;
	struct timespec t0, t1;
	int64_t tmo, ms;

	srv_start(NULL, NULL);
	redis_tmo = REDIS_HUNG_MS;
	rs = client(NULL, NULL);
	/* a connect that meets the short timeout is retried */
	assert_true(run_until(is_up, rs, 12000));
	/* connected, but it answers nothing (stopped: the timeout is
	 * certain): the get fails at redis_timeout (REDIS_HUNG_MS), and the
	 * connection is dropped */
	kill(srv, SIGSTOP);
	tmo = ctr("mxguard_redis_errors_total{op=\"sts-get\"}");
	memset(&g, 0, sizeof(g));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_non_null(redis_sts_get(rs, "example.com", sts_cb, &g));
	assert_true(run_until(flag_set, &g.n, 3000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) /
	    1000000;
	assert_int_equal(g.rc, -1);
	/* at redis_timeout: not before it (a lower bound, which load
	 * cannot break), and well before run_until's 3 s */
	print_message("hung server: get failed after %lld ms\n", (long long)ms);
	assert_true(ms >= REDIS_HUNG_MS - 50 && ms < 2000);
	assert_int_equal(ctr("mxguard_redis_errors_total{op=\"sts-get\"}"),
	    tmo + 1);
	assert_false(redis_up(rs));
	kill(srv, SIGCONT);
	assert_true(run_until(is_up, rs, 12000));
	redis_free(rs);
	srv_kill();
}

static void
test_auth(void **state)
{
	struct redis *rs;
	struct got g;
	int64_t auth;
	int64_t now = (int64_t)time(NULL);

	srv_start("s3cret", "--requirepass", "s3cret", NULL);
	/* the wrong password: never up, counted */
	auth = ctr("mxguard_redis_errors_total{op=\"auth\"}");
	rs = client(NULL, "wrong");
	assert_false(run_until(is_up, rs, 1000));
	assert_true(ctr("mxguard_redis_errors_total{op=\"auth\"}") > auth);
	redis_free(rs);
	/* no password at all: the PING is refused (NOAUTH) */
	rs = client(NULL, NULL);
	assert_false(run_until(is_up, rs, 600));
	redis_free(rs);
	/* the right one */
	rs = client(NULL, "s3cret");
	assert_true(run_until(is_up, rs, 3000));
	put_policy(rs, "auth.example", "a1", enforce, now - 1);
	answered(rs);
	g = get_policy(rs, "auth.example");
	assert_int_equal(g.rc, 1);
	redis_free(rs);
	srv_kill();

	/* an ACL user (AUTH username password) */
	srv_start("s3cret", "--requirepass", "s3cret", "--user", "mxg", "on",
	    ">pw1", "~mxguard:*", "+get", "+set", "+eval", "+ping", NULL);
	rs = client("mxg", "pw1");
	assert_true(run_until(is_up, rs, 3000));
	put_policy(rs, "acl.example", "u1", enforce, now - 1);
	answered(rs);
	g = get_policy(rs, "acl.example");
	assert_int_equal(g.rc, 1);
	assert_string_equal(g.id, "u1");
	redis_free(rs);
	rs = client("mxg", "bad");
	assert_false(run_until(is_up, rs, 600));
	redis_free(rs);
	srv_kill();
}

/* In a forked child: 0 when the child, with a loop and a client of its
 * own, gets a working connection of its own. */
static int
child_work(const char *domain)
{
	struct redis *rs;
	struct got g;
	int rc = 0;

	loop = ev_loop_new();		/* the parent's epoll is not ours */
	rs = client(NULL, NULL);
	if (!run_until(is_up, rs, 5000))
		return 1;
	put_policy(rs, domain, "kid1", enforce, (int64_t)time(NULL) - 1);
	memset(&g, 0, sizeof(g));
	if (redis_sts_get(rs, domain, sts_cb, &g) == NULL ||
	    !run_until(flag_set, &g.n, REDIS_WAIT_MS) || g.rc != 1 ||
	    strcmp(g.id, "kid1") != 0)
		rc = 2;
	redis_free(rs);
	return rc;
}

static int
clients(void)
{
	redisContext *c = sync_conn(NULL);
	redisReply *r;
	int n = 0;
	const char *p;

	assert_non_null(c);
	r = redisCommand(c, "CLIENT LIST");
	assert_non_null(r);
	for (p = r->str; p != NULL && (p = strstr(p, "cmd=")) != NULL; p++)
		n++;
	freeReplyObject(r);
	redisFree(c);
	return n - 1;		/* not this one */
}

/* A worker forked with the parent's client connected: freeing the
 * inherited client there leaves the parent's connection alone (its
 * socket stays on the parent's loop), and the worker's own client makes
 * its own connection. */
static void
test_fork(void **state)
{
	struct redis *rs;
	struct got g;
	pid_t kid;
	int st;

	srv_start(NULL, NULL);
	rs = client(NULL, NULL);
	assert_true(run_until(is_up, rs, 3000));
	assert_int_equal(clients(), 1);
	if ((kid = fork()) == 0) {
		int rc;

		redis_free(rs);		/* the inherited one: never used */
		rc = child_work("kid.example");
		_exit(rc);
	}
	assert_int_equal(waitpid(kid, &st, 0), kid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* the parent's connection is still up and works */
	assert_true(redis_up(rs));
	g = get_policy(rs, "kid.example");
	assert_int_equal(g.rc, 1);
	assert_string_equal(g.id, "kid1");
	assert_int_equal(clients(), 1);
	redis_free(rs);
	srv_kill();
}

/* The same over TLS: the forked copy freeing the inherited client writes
 * nothing on the parent's TLS stream (no close_notify: the parent's next
 * record would be refused) and leaves its socket on the parent's loop. */
static void
test_tls_fork(void **state)
{
	struct redis *rs;
	struct got g;
	pid_t kid;
	int st;

	make_certs();
	srv_start_tls(NULL, "srv", 0);
	rs = tls_client("redis.test", NULL, NULL);
	tls_works(rs, "tlsfork.example", "f1");
	assert_int_equal(clients(), 1);
	if ((kid = fork()) == 0) {
		redis_free(rs);
		_exit(0);
	}
	assert_int_equal(waitpid(kid, &st, 0), kid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_true(redis_up(rs));
	put_policy(rs, "tlsfork.example", "f2", enforce,
	    (int64_t)time(NULL));
	g = get_policy(rs, "tlsfork.example");
	assert_int_equal(g.rc, 1);
	assert_string_equal(g.id, "f2");
	assert_true(redis_up(rs));
	assert_int_equal(clients(), 1);
	redis_free(rs);
	srv_kill();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sts_write_read, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_history_merge, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_down_and_back, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hung_server, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_huge_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_array_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_array_streamed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_history_skew, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_value_copied, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_handshake_waits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_cn_only, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_partial_wildcard, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_policy_clock, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_client_cert, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_fork, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_no_renegotiation, setup,
		    teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
