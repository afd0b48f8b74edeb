/*
 * test_tls_cache.c - the client's TLS resumption cache (tlsproxy/tls.c):
 * a proven handshake's sessions are kept for its key and offered again;
 * an unproven one's never, and it clears the key; a handshake begun
 * under a configuration that a reload replaced (its SSL from the old
 * context) leaves nothing in the new one's cache, whose settings it was
 * not made with; a session with a ticket too large to keep is not kept;
 * a session whose server certificate, or the chain its proof verified,
 * has expired on the policy clock is not offered; nor one past its
 * lifetime on the boot clock, whatever the wall clock did.
 *
 * The server is a plain OpenSSL server in process, joined to the
 * client's SSL by two memory BIOs; the handshake runs by hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

// WRAP: time clock_gettime
#include "core/clock.h"
#include "core/config.h"
#include "tlsproxy/tls.h"

#include "testcert.h"
#include "heapmeter.h"
#include "suspend.h"
#include "timestep.h"

static SSL_CTX *sctx;
static struct config *cfg;
static size_t pair_size;	/* of the BIO pair (0: OpenSSL's default) */

/* A server whose certificate is valid for valid_s seconds from now. */
static SSL_CTX *
server_ctx_for(long valid_s)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(key);
	assert_non_null(ctx);
	x = test_cert(key, "peer.test", NULL, NULL, NULL, -60, valid_s, 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

static SSL_CTX *
server_ctx(void)
{
	return server_ctx_for(3600);
}

/* Client c and a new server SSL of sctx joined by a BIO pair, their
 * handshake run to its end: the server SSL. */
static SSL *
joined(SSL *c)
{
	SSL *s = SSL_new(sctx);
	BIO *cb, *sb;
	int i, cdone = 0, sdone = 0;

	assert_non_null(s);
	assert_int_equal(BIO_new_bio_pair(&cb, pair_size, &sb, pair_size), 1);
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (i = 0; i < 100 && !(cdone && sdone); i++) {
		if (!cdone)
			cdone = SSL_do_handshake(c) == 1;
		if (!sdone)
			sdone = SSL_do_handshake(s) == 1;
	}
	assert_true(cdone && sdone);
	return s;
}

/* A full handshake of client c with a new server SSL, then the tickets
 * read: c's pending sessions are what the server issued.  1 if the
 * client resumed. */
static int
handshake(SSL *c)
{
	SSL *s = joined(c);
	char buf[16];
	int i, reused;

	/* the server's tickets follow its Finished: let the client read */
	for (i = 0; i < 4; i++) {
		(void)SSL_read(c, buf, sizeof(buf));
		(void)SSL_read(s, buf, sizeof(buf));
	}
	reused = SSL_session_reused(c);
	SSL_free(s);
	return reused;
}

static int
setup(void **state)
{
	char err[256];

	(void)state;
	sctx = server_ctx();
	cfg = config_load(NULL, err, sizeof(err));
	assert_non_null(cfg);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	SSL_CTX_free(sctx);
	config_free(cfg);
	return 0;
}

/* The baseline: proven, kept and offered, then resumed. */
static void
test_proven_kept(void **state)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL *c;

	(void)state;
	assert_non_null(t);
	c = tls_client_new(t);
	tls_client_resume(t, c, "k1");
	assert_int_equal(handshake(c), 0);
	tls_client_done(t, c, 1, 0);
	SSL_free(c);
	c = tls_client_new(t);
	tls_client_resume(t, c, "k1");
	assert_non_null(SSL_get_session(c));
	assert_int_equal(handshake(c), 1);
	tls_client_done(t, c, 1, 0);
	SSL_free(c);
	tls_ctx_free(t);
}

/*
 * A session cached under key from a proven handshake whose proof stands
 * until not_after (0: no end): still offered at valid_at seconds on the
 * policy clock, and no longer at gone_at.  what: for the failure.
 */
