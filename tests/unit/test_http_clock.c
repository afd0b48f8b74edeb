/*
 * test_http_clock.c - the MTA-STS policy host's certificate is judged on
 * the policy clock (core/clock.h) when the handshake ends, not only at
 * the time policy/http.c set before it.  The fetch sets the verification
 * time when its TCP connection is up (IO_CONNECTED); a GET's handshake
 * has no deadline of its own, only the fetch's (sts_fetch_timeout, 30 s),
 * so a server, or an attacker on the path who relays the host's flight,
 * can hold the handshake until the chain has expired.  Included whole,
 * for http_start() and http_resolve() (a port of the test's own).  The
 * policy host is a TLS server on the test's loop (io, testcert.h) whose
 * ClientHello callback moves the policy clock (time() wrapped:
 * timestep.h), between the client's prepare and its check.  DNS faked
 * (fakedns.h).  The same fetch names its host in SNI and the Host
 * header, refuses a certificate named by a partial wildcard only, bounds
 * what one address may send before its response is whole, and goes on
 * unmarked when SO_MARK is refused (setsockopt() wrapped).
 */
// WRAP: dns_query dns_cancel time setsockopt
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "policy/http.c"

#include "fakedns.h"
#include "testcert.h"
#include "timestep.h"
#include "markwrap.h"

#define POLICY	"version: STSv1\nmode: enforce\nmx: mx.x.test\n" \
		"max_age: 86400\n"

/* the mark the GET is given */
static uint32_t get_mark;

static SSL_CTX *srv_ctx;
static X509 *srv_ca;
static struct io *srv_io;
static char req[4096];
static size_t reqlen;
/* set: the server's ClientHello callback moves the policy clock to
 * time_step = hs_step_to (the client set its verification time before) */
static int hs_moves;
static int64_t hs_step_to;
/* set: the server speaks TLS 1.2 at most and sends a HelloRequest
 * before its response; hellos counts the ClientHellos it read */
static int srv_reneg, hellos;
static SSL *srv_ssl;

/* the policy host's certificate's subjectAltName DNS name (NULL: its
 * name, mta-sts.x.test) */
static const char *leaf_san;
/* srv_resp, srv_resp_len: the server's answer instead of the policy;
 * get_ms: the fetch's time (0: 3000 ms) */
static char *srv_resp;
static size_t srv_resp_len;
static uint64_t get_ms;
static int get_done, get_ok;
static char get_body[256], get_err[512], get_kind[64];

/* the server name (SNI) the client's hello asked for */
static char sni_seen[256];

static int
hello_cb(SSL *s, int *al, void *arg)
{
	const unsigned char *ext;
	size_t len;

	(void)al; (void)arg;
	hellos++;
	/* server_name: list length (2), type (1), name length (2), name */
	if (SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &ext,
	    &len) == 1 && len > 5 && ext[2] == TLSEXT_NAMETYPE_host_name)
		snprintf(sni_seen, sizeof(sni_seen), "%.*s", (int)(len - 5),
		    (const char *)ext + 5);
	if (hs_moves) {
		time_step = hs_step_to;
		clock_anchor();
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static void
srv_event(struct io *io, enum io_event ev, void *arg)
{
	size_t n;

	(void)arg;
	if (srv_reneg == 2 && (ev == IO_ERROR || ev == IO_DISCONNECTED ||
	    ev == IO_HANGUP)) {
		/* the client's no_renegotiation alert, or its leaving */
		io_free(io);
		srv_io = NULL;
		return;
	}
	if (ev != IO_DATAIN)
		return;
	n = io_datalen(io);
	if (reqlen + n < sizeof(req)) {
		memcpy(req + reqlen, io_data(io), n);
		reqlen += n;
		req[reqlen] = '\0';
	}
	io_drop(io, n);
	if (strstr(req, "\r\n\r\n") != NULL && srv_reneg == 1) {
		/* the HelloRequest, and no response: a client that renegotiates
		 * gets nothing more, one that refuses is hung up on */
		srv_reneg = 2;
		assert_int_equal(SSL_renegotiate(srv_ssl), 1);
		(void)SSL_do_handshake(srv_ssl);
		return;
	}
	if (strstr(req, "\r\n\r\n") != NULL && srv_resp != NULL)
		io_write(io, srv_resp, srv_resp_len);
	else if (strstr(req, "\r\n\r\n") != NULL)
		io_printf(io, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		    "Content-Length: %zu\r\n\r\n%s", strlen(POLICY), POLICY);
}

static void
on_accept(int fd, int events, void *arg)
{
	int c;

	(void)events; (void)arg;
	if ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) == -1)
		return;
	if (srv_io != NULL) {
		close(c);
		return;
	}
	srv_io = io_new(loop, c, srv_event, NULL);
	assert_non_null(srv_io);
	srv_ssl = SSL_new(srv_ctx);
	assert_non_null(srv_ssl);
	assert_int_equal(io_start_tls(srv_io, srv_ssl, 1), 0);
}

