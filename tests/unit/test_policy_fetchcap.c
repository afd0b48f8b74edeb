/*
 * test_policy_fetchcap.c - the bound on MTA-STS fetches nobody waits for
 * (policy.c, FETCH_DETACHED_MAX): a flood of lookups for domains whose
 * policy hosts an attacker runs and holds (a refresh near expiry that a
 * lookup starts and does not wait for, a fetch whose lookups all went
 * away) leaves at most that many of them open per worker, while a
 * legitimate domain's first fetch still starts at once and decides; and
 * a first fetch that failed for want of this gateway's own descriptors
 * (HTTP_LOCAL_ERROR) defers the recipient instead of deciding as if the
 * domain had no policy, and so does a _mta-sts TXT lookup the resolver
 * could not send for want of a descriptor (RLIMIT_NOFILE lowered).
 * http_get() is mocked: a policy host under flood.test never answers,
 * mta-sts.legit.test answers an enforce policy (and mta-sts.lerr.test,
 * or fails as HTTP_LOCAL_ERROR when asked to); a fake DNS server in the
 * process answers the rest.
 */
// WRAP: http_get http_cancel writev malloc calloc
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <fcntl.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/stats.h"
#include "policy/cache.h"
#include "policy/dane.h"
#include "policy/http.h"
#include "policy/policy.h"
#include "policy/sts.h"
#include "policy/verdict.h"

#include "ctfake.h"
#include "dnsmsg.h"

/* writev() (c-ares's sends, dns.c sf_sendv()): fails with send_errno
 * while it is set, as a send this host had no buffer for; with send_qtype
 * set, only a query of that type */
static int send_errno, send_failed, send_qtype;

ssize_t __real_writev(int, const struct iovec *, int);
ssize_t __wrap_writev(int, const struct iovec *, int);

ssize_t
__wrap_writev(int fd, const struct iovec *iov, int n)
{
	if (send_errno != 0 && send_qtype != 0) {
		unsigned char q[512];
		char name[300];
		size_t o = 0;
		int i, qt;

		for (i = 0; i < n && o < sizeof(q); i++) {
			size_t l = iov[i].iov_len < sizeof(q) - o ?
			    iov[i].iov_len : sizeof(q) - o;

			memcpy(q + o, iov[i].iov_base, l);
			o += l;
		}
		if (zone_question(q, (ssize_t)o, name, sizeof(name),
		    &qt) == -1 || qt != send_qtype)
			return __real_writev(fd, iov, n);
	}
	if (send_errno != 0) {
		send_failed++;
		errno = send_errno;
		return -1;
	}
	return __real_writev(fd, iov, n);
}

/* malloc(): the nth allocation of a parsed MTA-STS policy's size fails
 * while policy_nth is set (fetch_done(): its parse, the cache's
 * reading of its mode, then each waiting lookup's copy) */
static int policy_nth, policy_allocs;

void *__real_malloc(size_t);
void *__wrap_malloc(size_t);

void *
__wrap_malloc(size_t n)
{
	if (policy_nth != 0 && n == sizeof(struct sts_policy) &&
	    ++policy_allocs == policy_nth) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(n);
}

/* calloc(): a DANE lookup's result (struct dane_info, dane_lookup()'s
 * second allocation) fails while dane_nomem is set */
static int dane_nomem, dane_nomem_hits;

void *__real_calloc(size_t, size_t);
void *__wrap_calloc(size_t, size_t);

void *
__wrap_calloc(size_t n, size_t sz)
{
	if (dane_nomem && n == 1 && sz == sizeof(struct dane_info)) {
		dane_nomem_hits++;
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, sz);
}

#define NFLOOD		100	/* more than the bound */
#define DETACHED_MAX	64	/* policy.c's FETCH_DETACHED_MAX */

static struct ev_loop *loop;
static char statedir[] = "/tmp/mxg-fcap-test-XXXXXX";
static int dnsfd;
static struct zrr *zone;

/* ---- DNS: MX, A and _mta-sts TXT of every domain of the zone ---- */

static void
zone_add(int *n, const char *name, int type, const char *value)
{
	zone = realloc(zone, (size_t)(*n + 2) * sizeof(*zone));
	assert_non_null(zone);
	zone[*n].name = strdup(name);
	zone[*n].type = type;
	zone[*n].value = strdup(value);
	(*n)++;
	memset(&zone[*n], 0, sizeof(zone[*n]));
}

