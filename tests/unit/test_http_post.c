/*
 * test_http_post.c - where a TLSRPT POST may go (policy/http.c): the
 * report's https host comes from a TXT record anyone may publish, so an
 * address of it that is not global unicast is never connected to unless
 * the caller allows it (tlsrpt_private_destinations).  DNS is faked
 * (fakedns.h); the "report receiver" is a plain listening socket on
 * 127.0.0.1 that counts the connections it gets.  And the POST's socket
 * must carry its mark: setsockopt(SO_MARK) is wrapped, to fail or to
 * succeed whoever runs the test.  And the report host's certificate must
 * carry its name as a subjectAltName DNS name (RFC 9525: the subject CN
 * does not count): there the receiver is a TLS server (io, testcert.h)
 * that answers the POST with 204.  Its certificate's validity is judged
 * on the policy clock (core/clock.h; time() wrapped: timestep.h).
 */
// WRAP: dns_query dns_cancel setsockopt time
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <errno.h>
#include <cmocka.h>

#include <openssl/ssl.h>

#include "core/clock.h"
#include "core/ev.h"
#include "core/io.h"
#include "policy/dns.h"
#include "policy/http.h"

#include "fakedns.h"
#include "testcert.h"
#include "timestep.h"
#include "markwrap.h"

static int done, ok_seen, accepted;
static char err_seen[512];
static char	 kind_seen[64];
/* when the callback came: ms from the POST's start */
static long post_ms;
static struct timespec post_t0;


static void
posted(void *arg, int ok, const char *body, size_t len, const char *kind,
    const char *err)
{
	struct timespec t;

	(void)arg; (void)body; (void)len;
	clock_gettime(CLOCK_MONOTONIC, &t);
	post_ms = (t.tv_sec - post_t0.tv_sec) * 1000 +
	    (t.tv_nsec - post_t0.tv_nsec) / 1000000;
	done = 1;
	snprintf(kind_seen, sizeof(kind_seen), "%s", kind ? kind : "");
	ok_seen = ok;
	snprintf(err_seen, sizeof(err_seen), "%s", err ? err : "");
	ev_loop_stop(loop);
}

/* the TLS receiver: its context (NULL: no TLS, the connection is closed
 * at once), the CA the client trusts, the connection, and the reads of
 * request bytes it got (none: no request reached it) */
static SSL_CTX *srv_ctx;
static X509 *client_ca;
static struct io *srv_io;
static int srv_reads;
/* the first bytes of the request the receiver got, and the path the
 * POST goes to (NULL: "/r") */
static char srv_first[512];
/* the port the receiver listens on */
static unsigned srv_port;
static const char *post_path;
/* srv_silent: the receiver reads the POST and never answers; with
 * second, rpt.test's second address is 127.0.0.2, where a listener on
 * the same port counts the connections it gets (second_accepted) */
static int srv_silent, second, second_accepted;
/* srv_reply: what the receiver answers the POST (NULL: a 204) */
static const char *srv_reply;
/* srv_cut: the receiver reads the POST and cuts the connection (a FIN,
 * no close_notify, no answer) */
static int srv_cut;
/* aaaa_slow: rpt.test's AAAA query answers only after the POST's
 * timeout (an attacker who delays that answer, or a server that drops
 * AAAA queries) */
static int aaaa_slow;
/* aaaa_fails: rpt.test's AAAA query fails at once with that status
 * (DNS_TIMEOUT, DNS_SERVFAIL: no answer, where an attacker who delays
 * or spoils it can have it so) */
static int aaaa_fails;
/* v6_late: the receiver listens at ::1, named by rpt.test's AAAA answer,
 * which comes 200 ms after its A answer; that names 127.0.0.2, where a
 * listener on the same port never accepts (the TCP handshake done,
 * nothing answers the TLS one) */
static int v6_late;
/* with v6_late, v6_late_ms: the AAAA answer comes that late instead,
 * and the A answer also names 127.0.0.3 (nothing listens: refused), so
 * that 127.0.0.2 is not the last address when it starts */
