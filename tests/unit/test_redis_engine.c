/*
 * test_redis_engine.c - the policy engine with the shared store: policy
 * decisions end to end (fake DNS in the process, a real redis-server on a
 * unix socket in a temporary directory, killed at the end), checking that
 * what Redis holds can only make a verdict stricter:
 *   - no policy of this gateway's own, no TXT record: another gateway's
 *     enforce policy from Redis decides (verify, or a deferral when the
 *     MX is not in it);
 *   - a valid policy of this gateway's own (testing) always decides: an
 *     enforce policy in Redis with other MX patterns is not used;
 *   - a testing policy in Redis is ignored (no policy: opportunistic);
 *   - a TXT record whose policy cannot be fetched: the fetch is tried
 *     first, then Redis's enforce policy decides;
 *   - another gateway's TLS history raises may to encrypt, and is merged
 *     into the local history;
 *   - a value copied to another domain's or address's key decides
 *     nothing there;
 *   - Redis killed or hung: the verdict is the local state's, in time
 *     (a hung Redis costs at most redis_timeout: short there, with the
 *     server stopped; elsewhere long enough for a loaded machine);
 *   - a reload (policy_reconfigure) takes new Redis settings: a rotated
 *     password, with the old client's lookup under way still answered;
 *   - a cached policy that decides is written through again, so a
 *     second gateway has it where Redis had lost it (or never got it);
 *   - a local history record (the address's, the MX host's) that runs
 *     out of its window while the lookup runs does not keep the shared
 *     one from being asked (time() and sts_cache_get() wrapped to make
 *     the lookup's time pass).
 */
// WRAP: mdb_get time sts_cache_get
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/stats.h"
#include "policy/cache.h"
#include "policy/history.h"
#include "policy/policy.h"
#include "policy/redis.h"
#include "policy/verdict_tls.h"

#include "dnsmsg.h"
#include "redisd.h"
#include "mdbfail.h"	/* the local cache's reads fail while set */
#include "timestep.h"	/* time() plus time_step: the lookup's time passing */

static const struct zrr zone[] = {
	{ "sh.test", DNS_T_MX, "10 mx.sh.test" },
	{ "mx.sh.test", DNS_T_A, "192.0.2.21" },
	{ "loc.test", DNS_T_MX, "10 mx.loc.test" },
	{ "mx.loc.test", DNS_T_A, "192.0.2.22" },
	{ "_mta-sts.loc.test", DNS_T_TXT, "v=STSv1; id=l1" },
	{ "tst.test", DNS_T_MX, "10 mx.tst.test" },
	{ "mx.tst.test", DNS_T_A, "192.0.2.23" },
	{ "evil.test", DNS_T_MX, "10 mx.evil.test" },
	{ "mx.evil.test", DNS_T_A, "192.0.2.24" },
	{ "hist.test", DNS_T_MX, "10 mx.hist.test" },
	{ "mx.hist.test", DNS_T_A, "192.0.2.25" },
	/* a TXT record, but no policy host (mta-sts.fetch.test: NXDOMAIN) */
	{ "fetch.test", DNS_T_MX, "10 mx.fetch.test" },
	{ "mx.fetch.test", DNS_T_A, "192.0.2.26" },
	{ "_mta-sts.fetch.test", DNS_T_TXT, "v=STSv1; id=f1" },
	/* the attacker answers lost.test's MX with its own host */
	{ "lost.test", DNS_T_MX, "10 mx.attacker.test" },
	{ "mx.attacker.test", DNS_T_A, "192.0.2.99" },
	/* the attacker answers mx.atk.test's A (really 192.0.2.27) with an
	 * address of its own */
	{ "atk.test", DNS_T_MX, "10 mx.atk.test" },
	{ "mx.atk.test", DNS_T_A, "192.0.2.98" },
	{ NULL, 0, NULL },
};

static int dnsfd, dnsport;
static struct ev_loop *loop;
static char dir[64], sock[128], statedir[160];
static pid_t srv = -1;
static const char *srv_pass;	/* requirepass set with srv_cmd() */

/*
 * redis_timeout: a server that answers must never meet it, even with a
 * dozen sanitized test processes on two cores (300 ms once failed a plain
 * GET there), so the engine gets REDIS_ANSWERS_MS (below policy_timeout,
 * as the configuration requires); where the timeout itself is the point
 * (a hung Redis) it gets REDIS_HUNG_MS, with the server stopped (SIGSTOP)
 * so that the timeout is certain.
 */
#define REDIS_ANSWERS_MS	3000
#define REDIS_HUNG_MS		300
static uint64_t redis_tmo = REDIS_ANSWERS_MS;
/* policy_timeout: 5 s, or as long as a test's lookup is made to take */
#define POLICY_TMO_MS		5000
static uint64_t policy_tmo = POLICY_TMO_MS;