static void
zone_domain(int *n, const char *d)
{
	char a[300], b[300];

	snprintf(a, sizeof(a), "10 mx.%s", d);
	zone_add(n, d, DNS_T_MX, a);
	snprintf(a, sizeof(a), "mx.%s", d);
	zone_add(n, a, DNS_T_A, "192.0.2.1");
	snprintf(a, sizeof(a), "_mta-sts.%s", d);
	snprintf(b, sizeof(b), "v=STSv1; id=%s", "i1");
	zone_add(n, a, DNS_T_TXT, b);
}

/* conntrack's drop counters move as the resolver serves (ctfake.h) */
static int ct_bump;

static void
dns_read(int fd, int events, void *arg)
{
	if (ct_bump)
		assert_int_equal(ctfake_set(100 + (uint64_t)ct_bump++), 0);
	zone_serve(fd, zone);
}

/* ---- http_get(): held under flood.test, answered for legit.test ---- */

struct http_req *__real_http_get(struct ev_loop *, struct dns *, SSL_CTX *,
    const char *, const char *, uint64_t, size_t, uint32_t, http_cb *,
    void *);
void __real_http_cancel(struct http_req *);
struct http_req *__wrap_http_get(struct ev_loop *, struct dns *, SSL_CTX *,
    const char *, const char *, uint64_t, size_t, uint32_t, http_cb *,
    void *);
void __wrap_http_cancel(struct http_req *);

static struct mreq {
	int		 live;
	http_cb		*cb;
	void		*arg;
} mreqs[4 * NFLOOD];
static int nmreqs, started, open_fetches;
static struct ev_timer *legit_t;
static struct mreq legit;

static const char legit_body[] = "version: STSv1\nmode: enforce\n"
    "mx: mx.legit.test\nmax_age: 86400\n";

static int legit_local;	/* the fetch fails as HTTP_LOCAL_ERROR */
/* fetches started for mta-sts.bgloc.test (on the legit slot) and
 * mta-sts.bgnext.test (held) */
static int nbgloc, nbgnext;

static void
legit_fire(void *arg)
{
	legit.live = 0;
	open_fetches--;
	if (legit_local)
		legit.cb(legit.arg, -1, NULL, 0, HTTP_LOCAL_ERROR,
		    "192.0.2.9: socket: Too many open files");
	else
		legit.cb(legit.arg, 0, legit_body, strlen(legit_body), NULL,
		    NULL);
}

struct http_req *
__wrap_http_get(struct ev_loop *l, struct dns *d, SSL_CTX *ctx,
    const char *host, const char *path, uint64_t tmo, size_t maxbody,
    uint32_t mark, http_cb *cb, void *arg)
{
	struct mreq *m;

	started++;
	open_fetches++;
	if (strcmp(host, "mta-sts.bgloc.test") == 0)
		nbgloc++;
	if (strcmp(host, "mta-sts.bgnext.test") == 0)
		nbgnext++;
	if (strcmp(host, "mta-sts.legit.test") == 0 ||
	    strcmp(host, "mta-sts.lerr.test") == 0 ||
	    strcmp(host, "mta-sts.nomem.test") == 0 ||
	    strcmp(host, "mta-sts.bgloc.test") == 0) {
		m = &legit;
		ev_timer_arm(legit_t, 10);
	} else {
		assert_true(nmreqs < (int)(sizeof(mreqs) / sizeof(mreqs[0])));
		m = &mreqs[nmreqs++];
	}
	m->live = 1;
	m->cb = cb;
	m->arg = arg;
	ev_loop_stop(l);	/* fetch_started() waits for this */
	return (struct http_req *)m;
}

void
__wrap_http_cancel(struct http_req *h)
{
	struct mreq *m = (struct mreq *)h;

	if (h == NULL)
		return;
	if (m == &legit)
		ev_timer_stop(legit_t);
	assert_true(m->live);
	m->live = 0;
	open_fetches--;
}

/* ---- the engine ---- */

static int cfg_dane;			/* dane_enable */
static uint64_t cfg_refresh_interval;	/* 0: the default */
static int cfg_refresh_max;		/* 0: the default */