static int v6_late_ms;
/* late_second: rpt.test's AAAA answer, ::1, comes that many ms after its
 * A answer (127.0.0.1, the receiver); at ::1 a listener on the same port
 * counts the connections it gets (second_accepted) */
static int late_second;
/* no_address: rpt.test has no address (NXDOMAIN for A and AAAA) */
static int no_address;
/* srv_late_ms: the receiver answers that long after the request */
static int srv_late_ms;
static struct ev_timer *srv_late_tmr;
/* srv_hs_late_ms: the receiver takes the connection and begins its TLS
 * handshake only that long after (the ClientHello waits in its socket) */
static int srv_hs_late_ms, srv_held_fd = -1;
static struct ev_timer *srv_hs_tmr;

static void
srv_answer_late(void *arg)
{
	(void)arg;
	if (srv_io != NULL)
		io_printf(srv_io, "HTTP/1.1 204 No Content\r\n"
		    "Content-Length: 0\r\n\r\n");
}

static void
srv_event(struct io *io, enum io_event ev, void *arg)
{
	(void)arg;
	if (ev != IO_DATAIN)
		return;
	if (srv_reads == 0)
		snprintf(srv_first, sizeof(srv_first), "%.*s",
		    (int)(io_datalen(io) < sizeof(srv_first) - 1 ?
		    io_datalen(io) : sizeof(srv_first) - 1), io_data(io));
	if (srv_reads == 0 && srv_late_ms) {
		srv_reads++;
		srv_late_tmr = ev_timer_new(loop, srv_answer_late, NULL);
		assert_non_null(srv_late_tmr);
		ev_timer_arm(srv_late_tmr, (uint64_t)srv_late_ms);
		io_drop(io, io_datalen(io));
		return;
	}
	if (srv_reads == 0 && srv_cut) {
		srv_reads++;
		shutdown(io_fd(io), SHUT_RDWR);
		return;
	}
	if (srv_reads++ == 0 && !srv_silent)
		io_printf(io, "%s", srv_reply != NULL ? srv_reply :
		    "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
	io_drop(io, io_datalen(io));
}

static void
srv_tls_late(void *arg)
{
	(void)arg;
	srv_io = io_new(loop, srv_held_fd, srv_event, NULL);
	assert_non_null(srv_io);
	srv_held_fd = -1;
	assert_int_equal(io_start_tls(srv_io, SSL_new(srv_ctx), 1), 0);
}

static void
on_accept(int fd, int events, void *arg)
{
	int c;

	(void)events; (void)arg;
	if ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) == -1)
		return;
	accepted++;
	if (srv_ctx == NULL || srv_io != NULL || srv_held_fd != -1) {
		close(c);	/* no TLS here: the POST fails after this */
		return;
	}
	if (srv_hs_late_ms) {
		srv_held_fd = c;
		srv_hs_tmr = ev_timer_new(loop, srv_tls_late, NULL);
		assert_non_null(srv_hs_tmr);
		ev_timer_arm(srv_hs_tmr, (uint64_t)srv_hs_late_ms);
		return;
	}
	srv_io = io_new(loop, c, srv_event, NULL);
	assert_non_null(srv_io);
	assert_int_equal(io_start_tls(srv_io, SSL_new(srv_ctx), 1), 0);
}

static void
on_accept2(int fd, int events, void *arg)
{
	int c;

	(void)events; (void)arg;
	if ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) == -1)
		return;
	second_accepted++;
	close(c);
}

static void
guard(void *arg)
{
	(void)arg;
	ev_loop_stop(loop);
}

/* POSTs to https://rpt.test:PORT/r, where rpt.test is 127.0.0.1, on a
 * socket marked mark (0: none). */