static void
fake_read(int fd, int events, void *arg)
{
	zone_serve(fd, zone);
}

/* ---- redis-server ---- */

static void
srv_start(void)
{
	srv = redisd_start(sock, dir, NULL, NULL);
}

static void
srv_kill(void)
{
	redisd_kill(&srv, sock);
}

static redisContext *
srv_conn(void)
{
	redisContext *c = redisd_conn(sock, srv_pass);

	assert_non_null(c);
	return c;
}

/* A command on a connection of its own; its reply must not be an error. */
static void
srv_cmd(const char *cmd)
{
	redisContext *c = srv_conn();
	redisReply *r = redisCommand(c, cmd);

	assert_non_null(r);
	if (r->type == REDIS_REPLY_ERROR)
		fail_msg("redis %s: %s", cmd, r->str);
	freeReplyObject(r);
	redisFree(c);
}

static void
srv_set(const char *key, const char *val, size_t len)
{
	redisContext *c = srv_conn();
	redisReply *r;

	r = redisCommand(c, "SET %s %b", key, val, len);
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(c);
}

/* Another gateway's policy for name, fetched age seconds ago, under
 * domain's key (name: a value copied from name's key). */
static void
remote_policy_at(const char *domain, const char *name, const char *id,
    const char *body, int64_t age)
{
	struct sts_cache_entry e;
	char key[300], *v;
	size_t len;

	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "%s", id);
	e.fetched = (int64_t)time(NULL) - age;
	e.body = (char *)body;
	e.bodylen = strlen(body);
	{
		struct sts_policy p;
		char err[128];

		assert_int_equal(sts_policy_parse(body, strlen(body), &p, err,
		    sizeof(err)), 0);
		e.expires = e.fetched + p.max_age;
	}
	assert_int_equal(redis_sts_encode(name, &e, &v, &len), 0);
	snprintf(key, sizeof(key), "mxguard:sts:%s", domain);
	srv_set(key, v, len);
	free(v);
}

static void
remote_policy(const char *domain, const char *id, const char *body,
    int64_t age)
{
	remote_policy_at(domain, domain, id, body, age);
}

/* ---- the engine ---- */

static void
stop_loop(void *arg)
{
	ev_loop_stop(loop);
}

static void
run_ms(int ms)
{
	struct ev_timer *t = ev_timer_new(loop, stop_loop, NULL);

	ev_timer_arm(t, (uint64_t)ms);
	ev_loop_run(loop);
	ev_timer_free(t);
}

static int
redis_is_up(void)
{
	return stats_value(stats_gauge("mxguard_redis_up", NULL)) == 1;
}

/* Runs the loop until the client is connected and authenticated, for at
 * most ms. */
static void
wait_redis_up(int ms)
{
	int i;

	for (i = 0; i < ms / 20 && !redis_is_up(); i++)
		run_ms(20);
}

/* Runs the loop until the client has seen its connection go, for at most
 * ms. */
static void
wait_redis_down(int ms)
{
	int i;

	for (i = 0; i < ms / 20 && redis_is_up(); i++)
		run_ms(20);
}

static struct config *
mkcfg(const char *pass)
{
	char err[256], srvaddr[64];
	struct config *cfg = config_load(NULL, err, sizeof(err));

	assert_non_null(cfg);
	snprintf(srvaddr, sizeof(srvaddr), "127.0.0.1:%d", dnsport);
	cfg->dns_servers.v = calloc(1, sizeof(char *));
	cfg->dns_servers.v[0] = strdup(srvaddr);
	cfg->dns_servers.n = 1;
	cfg->dns_timeout = 2000;
	cfg->policy_timeout = policy_tmo;
	cfg->sts_fetch_timeout = 1500;
	free(cfg->state_dir);
	cfg->state_dir = strdup(statedir);
	free(cfg->redis_address);
	cfg->redis_address = strdup(sock);
	cfg->redis_timeout = redis_tmo;
	if (pass != NULL) {
		free(cfg->redis_password);
		cfg->redis_password = strdup(pass);
	}
	return cfg;
}

static struct policy *
mkpolicy_pass(const char *pass)
{
	char err[256];
	struct config *cfg = mkcfg(pass);
	struct policy *p;

	p = policy_new(loop, cfg, err, sizeof(err));
	if (p == NULL)
		fail_msg("policy_new: %s", err);
	config_free(cfg);
	wait_redis_up(2000);
	return p;
}

static struct policy *
mkpolicy(void)
{
	return mkpolicy_pass(NULL);
}

static struct policy_verdict *got_v;