static struct policy *
mkpolicy_max(int max_entries)
{
	char err[256], srv[64];
	struct config *cfg = config_load(NULL, err, sizeof(err));
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct policy *p;

	assert_non_null(cfg);
	getsockname(dnsfd, (struct sockaddr *)&sin, &sl);
	snprintf(srv, sizeof(srv), "127.0.0.1:%d", ntohs(sin.sin_port));
	cfg->dns_servers.v = calloc(1, sizeof(char *));
	cfg->dns_servers.v[0] = strdup(srv);
	cfg->dns_servers.n = 1;
	cfg->dns_timeout = 2000;
	cfg->policy_timeout = 5000;
	cfg->sts_fetch_timeout = 1500;
	cfg->sts_enable = 1;
	cfg->dane_enable = cfg_dane;
	cfg->tlsrpt_enable = 0;
	if (max_entries > 0)
		cfg->sts_cache_max_entries = max_entries;
	if (cfg_refresh_interval)
		cfg->sts_refresh_interval = cfg_refresh_interval;
	if (cfg_refresh_max)
		cfg->sts_refresh_max = cfg_refresh_max;
	free(cfg->state_dir);
	cfg->state_dir = strdup(statedir);
	p = policy_new(loop, cfg, err, sizeof(err));
	if (p == NULL)
		fail_msg("policy_new: %s", err);
	config_free(cfg);
	return p;
}

static struct policy *
mkpolicy(void)
{
	return mkpolicy_max(0);
}

/* A cached policy of domain in mode (enforce, testing) fetched age
 * seconds ago, max_age 86400. */
static void
cache_policy_mode(const char *domain, const char *mode, int64_t age)
{
	char err[256];
	struct sts_cache *c = sts_cache_open(statedir, err, sizeof(err));
	struct sts_cache_entry e;
	char body[300];
	int64_t now = (int64_t)time(NULL);

	assert_non_null(c);
	snprintf(body, sizeof(body), "version: STSv1\nmode: %s\n"
	    "mx: mx.%s\nmax_age: 86400\n", mode, domain);
	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "i1");
	e.body = body;
	e.bodylen = strlen(body);
	e.fetched = e.checked = now - age;
	e.expires = e.fetched + 86400;
	assert_int_equal(sts_cache_put(c, domain, &e), 0);
	sts_cache_close(c);
}

static void
cache_policy_aged(const char *domain, int64_t age)
{
	cache_policy_mode(domain, "enforce", age);
}

static void
cache_refresh_due(const char *domain)
{
	/* 80000 s into 86400: inside the 25 % refresh margin */
	cache_policy_aged(domain, 80000);
}

static struct policy_verdict *got_v;
static int ngot;

static void
got(void *arg, struct policy_verdict *v)
{
	got_v = v;
	ngot++;
	ev_loop_stop(loop);
}

static struct policy_req *
ask(struct policy *p, const char *domain)
{
	struct sockaddr_in sin;
	struct policy_req *r;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	got_v = NULL;
	r = policy_lookup(p, domain, (struct sockaddr *)&sin, sizeof(sin),
	    "t1", got, NULL);
	assert_non_null(r);
	return r;
}

/* Runs the loop until *v reaches want (the guard fails the test at
 * 10 s): the mock's fetch starts and got() stop the loop. */
static void
run_until(const int *v, int want)
{
	struct ev_timer *guard = ev_timer_new(loop,
	    (ev_timer_cb *)ev_loop_stop, loop);

	ev_timer_arm(guard, 10000);
	while (*v < want && ev_timer_pending(guard))
		ev_loop_run(loop);
	ev_timer_free(guard);
	assert_true(*v >= want);
}

static struct policy_verdict *
lookup(struct policy *p, const char *domain)
{
	int want = ngot + 1;

	(void)ask(p, domain);
	run_until(&ngot, want);
	return got_v;
}