static void
post(int any_address, uint32_t mark)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct ev_timer *g;
	struct http_req *h;
	SSL_CTX *ctx;
	int lfd, lfd2 = -1, hang = -1;

	done = accepted = srv_reads = second_accepted = 0;
	srv_first[0] = '\0';
	mark_seen = 0;
	err_seen[0] = '\0';
	loop = ev_loop_new();
	assert_non_null(loop);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (v6_late) {
		struct sockaddr_in6 s6;
		socklen_t sl6 = sizeof(s6);

		lfd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		s6.sin6_addr = in6addr_loopback;
		assert_int_equal(bind(lfd, (struct sockaddr *)&s6,
		    sizeof(s6)), 0);
		assert_int_equal(getsockname(lfd, (struct sockaddr *)&s6,
		    &sl6), 0);
		sin.sin_port = s6.sin6_port;
		hang = socket(AF_INET, SOCK_STREAM, 0);
		inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
		assert_int_equal(bind(hang, (struct sockaddr *)&sin,
		    sizeof(sin)), 0);
		assert_int_equal(listen(hang, 4), 0);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_int_equal(bind(lfd, (struct sockaddr *)&sin,
		    sizeof(sin)), 0);
		assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin,
		    &sl), 0);
	}
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(ev_fd_set(loop, lfd, EV_READ, on_accept, NULL), 0);
	if (second) {
		struct sockaddr_in s2 = sin;
		struct msg m;

		lfd2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		inet_pton(AF_INET, "127.0.0.2", &s2.sin_addr);
		assert_int_equal(bind(lfd2, (struct sockaddr *)&s2,
		    sizeof(s2)), 0);
		assert_int_equal(listen(lfd2, 4), 0);
		assert_int_equal(ev_fd_set(loop, lfd2, EV_READ, on_accept2,
		    NULL), 0);
		begin(&m, 0x1234, 0, 0, "rpt.test", DNS_T_A, 2, 0, 0);
		rr_a(&m, "rpt.test", "127.0.0.1", 300);
		rr_a(&m, "rpt.test", "127.0.0.2", 300);
		answer("rpt.test", DNS_T_A, DNS_INSECURE, &m);
	} else if (v6_late && v6_late_ms) {
		struct msg m;

		begin(&m, 0x1234, 0, 0, "rpt.test", DNS_T_A, 2, 0, 0);
		rr_a(&m, "rpt.test", "127.0.0.2", 300);
		rr_a(&m, "rpt.test", "127.0.0.3", 300);
		answer("rpt.test", DNS_T_A, DNS_INSECURE, &m);
		aaaa("rpt.test", 0, "::1");
		answer_after((uint64_t)v6_late_ms);
	} else if (v6_late) {
		a("rpt.test", 0, "127.0.0.2");
		aaaa("rpt.test", 0, "::1");
		answer_after(200);
	} else if (late_second) {
		struct sockaddr_in6 s6;

		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		s6.sin6_addr = in6addr_loopback;
		s6.sin6_port = sin.sin_port;
		lfd2 = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_int_equal(bind(lfd2, (struct sockaddr *)&s6,
		    sizeof(s6)), 0);
		assert_int_equal(listen(lfd2, 4), 0);
		assert_int_equal(ev_fd_set(loop, lfd2, EV_READ, on_accept2,
		    NULL), 0);
		a("rpt.test", 0, "127.0.0.1");
		aaaa("rpt.test", 0, "::1");
		answer_after((uint64_t)late_second);
	} else if (!no_address)
		a("rpt.test", 0, "127.0.0.1");
	if (aaaa_slow) {
		answer("rpt.test", DNS_T_AAAA, DNS_TIMEOUT, NULL);
		fakes[nfakes - 1].delay_ms = 60000;
	}
	if (aaaa_fails)
		answer("rpt.test", DNS_T_AAAA, aaaa_fails, NULL);
	ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	if (client_ca != NULL)
		assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx),
		    client_ca), 1);
	srv_port = ntohs(sin.sin_port);
	clock_gettime(CLOCK_MONOTONIC, &post_t0);
	h = http_post(loop, NULL, ctx, "rpt.test", ntohs(sin.sin_port),
	    post_path != NULL ? post_path : "/r",
	    "application/tlsrpt+gzip", "x", 1, 3000, mark, any_address, posted,
	    NULL);
	assert_non_null(h);
	g = ev_timer_new(loop, guard, NULL);
	ev_timer_arm(g, 5000);
	ev_loop_run(loop);
	assert_true(done);
	ev_timer_free(g);
	ev_timer_free(srv_late_tmr);
	srv_late_tmr = NULL;
	ev_timer_free(srv_hs_tmr);
	srv_hs_tmr = NULL;
	if (srv_held_fd != -1)
		close(srv_held_fd);
	srv_held_fd = -1;
	if (srv_io != NULL)
		io_free(srv_io);
	srv_io = NULL;
	ev_fd_del(loop, lfd);
	close(lfd);
	if (lfd2 != -1) {
		ev_fd_del(loop, lfd2);
		close(lfd2);
	}
	if (hang != -1)
		close(hang);
	SSL_CTX_free(ctx);
	fakes_clear();
	ev_loop_free(loop);
	loop = NULL;
}