static void
offered_until(const char *key, int64_t not_after, int64_t valid_at,
    int64_t gone_at, const char *what)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL *c;

	assert_non_null(t);
	c = tls_client_new(t);
	tls_client_resume(t, c, key);
	assert_int_equal(handshake(c), 0);
	tls_client_done(t, c, 1, not_after);
	SSL_free(c);
	time_step = valid_at;
	clock_anchor();
	c = tls_client_new(t);
	tls_client_resume(t, c, key);
	assert_non_null(SSL_get_session(c));
	SSL_free(c);
	/* (the session itself is not timed out) */
	time_step = gone_at;
	clock_anchor();
	c = tls_client_new(t);
	tls_client_resume(t, c, key);
	if (SSL_get_session(c) != NULL)
		fail_msg("a session whose %s expired on the policy clock was "
		    "offered", what);
	SSL_free(c);
	time_step = 0;
	clock_anchor();
	tls_ctx_free(t);
}

/*
 * The server's certificate (valid for an hour) has expired on the policy
 * clock since its session was cached: not offered, a full handshake
 * instead.  Resumed, the check would judge the old certificate again and
 * fail (a 421, a TLSRPT failure) where the server, its certificate
 * renewed, passes a full one.  Red before: the session was offered.
 */
static void
test_expired_peer_not_offered(void **state)
{
	(void)state;
	/* 50 minutes on: still valid; past its notAfter: not offered */
	offered_until("k6", 0, 3000, 3700, "certificate");
}

/*
 * The proof's chain expires before the leaf (an intermediate valid for
 * 30 minutes more, the leaf for an hour): the session is not offered
 * once the chain's earliest notAfter has passed on the policy clock.
 * Resumed, the check would verify the old chain again and fail (a 421,
 * a TLSRPT failure) where the server, its intermediate renewed, passes a
 * full handshake.  Red before: offered (the leaf alone was looked at).
 */
static void
test_chain_expired_not_offered(void **state)
{
	(void)state;
	offered_until("k7", clock_now() + 1800, 1700, 1900, "proof's chain");
}

/*
 * A session's lifetime (the server's ticket_lifetime, 100 s here) is
 * judged on the boot clock, which no one sets: the wall clock stepped
 * back a day (NTP, an operator, a VM restored from a snapshot) kept it
 * on offer past its lifetime, for the size of the step (in TLS 1.2 this
 * check is the client's only one; a server holding an old ticket key,
 * or whoever stole it, resumes what should have ended).  Stepped ahead,
 * it does not make a fresh one too old.  Red before: offered 200 s on.
 */
/* A session of a new handshake with sctx, cached under key. */
static void
cached(struct tls_ctx *t, const char *key)
{
	SSL *c = tls_client_new(t);

	tls_client_resume(t, c, key);
	assert_int_equal(handshake(c), 0);
	tls_client_done(t, c, 1, 0);
	/* closed cleanly: SSL_free() of a connection that was not takes
	 * its TLS 1.2 session for a bad one (core/io.c shuts down too) */
	(void)SSL_shutdown(c);
	SSL_free(c);
}

/* Is a session offered under key, the wall clock step_s ahead of the
 * boot clock and the boot clock age_s on? */
static int
offered_at(struct tls_ctx *t, const char *key, int64_t step_s,
    int64_t age_s)
{
	SSL *c = tls_client_new(t);
	int offered;

	time_step = step_s;
	suspended_s = age_s;
	tls_client_resume(t, c, key);
	offered = SSL_get_session(c) != NULL;
	SSL_free(c);
	time_step = suspended_s = 0;
	return offered;
}

static void
test_lifetime_on_boot_clock(void **state)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL_CTX *old = sctx;
	int v;

	(void)state;
	assert_non_null(t);
	for (v = 3; v >= 2; v--) {
		/* valid for a week: a day's step leaves it valid on the
		 * policy clock, which follows the wall clock ahead */
		sctx = server_ctx_for(7 * 86400);
		SSL_CTX_set_timeout(sctx, 100);	/* ticket_lifetime */
		if (v == 2)
			assert_int_equal(SSL_CTX_set_max_proto_version(sctx,
			    TLS1_2_VERSION), 1);
		/* set back a day, 200 s on: its lifetime is over */
		cached(t, "k8");
		if (offered_at(t, "k8", -86400, 200))
			fail_msg("TLS 1.%d: a session 200 s old (lifetime "
			    "100 s) was offered after the wall clock was set "
			    "back a day", v);
		/* the wall clock a day ahead, 10 s on: still offered */
		cached(t, "k9");
		if (!offered_at(t, "k9", 86400, 10))
			fail_msg("TLS 1.%d: a session 10 s old was not offered "
			    "after the wall clock stepped ahead a day", v);
		/* neither: 90 s on offered, 110 s on not */
		cached(t, "k10");
		assert_true(offered_at(t, "k10", 0, 90));
		assert_false(offered_at(t, "k10", 0, 110));
		SSL_CTX_free(sctx);
	}
	sctx = old;
	tls_ctx_free(t);
}