static int
setup(void **state)
{
	struct sockaddr_in sin;
	char d[64];
	int i, n = 0;

	log_init("test", 0, getenv("TEST_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERR);
	if (mkdtemp(statedir) == NULL)
		return -1;
	loop = ev_loop_new();
	legit_t = ev_timer_new(loop, legit_fire, NULL);
	dnsfd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(dnsfd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		return -1;
	ev_fd_set(loop, dnsfd, EV_READ, dns_read, NULL);
	zone_add(&n, "legit.test", DNS_T_MX, "10 mx.legit.test");
	zone_add(&n, "mx.legit.test", DNS_T_A, "192.0.2.1");
	zone_add(&n, "_mta-sts.legit.test", DNS_T_TXT, "v=STSv1; id=l1");
	zone_add(&n, "lerr.test", DNS_T_MX, "10 mx.legit.test");
	zone_add(&n, "nsock.test", DNS_T_MX, "10 mx.legit.test");
	zone_add(&n, "_mta-sts.nsock.test", DNS_T_TXT, "v=STSv1; id=n1");
	zone_add(&n, "nbuf.test", DNS_T_MX, "10 mx.legit.test");
	zone_add(&n, "_mta-sts.nbuf.test", DNS_T_TXT, "v=STSv1; id=b1");
	zone_add(&n, "_mta-sts.lerr.test", DNS_T_TXT, "v=STSv1; id=e1");
	zone_add(&n, "nomem.test", DNS_T_MX, "10 mx.legit.test");
	zone_add(&n, "_mta-sts.nomem.test", DNS_T_TXT, "v=STSv1; id=m1");
	zone_add(&n, "_mta-sts.bgloc.test", DNS_T_TXT, "v=STSv1; id=i1");
	zone_add(&n, "_mta-sts.bgnext.test", DNS_T_TXT, "v=STSv1; id=i1");
	/* DANE: signed domains whose MX host publishes TLSA records, MX and
	 * A lookups answered (unless failed here); dsf's TLSA fails at the
	 * resolver (a server's SERVFAIL) */
	{
		static const char *dd[] = { "dtlsa", "dmx", "da", "dsf" };
		char a[300], b[300];

		for (i = 0; i < 4; i++) {
			snprintf(d, sizeof(d), "%s.signed.test", dd[i]);
			snprintf(a, sizeof(a), "10 mx.%s", d);
			zone_add(&n, d, DNS_T_MX, a);
			snprintf(a, sizeof(a), "mx.%s", d);
			zone_add(&n, a, DNS_T_A, "192.0.2.1");
			snprintf(b, sizeof(b), "_25._tcp.mx.%s", d);
			zone_add(&n, b, i == 3 ? T_SERVFAIL : DNS_T_TLSA,
			    "3 1 1 0102030405060708091011121314151617181920"
			    "212223242526272829303132");
		}
	}
	/* MTA-STS enforce, cached: MX and A of smx.test and sa.test */
	zone_add(&n, "smx.test", DNS_T_MX, "10 mx.smx.test");
	zone_add(&n, "mx.smx.test", DNS_T_A, "192.0.2.1");
	zone_add(&n, "sa.test", DNS_T_MX, "10 mx.sa.test");
	zone_add(&n, "mx.sa.test", DNS_T_A, "192.0.2.1");
	zone_add(&n, "stest.test", DNS_T_MX, "10 mx.stest.test");
	zone_add(&n, "mx.stest.test", DNS_T_A, "192.0.2.1");
	zone_add(&n, "ctfull.test", DNS_T_MX, "10 mx.legit.test");
	zone_add(&n, "_mta-sts.ctfull.test", DNS_T_TXT, "v=STSv1; id=c1");
	zone_add(&n, "ctdrop.test", DNS_T_MX, "10 mx.legit.test");
	zone_add(&n, "_mta-sts.ctdrop.test", T_SERVFAIL, "");
	for (i = 0; i < NFLOOD; i++) {
		snprintf(d, sizeof(d), "r%d.flood.test", i);
		zone_domain(&n, d);
		cache_refresh_due(d);
		snprintf(d, sizeof(d), "o%d.flood.test", i);
		zone_domain(&n, d);
	}
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	ev_fd_del(loop, dnsfd);
	close(dnsfd);
	ev_timer_free(legit_t);
	ev_loop_free(loop);
	for (int i = 0; zone != NULL && zone[i].name != NULL; i++) {
		free((char *)zone[i].name);
		free((char *)zone[i].value);
	}
	free(zone);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", statedir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A lookup of a domain with a cached policy near expiry decides at once
 * and leaves a refresh running that nobody waits for: the attacker's
 * policy hosts hold each for sts_fetch_timeout, and every further
 * recipient domain started one more.  At most DETACHED_MAX stay open,
 * and the cached policies decided all the same. */
static void
test_refresh_flood_bounded(void **state)
{
	struct policy *p = mkpolicy();
	struct policy_verdict *v;
	char d[64];
	int i;

	started = open_fetches = nmreqs = 0;
	for (i = 0; i < NFLOOD; i++) {
		snprintf(d, sizeof(d), "r%d.flood.test", i);
		v = lookup(p, d);
		assert_int_equal(v->level, TLS_LEVEL_VERIFY);
		policy_verdict_free(v);
	}
	assert_true(open_fetches <= DETACHED_MAX);
	assert_int_equal(open_fetches, DETACHED_MAX);

	/* a legitimate domain's first fetch is not held behind them */
	v = lookup(p, "legit.test");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	policy_verdict_free(v);
	policy_free(p);
	assert_int_equal(open_fetches, 0);
}

/* A lookup whose fetch started and that then went away (its session
 * closed) leaves the fetch running for a later lookup's sake; a flood
 * of them leaves at most DETACHED_MAX open. */
static void
test_orphan_flood_bounded(void **state)
{
	struct policy *p = mkpolicy();
	struct policy_verdict *v;
	struct policy_req *r;
	char d[64];
	int i, want;

	started = open_fetches = nmreqs = 0;
	for (i = 0; i < NFLOOD; i++) {
		snprintf(d, sizeof(d), "o%d.flood.test", i);
		want = started + 1;
		r = ask(p, d);
		run_until(&started, want);
		assert_int_equal(started, want);
		assert_null(got_v);
		policy_cancel(r);
	}
	assert_int_equal(open_fetches, DETACHED_MAX);

	v = lookup(p, "legit.test");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "mta-sts");
	policy_verdict_free(v);
	policy_free(p);
	assert_int_equal(open_fetches, 0);
}

/* The first fetch of a domain that publishes a policy fails because this
 * gateway is out of descriptors (a flood took them, socket() says
 * EMFILE): that says nothing of the domain, so the recipient is deferred
 * as this gateway's own trouble (not reported by TLSRPT), never decided
 * as if the domain had no policy.  Red before: level may, source
 * default, the mail delivered without the policy the domain publishes. */
static void
test_local_error_defers(void **state)
{
	struct policy *p = mkpolicy();
	struct policy_verdict *v;

	started = open_fetches = nmreqs = 0;
	legit_local = 1;
	v = lookup(p, "lerr.test");
	legit_local = 0;
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->source, "mta-sts");
	assert_string_equal(v->reason, "local-error");
	assert_int_equal(v->local, 1);
	assert_non_null(strstr(v->detail, "Too many open files"));
	policy_verdict_free(v);

	/* resources back: the next lookup fetches (no back-off) */
	v = lookup(p, "lerr.test");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	policy_verdict_free(v);
	policy_free(p);
}

/* Out of descriptors, the resolver cannot open its socket for the
 * _mta-sts TXT query: c-ares reports the query as refused, as a
 * server's SERVFAIL or refusal, which with nothing cached means no
 * policy.  That is this gateway's trouble, not the domain's answer, so
 * the recipient is deferred (local-error).  Red before: level may, the
 * mail delivered as if the domain published no policy. */
static void
test_dns_no_socket_defers(void **state)
{
	struct policy *p = mkpolicy();
	struct policy_verdict *v;
	struct rlimit old, low;
	int fd;

	started = open_fetches = nmreqs = 0;
	/* no descriptor beyond the lowest free one (the resolver's socket
	 * is closed while no query runs) */
	assert_true((fd = open("/dev/null", O_RDONLY)) >= 0);
	close(fd);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)fd;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	v = lookup(p, "nsock.test");
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(started, 0);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "local-error");
	assert_int_equal(v->local, 1);
	assert_non_null(strstr(v->detail, "Too many open files"));
	policy_verdict_free(v);
	policy_free(p);
}