static void
test_loopback_refused(void **state)
{
	(void)state;
	post(0, 0);
	assert_int_equal(ok_seen, -1);
	assert_int_equal(accepted, 0);
	assert_non_null(strstr(err_seen, "127.0.0.1, a loopback address"));
	assert_non_null(strstr(err_seen, "tlsrpt_private_destinations"));
	/* said so, for the caller to make it final */
	assert_string_equal(kind_seen, HTTP_DESTINATION_REFUSED);
}

static void
test_loopback_allowed(void **state)
{
	(void)state;
	post(1, 0);
	assert_int_equal(ok_seen, -1);	/* no TLS server there */
	assert_int_equal(accepted, 1);	/* but it was asked */
	assert_string_not_equal(kind_seen, HTTP_DESTINATION_REFUSED);
}

/* The report's socket carries upstream_mark, and when SO_MARK fails
 * (no capability) nothing connects: unmarked, a divert rule could take
 * the connection into mxguard's own listener. */
static void
test_mark(void **state)
{
	(void)state;
	mark_fails = 0;
	post(1, 0x4d58);
	assert_int_equal(mark_seen, 0x4d58);
	assert_int_equal(accepted, 1);

	mark_fails = 1;
	post(1, 0x4d58);
	mark_fails = 0;
	assert_int_equal(mark_seen, 0x4d58);
	assert_int_equal(ok_seen, -1);
	assert_int_equal(accepted, 0);
	assert_non_null(strstr(err_seen, "SO_MARK 0x4d58"));
	assert_non_null(strstr(err_seen, "Operation not permitted"));
}

/* SO_MARK failing with rpt.test's AAAA answer still out: the POST fails
 * at once with that error, as with both answers in; the late answer's
 * addresses would fail alike, so it is not waited for (red with the
 * queries left out: the POST's timeout, "timeout ...; before: SO_MARK"). */
static void
test_mark_fails_with_dns_pending(void **state)
{
	(void)state;
	mark_fails = aaaa_slow = 1;
	post(1, 0x4d58);
	mark_fails = aaaa_slow = 0;
	assert_int_equal(ok_seen, -1);
	assert_int_equal(accepted, 0);
	assert_non_null(strstr(err_seen, "SO_MARK 0x4d58"));
	assert_null(strstr(err_seen, "timeout"));
}

/* The receiver's certificate from a CA the client trusts, for rpt.test
 * (subject CN), with san as its subjectAltName DNS name (NULL: none),
 * valid from..to seconds from now. */
static void
tls_receiver_valid(const char *san, long from, long to)
{
	EVP_PKEY *cakey = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
	X509 *leaf;

	assert_non_null(cakey);
	assert_non_null(key);
	client_ca = test_cert(cakey, "post test CA", NULL, NULL, NULL,
	    -86400 * 90, 86400 * 90, 1);
	leaf = test_cert(key, "rpt.test", san, client_ca, cakey, from, to, 0);
	assert_non_null(client_ca);
	assert_non_null(leaf);
	srv_ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(srv_ctx);
	assert_int_equal(SSL_CTX_use_certificate(srv_ctx, leaf), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(srv_ctx, key), 1);
	X509_free(leaf);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
}