static void
got(void *arg, struct policy_verdict *v)
{
	got_v = v;
	ev_loop_stop(loop);
}

/* A lookup's verdict; *ms its time.  started(arg), when not NULL, is
 * called once policy_lookup() has returned, before the loop turns. */
static struct policy_verdict *
lookup_then(struct policy *p, const char *domain, const char *ip,
    int64_t *ms, void (*started)(void *), void *arg)
{
	struct sockaddr_in sin;
	struct ev_timer *guard = ev_timer_new(loop, stop_loop, NULL);
	struct timespec t0, t1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, ip, &sin.sin_addr);
	got_v = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_non_null(policy_lookup(p, domain, (struct sockaddr *)&sin,
	    sizeof(sin), "t1", got, NULL));
	if (started != NULL)
		started(arg);
	ev_timer_arm(guard, 10000);
	ev_loop_run(loop);
	ev_timer_free(guard);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ms != NULL)
		*ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		    (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_non_null(got_v);
	return got_v;
}

static struct policy_verdict *
lookup(struct policy *p, const char *domain, const char *ip, int64_t *ms)
{
	return lookup_then(p, domain, ip, ms, NULL, NULL);
}

static const char enf_sh[] = "version: STSv1\nmode: enforce\n"
    "mx: mx.sh.test\nmax_age: 86400\n";

