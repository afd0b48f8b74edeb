/*
 * test_policy_tls.c - policy_tls_prepare()/policy_tls_check() on real TLS
 * handshakes (in memory, BIO pairs) with certificates made here: valid for
 * the expected name, another name, expired, untrusted issuer, a wildcard
 * (only as the whole leftmost label), and an established session judged
 * against a second verdict with other names; validity judged on the
 * policy clock (time() wrapped: tests/unit/timestep.h).  Verdicts come from
 * policy_lookup() with tls_policy overrides (the resolver is unreachable,
 * so no MX is found and the override decides).
 */
// WRAP: time X509_VERIFY_PARAM_set1_host
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "policy/policy.h"
#include "policy/verdict_tls.h"
#include "tests/unit/testcert.h"
#include "tests/unit/timestep.h"
#include "tests/unit/lookupwait.h"

/* set: X509_VERIFY_PARAM_set1_host() fails as it does out of memory
 * (the names already there are gone, the new one is not taken) */
static int host_fail;
int __real_X509_VERIFY_PARAM_set1_host(X509_VERIFY_PARAM *, const char *,
    size_t);
int __wrap_X509_VERIFY_PARAM_set1_host(X509_VERIFY_PARAM *, const char *,
    size_t);

int
__wrap_X509_VERIFY_PARAM_set1_host(X509_VERIFY_PARAM *p, const char *name,
    size_t len)
{
	if (host_fail) {
		__real_X509_VERIFY_PARAM_set1_host(p, NULL, 0);
		return 0;
	}
	return __real_X509_VERIFY_PARAM_set1_host(p, name, len);
}


static char cafile[] = "/tmp/mxg-tls-ca-XXXXXX";
static EVP_PKEY *ca_key, *bad_ca_key;
static X509 *ca, *bad_ca;
static struct ev_loop *loop;
static struct policy *pol;
static X509 *extra_chain;	/* handshake(): sent after the leaf */


static struct policy_verdict *
verdict(const char *domain, const char *ip)
{
	return lookup_wait(loop, pol, domain, ip);
}

static int
setup(void **state)
{
	char err[256];
	struct config *cfg;
	FILE *f;
	int fd;
	const char *ovr[] = {
		"192.0.2.1 verify match=mx.good.test",
		"192.0.2.2 verify match=.wild.test",
		"192.0.2.3 may",
		"192.0.2.4 encrypt",
		"sec.test secure",
		"192.0.2.5 verify",
	};
	int i;

	log_init("test", 0, LOG_LVL_ERR);
	ca_key = EVP_EC_gen("P-256");
	bad_ca_key = EVP_EC_gen("P-256");
	/* valid on both clocks of test_validity_on_policy_clock */
	ca = test_cert(ca_key, "test CA", NULL, NULL, NULL, -86400 * 90,
	    86400 * 90, 1);
	bad_ca = test_cert(bad_ca_key, "other CA", NULL, NULL, NULL, -3600, 86400,
	    1);
	if ((fd = mkstemp(cafile)) == -1 || (f = fdopen(fd, "w")) == NULL)
		return -1;
	PEM_write_X509(f, ca);
	fclose(f);
	loop = ev_loop_new();
	cfg = config_load(NULL, err, sizeof(err));
	free(cfg->tls_ca_file);
	cfg->tls_ca_file = strdup(cafile);
	cfg->dns_servers.v = calloc(1, sizeof(char *));
	cfg->dns_servers.v[0] = strdup("127.0.0.1:9");	/* nothing there */
	cfg->dns_servers.n = 1;
	cfg->dns_timeout = 600;
	cfg->sts_enable = 0;
	cfg->tls_policy.v = calloc(6, sizeof(char *));
	for (i = 0; i < 6; i++)
		cfg->tls_policy.v[i] = strdup(ovr[i]);
	cfg->tls_policy.n = 6;
	pol = policy_new(loop, cfg, err, sizeof(err));
	config_free(cfg);
	return pol ? 0 : -1;
}

static int
teardown(void **state)
{
	policy_free(pol);
	ev_loop_free(loop);
	unlink(cafile);
	X509_free(ca);
	X509_free(bad_ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(bad_ca_key);
	return 0;
}

/* set: the client context completes every handshake with a callback
 * that accepts all, as the proxy's does (tlsproxy/tls.c) */
static int ctx_accepts_all;
/* set: the server and client agree on an anonymous suite (aNULL) */
static int anon;
/* set: handshake() moves the policy clock to time_step = hs_step_to
 * between policy_tls_prepare() and the handshake (a handshake that takes
 * its time: the server's flight may come tls_timeout after each of ours) */
static int hs_moves;
static int64_t hs_step_to;

static int
accept_all(int ok, X509_STORE_CTX *xc)
{
	return 1;
}

/* A server with this certificate; a client prepared by the verdict; an
 * in-memory handshake.  Returns the client SSL (caller frees). */
static SSL *
handshake(const struct policy_verdict *v, X509 *cert, EVP_PKEY *key)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *s, *c;
	BIO *b1, *b2;
	int i, cr = 0, sr = 0;

	/* the server uses whatever key it has (a weak one too): what the
	 * client accepts is the question */
	SSL_CTX_set_security_level(sctx, 0);
	assert_int_equal(SSL_CTX_use_certificate(sctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(sctx, key), 1);
	if (extra_chain != NULL)
		assert_int_equal(SSL_CTX_add1_chain_cert(sctx, extra_chain), 1);
	if (ctx_accepts_all)
		SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, accept_all);
	if (anon) {
		/* anonymous (EC)DH, TLS 1.2: no Certificate message */
		SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);
		SSL_CTX_set_dh_auto(sctx, 1);
		assert_int_equal(SSL_CTX_set_cipher_list(sctx,
		    "aNULL:@SECLEVEL=0"), 1);
		assert_int_equal(SSL_CTX_set_cipher_list(cctx,
		    "aNULL:@SECLEVEL=0"), 1);
	}
	s = SSL_new(sctx);
	c = SSL_new(cctx);
	/* the proxy's own context may demand verification: prepare must
	 * override that and judge afterwards */
	SSL_set_verify(c, SSL_VERIFY_PEER, NULL);
	assert_int_equal(policy_tls_prepare(v, c), 0);
	if (hs_moves) {
		time_step = hs_step_to;
		clock_anchor();
	}
	BIO_new_bio_pair(&b1, 0, &b2, 0);
	SSL_set_bio(c, b1, b1);
	SSL_set_bio(s, b2, b2);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (i = 0; i < 100 && (cr != 1 || sr != 1); i++) {
		if (cr != 1)
			cr = SSL_do_handshake(c);
		if (sr != 1)
			sr = SSL_do_handshake(s);
	}
	assert_int_equal(cr, 1);
	SSL_free(s);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);	/* c holds a reference */
	return c;
}

static void
expect(const struct policy_verdict *v, X509 *cert, EVP_PKEY *key, int rc,
    const char *reason)
{
	SSL *c = handshake(v, cert, key);
	struct tls_proof proof;
	struct tls_result res;

	if (policy_tls_check(v, c, &proof, &res) != rc)
		fail_msg("check: want %d, got reason %s (%s)", rc, res.reason,
		    res.detail);
	assert_string_equal(res.reason, reason);
	assert_int_equal(proof.tls, 1);
	SSL_free(c);
}

static void
test_verify_levels(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	X509 *other = test_cert(k, "other.test", "other.test", ca, ca_key,
	    -3600, 86400, 0);
	X509 *expired = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -86400 * 10, -86400, 0);
	X509 *ahead = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    86400, 86400 * 10, 0);
	X509 *untrusted = test_cert(k, "mx.good.test", "mx.good.test", bad_ca,
	    bad_ca_key, -3600, 86400, 0);
	X509 *wild = test_cert(k, "*.good.test", "*.good.test", ca, ca_key,
	    -3600, 86400, 0);
	X509 *partial = test_cert(k, "m*.good.test", "m*.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("any.test", "192.0.2.1");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v->source, "override");
	expect(v, good, k, 0, "success");
	expect(v, other, k, -1, "certificate-host-mismatch");
	expect(v, expired, k, -1, "certificate-expired");
	/* not yet valid is not expired (RFC 8460 section 4.3.2.2): one of
	 * the failures certificate-not-trusted covers, its detail saying
	 * which (the report's failure-reason-code) */
	expect(v, ahead, k, -1, "certificate-not-trusted");
	c = handshake(v, ahead, k);
	assert_int_equal(policy_tls_check(v, c, &proof, &res), -1);
	assert_string_equal(res.detail, "certificate is not yet valid");
	SSL_free(c);
	expect(v, untrusted, k, -1, "certificate-not-trusted");
	expect(v, wild, k, 0, "success");
	expect(v, partial, k, -1, "certificate-host-mismatch");
	policy_verdict_free(v);

	/* may and encrypt accept anything, but still say what they saw */
	v = verdict("any.test", "192.0.2.3");
	assert_int_equal(v->level, TLS_LEVEL_MAY);
	expect(v, untrusted, k, 0, "certificate-not-trusted");
	policy_verdict_free(v);
	v = verdict("any.test", "192.0.2.4");
	assert_int_equal(v->level, TLS_LEVEL_ENCRYPT);
	expect(v, other, k, 0, "certificate-not-trusted");
	policy_verdict_free(v);

	X509_free(good);
	X509_free(other);
	X509_free(expired);
	X509_free(ahead);
	X509_free(untrusted);
	X509_free(wild);
	X509_free(partial);
	EVP_PKEY_free(k);
}