/* The resolver's socket opens, and its send fails for want of this
 * host's buffers (ENOBUFS; also ENOMEM, EAGAIN): c-ares takes the server
 * for failed and reports the query as refused, dns.c SERVFAIL, and the
 * TXT lookup failed with nothing cached was no policy.  Deferred as
 * local-error, as for a socket it could not open. */
/* A lookup of domain whose resolver sends all fail with err: deferred as
 * local-error naming what, never decided as no policy. */
static void
txt_send_fails_defers(const char *domain, int err, const char *what)
{
	struct policy *p = mkpolicy();
	struct policy_verdict *v;

	started = open_fetches = nmreqs = 0;
	send_errno = err;
	send_failed = 0;
	v = lookup(p, domain);
	send_errno = 0;
	assert_true(send_failed > 0);
	assert_int_equal(started, 0);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "local-error");
	assert_int_equal(v->local, 1);
	assert_non_null(strstr(v->detail, what));
	policy_verdict_free(v);
	policy_free(p);
}

static void
test_dns_no_buffer_defers(void **state)
{
	(void)state;
	txt_send_fails_defers("nbuf.test", ENOBUFS, "No buffer space");
}

/*
 * The policy host served an enforce policy, and this gateway had no
 * memory for the waiting lookup's copy of it (fetch_done()), while the
 * cache could not keep it either (here: full of live enforce policies,
 * which a newcomer never evicts; under the memory pressure that failed
 * the copy, the store's own allocation fails alike): the lookup decided
 * as if the domain published no policy, and its mail went without it.
 * Deferred as local-error, as for a response it had no memory to copy.
 * Red before: level may, source default.
 */