static int
setup(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	log_init("test", 0, getenv("TEST_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERR);
	snprintf(dir, sizeof(dir), "/tmp/mxg-redis-eng-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	snprintf(statedir, sizeof(statedir), "%s/state", dir);
	loop = ev_loop_new();
	redis_tmo = REDIS_ANSWERS_MS;
	policy_tmo = POLICY_TMO_MS;
	dnsfd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(dnsfd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		return -1;
	getsockname(dnsfd, (struct sockaddr *)&sin, &sl);
	dnsport = ntohs(sin.sin_port);
	ev_fd_set(loop, dnsfd, EV_READ, fake_read, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	srv_kill();
	ev_fd_del(loop, dnsfd);
	close(dnsfd);
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_stricter_only(void **state)
{
	struct policy *p;
	struct policy_verdict *v;

	srv_start();
	/* loc.test: this gateway's own testing policy, valid */
	{
		char err[256];
		struct sts_cache *c = sts_cache_open(statedir, err,
		    sizeof(err));
		struct sts_cache_entry e;
		static const char tst[] = "version: STSv1\nmode: testing\n"
		    "mx: mx.loc.test\nmax_age: 86400\n";

		assert_non_null(c);
		memset(&e, 0, sizeof(e));
		snprintf(e.id, sizeof(e.id), "l1");
		e.body = (char *)tst;
		e.bodylen = strlen(tst);
		e.fetched = e.checked = (int64_t)time(NULL) - 10;
		e.expires = e.fetched + 86400;
		assert_int_equal(sts_cache_put(c, "loc.test", &e), 0);
		sts_cache_close(c);
	}
	remote_policy("sh.test", "s1", enf_sh, 60);
	remote_policy("loc.test", "x1", "version: STSv1\nmode: enforce\n"
	    "mx: *.evil.test\nmax_age: 86400\n", 5);
	remote_policy("tst.test", "t1", "version: STSv1\nmode: testing\n"
	    "mx: mx.tst.test\nmax_age: 86400\n", 5);
	remote_policy("evil.test", "e1", "version: STSv1\nmode: enforce\n"
	    "mx: other.evil.test\nmax_age: 86400\n", 5);
	remote_policy("fetch.test", "f1", "version: STSv1\nmode: enforce\n"
	    "mx: mx.fetch.test\nmax_age: 86400\n", 5);
	p = mkpolicy();
	assert_true(redis_is_up());

	/* no policy here, none in DNS: another gateway's enforce policy */
	v = lookup(p, "sh.test", "192.0.2.21", NULL);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	assert_non_null(strstr(v->sts_note, ",redis,"));
	policy_verdict_free(v);
	/* ... never copied into LMDB: it stays Redis's, a fallback */
	{
		struct sts_cache_entry ce;

		assert_int_equal(sts_cache_get(policy_sts_cache(p), "sh.test",
		    &ce), 0);
	}

	/* the local testing policy decides; Redis's enforce policy with
	 * an attacker's MX pattern is not used */
	v = lookup(p, "loc.test", "192.0.2.22", NULL);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_true(v->report_only);
	assert_non_null(strstr(v->sts_note, ",cached,"));
	policy_verdict_free(v);

	/* a testing policy from Redis decides nothing */
	v = lookup(p, "tst.test", "192.0.2.23", NULL);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_false(v->report_only);
	assert_string_equal(v->source, "default");
	policy_verdict_free(v);

	/* an enforce policy from Redis can defer (stricter), never allow
	 * less than no policy */
	v = lookup(p, "evil.test", "192.0.2.24", NULL);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "validation-failure");
	policy_verdict_free(v);

	/* a TXT record: this gateway fetches first (it fails here: no
	 * policy host), then the policy from Redis decides */
	v = lookup(p, "fetch.test", "192.0.2.26", NULL);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, ",redis,"));
	policy_verdict_free(v);
	assert_true(stats_value(stats_counter("mxguard_sts_fetches_total"
	    "{result=\"error\"}", NULL)) >= 1);

	policy_free(p);
	srv_kill();
}

/* A value copied from another key decides nothing: sh.test's enforce
 * policy under evil.test's key would defer all of evil.test's mail (its
 * MX is not in sh.test's patterns), mx.sh.test's TLS history under
 * mx.hist.test's address would demand TLS of it.  Both refused (named
 * for another key), counted: the verdicts are the local state's. */
static void
test_copied_value_not_used(void **state)
{
	int64_t now = (int64_t)time(NULL);
	struct history_entry e = { now - 1000, now - 100, 0, now - 100, 3, 0 };
	int64_t inv = stats_value(stats_counter("mxguard_redis_invalid_total"
	    "{kind=\"sts\"}", NULL));
	struct policy *p;
	struct policy_verdict *v;
	char val[256];

	srv_start();
	remote_policy_at("evil.test", "sh.test", "s1", enf_sh, 60);
	assert_int_equal(redis_hist_encode("192.0.2.21", &e, val, sizeof(val)),
	    0);
	srv_set("mxguard:hist:192.0.2.25", val, strlen(val));
	p = mkpolicy();
	v = lookup(p, "evil.test", "192.0.2.24", NULL);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_equal(v->source, "default");
	policy_verdict_free(v);
	assert_int_equal(stats_value(stats_counter("mxguard_redis_invalid_total"
	    "{kind=\"sts\"}", NULL)), inv + 1);
	v = lookup(p, "hist.test", "192.0.2.25", NULL);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_string_not_equal(v->source, "tls-history");
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
}

static void
test_history_from_redis(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	char val[200];
	int64_t now = (int64_t)time(NULL);
	struct history_entry e = { now - 1000, now - 100, 0, now - 100, 3, 0 };

	srv_start();
	assert_int_equal(redis_hist_encode("192.0.2.25", &e, val, sizeof(val)),
	    0);
	srv_set("mxguard:hist:192.0.2.25", val, strlen(val));
	p = mkpolicy();
	v = lookup(p, "hist.test", "192.0.2.25", NULL);
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();

	/* merged into the local history: it decides with Redis gone */
	{
		char err[256];
		struct history *h = history_open(statedir, err, sizeof(err));
		struct sockaddr_in sin;
		struct history_entry l;

		assert_non_null(h);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		inet_pton(AF_INET, "192.0.2.25", &sin.sin_addr);
		assert_int_equal(history_get(h, "", (struct sockaddr *)&sin,
		    &l), 1);
		assert_int_equal(l.last_tls, now - 100);
		history_close(h);
	}
}

/* Another gateway's history decides also where this process has no
 * history store of its own (here: history.mdb is a symbolic link, which
 * the store refuses): before, the shared store was not even asked. */
static void
test_history_from_redis_no_store(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	char val[200], path[600];
	int64_t now = (int64_t)time(NULL);
	struct history_entry e = { now - 1000, now - 100, 0, now - 100, 3, 0 };

	snprintf(path, sizeof(path), "%s/history.mdb", statedir);
	(void)mkdir(statedir, 0700);
	(void)unlink(path);
	assert_int_equal(symlink("/nonexistent-mxguard-test", path), 0);
	srv_start();
	assert_int_equal(redis_hist_encode("192.0.2.25", &e, val, sizeof(val)),
	    0);
	srv_set("mxguard:hist:192.0.2.25", val, strlen(val));
	p = mkpolicy();
	v = lookup(p, "hist.test", "192.0.2.25", NULL);
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	assert_non_null(strstr(v->detail, "another gateway"));
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
	unlink(path);
}

static int64_t
sts_get_errors(void)
{
	return stats_value(stats_counter("mxguard_redis_errors_total"
	    "{op=\"sts-get\"}", NULL));
}

/* *arg: the sts-get errors counted as policy_lookup() returned */
static void
note_sts_get_errors(void *arg)
{
	*(int64_t *)arg = sts_get_errors();
}

/* Hung: the lookup waits for Redis at most redis_timeout (REDIS_HUNG_MS,
 * the server stopped), then decides on the local state (none here:
 * may). */
static void
test_redis_hung(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	int64_t ms;

	srv_start();
	remote_policy("sh.test", "s1", enf_sh, 60);
	redis_tmo = REDIS_HUNG_MS;
	p = mkpolicy();
	assert_true(redis_is_up());
	kill(srv, SIGSTOP);
	v = lookup(p, "sh.test", "192.0.2.21", &ms);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	print_message("hung: verdict after %lld ms\n", (long long)ms);
	/* not policy_timeout's 5 s: redis_timeout's 300 ms */
	assert_true(ms < 1500);
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
}

/* Killed: the verdict is the local state's at once; back: the shared
 * policy decides again. */
static void
test_redis_down(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	int64_t ms, gets, at_return;

	srv_start();
	remote_policy("sh.test", "s1", enf_sh, 60);
	p = mkpolicy();
	assert_true(redis_is_up());
	v = lookup(p, "sh.test", "192.0.2.21", NULL);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	policy_verdict_free(v);
	/* killed: nothing is asked, nothing waits */
	srv_kill();
	wait_redis_down(2000);
	assert_false(redis_is_up());
	gets = sts_get_errors();
	v = lookup_then(p, "sh.test", "192.0.2.21", &ms, note_sts_get_errors,
	    &at_return);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	print_message("down: verdict after %lld ms\n", (long long)ms);
	/* the get was refused (counted) in policy_lookup() itself, before
	 * the loop turned: nothing was queued to wait for redis_timeout
	 * (which would count it only then).  The time is only a sanity
	 * bound, generous for a loaded or sanitized machine. */
	assert_int_equal(at_return, gets + 1);
	assert_true(ms < 1000);
	policy_verdict_free(v);
	assert_int_equal(sts_get_errors(), gets + 1);
	/* back: the shared policy decides again */
	srv_start();
	remote_policy("sh.test", "s1", enf_sh, 60);
	while (!redis_is_up())
		run_ms(50);
	v = lookup(p, "sh.test", "192.0.2.21", NULL);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
}

/* A reload (SIGHUP: policy_reconfigure) takes the new Redis settings.
 * The password is rotated on the server: the client's connection is
 * killed and its reconnects fail AUTH, lookups decide on local state;
 * after the reload with the new password, the shared policy decides
 * again.  A lookup waiting on the old client when the reload comes is
 * still answered (by its redis_timeout: the server is stopped), and the
 * old client frees itself (ASan: no leak, no use after free). */
static void
test_reload_new_password(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	struct config *cfg;
	struct sockaddr_in sin;
	struct ev_timer *guard;
	char err[256];
	int i;
	int64_t conn_errs;

	srv_start();
	srv_cmd("CONFIG SET requirepass pw-one");
	srv_pass = "pw-one";
	remote_policy("sh.test", "s1", enf_sh, 60);
	p = mkpolicy_pass("pw-one");
	assert_true(redis_is_up());
	v = lookup(p, "sh.test", "192.0.2.21", NULL);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	policy_verdict_free(v);

	/* rotated on the server: the old password no longer gets in */
	srv_cmd("CONFIG SET requirepass pw-two");
	srv_pass = "pw-two";
	srv_cmd("CLIENT KILL TYPE normal SKIPME yes");
	conn_errs = stats_value(stats_counter("mxguard_redis_errors_total"
	    "{op=\"connect\"}", NULL));
	for (i = 0; i < 100 && (redis_is_up() ||
	    stats_value(stats_counter("mxguard_redis_errors_total"
	    "{op=\"connect\"}", NULL)) == conn_errs); i++)
		run_ms(20);
	assert_false(redis_is_up());
	v = lookup(p, "sh.test", "192.0.2.21", NULL);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	policy_verdict_free(v);
	/* without a reload it stays out (the back-off retries the old
	 * password) */
	run_ms(600);
	assert_false(redis_is_up());

	/* the reload: the new password */
	cfg = mkcfg("pw-two");
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	config_free(cfg);
	wait_redis_up(2000);
	assert_true(redis_is_up());
	v = lookup(p, "sh.test", "192.0.2.21", NULL);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	policy_verdict_free(v);

	/* a reload while a lookup waits on the client: the server hangs,
	 * the lookup is asked, the reload retires the client it waits on.
	 * Both clients there have REDIS_HUNG_MS (a reload first), so that
	 * an answer by the old client's redis_timeout is told from one by
	 * policy_timeout (5 s) within the guard's 3 s */
	redis_tmo = REDIS_HUNG_MS;
	cfg = mkcfg("pw-two");
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	config_free(cfg);
	wait_redis_up(5000);
	assert_true(redis_is_up());
	kill(srv, SIGSTOP);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.21", &sin.sin_addr);
	got_v = NULL;
	assert_non_null(policy_lookup(p, "sh.test", (struct sockaddr *)&sin,
	    sizeof(sin), "t1", got, NULL));
	run_ms(50);		/* its Redis GET is sent */
	assert_null(got_v);
	cfg = mkcfg("pw-two");
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	config_free(cfg);
	guard = ev_timer_new(loop, stop_loop, NULL);
	ev_timer_arm(guard, 3000);
	if (got_v == NULL)
		ev_loop_run(loop);
	ev_timer_free(guard);
	assert_non_null(got_v);		/* answered: local state, may */
	assert_int_equal(got_v->level, TLS_LEVEL_MAY);
	policy_verdict_free(got_v);
	kill(srv, SIGCONT);
	/* back to a client whose timeout an answering server never meets */
	redis_tmo = REDIS_ANSWERS_MS;
	cfg = mkcfg("pw-two");
	assert_int_equal(policy_reconfigure(p, cfg, err, sizeof(err)), 0);
	config_free(cfg);
	wait_redis_up(3000);
	assert_true(redis_is_up());
	v = lookup(p, "sh.test", "192.0.2.21", NULL);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	policy_verdict_free(v);
	policy_free(p);
	srv_pass = NULL;
	srv_kill();
}

/* The local cache cannot be read (it may hold lost.test's real enforce
 * policy): the verdict is a store-error deferral, also when Redis holds an
 * enforce policy (written by whoever can write there) naming the
 * attacker's MX host (before: verify for that host). */
static void
test_redis_over_unreadable_cache(void **state)
{
	struct policy *p;
	struct policy_verdict *v;

	srv_start();
	p = mkpolicy();
	mdb_get_fails = 1;
	v = lookup(p, "lost.test", "192.0.2.99", NULL);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	policy_verdict_free(v);
	remote_policy("lost.test", "x1", "version: STSv1\nmode: enforce\n"
	    "mx: mx.attacker.test\nmax_age: 86400\n", 5);
	v = lookup(p, "lost.test", "192.0.2.99", NULL);
	mdb_get_fails = 0;
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "store-error");
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
}

/* Does Redis hold key?  Asked on a connection of its own. */
static int
srv_has(const char *key)
{
	redisContext *c = srv_conn();
	redisReply *r = redisCommand(c, "EXISTS %s", key);
	int has;

	assert_non_null(r);
	has = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	redisFree(c);
	return has;
}

/* Runs the loop until Redis holds key, for at most ms; 1 if it does. */
static int
wait_srv_has(const char *key, int ms)
{
	int i;

	for (i = 0; i < ms / 20 && !srv_has(key); i++)
		run_ms(20);
	return srv_has(key);
}

/*
 * Gateway 1 has loc.test's enforce policy in its own cache and Redis has
 * not (Redis was down, or still connecting, when gateway 1 fetched it; or
 * it lost its data since): a policy reached Redis only with its fetch, so
 * until the next one (the refresh, near the end of a max_age of up to a
 * year) gateway 2 had none to fall back on, and an attacker who blocks
 * gateway 2's fetch after a failover got loc.test's mail through without
 * verified TLS.  Now a cached policy that decides is written through
 * again with the cache's use mark (once an hour per domain), and gateway 2
 * (its own state_dir, nothing cached, its fetch failing) verifies.
 */
static void
test_cached_policy_shared_again(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	static const char enf_loc[] = "version: STSv1\nmode: enforce\n"
	    "mx: mx.loc.test\nmax_age: 86400\n";

	srv_start();
	{
		char err[256];
		struct sts_cache *c = sts_cache_open(statedir, err,
		    sizeof(err));
		struct sts_cache_entry e;

		assert_non_null(c);
		memset(&e, 0, sizeof(e));
		snprintf(e.id, sizeof(e.id), "l1");	/* the TXT's id */
		e.body = (char *)enf_loc;
		e.bodylen = strlen(enf_loc);
		e.fetched = e.checked = (int64_t)time(NULL) - 7200;
		e.expires = e.fetched + 86400;
		assert_int_equal(sts_cache_put(c, "loc.test", &e), 0);
		sts_cache_close(c);
	}
	/* gateway 1: its cached policy decides */
	p = mkpolicy();
	assert_true(redis_is_up());
	v = lookup(p, "loc.test", "192.0.2.22", NULL);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, ",cached,"));
	policy_verdict_free(v);
	if (!wait_srv_has("mxguard:sts:loc.test", 3000))
		fail_msg("gateway 1 used its cached enforce policy of loc.test "
		    "and Redis still has none: gateway 2 cannot have it");
	policy_free(p);

	/* gateway 2: nothing of its own, its fetch fails (no policy host) */
	snprintf(statedir, sizeof(statedir), "%s/state2", dir);
	p = mkpolicy();
	v = lookup(p, "loc.test", "192.0.2.22", NULL);
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(strstr(v->sts_note, ",redis,"));
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
}