/* A handshake that was not proven (it broke, or its check failed) after
 * a proven one: what the key held is forgotten, as it may be what led
 * there (a session the server chokes on would break every later
 * handshake that offers it). */
static void
test_unproven_forgets(void **state)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL *c;

	(void)state;
	assert_non_null(t);
	c = tls_client_new(t);
	tls_client_resume(t, c, "k3");
	assert_int_equal(handshake(c), 0);
	tls_client_done(t, c, 1, 0);
	SSL_free(c);
	/* offered, and the connection broke before the server answered */
	c = tls_client_new(t);
	tls_client_resume(t, c, "k3");
	assert_non_null(SSL_get_session(c));
	tls_client_done(t, c, 0, 0);
	SSL_free(c);
	c = tls_client_new(t);
	tls_client_resume(t, c, "k3");
	assert_null(SSL_get_session(c));	/* nothing offered */
	assert_int_equal(handshake(c), 0);
	SSL_free(c);
	tls_ctx_free(t);
}

/* Begun under the old configuration, done after a reload: the new
 * context's cache gets nothing of it. */
static void
test_straddling_reload_not_cached(void **state)
{
	char err[256];
	struct tls_ctx *t1 = tls_ctx_new(cfg, err, sizeof(err));
	struct tls_ctx *t2 = tls_ctx_new(cfg, err, sizeof(err));
	SSL *c, *c2;

	(void)state;
	assert_non_null(t1);
	assert_non_null(t2);
	c = tls_client_new(t1);
	tls_client_resume(t1, c, "k2");
	assert_int_equal(handshake(c), 0);
	/* the reload: the session's environment now points at t2 */
	tls_client_done(t2, c, 1, 0);
	SSL_free(c);
	c2 = tls_client_new(t2);
	tls_client_resume(t2, c2, "k2");
	assert_null(SSL_get_session(c2));
	SSL_free(c2);
	tls_ctx_free(t1);
	tls_ctx_free(t2);
}

/*
 * A TLS 1.2 server that asks for a renegotiation after the handshake
 * does not get one: a new handshake could bring a certificate that the
 * check made after the first one (policy_tls_check) never sees.  Red
 * before: the client renegotiated (OpenSSL's default).
 */
static void
test_no_renegotiation(void **state)
{
	char err[256], buf[16];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL_CTX *old = sctx;
	SSL *c, *s;
	int i;

	(void)state;
	assert_non_null(t);
	sctx = server_ctx();
	assert_int_equal(SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION),
	    1);
	c = tls_client_new(t);
	s = joined(c);
	assert_int_equal(SSL_version(c), TLS1_2_VERSION);
	/* the server's HelloRequest, and whatever follows */
	assert_int_equal(SSL_renegotiate(s), 1);
	(void)SSL_do_handshake(s);
	for (i = 0; i < 10; i++) {
		(void)SSL_read(c, buf, sizeof(buf));
		(void)SSL_do_handshake(s);
		(void)SSL_read(s, buf, sizeof(buf));
	}
	assert_int_equal(SSL_CTX_sess_connect_renegotiate(SSL_get_SSL_CTX(c)),
	    0);
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(sctx);
	sctx = old;
	tls_ctx_free(t);
}

/* The heap's growth over n handshakes to sctx, each under a key of its
 * own, their sessions kept in t's cache when it takes them. */
static size_t
keys_growth(struct tls_ctx *t, int n)
{
	struct mallinfo2 m0, m1;
	char key[32];
	SSL *c;
	int i;

	pair_size = 1024 * 1024;	/* the tickets and chain in one go */
	m0 = mallinfo2();
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		c = tls_client_new(t);
		tls_client_resume(t, c, key);
		assert_int_equal(handshake(c), 0);
		tls_client_done(t, c, 1, 0);
		SSL_free(c);
	}
	m1 = mallinfo2();
	pair_size = 0;
	return m1.uordblks - m0.uordblks;
}

/* A server's tickets carry what it likes (up to 64 KB each in TLS 1.2,
 * 128 KB in 1.3): a hostile MX that issues large ones to proven
 * handshakes under many keys (an MX host name per domain of its own)
 * must not make the cache hold its tickets by the hundred megabytes. */
