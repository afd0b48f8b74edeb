/*
 * test_dane.c - DANE: TLSA record parsing and usability, the RRset
 * digest, and matching through OpenSSL's DANE API in real handshakes
 * between an in-process server and client over a socketpair, on
 * certificates generated here (a CA, leaves with the right name, a wrong
 * name, an expired validity).  dane_tls_prepare() and dane_tls_check()
 * are the code under test; OpenSSL does the matching.
 */
// WRAP: dns_query dns_cancel time X509_VERIFY_PARAM_set1
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/ev.h"
#include "core/log.h"
#include "policy/dane.h"
#include "policy/mx.h"
#include "policy/policy.h"
#include "policy/verdict_tls.h"
#include "tests/unit/timestep.h"
#include "tests/unit/testcert.h"

#include "fakedns.h"

/* set: X509_VERIFY_PARAM_set1() fails as it does out of memory while
 * copying the reference names (they are gone, the rest is copied) */
static int set1_fail;
int __real_X509_VERIFY_PARAM_set1(X509_VERIFY_PARAM *,
    const X509_VERIFY_PARAM *);
int __wrap_X509_VERIFY_PARAM_set1(X509_VERIFY_PARAM *,
    const X509_VERIFY_PARAM *);

int
__wrap_X509_VERIFY_PARAM_set1(X509_VERIFY_PARAM *to,
    const X509_VERIFY_PARAM *from)
{
	int rc = __real_X509_VERIFY_PARAM_set1(to, from);

	if (!set1_fail)
		return rc;
	X509_VERIFY_PARAM_set1_host(to, NULL, 0);
	return 0;
}

/* a leaf named cn (SAN too), or a CA */
static X509 *
mkcert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
    int ca, long from, long to)
{
	X509 *x = test_cert(key, cn, ca ? NULL : cn, issuer, ikey, from, to,
	    ca);

	assert_non_null(x);
	return x;
}

#define HOST	"mx.example.test"
#define DOMAIN	"example.test"

struct pki {
	EVP_PKEY *ca_key, *ca2_key, *leaf_key, *other_key;
	X509	 *ca, *ca2;
	X509	 *leaf;		/* HOST, signed by ca */
	X509	 *wrongname;	/* other.test, signed by ca */
	X509	 *expired;	/* HOST, expired, signed by ca */
	X509	 *other;	/* HOST, signed by ca2, other key */
};

static struct pki P;

static EVP_PKEY *
newkey(void)
{
	return EVP_EC_gen("P-256");
}

static int
setup_pki(void **state)
{
	P.ca_key = newkey();
	P.ca2_key = newkey();
	P.leaf_key = newkey();
	P.other_key = newkey();
	P.ca = mkcert(P.ca_key, "test CA", NULL, NULL, 1, -3600, 86400 * 30);
	P.ca2 = mkcert(P.ca2_key, "other CA", NULL, NULL, 1, -3600,
	    86400 * 30);
	P.leaf = mkcert(P.leaf_key, HOST, P.ca, P.ca_key, 0, -3600,
	    86400 * 10);
	P.wrongname = mkcert(P.leaf_key, "other.test", P.ca, P.ca_key, 0,
	    -3600, 86400 * 10);
	P.expired = mkcert(P.leaf_key, HOST, P.ca, P.ca_key, 0,
	    -86400 * 60, -86400 * 30);
	P.other = mkcert(P.other_key, HOST, P.ca2, P.ca2_key, 0, -3600,
	    86400 * 10);
	return 0;
}

static int
teardown_pki(void **state)
{
	X509_free(P.ca);
	X509_free(P.ca2);
	X509_free(P.leaf);
	X509_free(P.wrongname);
	X509_free(P.expired);
	X509_free(P.other);
	EVP_PKEY_free(P.ca_key);
	EVP_PKEY_free(P.ca2_key);
	EVP_PKEY_free(P.leaf_key);
	EVP_PKEY_free(P.other_key);
	return 0;
}

/* TLSA association data for cert x. */
static void
tlsa_of(struct dane_tlsa *t, int usage, int sel, int mtype, X509 *x)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	int len;

	memset(t, 0, sizeof(*t));
	t->usage = (uint8_t)usage;
	t->selector = (uint8_t)sel;
	t->mtype = (uint8_t)mtype;
	len = sel == 0 ? i2d_X509(x, &der) : i2d_PUBKEY(X509_get0_pubkey(x),
	    &der);
	assert_true(len > 0);
	if (mtype == 0) {
		t->data = der;
		t->len = (size_t)len;
	} else {
		EVP_Digest(der, (size_t)len, md, &mdlen, mtype == 1 ?
		    EVP_sha256() : EVP_sha512(), NULL);
		OPENSSL_free(der);
		t->data = malloc(mdlen);
		memcpy(t->data, md, mdlen);
		t->len = mdlen;
	}
	t->usable = dane_tlsa_usable(t->usage, t->selector, t->mtype,
	    t->data, t->len);
}

static struct dane_info *
info_with(int n, ...)
{
	struct dane_info *d = calloc(1, sizeof(*d));
	va_list ap;
	int i;

	d->state = DANE_USABLE;
	snprintf(d->domain, sizeof(d->domain), DOMAIN);
	snprintf(d->mx_host, sizeof(d->mx_host), HOST);
	snprintf(d->tlsa_base, sizeof(d->tlsa_base), HOST);
	d->nnames = 2;
	snprintf(d->names[0], sizeof(d->names[0]), HOST);
	snprintf(d->names[1], sizeof(d->names[1]), DOMAIN);
	d->tlsa = calloc((size_t)n + 1, sizeof(*d->tlsa));
	va_start(ap, n);
	for (i = 0; i < n; i++) {
		int u = va_arg(ap, int), s = va_arg(ap, int),
		    m = va_arg(ap, int);
		X509 *x = va_arg(ap, X509 *);

		tlsa_of(&d->tlsa[d->ntlsa], u, s, m, x);
		if (d->tlsa[d->ntlsa].usable)
			d->nusable++;
		d->ntlsa++;
	}
	va_end(ap);
	dane_tlsa_digest(d->tlsa, d->ntlsa, d->digest);
	return d;
}

static void
nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int
verify_accept(int ok, X509_STORE_CTX *ctx)
{
	return 1;
}

/*
 * A full handshake: server sends leaf (+ CA chain), the client has DANE
 * set up by dane_tls_prepare() and an empty trust store.  Returns what
 * dane_tls_check() says; reason receives the result type.
 */
/* when set, handshake() checks against this verdict instead */
static struct dane_info *check_with;
/* when set, handshake() prepares and checks the client for this policy
 * verdict (policy_tls_prepare/check, d unused), results in via_proof
 * and via_res */
static const struct policy_verdict *via;
static struct tls_proof via_proof;
static struct tls_result via_res;
/* set: handshake() and hs2() move the policy clock to time_step =
 * hs_step_to once the client is prepared (a handshake that takes its
 * time: the server's flight may come tls_timeout after each of ours) */
static int hs_moves;
static int64_t hs_step_to;

/* A test that moves the clock or sets a handshake hook and fails half
 * way leaves them set: every such test gets this teardown, so that its
 * failure is the only one reported. */
static int
reset_moves(void **s)
{
	(void)s;
	hs_moves = 0;
	hs_step_to = 0;
	via = NULL;
	check_with = NULL;
	time_step = 0;
	clock_anchor();
	return 0;
}

static void
hs_clock(void)
{
	if (hs_moves) {
		time_step = hs_step_to;
		clock_anchor();
	}
}

static int
handshake(X509 *leaf, EVP_PKEY *key, X509 *chain, struct dane_info *d,
    char *reason, size_t rsz)
{
	SSL_CTX *sctx, *cctx;
	SSL *s, *c;
	int sv[2], i, sdone = 0, cdone = 0, rc;
	char detail[256];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	nonblock(sv[0]);
	nonblock(sv[1]);
	sctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(SSL_CTX_use_certificate(sctx, leaf), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(sctx, key), 1);
	if (chain != NULL)
		assert_int_equal(SSL_CTX_add1_chain_cert(sctx, chain), 1);
	cctx = SSL_CTX_new(TLS_client_method());
	assert_true(SSL_CTX_dane_enable(cctx) > 0);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, verify_accept);
	s = SSL_new(sctx);
	c = SSL_new(cctx);
	SSL_set_fd(s, sv[0]);
	SSL_set_fd(c, sv[1]);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	if (via != NULL)
		assert_int_equal(policy_tls_prepare(via, c), 0);
	else
		assert_int_equal(dane_tls_prepare(d, c), 0);
	hs_clock();
	for (i = 0; i < 1000 && !(sdone && cdone); i++) {
		if (!cdone) {
			rc = SSL_do_handshake(c);
			if (rc == 1)
				cdone = 1;
			else
				assert_true(SSL_get_error(c, rc) ==
				    SSL_ERROR_WANT_READ);
		}
		if (!sdone) {
			rc = SSL_do_handshake(s);
			if (rc == 1)
				sdone = 1;
			else
				assert_true(SSL_get_error(s, rc) ==
				    SSL_ERROR_WANT_READ);
		}
	}
	assert_true(sdone && cdone);
	if (via != NULL) {
		rc = policy_tls_check(via, c, &via_proof, &via_res);
		snprintf(reason, rsz, "%s", via_res.reason);
		snprintf(detail, sizeof(detail), "%s", via_res.detail);
	} else
		rc = dane_tls_check(check_with ? check_with : d, c, reason,
		    rsz, detail, sizeof(detail), NULL);
	printf("# check=%d reason=%s detail=%s\n", rc, reason, detail);
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	close(sv[0]);
	close(sv[1]);
	dane_info_free(d);
	return rc;
}

/* ---- parsing ---- */