static void
tls_receiver(const char *san)
{
	tls_receiver_valid(san, -60, 3600);
}

static void
tls_receiver_free(void)
{
	SSL_CTX_free(srv_ctx);
	X509_free(client_ca);
	srv_ctx = NULL;
	client_ca = NULL;
}

/* rpt.test only in the subject CN, no subjectAltName: the host name
 * check fails (DNS-IDs only), before the report is sent, and the error
 * says why.  OpenSSL's default would have taken the CN. */
static void
test_cn_only_refused(void **state)
{
	(void)state;
	tls_receiver(NULL);
	post(1, 0);
	tls_receiver_free();
	assert_int_equal(ok_seen, -1);
	assert_int_equal(accepted, 1);
	assert_int_equal(srv_reads, 0);
	assert_string_equal(kind_seen, "sts-webpki-invalid");
	assert_non_null(strstr(err_seen, "certificate of rpt.test: hostname "
	    "mismatch (it has no subjectAltName DNS name; its subject CN is "
	    "not used)"));
}

/* The same certificate with rpt.test as a subjectAltName DNS name: the
 * report is posted (the control for the test above). */
static void
test_san_posted(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	post(1, 0);
	tls_receiver_free();
	assert_int_equal(ok_seen, 0);
	assert_true(srv_reads > 0);
}

/*
 * A report is delivered on a 2xx status only.  A 101 (Switching
 * Protocols, which nothing asked for) is the final status, and no 2xx:
 * the POST fails and the report is tried again; after an interim 100 the
 * final 202 delivers it.
 */
static void
test_post_status_101_not_delivered(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	srv_reply = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\n"
	    "Content-Length: 0\r\n\r\n";
	post(1, 0);
	srv_reply = NULL;
	tls_receiver_free();
	assert_int_equal(ok_seen, 0);
	srv_reply = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
	tls_receiver("rpt.test");
	post(1, 0);
	srv_reply = NULL;
	tls_receiver_free();
	assert_true(srv_reads > 0);
	if (ok_seen == 0)
		fail_msg("a reply of 101 delivered the report");
	assert_int_equal(ok_seen, -1);
	assert_string_equal(err_seen, "status 101");
}

/* A report URI with a long path (one a TLSRPT record may name: a URI
 * up to 1024 octets, docs/tlsrpt.md) gets its request line and headers:
 * they are longer than io_printf()'s 1 KiB buffer, which made it
 * write nothing, and the receiver got the report's body alone. */
static void
test_long_path_posted(void **state)
{
	static char path[1000];

	(void)state;
	path[0] = '/';
	memset(path + 1, 'p', sizeof(path) - 2);
	path[sizeof(path) - 1] = '\0';
	post_path = path;
	tls_receiver("rpt.test");
	post(1, 0);
	tls_receiver_free();
	post_path = NULL;
	assert_true(srv_reads > 0);
	if (strncmp(srv_first, "POST /ppp", 9) != 0)
		fail_msg("the receiver got \"%s\", not the request line",
		    srv_first);
	assert_int_equal(ok_seen, 0);
}

/* The receiver's certificate expired ten days ago: posted while the
 * policy clock is anchored 30 days behind the real one (OpenSSL's own
 * clock cannot be moved here), refused on the real one. */
static void
test_validity_on_policy_clock(void **state)
{
	(void)state;
	tls_receiver_valid("rpt.test", -86400 * 40, -86400 * 10);
	time_step = -86400 * 30;
	clock_anchor();
	post(1, 0);
	assert_int_equal(ok_seen, 0);
	assert_true(srv_reads > 0);
	time_step = 0;
	clock_anchor();
	post(1, 0);
	tls_receiver_free();
	assert_int_equal(ok_seen, -1);
	assert_int_equal(srv_reads, 0);
	assert_non_null(strstr(err_seen, "expired"));
}

/*
 * The report host's first address takes the POST inside TLS that
 * verified and never answers: the report may have arrived, so it is not
 * sent again, to the second address or beside it (the MTA-STS GET tries
 * addresses side by side; a POST one at a time, and none after a
 * handshake): the POST fails at its timeout, the second address never
 * asked.
 */