/*
 * Gateway 1 delivered to mx.atk.test at its address (192.0.2.27) over
 * TLS.  An attacker then answers mx.atk.test's A query with an address
 * of its own (192.0.2.98) and strips STARTTLS there: gateway 1 requires
 * TLS all the same, by the host's own record ("mx.atk.test|", history.h),
 * which no address lookup can hide.  Gateway 2, after a failover, had
 * only the address's record from Redis, which knows nothing of the
 * attacker's address: the mail went in cleartext.  Now the host's record
 * is written through and read too (key hist-host:NAME).
 */
static void
test_host_history_shared(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	struct sockaddr_in sin;

	srv_start();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.27", &sin.sin_addr);
	/* gateway 1: STARTTLS completed at the host's real address */
	p = mkpolicy();
	assert_true(redis_is_up());
	policy_record_tls(p, (struct sockaddr *)&sin, "mx.atk.test", 1, 1);
	v = lookup(p, "atk.test", "192.0.2.98", NULL);
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	policy_verdict_free(v);
	if (!wait_srv_has("mxguard:hist-host:mx.atk.test", 3000))
		fail_msg("gateway 1's record of mx.atk.test is not in Redis: "
		    "gateway 2 cannot have it");
	policy_free(p);

	/* gateway 2: nothing of its own */
	snprintf(statedir, sizeof(statedir), "%s/state2", dir);
	p = mkpolicy();
	v = lookup(p, "atk.test", "192.0.2.98", NULL);
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v->source, "tls-history");
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
}