static void
test_tlsa_parse(void **state)
{
	unsigned char rd[3 + 32];
	struct dane_tlsa t;

	memset(rd, 0xab, sizeof(rd));
	rd[0] = 3; rd[1] = 1; rd[2] = 1;
	assert_int_equal(dane_tlsa_parse(rd, sizeof(rd), &t), 0);
	assert_int_equal(t.usage, 3);
	assert_int_equal(t.selector, 1);
	assert_int_equal(t.mtype, 1);
	assert_int_equal(t.len, 32);
	assert_int_equal(t.data[0], 0xab);
	assert_int_equal(t.usable, 1);
	free(t.data);
	/* too short for any association data */
	assert_int_equal(dane_tlsa_parse(rd, 3, &t), -1);
	assert_int_equal(dane_tlsa_parse(NULL, 0, &t), -1);
	/* wrong digest length: unusable, but parsed */
	assert_int_equal(dane_tlsa_parse(rd, sizeof(rd) - 1, &t), 0);
	assert_int_equal(t.usable, 0);
	free(t.data);
}

/*
 * Full association data (matching type 0) with an octet after the
 * certificate or key: OpenSSL's SSL_dane_tlsa_add() refuses it (the DER
 * must span the data), so dane_tlsa_usable() must too, or an RRset of
 * only such records is a DANE verdict whose handshake cannot be set up,
 * the mail deferred where it goes with TLS (TLSA records, none usable:
 * encrypt).  Red before (the check that the DER ends with the data
 * dropped, for a certificate or a key): usable.  1 when t's data is
 * usable and, one octet longer, neither usable nor taken by OpenSSL.
 */
static int
trailing_refused(const struct dane_tlsa *t)
{
	unsigned char *b = malloc(t->len + 1);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	int usable, taken;

	assert_non_null(b);
	assert_non_null(ctx);
	assert_true(SSL_CTX_dane_enable(ctx) > 0);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	assert_true(SSL_dane_enable(ssl, HOST) > 0);
	memcpy(b, t->data, t->len);
	b[t->len] = 0;
	usable = dane_tlsa_usable(t->usage, t->selector, t->mtype, b,
	    t->len + 1);
	taken = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, b,
	    t->len + 1) > 0;
	ERR_clear_error();
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	free(b);
	printf("# %u %u %u, %zu octets and one more: usable %d, taken %d\n",
	    t->usage, t->selector, t->mtype, t->len, usable, taken);
	return t->usable && !usable && !taken;
}

static void
test_tlsa_usable(void **state)
{
	unsigned char d32[32] = { 1 }, d64[64] = { 2 }, junk[40] = { 3 };
	struct dane_tlsa t;

	assert_true(dane_tlsa_usable(3, 1, 1, d32, 32));
	assert_true(dane_tlsa_usable(2, 0, 1, d32, 32));
	assert_true(dane_tlsa_usable(3, 0, 2, d64, 64));
	assert_false(dane_tlsa_usable(3, 1, 2, d32, 32));
	assert_false(dane_tlsa_usable(3, 1, 1, d64, 64));
	/* PKIX usages are unusable for SMTP (RFC 7672 section 3.1.3) */
	assert_false(dane_tlsa_usable(0, 0, 1, d32, 32));
	assert_false(dane_tlsa_usable(1, 1, 1, d32, 32));
	assert_false(dane_tlsa_usable(4, 1, 1, d32, 32));
	assert_false(dane_tlsa_usable(3, 2, 1, d32, 32));
	assert_false(dane_tlsa_usable(3, 1, 3, d32, 32));
	assert_false(dane_tlsa_usable(3, 1, 1, NULL, 0));
	/* full data must parse as a certificate / public key */
	assert_false(dane_tlsa_usable(3, 0, 0, junk, sizeof(junk)));
	assert_false(dane_tlsa_usable(3, 1, 0, junk, sizeof(junk)));
	tlsa_of(&t, 3, 0, 0, P.leaf);
	assert_true(t.usable);
	assert_false(dane_tlsa_usable(3, 1, 0, t.data, t.len));
	free(t.data);
	tlsa_of(&t, 2, 1, 0, P.ca);
	assert_true(t.usable);
	free(t.data);
	tlsa_of(&t, 3, 0, 0, P.leaf);
	assert_true(trailing_refused(&t));
	free(t.data);
	tlsa_of(&t, 3, 1, 0, P.leaf);
	assert_true(trailing_refused(&t));
	free(t.data);
}

/*
 * A SHA-512 record (matching type 2) is usable with 64 octets exactly:
 * one longer is a record OpenSSL refuses (SSL_dane_tlsa_add()), so an
 * RRset of it alone is "unusable records only", TLS mandatory, not a
 * DANE verdict whose handshake could never be authenticated (deferred
 * for good).  Red with `len >= 64` (dane_tlsa_usable()): usable.
 */
static void
test_tlsa_usable_sha512_length(void **state)
{
	unsigned char d65[65] = { 2 };

	assert_true(dane_tlsa_usable(3, 1, 2, d65, 64));
	assert_false(dane_tlsa_usable(3, 1, 2, d65, 65));
	assert_false(dane_tlsa_usable(2, 0, 2, d65, 65));
}

static void
test_digest_order(void **state)
{
	struct dane_info *a = info_with(2, 3, 1, 1, P.leaf, 2, 0, 1, P.ca);
	struct dane_info *b = info_with(2, 2, 0, 1, P.ca, 3, 1, 1, P.leaf);
	struct dane_info *c = info_with(1, 3, 1, 1, P.leaf);
	unsigned char da[32], db[32], dc[32];
	char buf[40];

	dane_tlsa_digest(a->tlsa, a->ntlsa, da);
	dane_tlsa_digest(b->tlsa, b->ntlsa, db);
	dane_tlsa_digest(c->tlsa, c->ntlsa, dc);
	assert_memory_equal(da, db, 32);
	assert_memory_not_equal(da, dc, 32);
	dane_tlsa_format(&c->tlsa[0], buf, sizeof(buf));
	assert_true(strncmp(buf, "3 1 1 ", 6) == 0);
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	dane_info_free(a);
	dane_info_free(b);
	dane_info_free(c);
}

/*
 * The RRset digest that ties a prepared connection to its verdict is the
 * records' and only theirs: records that tie on all but the usage, or on
 * all but the length (one's data a prefix of the other's), give the same
 * digest in either order; a record of 261 octets is not the two records
 * its octets would read as were its length's high octet left out.
 * Red with tlsa_cmp() without its usage or length comparison, or the
 * digest without the length's high octet: da != db (memory differs).
 */
static void
test_digest_ties(void **state)
{
	unsigned char x[32], big[261], da[32], db[32];
	struct dane_tlsa a[2], b[2];

	memset(x, 0xaa, sizeof(x));
	a[0] = (struct dane_tlsa){ .usage = 3, .selector = 1, .mtype = 1,
	    .data = x, .len = 32 };
	a[1] = a[0];
	a[1].usage = 2;
	b[0] = a[1];
	b[1] = a[0];
	dane_tlsa_digest(a, 2, da);
	dane_tlsa_digest(b, 2, db);
	assert_memory_equal(da, db, 32);

	a[1] = a[0];
	a[1].len = 31;
	b[0] = a[1];
	b[1] = a[0];
	dane_tlsa_digest(a, 2, da);
	dane_tlsa_digest(b, 2, db);
	assert_memory_equal(da, db, 32);

	memset(big, 0x55, sizeof(big));
	memcpy(big + 5, "\x03\x01\x02\x00\xfb", 5);
	a[0] = (struct dane_tlsa){ .usage = 3, .selector = 1, .mtype = 1,
	    .data = big, .len = sizeof(big) };
	b[0] = a[0];
	b[0].len = 5;
	b[1] = (struct dane_tlsa){ .usage = 3, .selector = 1, .mtype = 2,
	    .data = big + 10, .len = 251 };
	dane_tlsa_digest(a, 1, da);
	dane_tlsa_digest(b, 2, db);
	assert_memory_not_equal(da, db, 32);
}

/* ---- matching in handshakes ---- */

#define OK(d)	do { char r_[48]; assert_int_equal(handshake(P.leaf, \
	P.leaf_key, P.ca, (d), r_, sizeof(r_)), 0); \
	assert_string_equal(r_, "success"); } while (0)
#define NOMATCH(d) do { char r_[48]; assert_int_equal(handshake(P.leaf, \
	P.leaf_key, P.ca, (d), r_, sizeof(r_)), -1); \
	assert_string_equal(r_, "tlsa-invalid"); } while (0)

static void test_311(void **s) { OK(info_with(1, 3, 1, 1, P.leaf)); }
static void test_311_no(void **s) { NOMATCH(info_with(1, 3, 1, 1, P.other)); }
static void test_301(void **s) { OK(info_with(1, 3, 0, 1, P.leaf)); }
static void test_301_no(void **s) { NOMATCH(info_with(1, 3, 0, 1, P.other)); }
static void test_312(void **s) { OK(info_with(1, 3, 1, 2, P.leaf)); }
static void test_312_no(void **s) { NOMATCH(info_with(1, 3, 1, 2, P.other)); }
static void test_201(void **s) { OK(info_with(1, 2, 0, 1, P.ca)); }
static void test_201_no(void **s) { NOMATCH(info_with(1, 2, 0, 1, P.ca2)); }
static void test_211(void **s) { OK(info_with(1, 2, 1, 1, P.ca)); }
static void test_211_no(void **s) { NOMATCH(info_with(1, 2, 1, 1, P.ca2)); }

/* one matching record among non-matching and unusable ones suffices */
static void
test_mixed_set(void **s)
{
	OK(info_with(3, 3, 1, 1, P.other, 1, 1, 1, P.leaf, 2, 0, 1, P.ca));
}