static void
test_fetched_copy_nomem_defers(void **state)
{
	char err[256];
	struct sts_cache *c = sts_cache_open(statedir, err, sizeof(err));
	struct policy *p;
	struct policy_verdict *v;
	int full;

	(void)state;
	assert_non_null(c);
	full = (int)sts_cache_count(c);
	sts_cache_close(c);
	p = mkpolicy_max(full);
	started = open_fetches = nmreqs = 0;
	policy_allocs = 0;
	/* fetch_done()'s parse goes; the lookup's copy fails (the
	 * cache's reading of the mode, body_mode(), allocates nothing) */
	policy_nth = 2;
	v = lookup(p, "nomem.test");
	policy_nth = 0;
	assert_int_equal(started, 1);
	assert_int_equal(policy_allocs, 2);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "local-error");
	assert_int_equal(v->local, 1);
	assert_non_null(strstr(v->detail, "out of memory"));
	policy_verdict_free(v);

	/* memory back: the next lookup fetches, and the policy decides */
	v = lookup(p, "nomem.test");
	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * A background refresh (the timer's, near expiry) whose fetch fails for
 * want of this gateway's own resources says nothing of the domain: the
 * domain must not sit out the next rounds as for a failure of its own
 * (a flood that takes the descriptors would otherwise push every
 * refresh it met into the back-off, and the policies towards expiry),
 * and it counts as local-error, not error.  With one place a round and
 * bgloc.test the soonest to expire, the next round takes bgloc.test
 * again, not bgnext.test.  Red before: bgloc.test sat out round 2,
 * bgnext.test took it (nbgnext 1 at bgloc.test's second fetch), counted
 * as error.
 */
static void
test_bg_local_error_no_sitout(void **state)
{
	const char *c_loc = "mxguard_sts_refresh_background_total"
	    "{result=\"local-error\"}";
	const char *c_err = "mxguard_sts_refresh_background_total"
	    "{result=\"error\"}";
	struct policy *p;
	int64_t loc0 = stats_value(stats_get(c_loc, "x"));
	int64_t err0 = stats_value(stats_get(c_err, "x"));

	(void)state;
	/* both due, soonest of the cache (the flood's expire later) */
	cache_policy_aged("bgloc.test", 86000);
	cache_policy_aged("bgnext.test", 85900);
	started = open_fetches = nmreqs = nbgloc = nbgnext = 0;
	legit_local = 1;
	cfg_refresh_interval = 100;
	cfg_refresh_max = 1;
	p = mkpolicy();
	cfg_refresh_interval = 0;
	cfg_refresh_max = 0;
	run_until(&nbgloc, 2);
	legit_local = 0;
	assert_int_equal(nbgnext, 0);
	assert_true(stats_value(stats_get(c_loc, "x")) >= loc0 + 1);
	assert_int_equal(stats_value(stats_get(c_err, "x")), err0);
	policy_free(p);
	assert_int_equal(open_fetches, 0);
}

/* One lookup of domain (A = 192.0.2.1) with queries of qtype failing
 * to be sent for want of buffers (ENOBUFS; 0: none failing). */
static struct policy_verdict *
lookup_failing(struct policy *p, const char *domain, int qtype)
{
	struct policy_verdict *v;

	send_errno = qtype ? ENOBUFS : 0;
	send_qtype = qtype;
	send_failed = 0;
	v = lookup(p, domain);
	send_errno = send_qtype = 0;
	if (qtype)
		assert_true(send_failed > 0);
	return v;
}

static void
assert_dane_local(struct policy_verdict *v, const char *what)
{
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->source, "dane");
	assert_string_equal(v->reason, "local-error");
	assert_int_equal(v->local, 1);
	assert_non_null(strstr(v->detail, what));
	policy_verdict_free(v);
}

/*
 * DANE's lookups that c-ares could not send for want of this host's
 * buffers (or descriptors, memory): c-ares reports them as refused, which
 * was the zone's SERVFAIL, and the recipient deferred as dnssec-invalid,
 * reported by TLSRPT as the domain's failure.  The TLSA lookup of the
 * host owning A, the MX lookup, and the A lookup (then no host owns A,
 * and the failed host might) are this gateway's trouble: local-error,
 * v->local (not reported).  A TLSA lookup the resolver answers SERVFAIL
 * stays dnssec-invalid.  Red before: dnssec-invalid, local 0.
 */
static void
test_dane_local_defers(void **state)
{
	struct policy *p;
	struct policy_verdict *v;

	(void)state;
	cfg_dane = 1;
	p = mkpolicy();
	cfg_dane = 0;
	started = open_fetches = nmreqs = 0;
	assert_dane_local(lookup_failing(p, "dtlsa.signed.test", DNS_T_TLSA),
	    "_25._tcp.mx.dtlsa.signed.test not sent");
	assert_dane_local(lookup_failing(p, "dmx.signed.test", DNS_T_MX),
	    "MX lookup for dmx.signed.test not sent");
	assert_dane_local(lookup_failing(p, "da.signed.test", DNS_T_A),
	    "address lookup of MX host mx.da.signed.test was not sent");

	v = lookup_failing(p, "dsf.signed.test", 0);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->reason, "dnssec-invalid");
	assert_int_equal(v->local, 0);
	policy_verdict_free(v);
	/* resources back: DANE */
	v = lookup_failing(p, "dtlsa.signed.test", 0);
	assert_int_equal(v->level, TLS_LEVEL_DANE);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * dane_lookup() could not start for want of memory (its result's
 * calloc() fails): the recipient was deferred as dnssec-invalid, a
 * failure of the domain's, reported by TLSRPT.  It is this gateway's
 * trouble: local-error, v->local (not reported), and still a deferral,
 * never the "no TLSA" that would let the mail go without DANE.  Memory
 * back, the domain's DANE decides.  Red before: dnssec-invalid, local 0.
 */
static void
test_dane_start_nomem_defers(void **state)
{
	struct policy *p;
	struct policy_verdict *v;

	(void)state;
	cfg_dane = 1;
	p = mkpolicy();
	cfg_dane = 0;
	started = open_fetches = nmreqs = 0;
	dane_nomem = 1;
	dane_nomem_hits = 0;
	v = lookup(p, "dtlsa.signed.test");
	dane_nomem = 0;
	assert_int_equal(dane_nomem_hits, 1);
	assert_int_equal(v->level, TLS_LEVEL_DEFER);
	assert_string_equal(v->source, "dane");
	assert_string_equal(v->reason, "local-error");
	assert_int_equal(v->local, 1);
	assert_non_null(strstr(v->detail, "out of memory"));
	policy_verdict_free(v);

	v = lookup(p, "dtlsa.signed.test");
	assert_int_equal(v->level, TLS_LEVEL_DANE);
	policy_verdict_free(v);
	policy_free(p);
}

/*
 * A cached MTA-STS enforce policy, and the MX walk's MX or A lookup not
 * sent for want of this host's buffers: no MX host owns A, which deferred
 * as the domain's validation-failure ("MX lookup failed (SERVFAIL or
 * bogus)"), reported by TLSRPT.  Now local-error, v->local.  Red before:
 * validation-failure, local 0.
 */
static void
test_sts_mx_local_defers(void **state)
{
	struct policy *p = mkpolicy();
	struct policy_verdict *v;
	static const struct { const char *d; int qtype; } c[] = {
		{ "smx.test", DNS_T_MX }, { "sa.test", DNS_T_A },
	};
	size_t i;

	(void)state;
	started = open_fetches = nmreqs = 0;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		cache_policy_aged(c[i].d, 1000);
		v = lookup_failing(p, c[i].d, c[i].qtype);
		assert_int_equal(v->level, TLS_LEVEL_DEFER);
		assert_string_equal(v->source, "mta-sts");
		assert_string_equal(v->reason, "local-error");
		assert_int_equal(v->local, 1);
		assert_non_null(strstr(v->detail, "No buffer space"));
		policy_verdict_free(v);
		v = lookup_failing(p, c[i].d, 0);
		assert_int_equal(v->level, TLS_LEVEL_VERIFY);
		policy_verdict_free(v);
	}
	policy_free(p);
}