static unsigned char big_appdata[60000];

static int
big_ticket_cb(SSL *s, void *arg)
{
	(void)arg;
	return SSL_SESSION_set1_ticket_appdata(SSL_get_session(s),
	    big_appdata, sizeof(big_appdata));
}

static void
test_large_tickets_bounded(void **state)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL_CTX *old = sctx;
	size_t growth;

	(void)state;
	if (!heap_measurable()) {
		tls_ctx_free(t);
		skip();
	}
	assert_non_null(t);
	sctx = server_ctx();
	SSL_CTX_set_num_tickets(sctx, 4);
	SSL_CTX_set_session_ticket_cb(sctx, big_ticket_cb, NULL, NULL);
	growth = keys_growth(t, 200);
	print_message("cache growth %zu KB\n", growth / 1024);
	/* 200 keys, 4 tickets of 60 KB each: 48 MB when they were kept */
	assert_true(growth < 8u * 1024 * 1024);
	SSL_CTX_free(sctx);
	sctx = old;
	tls_ctx_free(t);
}

/* The growth of the cache (bytes) after handshakes with 100 keys to a
 * server whose chain has ncerts certificates besides its leaf. */
static size_t
chain_growth(int ncerts)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL_CTX *old = sctx;
	size_t growth;
	EVP_PKEY *k;
	X509 *x;
	int i;

	assert_non_null(t);
	sctx = server_ctx();
	assert_non_null(k = EVP_EC_gen("P-256"));
	for (i = 0; i < ncerts; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%0*d.chain.test", 50, i);
		x = test_cert(k, name, NULL, NULL, NULL, -60, 3600, 0);
		assert_int_equal(SSL_CTX_add_extra_chain_cert(sctx, x), 1);
	}
	EVP_PKEY_free(k);
	growth = keys_growth(t, 100);
	SSL_CTX_free(sctx);
	sctx = old;
	tls_ctx_free(t);
	print_message("%d certificates: cache growth %zu KB\n", ncerts,
	    growth / 1024);
	return growth;
}

/* A server's certificate chain is as long and as large as it likes
 * (OpenSSL takes up to 100 KB), and every cached session holds it,
 * parsed: sessions whose chain has more than RESUME_CHAIN_CERTS (10)
 * certificates or RESUME_CHAIN_MAX (16 KB) are not kept. */
static void
test_large_chain_bounded(void **state)
{
	(void)state;
	if (!heap_measurable())
		skip();
	/* a chain of 3: kept (the cache grows) */
	assert_true(chain_growth(2) > 500u * 1024);
	/* 12 small certificates (~5 KB), 60 (~23 KB): about 27 MB kept for
	 * 60 when they were */
	assert_true(chain_growth(12) < 1024u * 1024);
	assert_true(chain_growth(60) < 1024u * 1024);
}

/* The end of a kept_with_*() case: c's handshake, under key, counted as
 * proven and closed; is its session offered to the next connection under
 * key?  Frees c, the server context (sctx, old put back) and t. */
static int
proven_then_offered(struct tls_ctx *t, SSL *c, const char *key,
    SSL_CTX *old)
{
	int kept;

	tls_client_done(t, c, 1, 0);
	(void)SSL_shutdown(c);
	SSL_free(c);
	c = tls_client_new(t);
	tls_client_resume(t, c, key);
	kept = SSL_get_session(c) != NULL;
	SSL_free(c);
	SSL_CTX_free(sctx);
	sctx = old;
	tls_ctx_free(t);
	return kept;
}

/* Is the session of a proven handshake with a server whose chain has
 * ncerts certificates besides its leaf, each with a comment of pad
 * octets, offered again? */