/*
 * Digest agility (RFC 7671 section 9, OpenSSL's default order: SHA-512
 * over SHA-256): for one usage and selector only the strongest digest
 * present counts, so a matching SHA-256 record beside a SHA-512 one that
 * does not match fails.  A SHA-512 record of the wrong length is
 * unusable, never loaded, and does not hide the SHA-256 one.
 */
static void
test_digest_agility(void **s)
{
	struct dane_info *d;

	NOMATCH(info_with(2, 3, 1, 2, P.other, 3, 1, 1, P.leaf));
	OK(info_with(2, 3, 1, 2, P.leaf, 3, 1, 1, P.other));
	/* another selector is another pair */
	OK(info_with(2, 3, 1, 2, P.other, 3, 0, 1, P.leaf));
	d = info_with(2, 3, 1, 2, P.other, 3, 1, 1, P.leaf);
	d->tlsa[0].len = 63;
	d->tlsa[0].usable = 0;
	d->nusable = 1;
	OK(d);
}

/* a leaf that does not chain to the DANE-TA key */
static void
test_ta_other_chain(void **s)
{
	char r[48];

	assert_int_equal(handshake(P.other, P.other_key, P.ca2,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), -1);
}

static void
test_name_mismatch_ta_fails(void **s)
{
	char r[48];

	assert_int_equal(handshake(P.wrongname, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), -1);
	assert_string_equal(r, "certificate-host-mismatch");
}

static void
test_name_mismatch_ee_passes(void **s)
{
	char r[48];

	assert_int_equal(handshake(P.wrongname, P.leaf_key, P.ca,
	    info_with(1, 3, 1, 1, P.wrongname), r, sizeof(r)), 0);
	assert_int_equal(handshake(P.wrongname, P.leaf_key, P.ca,
	    info_with(1, 3, 0, 1, P.wrongname), r, sizeof(r)), 0);
}

/* DANE-TA: the recipient domain is a reference identifier too */
static void
test_ta_domain_name(void **s)
{
	X509 *x = mkcert(P.leaf_key, DOMAIN, P.ca, P.ca_key, 0, -3600,
	    86400);
	struct dane_info *d = info_with(1, 2, 0, 1, P.ca);
	char r[48];

	assert_int_equal(handshake(x, P.leaf_key, P.ca, d, r, sizeof(r)), 0);
	/* with an insecure MX RRset, D is not a reference identifier */
	d = info_with(1, 2, 0, 1, P.ca);
	d->nnames = 1;
	assert_int_equal(handshake(x, P.leaf_key, P.ca, d, r, sizeof(r)), -1);
	X509_free(x);
}

/* DANE-TA name checks match DNS-IDs, and the CN only of a certificate
 * without any (RFC 7672 section 3.2.3): a CN-only leaf named H passes, one
 * named otherwise fails */
static void
test_ta_cn_only(void **s)
{
	X509 *cn = test_cert(P.leaf_key, HOST, NULL, P.ca, P.ca_key, -3600,
	    86400, 0);
	X509 *cnwrong = test_cert(P.leaf_key, "other.test", NULL, P.ca,
	    P.ca_key, -3600, 86400, 0);
	char r[48];

	assert_int_equal(handshake(cn, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), 0);
	assert_int_equal(handshake(cnwrong, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), -1);
	assert_string_equal(r, "certificate-host-mismatch");
	X509_free(cn);
	X509_free(cnwrong);
}

/*
 * DANE-TA name checks take a wildcard only as the whole left-most label
 * (RFC 7672 section 3.2.3): a leaf for *.example.test passes for H, one
 * for m*.example.test (a partial wildcard, which OpenSSL matches unless
 * told not to) fails.  Red before (dane_tls_prepare() without
 * X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS): success for the partial one.
 */
static void
test_ta_partial_wildcard(void **s)
{
	X509 *wild = test_cert(P.leaf_key, "*." DOMAIN, "*." DOMAIN, P.ca,
	    P.ca_key, -3600, 86400, 0);
	X509 *partial = test_cert(P.leaf_key, "m*." DOMAIN, "m*." DOMAIN,
	    P.ca, P.ca_key, -3600, 86400, 0);
	char r[48];

	assert_non_null(wild);
	assert_non_null(partial);
	assert_int_equal(handshake(wild, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), 0);
	assert_int_equal(handshake(partial, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), -1);
	assert_string_equal(r, "certificate-host-mismatch");
	X509_free(wild);
	X509_free(partial);
}

static void
test_expired_ee_passes(void **s)
{
	char r[48];

	assert_int_equal(handshake(P.expired, P.leaf_key, P.ca,
	    info_with(1, 3, 1, 1, P.expired), r, sizeof(r)), 0);
}

/* A DANE-TA chain whose leaf is not yet valid: RFC 8460's
 * certificate-expired says "has expired", which it has not; it is one of
 * the certificate failures certificate-not-trusted covers (it was
 * reported as certificate-expired). */
static void
test_not_yet_valid_ta_fails(void **s)
{
	X509 *ahead = mkcert(P.leaf_key, HOST, P.ca, P.ca_key, 0, 86400,
	    86400 * 10);
	char r[48];

	assert_int_equal(handshake(ahead, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), -1);
	assert_string_equal(r, "certificate-not-trusted");
	X509_free(ahead);
}

static void
test_expired_ta_fails(void **s)
{
	char r[48];

	assert_int_equal(handshake(P.expired, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), -1);
	assert_string_equal(r, "certificate-expired");
}

/* only unusable records: prepare refuses to set up DANE */
static void
test_prepare_unusable(void **s)
{
	struct dane_info *d = info_with(1, 1, 1, 1, P.leaf);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	SSL_CTX_dane_enable(ctx);
	ssl = SSL_new(ctx);
	assert_int_equal(dane_tls_prepare(d, ssl), -1);
	SSL_free(ssl);
	d->state = DANE_UNUSABLE;
	ssl = SSL_new(ctx);
	assert_int_equal(dane_tls_prepare(d, ssl), 0);
	assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name),
	    HOST);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	dane_info_free(d);
}

/* a connection set up for one TLSA RRset does not satisfy another's
 * verdict (a later recipient's domain with other records) */
static void
test_other_rrset(void **s)
{
	char r[48];

	check_with = info_with(1, 3, 0, 1, P.leaf);
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca,
	    info_with(1, 3, 1, 1, P.leaf), r, sizeof(r)), -1);
	assert_string_equal(r, "validation-failure");
	dane_info_free(check_with);
	/* the same RRset in another order is the same policy */
	check_with = info_with(2, 2, 0, 1, P.ca, 3, 1, 1, P.leaf);
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca,
	    info_with(2, 3, 1, 1, P.leaf, 2, 0, 1, P.ca), r, sizeof(r)), 0);
	dane_info_free(check_with);
	check_with = NULL;
}

/*
 * A connection prepared for one host's 3 1 1 record is checked for a
 * verdict whose single 3 1 1 record has other data (the RRset changed
 * between the lookups, a key rolled over and the old one withdrawn): not
 * the check asked for, a failure, though OpenSSL matched the records it
 * was given.  Red with the digest leaving the records' data out
 * (dane_tlsa_digest()): success, the old key's proof taken for the new.
 */
static void
test_other_rrset_same_shape(void **s)
{
	char r[48];

	check_with = info_with(1, 3, 1, 1, P.other);
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca,
	    info_with(1, 3, 1, 1, P.leaf), r, sizeof(r)), -1);
	assert_string_equal(r, "validation-failure");
	dane_info_free(check_with);
	check_with = NULL;
}

/*
 * Checked against the same TLSA RRset under another base domain, or with
 * other reference names, than the SSL was prepared with: not the check
 * this handshake made (OpenSSL matched the names it was given), a
 * failure, "not set up for" these records.  loaded_matches() compares the
 * digest, the base and every name: the digest alone let a handshake
 * prepared for one host's names pass for another's.
 */
static void
test_other_base_or_names(void **s)
{
	char r[48];

	check_with = info_with(1, 2, 0, 1, P.ca);
	snprintf(check_with->tlsa_base, sizeof(check_with->tlsa_base),
	    "mx.other.test");
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), -1);
	assert_string_equal(r, "validation-failure");
	dane_info_free(check_with);
	check_with = info_with(1, 2, 0, 1, P.ca);
	snprintf(check_with->names[1], sizeof(check_with->names[1]),
	    "other.test");
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), -1);
	assert_string_equal(r, "validation-failure");
	dane_info_free(check_with);
	/* the same records, base and names: the check passes */
	check_with = info_with(1, 2, 0, 1, P.ca);
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), 0);
	dane_info_free(check_with);
	check_with = NULL;
}

/*
 * Prepared with the names of a secure MX RRset (H and D), checked for the
 * same records and base with H alone (an insecure MX RRset: D is no
 * reference identifier): OpenSSL accepted a certificate for D alone, which
 * this check must not, so the handshake is not the check asked for.  The
 * names compared one by one up to the checked verdict's count only passed
 * it.  Red before (the count of names not compared): success.
 */
static void
test_fewer_names(void **s)
{
	char r[48];

	check_with = info_with(1, 2, 0, 1, P.ca);
	check_with->nnames = 1;
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca,
	    info_with(1, 2, 0, 1, P.ca), r, sizeof(r)), -1);
	assert_string_equal(r, "validation-failure");
	dane_info_free(check_with);
	check_with = NULL;
}

/*
 * A DANE-TA chain checked at the very second of its notAfter has expired,
 * as OpenSSL judges (X509_cmp_time(): expired once notAfter is not after
 * now): certificate-expired; the second before it passes.  The handshake's
 * own verification ran at the earlier time dane_tls_prepare() set, so
 * only dane_tls_check()'s judgement on the policy clock tells (one that
 * took now > notAfter passed the chain for a second more).  The clock is
 * set for the check to the second wanted, and the handshake made again if
 * a second boundary fell inside.
 */