/*
 * The handshake's own result names the first error, as a chain verified
 * afresh does.  Under the proxy's context callback, which accepts all,
 * OpenSSL went on past an error and kept the last one: an expired
 * certificate for another name was certificate-expired from the
 * handshake and certificate-host-mismatch afresh (a leg set up for
 * another recipient), so TLSRPT and the log named either.
 */
static void
test_first_error_named(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *both = test_cert(k, "other.test", "other.test", ca, ca_key,
	    -86400 * 10, -86400, 0);
	struct policy_verdict *v = verdict("any.test", "192.0.2.1");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	ctx_accepts_all = 1;
	expect(v, both, k, -1, "certificate-host-mismatch");
	c = handshake(may, both, k);
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	SSL_free(c);
	ctx_accepts_all = 0;
	policy_verdict_free(v);
	policy_verdict_free(may);
	X509_free(both);
	EVP_PKEY_free(k);
}

static void
test_secure_and_subdomain_match(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *dom = test_cert(k, "sec.test", "sec.test", ca, ca_key, -3600, 86400,
	    0);
	X509 *sub = test_cert(k, "mx.sec.test", "mx.sec.test", ca, ca_key, -3600,
	    86400, 0);
	X509 *no = test_cert(k, "sec.test.evil", "sec.test.evil", ca, ca_key,
	    -3600, 86400, 0);
	X509 *wsub = test_cert(k, "a.wild.test", "a.wild.test", ca, ca_key, -3600,
	    86400, 0);
	struct policy_verdict *v = verdict("sec.test", "198.51.100.1");

	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	expect(v, dom, k, 0, "success");
	expect(v, sub, k, 0, "success");
	expect(v, no, k, -1, "certificate-host-mismatch");
	policy_verdict_free(v);
	v = verdict("x.test", "192.0.2.2");		/* match=.wild.test */
	expect(v, wsub, k, 0, "success");
	expect(v, dom, k, -1, "certificate-host-mismatch");
	policy_verdict_free(v);
	X509_free(dom);
	X509_free(sub);
	X509_free(no);
	X509_free(wsub);
	EVP_PKEY_free(k);
}

/* A session set up for the first recipient's verdict, judged for a second
 * recipient domain whose verdict names another host. */
