/*
 * test_http_throttle.c - an MTA-STS policy host cannot make mxguard's
 * HTTPS client parse its response once per byte (policy/http.c
 * parse_due()): the parser reads the whole response each time, so a
 * response sent a byte per TLS record made the work quadratic (17 s of
 * CPU in a 30 s fetch, measured by a reviewer).  Now a parse happens at
 * once only when the response grew by a quarter since the last one, or
 * ended; the rest waits for a 20 ms timer.  Included whole, for the
 * static functions.  A GET to a TLS server on a port of the test's own
 * (http_start(), http_resolve(): http_get() asks port 443; DNS faked,
 * fakedns.h): a response whose framing (Content-Length, chunked) says it
 * is whole is taken, though its last bytes came in a piece too small for
 * an immediate parse and the connection then ended without close_notify;
 * a first address that never answers the TLS handshake gives way to the
 * next within the fetch's time, and so does one whose certificate does
 * not verify (the cert failure stays the fetch's reason when no later
 * address serves the policy), and one that cuts or stalls the connection
 * after a good handshake, before the response is whole.  The addresses
 * are tried staggered (Happy Eyeballs): a first address slower than the
 * stagger still serves the policy while the second hangs; two that stall
 * fail the fetch once, at its deadline, with nothing left open.  And
 * the attempts start without both DNS answers (RFC 8305 section 3): at
 * once on the AAAA answer, 50 ms after an A answer that came first, the
 * late family's addresses joining the alternation (fakedns.h delays an
 * answer on the loop's clock).  A fetch whose policy host's A and AAAA
 * queries failed while the resolver could not open a socket
 * (dns_local_failures() moved, faked here) fails as HTTP_LOCAL_ERROR, not
 * as a host that serves nothing; so does one whose whole response could
 * not be copied for want of memory (malloc() failed once, wrapped), and
 * one whose body the parser could not copy so (at the end of the
 * connection, or after a cut), or grow its receive buffer (realloc()
 * failed once, wrapped).
 */
// WRAP: dns_query dns_cancel dns_local_failures malloc realloc
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>

#include "policy/http.c"

#include "ctfake.h"
#include "fakedns.h"
#include "testcert.h"

/* malloc(): fails once when set (fetch_nomem()) */
static int malloc_fail;

void *__real_malloc(size_t);
void *__wrap_malloc(size_t);

void *
__wrap_malloc(size_t n)
{
	if (malloc_fail) {
		malloc_fail = 0;
		return NULL;
	}
	return __real_malloc(n);
}

/* realloc(): fails once for a request of realloc_fail bytes */
static size_t realloc_fail;

void *__real_realloc(void *, size_t);
void *__wrap_realloc(void *, size_t);

void *
__wrap_realloc(void *p, size_t n)
{
	if (realloc_fail != 0 && n == realloc_fail) {
		realloc_fail = 0;
		return NULL;
	}
	return __real_realloc(p, n);
}

/* dns_local_failures(): what the test says the resolver met */
static unsigned fake_nlocal;

unsigned __wrap_dns_local_failures(const struct dns *, int *);

unsigned
__wrap_dns_local_failures(const struct dns *d, int *err)
{
	if (err != NULL)
		*err = EMFILE;
	return fake_nlocal;
}

/* Parses done at once while a response of total bytes arrives a byte
 * per event. */
static size_t
immediate_parses(size_t total)
{
	size_t len, parsed = 0, n = 0;

	for (len = 1; len <= total; len++)
		if (parse_due(parsed, len, 0)) {
			parsed = len;
			n++;
		}
	return n;
}

static void
test_byte_per_record(void **state)
{
	size_t n = immediate_parses(151 * 1024);

	(void)state;
	/* geometric: about log(151 KiB) / log(1.25) + a few, not 154,624 */
	assert_true(n > 10);
	assert_true(n < 80);
}

static void
test_first_and_end(void **state)
{
	(void)state;
	assert_true(parse_due(0, 1, 0));	/* the first bytes at once */
	assert_true(parse_due(1000, 1001, 1));	/* the end at once */
	assert_false(parse_due(1000, 1100, 0));	/* +10%: later */
	assert_true(parse_due(1000, 1250, 0));	/* +25%: now */
}

/* The policy host: a TLS server in a thread of its own (blocking, so
 * that each piece of the response is a TLS record of its own), with a
 * certificate for mta-sts.x.test from a CA the client trusts.  It reads
 * the request, writes part1, waits, writes part2, and closes the
 * connection at once without close_notify (what some servers do after
 * "Connection: close"; a reset on the path does the same to the client). */
static SSL_CTX *srv_ctx;
static X509 *srv_ca;
static int srv_lfd;
static const char *srv_part1, *srv_part2;

/* part2 goes only once the client has parsed part1 (h->parsed_len, seen
 * by a 1 ms check on the client's loop: watch_parse()), so that part2 is
 * a piece of its own to the parser whatever the load; a bare sleep let
 * both pieces reach a descheduled client together, parsed at once as a
 * whole, and the put-off parse went untested.  The server gives up
 * waiting after 5 s (a red test fails, it does not hang), and the test
 * asserts that it did not have to. */
static pthread_mutex_t part1_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t part1_cv = PTHREAD_COND_INITIALIZER;
static int part1_parsed, part1_waited_out;
static struct http_req *watched;
static int get_done, get_ok;
/* cancel_ms > 0: the test cancels the fetch then (http_cancel(), as a
 * reload or the end of a lookup does); cancelled: it did, with
 * cancel_open attempts open */
static int cancel_ms, cancelled, cancel_open;
static struct ev_timer *watch_tmr;

/* What the client parsed of the response so far, at the address that
 * got furthest. */
static size_t
parsed_most(const struct http_req *h)
{
	size_t most = 0;
	int i;

	for (i = 0; i < GET_TRIES_MAX; i++)
		if (h->tries[i] != NULL && h->tries[i]->parsed_len > most)
			most = h->tries[i]->parsed_len;
	return most;
}

static void
watch_parse(void *arg)
{
	(void)arg;
	if (get_done || cancelled)	/* h is gone */
		return;
	if (parsed_most(watched) >= strlen(srv_part1)) {
		pthread_mutex_lock(&part1_mu);
		part1_parsed = 1;
		pthread_cond_signal(&part1_cv);
		pthread_mutex_unlock(&part1_mu);
		return;
	}
	ev_timer_arm(watch_tmr, 1);
}

static void
wait_part1_parsed(void)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&part1_mu);
	while (!part1_parsed && rc == 0)
		rc = pthread_cond_timedwait(&part1_cv, &part1_mu, &until);
	if (!part1_parsed)
		part1_waited_out = 1;
	pthread_mutex_unlock(&part1_mu);
}