static int
ta_check_at(X509 *leaf, X509 *ca, int64_t at, char *r, size_t rsz)
{
	int tries, rc = 0;

	for (tries = 0; tries < 10; tries++) {
		time_step = at - 86400 - (int64_t)__real_time(NULL);
		clock_anchor();
		hs_moves = 1;
		hs_step_to = at - (int64_t)__real_time(NULL);
		rc = handshake(leaf, P.leaf_key, ca, info_with(1, 2, 0, 1, ca),
		    r, rsz);
		hs_moves = 0;
		if (clock_now() == at)
			return rc;
	}
	fail_msg("the policy clock could not be held at %lld", (long long)at);
	return rc;
}

static void
test_ta_ends_at_not_after(void **s)
{
	EVP_PKEY *cak = newkey();
	X509 *ca = mkcert(cak, "wide CA", NULL, NULL, 1, -86400 * 90,
	    86400 * 90);
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = mkcert(P.leaf_key, HOST, ca, cak, 0, -86400 * 40,
	    -86400 * 10);
	STACK_OF(X509) *sk = sk_X509_new_null();
	int64_t na;
	char r[48];

	assert_non_null(sk);
	assert_true(sk_X509_push(sk, lapsed) > 0);
	na = policy_chain_not_after(sk);
	sk_X509_free(sk);
	assert_true(na > 1);
	assert_int_equal(ta_check_at(lapsed, ca, na - 1, r, sizeof(r)), 0);
	if (ta_check_at(lapsed, ca, na, r, sizeof(r)) != -1)
		fail_msg("a DANE-TA chain passed at its notAfter: %s", r);
	assert_string_equal(r, "certificate-expired");
	X509_free(lapsed);
	X509_free(ca);
	EVP_PKEY_free(cak);
}

/* checked against DANE information without usable records (no DANE
 * verdict is made of it): a failure.  Before: success, "DANE not in
 * use", which a DANE verdict would have taken for its proof. */
static void
test_check_not_usable(void **s)
{
	char r[48];
	enum dane_state st[] = { DANE_NONE, DANE_UNUSABLE, DANE_DEFER };
	size_t i;

	for (i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		check_with = info_with(1, 3, 1, 1, P.leaf);
		check_with->state = st[i];
		assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca,
		    info_with(1, 3, 1, 1, P.leaf), r, sizeof(r)), -1);
		assert_string_equal(r, "validation-failure");
		dane_info_free(check_with);
	}
	check_with = NULL;
}

/* A server context with cert (signed by the test key) and chain, and a
 * DANE client that resumes TLS 1.2 sessions and completes every
 * handshake, as the proxy's does. */
static void
resumable_pair(SSL_CTX *sctx, SSL_CTX *cctx, X509 *cert, X509 *chain)
{
	SSL_CTX_use_certificate(sctx, cert);
	SSL_CTX_use_PrivateKey(sctx, P.leaf_key);
	SSL_CTX_add1_chain_cert(sctx, chain);
	SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"t", 1);
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	SSL_CTX_dane_enable(cctx);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, verify_accept);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
}

/* hs2(): the not_after dane_tls_check() gave */
static int64_t hs2_not_after;

/* one handshake on given contexts, optionally resuming sess; returns
 * dane_tls_check's result, *out the client's session */
static int
hs2(SSL_CTX *sctx, SSL_CTX *cctx, struct dane_info *d, SSL_SESSION *sess,
    SSL_SESSION **out, int *reused, char *reason, size_t rsz)
{
	SSL *sv, *c;
	int sp[2], i, sdone = 0, cdone = 0, rc;
	char detail[256];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	nonblock(sp[0]);
	nonblock(sp[1]);
	sv = SSL_new(sctx);
	c = SSL_new(cctx);
	SSL_set_fd(sv, sp[0]);
	SSL_set_fd(c, sp[1]);
	SSL_set_accept_state(sv);
	SSL_set_connect_state(c);
	assert_int_equal(dane_tls_prepare(d, c), 0);
	if (sess != NULL)
		assert_int_equal(SSL_set_session(c, sess), 1);
	hs_clock();
	for (i = 0; i < 1000 && !(sdone && cdone); i++) {
		if (!cdone && (rc = SSL_do_handshake(c)) == 1)
			cdone = 1;
		if (!sdone && (rc = SSL_do_handshake(sv)) == 1)
			sdone = 1;
	}
	assert_true(sdone && cdone);
	*reused = SSL_session_reused(c);
	rc = dane_tls_check(d, c, reason, rsz, detail, sizeof(detail),
	    &hs2_not_after);
	printf("# resumed=%d check=%d reason=%s detail=%s\n", *reused, rc,
	    reason, detail);
	if (out != NULL)
		*out = SSL_get1_session(c);
	/* a clean close keeps the session resumable */
	SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_set_shutdown(sv, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(sv);
	SSL_free(c);
	close(sp[0]);
	close(sp[1]);
	dane_info_free(d);
	return rc;
}

/* a resumed session is verified again against the TLSA records of the
 * verdict at hand: a session verified for one RRset does not pass for
 * another */
static void
test_resumed_session(void **s)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_SESSION *sess = NULL;
	char r[48];
	int reused;

	resumable_pair(sctx, cctx, P.leaf, P.ca);

	assert_int_equal(hs2(sctx, cctx, info_with(1, 3, 1, 1, P.leaf), NULL,
	    &sess, &reused, r, sizeof(r)), 0);
	assert_false(reused);
	assert_non_null(sess);
	/* same RRset: resumed and accepted */
	assert_int_equal(hs2(sctx, cctx, info_with(1, 3, 1, 1, P.leaf), sess,
	    NULL, &reused, r, sizeof(r)), 0);
	assert_true(reused);
	assert_string_equal(r, "success");
	/* another RRset that does not match the kept certificate */
	assert_int_equal(hs2(sctx, cctx, info_with(1, 3, 1, 1, P.other), sess,
	    NULL, &reused, r, sizeof(r)), -1);
	assert_true(reused);
	assert_string_equal(r, "tlsa-invalid");
	/* DANE-TA with the name checks, on the kept chain */
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 0, 1, P.ca), sess,
	    NULL, &reused, r, sizeof(r)), 0);
	assert_true(reused);
	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/*
 * A DANE-TA chain's validity is judged on the policy clock (core/clock.h),
 * on a full handshake and on a resumed one: a wall clock stepped back
 * would otherwise make an expired certificate valid again.  OpenSSL's own
 * clock cannot be moved here, so the policy clock is anchored 30 days
 * behind it (time() stepped back before the anchor), and each leaf is
 * judged the other way from what the real clock says.
 */
static void
test_ta_validity_on_policy_clock(void **s)
{
	EVP_PKEY *cak = newkey();
	X509 *ca = mkcert(cak, "wide CA", NULL, NULL, 1, -86400 * 90,
	    86400 * 90);
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = mkcert(P.leaf_key, HOST, ca, cak, 0, -86400 * 40,
	    -86400 * 10);
	/* valid by the real clock, not yet 30 days ago */
	X509 *fresh = mkcert(P.leaf_key, HOST, ca, cak, 0, -3600, 86400 * 10);
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_SESSION *sess = NULL;
	char r[48];
	int reused;

	time_step = -86400 * 30;
	clock_anchor();
	assert_int_equal(handshake(lapsed, P.leaf_key, ca,
	    info_with(1, 2, 0, 1, ca), r, sizeof(r)), 0);
	assert_int_equal(handshake(fresh, P.leaf_key, ca,
	    info_with(1, 2, 0, 1, ca), r, sizeof(r)), -1);
	assert_string_equal(r, "certificate-not-trusted");	/* not yet */
	/* DANE-EE: the leaf's validity is not judged at all */
	assert_int_equal(handshake(fresh, P.leaf_key, ca,
	    info_with(1, 3, 1, 1, fresh), r, sizeof(r)), 0);

	/* resumed: the kept chain is verified again, on the policy clock */
	resumable_pair(sctx, cctx, lapsed, ca);
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 0, 1, ca), NULL,
	    &sess, &reused, r, sizeof(r)), 0);
	assert_false(reused);
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 0, 1, ca), sess,
	    NULL, &reused, r, sizeof(r)), 0);
	assert_true(reused);
	/* the policy clock back on the real one: the same session's chain
	 * has expired */
	time_step = 0;
	clock_anchor();
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 0, 1, ca), sess,
	    NULL, &reused, r, sizeof(r)), -1);
	assert_true(reused);
	assert_string_equal(r, "certificate-expired");

	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	X509_free(lapsed);
	X509_free(fresh);
	X509_free(ca);
	EVP_PKEY_free(cak);
}

/* A DANE verdict of the engine's making for the records of d. */
static struct policy_verdict *
dane_verdict_of(struct dane_info *d)
{
	struct policy_verdict *v = calloc(1, sizeof(*v));

	assert_non_null(v);
	v->level = TLS_LEVEL_DANE;
	v->source = "dane";
	snprintf(v->domain, sizeof(v->domain), DOMAIN);
	snprintf(v->mx_host, sizeof(v->mx_host), HOST);
	assert_non_null(v->tls = calloc(1, sizeof(*v->tls)));
	v->tls->dane = d;
	return v;
}

/*
 * A leg proven by DANE-TA stands for a chain whose validity OpenSSL
 * judged: once a certificate of it has expired on the policy clock, the
 * very same TLSA records no longer fit the leg (a second recipient, the
 * next session on a parked leg), as a new connection or a resumed session
 * would fail (certificate-expired).  Before, the matching identity let
 * them cross for as long as the connection lasted.  A DANE-EE proof has
 * no validity to lose (RFC 7671 section 5.1).
 */