/*
 * The same under an MTA-STS testing policy: nothing is enforced (may),
 * and the check that could not be made is not the domain's
 * validation-failure, reported by TLSRPT: v->local, no reason.  Red
 * before: reason validation-failure, local 0.
 */
static void
test_sts_testing_mx_local_unreported(void **state)
{
	struct policy *p = mkpolicy();
	struct policy_verdict *v;

	(void)state;
	started = open_fetches = nmreqs = 0;
	cache_policy_mode("stest.test", "testing", 1000);
	v = lookup_failing(p, "stest.test", DNS_T_MX);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_int_equal(v->report_only, 1);
	assert_string_equal(v->reason, "");
	assert_int_equal(v->local, 1);
	assert_non_null(strstr(v->detail, "not reported"));
	policy_verdict_free(v);
	v = lookup_failing(p, "stest.test", 0);
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	assert_int_equal(v->local, 0);
	assert_non_null(strstr(v->detail, "matches"));
	policy_verdict_free(v);
	policy_free(p);
}

/* The conntrack table of this host is full (a flood of flows relayed
 * for a gateway's clients): netfilter drops the resolver's UDP query,
 * and the send fails at once with EPERM (measured on 6.18).  c-ares
 * takes the server for failed and reports the query as refused, as for
 * ENOBUFS: deferred as local-error, never decided as no policy.  Red
 * before: level may. */