static void
got(void *arg, int ok, const char *body, size_t len, const char *kind,
    const char *err)
{
	(void)arg;
	get_done = 1;
	get_ok = ok;
	snprintf(get_kind, sizeof(get_kind), "%s", kind ? kind : "");
	snprintf(get_body, sizeof(get_body), "%.*s", (int)len,
	    body ? body : "");
	snprintf(get_err, sizeof(get_err), "%s", err ? err : "");
	ev_loop_stop(loop);
}

static void
guard(void *arg)
{
	(void)arg;
	ev_loop_stop(loop);
}

/* GET https://mta-sts.x.test:PORT/.well-known/mta-sts.txt from a server
 * whose certificate for mta-sts.x.test is valid from `from` to `to`
 * seconds from now (the real clock). */
static void
get(long from, long to)
{
	EVP_PKEY *cakey = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct ev_timer *g;
	struct http_req *h;
	SSL_CTX *ctx;
	X509 *leaf;
	int lfd;

	get_done = 0;
	get_ok = 99;
	sni_seen[0] = '\0';
	get_err[0] = get_kind[0] = get_body[0] = '\0';
	reqlen = 0;
	req[0] = '\0';
	srv_ca = test_cert(cakey, "clock test CA", NULL, NULL, NULL,
	    -86400 * 400, 86400 * 400, 1);
	leaf = test_cert(key, "mta-sts.x.test", leaf_san != NULL ? leaf_san :
	    "mta-sts.x.test", srv_ca, cakey, from, to, 0);
	assert_non_null(srv_ca);
	assert_non_null(leaf);
	srv_ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(SSL_CTX_use_certificate(srv_ctx, leaf), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(srv_ctx, key), 1);
	SSL_CTX_set_client_hello_cb(srv_ctx, hello_cb, NULL);
	if (srv_reneg)
		assert_int_equal(SSL_CTX_set_max_proto_version(srv_ctx,
		    TLS1_2_VERSION), 1);
	hellos = 0;

	loop = ev_loop_new();
	assert_non_null(loop);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(ev_fd_set(loop, lfd, EV_READ, on_accept, NULL), 0);
	a("mta-sts.x.test", 0, "127.0.0.1");

	ctx = SSL_CTX_new(TLS_client_method());
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx),
	    srv_ca), 1);
	h = http_start(loop, NULL, ctx, "mta-sts.x.test", ntohs(sin.sin_port),
	    "/.well-known/mta-sts.txt", get_ms ? get_ms : 3000, 65536, get_mark,
	    got, NULL);
	assert_non_null(h);
	assert_non_null(http_resolve(h));
	g = ev_timer_new(loop, guard, NULL);
	ev_timer_arm(g, 5000);
	ev_loop_run(loop);
	ev_timer_free(g);
	assert_true(get_done);

	if (srv_io != NULL)
		io_free(srv_io);
	srv_io = NULL;
	ev_fd_del(loop, lfd);
	close(lfd);
	SSL_CTX_free(ctx);
	SSL_CTX_free(srv_ctx);
	srv_ctx = NULL;
	X509_free(leaf);
	X509_free(srv_ca);
	srv_ca = NULL;
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	fakes_clear();
	ev_loop_free(loop);
	loop = NULL;
}