static void
test_ta_proof_expires(void **s)
{
	EVP_PKEY *cak = newkey();
	X509 *ca = mkcert(cak, "wide CA", NULL, NULL, 1, -86400 * 90,
	    86400 * 90);
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = mkcert(P.leaf_key, HOST, ca, cak, 0, -86400 * 40,
	    -86400 * 10);
	struct policy_verdict *ta = dane_verdict_of(info_with(1, 2, 0, 1,
	    ca));
	struct policy_verdict *ee = dane_verdict_of(info_with(1, 3, 1, 1,
	    lapsed));
	struct tls_proof pta, pee;
	struct tls_result res;
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_SESSION *sess = NULL;
	char r[48];
	int reused;

	time_step = -86400 * 30;
	clock_anchor();
	via = ta;
	assert_int_equal(handshake(lapsed, P.leaf_key, ca, NULL, r,
	    sizeof(r)), 0);
	pta = via_proof;
	via = ee;
	assert_int_equal(handshake(lapsed, P.leaf_key, ca, NULL, r,
	    sizeof(r)), 0);
	pee = via_proof;
	via = NULL;
	assert_int_equal(pta.level, TLS_LEVEL_DANE);
	assert_int_equal(pee.level, TLS_LEVEL_DANE);
	assert_int_equal(policy_leg_fits(ta, &pta, (SSL *)1, &res), 0);
	assert_int_equal(policy_leg_fits(ee, &pee, (SSL *)1, &res), 0);
	/* the policy clock passes the leaf's notAfter */
	time_step = 0;
	clock_anchor();
	assert_int_equal(policy_leg_fits(ta, &pta, (SSL *)1, &res), -1);
	assert_string_equal(res.reason, "certificate-expired");
	assert_int_equal(res.untried, 0);
	/* DANE-EE: validity is not judged */
	assert_int_equal(policy_leg_fits(ee, &pee, (SSL *)1, &res), 0);

	/* a resumed session's DANE-TA check ends at the same notAfter, a
	 * DANE-EE one never */
	time_step = -86400 * 30;
	clock_anchor();
	resumable_pair(sctx, cctx, lapsed, ca);
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 0, 1, ca), NULL,
	    &sess, &reused, r, sizeof(r)), 0);
	assert_int_equal(hs2_not_after, pta.not_after);
	assert_true(pta.not_after > 0);
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 0, 1, ca), sess,
	    NULL, &reused, r, sizeof(r)), 0);
	assert_true(reused);
	assert_int_equal(hs2_not_after, pta.not_after);
	assert_int_equal(hs2(sctx, cctx, info_with(1, 3, 1, 1, lapsed), sess,
	    NULL, &reused, r, sizeof(r)), 0);
	assert_true(reused);
	assert_int_equal(hs2_not_after, 0);
	time_step = 0;
	clock_anchor();

	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	policy_verdict_free(ta);
	policy_verdict_free(ee);
	X509_free(lapsed);
	X509_free(ca);
	EVP_PKEY_free(cak);
}

/*
 * The policy clock passes the DANE-TA chain's notAfter while the
 * handshake runs: dane_tls_prepare() set the verification time, and an
 * attacker on the path who holds the server's flight (tls_timeout after
 * each client flight) has OpenSSL judge the chain at that earlier time;
 * a resumed session's chain was verified again with the SSL's parameters,
 * that time included.  The check after the handshake judges it now:
 * certificate-expired, as policy_leg_fits() of the very proof says at
 * once.  Before, both passed, and the first recipient's mail crossed a
 * leg whose chain had expired.  DANE-EE: validity is not judged.
 */
static void
test_ta_expired_during_handshake(void **s)
{
	EVP_PKEY *cak = newkey();
	X509 *ca = mkcert(cak, "wide CA", NULL, NULL, 1, -86400 * 90,
	    86400 * 90);
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = mkcert(P.leaf_key, HOST, ca, cak, 0, -86400 * 40,
	    -86400 * 10);
	struct policy_verdict *ta = dane_verdict_of(info_with(1, 2, 0, 1,
	    ca));
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_SESSION *sess = NULL;
	char r[48];
	int reused;

	/* full handshakes */
	time_step = -86400 * 30;
	clock_anchor();
	hs_moves = 1;
	hs_step_to = 0;
	via = ta;
	assert_int_equal(handshake(lapsed, P.leaf_key, ca, NULL, r,
	    sizeof(r)), -1);
	via = NULL;
	assert_string_equal(r, "certificate-expired");
	assert_int_equal(via_proof.failed, 1);
	time_step = -86400 * 30;
	clock_anchor();
	assert_int_equal(handshake(lapsed, P.leaf_key, ca,
	    info_with(1, 2, 0, 1, ca), r, sizeof(r)), -1);
	assert_string_equal(r, "certificate-expired");
	time_step = -86400 * 30;
	clock_anchor();
	assert_int_equal(handshake(lapsed, P.leaf_key, ca,
	    info_with(1, 3, 1, 1, lapsed), r, sizeof(r)), 0);
	hs_moves = 0;

	/* a resumed session, its chain verified again at the check */
	time_step = -86400 * 30;
	clock_anchor();
	resumable_pair(sctx, cctx, lapsed, ca);
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 0, 1, ca), NULL,
	    &sess, &reused, r, sizeof(r)), 0);
	assert_false(reused);
	hs_moves = 1;
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 0, 1, ca), sess,
	    NULL, &reused, r, sizeof(r)), -1);
	assert_true(reused);
	assert_string_equal(r, "certificate-expired");
	time_step = -86400 * 30;
	clock_anchor();
	assert_int_equal(hs2(sctx, cctx, info_with(1, 3, 1, 1, lapsed), sess,
	    NULL, &reused, r, sizeof(r)), 0);
	assert_true(reused);
	hs_moves = 0;
	time_step = 0;
	clock_anchor();

	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	policy_verdict_free(ta);
	X509_free(lapsed);
	X509_free(ca);
	EVP_PKEY_free(cak);
}

/* the notAfter of x alone, as policy_chain_not_after() reads it */
static int64_t
not_after_of(X509 *x)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	int64_t t;

	sk_X509_push(sk, x);
	t = policy_chain_not_after(sk);
	sk_X509_free(sk);
	return t;
}

/*
 * DANE-TA by a bare public key: a 2 1 0 record holds the trust anchor's
 * key itself, and the server sends the leaf it signed, no CA certificate
 * (RFC 7671 section 5.2.2).  OpenSSL records that match at depth 0, the
 * depth a DANE-EE match has, yet the leaf's validity is judged (it is a
 * DANE-TA chain): the leaf that expires on the policy clock while the
 * handshake runs fails the check, and the proof ends with its notAfter,
 * full and resumed.  Before, depth 0 was taken for DANE-EE: the check
 * passed with not_after 0, and a parked leg carried mail for ever after
 * the leaf had expired.
 */
static void
test_ta_bare_key_validity(void **s)
{
	EVP_PKEY *cak = newkey();
	X509 *ca = mkcert(cak, "wide CA", NULL, NULL, 1, -86400 * 90,
	    86400 * 90);
	/* expired by the real clock, valid 30 days ago */
	X509 *lapsed = mkcert(P.leaf_key, HOST, ca, cak, 0, -86400 * 40,
	    -86400 * 10);
	struct policy_verdict *ta = dane_verdict_of(info_with(1, 2, 1, 0,
	    ca));
	struct tls_proof pta;
	struct tls_result res;
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_SESSION *sess = NULL;
	char r[48];
	int reused;

	/* the proof of a full handshake ends with the leaf */
	time_step = -86400 * 30;
	clock_anchor();
	via = ta;
	assert_int_equal(handshake(lapsed, P.leaf_key, NULL, NULL, r,
	    sizeof(r)), 0);
	pta = via_proof;
	assert_int_equal(pta.level, TLS_LEVEL_DANE);
	assert_int_equal(pta.not_after, not_after_of(lapsed));
	assert_int_equal(policy_leg_fits(ta, &pta, (SSL *)1, &res), 0);
	time_step = 0;
	clock_anchor();
	assert_int_equal(policy_leg_fits(ta, &pta, (SSL *)1, &res), -1);
	assert_string_equal(res.reason, "certificate-expired");

	/* the leaf expires while the handshake runs */
	time_step = -86400 * 30;
	clock_anchor();
	hs_moves = 1;
	hs_step_to = 0;
	assert_int_equal(handshake(lapsed, P.leaf_key, NULL, NULL, r,
	    sizeof(r)), -1);
	via = NULL;
	assert_string_equal(r, "certificate-expired");
	assert_int_equal(via_proof.failed, 1);
	hs_moves = 0;

	/* a resumed session's check ends at the same notAfter */
	time_step = -86400 * 30;
	clock_anchor();
	SSL_CTX_use_certificate(sctx, lapsed);
	SSL_CTX_use_PrivateKey(sctx, P.leaf_key);
	SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"t", 1);
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	SSL_CTX_dane_enable(cctx);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, verify_accept);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 1, 0, ca), NULL,
	    &sess, &reused, r, sizeof(r)), 0);
	assert_false(reused);
	assert_int_equal(hs2_not_after, pta.not_after);
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 1, 0, ca), sess,
	    NULL, &reused, r, sizeof(r)), 0);
	assert_true(reused);
	assert_int_equal(hs2_not_after, pta.not_after);
	time_step = 0;
	clock_anchor();

	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	policy_verdict_free(ta);
	X509_free(lapsed);
	X509_free(ca);
	EVP_PKEY_free(cak);
}