static void
test_post_once_first_silent(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	srv_silent = second = 1;
	post(1, 0);
	srv_silent = second = 0;
	tls_receiver_free();
	assert_int_equal(ok_seen, -1);
	assert_true(srv_reads > 0);
	assert_int_equal(second_accepted, 0);
}

/*
 * The same with the host's AAAA answer late: it comes while the first
 * address holds the report unanswered, and its address is not tried
 * beside it (a GET's addresses are; a POST has one attempt open at
 * most): the second address never asked.
 */
static void
test_post_once_late_answer(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	srv_silent = 1;
	late_second = 300;
	post(1, 0);
	srv_silent = late_second = 0;
	tls_receiver_free();
	assert_true(srv_reads > 0);
	if (second_accepted != 0)
		fail_msg("the late answer's address was asked beside the "
		    "first, which had the report");
	assert_int_equal(ok_seen, -1);
	assert_non_null(strstr(err_seen, "timeout"));
}

/*
 * The same with a first address that takes the POST inside verified TLS
 * and then cuts the connection (no close_notify, no status): the report
 * may have arrived, so the POST fails at once with that error and the
 * second address is never asked.  Anyone on the path can cut a
 * connection; the report goes again at the next try, not twice now.
 */
static void
test_post_once_first_cut(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	srv_cut = second = 1;
	post(1, 0);
	srv_cut = second = 0;
	tls_receiver_free();
	assert_true(srv_reads > 0);
	if (second_accepted != 0)
		fail_msg("a report cut after it was sent went to the second "
		    "address too");
	assert_int_equal(ok_seen, -1);
	assert_string_equal(kind_seen, "sts-policy-fetch-error");
	assert_non_null(strstr(err_seen, "127.0.0.1"));
	assert_true(post_ms < 2000);
}

/*
 * The report host's A record is refused (loopback here: a private or
 * this host's own address alike) and its AAAA answer has not come when
 * the POST's time is up: a timeout, to be retried, not
 * destination-refused, which the caller makes final (tlsproxy/report.c
 * on_post(): r->permanent) and http.h promises only when the host had
 * addresses and every one was refused.  The AAAA answer might have named
 * a global address.  Red on 8a27fe7: the deadline went through
 * fail_all(), whose "no address but refused ones" test did not ask
 * whether DNS was still pending.
 */
static void
test_timeout_with_dns_pending_not_refused(void **state)
{
	(void)state;
	aaaa_slow = 1;
	post(0, 0);
	aaaa_slow = 0;
	assert_int_equal(ok_seen, -1);
	assert_int_equal(accepted, 0);
	assert_string_not_equal(kind_seen, HTTP_DESTINATION_REFUSED);
	assert_non_null(strstr(err_seen, "timeout"));
}

/*
 * The first of two addresses finishes its handshake and answers the POST
 * after 1.2 s, past the quarter of the POST's 3 s (751 ms) that an
 * address gets for its handshake while another remains: that deadline
 * ends with the handshake, and the report is delivered there, the second
 * address never asked.
 */
static void
test_slow_answer_after_handshake_delivered(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	srv_late_ms = 1200;
	second = 1;
	post(1, 0);
	srv_late_ms = second = 0;
	tls_receiver_free();
	assert_true(srv_reads > 0);
	if (ok_seen != 0)
		fail_msg("a receiver answering 1.2 s after the handshake: %s",
		    err_seen);
	assert_int_equal(second_accepted, 0);
	assert_true(post_ms >= 1200);
}

/*
 * The report host's only address finishes its TLS handshake 1.2 s after
 * the connection, past the quarter of the POST's 3 s that an address
 * gets for its handshake while another remains: with none left, the
 * last address has the POST's whole time, and the report is delivered.
 * Red before (the quarter given to the last address too): a timeout at
 * 750 ms, the report not sent.
 */