static int
kept_with_chain(int ncerts, size_t pad)
{
	char err[256], *comment;
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL_CTX *old = sctx;
	X509_EXTENSION *ext;
	EVP_PKEY *k;
	X509 *x;
	SSL *c;
	int i;

	assert_non_null(t);
	assert_non_null(comment = malloc(pad + 1));
	memset(comment, 'x', pad);
	comment[pad] = '\0';
	sctx = server_ctx();
	assert_non_null(k = EVP_EC_gen("P-256"));
	for (i = 0; i < ncerts; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%d.chain.test", i);
		x = test_cert(k, name, NULL, NULL, NULL, -60, 3600, 0);
		assert_non_null(x);
		if (pad > 0) {
			ext = X509V3_EXT_conf_nid(NULL, NULL,
			    NID_netscape_comment, comment);
			assert_non_null(ext);
			assert_int_equal(X509_add_ext(x, ext, -1), 1);
			X509_EXTENSION_free(ext);
			assert_true(X509_sign(x, k, EVP_sha256()) > 0);
		}
		assert_int_equal(SSL_CTX_add_extra_chain_cert(sctx, x), 1);
	}
	EVP_PKEY_free(k);
	free(comment);
	c = tls_client_new(t);
	tls_client_resume(t, c, "kc");
	assert_int_equal(handshake(c), 0);
	return proven_then_offered(t, c, "kc", old);
}

/*
 * The chain bounds to the certificate, and in bytes: a leaf and 9 more
 * (RESUME_CHAIN_CERTS, 10) kept, a leaf and 10 more not; 8 certificates
 * of some 2.3 KB each (about 19 KB, over RESUME_CHAIN_MAX's 16 KB) not,
 * 6 of them (about 14 KB) kept.  Red before (either bound raised): the
 * session of the longer or larger chain offered.
 */
static void
test_chain_bounds_exact(void **state)
{
	(void)state;
	assert_true(kept_with_chain(9, 0));
	if (kept_with_chain(10, 0))
		fail_msg("a chain of 11 certificates was kept");
	assert_true(kept_with_chain(6, 2000));
	if (kept_with_chain(8, 2000))
		fail_msg("a chain of some 19 KB was kept");
}

/* the application data the server puts in its tickets (ticket_cb()) */
static size_t ticket_appdata;

static int
ticket_cb(SSL *s, void *arg)
{
	(void)arg;
	return SSL_SESSION_set1_ticket_appdata(SSL_get_session(s),
	    big_appdata, ticket_appdata);
}

/* Is the session of a proven handshake, whose tickets carry appdata
 * octets of the server's, offered again?  The ticket's length in *len. */
static int
kept_with_ticket(size_t appdata, size_t *len)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL_CTX *old = sctx;
	const unsigned char *tick;
	SSL *c;

	assert_non_null(t);
	sctx = server_ctx();
	ticket_appdata = appdata;
	SSL_CTX_set_session_ticket_cb(sctx, ticket_cb, NULL, NULL);
	pair_size = 1024 * 1024;	/* the tickets in one go */
	c = tls_client_new(t);
	tls_client_resume(t, c, "kt");
	assert_int_equal(handshake(c), 0);
	pair_size = 0;
	*len = 0;
	SSL_SESSION_get0_ticket(SSL_get_session(c), &tick, len);
	return proven_then_offered(t, c, "kt", old);
}

/*
 * The ticket bound (RESUME_TICKET_MAX, 8 KB) itself: a ticket of some
 * 5 KB kept, one of some 10 KB not.  test_large_tickets_bounded's 60 KB
 * tickets are over any bound near it, and it skips where the heap cannot
 * be measured.  Red before (the bound doubled): the 10 KB ticket's
 * session offered.
 */
static void
test_ticket_bound_exact(void **state)
{
	size_t len;

	(void)state;
	assert_true(kept_with_ticket(5000, &len));
	assert_true(len < 8 * 1024);
	if (kept_with_ticket(10000, &len))
		fail_msg("a ticket of %zu octets was kept", len);
	assert_true(len > 8 * 1024 && len < 16 * 1024);
}

/*
 * A full handshake whose check failed (tls_client_done() told unproven),
 * the server's tickets read: none of its sessions is kept, nothing is
 * offered under its key.  test_unproven_forgets's unproven connection
 * had no handshake, whose offered session went for not being resumed.
 * Red before (tls_client_done() without its test of proven): the failed
 * handshake's session offered, and resumed without a full check.
 */
static void
test_unproven_handshake_not_kept(void **state)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL *c;

	(void)state;
	assert_non_null(t);
	c = tls_client_new(t);
	tls_client_resume(t, c, "k11");
	assert_int_equal(handshake(c), 0);
	tls_client_done(t, c, 0, 0);
	(void)SSL_shutdown(c);
	SSL_free(c);
	c = tls_client_new(t);
	tls_client_resume(t, c, "k11");
	if (SSL_get_session(c) != NULL)
		fail_msg("the session of an unproven handshake was offered");
	SSL_free(c);
	tls_ctx_free(t);
}