/*
 * sts_cache_get() as it is; while step_at_reread is set, its second call
 * in a lookup (cache_reread(), as the lookup decides, after the MX walk
 * answered and the MX host's record was or was not asked for) first adds
 * step_at_reread to time_step: the time the lookup took between its MX
 * walk and its decision.  While fail_at_reread is set, that second call
 * fails instead, as a store that cannot answer.
 */
int __real_sts_cache_get(struct sts_cache *, const char *,
    struct sts_cache_entry *);
int __wrap_sts_cache_get(struct sts_cache *, const char *,
    struct sts_cache_entry *);
static int64_t step_at_reread;
static int cache_gets;
static int fail_at_reread;	/* the second call fails (-1), once */

int
__wrap_sts_cache_get(struct sts_cache *c, const char *domain,
    struct sts_cache_entry *e)
{
	if (fail_at_reread && ++cache_gets == 2) {
		fail_at_reread = 0;
		return -1;
	}
	if (step_at_reread != 0 && ++cache_gets == 2) {
		time_step += step_at_reread;
		step_at_reread = 0;
	}
	return __real_sts_cache_get(c, domain, e);
}

/* started() of lookup_then(): the time the lookup takes, *arg seconds,
 * passes at once (time_step, within what core/clock.c follows) */
static void
time_passes(void *arg)
{
	time_step += *(const int64_t *)arg;
}