static void
test_last_address_slow_handshake_delivered(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	srv_hs_late_ms = 1200;
	post(1, 0);
	srv_hs_late_ms = 0;
	tls_receiver_free();
	if (ok_seen != 0)
		fail_msg("the only address, its handshake done after 1.2 s: "
		    "%s", err_seen);
	assert_true(srv_reads > 0);
	assert_true(post_ms >= 1200);
}

/*
 * The POST's header lines: the Host header names the port when it is not
 * 443 (RFC 9110 section 7.2), the type is the caller's, and the
 * Content-Length the report's own, which a receiver reads the body by.
 */
static void
test_post_headers(void **state)
{
	char host[64];

	(void)state;
	tls_receiver("rpt.test");
	post(1, 0);
	tls_receiver_free();
	assert_int_equal(ok_seen, 0);
	snprintf(host, sizeof(host), "\r\nHost: rpt.test:%u\r\n", srv_port);
	if (strncmp(srv_first, "POST /r HTTP/1.1\r\n", 18) != 0 ||
	    strstr(srv_first, host) == NULL ||
	    strstr(srv_first, "\r\nContent-Type: application/tlsrpt+gzip"
	    "\r\n") == NULL ||
	    strstr(srv_first, "\r\nContent-Length: 1\r\n") == NULL)
		fail_msg("the receiver got \"%s\"", srv_first);
}

/* Whether http_post() takes a report of len octets with ctype (the
 * request, if any, cancelled at once). */
static int
post_taken(const char *ctype, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct http_req *h;

	loop = ev_loop_new();
	assert_non_null(loop);
	assert_non_null(ctx);
	h = http_post(loop, NULL, ctx, "rpt.test", 443, "/r", ctype, "x", len,
	    3000, 0, 1, posted, NULL);
	http_cancel(h);
	SSL_CTX_free(ctx);
	fakes_clear();
	ev_loop_free(loop);
	loop = NULL;
	return h != NULL;
}

/* A Content-Type that would break the request's header lines, or none,
 * or an empty report: no POST (the control: a plain type is taken). */
static void
test_post_refuses_bad_args(void **state)
{
	(void)state;
	assert_true(post_taken("application/json", 1));
	assert_false(post_taken("application/json\r\nX-Injected: 1", 1));
	assert_false(post_taken("application/json\nX-Injected: 1", 1));
	assert_false(post_taken(NULL, 1));
	assert_false(post_taken("application/json", 0));
}

/*
 * A report host with no address at all (NXDOMAIN): nothing was refused,
 * so not destination-refused, which the caller makes final; the POST
 * fails with the DNS answer, to be tried again (the name may be
 * published later).
 */
static void
test_no_address_not_refused(void **state)
{
	(void)state;
	no_address = 1;
	post(0, 0);
	no_address = 0;
	assert_int_equal(ok_seen, -1);
	assert_int_equal(accepted, 0);
	assert_string_not_equal(kind_seen, HTTP_DESTINATION_REFUSED);
	assert_non_null(strstr(err_seen, "rpt.test: DNS nxdomain"));
}

/*
 * The same with the AAAA query failing before the POST's time is up (a
 * resolver timeout: an attacker who delays the answer past dns_timeout,
 * below sts_fetch_timeout; a SERVFAIL): no answer either, so not
 * destination-refused, which drops the report for good.  Red before
 * (pending_dns was 0, as with a negative answer): destination-refused.
 * An NXDOMAIN or NODATA answer is an answer: refused stays final there.
 */
static void
test_dns_failure_not_refused(void **state)
{
	static const enum dns_status fails[] = { DNS_TIMEOUT, DNS_SERVFAIL };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(fails) / sizeof(fails[0]); i++) {
		aaaa_fails = (int)fails[i];
		post(0, 0);
		aaaa_fails = 0;
		assert_int_equal(ok_seen, -1);
		assert_int_equal(accepted, 0);
		assert_string_not_equal(kind_seen, HTTP_DESTINATION_REFUSED);
		assert_non_null(strstr(err_seen, "127.0.0.1, a loopback "
		    "address"));
	}
	aaaa_fails = DNS_NODATA;
	post(0, 0);
	aaaa_fails = 0;
	assert_string_equal(kind_seen, HTTP_DESTINATION_REFUSED);
}