/*
 * TLS 1.3 tickets that come after the handshake was proven (the server
 * sends them after its Finished, the client reads them with the first
 * reply) carry the proof's end too: the chain that verified ends 30
 * minutes on, and past that the late ticket's session is not offered, as
 * one read before tls_client_done() (test_chain_expired_not_offered).
 * Red before (the proven connection's not_after not kept for its late
 * tickets): offered, no end.
 */
static void
test_late_ticket_not_after(void **state)
{
	char err[256], buf[16];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL *c, *s;
	int i;

	(void)state;
	assert_non_null(t);
	c = tls_client_new(t);
	tls_client_resume(t, c, "k12");
	s = joined(c);
	tls_client_done(t, c, 1, clock_now() + 1800);
	for (i = 0; i < 4; i++) {
		(void)SSL_read(c, buf, sizeof(buf));
		(void)SSL_read(s, buf, sizeof(buf));
	}
	SSL_free(s);
	(void)SSL_shutdown(c);
	SSL_free(c);
	time_step = 1700;
	clock_anchor();
	c = tls_client_new(t);
	tls_client_resume(t, c, "k12");
	assert_non_null(SSL_get_session(c));
	SSL_free(c);
	time_step = 1900;
	clock_anchor();
	c = tls_client_new(t);
	tls_client_resume(t, c, "k12");
	if (SSL_get_session(c) != NULL)
		fail_msg("a late ticket's session was offered past its "
		    "proof's end");
	SSL_free(c);
	time_step = 0;
	clock_anchor();
	tls_ctx_free(t);
}

/* Is a session offered under key with the policy clock at the second
 * at?  The clock is set and read again until no second boundary fell in
 * between. */
static int
offered_at_second(struct tls_ctx *t, const char *key, int64_t at)
{
	int tries, offered = 0;
	SSL *c;

	for (tries = 0; tries < 10; tries++) {
		time_step = at - (int64_t)__real_time(NULL);
		clock_anchor();
		c = tls_client_new(t);
		tls_client_resume(t, c, key);
		offered = SSL_get_session(c) != NULL;
		SSL_free(c);
		if (clock_now() == at)
			break;
	}
	time_step = 0;
	clock_anchor();
	if (tries == 10)
		fail_msg("the policy clock could not be held at %lld",
		    (long long)at);
	return offered;
}

/*
 * A proof ends at the very second of its chain's notAfter, as OpenSSL
 * judges (expired once notAfter is not after now): its session is
 * offered the second before, not at it.  Red before (peer_expired()
 * taking now > not_after): offered at the chain's notAfter.
 */
static void
test_proof_end_exact(void **state)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	int64_t end = clock_now() + 1800;
	SSL *c;

	(void)state;
	assert_non_null(t);
	c = tls_client_new(t);
	tls_client_resume(t, c, "k13");
	assert_int_equal(handshake(c), 0);
	tls_client_done(t, c, 1, end);
	(void)SSL_shutdown(c);
	SSL_free(c);
	assert_true(offered_at_second(t, "k13", end - 1));
	if (offered_at_second(t, "k13", end))
		fail_msg("a session was offered at its proof's end");
	tls_ctx_free(t);
}

/*
 * A session's lifetime ends to the second on the boot clock: the boot
 * clock held still, a session of a 100 s lifetime is offered 99 s on and
 * not 100 s on.  Red before (session_live() taking age <= life): offered
 * at 100 s.
 */
static void
test_lifetime_end_exact(void **state)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL_CTX *old = sctx;
	struct timespec ts;
	int before, at;

	(void)state;
	assert_non_null(t);
	sctx = server_ctx();
	SSL_CTX_set_timeout(sctx, 100);	/* ticket_lifetime */
	assert_int_equal(__real_clock_gettime(CLOCK_BOOTTIME, &ts), 0);
	boot_frozen_ms = (uint64_t)ts.tv_sec * 1000 + 500;
	cached(t, "k14");
	before = offered_at(t, "k14", 0, 99);
	at = offered_at(t, "k14", 0, 100);
	boot_frozen_ms = 0;
	SSL_CTX_free(sctx);
	sctx = old;
	tls_ctx_free(t);
	assert_true(before);
	if (at)
		fail_msg("a session of a 100 s lifetime was offered 100 s on");
}