static void
test_second_verdict(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v1 = verdict("one.test", "192.0.2.1");
	struct policy_verdict *v2 = verdict("sec.test", "198.51.100.1");
	struct policy_verdict *v3 = verdict("any.test", "192.0.2.3");
	struct policy_verdict *v4 = verdict("two.test", "192.0.2.1");
	SSL *c = handshake(v1, good, k);
	struct tls_proof proof, none;
	struct tls_result res;

	assert_int_equal(policy_tls_check(v1, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(proof.failed, 0);
	assert_int_equal(policy_leg_fits(v1, &proof, c, &res), 0);
	/* same names, same store: the proof's identity fits */
	assert_int_equal(policy_leg_fits(v4, &proof, c, &res), 0);
	assert_int_equal(policy_leg_fits(v2, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	assert_int_equal(policy_leg_fits(v3, &proof, c, &res), 0);
	/* no TLS at all */
	assert_int_equal(policy_tls_check(v1, NULL, &none, &res), -1);
	assert_string_equal(res.reason, "starttls-not-supported");
	assert_int_equal(none.tls, 0);
	assert_int_equal(policy_leg_fits(v1, &none, NULL, &res), -1);
	assert_int_equal(policy_leg_fits(v3, &none, NULL, &res), 0);
	SSL_free(c);
	policy_verdict_free(v1);
	policy_verdict_free(v2);
	policy_verdict_free(v3);
	policy_verdict_free(v4);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * Certificate validity is judged on the policy clock (core/clock.h), not
 * the wall clock a step back would make an expired certificate valid on:
 * by the handshake's own verification and by a later check for another
 * verdict.  OpenSSL's clock cannot be moved here, so the policy clock is
 * anchored 30 days behind it, and each leaf is judged the other way from
 * what the real clock says.
 */
static void
test_validity_on_policy_clock(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = test_cert(k, "mx.good.test",
	    "mx.good.test,DNS:mx.sec.test", ca, ca_key, -86400 * 40,
	    -86400 * 10, 0);
	/* valid by the real clock, not yet 30 days ago */
	X509 *fresh = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400 * 10, 0);
	struct policy_verdict *v1 = verdict("one.test", "192.0.2.1");
	struct policy_verdict *v2 = verdict("sec.test", "198.51.100.1");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	time_step = -86400 * 30;
	clock_anchor();
	expect(v1, fresh, k, -1, "certificate-not-trusted");	/* not yet */
	c = handshake(v1, lapsed, k);
	assert_int_equal(policy_tls_check(v1, c, &proof, &res), 0);
	/* another identity: the chain verified afresh */
	assert_int_equal(policy_leg_fits(v2, &proof, c, &res), 0);
	time_step = 0;
	clock_anchor();
	assert_int_equal(policy_leg_fits(v2, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-expired");
	SSL_free(c);
	policy_verdict_free(v1);
	policy_verdict_free(v2);
	X509_free(lapsed);
	X509_free(fresh);
	EVP_PKEY_free(k);
}

/*
 * A leg's proof stands for a chain that was valid when it was verified:
 * once a certificate of that chain has expired on the policy clock, a
 * verdict with the very identity the leg was proven for (the same names
 * and store: a second recipient of the domain, the next session on a
 * parked leg) is judged as another verdict's would be, against the live
 * chain, and gets certificate-expired.  Before, the matching identity
 * let every later recipient cross the leg for as long as the connection
 * lasted (and a parked leg for up to upstream_reuse_time_limit), while a
 * verdict for other names, a new connection or a resumed session was
 * refused.  A fingerprint proof has no validity to lose.
 */
static void
test_proof_expires_with_chain(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = test_cert(k, "mx.good.test", "mx.good.test", ca,
	    ca_key, -86400 * 40, -86400 * 10, 0);
	struct policy_verdict *v1 = verdict("one.test", "192.0.2.1");
	struct policy_verdict *v4 = verdict("two.test", "192.0.2.1");
	struct policy_verdict *testing = policy_verdict_dup(v1);
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	/* what sts_testing() makes for H = mx.good.test */
	assert_non_null(testing);
	testing->source = "mta-sts";
	testing->level = TLS_LEVEL_MAY;
	testing->report_only = 1;
	time_step = -86400 * 30;
	clock_anchor();
	c = handshake(v1, lapsed, k);
	assert_int_equal(policy_tls_check(v1, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(policy_leg_fits(v1, &proof, c, &res), 0);
	assert_int_equal(policy_leg_fits(v4, &proof, c, &res), 0);
	/* the policy clock passes the leaf's notAfter */
	time_step = 0;
	clock_anchor();
	assert_int_equal(policy_leg_fits(v1, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-expired");
	assert_int_equal(policy_leg_fits(v4, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-expired");
	SSL_free(c);

	/* a testing policy's report of the same check: delivered, and
	 * reported as the expired chain it now is, not taken from the proof
	 * made before (report_check()) */
	time_step = -86400 * 30;
	clock_anchor();
	c = handshake(testing, lapsed, k);
	assert_int_equal(policy_tls_check(testing, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(res.report_failed, 0);
	time_step = 0;
	clock_anchor();
	assert_int_equal(policy_leg_fits(testing, &proof, c, &res), 0);
	if (!res.report_failed)
		fail_msg("the testing policy's report took the proof of a chain "
		    "expired since: %s (%s)", res.reason, res.detail);
	assert_string_equal(res.reason, "certificate-expired");
	SSL_free(c);

	/* a proof made on a full handshake after the clock moved back
	 * within the chain's validity fits again (nothing is remembered
	 * of the failure) */
	time_step = -86400 * 30;
	clock_anchor();
	c = handshake(v1, lapsed, k);
	assert_int_equal(policy_tls_check(v1, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(v4, &proof, c, &res), 0);
	time_step = 0;
	clock_anchor();
	SSL_free(c);
	policy_verdict_free(v1);
	policy_verdict_free(v4);
	policy_verdict_free(testing);
	X509_free(lapsed);
	EVP_PKEY_free(k);
}

/*
 * The policy clock passes the leaf's notAfter while the handshake runs:
 * policy_tls_prepare() set the verification time, and an attacker on the
 * path who holds the server's flight (tls_timeout after each client
 * flight, twice with a HelloRetryRequest) has the handshake's own
 * verification judge the chain at that earlier time.  The check after
 * the handshake judges it now: certificate-expired, as policy_leg_fits()
 * of the very proof says at once.  Before, policy_tls_check() took the
 * handshake's X509_V_OK, and the first recipient's mail crossed a leg
 * whose certificate had expired, with a proof whose not_after was past.
 */
static void
test_expired_during_handshake(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = test_cert(k, "mx.good.test", "mx.good.test", ca,
	    ca_key, -86400 * 40, -86400 * 10, 0);
	struct policy_verdict *v1 = verdict("one.test", "192.0.2.1");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;
	int rc;

	time_step = -86400 * 30;
	clock_anchor();
	hs_moves = 1;
	hs_step_to = 0;
	c = handshake(v1, lapsed, k);
	hs_moves = 0;
	rc = policy_tls_check(v1, c, &proof, &res);
	if (rc == 0)
		fail_msg("a chain expired on the policy clock passed the check "
		    "(%s: %s); proof.not_after %lld, now %lld", res.reason,
		    res.detail, (long long)proof.not_after,
		    (long long)clock_now());
	assert_string_equal(res.reason, "certificate-expired");
	assert_int_equal(proof.failed, 1);
	assert_int_not_equal(proof.level, TLS_LEVEL_VERIFY);
	SSL_free(c);

	/* the clock still within the chain's validity at the check: the
	 * handshake's own result stands */
	time_step = -86400 * 30;
	clock_anchor();
	c = handshake(v1, lapsed, k);
	assert_int_equal(policy_tls_check(v1, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	SSL_free(c);
	time_step = 0;
	clock_anchor();
	policy_verdict_free(v1);
	X509_free(lapsed);
	EVP_PKEY_free(k);
}

/*
 * The very second of the chain's notAfter: OpenSSL takes a certificate as
 * expired once its notAfter is not after now (X509_cmp_time()), and so
 * must a proof.  At notAfter the proof no longer stands and the live
 * chain, verified afresh, has expired: certificate-expired; a second
 * before, the proof fits.  (A proof_current() that kept the proof while
 * now <= notAfter passed this leg for one second more than a new
 * connection would have been.)  The policy clock is set to the second
 * wanted, and the check taken again if a second boundary fell inside.
 */
static int
leg_fits_at(const struct policy_verdict *v, const struct tls_proof *proof,
    SSL *c, int64_t at, struct tls_result *res)
{
	int tries, rc = 0;

	for (tries = 0; tries < 10; tries++) {
		time_step = at - (int64_t)__real_time(NULL);
		clock_anchor();
		if (clock_now() != at)
			continue;
		rc = policy_leg_fits(v, proof, c, res);
		if (clock_now() == at)
			return rc;
	}
	fail_msg("the policy clock could not be held at %lld", (long long)at);
	return rc;
}

static void
test_proof_ends_at_not_after(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = test_cert(k, "mx.good.test", "mx.good.test", ca,
	    ca_key, -86400 * 40, -86400 * 10, 0);
	struct policy_verdict *v1 = verdict("one.test", "192.0.2.1");
	struct policy_verdict *v4 = verdict("two.test", "192.0.2.1");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	time_step = -86400 * 30;
	clock_anchor();
	c = handshake(v1, lapsed, k);
	assert_int_equal(policy_tls_check(v1, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_true(proof.not_after > clock_now());
	assert_int_equal(leg_fits_at(v1, &proof, c, proof.not_after - 1,
	    &res), 0);
	assert_int_equal(leg_fits_at(v4, &proof, c, proof.not_after - 1,
	    &res), 0);
	if (leg_fits_at(v1, &proof, c, proof.not_after, &res) != -1)
		fail_msg("the proof stood at its chain's notAfter: %s (%s)",
		    res.reason, res.detail);
	assert_string_equal(res.reason, "certificate-expired");
	assert_int_equal(leg_fits_at(v4, &proof, c, proof.not_after, &res),
	    -1);
	assert_string_equal(res.reason, "certificate-expired");
	time_step = 0;
	clock_anchor();
	SSL_free(c);
	policy_verdict_free(v1);
	policy_verdict_free(v4);
	X509_free(lapsed);
	EVP_PKEY_free(k);
}

/*
 * A leg whose handshake was verified before its chain was valid (the
 * policy clock before the leaf's notBefore: certificate-not-trusted, the
 * proof failed), judged once the chain is valid: policy_leg_fits()
 * verifies the live chain from scratch, at the policy clock's now, and
 * it passes.  The handshake's own result, made for the same identity at
 * the time policy_tls_prepare() set, is never taken there: it judged
 * another time (a verify_peer() that took it for a fresh check refused
 * this leg for ever).
 */
static void
test_fresh_check_judges_now(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	/* valid from 20 days ago, for a day more */
	X509 *later = test_cert(k, "mx.good.test", "mx.good.test", ca,
	    ca_key, -86400 * 20, 86400, 0);
	struct policy_verdict *v1 = verdict("one.test", "192.0.2.1");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	time_step = -86400 * 30;
	clock_anchor();
	c = handshake(v1, later, k);
	assert_int_equal(policy_tls_check(v1, c, &proof, &res), -1);
	assert_string_equal(res.reason, "certificate-not-trusted");
	assert_int_equal(proof.failed, 1);
	time_step = 0;
	clock_anchor();
	if (policy_leg_fits(v1, &proof, c, &res) != 0)
		fail_msg("the live chain, valid now, was refused: %s (%s)",
		    res.reason, res.detail);
	assert_string_equal(res.reason, "success");
	SSL_free(c);
	policy_verdict_free(v1);
	X509_free(later);
	EVP_PKEY_free(k);
}

/*
 * Postfix's verify with no match= names H, and H is not known (the MX
 * lookup found no host owning the destination): a verify verdict with no
 * reference name, which no certificate meets (policy_verdict_unmeetable()).
 * Judged on a leg another recipient's check set up (a may leg, a leg
 * verified for other names) it is refused: the chain is verified afresh
 * and with no name to check it fails, certificate-host-mismatch.  (A
 * verify_peer() that verified with no name at all passed any chain of a
 * trusted CA for this recipient.)
 */
static void
test_no_name_never_fits(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("nameless.test", "192.0.2.5");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct policy_verdict *ver = verdict("one.test", "192.0.2.1");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	assert_int_equal(v->level, TLS_LEVEL_VERIFY);
	assert_non_null(v->tls);
	assert_int_equal(v->tls->nnames, 0);
	assert_int_equal(v->tls->nfp, 0);
	assert_true(policy_verdict_unmeetable(v));
	expect(v, good, k, -1, "certificate-host-mismatch");

	c = handshake(may, good, k);
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	if (policy_leg_fits(v, &proof, c, &res) != -1)
		fail_msg("a verify verdict with no name fitted a may leg: %s "
		    "(%s)", res.reason, res.detail);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	SSL_free(c);

	c = handshake(ver, good, k);
	assert_int_equal(policy_tls_check(ver, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	SSL_free(c);

	policy_verdict_free(v);
	policy_verdict_free(may);
	policy_verdict_free(ver);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * A leg's proof of TLS without its live connection (ssl NULL: the leg's
 * io is gone, leg_fits()) fits no verdict that demands TLS, whatever the
 * proof says: nothing could be checked, and nothing can cross.  (A
 * policy_leg_fits() that looked at the proof alone let an encrypt
 * recipient through, and verified a NULL SSL for a verify one.)
 */
static void
test_no_connection_no_fit(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *ver = verdict("one.test", "192.0.2.1");
	struct policy_verdict *enc = verdict("enc.test", "192.0.2.4");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	assert_int_equal(enc->level, TLS_LEVEL_ENCRYPT);
	c = handshake(ver, good, k);
	assert_int_equal(policy_tls_check(ver, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(proof.tls, 1);
	SSL_free(c);
	if (policy_leg_fits(enc, &proof, NULL, &res) != -1)
		fail_msg("encrypt fitted a proof without its connection: %s",
		    res.reason);
	assert_string_equal(res.reason, "starttls-not-supported");
	assert_int_equal(policy_leg_fits(ver, &proof, NULL, &res), -1);
	assert_string_equal(res.reason, "starttls-not-supported");
	/* may needs no TLS: it goes */
	assert_int_equal(policy_leg_fits(may, &proof, NULL, &res), 0);
	policy_verdict_free(ver);
	policy_verdict_free(enc);
	policy_verdict_free(may);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * A verdict at the address of the one the SSL object was prepared for,
 * but for other names (what happens when the first verdict is freed and
 * malloc hands its memory to the next one): the handshake's own
 * verification must not be taken for it.  Identity is compared by value.
 */
static void
test_check_not_by_address(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v1 = verdict("one.test", "192.0.2.1");
	struct policy_verdict *v2 = verdict("sec.test", "198.51.100.1");
	struct policy_verdict saved = *v1;
	SSL *c = handshake(v1, good, k);
	struct tls_proof proof;
	struct tls_result res;

	/* v1's memory now holds sec.test's verdict */
	*v1 = *v2;
	assert_int_equal(policy_tls_check(v1, c, &proof, &res), -1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	assert_int_equal(proof.failed, 1);
	assert_int_not_equal(proof.level, TLS_LEVEL_VERIFY);
	*v1 = saved;
	SSL_free(c);
	policy_verdict_free(v1);
	policy_verdict_free(v2);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * MTA-STS testing and enforce domains share an MX host; an attacker
 * presents a forged certificate.  The testing-mode mail goes (its check is
 * only reported), but the leg's proof says it failed: an enforce recipient
 * never fits it, and nothing of it may be parked or resumed.
 */
static void
test_report_only_never_proves(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *forged = test_cert(k, "mx.good.test", "mx.good.test", bad_ca,
	    bad_ca_key, -3600, 86400, 0);
	struct policy_verdict *enforce = verdict("one.test", "192.0.2.1");
	struct policy_verdict *testing = policy_verdict_dup(enforce);
	struct tls_proof proof;
	struct tls_result res;
	char k1[700], k2[700];
	SSL *c;

	assert_non_null(testing);
	testing->level = TLS_LEVEL_MAY;
	testing->report_only = 1;
	snprintf(testing->domain, sizeof(testing->domain), "testing.test");
	c = handshake(testing, forged, k);
	assert_int_equal(policy_tls_check(testing, c, &proof, &res), 0);
	assert_int_equal(res.report_failed, 1);
	assert_string_equal(res.reason, "certificate-not-trusted");
	assert_int_equal(proof.failed, 1);
	assert_int_equal(policy_leg_fits(enforce, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-not-trusted");
	/* a report-only verdict's resumption key is never the enforce one */
	assert_int_equal(policy_tls_session_key(testing, k1, sizeof(k1)), 0);
	assert_int_equal(policy_tls_session_key(enforce, k2, sizeof(k2)), 0);
	assert_string_not_equal(k1, k2);
	SSL_free(c);
	policy_verdict_free(testing);
	policy_verdict_free(enforce);
	X509_free(forged);
	EVP_PKEY_free(k);
}

/*
 * A chain the handshake's own verification refuses for a key below
 * OpenSSL's security level (an RSA-1024 leaf: EE_KEY_TOO_SMALL) must be
 * refused as well where the chain is verified afresh: a leg set up for a
 * may recipient, then judged for a verify recipient on the same MX (and
 * the report-only check).
 */
static void
test_weak_key_fresh(void **state)
{
	EVP_PKEY *k = EVP_RSA_gen(1024);
	X509 *weak = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *ver = verdict("one.test", "192.0.2.1");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct policy_verdict *testing = policy_verdict_dup(ver);
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	assert_non_null(weak);
	assert_non_null(testing);
	/* the first recipient's own handshake: refused */
	expect(ver, weak, k, -1, "certificate-not-trusted");
	/* a may leg, then a verify recipient on it */
	c = handshake(may, weak, k);
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(ver, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-not-trusted");
	/* MTA-STS testing on the same leg reports it */
	testing->level = TLS_LEVEL_MAY;
	testing->report_only = 1;
	assert_int_equal(policy_leg_fits(testing, &proof, c, &res), 0);
	assert_int_equal(res.report_failed, 1);
	SSL_free(c);
	policy_verdict_free(ver);
	policy_verdict_free(may);
	policy_verdict_free(testing);
	X509_free(weak);
	EVP_PKEY_free(k);
}

/*
 * fingerprint: Postfix's digests of the leaf, of the whole certificate
 * ("openssl x509 -fingerprint -sha256") or of its public key, the DER
 * SubjectPublicKeyInfo ("openssl x509 -pubkey | openssl pkey -pubin
 * -outform DER | openssl dgst -sha256", the digest of a TLSA 3 1 1
 * record).  Either matches; another key's does not.
 */
static void
test_fingerprint_digests(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
	X509 *leaf = test_cert(k, "mx.fp.test", "mx.fp.test", bad_ca,
	    bad_ca_key, -3600, 86400, 0);
	X509 *other = test_cert(k2, "mx.fp.test", "mx.fp.test", bad_ca,
	    bad_ca_key, -3600, 86400, 0);
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	unsigned char *der = NULL;
	unsigned int len = 0;
	int n;

	assert_non_null(v->tls);
	v->tls->nnames = 0;
	v->tls->nfp = 1;
	/* the certificate's digest */
	assert_int_equal(X509_digest(leaf, EVP_sha256(), v->tls->fp[0], &len),
	    1);
	expect(v, leaf, k, 0, "success");
	expect(v, other, k2, -1, "certificate-not-trusted");
	/* the public key's: the DER SubjectPublicKeyInfo */
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &der);
	assert_true(n > 0);
	assert_int_equal(EVP_Digest(der, (size_t)n, v->tls->fp[0], &len,
	    EVP_sha256(), NULL), 1);
	OPENSSL_free(der);
	expect(v, leaf, k, 0, "success");
	expect(v, other, k2, -1, "certificate-not-trusted");
	policy_verdict_free(v);
	X509_free(leaf);
	X509_free(other);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

/*
 * A leg proven for one set of fingerprints is no proof for another's: the
 * check's identity is its digests (verdict_identity()), so the next
 * recipient's verdict with another digest has the live chain checked
 * again, and gets a resumption key of its own.  Red before (the digests
 * left out of the identity): the leg fitted the other verdict, the leaf
 * matching none of its digests.
 */
static void
test_fingerprint_leg_fits(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
	X509 *leaf = test_cert(k, "mx.fp.test", "mx.fp.test", bad_ca,
	    bad_ca_key, -3600, 86400, 0);
	X509 *other = test_cert(k2, "mx.fp.test", "mx.fp.test", bad_ca,
	    bad_ca_key, -3600, 86400, 0);
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	struct policy_verdict *w = verdict("two.test", "192.0.2.1");
	struct tls_proof proof;
	struct tls_result res;
	char kv[256], kw[256];
	unsigned int len = 0;
	SSL *c;

	v->tls->nnames = 0;
	v->tls->nfp = 1;
	assert_int_equal(X509_digest(leaf, EVP_sha256(), v->tls->fp[0], &len),
	    1);
	w->tls->nnames = 0;
	w->tls->nfp = 1;
	assert_int_equal(X509_digest(other, EVP_sha256(), w->tls->fp[0],
	    &len), 1);
	c = handshake(v, leaf, k);
	assert_int_equal(policy_tls_check(v, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), 0);
	assert_int_equal(policy_leg_fits(w, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-not-trusted");
	assert_int_equal(policy_tls_session_key(v, kv, sizeof(kv)), 0);
	assert_int_equal(policy_tls_session_key(w, kw, sizeof(kw)), 0);
	assert_string_not_equal(kv, kw);
	SSL_free(c);
	policy_verdict_free(v);
	policy_verdict_free(w);
	X509_free(leaf);
	X509_free(other);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

/*
 * A leg proven through one CA store is no proof for a verdict of the same
 * names through another (a reload that took a CA out of tls_ca_file): the
 * store's generation is part of the check's identity, so the live chain
 * is verified again against the new store, which does not trust it.  Red
 * before (the generation left out of the identity): the leg fitted.
 */
static void
test_other_store_leg_fits(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	struct policy_verdict *w = policy_verdict_dup(v);
	SSL *c = handshake(v, good, k);
	struct tls_proof proof;
	struct tls_result res;

	assert_non_null(w);
	X509_STORE_free(w->tls->store);
	assert_non_null(w->tls->store = X509_STORE_new());
	w->tls->store_gen = v->tls->store_gen + 1;
	assert_int_equal(policy_tls_check(v, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), 0);
	assert_int_equal(policy_leg_fits(w, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-not-trusted");
	SSL_free(c);
	policy_verdict_free(v);
	policy_verdict_free(w);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * protocols= raises the lowest version the leg's handshake takes, never
 * lowers it below the global tls_min_version (the context's): ">=TLSv1"
 * on a context at TLS 1.2 keeps 1.2, ">=TLSv1.3" raises it to 1.3.  Red
 * before (the floor set whenever protocols= names one): TLS 1.0 allowed.
 */
static void
test_protocols_floor(void **state)
{
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	assert_non_null(v->tls);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION),
	    1);
	v->tls->min_proto = TLS1_VERSION;
	ssl = SSL_new(ctx);
	assert_int_equal(policy_tls_prepare(v, ssl), 0);
	assert_int_equal(SSL_get_min_proto_version(ssl), TLS1_2_VERSION);
	SSL_free(ssl);
	v->tls->min_proto = TLS1_3_VERSION;
	ssl = SSL_new(ctx);
	assert_int_equal(policy_tls_prepare(v, ssl), 0);
	assert_int_equal(SSL_get_min_proto_version(ssl), TLS1_3_VERSION);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	policy_verdict_free(v);
}

/*
 * policy_chain_not_after() of a chain whose end cannot be told is 1, a
 * proof that has already ended, never 0 (no end): no chain, an empty one,
 * a certificate whose notAfter does not parse, and one last in the chain
 * whose notAfter is the epoch; the earliest of two otherwise.  Red before
 * (the first two or the unparsed time returning 0, or min returned as
 * it is): 0.
 */
static void
test_chain_not_after_unknown(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *a = test_cert(k, "a.test", "a.test", ca, ca_key, -3600, 86400,
	    0);
	X509 *b = test_cert(k, "b.test", "b.test", ca, ca_key, -3600,
	    2 * 86400, 0);
	X509 *bad = test_cert(k, "c.test", "c.test", ca, ca_key, -3600, 86400,
	    0);
	X509 *epoch = test_cert(k, "d.test", "d.test", ca, ca_key, -3600,
	    86400, 0);
	STACK_OF(X509) *sk = sk_X509_new_null();
	struct tm tm;

	assert_non_null(sk);
	assert_int_equal(policy_chain_not_after(NULL), 1);
	assert_int_equal(policy_chain_not_after(sk), 1);
	assert_true(sk_X509_push(sk, b) > 0);
	assert_true(sk_X509_push(sk, a) > 0);
	memset(&tm, 0, sizeof(tm));
	assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(a), &tm), 1);
	assert_int_equal(policy_chain_not_after(sk), (int64_t)timegm(&tm));
	assert_int_equal(ASN1_STRING_set(X509_getm_notAfter(bad), "garbage",
	    7), 1);
	assert_true(sk_X509_push(sk, bad) > 0);
	assert_int_equal(policy_chain_not_after(sk), 1);
	(void)sk_X509_pop(sk);
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(epoch), 0));
	assert_true(sk_X509_push(sk, epoch) > 0);
	assert_int_equal(policy_chain_not_after(sk), 1);
	sk_X509_free(sk);
	X509_free(a);
	X509_free(b);
	X509_free(bad);
	X509_free(epoch);
	EVP_PKEY_free(k);
}

/*
 * A chain checked at the very second of its notAfter has expired, as
 * OpenSSL judges (expired once notAfter is not after now): the
 * handshake's own result, judged at the earlier time policy_tls_prepare()
 * set, is not taken then, and the chain verified afresh fails
 * certificate-expired; the second before, the handshake's result stands.
 * The clock is set for the check to the second wanted, and the handshake
 * made again if a second boundary fell inside.  Red before (the
 * handshake's result taken while now <= notAfter): success at notAfter.
 */
static int
check_at(const struct policy_verdict *v, X509 *cert, EVP_PKEY *key,
    int64_t at, struct tls_result *res)
{
	struct tls_proof proof;
	int tries, rc = 0;
	SSL *c;

	for (tries = 0; tries < 10; tries++) {
		time_step = at - 86400 - (int64_t)__real_time(NULL);
		clock_anchor();
		hs_moves = 1;
		hs_step_to = at - (int64_t)__real_time(NULL);
		c = handshake(v, cert, key);
		hs_moves = 0;
		rc = policy_tls_check(v, c, &proof, res);
		SSL_free(c);
		if (clock_now() == at)
			return rc;
	}
	fail_msg("the policy clock could not be held at %lld", (long long)at);
	return rc;
}

static void
test_check_at_not_after(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = test_cert(k, "mx.good.test", "mx.good.test", ca,
	    ca_key, -86400 * 40, -86400 * 10, 0);
	struct policy_verdict *v1 = verdict("one.test", "192.0.2.1");
	struct tls_result res;
	struct tm tm;
	int64_t na;

	memset(&tm, 0, sizeof(tm));
	assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(lapsed), &tm), 1);
	na = (int64_t)timegm(&tm);
	assert_int_equal(check_at(v1, lapsed, k, na - 1, &res), 0);
	assert_string_equal(res.reason, "success");
	if (check_at(v1, lapsed, k, na, &res) != -1)
		fail_msg("a chain passed at its notAfter: %s (%s)",
		    res.reason, res.detail);
	assert_string_equal(res.reason, "certificate-expired");
	time_step = 0;
	clock_anchor();
	policy_verdict_free(v1);
	X509_free(lapsed);
	EVP_PKEY_free(k);
}

/*
 * protocols= takes its own ends: a TLS 1.3 connection is within
 * ">=TLSv1.3" and "<=TLSv1.3", a TLS 1.2 one outside the first.  Red
 * before (the ends taken as outside, '>=' -> '>' or '<=' -> '<'):
 * validation-failure for the TLS 1.3 connection.
 */
static void
test_protocols_ends(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	v->tls->min_proto = TLS1_3_VERSION;
	expect(v, good, k, 0, "success");
	v->tls->min_proto = 0;
	v->tls->max_proto = TLS1_3_VERSION;
	expect(v, good, k, 0, "success");
	/* a TLS 1.2 connection ("<=TLSv1.2"), judged for ">=TLSv1.3" */
	v->tls->max_proto = TLS1_2_VERSION;
	c = handshake(v, good, k);
	assert_int_equal(SSL_version(c), TLS1_2_VERSION);
	assert_int_equal(policy_tls_check(v, c, &proof, &res), 0);
	v->tls->max_proto = 0;
	v->tls->min_proto = TLS1_3_VERSION;
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), -1);
	assert_string_equal(res.reason, "validation-failure");
	SSL_free(c);
	policy_verdict_free(v);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * A monitored encrypt verdict (the TLS history's) that also carries an
 * MTA-STS testing policy's check: on a reused leg enforce mode's view
 * passes (TLS), but the testing check fails (the certificate names
 * another host), and that failure is what the recipient's report must
 * say, as for the same verdict not monitored.  Red before (monitor_fits()
 * without its copy of a view that passed with report_failed): no report,
 * "success".
 */
static void
test_monitor_report_failed(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *other = test_cert(k, "other.test", "other.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	v->level = TLS_LEVEL_ENCRYPT;
	v->report_only = 1;
	v->source = "mta-sts";
	c = handshake(may, other, k);
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), 0);
	assert_int_equal(res.report_failed, 1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	policy_verdict_monitor(v);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), 0);
	assert_int_equal(res.would_defer, 0);
	assert_int_equal(res.report_failed, 1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	SSL_free(c);
	policy_verdict_free(v);
	policy_verdict_free(may);
	X509_free(other);
	EVP_PKEY_free(k);
}

/*
 * A deferring verdict is met by no handshake, however good: its check
 * fails with the verdict's own reason, and no proof of verification is
 * left, whatever the names and store it carries.  Red before
 * (policy_tls_check() without its test of TLS_LEVEL_DEFER): 0, a proof at
 * verify.
 */
static void
test_defer_never_checks(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c = handshake(v, good, k);

	assert_int_equal(policy_tls_check(v, c, &proof, &res), 0);
	v->level = TLS_LEVEL_DEFER;
	snprintf(v->reason, sizeof(v->reason), "dnssec-invalid");
	assert_int_equal(policy_tls_check(v, c, &proof, &res), -1);
	assert_string_equal(res.reason, "dnssec-invalid");
	assert_int_not_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), -1);
	SSL_free(c);
	policy_verdict_free(v);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * protocols= binds only the levels that require TLS: a may verdict whose
 * range starts at TLS 1.3 takes a TLS 1.2 leg, checked or reused (its
 * mail would go in cleartext otherwise), where an encrypt verdict of the
 * same range does not.  Red before (protocols_outside() judging may
 * too): validation-failure, the may recipient deferred.
 */
static void
test_protocols_may_unbound(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *tls12 = verdict("any.test", "192.0.2.3");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct policy_verdict *enc = verdict("enc.test", "192.0.2.4");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	assert_int_equal(may->level, TLS_LEVEL_MAY);
	assert_int_equal(enc->level, TLS_LEVEL_ENCRYPT);
	if (tls12->tls == NULL)
		assert_non_null(tls12->tls = calloc(1, sizeof(*tls12->tls)));
	if (may->tls == NULL)
		assert_non_null(may->tls = calloc(1, sizeof(*may->tls)));
	if (enc->tls == NULL)
		assert_non_null(enc->tls = calloc(1, sizeof(*enc->tls)));
	tls12->tls->max_proto = TLS1_2_VERSION;
	may->tls->min_proto = TLS1_3_VERSION;
	enc->tls->min_proto = TLS1_3_VERSION;
	c = handshake(tls12, good, k);
	assert_int_equal(SSL_version(c), TLS1_2_VERSION);
	assert_int_equal(policy_tls_check(tls12, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(may, &proof, c, &res), 0);
	assert_int_equal(policy_leg_fits(enc, &proof, c, &res), -1);
	assert_string_equal(res.reason, "validation-failure");
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	SSL_free(c);
	policy_verdict_free(tls12);
	policy_verdict_free(may);
	policy_verdict_free(enc);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * A none verdict asks for no TLS: a cleartext leg (no proof of TLS, no
 * connection) fits it, as it fits may, checked or reused.  Red with
 * policy_leg_fits() demanding TLS of every level but may: the
 * tls_policy none domain deferred, "starttls-not-supported".
 */
static void
test_none_fits_cleartext(void **state)
{
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct policy_verdict *none = policy_verdict_dup(may);
	struct tls_proof proof;
	struct tls_result res;

	assert_non_null(none);
	none->level = TLS_LEVEL_NONE;
	if (policy_tls_check(none, NULL, &proof, &res) != 0)
		fail_msg("a none verdict's check failed on a cleartext leg: "
		    "%s", res.reason);
	assert_int_equal(proof.tls, 0);
	if (policy_leg_fits(none, &proof, NULL, &res) != 0)
		fail_msg("a none verdict did not fit a cleartext leg: %s",
		    res.reason);
	assert_string_equal(res.reason, "success");
	assert_int_equal(policy_leg_fits(may, &proof, NULL, &res), 0);
	policy_verdict_free(may);
	policy_verdict_free(none);
}

/*
 * A deferring verdict fails a cleartext leg with its own reason (what the
 * MTA is told and TLSRPT reports), not as a server without STARTTLS.  Red
 * with policy_leg_fits() going on past its deferral: "dnssec-invalid" !=
 * "starttls-not-supported".
 */
static void
test_defer_cleartext_own_reason(void **state)
{
	struct policy_verdict *d = verdict("enc.test", "192.0.2.4");
	struct tls_proof proof;
	struct tls_result res;

	d->level = TLS_LEVEL_DEFER;
	snprintf(d->reason, sizeof(d->reason), "dnssec-invalid");
	assert_int_equal(policy_tls_check(d, NULL, &proof, &res), -1);
	assert_string_equal(res.reason, "dnssec-invalid");
	assert_int_equal(policy_leg_fits(d, &proof, NULL, &res), -1);
	assert_string_equal(res.reason, "dnssec-invalid");
	policy_verdict_free(d);
}

/*
 * An MTA-STS testing policy's domain whose mail goes in cleartext (its
 * verdict may, the server without STARTTLS): the mail goes, and the
 * testing check's failure is reported, starttls-not-supported.  Red with
 * report_check() not marking it: report_failed 0, nothing reported.
 */
static void
test_report_only_cleartext_reported(void **state)
{
	struct policy_verdict *v = verdict("any.test", "192.0.2.3");
	struct tls_proof proof;
	struct tls_result res;

	v->report_only = 1;
	v->source = "mta-sts";
	assert_int_equal(policy_tls_check(v, NULL, &proof, &res), 0);
	if (!res.report_failed)
		fail_msg("a testing policy's cleartext delivery was not "
		    "reported: %s", res.reason);
	assert_string_equal(res.reason, "starttls-not-supported");
	assert_int_equal(policy_leg_fits(v, &proof, NULL, &res), 0);
	assert_int_equal(res.report_failed, 1);
	assert_string_equal(res.reason, "starttls-not-supported");
	policy_verdict_free(v);
}

/*
 * A monitored verdict on a leg enforce mode would refuse: the mail goes,
 * would_defer is set, and the result says why enforce mode would refuse
 * (the reason the report and the log carry), on a cleartext leg and on a
 * TLS leg whose certificate names another host.  Red with monitor_fits()
 * not copying the failed view's result: "success".
 */
static void
test_monitor_fits_reason(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *other = test_cert(k, "other.test", "other.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *enc = verdict("enc.test", "192.0.2.4");
	struct policy_verdict *ver = verdict("one.test", "192.0.2.1");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	policy_verdict_monitor(enc);
	policy_verdict_monitor(ver);
	memset(&proof, 0, sizeof(proof));
	assert_int_equal(policy_leg_fits(enc, &proof, NULL, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_string_equal(res.reason, "starttls-not-supported");
	c = handshake(may, other, k);
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(ver, &proof, c, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	SSL_free(c);
	policy_verdict_free(enc);
	policy_verdict_free(ver);
	policy_verdict_free(may);
	X509_free(other);
	EVP_PKEY_free(k);
}

/*
 * protocols= has an upper end too: a TLS 1.3 leg another recipient's
 * check set up does not fit an encrypt verdict of "<=TLSv1.2" (the
 * ceiling on the SSL binds only the handshake made for it); a may verdict
 * of the same range takes it.  Red with protocols_outside() judging the
 * lower end only: the TLS 1.3 leg fitted.
 */
static void
test_protocols_ceiling_reused(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct policy_verdict *enc = verdict("enc.test", "192.0.2.4");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	if (may->tls == NULL)
		assert_non_null(may->tls = calloc(1, sizeof(*may->tls)));
	if (enc->tls == NULL)
		assert_non_null(enc->tls = calloc(1, sizeof(*enc->tls)));
	c = handshake(may, good, k);
	assert_int_equal(SSL_version(c), TLS1_3_VERSION);
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	enc->tls->max_proto = TLS1_2_VERSION;
	may->tls->max_proto = TLS1_2_VERSION;
	if (policy_leg_fits(enc, &proof, c, &res) != -1)
		fail_msg("a TLS 1.3 leg fitted an encrypt verdict of "
		    "<=TLSv1.2");
	assert_string_equal(res.reason, "validation-failure");
	assert_int_equal(policy_leg_fits(may, &proof, c, &res), 0);
	SSL_free(c);
	policy_verdict_free(may);
	policy_verdict_free(enc);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * A monitored verdict whose enforce mode would defer (its policy fetch
 * failed) demands no TLS check beyond may: a good handshake's check
 * passes with its proof not failed, so the leg may be parked and its
 * session kept (a resumption key); the would-defer is the recipient's,
 * from policy_leg_fits().  Red with enforce_view() taking the deferral
 * for a view to check: the proof failed, no resumption key.
 */
static void
test_monitor_defer_leg_kept(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("enc.test", "192.0.2.4");
	struct tls_proof proof;
	struct tls_result res;
	char key[512];
	SSL *c;

	v->level = TLS_LEVEL_DEFER;
	snprintf(v->reason, sizeof(v->reason), "sts-policy-fetch-error");
	policy_verdict_monitor(v);
	c = handshake(v, good, k);
	assert_int_equal(policy_tls_check(v, c, &proof, &res), 0);
	if (proof.failed)
		fail_msg("a monitored deferral failed the leg's proof: %s",
		    res.reason);
	assert_int_equal(proof.tls, 1);
	assert_int_equal(policy_tls_session_key(v, key, sizeof(key)), 0);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_string_equal(res.reason, "sts-policy-fetch-error");
	SSL_free(c);
	policy_verdict_free(v);
	X509_free(good);
	EVP_PKEY_free(k);
}

/* Resumption keys: none rather than a shorter one; other names, other
 * key. */
static void
test_session_keys(void **state)
{
	struct policy_verdict *v1 = verdict("one.test", "192.0.2.1");
	struct policy_verdict *v2 = verdict("sec.test", "198.51.100.1");
	struct policy_verdict *d = policy_verdict_dup(v1);
	char k1[700], k2[700], tiny[20];

	assert_non_null(d);
	assert_int_equal(policy_tls_session_key(v1, k1, sizeof(k1)), 0);
	assert_int_equal(policy_tls_session_key(d, k2, sizeof(k2)), 0);
	assert_string_equal(k1, k2);	/* a copy is the same value */
	assert_int_equal(policy_tls_session_key(v2, k2, sizeof(k2)), 0);
	assert_string_not_equal(k1, k2);
	assert_int_equal(policy_tls_session_key(v1, tiny, sizeof(tiny)), -1);
	d->level = TLS_LEVEL_DEFER;
	assert_int_equal(policy_tls_session_key(d, k2, sizeof(k2)), -1);
	policy_verdict_free(v1);
	policy_verdict_free(v2);
	policy_verdict_free(d);
}

/*
 * enforcement = monitor: a forged certificate on a monitored enforce
 * domain's MX.  The mail goes (level may), the check enforce mode would
 * make still runs and says would_defer, and the proof says it failed: an
 * enforced recipient on the same MX never fits the leg, and the session
 * is keyed as the enforced check's (resumed only after that very check
 * passed).
 */
static void
test_monitor_forged(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *forged = test_cert(k, "mx.good.test", "mx.good.test", bad_ca,
	    bad_ca_key, -3600, 86400, 0);
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *enforce = verdict("one.test", "192.0.2.1");
	struct policy_verdict *mon = policy_verdict_dup(enforce);
	struct tls_proof proof;
	struct tls_result res;
	char k1[700], k2[700];
	SSL *c;

	assert_non_null(mon);
	policy_verdict_monitor(mon);
	policy_verdict_monitor(mon);	/* idempotent */
	assert_int_equal(mon->monitor, 1);
	assert_int_equal(mon->level, TLS_LEVEL_MAY);
	assert_int_equal(mon->would_level, TLS_LEVEL_VERIFY);
	c = handshake(mon, forged, k);
	assert_int_equal(policy_tls_check(mon, c, &proof, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_string_equal(res.reason, "certificate-not-trusted");
	assert_int_equal(proof.failed, 1);
	assert_int_not_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(policy_leg_fits(enforce, &proof, c, &res), -1);
	/* on a reused leg: delivered, and would_defer again */
	assert_int_equal(policy_leg_fits(mon, &proof, c, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_int_equal(policy_tls_session_key(mon, k1, sizeof(k1)), 0);
	assert_int_equal(policy_tls_session_key(enforce, k2, sizeof(k2)), 0);
	assert_string_equal(k1, k2);
	SSL_free(c);
	/* the right certificate: no would-defer, and a real proof */
	c = handshake(mon, good, k);
	assert_int_equal(policy_tls_check(mon, c, &proof, &res), 0);
	assert_int_equal(res.would_defer, 0);
	assert_int_equal(proof.failed, 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(policy_leg_fits(enforce, &proof, c, &res), 0);
	SSL_free(c);
	policy_verdict_free(mon);
	policy_verdict_free(enforce);
	X509_free(forged);
	X509_free(good);
	EVP_PKEY_free(k);
}

/* Monitored verdicts that enforce mode would defer at the decision, or
 * for want of TLS: delivered, with would_defer and the reason. */
static void
test_monitor_defer_and_cleartext(void **state)
{
	struct policy_verdict *enc = verdict("x.test", "192.0.2.4");
	struct policy_verdict *d = policy_verdict_dup(enc);
	struct tls_proof none;
	struct tls_result res;

	assert_non_null(d);
	d->level = TLS_LEVEL_DEFER;
	snprintf(d->reason, sizeof(d->reason), "sts-policy-fetch-error");
	policy_verdict_monitor(d);
	assert_int_equal(d->level, TLS_LEVEL_MAY);
	memset(&none, 0, sizeof(none));
	assert_int_equal(policy_leg_fits(d, &none, NULL, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_string_equal(res.reason, "sts-policy-fetch-error");
	/* encrypt, monitored, on a cleartext leg */
	assert_int_equal(policy_tls_check(enc, NULL, &none, &res), -1);
	policy_verdict_monitor(enc);
	assert_int_equal(policy_tls_check(enc, NULL, &none, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_string_equal(res.reason, "starttls-not-supported");
	assert_int_equal(policy_leg_fits(enc, &none, NULL, &res), 0);
	assert_int_equal(res.would_defer, 1);
	policy_verdict_free(enc);
	policy_verdict_free(d);
}

/* A client prepared for v2 resumes the TLS 1.2 session of a full
 * handshake prepared for v1 (same server).  Returns the client SSL of
 * the resumed handshake (caller frees). */
static SSL *
resumed(const struct policy_verdict *v1, const struct policy_verdict *v2,
    X509 *cert, EVP_PKEY *key)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_SESSION *sess = NULL;
	SSL *s, *c = NULL;
	BIO *b1, *b2;
	int round, i, cr, sr;

	assert_int_equal(SSL_CTX_use_certificate(sctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(sctx, key), 1);
	SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"t", 1);
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
	for (round = 0; round < 2; round++) {
		SSL_free(c);
		s = SSL_new(sctx);
		c = SSL_new(cctx);
		assert_int_equal(policy_tls_prepare(round ? v2 : v1, c), 0);
		if (sess != NULL)
			assert_int_equal(SSL_set_session(c, sess), 1);
		BIO_new_bio_pair(&b1, 0, &b2, 0);
		SSL_set_bio(c, b1, b1);
		SSL_set_bio(s, b2, b2);
		SSL_set_connect_state(c);
		SSL_set_accept_state(s);
		for (i = 0, cr = sr = 0; i < 100 && (cr != 1 || sr != 1); i++) {
			if (cr != 1)
				cr = SSL_do_handshake(c);
			if (sr != 1)
				sr = SSL_do_handshake(s);
		}
		assert_int_equal(cr, 1);
		if (sess == NULL)
			assert_non_null(sess = SSL_get1_session(c));
		/* a clean close keeps the session resumable */
		SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(s);
	}
	assert_true(SSL_session_reused(c));
	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return c;
}

/*
 * A certificate whose only name is its subject CN (no subjectAltName).
 * MTA-STS demands a DNS-ID in the SAN (RFC 8461 section 4.2): refused, in
 * the handshake's check, on a leg proven by a check that took the CN (an
 * override verify for the same host), on a leg proven for nothing (verified
 * afresh), on a resumed session, in a monitored verdict (would defer) and
 * in a testing policy's report.  Postfix's verify (an override) takes the
 * CN of a certificate without dNSNames, as Postfix documents.  Before:
 * the MTA-STS checks took the CN too, and shared the override's identity.
 */
static void
test_mta_sts_cn_only(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *cnonly = test_cert(k, "mx.good.test", NULL, ca, ca_key, -3600,
	    86400, 0);
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *ovr = verdict("one.test", "192.0.2.1");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct policy_verdict *sts = policy_verdict_dup(ovr);
	struct policy_verdict *mon = policy_verdict_dup(ovr);
	struct policy_verdict *testing = policy_verdict_dup(ovr);
	struct tls_proof proof;
	struct tls_result res;
	char k1[700], k2[700];
	SSL *c;

	assert_non_null(cnonly);
	assert_non_null(sts);
	assert_non_null(mon);
	assert_non_null(testing);
	/* what sts_enforce() makes for H = mx.good.test */
	sts->source = "mta-sts";
	mon->source = "mta-sts";
	policy_verdict_monitor(mon);
	testing->source = "mta-sts";
	testing->level = TLS_LEVEL_MAY;
	testing->report_only = 1;

	expect(ovr, cnonly, k, 0, "success");
	expect(sts, cnonly, k, -1, "certificate-host-mismatch");
	expect(sts, good, k, 0, "success");
	/* not the same check: another proof, another resumption key */
	assert_int_equal(policy_tls_session_key(ovr, k1, sizeof(k1)), 0);
	assert_int_equal(policy_tls_session_key(sts, k2, sizeof(k2)), 0);
	assert_string_not_equal(k1, k2);

	/* a leg the override's check proved */
	c = handshake(ovr, cnonly, k);
	assert_int_equal(policy_tls_check(ovr, c, &proof, &res), 0);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(policy_leg_fits(ovr, &proof, c, &res), 0);
	assert_int_equal(policy_leg_fits(sts, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	assert_int_equal(policy_leg_fits(mon, &proof, c, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_int_equal(policy_leg_fits(testing, &proof, c, &res), 0);
	assert_int_equal(res.report_failed, 1);
	SSL_free(c);

	/* a leg set up for a may recipient: verified afresh */
	c = handshake(may, cnonly, k);
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(sts, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	SSL_free(c);

	/* monitored: delivered, enforce mode would defer */
	c = handshake(mon, cnonly, k);
	assert_int_equal(policy_tls_check(mon, c, &proof, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_int_equal(proof.failed, 1);
	SSL_free(c);

	/* a session the override's check made, resumed for MTA-STS */
	c = resumed(ovr, sts, cnonly, k);
	assert_int_equal(policy_tls_check(sts, c, &proof, &res), -1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	SSL_free(c);
	c = resumed(ovr, ovr, cnonly, k);
	assert_int_equal(policy_tls_check(ovr, c, &proof, &res), 0);
	SSL_free(c);
	/* the other way: a session whose handshake failed the MTA-STS
	 * check, resumed for the override's, is verified afresh and
	 * passes: the result the session kept is never taken, whatever
	 * this SSL was prepared for */
	c = resumed(sts, ovr, cnonly, k);
	if (policy_tls_check(ovr, c, &proof, &res) != 0)
		fail_msg("resumed for the override: %s (%s)", res.reason,
		    res.detail);
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	SSL_free(c);

	policy_verdict_free(ovr);
	policy_verdict_free(may);
	policy_verdict_free(sts);
	policy_verdict_free(mon);
	policy_verdict_free(testing);
	X509_free(cnonly);
	X509_free(good);
	EVP_PKEY_free(k);
}

/*
 * A chain verified afresh (a leg set up for a may recipient, judged for a
 * verify recipient) whose reference name OpenSSL did not take (out of
 * memory): the check is failed.  Before, the chain was verified with no
 * name at all, so any certificate from a trusted CA passed for the verify
 * recipient's MX.
 */
static void
test_fresh_name_not_taken(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *other = test_cert(k, "other.test", "other.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *ver = verdict("one.test", "192.0.2.1");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c = handshake(may, other, k);
	int rc;

	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(ver, &proof, c, &res), -1);
	assert_string_equal(res.reason, "certificate-host-mismatch");
	host_fail = 1;
	rc = policy_leg_fits(ver, &proof, c, &res);
	host_fail = 0;
	assert_int_equal(rc, -1);
	assert_string_not_equal(res.reason, "success");
	SSL_free(c);
	policy_verdict_free(ver);
	policy_verdict_free(may);
	X509_free(other);
	EVP_PKEY_free(k);
}

/* A leaf for key named cn, issued by issuer: extensions as given (NULL:
 * none of that kind). */
static X509 *
ext_cert(EVP_PKEY *key, const char *cn, const char *san, const char *bc,
    const char *eku, X509 *issuer, EVP_PKEY *ikey)
{
	X509 *x = test_cert(key, cn, NULL, issuer, ikey, -3600, 86400, 0);
	X509V3_CTX ctx;

	assert_non_null(x);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if (san != NULL)
		test_cert_ext(x, &ctx, NID_subject_alt_name, san);
	if (bc != NULL)
		test_cert_ext(x, &ctx, NID_basic_constraints, bc);
	if (eku != NULL)
		test_cert_ext(x, &ctx, NID_ext_key_usage, eku);
	assert_true(X509_sign(x, ikey, EVP_sha256()) > 0);
	return x;
}

/* v's check of leaf (sent with chain) on a leg prepared for v, and on a
 * leg prepared for a may recipient (verified afresh): both refuse */
static void
refused_both_ways(const struct policy_verdict *v,
    const struct policy_verdict *may, X509 *leaf, EVP_PKEY *k, X509 *chain)
{
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	extra_chain = chain;
	c = handshake(v, leaf, k);
	assert_int_equal(policy_tls_check(v, c, &proof, &res), -1);
	assert_int_not_equal(proof.level, TLS_LEVEL_VERIFY);
	SSL_free(c);
	c = handshake(may, leaf, k);
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), -1);
	SSL_free(c);
	extra_chain = NULL;
}

/*
 * Chains an attacker on the path can present, refused for a verify
 * override and for MTA-STS, in the handshake's check and afresh: a leaf
 * the trusted CA issued to the attacker (CA:FALSE, or no basic
 * constraints) signing a leaf for the MX; a leaf for the MX whose only
 * purpose is clientAuth; a wildcard over a TLD (*.test) or two labels
 * (*.*.test); a name with a trailing dot; for MTA-STS, a certificate that
 * names the MX only in its CN beside an IP address SAN.  Behaviour pinned
 * (OpenSSL's purpose, CA and name checks on both paths).
 */
static void
test_attacker_chains(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *ak = EVP_EC_gen("P-256");
	struct policy_verdict *ver = verdict("one.test", "192.0.2.1");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct policy_verdict *sts = policy_verdict_dup(ver);
	const char *names[] = { "DNS:*.test", "DNS:*.*.test",
	    "DNS:mx.good.test." };
	X509 *mid, *x;
	size_t i;

	assert_non_null(sts);
	sts->source = "mta-sts";
	/* the attacker's own leaf from the trusted CA, as an issuer */
	mid = ext_cert(ak, "attacker.test", "DNS:attacker.test",
	    "critical,CA:FALSE", "serverAuth", ca, ca_key);
	x = ext_cert(k, "mx.good.test", "DNS:mx.good.test", NULL,
	    "serverAuth", mid, ak);
	refused_both_ways(ver, may, x, k, mid);
	refused_both_ways(sts, may, x, k, mid);
	X509_free(x);
	X509_free(mid);
	mid = ext_cert(ak, "attacker.test", "DNS:attacker.test", NULL, NULL,
	    ca, ca_key);
	x = ext_cert(k, "mx.good.test", "DNS:mx.good.test", NULL, NULL, mid,
	    ak);
	refused_both_ways(ver, may, x, k, mid);
	X509_free(x);
	X509_free(mid);
	x = ext_cert(k, "mx.good.test", "DNS:mx.good.test", NULL,
	    "clientAuth", ca, ca_key);
	refused_both_ways(ver, may, x, k, NULL);
	refused_both_ways(sts, may, x, k, NULL);
	X509_free(x);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		x = ext_cert(k, "x", names[i], NULL, NULL, ca, ca_key);
		refused_both_ways(ver, may, x, k, NULL);
		refused_both_ways(sts, may, x, k, NULL);
		X509_free(x);
	}
	x = ext_cert(k, "mx.good.test", "IP:192.0.2.1", NULL, NULL, ca,
	    ca_key);
	refused_both_ways(sts, may, x, k, NULL);
	X509_free(x);
	policy_verdict_free(ver);
	policy_verdict_free(may);
	policy_verdict_free(sts);
	EVP_PKEY_free(k);
	EVP_PKEY_free(ak);
}

/* The SNI prepare sends: H, else the first reference name that is a
 * host; never an IP literal (RFC 6066 section 3), from H or from an
 * override's match=.  Red before: 192.0.2.1 and 2001:db8::25 were sent. */
static const char *
sni_of(const struct policy_verdict *v)
{
	static char out[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *c = SSL_new(ctx);
	const char *n;

	assert_int_equal(policy_tls_prepare(v, c), 0);
	n = SSL_get_servername(c, TLSEXT_NAMETYPE_host_name);
	snprintf(out, sizeof(out), "%s", n ? n : "(none)");
	SSL_free(c);
	SSL_CTX_free(ctx);
	return out;
}

static void
test_sni_never_address(void **state)
{
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	struct policy_verdict *d = policy_verdict_dup(v);

	assert_non_null(d);
	assert_string_equal(sni_of(d), "mx.good.test");
	snprintf(d->mx_host, sizeof(d->mx_host), "mx.one.test");
	assert_string_equal(sni_of(d), "mx.one.test");
	snprintf(d->mx_host, sizeof(d->mx_host), "192.0.2.1");
	assert_string_equal(sni_of(d), "(none)");
	d->mx_host[0] = '\0';
	snprintf(d->tls->names[0], sizeof(d->tls->names[0]), "2001:db8::25");
	assert_string_equal(sni_of(d), "(none)");
	snprintf(d->tls->names[0], sizeof(d->tls->names[0]), "[192.0.2.1]");
	assert_string_equal(sni_of(d), "(none)");
	policy_verdict_free(v);
	policy_verdict_free(d);
}

/*
 * Wildcards (RFC 6125 section 6.4.3, RFC 8461 section 4.1): only as the
 * whole leftmost label, matching exactly one label, in any case, A-labels
 * too: *.good.test matches MX.Good.TEST and xn--mx-abc.good.test, never
 * good.test nor a.mx.good.test; for MTA-STS and an override's verify
 * alike, prepared and afresh.  Behaviour pinned (name_flags()).
 */
static void
test_wildcard_one_label(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *wild = test_cert(k, "*.good.test", "*.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	const char *yes[] = { "MX.Good.TEST", "xn--mx-abc.good.test" };
	const char *no[] = { "good.test", "a.mx.good.test" };
	struct tls_proof proof;
	struct tls_result res;
	size_t i;
	int sts;
	SSL *c;

	for (sts = 0; sts < 2; sts++) {
		if (sts)
			v->source = "mta-sts";
		for (i = 0; i < 2; i++) {
			snprintf(v->tls->names[0], 256, "%s", yes[i]);
			expect(v, wild, k, 0, "success");
			snprintf(v->tls->names[0], 256, "%s", no[i]);
			expect(v, wild, k, -1, "certificate-host-mismatch");
			c = handshake(may, wild, k);
			assert_int_equal(policy_tls_check(may, c, &proof, &res),
			    0);
			assert_int_equal(policy_leg_fits(v, &proof, c, &res),
			    -1);
			assert_string_equal(res.reason,
			    "certificate-host-mismatch");
			SSL_free(c);
		}
	}
	policy_verdict_free(v);
	policy_verdict_free(may);
	X509_free(wild);
	EVP_PKEY_free(k);
}

/*
 * An anonymous suite (aNULL: TLS 1.2 without a server certificate, which
 * a tls_ciphers at @SECLEVEL=0 may offer) authenticates nothing: the
 * handshake's own verification result is X509_V_OK, as nothing was
 * verified, yet verify fails, in the check the session was prepared for
 * and afresh, for an override's verify and a fingerprint alike; may and
 * encrypt take it as TLS.  Behaviour pinned (verify_peer()'s test for a
 * peer certificate comes first).
 */
static void
test_anonymous_never_verified(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *good = test_cert(k, "mx.good.test", "mx.good.test", ca, ca_key,
	    -3600, 86400, 0);
	struct policy_verdict *v = verdict("one.test", "192.0.2.1");
	struct policy_verdict *may = verdict("any.test", "192.0.2.3");
	struct policy_verdict *enc = verdict("any.test", "192.0.2.4");
	struct policy_verdict *fp = policy_verdict_dup(v);
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	assert_non_null(fp);
	fp->tls->nfp = 1;
	X509_digest(good, EVP_sha256(), fp->tls->fp[0], NULL);
	anon = 1;
	c = handshake(v, good, k);
	assert_null(SSL_get0_peer_certificate(c));
	assert_int_equal(SSL_get_verify_result(c), X509_V_OK);
	assert_int_equal(policy_tls_check(v, c, &proof, &res), -1);
	assert_string_equal(res.reason, "certificate-not-trusted");
	assert_int_not_equal(proof.level, TLS_LEVEL_VERIFY);
	SSL_free(c);
	expect(fp, good, k, -1, "certificate-not-trusted");
	expect(enc, good, k, 0, "certificate-not-trusted");
	c = handshake(may, good, k);
	assert_int_equal(policy_tls_check(may, c, &proof, &res), 0);
	assert_int_equal(proof.tls, 1);
	assert_int_equal(policy_leg_fits(v, &proof, c, &res), -1);
	assert_int_equal(policy_leg_fits(fp, &proof, c, &res), -1);
	assert_int_equal(policy_leg_fits(enc, &proof, c, &res), 0);
	SSL_free(c);
	anon = 0;
	expect(fp, good, k, 0, "success");	/* the same, authenticated */
	policy_verdict_free(v);
	policy_verdict_free(may);
	policy_verdict_free(enc);
	policy_verdict_free(fp);
	X509_free(good);
	EVP_PKEY_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_levels),
		cmocka_unit_test(test_first_error_named),
		cmocka_unit_test(test_secure_and_subdomain_match),
		cmocka_unit_test(test_second_verdict),
		cmocka_unit_test(test_validity_on_policy_clock),
		cmocka_unit_test(test_proof_expires_with_chain),
		cmocka_unit_test(test_expired_during_handshake),
		cmocka_unit_test(test_proof_ends_at_not_after),
		cmocka_unit_test(test_fresh_check_judges_now),
		cmocka_unit_test(test_no_name_never_fits),
		cmocka_unit_test(test_no_connection_no_fit),
		cmocka_unit_test(test_check_not_by_address),
		cmocka_unit_test(test_report_only_never_proves),
		cmocka_unit_test(test_weak_key_fresh),
		cmocka_unit_test(test_fresh_name_not_taken),
		cmocka_unit_test(test_attacker_chains),
		cmocka_unit_test(test_fingerprint_digests),
		cmocka_unit_test(test_fingerprint_leg_fits),
		cmocka_unit_test(test_other_store_leg_fits),
		cmocka_unit_test(test_protocols_floor),
		cmocka_unit_test(test_chain_not_after_unknown),
		cmocka_unit_test(test_check_at_not_after),
		cmocka_unit_test(test_protocols_ends),
		cmocka_unit_test(test_monitor_report_failed),
		cmocka_unit_test(test_defer_never_checks),
		cmocka_unit_test(test_protocols_may_unbound),
		cmocka_unit_test(test_none_fits_cleartext),
		cmocka_unit_test(test_defer_cleartext_own_reason),
		cmocka_unit_test(test_report_only_cleartext_reported),
		cmocka_unit_test(test_monitor_fits_reason),
		cmocka_unit_test(test_protocols_ceiling_reused),
		cmocka_unit_test(test_monitor_defer_leg_kept),
		cmocka_unit_test(test_session_keys),
		cmocka_unit_test(test_monitor_forged),
		cmocka_unit_test(test_monitor_defer_and_cleartext),
		cmocka_unit_test(test_mta_sts_cn_only),
		cmocka_unit_test(test_sni_never_address),
		cmocka_unit_test(test_wildcard_one_label),
		cmocka_unit_test(test_anonymous_never_verified),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