/*
 * A resumed session's chain is verified again with the key sizes the
 * handshake's own verification demands (OpenSSL's security level): an
 * RSA-1024 DANE-EE key that a full handshake refuses (EE_KEY_TOO_SMALL)
 * is not accepted on a session made where it was allowed.
 */
static void
test_resumed_weak_key(void **s)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *lax = SSL_CTX_new(TLS_client_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	EVP_PKEY *k = EVP_RSA_gen(1024);
	X509 *weak = mkcert(k, HOST, P.ca, P.ca_key, 0, -3600, 86400);
	SSL_SESSION *sess = NULL;
	char r[48];
	int reused;

	SSL_CTX_set_security_level(sctx, 0);
	SSL_CTX_use_certificate(sctx, weak);
	SSL_CTX_use_PrivateKey(sctx, k);
	SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"t", 1);
	SSL_CTX_set_security_level(lax, 0);
	SSL_CTX_set_security_level(cctx, 2);
	SSL_CTX_set_max_proto_version(lax, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	SSL_CTX_dane_enable(lax);
	SSL_CTX_dane_enable(cctx);
	SSL_CTX_set_verify(lax, SSL_VERIFY_PEER, verify_accept);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, verify_accept);
	SSL_CTX_set_session_cache_mode(lax, SSL_SESS_CACHE_CLIENT);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);

	/* at security level 2 a full handshake refuses the key */
	assert_int_equal(hs2(sctx, cctx, info_with(1, 3, 1, 1, weak), NULL,
	    NULL, &reused, r, sizeof(r)), -1);
	assert_int_equal(hs2(sctx, lax, info_with(1, 3, 1, 1, weak), NULL,
	    &sess, &reused, r, sizeof(r)), 0);
	assert_non_null(sess);
	/* and so does the check of a resumed session */
	assert_int_equal(hs2(sctx, cctx, info_with(1, 3, 1, 1, weak), sess,
	    NULL, &reused, r, sizeof(r)), -1);
	assert_true(reused);
	SSL_SESSION_free(sess);
	X509_free(weak);
	EVP_PKEY_free(k);
	SSL_CTX_free(sctx);
	SSL_CTX_free(lax);
	SSL_CTX_free(cctx);
}

/* the resumption key: unauthenticated levels share one key per host,
 * DANE without its RRset has none, a short buffer is refused */
static void
test_session_key(void **s)
{
	struct policy_verdict v;
	char k[300];

	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	v.source = "default";
	snprintf(v.mx_host, sizeof(v.mx_host), HOST);
	assert_int_equal(policy_tls_session_key(&v, k, sizeof(k)), 0);
	assert_string_equal(k, HOST "|unauthenticated");
	v.level = TLS_LEVEL_ENCRYPT;
	v.source = "tls-history";
	assert_int_equal(policy_tls_session_key(&v, k, sizeof(k)), 0);
	assert_string_equal(k, HOST "|unauthenticated");
	assert_int_equal(policy_tls_session_key(&v, k, 5), -1);
	v.level = TLS_LEVEL_DANE;
	assert_int_equal(policy_tls_session_key(&v, k, sizeof(k)), -1);
	/* verify without reference names proves nothing: no key, never
	 * a shorter one */
	v.level = TLS_LEVEL_VERIFY;
	assert_int_equal(policy_tls_session_key(&v, k, sizeof(k)), -1);
}

/* A DANE verdict for the TLSA RRset digest d, base mx.d.test and the
 * DANE-TA reference names given. */
static struct policy_verdict *
dane_verdict(unsigned char d, int nnames, const char *n1, const char *n2)
{
	struct policy_verdict *v = calloc(1, sizeof(*v));
	struct dane_info *di = calloc(1, sizeof(*di));

	assert_non_null(v);
	assert_non_null(di);
	v->level = TLS_LEVEL_DANE;
	v->source = "dane";
	snprintf(v->mx_host, sizeof(v->mx_host), HOST);
	di->state = DANE_USABLE;
	memset(di->digest, d, sizeof(di->digest));
	snprintf(di->tlsa_base, sizeof(di->tlsa_base), HOST);
	di->nnames = nnames;
	if (nnames > 0)
		snprintf(di->names[0], sizeof(di->names[0]), "%s", n1);
	if (nnames > 1)
		snprintf(di->names[1], sizeof(di->names[1]), "%s", n2);
	v->tls = calloc(1, sizeof(*v->tls));
	assert_non_null(v->tls);
	v->tls->dane = di;
	return v;
}

/* The DANE-TA reference names are part of what a DANE check stands for:
 * the resumption key and a leg's proof differ with them. */
static void
test_dane_identity_names(void **s)
{
	struct policy_verdict *a = dane_verdict(1, 2, HOST, "d.test");
	struct policy_verdict *b = dane_verdict(1, 2, HOST, "e.test");
	struct policy_verdict *c = dane_verdict(2, 2, HOST, "d.test");
	struct policy_verdict *a2 = policy_verdict_dup(a);
	struct tls_proof proof;
	struct tls_result res;
	char ka[300], kb[300], kc[300], ka2[300];

	assert_non_null(a2);
	assert_int_equal(policy_tls_session_key(a, ka, sizeof(ka)), 0);
	assert_int_equal(policy_tls_session_key(b, kb, sizeof(kb)), 0);
	assert_int_equal(policy_tls_session_key(c, kc, sizeof(kc)), 0);
	assert_int_equal(policy_tls_session_key(a2, ka2, sizeof(ka2)), 0);
	assert_string_not_equal(ka, kb);
	assert_string_not_equal(ka, kc);
	assert_string_equal(ka, ka2);
	/* a leg proven by DANE for a: fits a's copy, not b (names) nor c
	 * (records); the live session is not even looked at */
	memset(&proof, 0, sizeof(proof));
	proof.tls = 1;
	proof.level = TLS_LEVEL_DANE;
	policy_tls_session_key(a, ka, sizeof(ka));
	{
		/* the proof's id is the verdict identity: take it from a
		 * check-free path, the key's hex digest */
		const char *hex = strrchr(ka, '|') + 1;
		int i;

		for (i = 0; i < 32; i++) {
			unsigned x;

			sscanf(hex + 2 * i, "%2x", &x);
			proof.id[i] = (unsigned char)x;
		}
	}
	assert_int_equal(policy_leg_fits(a2, &proof, (SSL *)1, &res), 0);
	/* b's and c's records were never tried on this leg: their failure
	 * is no failure of theirs to report */
	assert_int_equal(policy_leg_fits(b, &proof, (SSL *)1, &res), -1);
	assert_int_equal(res.untried, 1);
	assert_int_equal(policy_leg_fits(c, &proof, (SSL *)1, &res), -1);
	assert_int_equal(res.untried, 1);
	proof.failed = 1;
	assert_int_equal(policy_leg_fits(a2, &proof, (SSL *)1, &res), -1);
	assert_int_equal(res.untried, 0);	/* tried, and failed */
	/* a leg set up for an encrypt recipient: no TLSA record tried */
	proof.failed = 0;
	proof.level = TLS_LEVEL_ENCRYPT;
	assert_int_equal(policy_leg_fits(a2, &proof, (SSL *)1, &res), -1);
	assert_int_equal(res.untried, 1);
	policy_verdict_free(a);
	policy_verdict_free(b);
	policy_verdict_free(c);
	policy_verdict_free(a2);
}

/* ---- a TLSA RRset from a lookup (canned DNS answers) ---- */

static struct mx_result *walked;
static struct dane_info *looked;

static void
walk_done(void *arg, struct mx_result *m)
{
	walked = m;
	ev_loop_stop(loop);
}

static void
lookup_done(void *arg, struct dane_info *d)
{
	looked = d;
	ev_loop_stop(loop);
}

/* The DANE lookup, as the engine runs it, for DOMAIN at 192.0.2.1: HOST
 * its only MX host, signed, with n TLSA records written by rd. */
static struct dane_info *
lookup_many(int n, int (*rd)(int i, unsigned char *out))
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	loop = ev_loop_new();
	nfakes = 0;
	mx(DOMAIN, 1, HOST, NULL);
	a(HOST, 1, "192.0.2.1");
	tlsa_many(HOST, n, rd);
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	walked = NULL;
	looked = NULL;
	assert_non_null(mx_walk((struct dns *)&sin, DOMAIN,
	    (struct sockaddr *)&sin, MX_WALK_A, walk_done, NULL));
	ev_loop_run(loop);
	assert_non_null(walked);
	assert_non_null(dane_lookup(loop, (struct dns *)&sin, walked,
	    (struct sockaddr *)&sin, lookup_done, NULL));
	free(walked);
	ev_loop_run(loop);
	fakes_clear();
	ev_loop_free(loop);
	loop = NULL;
	assert_non_null(looked);
	printf("# lookup of %d TLSA records: %s reason=%s ntlsa=%d usable=%d "
	    "detail=%s\n", n, dane_state_name(looked->state), looked->reason,
	    looked->ntlsa, looked->nusable, looked->detail);
	return looked;
}

/* Records of a rollover: 3 1 1 with distinct digests; the one at
 * rd_match (0-based) is P.leaf's; those before rd_usable_from are 1 1 1
 * (PKIX-EE: unusable for SMTP). */
static int rd_match, rd_usable_from;
static unsigned char rd_leaf[32];

static int
rd_rollover(int i, unsigned char *out)
{
	out[0] = i < rd_usable_from ? 1 : 3;
	out[1] = 1;
	out[2] = 1;
	memset(out + 3, 0xa5, 32);
	out[3] = (unsigned char)(i >> 8);
	out[4] = (unsigned char)i;
	if (i == rd_match)
		memcpy(out + 3, rd_leaf, 32);
	return 35;
}

static void
rd_setup(int match, int usable_from)
{
	struct dane_tlsa t;

	tlsa_of(&t, 3, 1, 1, P.leaf);
	memcpy(rd_leaf, t.data, 32);
	free(t.data);
	rd_match = match;
	rd_usable_from = usable_from;
}