/*
 * rpt.test's AAAA answer does not come within the POST's time (an
 * attacker who delays it, a resolver path that drops AAAA queries), its
 * A answer names the receiver: the report is posted, the resolution
 * delay (50 ms) after the A answer, as an MTA-STS GET starts (RFC 8305
 * section 3).  Red before: the POST waited for both answers and failed
 * at its 3 s timeout, every time, so such an attacker kept every report
 * from a receiver that serves over IPv4.
 */
static void
test_aaaa_late_posted(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	aaaa_slow = 1;
	post(1, 0);
	aaaa_slow = 0;
	tls_receiver_free();
	assert_int_equal(ok_seen, 0);
	assert_int_equal(accepted, 1);
	assert_true(srv_reads > 0);
}

/*
 * The POST starts at the A answer's address, which hangs in the TLS
 * handshake; the AAAA answer naming the receiver comes 200 ms later.
 * The hanging address was the last when it started (no handshake
 * deadline: the last keeps the rest of the time); the late answer makes
 * it one of two, so it gets a quarter of the time from then, as any but
 * the last does, and the report goes to the receiver, once.  Without
 * that, the hanging address held the POST to its timeout (green before,
 * when the POST waited for both answers; red if the deadline is not set
 * when the late answer comes).
 */
static void
test_late_answer_cuts_hanging_first(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	v6_late = 1;
	post(1, 0);
	v6_late = 0;
	tls_receiver_free();
	assert_int_equal(ok_seen, 0);
	assert_int_equal(accepted, 1);	/* one connection got it */
	assert_true(srv_reads > 0);
}

/*
 * The same, but the hanging address was not the last when it started
 * (127.0.0.3, refused, follows it), so it already had its quarter of the
 * time (751 ms) from its start, and the AAAA answer comes 700 ms late:
 * that deadline stands, the receiver gets the report about 800 ms in
 * (the resolution delay and the quarter), not a quarter of the time
 * after the late answer (about 1450 ms: red before, the late answer
 * re-armed the deadline of an attempt that had one, so whoever times
 * the AAAA answer kept a hanging address up to twice its share).  Bound
 * half-way.
 */
static void
test_late_answer_keeps_deadline(void **state)
{
	(void)state;
	tls_receiver("rpt.test");
	v6_late = 1;
	v6_late_ms = 700;
	post(1, 0);
	v6_late = v6_late_ms = 0;
	tls_receiver_free();
	assert_int_equal(ok_seen, 0);
	assert_int_equal(accepted, 1);
	assert_true(srv_reads > 0);
	assert_true(post_ms < (800 + 1450) / 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback_refused),
		cmocka_unit_test(test_loopback_allowed),
		cmocka_unit_test(test_mark),
		cmocka_unit_test(test_mark_fails_with_dns_pending),
		cmocka_unit_test(test_cn_only_refused),
		cmocka_unit_test(test_san_posted),
		cmocka_unit_test(test_validity_on_policy_clock),
		cmocka_unit_test(test_post_once_first_silent),
		cmocka_unit_test(test_post_once_first_cut),
		cmocka_unit_test(test_post_once_late_answer),
		cmocka_unit_test(test_timeout_with_dns_pending_not_refused),
		cmocka_unit_test(test_dns_failure_not_refused),
		cmocka_unit_test(test_no_address_not_refused),
		cmocka_unit_test(test_slow_answer_after_handshake_delivered),
		cmocka_unit_test(test_last_address_slow_handshake_delivered),
		cmocka_unit_test(test_post_refuses_bad_args),
		cmocka_unit_test(test_post_headers),
		cmocka_unit_test(test_aaaa_late_posted),
		cmocka_unit_test(test_late_answer_cuts_hanging_first),
		cmocka_unit_test(test_late_answer_keeps_deadline),
		cmocka_unit_test(test_long_path_posted),
		cmocka_unit_test(test_post_status_101_not_delivered),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