static void *
srv_main(void *arg)
{
	struct timeval tv = { 5, 0 };
	char req[4096];
	size_t got = 0;
	SSL *s;
	int c, n;

	(void)arg;
	if ((c = accept(srv_lfd, NULL, NULL)) == -1)
		return NULL;
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	s = SSL_new(srv_ctx);
	SSL_set_fd(s, c);
	if (SSL_accept(s) == 1) {
		while (got < sizeof(req) - 1 && (n = SSL_read(s, req + got,
		    (int)(sizeof(req) - 1 - got))) > 0) {
			got += (size_t)n;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n") != NULL)
				break;
		}
		SSL_write(s, srv_part1, (int)strlen(srv_part1));
		wait_part1_parsed();
		SSL_write(s, srv_part2, (int)strlen(srv_part2));
	}
	SSL_free(s);		/* no SSL_shutdown(): no close_notify */
	close(c);
	return NULL;
}

static char get_body[256], get_err[512], get_kind[64];
/* callbacks of the fetch (one, ever), and when the first came: ms from
 * the fetch's start */
static int get_calls;
static struct timespec get_t0;
static long get_ms;

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	    (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The process's open file descriptors: the same after a fetch and its
 * servers are gone as before, or a socket was left open. */
static int
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
got(void *arg, int ok, const char *body, size_t len, const char *kind,
    const char *err)
{
	(void)arg;
	if (get_calls++ == 0)
		get_ms = ms_since(&get_t0);
	get_done = 1;
	get_ok = ok;
	snprintf(get_kind, sizeof(get_kind), "%s", kind ? kind : "");
	snprintf(get_body, sizeof(get_body), "%.*s", (int)len,
	    body ? body : "");
	snprintf(get_err, sizeof(get_err), "%s", err ? err : "");
	ev_loop_stop(loop);
}

static void
stop_loop(void *arg)
{
	(void)arg;
	ev_loop_stop(loop);
}

static void
cancel_fetch(void *arg)
{
	(void)arg;
	if (get_done)
		return;
	cancel_open = watched->ntries;
	http_cancel(watched);
	cancelled = 1;
	ev_loop_stop(loop);
}

/* A listener at 127.0.0.2 on the server's port that never accepts: the
 * kernel completes the TCP handshake, and nothing answers the TLS one (a
 * dead backend behind a live address; a black-holed route hangs alike).
 * -1: none. */
static int hang_lfd = -1;
static int v4_lfd[4] = { -1, -1, -1, -1 };

/* A TLS server at 127.0.0.2 on the server's port: an attacker on the
 * path to that address only.  FIRST_BADCERT: it presents a certificate
 * for mta-sts.x.test that no CA the client trusts signed; FIRST_CUT: the
 * real certificate (the attacker relays the handshake to the host), then
 * a reset once the request is in; FIRST_STALL: the same, then nothing
 * (the attacker drops what follows).  Or no attacker, the host itself:
 * FIRST_SLOW at a slow address, which answers the request with slow_resp
 * only once the client has started the second address (its connection
 * waits at srv_lfd: the stagger has passed) and 200 ms more (5 s at
 * most); FIRST_404 at an address that answers 404 at once.  Each reads
 * until the client goes.  bad_lfd -1: none. */
enum { FIRST_NONE, FIRST_BADCERT, FIRST_CUT, FIRST_STALL, FIRST_SLOW,
	FIRST_404 };
static int bad_lfd = -1, first_mode;
/* not 0: the stand-in conntrack counters (ctfake.h) set to it when that
 * address takes the connection, before its handshake: drops elsewhere
 * during the fetch */
static uint64_t ct_drops_at_accept;
static SSL_CTX *bad_ctx;
static char slow_resp[512];

/* FIRST_SLOW, FIRST_404: the request read, for FIRST_SLOW the second
 * address's connection waited for, the response sent. */
static void
host_answer(SSL *s)
{
	static const char nf[] = "HTTP/1.1 404 Not Found\r\n"
	    "Content-Length: 0\r\n\r\n";
	struct pollfd pfd = { .fd = srv_lfd, .events = POLLIN };
	char req[4096];
	size_t got_len = 0;
	int n;

	while (got_len < sizeof(req) - 1 && (n = SSL_read(s, req + got_len,
	    (int)(sizeof(req) - 1 - got_len))) > 0) {
		got_len += (size_t)n;
		req[got_len] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	if (first_mode == FIRST_404) {
		SSL_write(s, nf, (int)strlen(nf));
		return;
	}
	(void)poll(&pfd, 1, 5000);
	usleep(200 * 1000);
	SSL_write(s, slow_resp, (int)strlen(slow_resp));
}

static void *
bad_main(void *arg)
{
	char buf[512];
	struct linger lg = { 1, 0 };
	SSL *s;
	int c;

	(void)arg;
	if ((c = accept(bad_lfd, NULL, NULL)) == -1)
		return NULL;
	if (ct_drops_at_accept != 0)
		(void)ctfake_set(ct_drops_at_accept);
	s = SSL_new(first_mode == FIRST_BADCERT ? bad_ctx : srv_ctx);
	SSL_set_fd(s, c);
	if (SSL_accept(s) == 1) {
		if (first_mode == FIRST_SLOW || first_mode == FIRST_404)
			host_answer(s);
		if (first_mode == FIRST_CUT && SSL_read(s, buf,
		    sizeof(buf)) > 0)
			setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		else
			while (SSL_read(s, buf, sizeof(buf)) > 0)
				;
	}
	SSL_free(s);
	close(c);
	return NULL;
}

/* GET https://mta-sts.x.test:PORT/.well-known/mta-sts.txt from the
 * server above, which answers part1 then part2; with hang_first, the
 * name's first address is the hanging listener's, the second the
 * server's; with first_mode, the first is the one above and the second
 * the server's, or, with bad_then_refused, 127.0.0.3, where nothing
 * listens (and the server is not started), or, with second_hangs, the
 * server's address, whose listener then never accepts (the server is not
 * started): the kernel takes the connection, nothing answers the TLS
 * handshake.  second_seen: that listener got a connection.  The fetch's
 * time is 3 s (the stagger a quarter of it, 751 ms); after its callback
 * the loop runs 200 ms more, for a second callback that must not come;
 * and the process has as many descriptors open at the end as before. */
static int hang_first, bad_then_refused, second_hangs, second_seen;
/* first_only: with first_mode, the name has that one address only */
static int first_only;
/* v6_behind_v4: the server listens at ::1 instead, the name's AAAA
 * record, answered v6_behind_v4 ms after its A record, which names
 * V4_HANGING addresses (127.0.0.2 and up) whose listeners never accept */
#define V4_HANGING	4
static int v6_behind_v4;
/* The DNS answers' timing (RFC 8305 section 3): aaaa_late_ms, the AAAA
 * answer (::1, where nothing listens) comes that late after the A one
 * (the server's 127.0.0.1); a_late_ms, the server listens at ::1, the
 * AAAA answer names it, the A answer (127.0.0.2) comes that late;
 * v6_after_refused_ms, the server listens at ::1, the A answer names
 * 127.0.0.3 (nothing listens: refused), the AAAA answer naming ::1
 * comes that late; with refused_v4, the A answer names that many
 * (127.0.0.3 and up), all refused. */
static int aaaa_late_ms, a_late_ms, v6_after_refused_ms, refused_v4;

#define FETCH_MS	3000

/*
 * A listener on the server's port at another loopback address (127.0.0.2
 * and up), which get() made sure was free there (aliases_free()); a
 * connection of an earlier test to the same address and port may still
 * be in TIME_WAIT, which only SO_REUSEADDR lets a new listener past.
 * (Before, the bind failed with EADDRINUSE once in a CI run with two
 * lanes of unit binaries, 2026-12-07, and the test's globals stayed set
 * for the next test, which failed too.)
 */
static int
listen_alias(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)), 0);
	assert_int_equal(bind(fd, (const struct sockaddr *)a, sizeof(*a)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* Whether sin's port is free at 127.0.0.2 to 127.0.0.(1 + V4_HANGING):
 * the kernel gave it to the server's address only, and another test
 * binary running beside this one (test_http_post) may listen there. */
static int
aliases_free(const struct sockaddr_in *sin)
{
	int fd[V4_HANGING], i, n, one = 1, ok = 1;

	for (n = 0; n < V4_HANGING && ok; n++) {
		struct sockaddr_in a = *sin;
		char ip[32];

		snprintf(ip, sizeof(ip), "127.0.0.%d", 2 + n);
		inet_pton(AF_INET, ip, &a.sin_addr);
		assert_true((fd[n] = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
		assert_int_equal(setsockopt(fd[n], SOL_SOCKET, SO_REUSEADDR,
		    &one, sizeof(one)), 0);
		ok = bind(fd[n], (struct sockaddr *)&a, sizeof(a)) == 0;
	}
	for (i = 0; i < n; i++)
		close(fd[i]);
	return ok;
}

static void
get(const char *part1, const char *part2)
{
	EVP_PKEY *cakey = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int tries;
	struct ev_timer *g, *cancel_tmr = NULL;
	struct http_req *h;
	pthread_t th;
	SSL_CTX *ctx;
	X509 *leaf;
	struct timeval tv = { 5, 0 };
	pthread_t bth;
	int fds0 = open_fds();
	int srv_v6 = v6_behind_v4 || a_late_ms || v6_after_refused_ms;

	srv_ca = test_cert(cakey, "get test CA", NULL, NULL, NULL, -86400,
	    86400, 1);
	leaf = test_cert(key, "mta-sts.x.test", "mta-sts.x.test", srv_ca,
	    cakey, -60, 3600, 0);
	assert_non_null(srv_ca);
	assert_non_null(leaf);
	srv_ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(SSL_CTX_use_certificate(srv_ctx, leaf), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(srv_ctx, key), 1);
	srv_part1 = part1;
	srv_part2 = part2;
	part1_parsed = part1_waited_out = 0;	/* before the thread */
	/* a port free at 127.0.0.2 and up as well, for the listeners some
	 * tests add there (listen_alias()) */
	for (tries = 0;; tries++) {
		srv_lfd = socket(srv_v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		/* the server thread ends whatever the client does (a red
		 * test fails, it does not hang): accept() and reads give up
		 * after 5 s */
		assert_int_equal(setsockopt(srv_lfd, SOL_SOCKET, SO_RCVTIMEO,
		    &tv, sizeof(tv)), 0);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (srv_v6) {
			struct sockaddr_in6 s6;
			socklen_t sl6 = sizeof(s6);

			memset(&s6, 0, sizeof(s6));
			s6.sin6_family = AF_INET6;
			s6.sin6_addr = in6addr_loopback;
			assert_int_equal(bind(srv_lfd, (struct sockaddr *)&s6,
			    sizeof(s6)), 0);
			assert_int_equal(getsockname(srv_lfd,
			    (struct sockaddr *)&s6, &sl6), 0);
			sin.sin_port = s6.sin6_port;
		} else {
			assert_int_equal(bind(srv_lfd, (struct sockaddr *)&sin,
			    sizeof(sin)), 0);
			assert_int_equal(getsockname(srv_lfd,
			    (struct sockaddr *)&sin, &sl), 0);
		}
		if (aliases_free(&sin))
			break;
		close(srv_lfd);
		assert_true(tries < 50);
	}
	assert_int_equal(listen(srv_lfd, 1), 0);
	if (!bad_then_refused && !second_hangs && !first_only)
		assert_int_equal(pthread_create(&th, NULL, srv_main, NULL), 0);

	loop = ev_loop_new();
	if (v6_behind_v4) {
		struct msg m;
		char ip[32];
		int i;

		begin(&m, 0x1234, 0, 0, "mta-sts.x.test", DNS_T_A, V4_HANGING,
		    0, 0);
		for (i = 0; i < V4_HANGING; i++) {
			struct sockaddr_in hs = sin;

			snprintf(ip, sizeof(ip), "127.0.0.%d", 2 + i);
			inet_pton(AF_INET, ip, &hs.sin_addr);
			v4_lfd[i] = listen_alias(&hs);
			rr_a(&m, "mta-sts.x.test", ip, 300);
		}
		answer("mta-sts.x.test", DNS_T_A, DNS_INSECURE, &m);
		aaaa("mta-sts.x.test", 0, "::1");
		answer_after((uint64_t)v6_behind_v4);
	} else if (aaaa_late_ms) {
		a("mta-sts.x.test", 0, "127.0.0.1");
		aaaa("mta-sts.x.test", 0, "::1");
		answer_after((uint64_t)aaaa_late_ms);
	} else if (a_late_ms) {
		a("mta-sts.x.test", 0, "127.0.0.2");
		answer_after((uint64_t)a_late_ms);
		aaaa("mta-sts.x.test", 0, "::1");
	} else if (v6_after_refused_ms) {
		struct msg m;
		char ip[32];
		int i, n = refused_v4 ? refused_v4 : 1;

		begin(&m, 0x1234, 0, 0, "mta-sts.x.test", DNS_T_A, n, 0, 0);
		for (i = 0; i < n; i++) {
			snprintf(ip, sizeof(ip), "127.0.0.%d", 3 + i);
			rr_a(&m, "mta-sts.x.test", ip, 300);
		}
		answer("mta-sts.x.test", DNS_T_A, DNS_INSECURE, &m);
		aaaa("mta-sts.x.test", 0, "::1");
		answer_after((uint64_t)v6_after_refused_ms);
	} else if (hang_first) {
		struct sockaddr_in hs = sin;
		struct msg m;

		inet_pton(AF_INET, "127.0.0.2", &hs.sin_addr);
		hang_lfd = listen_alias(&hs);
		begin(&m, 0x1234, 0, 0, "mta-sts.x.test", DNS_T_A, 2, 0, 0);
		rr_a(&m, "mta-sts.x.test", "127.0.0.2", 300);
		rr_a(&m, "mta-sts.x.test", "127.0.0.1", 300);
		answer("mta-sts.x.test", DNS_T_A, DNS_INSECURE, &m);
	} else if (first_mode != FIRST_NONE) {
		struct sockaddr_in bs = sin;
		EVP_PKEY *bkey = EVP_EC_gen("P-256");
		X509 *bcert = test_cert(bkey, "mta-sts.x.test",
		    "mta-sts.x.test", NULL, NULL, -60, 3600, 0);
		struct msg m;

		if (first_mode == FIRST_SLOW)
			snprintf(slow_resp, sizeof(slow_resp), "HTTP/1.1 200 "
			    "OK\r\nContent-Type: text/plain\r\n"
			    "Content-Length: %zu\r\n\r\n%s", strlen(part2),
			    part2);
		bad_ctx = SSL_CTX_new(TLS_server_method());
		assert_int_equal(SSL_CTX_use_certificate(bad_ctx, bcert), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(bad_ctx, bkey), 1);
		X509_free(bcert);
		EVP_PKEY_free(bkey);
		inet_pton(AF_INET, "127.0.0.2", &bs.sin_addr);
		bad_lfd = listen_alias(&bs);
		assert_int_equal(setsockopt(bad_lfd, SOL_SOCKET, SO_RCVTIMEO,
		    &tv, sizeof(tv)), 0);
		assert_int_equal(pthread_create(&bth, NULL, bad_main, NULL),
		    0);
		begin(&m, 0x1234, 0, 0, "mta-sts.x.test", DNS_T_A,
		    first_only ? 1 : 2, 0, 0);
		rr_a(&m, "mta-sts.x.test", "127.0.0.2", 300);
		if (!first_only)
			rr_a(&m, "mta-sts.x.test", bad_then_refused ?
			    "127.0.0.3" : "127.0.0.1", 300);
		answer("mta-sts.x.test", DNS_T_A, DNS_INSECURE, &m);
	} else
		a("mta-sts.x.test", 0, "127.0.0.1");
	ctx = SSL_CTX_new(TLS_client_method());
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx),
	    srv_ca), 1);
	get_done = 0;
	get_calls = 0;
	get_ms = -1;
	clock_gettime(CLOCK_MONOTONIC, &get_t0);
	h = http_start(loop, NULL, ctx, "mta-sts.x.test", ntohs(sin.sin_port),
	    "/.well-known/mta-sts.txt", FETCH_MS, 65536, 0, got, NULL);
	assert_non_null(h);
	assert_non_null(http_resolve(h));
	watched = h;
	watch_tmr = ev_timer_new(loop, watch_parse, NULL);
	ev_timer_arm(watch_tmr, 1);
	g = ev_timer_new(loop, stop_loop, NULL);
	ev_timer_arm(g, 5000);
	cancelled = 0;
	if (cancel_ms > 0) {
		cancel_tmr = ev_timer_new(loop, cancel_fetch, NULL);
		ev_timer_arm(cancel_tmr, (uint64_t)cancel_ms);
	}
	ev_loop_run(loop);
	if (get_done || cancelled) {	/* a callback (another): none */
		ev_timer_arm(g, 200);
		ev_loop_run(loop);
	}
	ev_timer_free(g);
	ev_timer_free(cancel_tmr);
	ev_timer_free(watch_tmr);
	watch_tmr = NULL;
	watched = NULL;
	assert_true(get_done || cancelled);
	assert_int_equal(get_calls, cancelled ? 0 : 1);
	if (!bad_then_refused && !second_hangs && !first_only)
		pthread_join(th, NULL);
	assert_false(part1_waited_out);	/* part2 came after part1's parse */
	{
		struct pollfd pfd = { .fd = srv_lfd, .events = POLLIN };

		second_seen = poll(&pfd, 1, 0) == 1;
	}
	close(srv_lfd);
	if (hang_lfd != -1)
		close(hang_lfd);
	hang_lfd = -1;
	for (int i = 0; i < V4_HANGING; i++) {
		if (v4_lfd[i] != -1)
			close(v4_lfd[i]);
		v4_lfd[i] = -1;
	}
	if (bad_lfd != -1) {
		pthread_join(bth, NULL);
		close(bad_lfd);
		SSL_CTX_free(bad_ctx);
	}
	bad_lfd = -1;
	SSL_CTX_free(ctx);
	SSL_CTX_free(srv_ctx);
	X509_free(leaf);
	X509_free(srv_ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	fakes_clear();
	ev_loop_free(loop);
	loop = NULL;
	assert_int_equal(open_fds(), fds0);
}

#define POLICY	"version: STSv1\nmode: enforce\nmx: mx.x.test\n" \
		"max_age: 86400\n"

/* The chunked response whole but its last chunk (5 bytes, less than a
 * quarter of what was parsed: the parse waits for the timer), then the
 * end of the connection without close_notify: the policy, not "TLS read:
 * unexpected EOF". */
static void
test_chunked_end_then_cut(void **state)
{
	char p1[512];

	(void)state;
	snprintf(p1, sizeof(p1), "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close"
	    "\r\n\r\n%zx\r\n%s\r\n", strlen(POLICY), POLICY);
	get(p1, "0\r\n\r\n");
	assert_int_equal(get_ok, 0);
	assert_string_equal(get_body, POLICY);
}

/* Content-Length framing, the body's last line in the second piece. */
static void
test_length_end_then_cut(void **state)
{
	char p1[512];
	size_t n = strlen(POLICY);

	(void)state;
	snprintf(p1, sizeof(p1), "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n"
	    "\r\n%.*s", n, (int)(n - 3), POLICY);
	get(p1, POLICY + n - 3);
	assert_int_equal(get_ok, 0);
	assert_string_equal(get_body, POLICY);
}

/* Framed by the end of the connection alone: a cut (no close_notify) is
 * no end, whatever came before it (docs/policy.md, tests/ns/87). */
static void
test_eof_framed_cut_refused(void **state)
{
	(void)state;
	get("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: "
	    "close\r\n\r\n" POLICY, "");
	assert_int_equal(get_ok, -1);
}

/* *knob = value for one fetch of the policy (its headers, then the
 * body), then 0 again: the fetch gets the policy. */
static void
policy_with(int *knob, int value)
{
	char p1[512];

	snprintf(p1, sizeof(p1), "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %zu\r\n\r\n", strlen(POLICY));
	*knob = value;
	get(p1, POLICY);
	*knob = 0;
	assert_int_equal(get_ok, 0);
	assert_string_equal(get_body, POLICY);
}

/* The policy host's first address takes the connection and never
 * answers the TLS handshake: the second one, which serves the policy, is
 * tried within the fetch's time (3 s here), not after it. */
static void
test_hanging_address_next_tried(void **state)
{
	(void)state;
	policy_with(&hang_first, 1);
}

/* The first address fails as mode says, the second serves the policy:
 * the fetch takes it from there. */
static void
first_then_policy(int mode)
{
	policy_with(&first_mode, mode);
}

/*
 * An attacker on the path to the policy host's first address only (one
 * of its addresses, or one family's) answers there with a certificate no
 * trusted CA signed.  The second address serves the policy: it is
 * fetched.  Old code: the certificate failure at the first address ended
 * the whole fetch (sts-webpki-invalid), while a reset or a hanging
 * handshake there moved on, so that one answer at one address made every
 * fetch fail: no policy at first contact (a STARTTLS strip on the MX's
 * path then delivers in cleartext), no refresh of a cached one.  The
 * policy fetched from another address is no weaker: its own certificate
 * was verified there.
 */
static void
test_bad_certificate_next_tried(void **state)
{
	(void)state;
	first_then_policy(FIRST_BADCERT);
}

/* The first address in MODE, the second refusing the connection: the
 * fetch fails, of kind KIND (the first address's answer or certificate
 * error, not the later connect error); the caller checks the text. */
static void
first_then_refused(int mode, const char *kind)
{
	first_mode = mode;
	bad_then_refused = 1;
	get("", "");
	first_mode = FIRST_NONE;
	bad_then_refused = 0;
	assert_int_equal(get_ok, -1);
	assert_string_equal(get_kind, kind);
}

/* The same, no later address serving the policy (connection refused at
 * the second): the fetch fails as sts-webpki-invalid with the first
 * address's certificate error, the more telling of the two (TLSRPT's
 * result type), not the last address's connect error. */
static void
test_bad_certificate_then_refused(void **state)
{
	(void)state;
	first_then_refused(FIRST_BADCERT, "sts-webpki-invalid");
	assert_non_null(strstr(get_err, "certificate of mta-sts.x.test"));
}

/*
 * The attacker on the path to the first address relays the handshake to
 * the real host (a certificate that verifies) and then resets the
 * connection, or drops everything after it: nothing the host said, so
 * the second address, which serves the policy, is tried (the stall after
 * the address's quarter of the fetch's time, 3 s here), and the policy
 * fetched.  Old code: once the handshake was done, a reset failed the
 * fetch at once and a stall held it to its end, so that attacker still
 * failed every fetch with the certificate failure above fixed.
 */
static void
test_cut_after_handshake_next_tried(void **state)
{
	(void)state;
	first_then_policy(FIRST_CUT);
}

static void
test_stall_after_handshake_next_tried(void **state)
{
	(void)state;
	first_then_policy(FIRST_STALL);
}

/*
 * The policy host's first address is slow but works: it answers only
 * after the stagger (once the client has started the second address, and
 * 200 ms more), within the fetch's time; the second never answers the
 * TLS handshake.  The fetch takes the first's policy.  Old code: each
 * address but the last had a quarter of the fetch's time (751 ms here)
 * to connect, finish the handshake and send the whole response, then it
 * was cut for the next, so a host slower than that at every address but
 * the last, or whose only reachable address was not the last, failed
 * every fetch (here at the deadline, in the second's handshake).
 */
static void
test_slow_first_kept_while_second_hangs(void **state)
{
	(void)state;
	first_mode = FIRST_SLOW;
	second_hangs = 1;
	get("", POLICY);
	first_mode = FIRST_NONE;
	second_hangs = 0;
	assert_true(second_seen);	/* the stagger passed: it was tried */
	assert_int_equal(get_ok, 0);
	assert_string_equal(get_body, POLICY);
}

/* The first address stalls for ever after a good handshake, the second
 * serves the policy: it comes about one stagger (751 ms) after the
 * start, not at the deadline (bounds half-way, for a loaded machine). */
static void
test_stalled_first_costs_one_stagger(void **state)
{
	(void)state;
	first_then_policy(FIRST_STALL);
	assert_true(get_ms >= FETCH_MS / 4 / 2);
	assert_true(get_ms < (FETCH_MS / 4 + FETCH_MS) / 2);
}

/* Both addresses stall (the first after its handshake, the second in
 * it): the fetch fails once, at its deadline, saying what each attempt
 * was waiting for, and leaves no socket open (get(): no second callback,
 * the descriptors counted). */
static void
test_both_stall_fail_once_at_deadline(void **state)
{
	(void)state;
	first_mode = FIRST_STALL;
	second_hangs = 1;
	get("", "");
	first_mode = FIRST_NONE;
	second_hangs = 0;
	assert_int_equal(get_ok, -1);
	assert_string_equal(get_kind, "sts-policy-fetch-error");
	assert_true(get_ms >= FETCH_MS - 50);
	assert_true(get_ms < FETCH_MS + 1500);
	assert_non_null(strstr(get_err, "timeout after 3000 ms"));
	assert_non_null(strstr(get_err, "no response from 127.0.0.2:"));
	assert_non_null(strstr(get_err, "no TLS handshake with 127.0.0.1:"));
}

/*
 * The policy host answers 404 at its first address, inside TLS that
 * verified, and serves the policy at its second (a host mid-rollout):
 * the policy is taken.  Old code: the first address's answer ended the
 * fetch.  Now an address's answer ends only its own attempt: attempts
 * run side by side, and which of two answers first must not decide the
 * fetch; for MTA-STS a failed fetch only ever means no policy.  With no
 * other address serving (the second refuses the connection), the host's
 * answer is the fetch's reason, not the later connect error.
 */
static void
test_host_error_next_tried(void **state)
{
	(void)state;
	first_then_policy(FIRST_404);
}

static void
test_host_error_then_refused(void **state)
{
	(void)state;
	first_then_refused(FIRST_404, "sts-policy-fetch-error");
	assert_non_null(strstr(get_err, "status 404 (127.0.0.2:"));
}

/* The fetch cancelled (http_cancel()) while two attempts are open, the
 * first after its handshake, the second in it: no callback, every socket
 * closed (get() counts the descriptors; ASan or valgrind: nothing leaked
 * or used after its free). */
static void
test_cancel_with_two_open(void **state)
{
	(void)state;
	first_mode = FIRST_STALL;
	second_hangs = 1;
	cancel_ms = FETCH_MS / 4 + FETCH_MS / 4;
	get("", "");
	cancel_ms = 0;
	first_mode = FIRST_NONE;
	second_hangs = 0;
	assert_true(cancelled);
	assert_int_equal(cancel_open, 2);
}

/*
 * A dual-stack policy host: its four IPv4 addresses take the connection
 * and never answer the TLS handshake (an attacker on the IPv4 path who
 * drops what follows the SYN, or a broken IPv4 deployment), its IPv6
 * address serves the policy; the A answer comes first (the attacker
 * controls the timing of an unsigned zone's answers), the AAAA answer
 * 200 ms later, past the resolution delay: the attempts start with the
 * IPv4 addresses, and the IPv6 one, when it comes, joins the
 * alternation (RFC 8305 section 4) as the second tried, one stagger in.
 * Red on 8a27fe7: the addresses were tried in the order the answers
 * came, the stagger started the four IPv4 ones (0, 751, 1502, 2253 ms)
 * and the fetch failed at its deadline without trying the IPv6 one: the
 * "dual-stack host whose only reachable address was not the last" the
 * change meant to serve.  Put after the IPv4 ones, the late IPv6
 * address would be the fifth, never started (4 at most open).
 */
static void
test_v6_behind_four_hanging_v4(void **state)
{
	(void)state;
	policy_with(&v6_behind_v4, 200);
	assert_true(get_ms >= FETCH_MS / 4 / 2);
	assert_true(get_ms < (FETCH_MS / 4 + FETCH_MS) / 2);
}

/*
 * The same host, the AAAA answer 20 ms after the A one, within the
 * resolution delay (50 ms, RFC 8305 section 3): IPv6 is still tried
 * first, and the policy comes well before one stagger (751 ms; bound
 * half-way, for a loaded machine).  Red before: attempts waited for both
 * answers and began with the family that answered first, so the IPv6
 * address came one stagger in.
 */
static void
test_v6_first_within_resolution_delay(void **state)
{
	(void)state;
	policy_with(&v6_behind_v4, 20);
	assert_true(get_ms < FETCH_MS / 4 / 2);
}

/*
 * The AAAA answer for the policy host comes 5 s late (an attacker on an
 * unsigned zone's path who delays it, a resolver path that drops AAAA
 * queries), its IPv4 address serves: the attempts start the resolution
 * delay after the A answer, and the policy comes well before a stagger.
 * Red before: the fetch waited for both answers and failed at its 3 s
 * deadline ("timeout after 3000 ms resolving mta-sts.x.test"), no
 * connection started: no policy at first contact, no refresh.
 */
static void
test_aaaa_late_v4_serves(void **state)
{
	(void)state;
	policy_with(&aaaa_late_ms, 5000);
	assert_true(get_ms < FETCH_MS / 4 / 2);
}

/* The same with the A answer 5 s late and the IPv6 address serving: the
 * attempts start as soon as the AAAA answer is in (red before: the 3 s
 * deadline). */
static void
test_a_late_v6_serves(void **state)
{
	(void)state;
	policy_with(&a_late_ms, 5000);
	assert_true(get_ms < FETCH_MS / 4 / 2);
}

/*
 * The A answer's one address refuses the connection, and the AAAA
 * answer, naming the address that serves, comes 200 ms later, after the
 * attempts began: the fetch does not fail with no address left while an
 * answer is still to come; the late address is tried when it comes (no
 * attempt is open).  Green before (attempts waited for both answers);
 * red with attempts starting on the first answer if a failure with a
 * query out failed the fetch.
 */
static void
test_late_family_after_first_refused(void **state)
{
	(void)state;
	policy_with(&v6_after_refused_ms, 200);
	assert_true(get_ms >= 200);
}

/*
 * The same with MAX_ADDRS (8) addresses in the A answer, all refused
 * before the AAAA answer comes: its address, which serves, is still
 * tried.  Red before: the late answer's addresses joined only up to
 * MAX_ADDRS in all, those tried included, so with eight tried there
 * was no room and the fetch failed ("connect: Connection refused"),
 * where with both answers in the families alternated and the IPv6
 * address was tried second: an attacker on the IPv4 path (resets) who
 * delays the AAAA answer by a resolution delay failed the fetch of a
 * host with eight A records whose IPv6 address serves.
 */
static void
test_late_family_after_max_refused(void **state)
{
	(void)state;
	refused_v4 = MAX_ADDRS;
	policy_with(&v6_after_refused_ms, 200);
	refused_v4 = 0;
	assert_true(get_ms >= 200);
}

/*
 * The A answer's address hangs in the TLS handshake and the AAAA answer
 * never comes within the fetch's time: the fetch fails at its deadline
 * (once, nothing left open), its error naming the answer still out and
 * the attempt open.  Red before: no attempt had started, and the error
 * said only "resolving mta-sts.x.test".
 */
static void
test_deadline_names_pending_answer(void **state)
{
	(void)state;
	aaaa_late_ms = 5000;
	second_hangs = 1;
	get("", "");
	aaaa_late_ms = 0;
	second_hangs = 0;
	assert_int_equal(get_ok, -1);
	assert_string_equal(get_kind, "sts-policy-fetch-error");
	assert_true(get_ms >= FETCH_MS - 50);
	assert_non_null(strstr(get_err, "timeout after 3000 ms resolving "
	    "mta-sts.x.test (AAAA): no TLS handshake with 127.0.0.1:"));
}

/* The local-error tests' fetch of mta-sts.x.test on a new loop (the
 * fakes set before), its end, and their common verdict: one callback,
 * failed as this gateway's trouble, the detail naming why. */
static struct http_req *
local_fetch_start(SSL_CTX **ctx)
{
	struct http_req *h;

	loop = ev_loop_new();
	*ctx = SSL_CTX_new(TLS_client_method());
	get_done = get_calls = 0;
	h = http_start(loop, NULL, *ctx, "mta-sts.x.test", 9,
	    "/.well-known/mta-sts.txt", FETCH_MS, 65536, 0, got, NULL);
	assert_non_null(h);
	return h;
}

static void
local_fetch_end(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
	fakes_clear();
	ev_loop_free(loop);
}

static void
assert_local_error(const char *why)
{
	assert_int_equal(get_calls, 1);
	assert_int_equal(get_ok, -1);
	assert_string_equal(get_kind, HTTP_LOCAL_ERROR);
	assert_non_null(strstr(get_err, why));
}

/* One attempt of h past its TLS handshake, at 192.0.2.1, as the only
 * one (no address nor answer left). */
static struct http_try *
local_fetch_try(struct http_req *h)
{
	struct http_try *t;

	h->started = 1;
	assert_non_null(t = calloc(1, sizeof(*t)));
	t->h = h;
	assert_non_null(t->parse_tmr = ev_timer_new(loop, parse_later, t));
	t->tls_up = 1;
	snprintf(t->addr, sizeof(t->addr), "192.0.2.1");
	h->tries[0] = t;
	h->ntries = 1;
	return t;
}

/*
 * A policy host that trickles: a large response prefix at once (its
 * header and the start of a trailer section that never ends, a
 * chunked body's), then one more byte each time the client has parsed
 * what came, until the fetch's deadline.  Each byte is less than a
 * quarter of what was parsed, so its parse is put off (parse_due());
 * each put-off parse reads the whole buffer again.  Before, one came
 * PARSE_LATER_MS after each byte, however many had come before: about
 * 140 parses of the whole buffer in this 3 s fetch, 1,500 in the
 * default 30 s one (0.6 s of the event loop's CPU per attempt, four
 * attempts a fetch, measured with 150 KiB of trailer lines), for a host
 * that spends a byte every 20 ms on it.  Now each put-off parse waits
 * twice as long as the one before: a dozen parses, whatever the host
 * sends.  The host is the watcher below, on the client's own loop (a
 * socket pair, no sleep): it sends the next byte once the client has
 * parsed all it has.
 */
static struct http_try *trickle_t;
static int trickle_fd, trickle_parses;
static size_t trickle_seen, trickle_prefix;
static struct ev_timer *trickle_tmr;

/* Each parse of the attempt after the prefix's (however many pieces the
 * prefix came in) counted; a byte sent once all that came is parsed. */
static void
trickle_watch(void *arg)
{
	(void)arg;
	if (get_done)			/* the attempt is gone */
		return;
	if (trickle_t->parsed_len != trickle_seen) {
		trickle_seen = trickle_t->parsed_len;
		if (trickle_seen > trickle_prefix)
			trickle_parses++;
	}
	if (trickle_t->parsed_len == trickle_t->len &&
	    trickle_t->len >= trickle_prefix)
		assert_int_equal(write(trickle_fd, "a", 1), 1);
	ev_timer_arm(trickle_tmr, 1);
}

static void
test_trickle_parses_bounded(void **state)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
	struct ev_timer *g;
	struct http_req *h;
	SSL_CTX *ctx;
	char *pre;
	size_t n = strlen(head), len = 60000;
	int sv[2];

	(void)state;
	h = local_fetch_start(&ctx);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
	trickle_t = local_fetch_try(h);
	assert_non_null(trickle_t->io = io_new(loop, sv[0], io_event,
	    trickle_t));
	assert_non_null(pre = malloc(len));
	memcpy(pre, head, n);
	for (; n + 2 <= len; n += 2)
		memcpy(pre + n, "a\n", 2);	/* trailer lines */
	assert_int_equal(write(sv[1], pre, n), (ssize_t)n);
	free(pre);
	trickle_fd = sv[1];
	trickle_parses = 0;
	trickle_seen = 0;
	trickle_prefix = n;
	trickle_tmr = ev_timer_new(loop, trickle_watch, NULL);
	ev_timer_arm(trickle_tmr, 1);
	g = ev_timer_new(loop, stop_loop, NULL);
	ev_timer_arm(g, 5000);
	ev_loop_run(loop);
	/* the fetch's deadline ended it: never whole */
	assert_int_equal(get_calls, 1);
	assert_int_equal(get_ok, -1);
	assert_non_null(strstr(get_err, "response not whole"));
	if (trickle_parses > 16)
		fail_msg("%d parses of the whole response in a %d ms fetch",
		    trickle_parses, FETCH_MS);
	assert_true(trickle_parses >= 1);
	close(sv[1]);
	ev_timer_free(trickle_tmr);
	ev_timer_free(g);
	local_fetch_end(ctx);
}

/*
 * The process is out of descriptors (a flood took them): socket() fails
 * with EMFILE at the policy host's two addresses.  The fetch fails as
 * HTTP_LOCAL_ERROR, which says nothing of the host, so that the engine
 * defers the recipient instead of deciding as for a domain with no
 * policy.  Red before: "sts-policy-fetch-error", the kind of a host that
 * serves no policy.
 */
static void
test_no_descriptor_local_error(void **state)
{
	struct rlimit old, low;
	struct ev_timer *g;
	struct http_req *h;
	SSL_CTX *ctx;
	int fd;

	(void)state;
	fakes_clear();
	a("mta-sts.x.test", 0, "127.0.0.1");
	aaaa("mta-sts.x.test", 0, "::1");
	h = local_fetch_start(&ctx);
	assert_non_null(http_resolve(h));
	g = ev_timer_new(loop, stop_loop, NULL);
	ev_timer_arm(g, 5000);
	/* no descriptor beyond the lowest free one */
	assert_true((fd = open("/dev/null", O_RDONLY)) >= 0);
	close(fd);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)fd;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	ev_loop_run(loop);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(get_done, 1);
	assert_local_error("Too many open files");
	ev_timer_free(g);
	local_fetch_end(ctx);
}

/* The policy host's A and AAAA queries failed because the resolver could
 * not open its socket (a descriptor flood: c-ares calls that refused, and
 * dns.c SERVFAIL).  That is no answer of the domain's: the fetch fails as
 * HTTP_LOCAL_ERROR, which the engine defers, and not as a host that
 * serves nothing (no policy: the mail went opportunistic).  The same
 * answers with no local failure stay an ordinary fetch error. */
static void
dns_local_fetch(int local)
{
	struct ev_timer *g;
	struct http_req *h;
	SSL_CTX *ctx;

	fakes_clear();
	answer("mta-sts.x.test", DNS_T_A, DNS_SERVFAIL, NULL);
	answer("mta-sts.x.test", DNS_T_AAAA, DNS_SERVFAIL, NULL);
	h = local_fetch_start(&ctx);
	assert_non_null(http_resolve(h));
	/* the queries went out: c-ares meets EMFILE for them */
	if (local)
		fake_nlocal++;
	g = ev_timer_new(loop, stop_loop, NULL);
	ev_timer_arm(g, 5000);
	ev_loop_run(loop);
	assert_int_equal(get_done, 1);
	if (local)
		assert_local_error("Too many open files");
	else {
		assert_int_equal(get_calls, 1);
		assert_int_equal(get_ok, -1);
		assert_string_equal(get_kind, "sts-policy-fetch-error");
	}
	ev_timer_free(g);
	local_fetch_end(ctx);
}

static void
test_dns_no_socket_local_error(void **state)
{
	(void)state;
	dns_local_fetch(1);
	dns_local_fetch(0);
}

/*
 * The conntrack table of this host is full (a flood of flows relayed for
 * a gateway's clients): the kernel drops the SYN of each attempt and its
 * retransmissions without a word, and the connection fails as if the
 * address never answered (here: refused, at once).  Its drop counters
 * moved during the fetch: the fetch fails as HTTP_LOCAL_ERROR, which
 * the engine defers, not as a host that serves no policy.  The same
 * failure with the counters still stays an ordinary fetch error.  Red
 * before: "sts-policy-fetch-error" both times.
 */
static void
ct_drop_fetch(int dropped)
{
	struct ev_timer *g;
	struct http_req *h;
	SSL_CTX *ctx;

	fakes_clear();
	a("mta-sts.x.test", 0, "127.0.0.1");
	aaaa("mta-sts.x.test", 0, "::1");
	assert_int_equal(ctfake_open(40), 0);
	h = local_fetch_start(&ctx);
	assert_non_null(http_resolve(h));
	/* the attempts' packets, dropped by conntrack */
	if (dropped)
		assert_int_equal(ctfake_set(43), 0);
	g = ev_timer_new(loop, stop_loop, NULL);
	ev_timer_arm(g, 5000);
	ev_loop_run(loop);
	assert_int_equal(get_done, 1);
	if (dropped)
		assert_local_error("conntrack table full: 3 packets dropped "
		    "during the fetch");
	else {
		assert_int_equal(get_calls, 1);
		assert_int_equal(get_ok, -1);
		assert_string_equal(get_kind, "sts-policy-fetch-error");
	}
	ev_timer_free(g);
	local_fetch_end(ctx);
	ctfake_close();
}

static void
test_conntrack_drops_local_error(void **state)
{
	(void)state;
	ct_drop_fetch(1);
	ct_drop_fetch(0);
}

/*
 * The counters move during a fetch whose every address answered: the
 * policy host's only address says 404 inside verified TLS, or presents a
 * certificate that does not verify.  No packet of the fetch was lost to
 * the table (its flows finished their handshakes), and the drops were
 * others' (a busy gateway's table at its limit, a clash): the host's
 * answer is the fetch's result, sts-policy-fetch-error or
 * sts-webpki-invalid, which with nothing cached is no policy (RFC 8461).
 * Red before: local-error, which deferred the domain's mail for as long
 * as drops went on anywhere in the namespace.  With a second address
 * refused (not reached: its SYN may have been the one dropped), still
 * local-error.
 */
static void
ct_drops_answered(int mode, int only, const char *kind, const char *why)
{
	assert_int_equal(ctfake_open(40), 0);
	ct_drops_at_accept = 43;
	first_mode = mode;
	first_only = only;
	bad_then_refused = !only;
	get("", "");
	ct_drops_at_accept = 0;
	first_mode = FIRST_NONE;
	first_only = bad_then_refused = 0;
	ctfake_close();
	assert_int_equal(get_ok, -1);
	assert_string_equal(get_kind, kind);
	assert_non_null(strstr(get_err, why));
}

static void
test_conntrack_drops_host_answered(void **state)
{
	(void)state;
	ct_drops_answered(FIRST_404, 1, "sts-policy-fetch-error",
	    "status 404 (127.0.0.2:");
	ct_drops_answered(FIRST_BADCERT, 1, "sts-webpki-invalid",
	    "certificate of mta-sts.x.test");
	ct_drops_answered(FIRST_404, 0, HTTP_LOCAL_ERROR,
	    "conntrack table full: 3 packets dropped during the fetch");
}

/* A response whole and valid, and no memory for its copy (finish()): the
 * fetch failed as sts-policy-fetch-error, which with nothing cached is no
 * policy, the mail sent without the one the host had just served.  It is
 * this gateway's trouble: HTTP_LOCAL_ERROR, deferred by the engine. */
static void
test_copy_nomem_local_error(void **state)
{
	static const char body[] = "version: STSv1\nmode: enforce\n"
	    "mx: mx.x.test\nmax_age: 86400\n";
	struct http_req *h;
	SSL_CTX *ctx;

	(void)state;
	h = local_fetch_start(&ctx);
	malloc_fail = 1;
	finish(h, 0, body, strlen(body), NULL, NULL);
	assert_int_equal(malloc_fail, 0);
	assert_local_error("out of memory");
	local_fetch_end(ctx);
}

/* The parser could not copy a verified host's whole body for want of
 * memory: that was the host's answer ("out of memory (addr)" as its
 * hosterr, sts-policy-fetch-error, no policy); it is this gateway's
 * trouble, HTTP_LOCAL_ERROR. */
static void
parse_nomem(int cut)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
	struct http_req *h;
	struct http_try *t;
	SSL_CTX *ctx;

	h = local_fetch_start(&ctx);
	/* one attempt, its response whole */
	t = local_fetch_try(h);
	assert_non_null(t->buf = strdup(resp));
	t->len = t->cap = strlen(resp);
	malloc_fail = 1;
	if (!cut)
		parse_get(t, 1);
	else {
		/* the connection cut after the whole response (IO_ERROR):
		 * taken if whole by its framing (get_whole()) */
		assert_int_equal(get_whole(t), 0);
		try_end(t);
	}
	assert_int_equal(malloc_fail, 0);
	assert_local_error("out of memory");
	local_fetch_end(ctx);
}