/* stderr into a file while a lookup logs; count_stderr() stops it and
 * counts the lines holding what */
static int saved_err = -1;
static char errpath[] = "/tmp/test_dane.err.XXXXXX";

static void
capture_stderr(void)
{
	int fd;

	fflush(stderr);
	snprintf(errpath, sizeof(errpath), "/tmp/test_dane.err.XXXXXX");
	assert_true((fd = mkstemp(errpath)) >= 0);
	saved_err = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static int
count_stderr(const char *what)
{
	char line[4096];
	FILE *f;
	int n = 0;

	fflush(stderr);
	dup2(saved_err, STDERR_FILENO);
	close(saved_err);
	assert_non_null(f = fopen(errpath, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		printf("# stderr: %s", line);
		n += strstr(line, what) != NULL;
	}
	fclose(f);
	unlink(errpath);
	return n;
}

/* A key rollover's TLSA RRset beyond the old bound of 32 records, the
 * matching one the 40th: kept whole, the handshake authenticates. */
static void
test_many_tlsa_match_late(void **s)
{
	struct dane_info *d;
	char r[48];

	rd_setup(39, 0);
	d = lookup_many(40, rd_rollover);
	assert_int_equal(d->state, DANE_USABLE);
	assert_int_equal(d->ntlsa, 40);
	assert_int_equal(d->nusable, 40);
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca, d, r,
	    sizeof(r)), 0);
	assert_string_equal(r, "success");
}

/* Over the hard bound (DANE_MAX_TLSA): the records over it are dropped
 * with one warning, and that never weakens the verdict.  Kept usable
 * records decide (a match among them authenticates, a match only among
 * the dropped fails: a deferral); none of the kept usable: DANE_DEFER,
 * never the unauthenticated TLS of an unusable RRset. */
static void
test_many_tlsa_over_bound(void **s)
{
	struct dane_info *d;
	char r[48];

	log_init("test", 0, LOG_LVL_INFO);
	rd_setup(DANE_MAX_TLSA + 10, DANE_MAX_TLSA);
	capture_stderr();
	d = lookup_many(DANE_MAX_TLSA + 44, rd_rollover);
	assert_int_equal(count_stderr("event=dane-tlsa-dropped"), 1);
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "tlsa-invalid");
	dane_info_free(d);

	rd_setup(10, 0);
	d = lookup_many(DANE_MAX_TLSA + 44, rd_rollover);
	assert_int_equal(d->state, DANE_USABLE);
	assert_int_equal(d->ntlsa, DANE_MAX_TLSA);
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca, d, r,
	    sizeof(r)), 0);

	rd_setup(DANE_MAX_TLSA + 10, 0);
	d = lookup_many(DANE_MAX_TLSA + 44, rd_rollover);
	assert_int_equal(d->state, DANE_USABLE);
	assert_int_equal(handshake(P.leaf, P.leaf_key, P.ca, d, r,
	    sizeof(r)), -1);
	assert_string_equal(r, "tlsa-invalid");
}

/* ---- TLSA records OpenSSL cannot take ---- */

/* P.leaf with its key's curve made unknown (the OID's last arc): the
 * certificate parses, its public key does not decode, and OpenSSL's DANE
 * refuses it in a 3 0 0 or 2 0 0 record. */
static unsigned char badkey[1024];
static int badkey_len;

static void
make_badkey(void)
{
	static const unsigned char p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48,
	    0xce, 0x3d, 0x03, 0x01, 0x07 };
	unsigned char *der = NULL;
	int n = i2d_X509(P.leaf, &der), i;

	assert_true(n > 0 && n <= (int)sizeof(badkey));
	for (i = 0; i + (int)sizeof(p256) <= n; i++)
		if (memcmp(der + i, p256, sizeof(p256)) == 0)
			break;
	assert_true(i + (int)sizeof(p256) <= n);
	der[i + sizeof(p256) - 1] = 0x7f;
	memcpy(badkey, der, (size_t)n);
	badkey_len = n;
	OPENSSL_free(der);
}

/* the usability check refuses what SSL_dane_tlsa_add() refuses, and
 * leaves no error on the thread's queue */