/*
 * One key keeps its newest RESUME_DEPTH (4) sessions: a handshake whose
 * server issues eight tickets leaves four, the newest offered and
 * resumed, and another key's session untouched.  Red before
 * (list_push() dropping the oldest only past the depth): the fifth
 * written past the list (a crash, or under ASan a buffer overflow).
 */
static void
test_depth_bounded(void **state)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL_CTX *old = sctx;
	SSL *c;

	(void)state;
	assert_non_null(t);
	cached(t, "k16");
	sctx = server_ctx();
	assert_int_equal(SSL_CTX_set_num_tickets(sctx, 8), 1);
	cached(t, "k17");
	c = tls_client_new(t);
	tls_client_resume(t, c, "k17");
	assert_non_null(SSL_get_session(c));
	assert_int_equal(handshake(c), 1);
	tls_client_done(t, c, 1, 0);
	SSL_free(c);
	SSL_CTX_free(sctx);
	sctx = old;
	c = tls_client_new(t);
	tls_client_resume(t, c, "k16");
	assert_non_null(SSL_get_session(c));
	assert_int_equal(handshake(c), 1);
	SSL_free(c);
	tls_ctx_free(t);
}

/*
 * tls_min_version as the client context takes it: each of the four values
 * the configuration allows is that version, never a lower one (TLSv1.3
 * taken for 1.2 lets a server, or an attacker on the path, downgrade
 * what the administrator ruled out; TLSv1 taken for no minimum, SSL 3).
 * Red before (TLSv1.3 mapped to TLS 1.2, TLSv1 to 0): the lower version.
 */
static void
test_min_version_mapping(void **state)
{
	static const struct {
		const char	*name;
		int		 version;
	} m[] = {
		{ "TLSv1", TLS1_VERSION },
		{ "TLSv1.1", TLS1_1_VERSION },
		{ "TLSv1.2", TLS1_2_VERSION },
		{ "TLSv1.3", TLS1_3_VERSION },
	};
	char err[256], *saved = cfg->tls_min_version;
	struct tls_ctx *t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		cfg->tls_min_version = (char *)m[i].name;
		t = tls_ctx_new(cfg, err, sizeof(err));
		cfg->tls_min_version = saved;
		assert_non_null(t);
		if (tls_client_min_version(t) != m[i].version)
			fail_msg("tls_min_version %s: 0x%x, want 0x%x",
			    m[i].name, tls_client_min_version(t),
			    m[i].version);
		tls_ctx_free(t);
	}
}

/*
 * A TLS 1.2 server that issues no tickets (session IDs only) gives no
 * ticket lifetime: the session's own timeout bounds it, and it is
 * offered.  Red before (session_live() taking a lifetime hint of 0
 * for the lifetime): never offered, every connection to such a server a
 * full handshake.
 */
static void
test_session_id_offered(void **state)
{
	char err[256];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	SSL_CTX *old = sctx;
	SSL *c;

	(void)state;
	assert_non_null(t);
	sctx = server_ctx();
	assert_int_equal(SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION),
	    1);
	SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
	cached(t, "k19");
	c = tls_client_new(t);
	tls_client_resume(t, c, "k19");
	if (SSL_get_session(c) == NULL)
		fail_msg("a TLS 1.2 session without a ticket was not offered");
	assert_int_equal(SSL_SESSION_get_ticket_lifetime_hint(
	    SSL_get_session(c)), 0);
	SSL_free(c);
	SSL_CTX_free(sctx);
	sctx = old;
	tls_ctx_free(t);
}

/* tls.c's key_hash(): FNV-1a over the key, modulo RESUME_SLOTS (1024) */
static unsigned
slot_of(const char *k)
{
	unsigned h = 2166136261u;

	while (*k)
		h = (h ^ (unsigned char)*k++) * 16777619u;
	return h % 1024;
}

/*
 * Two keys that share a slot of the cache: a session kept under one is
 * never offered under the other (the key is the check the session
 * passed, the MX host and the verdict's identity), and asking for the
 * second leaves it to the first.  Red before (tls_client_resume()
 * without its comparison of the slot's key): the first key's session
 * offered for the second.
 */