static void
test_parse_nomem_local_error(void **state)
{
	(void)state;
	parse_nomem(0);
	parse_nomem(1);
}

/* The receive buffer could not grow for want of memory (io_event()): the
 * fetch failed as sts-policy-fetch-error, no policy; it is this
 * gateway's trouble, HTTP_LOCAL_ERROR. */
static void
test_recv_nomem_local_error(void **state)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
	struct ev_timer *g;
	struct http_req *h;
	struct http_try *t;
	SSL_CTX *ctx;
	int sv[2];

	(void)state;
	h = local_fetch_start(&ctx);
	/* one attempt past its handshake, on a socket pair */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
	t = local_fetch_try(h);
	assert_non_null(t->io = io_new(loop, sv[0], io_event, t));
	/* io_event()'s first growth: twice what came, and one */
	realloc_fail = (strlen(resp) + 1) * 2;
	assert_int_equal(write(sv[1], resp, strlen(resp)),
	    (ssize_t)strlen(resp));
	g = ev_timer_new(loop, stop_loop, NULL);
	ev_timer_arm(g, 5000);
	ev_loop_run(loop);
	assert_int_equal(realloc_fail, 0);
	assert_local_error("out of memory");
	close(sv[1]);
	ev_timer_free(g);
	local_fetch_end(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byte_per_record),
		cmocka_unit_test(test_first_and_end),
		cmocka_unit_test(test_chunked_end_then_cut),
		cmocka_unit_test(test_length_end_then_cut),
		cmocka_unit_test(test_eof_framed_cut_refused),
		cmocka_unit_test(test_hanging_address_next_tried),
		cmocka_unit_test(test_bad_certificate_next_tried),
		cmocka_unit_test(test_bad_certificate_then_refused),
		cmocka_unit_test(test_cut_after_handshake_next_tried),
		cmocka_unit_test(test_stall_after_handshake_next_tried),
		cmocka_unit_test(test_slow_first_kept_while_second_hangs),
		cmocka_unit_test(test_stalled_first_costs_one_stagger),
		cmocka_unit_test(test_both_stall_fail_once_at_deadline),
		cmocka_unit_test(test_host_error_next_tried),
		cmocka_unit_test(test_host_error_then_refused),
		cmocka_unit_test(test_cancel_with_two_open),
		cmocka_unit_test(test_v6_behind_four_hanging_v4),
		cmocka_unit_test(test_v6_first_within_resolution_delay),
		cmocka_unit_test(test_aaaa_late_v4_serves),
		cmocka_unit_test(test_a_late_v6_serves),
		cmocka_unit_test(test_late_family_after_first_refused),
		cmocka_unit_test(test_deadline_names_pending_answer),
		cmocka_unit_test(test_late_family_after_max_refused),
		cmocka_unit_test(test_no_descriptor_local_error),
		cmocka_unit_test(test_dns_no_socket_local_error),
		cmocka_unit_test(test_conntrack_drops_local_error),
		cmocka_unit_test(test_conntrack_drops_host_answered),
		cmocka_unit_test(test_copy_nomem_local_error),
		cmocka_unit_test(test_parse_nomem_local_error),
		cmocka_unit_test(test_recv_nomem_local_error),
		cmocka_unit_test(test_trickle_parses_bounded),
	};

	/* the bad certificate's server may write (TLS 1.3 tickets) to a
	 * client that has gone, as the daemon's own sockets may */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