/* The policy clock back where the real one is, whatever a test did. */
static int
clock_reset(void **state)
{
	(void)state;
	hs_moves = 0;
	srv_reneg = 0;
	leaf_san = NULL;
	free(srv_resp);
	srv_resp = NULL;
	get_ms = 0;
	get_mark = mark_seen = 0;
	mark_fails = 0;
	time_step = 0;
	clock_anchor();
	return 0;
}

/*
 * The policy host's certificate expired ten days ago on the real clock
 * and was valid thirty days ago.  The fetch starts with the policy clock
 * thirty days behind (the verification time http.c sets at the
 * connection), and the clock reaches the real time while the handshake
 * runs (the server, or an attacker relaying its flight, held it until
 * the chain had expired).  The fetch must fail, certificate expired:
 * before, the handshake's verification at the earlier time stood, and
 * the policy of a host whose certificate had expired at the check was
 * taken.
 */
static void
test_expired_during_handshake(void **state)
{
	(void)state;
	time_step = -86400 * 30;
	clock_anchor();
	hs_moves = 1;
	hs_step_to = 0;
	get(-86400 * 40, -86400 * 10);
	if (get_ok == 0)
		fail_msg("a certificate expired on the policy clock at the end "
		    "of the handshake served the policy (\"%.40s...\")",
		    get_body);
	assert_int_equal(get_ok, -1);
	assert_string_equal(get_kind, "sts-webpki-invalid");
	assert_non_null(strstr(get_err, "expired"));
	assert_null(strstr(req, "GET "));	/* no request went out */
}

/* The control: the same certificate, the clock still within its validity
 * at the end of the handshake: the policy is served. */
static void
test_valid_through_handshake(void **state)
{
	(void)state;
	time_step = -86400 * 30;
	clock_anchor();
	hs_moves = 1;
	hs_step_to = -86400 * 29;
	get(-86400 * 40, -86400 * 10);
	assert_int_equal(get_ok, 0);
	assert_string_equal(get_body, POLICY);
}

/* And on the real clock throughout, the expired certificate is refused
 * as before (the verification the handshake made). */
static void
test_expired_before_handshake(void **state)
{
	(void)state;
	get(-86400 * 40, -86400 * 10);
	assert_int_equal(get_ok, -1);
	assert_string_equal(get_kind, "sts-webpki-invalid");
	assert_non_null(strstr(get_err, "expired"));
}

/*
 * The request names the policy host twice, as a shared server needs it:
 * in the TLS hello (SNI, which picks its certificate) and in the Host
 * header (which picks its site), and asks for the well-known path.
 */