static void
test_tlsa_undecodable_key(void **s)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	make_badkey();
	SSL_CTX_dane_enable(ctx);
	ssl = SSL_new(ctx);
	assert_true(SSL_dane_enable(ssl, HOST) > 0);
	assert_true(SSL_dane_tlsa_add(ssl, 3, 0, 0, badkey,
	    (size_t)badkey_len) <= 0);
	ERR_clear_error();
	assert_int_equal(dane_tlsa_usable(3, 0, 0, badkey,
	    (size_t)badkey_len), 0);
	assert_int_equal(dane_tlsa_usable(2, 0, 0, badkey,
	    (size_t)badkey_len), 0);
	assert_int_equal(ERR_peek_error(), 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

/* record i: 3 0 0 (i even) or 2 0 0 (i odd) holding badkey; from
 * rd_match on, 3 1 1 of P.leaf */
static int
rd_badkey(int i, unsigned char *out)
{
	if (i >= rd_match) {
		out[0] = 3;
		out[1] = 1;
		out[2] = 1;
		memcpy(out + 3, rd_leaf, 32);
		return 35;
	}
	out[0] = i % 2 ? 2 : 3;
	out[1] = 0;
	out[2] = 0;
	memcpy(out + 3, badkey, (size_t)badkey_len);
	return 3 + badkey_len;
}

/* The verdict the engine makes of a DANE answer (dane_verdict() in
 * policy.c), monitored or not. */
static struct policy_verdict *
verdict_of(struct dane_info *d, int monitor)
{
	struct policy_verdict *v = calloc(1, sizeof(*v));

	assert_non_null(v);
	snprintf(v->domain, sizeof(v->domain), DOMAIN);
	assert_int_equal(dane_apply(d, v), 1);
	if (v->level == TLS_LEVEL_DANE) {
		assert_non_null(v->tls = calloc(1, sizeof(*v->tls)));
		v->tls->dane = d;
	} else
		dane_info_free(d);
	if (monitor)
		policy_verdict_monitor(v);
	return v;
}

/* A verdict's handshake with HOST's real server: 0 delivered (the
 * verdict's check passed), -1 not. */
static int
verdict_handshake(const struct policy_verdict *v)
{
	char r[48];
	int rc;

	via = v;
	rc = handshake(P.leaf, P.leaf_key, P.ca, NULL, r, sizeof(r));
	via = NULL;
	return rc;
}

/*
 * TLSA records whose certificate OpenSSL cannot decode (3 0 0, 2 0 0)
 * are unusable (RFC 7671 section 4.1, RFC 7672 section 2.2): with none
 * usable left, TLS is mandatory and unauthenticated, in enforce mode and
 * (as a monitored may) in monitor mode, both delivered over TLS.  Beside
 * a usable record they are ignored.  Before: "usable", and the leg could
 * not be set up (SSL_dane_tlsa_add refused), a deferral in either mode.
 */
static void
test_tlsa_undecodable_lookup(void **s)
{
	struct policy_verdict *v;
	struct dane_info *d;
	int monitor;

	make_badkey();
	for (monitor = 0; monitor <= 1; monitor++) {
		rd_setup(2, 0);		/* two bad records, no good one */
		d = lookup_many(2, rd_badkey);
		assert_int_equal(d->state, DANE_UNUSABLE);
		assert_int_equal(d->nusable, 0);
		v = verdict_of(d, monitor);
		assert_int_equal(verdict_handshake(v), 0);
		assert_int_equal(via_proof.level, TLS_LEVEL_ENCRYPT);
		assert_int_equal(via_res.would_defer, 0);
		policy_verdict_free(v);
	}
	rd_setup(2, 0);			/* and a matching 3 1 1 */
	d = lookup_many(3, rd_badkey);
	assert_int_equal(d->state, DANE_USABLE);
	assert_int_equal(d->nusable, 1);
	v = verdict_of(d, 0);
	assert_int_equal(verdict_handshake(v), 0);
	assert_int_equal(via_proof.level, TLS_LEVEL_DANE);
	policy_verdict_free(v);
}

/* One DANE-EE full-key record (3 0 0) whose key OpenSSL cannot decode,
 * marked usable as if the usability check had passed it. */
static struct dane_info *
info_badkey_record(void)
{
	struct dane_info *d;

	make_badkey();
	d = info_with(1, 3, 1, 1, P.leaf);
	free(d->tlsa[0].data);
	d->tlsa[0].selector = 0;
	d->tlsa[0].mtype = 0;
	assert_non_null(d->tlsa[0].data = malloc((size_t)badkey_len));
	memcpy(d->tlsa[0].data, badkey, (size_t)badkey_len);
	d->tlsa[0].len = (size_t)badkey_len;
	d->tlsa[0].usable = 1;		/* as if the check had passed it */
	dane_tlsa_digest(d->tlsa, d->ntlsa, d->digest);
	return d;
}

/*
 * A DANE verdict none of whose usable records OpenSSL takes (whatever the
 * reason): enforce mode cannot set the leg up (a deferral: nothing
 * authenticated it), monitor mode delivers over the TLS it demands itself
 * and reports that enforce mode would defer (tlsa-invalid), with a
 * failed proof (never parked nor cached).
 */
static void
test_monitor_no_loadable_record(void **s)
{
	struct dane_info *d;
	struct policy_verdict *v;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	d = info_badkey_record();
	v = verdict_of(d, 0);
	SSL_CTX_dane_enable(ctx);
	ssl = SSL_new(ctx);
	assert_int_equal(policy_tls_prepare(v, ssl), -1);
	SSL_free(ssl);
	SSL_CTX_free(ctx);

	policy_verdict_monitor(v);
	assert_int_equal(verdict_handshake(v), 0);
	assert_int_equal(via_res.would_defer, 1);
	assert_string_equal(via_res.reason, "tlsa-invalid");
	assert_int_equal(via_proof.failed, 1);
	assert_true(via_proof.level != TLS_LEVEL_DANE);
	policy_verdict_free(v);
}

/*
 * As test_monitor_no_loadable_record, with the verdict's CA store (the
 * policy's, as dane_verdict() gives every DANE verdict) trusting the
 * server's chain, as a public CA does a real MX's: with no TLSA record
 * loaded OpenSSL verified the chain by WebPKI, which is no DANE check;
 * enforce mode's report still says why, tlsa-invalid.  Red before
 * (dane_tls_check() without its test of the records taken): reported as
 * validation-failure, "verified, but not by DANE".
 */
static void
test_monitor_no_loadable_record_trusted(void **s)
{
	struct dane_info *d;
	struct policy_verdict *v;

	d = info_badkey_record();
	v = verdict_of(d, 1);
	assert_non_null(v->tls->store = X509_STORE_new());
	assert_int_equal(X509_STORE_add_cert(v->tls->store, P.ca), 1);
	assert_int_equal(verdict_handshake(v), 0);
	assert_int_equal(via_res.would_defer, 1);
	assert_string_equal(via_res.reason, "tlsa-invalid");
	assert_int_equal(via_proof.failed, 1);
	policy_verdict_free(v);
}

/*
 * The verdict each DANE state makes (dane_apply()): usable records DANE,
 * only unusable ones TLS mandatory, unauthenticated (RFC 7672 section
 * 2.2: encrypt, and a server without STARTTLS "dane-required"), a
 * deferral its reason and whether it is this gateway's own, none no
 * verdict at all.  Red before (the unusable state made may): the mail to
 * a domain with only unusable TLSA records went in cleartext to a
 * server that offered no STARTTLS.
 */
static void
test_dane_apply_levels(void **s)
{
	struct policy_verdict v;
	struct dane_info *d = info_with(1, 3, 1, 1, P.leaf);

	memset(&v, 0, sizeof(v));
	assert_int_equal(dane_apply(d, &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_DANE);
	assert_string_equal(v.source, "dane");
	assert_string_equal(v.mx_host, HOST);
	memset(&v, 0, sizeof(v));
	d->state = DANE_UNUSABLE;
	assert_int_equal(dane_apply(d, &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_ENCRYPT);
	assert_string_equal(v.source, "dane");
	assert_string_equal(policy_no_starttls_reason(&v), "dane-required");
	memset(&v, 0, sizeof(v));
	d->state = DANE_DEFER;
	snprintf(d->reason, sizeof(d->reason), DANE_LOCAL_ERROR);
	d->local = 1;
	assert_int_equal(dane_apply(d, &v), 1);
	assert_int_equal(v.level, TLS_LEVEL_DEFER);
	assert_string_equal(v.reason, DANE_LOCAL_ERROR);
	assert_int_equal(v.local, 1);
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_MAY;
	d->state = DANE_NONE;
	assert_int_equal(dane_apply(d, &v), 0);
	assert_int_equal(v.level, TLS_LEVEL_MAY);
	assert_null(v.source);
	dane_info_free(d);
}

static void
test_info_dup(void **s)
{
	struct dane_info *d = info_with(2, 3, 1, 1, P.leaf, 3, 0, 0, P.leaf);
	struct dane_info *c = dane_info_dup(d);

	assert_non_null(c);
	assert_int_equal(c->ntlsa, 2);
	assert_ptr_not_equal(c->tlsa[1].data, d->tlsa[1].data);
	assert_memory_equal(c->tlsa[1].data, d->tlsa[1].data, d->tlsa[1].len);
	dane_info_free(d);
	dane_info_free(c);
}

/*
 * A resumed session verified again for DANE-TA records whose reference
 * names could not be copied into the verification (out of memory): the
 * check fails.  Before, the kept chain was verified without names, and a
 * certificate for another name passed a DANE-TA verdict.
 */
static void
test_resumed_names_not_copied(void **s)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_SESSION *sess = NULL;
	char r[48];
	int reused, rc;

	resumable_pair(sctx, cctx, P.wrongname, P.ca);

	/* DANE-EE takes the certificate whatever its name */
	assert_int_equal(hs2(sctx, cctx, info_with(1, 3, 1, 1, P.wrongname),
	    NULL, &sess, &reused, r, sizeof(r)), 0);
	assert_non_null(sess);
	/* DANE-TA does not: other.test is not mx.example.test */
	assert_int_equal(hs2(sctx, cctx, info_with(1, 2, 0, 1, P.ca), sess,
	    NULL, &reused, r, sizeof(r)), -1);
	assert_true(reused);
	assert_string_equal(r, "certificate-host-mismatch");
	set1_fail = 1;
	rc = hs2(sctx, cctx, info_with(1, 2, 0, 1, P.ca), sess, NULL,
	    &reused, r, sizeof(r));
	set1_fail = 0;
	assert_int_equal(rc, -1);
	assert_true(reused);
	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/*
 * DANE-TA: a leaf the trust anchor issued to an attacker (CA:FALSE,
 * for attacker.test) signs a leaf for the MX host, sent with it; the TA
 * record is the CA's full certificate (no need to send it) or its key's
 * digest.  Refused: a CA:FALSE issuer is no CA.  Behaviour pinned.
 */
static void
test_ta_leaf_as_issuer(void **s)
{
	EVP_PKEY *ak = newkey();
	X509 *mid = test_cert(ak, "attacker.test", NULL, P.ca, P.ca_key,
	    -3600, 86400, 0);
	X509 *x;
	X509V3_CTX ctx;
	char r[48];

	assert_non_null(mid);
	X509V3_set_ctx(&ctx, P.ca, mid, NULL, NULL, 0);
	test_cert_ext(mid, &ctx, NID_subject_alt_name, "DNS:attacker.test");
	test_cert_ext(mid, &ctx, NID_basic_constraints, "critical,CA:FALSE");
	assert_true(X509_sign(mid, P.ca_key, EVP_sha256()) > 0);
	x = mkcert(P.leaf_key, HOST, mid, ak, 0, -3600, 86400);
	assert_int_equal(handshake(x, P.leaf_key, mid,
	    info_with(1, 2, 0, 0, P.ca), r, sizeof(r)), -1);
	assert_int_equal(handshake(x, P.leaf_key, mid,
	    info_with(1, 2, 1, 0, P.ca), r, sizeof(r)), -1);
	X509_free(x);
	X509_free(mid);
	EVP_PKEY_free(ak);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tlsa_parse),
		cmocka_unit_test(test_tlsa_usable),
		cmocka_unit_test(test_tlsa_usable_sha512_length),
		cmocka_unit_test(test_digest_order),
		cmocka_unit_test(test_digest_ties),
		cmocka_unit_test(test_311),
		cmocka_unit_test(test_311_no),
		cmocka_unit_test(test_301),
		cmocka_unit_test(test_301_no),
		cmocka_unit_test(test_312),
		cmocka_unit_test(test_312_no),
		cmocka_unit_test(test_201),
		cmocka_unit_test(test_201_no),
		cmocka_unit_test(test_211),
		cmocka_unit_test(test_211_no),
		cmocka_unit_test(test_mixed_set),
		cmocka_unit_test(test_digest_agility),
		cmocka_unit_test(test_ta_other_chain),
		cmocka_unit_test(test_ta_leaf_as_issuer),
		cmocka_unit_test(test_name_mismatch_ta_fails),
		cmocka_unit_test(test_name_mismatch_ee_passes),
		cmocka_unit_test(test_ta_domain_name),
		cmocka_unit_test(test_ta_cn_only),
		cmocka_unit_test(test_ta_partial_wildcard),
		cmocka_unit_test(test_expired_ee_passes),
		cmocka_unit_test(test_expired_ta_fails),
		cmocka_unit_test(test_not_yet_valid_ta_fails),
		cmocka_unit_test_teardown(test_ta_validity_on_policy_clock, reset_moves),
		cmocka_unit_test_teardown(test_ta_proof_expires, reset_moves),
		cmocka_unit_test_teardown(test_ta_expired_during_handshake, reset_moves),
		cmocka_unit_test_teardown(test_ta_bare_key_validity, reset_moves),
		cmocka_unit_test(test_prepare_unusable),
		cmocka_unit_test_teardown(test_other_rrset, reset_moves),
		cmocka_unit_test_teardown(test_other_rrset_same_shape,
		    reset_moves),
		cmocka_unit_test_teardown(test_other_base_or_names,
		    reset_moves),
		cmocka_unit_test_teardown(test_fewer_names, reset_moves),
		cmocka_unit_test_teardown(test_ta_ends_at_not_after,
		    reset_moves),
		cmocka_unit_test_teardown(test_check_not_usable, reset_moves),
		cmocka_unit_test(test_resumed_session),
		cmocka_unit_test(test_resumed_weak_key),
		cmocka_unit_test(test_resumed_names_not_copied),
		cmocka_unit_test(test_session_key),
		cmocka_unit_test(test_dane_identity_names),
		cmocka_unit_test(test_dane_apply_levels),
		cmocka_unit_test(test_info_dup),
		cmocka_unit_test(test_many_tlsa_match_late),
		cmocka_unit_test(test_many_tlsa_over_bound),
		cmocka_unit_test_teardown(test_tlsa_undecodable_key, reset_moves),
		cmocka_unit_test(test_tlsa_undecodable_lookup),
		cmocka_unit_test(test_monitor_no_loadable_record),
		cmocka_unit_test(test_monitor_no_loadable_record_trusted),
	};

	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