/*
 * The local history of 192.0.2.25 (the address's record, the MX host's
 * and the pair's) expects TLS when the lookup starts, and runs out of its
 * window 30 s later; another gateway saw STARTTLS there 100 s ago
 * (Redis).  The lookup takes 60 s (an attacker on the path holds the DNS
 * answers, or the policy host's, up to policy_timeout: 90 s here).
 * Before, the
 * shared store was not asked, as the local record expected TLS at the
 * start, and the decision, made once it no longer did, had neither: may,
 * and a STARTTLS strip delivered in cleartext.  The local record must
 * last as long as the lookup may take for the shared one to be skipped.
 */
static void
test_history_local_expires_during_lookup(void **state)
{
	int64_t now = (int64_t)time(NULL), window = 30 * 86400, took = 60;
	struct history_entry e = { now - 1000, now - 100, 0, now - 100, 3, 0 };
	struct policy *p;
	struct policy_verdict *v;
	struct sockaddr_in sin;
	char val[200], err[256];

	policy_tmo = 90000;
	(void)mkdir(statedir, 0700);
	{
		struct history *h = history_open(statedir, err, sizeof(err));
		int64_t t = now - window + 30;

		assert_non_null(h);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		inet_pton(AF_INET, "192.0.2.25", &sin.sin_addr);
		assert_int_equal(history_record(h, "", (struct sockaddr *)&sin,
		    1, 1, t, NULL), 0);
		assert_int_equal(history_record(h, "mx.hist.test",
		    (struct sockaddr *)&sin, 1, 1, t, NULL), 0);
		assert_int_equal(history_record(h, "mx.hist.test", NULL, 1, 1,
		    t, NULL), 0);
		history_close(h);
	}
	srv_start();
	assert_int_equal(redis_hist_encode("192.0.2.25", &e, val, sizeof(val)),
	    0);
	srv_set("mxguard:hist:192.0.2.25", val, strlen(val));
	p = mkpolicy();
	assert_true(redis_is_up());
	v = lookup_then(p, "hist.test", "192.0.2.25", NULL, time_passes,
	    &took);
	time_step = 0;
	if (v->level != TLS_LEVEL_ENCRYPT)
		fail_msg("level %d (source %s, %s): the shared history, which "
		    "expects TLS, was not asked while the local one ran out "
		    "during the lookup", (int)v->level, v->source, v->detail);
	assert_string_equal(v->source, "tls-history");
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
}