static void
test_dns_send_eperm_defers(void **state)
{
	(void)state;
	txt_send_fails_defers("ctfull.test", EPERM, "Operation not permitted");
}

/* The _mta-sts TXT lookup fails (SERVFAIL here; under a full conntrack
 * table, a query over TCP whose SYN is dropped, or an answer dropped,
 * times out) while conntrack's drop counters moved: that says nothing of
 * the domain, deferred as local-error.  The same failure with the
 * counters still is no policy, as before (may).  Red before: may both
 * times. */
static void
test_txt_conntrack_drops_defer(void **state)
{
	struct policy *p;
	struct policy_verdict *v;
	int dropped;

	(void)state;
	for (dropped = 1; dropped >= 0; dropped--) {
		p = mkpolicy();
		started = open_fetches = nmreqs = 0;
		assert_int_equal(ctfake_open(100), 0);
		ct_bump = dropped;
		v = lookup(p, "ctdrop.test");
		ct_bump = 0;
		assert_int_equal(started, 0);
		if (dropped) {
			assert_int_equal(v->level, TLS_LEVEL_DEFER);
			assert_string_equal(v->reason, "local-error");
			assert_int_equal(v->local, 1);
			assert_non_null(strstr(v->detail, "conntrack table "
			    "full"));
		} else
			assert_int_equal(v->level, TLS_LEVEL_MAY);
		policy_verdict_free(v);
		policy_free(p);
		ctfake_close();
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refresh_flood_bounded),
		cmocka_unit_test(test_orphan_flood_bounded),
		cmocka_unit_test(test_local_error_defers),
		cmocka_unit_test(test_dns_no_socket_defers),
		cmocka_unit_test(test_dns_no_buffer_defers),
		cmocka_unit_test(test_fetched_copy_nomem_defers),
		cmocka_unit_test(test_bg_local_error_no_sitout),
		cmocka_unit_test(test_dane_local_defers),
		cmocka_unit_test(test_dane_start_nomem_defers),
		cmocka_unit_test(test_sts_mx_local_defers),
		cmocka_unit_test(test_sts_testing_mx_local_unreported),
		cmocka_unit_test(test_dns_send_eperm_defers),
		cmocka_unit_test(test_txt_conntrack_drops_defer),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