static void
test_other_key_same_slot(void **state)
{
	char err[256], b[32];
	struct tls_ctx *t = tls_ctx_new(cfg, err, sizeof(err));
	const char *a = "mx.a.test|verify|00";
	SSL *c;
	int i;

	(void)state;
	assert_non_null(t);
	for (i = 0; i < 1000000; i++) {
		snprintf(b, sizeof(b), "mx.b.test|dane|%d", i);
		if (slot_of(b) == slot_of(a))
			break;
	}
	assert_int_equal(slot_of(b), slot_of(a));
	cached(t, a);
	c = tls_client_new(t);
	tls_client_resume(t, c, b);
	if (SSL_get_session(c) != NULL)
		fail_msg("the session of %s was offered for %s", a, b);
	SSL_free(c);
	c = tls_client_new(t);
	tls_client_resume(t, c, a);
	assert_non_null(SSL_get_session(c));
	SSL_free(c);
	tls_ctx_free(t);
}

/*
 * A NULL-encryption suite is never offered, whatever tls_ciphers says
 * (here every suite OpenSSL has, at security level 0): a server that
 * prefers one gets the real cipher it also has.  Red before: the client
 * offered ECDHE-ECDSA-NULL-SHA, the server took it, and every level that
 * requires TLS took a session that encrypts nothing for TLS.
 */
static void
test_null_cipher_never_offered(void **state)
{
	char err[256], *saved = cfg->tls_ciphers;
	SSL_CTX *own = sctx;
	struct tls_ctx *t;
	const SSL_CIPHER *cur;
	STACK_OF(SSL_CIPHER) *sk;
	SSL *c, *s;
	int i;

	(void)state;
	cfg->tls_ciphers = (char *)"ALL:COMPLEMENTOFALL:@SECLEVEL=0";
	t = tls_ctx_new(cfg, err, sizeof(err));
	cfg->tls_ciphers = saved;
	assert_non_null(t);
	c = tls_client_new(t);
	sk = SSL_get1_supported_ciphers(c);
	assert_non_null(sk);
	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++)
		if (SSL_CIPHER_get_cipher_nid(sk_SSL_CIPHER_value(sk, i)) ==
		    NID_undef)
			fail_msg("%s offered",
			    SSL_CIPHER_get_name(sk_SSL_CIPHER_value(sk, i)));
	sk_SSL_CIPHER_free(sk);
	/* a TLS 1.2 server that picks NULL first when it is offered */
	sctx = server_ctx();
	SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);
	SSL_CTX_set_options(sctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	assert_int_equal(SSL_CTX_set_cipher_list(sctx, "ECDHE-ECDSA-NULL-SHA:"
	    "ECDHE-ECDSA-AES128-GCM-SHA256:@SECLEVEL=0"), 1);
	s = joined(c);
	cur = SSL_get_current_cipher(c);
	assert_non_null(cur);
	assert_int_not_equal(SSL_CIPHER_get_cipher_nid(cur), NID_undef);
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(sctx);
	sctx = own;
	/* a list of NULL suites only is no list: refused, never TLS 1.3
	 * alone without a word */
	cfg->tls_ciphers = (char *)"eNULL:@SECLEVEL=0";
	assert_null(tls_ctx_new(cfg, err, sizeof(err)));
	cfg->tls_ciphers = saved;
	assert_non_null(strstr(err, "tls_ciphers"));
	tls_ctx_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proven_kept),
		cmocka_unit_test(test_expired_peer_not_offered),
		cmocka_unit_test(test_chain_expired_not_offered),
		cmocka_unit_test(test_lifetime_on_boot_clock),
		cmocka_unit_test(test_straddling_reload_not_cached),
		cmocka_unit_test(test_unproven_forgets),
		cmocka_unit_test(test_unproven_handshake_not_kept),
		cmocka_unit_test(test_late_ticket_not_after),
		cmocka_unit_test(test_proof_end_exact),
		cmocka_unit_test(test_lifetime_end_exact),
		cmocka_unit_test(test_depth_bounded),
		cmocka_unit_test(test_min_version_mapping),
		cmocka_unit_test(test_session_id_offered),
		cmocka_unit_test(test_no_renegotiation),
		cmocka_unit_test(test_large_tickets_bounded),
		cmocka_unit_test(test_large_chain_bounded),
		cmocka_unit_test(test_chain_bounds_exact),
		cmocka_unit_test(test_ticket_bound_exact),
		cmocka_unit_test(test_other_key_same_slot),
		cmocka_unit_test(test_null_cipher_never_offered),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