/*
 * The same for the MX host's own record ("mx.hist.test|"), asked for once
 * the MX walk has answered: the local one expects TLS then and runs out
 * 30 s later, another gateway saw STARTTLS at that host 100 s ago, and
 * the lookup decides 60 s after the walk.  Before, the shared record was
 * not asked for, and the decision had neither: may.
 */
static void
test_host_history_local_expires_during_lookup(void **state)
{
	int64_t now = (int64_t)time(NULL), window = 30 * 86400;
	struct history_entry e = { now - 1000, now - 100, 0, now - 100, 3, 0 };
	struct policy *p;
	struct policy_verdict *v;
	char val[200], err[256];

	policy_tmo = 90000;
	(void)mkdir(statedir, 0700);
	{
		struct history *h = history_open(statedir, err, sizeof(err));

		assert_non_null(h);
		assert_int_equal(history_record(h, "mx.hist.test", NULL, 1, 1,
		    now - window + 30, NULL), 0);
		history_close(h);
	}
	srv_start();
	assert_int_equal(redis_hist_encode("mx.hist.test", &e, val,
	    sizeof(val)), 0);
	srv_set("mxguard:hist-host:mx.hist.test", val, strlen(val));
	p = mkpolicy();
	assert_true(redis_is_up());
	cache_gets = 0;
	step_at_reread = 60;
	v = lookup(p, "hist.test", "192.0.2.25", NULL);
	time_step = 0;
	assert_int_equal(step_at_reread, 0);	/* the time did pass */
	if (v->level != TLS_LEVEL_ENCRYPT)
		fail_msg("level %d (source %s, %s): the MX host's shared "
		    "history, which expects TLS, was not asked while the local "
		    "one ran out during the lookup", (int)v->level, v->source,
		    v->detail);
	assert_string_equal(v->source, "tls-history");
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
}

/*
 * The local cache read at the lookup's start finds nothing for lost.test,
 * so Redis is asked, and holds an enforce policy naming the attacker's MX
 * host; the read again as the lookup decides (cache_reread()) fails: the
 * cache may hold lost.test's real policy by then (another worker fetched
 * it), so the verdict is the store-error deferral, as when the first read
 * fails (test_redis_over_unreadable_cache), never the Redis policy.  Red
 * with the mutant of sts_effective() without "!r->cache_unknown" for the
 * Redis policy: level verify for mx.attacker.test (expected defer).
 */
static void
test_redis_not_over_cache_failing_at_decision(void **state)
{
	struct policy *p;
	struct policy_verdict *v;

	srv_start();
	p = mkpolicy();
	assert_true(redis_is_up());
	remote_policy("lost.test", "x1", "version: STSv1\nmode: enforce\n"
	    "mx: mx.attacker.test\nmax_age: 86400\n", 5);
	cache_gets = 0;
	fail_at_reread = 1;
	v = lookup(p, "lost.test", "192.0.2.99", NULL);
	assert_int_equal(fail_at_reread, 0);	/* the read again failed */
	if (v->level != TLS_LEVEL_DEFER)
		fail_msg("level %s (source %s, %s): the Redis policy decided "
		    "over a local cache that could not answer",
		    tls_level_name(v->level), v->source, v->detail);
	assert_string_equal(v->reason, "store-error");
	policy_verdict_free(v);
	policy_free(p);
	srv_kill();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_redis_over_unreadable_cache,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_stricter_only, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_copied_value_not_used,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_from_redis, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_history_from_redis_no_store,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_redis_hung, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_redis_down, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reload_new_password,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cached_policy_shared_again,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_history_shared,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_history_local_expires_during_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_host_history_local_expires_during_lookup, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_redis_not_over_cache_failing_at_decision, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