static void
test_request_names_host(void **state)
{
	(void)state;
	get(-60, 3600);
	assert_int_equal(get_ok, 0);
	assert_string_equal(sni_seen, "mta-sts.x.test");
	if (strncmp(req, "GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "Host: mta-sts.x.test\r\n", 61) != 0)
		fail_msg("the request was \"%.80s\"", req);
}

/*
 * A certificate whose only name is a partial wildcard, mta*.x.test, is
 * not the policy host's (RFC 9525 section 6.3: a wildcard is the whole
 * leftmost label; OpenSSL takes the partial one unless told not to): the
 * fetch fails, certificate invalid, no request sent.  The control: the
 * whole-label wildcard *.x.test serves the policy.
 */
static void
test_partial_wildcard_refused(void **state)
{
	(void)state;
	leaf_san = "mta*.x.test";
	get(-60, 3600);
	if (get_ok == 0)
		fail_msg("a certificate for mta*.x.test served the policy of "
		    "mta-sts.x.test");
	assert_int_equal(get_ok, -1);
	assert_string_equal(get_kind, "sts-webpki-invalid");
	assert_non_null(strstr(get_err, "hostname mismatch"));
	assert_null(strstr(req, "GET "));
	leaf_san = "*.x.test";
	get(-60, 3600);
	assert_int_equal(get_ok, 0);
	assert_string_equal(get_body, POLICY);
}

/* A response of total octets that is never whole: a chunked body's last
 * chunk, then trailer lines of 2,000 octets (under the parser's 4,096
 * for one line), without the empty line that would end them. */
static void
endless_trailers(size_t total)
{
	const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n";
	size_t o = strlen(head), k;

	free(srv_resp);
	assert_non_null(srv_resp = malloc(total));
	memcpy(srv_resp, head, o);
	while (o < total) {
		k = total - o > 4000 ? 2005 : total - o;
		memcpy(srv_resp + o, "X: ", 3);
		memset(srv_resp + o + 3, 'a', k - 5);
		memcpy(srv_resp + o + k - 2, "\r\n", 2);
		o += k;
	}
	srv_resp_len = total;
}

/*
 * What one address may send before its attempt ends: twice maxbody, the
 * header bound and 4 KiB (a chunked body's sizes and trailers), here
 * 151,552 octets.  One more than that, never whole, ends the attempt at
 * once, "response too large"; as many (the control) is waited on, to
 * the fetch's deadline.  Four attempts a fetch, each buffer bounded.
 */
static void
test_receive_bound(void **state)
{
	const size_t lim = 65536 * 2 + HTTP_HDR_MAX + 4096;

	(void)state;
	endless_trailers(lim + 1);
	get(-60, 3600);
	assert_int_equal(get_ok, -1);
	if (strstr(get_err, "response too large") == NULL)
		fail_msg("%zu octets never whole were not refused: \"%s\"",
		    lim + 1, get_err);
	assert_null(strstr(get_err, "timeout"));
	endless_trailers(lim);
	get_ms = 500;
	get(-60, 3600);
	assert_int_equal(get_ok, -1);
	assert_null(strstr(get_err, "too large"));
	assert_non_null(strstr(get_err, "timeout after 500 ms: response not "
	    "whole from 127.0.0.1"));
}

/*
 * The policy GET asks for its socket mark, and goes on unmarked when
 * SO_MARK is refused (`mxguard policy` without CAP_NET_ADMIN; port 443,
 * which no divert rule takes): the policy is served.  A TLSRPT POST
 * fails so instead (test_http_post test_mark).
 */
static void
test_mark_refused_get_goes_on(void **state)
{
	(void)state;
	get_mark = 0x4d58;
	mark_fails = 1;
	get(-60, 3600);
	assert_int_equal(mark_seen, 0x4d58);
	if (get_ok != 0)
		fail_msg("a GET whose SO_MARK was refused failed: %s", get_err);
	assert_string_equal(get_body, POLICY);
}

/*
 * The policy host asks for a TLS 1.2 renegotiation (a HelloRequest) in
 * answer to the request.  The fetch verifies the certificate once, after
 * the first handshake, so it must refuse: a second handshake would bring
 * keys and a certificate that check never sees.  The refusal is http.c's
 * own, on the SSL it makes, whatever context the caller passed (this
 * test's is a bare one).  Red before: the client answered with a second
 * ClientHello (and the fetch then timed out, the server silent).
 */
static void
test_no_renegotiation(void **state)
{
	(void)state;
	srv_reneg = 1;
	get(-86400, 86400);
	assert_int_equal(srv_reneg, 2);		/* the HelloRequest went out */
	if (hellos != 1)
		fail_msg("the fetch answered the server's HelloRequest: %d "
		    "ClientHellos on one connection", hellos);
	assert_int_equal(get_ok, -1);		/* no policy came */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_expired_during_handshake,
		    clock_reset),
		cmocka_unit_test_teardown(test_valid_through_handshake,
		    clock_reset),
		cmocka_unit_test_teardown(test_expired_before_handshake,
		    clock_reset),
		cmocka_unit_test_teardown(test_request_names_host, clock_reset),
		cmocka_unit_test_teardown(test_partial_wildcard_refused,
		    clock_reset),
		cmocka_unit_test_teardown(test_receive_bound, clock_reset),
		cmocka_unit_test_teardown(test_mark_refused_get_goes_on,
		    clock_reset),
		cmocka_unit_test_teardown(test_no_renegotiation, clock_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
