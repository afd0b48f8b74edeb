/*
 * test_override.c - tls_policy levels with Postfix's names (policy/
 * override.c): level parsing, match= and protocols=, the old "dane"
 * spelling's warning, a Postfix smtp_tls_policy_maps source file
 * (tls_policy_file: keys, comments, continuation lines, FILE:LINE
 * errors), and the fingerprint level and protocols= on real in-memory
 * handshakes with certificates made here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "policy/override.h"
#include "policy/policy.h"
#include "tests/unit/testcert.h"
#include "tests/unit/lookupwait.h"

/* self-signed, no extensions */
#define mkcert(k, cn) test_cert((k), (cn), NULL, NULL, NULL, -3600, 86400, 0)

/* ---- parsing ---- */

static int
load(struct ovr_table *t, const char **lines, const char *file, char *err,
    size_t errsz)
{
	struct strlist l;
	int n;

	for (n = 0; lines[n] != NULL; n++)
		;
	l.n = n;
	l.v = (char **)lines;
	err[0] = '\0';
	return ovr_load(t, &l, file, NULL, 0, err, errsz);
}

static void
test_levels(void **state)
{
	const char *lines[] = {
		"a.test none", "b.test may", "c.test encrypt",
		"d.test dane-only", "e.test verify match=mx.e.test:.e.test",
		"f.test secure", "g.test fingerprint match="
		"AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:"
		"AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99",
		"h.test encrypt protocols=>=TLSv1.2",
		"i.test encrypt protocols=!SSLv2:!SSLv3:!TLSv1:!TLSv1.1",
		"j.test secure protocols=TLSv1.2 match=j.test",
		/* SSLv2 is never offered: not excluding it leaves the range
		 * contiguous all the same */
		"k.test encrypt protocols=!SSLv3",
		NULL,
	};
	struct ovr_table t = { 0 };
	char err[512];

	assert_int_equal(load(&t, lines, NULL, err, sizeof(err)), 0);
	assert_int_equal(t.n, 11);
	assert_int_equal(t.nwarn, 0);
	assert_int_equal(t.e[0].level, OVR_NONE);
	assert_int_equal(t.e[1].level, OVR_MAY);
	assert_int_equal(t.e[2].level, OVR_ENCRYPT);
	assert_int_equal(t.e[3].level, OVR_DANE);
	assert_string_equal(ovr_level_name(t.e[3].level), "dane-only");
	assert_int_equal(t.e[4].level, OVR_VERIFY);
	assert_int_equal(t.e[4].nmatch, 2);
	assert_string_equal(t.e[4].match[1], ".e.test");
	assert_int_equal(t.e[5].level, OVR_SECURE);
	assert_int_equal(t.e[6].level, OVR_FINGERPRINT);
	assert_int_equal(t.e[6].nfp, 1);
	assert_int_equal(t.e[6].fp[0][0], 0xaa);
	assert_int_equal(t.e[6].fp[0][31], 0x99);
	assert_int_equal(t.e[7].min_proto, TLS1_2_VERSION);
	assert_int_equal(t.e[7].max_proto, 0);
	assert_int_equal(t.e[8].min_proto, TLS1_2_VERSION);
	assert_int_equal(t.e[8].max_proto, 0);
	assert_int_equal(t.e[9].min_proto, TLS1_2_VERSION);
	assert_int_equal(t.e[9].max_proto, TLS1_2_VERSION);
	assert_int_equal(t.e[10].min_proto, TLS1_VERSION);
	assert_int_equal(t.e[10].max_proto, 0);
	ovr_clear(&t);
}

/*
 * match= names as certificates are compared with them: a trailing dot
 * dropped, a U-label as its A-label, lower case, a leading dot kept (a
 * trailing dot or a U-label matched no certificate, so the mail was
 * deferred for good).  One that is no host name stays as written, with
 * a warning.
 */
static void
test_match_names_normalised(void **state)
{
	const char *lines[] = {
		"k.test verify match=MX.K.test.:.B\xc3\xbc" "cher.example:hostname",
		"l.test secure match=bad_name.test",
		NULL,
	};
	struct ovr_table t = { 0 };
	char err[512];

	assert_int_equal(load(&t, lines, NULL, err, sizeof(err)), 0);
	assert_int_equal(t.e[0].nmatch, 3);
	assert_string_equal(t.e[0].match[0], "mx.k.test");
	assert_string_equal(t.e[0].match[1], ".xn--bcher-kva.example");
	assert_string_equal(t.e[0].match[2], "hostname");
	assert_string_equal(t.e[1].match[0], "bad_name.test");
	assert_int_equal(t.nwarn, 1);
	assert_non_null(strstr(t.warn, "match=bad_name.test"));
	ovr_clear(&t);
}

static void
test_old_dane_spelling(void **state)
{
	const char *lines[] = { "x.test dane", NULL };
	struct ovr_table t = { 0 };
	char err[512];

	assert_int_equal(load(&t, lines, NULL, err, sizeof(err)), 0);
	/* mandatory, as before, with a warning naming Postfix's words */
	assert_int_equal(t.e[0].level, OVR_DANE);
	assert_int_equal(t.nwarn, 1);
	assert_string_equal(t.warn, "tls_policy \"x.test dane\": tls_policy "
	    "'dane' means Postfix's 'dane-only' in this release; write "
	    "dane-only (mandatory) or dane (opportunistic, Postfix's "
	    "meaning)");
	ovr_clear(&t);
}

#define FP64 "AABBCCDDEEFF00112233445566778899" \
	"AABBCCDDEEFF00112233445566778899"

static void
test_bad_lines(void **state)
{
	static const struct {
		const char	*line;
		const char	*want;
	} bad[] = {
		{ "x.test bogus", "unknown level bogus" },
		{ "x.test encrypt match=x.test", "match= applies to" },
		{ "x.test fingerprint", "fingerprint needs match=" },
		{ "x.test fingerprint match=AA:BB", "not a SHA-256" },
		{ "x.test encrypt protocols=!TLSv1.1", "contiguous range" },
		{ "x.test encrypt protocols=>=TLSv9", "unknown protocol" },
		{ "x.test encrypt protocols=TLSv1.2:!TLSv1", "mix of" },
		{ "x.test encrypt ciphers=high", "unsupported attribute "
		    "ciphers=high" },
		/* as Postfix, which takes such a policy as invalid (red
		 * before: the last protocols= won, and an empty match=
		 * left verify/secure on their default names) */
		{ "x.test secure protocols=>=TLSv1.2 protocols=>=TLSv1",
		    "protocols= given twice" },
		{ "x.test verify match=", "match= with no name" },
		{ "x.test secure match=:", "match= with no name" },
		{ "x.test fingerprint match=" FP64 " match=|",
		    "match= with no digest" },
	};
	struct ovr_table t = { 0 };
	char err[512];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *lines[] = { bad[i].line, NULL };

		assert_int_equal(load(&t, lines, NULL, err, sizeof(err)), -1);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("%s: got \"%s\"", bad[i].line, err);
		assert_int_equal(t.n, 0);
	}
}

/* Postfix splits a policy at white space and commas, and takes level
 * and attribute names in any case: the same line must mean the same
 * here (red before: these were errors, and "protocols=!SSLv2,!SSLv3"
 * loaded, which Postfix refuses as an invalid policy). */
static void
test_postfix_tokens(void **state)
{
	const char *lines[] = {
		"a.test SECURE", "b.test Verify,MATCH=mx.b.test, match=.b.test",
		"c.test encrypt Protocols=>=TLSv1.2", "d.test Dane", NULL,
	};
	static const struct {
		const char	*line;
		const char	*want;
	} bad[] = {
		{ "x.test encrypt protocols=!SSLv2,!SSLv3",
		    "not NAME=VALUE: !SSLv3" },
		{ "x.test verify match=a.test,b.test", "b.test" },
	};
	struct ovr_table t = { 0 };
	char err[512];
	size_t i;

	assert_int_equal(load(&t, lines, NULL, err, sizeof(err)), 0);
	assert_int_equal(t.n, 4);
	assert_int_equal(t.e[0].level, OVR_SECURE);
	assert_int_equal(t.e[1].level, OVR_VERIFY);
	assert_int_equal(t.e[1].nmatch, 2);
	assert_string_equal(t.e[1].match[0], "mx.b.test");
	assert_string_equal(t.e[1].match[1], ".b.test");
	assert_int_equal(t.e[2].min_proto, TLS1_2_VERSION);
	/* mxguard.conf's old "dane", in any case: still mandatory, warned */
	assert_int_equal(t.e[3].level, OVR_DANE);
	assert_int_equal(t.nwarn, 1);
	ovr_clear(&t);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *one[] = { bad[i].line, NULL };

		assert_int_equal(load(&t, one, NULL, err, sizeof(err)), -1);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("%s: got \"%s\"", bad[i].line, err);
	}
}

static char *
write_file(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/mxg-ovr-XXXXXX");
	assert_true((fd = mkstemp(path)) != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void
test_postfix_file(void **state)
{
	const char *lines[] = { "conf.test may", NULL };
	struct ovr_table t = { 0 };
	struct sockaddr_in sin;
	const struct ovr_entry *e;
	char err[512], *path, want[600];

	path = write_file(
	    "# smtp_tls_policy_maps, as Postfix reads it\n"
	    "\n"
	    "example.com\tdane-only\n"
	    ".example.net  secure\n"
	    "   match=.example.net:example.net\n"
	    "\t# a comment inside is skipped\n"
	    "[192.0.2.9]:25 encrypt protocols=>=TLSv1.2\n"
	    "[relay.example.org] verify\n"
	    "[submit.example.org]:587 encrypt\n"
	    "dane.example dane\n");
	assert_int_equal(load(&t, lines, path, err, sizeof(err)), 0);
	assert_int_equal(t.n, 6);	/* the :587 entry skipped */
	/* [relay.example.org] is the recipient domain relay.example.org,
	 * not a relay, and the load says so (red before: no warning);
	 * the :587 entry is skipped with a warning (the last) */
	assert_int_equal(t.nwarn, 2);
	assert_non_null(strstr(t.warn, "submit.example.org]:587"));
	snprintf(want, sizeof(want), "%s:9:", path);
	assert_memory_equal(t.warn, want, strlen(want));
	/* mxguard.conf's lines first */
	assert_string_equal(t.e[0].dest, "conf.test");
	assert_string_equal(t.e[1].dest, "example.com");
	assert_int_equal(t.e[1].level, OVR_DANE);
	e = ovr_find(&t, "mx.example.net", NULL);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_SECURE);
	assert_int_equal(e->nmatch, 2);
	assert_null(ovr_find(&t, "example.net", NULL));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.9", &sin.sin_addr);
	e = ovr_find(&t, "whatever.test", (struct sockaddr *)&sin);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_ENCRYPT);
	assert_int_equal(e->min_proto, TLS1_2_VERSION);
	e = ovr_find(&t, "relay.example.org", NULL);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_VERIFY);
	/* in a Postfix table "dane" is Postfix's dane, without a warning */
	e = ovr_find(&t, "dane.example", NULL);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_DANE_MAY);
	ovr_clear(&t);
	unlink(path);

	/* port 25 as Postfix also writes it, by name or with a leading
	 * zero: the entry applies (red before: skipped with a warning, so
	 * the relay got the DNS-based policy instead of secure) */
	path = write_file("[192.0.2.10]:smtp secure match=relay.example\n"
	    "[192.0.2.11]:025 encrypt\n[192.0.2.12]:0 encrypt\n");
	assert_int_equal(load(&t, lines, path, err, sizeof(err)), 0);
	assert_int_equal(t.n, 3);	/* :0 is no port 25: skipped */
	assert_int_equal(t.nwarn, 1);
	inet_pton(AF_INET, "192.0.2.10", &sin.sin_addr);
	e = ovr_find(&t, "whatever.test", (struct sockaddr *)&sin);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_SECURE);
	inet_pton(AF_INET, "192.0.2.11", &sin.sin_addr);
	e = ovr_find(&t, "whatever.test", (struct sockaddr *)&sin);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_ENCRYPT);
	ovr_clear(&t);
	unlink(path);

	/* the relay warning's words, with its line */
	path = write_file("[relay.example.org]:25 secure\n");
	assert_int_equal(load(&t, lines, path, err, sizeof(err)), 0);
	assert_int_equal(t.nwarn, 1);
	snprintf(want, sizeof(want), "%s:1: [relay.example.org] is taken as "
	    "the recipient domain relay.example.org (mxguard sees the "
	    "address the MTA connects to, not its next hop): for a relay "
	    "host, write its address, [192.0.2.25]", path);
	assert_string_equal(t.warn, want);
	ovr_clear(&t);
	unlink(path);
}

static void
test_postfix_file_errors(void **state)
{
	const char *lines[] = { NULL };
	struct ovr_table t = { 0 };
	char err[512], want[600], *path;

	/* the error names the line the entry starts on */
	path = write_file("# x\nok.test may\nbad.test encrypt\n"
	    "  ciphers=high\n");
	assert_int_equal(load(&t, lines, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: unsupported attribute "
	    "ciphers=high", path);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("got \"%s\"", err);
	unlink(path);
	path = write_file("  secure\n");
	assert_int_equal(load(&t, lines, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":1: continuation line"));
	unlink(path);
	path = write_file("x.test\n");
	assert_int_equal(load(&t, lines, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":1: want DEST LEVEL"));
	unlink(path);
	/* a key with a trailing dot: Postfix strips the dot from the
	 * recipient domain and never looks such a key up, so its `none`
	 * must not apply here either (red before: taken as x.test) */
	path = write_file("ok.test may\nx.test. none\n");
	assert_int_equal(load(&t, lines, path, err, sizeof(err)), -1);
	if (strstr(err, ":2: key x.test. ends in a dot") == NULL)
		fail_msg("got \"%s\"", err);
	unlink(path);
	path = write_file(".x.test. none\n");
	assert_int_equal(load(&t, lines, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":1: key .x.test. ends in a dot"));
	unlink(path);
	/* a NUL byte: Postfix reads the line up to it, here that would be
	 * verify without its match= (red before: loaded so); refused */
	{
		static const char nul[] = "ok.test may\n"
		    "a.test verify\0 match=mx.a.test\n";
		struct strlist none = { NULL, 0 };

		assert_int_equal(ovr_load(&t, &none, "pol", nul,
		    sizeof(nul) - 1, err, sizeof(err)), -1);
		if (strstr(err, "pol:2: NUL byte") == NULL)
			fail_msg("got \"%s\"", err);
		/* nor does a NUL make a line blank */
		assert_int_equal(ovr_load(&t, &none, "pol", "\0x.test none\n",
		    14, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "pol:1: NUL byte"));
	}
	assert_int_equal(load(&t, lines, "/nonexistent/mxg-policy", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/mxg-policy"));
	/* one line per destination: a mxguard.conf `may` shadowing the
	 * file's `secure`, two lines of one file, one address twice (the
	 * first would win in silence: refused, both named) */
	{
		const char *conf[] = { "bank.example may", NULL };
		const char *two[] = { "[192.0.2.1] encrypt",
		    "192.0.2.1 verify", NULL };

		path = write_file("bank.example secure\n");
		assert_int_equal(load(&t, conf, path, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "the same destination twice, "
		    "\"bank.example may\" and \"bank.example secure\""));
		unlink(path);
		path = write_file("x.test secure\n.x.test may\n"
		    "x.test none\n");
		assert_int_equal(load(&t, lines, path, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "\"x.test secure\" and "
		    "\"x.test none\""));
		unlink(path);
		assert_int_equal(load(&t, two, NULL, err, sizeof(err)), -1);
		if (strstr(err, "same destination twice") == NULL)
			fail_msg("got \"%s\"", err);
	}
	assert_int_equal(t.n, 0);
}

/* ---- fingerprint and protocols= on handshakes ---- */

static EVP_PKEY *key, *key2;
static X509 *cert, *cert2;
static struct ev_loop *loop;
static struct policy *pol;

/* colon-separated upper-case hex, as Postfix's posttls-finger writes */
static void
hexfp(const unsigned char d[32], char *out)
{
	int i;

	for (i = 0; i < 32; i++)
		sprintf(out + 3 * i, "%02X%s", d[i], i < 31 ? ":" : "");
}

static struct policy_verdict *
verdict(const char *ip)
{
	return lookup_wait(loop, pol, "any.test", ip);
}

static int
setup_tls(void **state)
{
	unsigned char d[32];
	unsigned int len;
	char err[256], h1[100], h2[100];
	struct config *cfg;
	int i;

	log_init("test", 0, LOG_LVL_ERR);
	key = EVP_EC_gen("P-256");
	key2 = EVP_EC_gen("P-256");
	cert = mkcert(key, "mx.fp.test");
	cert2 = mkcert(key2, "mx.fp.test");
	cfg = config_load(NULL, err, sizeof(err));
	cfg->dns_servers.v = calloc(1, sizeof(char *));
	cfg->dns_servers.v[0] = strdup("127.0.0.1:9");	/* nothing there */
	cfg->dns_servers.n = 1;
	cfg->dns_timeout = 600;
	cfg->sts_enable = 0;
	cfg->tls_policy.v = calloc(6, sizeof(char *));
	X509_digest(cert, EVP_sha256(), d, &len);
	hexfp(d, h1);
	/* Postfix's public key digest: over the DER SubjectPublicKeyInfo */
	{
		unsigned char *der = NULL;
		int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert2), &der);

		if (n <= 0 || !EVP_Digest(der, (size_t)n, d, &len,
		    EVP_sha256(), NULL))
			return -1;
		OPENSSL_free(der);
	}
	hexfp(d, h2);
	/* .5: cert's certificate digest; .6: an unrelated digest, then
	 * cert2's public key digest; .7: encrypt, TLS 1.3 only; .9: may,
	 * TLS 1.3 only; .10: encrypt, up to TLS 1.2 */
	if (asprintf(&cfg->tls_policy.v[0], "192.0.2.5 fingerprint match=%s",
	    h1) == -1 || asprintf(&cfg->tls_policy.v[1], "192.0.2.6 "
	    "fingerprint match=%064d|%s", 0, h2) == -1)
		return -1;
	cfg->tls_policy.v[2] = strdup("192.0.2.7 encrypt protocols=>=TLSv1.3");
	cfg->tls_policy.v[3] = strdup("192.0.2.8 encrypt");
	cfg->tls_policy.v[4] = strdup("192.0.2.9 may protocols=>=TLSv1.3");
	cfg->tls_policy.v[5] = strdup("192.0.2.10 encrypt protocols=<=TLSv1.2");
	cfg->tls_policy.n = 6;
	for (i = 0; i < 6; i++)
		if (cfg->tls_policy.v[i] == NULL)
			return -1;
	loop = ev_loop_new();
	pol = policy_new(loop, cfg, err, sizeof(err));
	config_free(cfg);
	return pol ? 0 : -1;
}

static int
teardown_tls(void **state)
{
	policy_free(pol);
	ev_loop_free(loop);
	X509_free(cert);
	X509_free(cert2);
	EVP_PKEY_free(key);
	EVP_PKEY_free(key2);
	return 0;
}

/* In-memory handshake: a server with x (its versions up to smax, 0 =
 * any), a client prepared by v.  Returns the client SSL or NULL when the
 * handshake failed. */
static SSL *
handshake(const struct policy_verdict *v, X509 *x, EVP_PKEY *k, int smax)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *s, *c;
	BIO *b1, *b2;
	int i, cr = 0, sr = 0;

	assert_int_equal(SSL_CTX_use_certificate(sctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(sctx, k), 1);
	if (smax)
		SSL_CTX_set_max_proto_version(sctx, smax);
	s = SSL_new(sctx);
	c = SSL_new(cctx);
	assert_int_equal(policy_tls_prepare(v, c), 0);
	BIO_new_bio_pair(&b1, 0, &b2, 0);
	SSL_set_bio(c, b1, b1);
	SSL_set_bio(s, b2, b2);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (i = 0; i < 100 && (cr != 1 || sr != 1); i++) {
		if (cr != 1 && (cr = SSL_do_handshake(c)) <= 0 &&
		    SSL_get_error(c, cr) == SSL_ERROR_SSL)
			break;
		if (sr != 1 && (sr = SSL_do_handshake(s)) <= 0 &&
		    SSL_get_error(s, sr) == SSL_ERROR_SSL)
			break;
	}
	SSL_free(s);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	if (cr != 1) {
		SSL_free(c);
		return NULL;
	}
	return c;
}

static void
test_fingerprint(void **state)
{
	struct policy_verdict *v5 = verdict("192.0.2.5");
	struct policy_verdict *v6 = verdict("192.0.2.6");
	struct policy_verdict *v8 = verdict("192.0.2.8");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	assert_int_equal(v5->level, TLS_LEVEL_VERIFY);
	assert_string_equal(v5->source, "override");
	/* the certificate digest matches; a self-signed leaf is fine */
	assert_non_null(c = handshake(v5, cert, key, 0));
	if (policy_tls_check(v5, c, &proof, &res) != 0)
		fail_msg("%s: %s", res.reason, res.detail);
	assert_string_equal(res.detail, "certificate fingerprint matched");
	assert_int_equal(proof.level, TLS_LEVEL_VERIFY);
	assert_int_equal(policy_leg_fits(v5, &proof, c, &res), 0);
	/* a leg proven for .5's digests does not fit .6's recipient */
	assert_int_equal(policy_leg_fits(v6, &proof, c, &res), -1);
	/* a leg proven only to be encrypted: its live certificate
	 * decides (cert2 matches .6's public key digest, not .5) */
	SSL_free(c);
	assert_non_null(c = handshake(v8, cert2, key2, 0));
	assert_int_equal(policy_tls_check(v8, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(v5, &proof, c, &res), -1);
	assert_int_equal(policy_leg_fits(v6, &proof, c, &res), 0);
	SSL_free(c);
	/* another certificate: no match */
	assert_non_null(c = handshake(v5, cert2, key2, 0));
	assert_int_equal(policy_tls_check(v5, c, &proof, &res), -1);
	assert_int_equal(proof.failed, 1);
	assert_non_null(strstr(res.detail, "matches none"));
	SSL_free(c);
	/* the second digest of .6, of the public key, matches cert2 */
	assert_non_null(c = handshake(v6, cert2, key2, 0));
	assert_int_equal(policy_tls_check(v6, c, &proof, &res), 0);
	SSL_free(c);
	assert_non_null(c = handshake(v6, cert, key, 0));
	assert_int_equal(policy_tls_check(v6, c, &proof, &res), -1);
	SSL_free(c);
	policy_verdict_free(v5);
	policy_verdict_free(v6);
	policy_verdict_free(v8);
}

static void
test_protocols(void **state)
{
	struct policy_verdict *v7 = verdict("192.0.2.7");
	struct policy_verdict *v8 = verdict("192.0.2.8");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	assert_int_equal(v7->level, TLS_LEVEL_ENCRYPT);
	/* prepared for >=TLSv1.3, the client refuses a TLS 1.2 server */
	assert_null(handshake(v7, cert, key, TLS1_2_VERSION));
	assert_non_null(c = handshake(v7, cert, key, 0));
	assert_int_equal(policy_tls_check(v7, c, &proof, &res), 0);
	SSL_free(c);
	/* a TLS 1.2 leg made for another recipient does not fit .7 */
	assert_non_null(c = handshake(v8, cert, key, TLS1_2_VERSION));
	assert_int_equal(policy_tls_check(v8, c, &proof, &res), 0);
	assert_int_equal(policy_leg_fits(v8, &proof, c, &res), 0);
	assert_int_equal(policy_leg_fits(v7, &proof, c, &res), -1);
	assert_non_null(strstr(res.detail, "protocols="));
	SSL_free(c);
	policy_verdict_free(v7);
	policy_verdict_free(v8);
}

/*
 * enforcement = monitor: the protocol range's lower end is what enforce
 * mode would demand, judged after the handshake as names and TLSA
 * records are; the enforced level is may, the best TLS the server
 * offers.  A TLS 1.2 server under a monitored "encrypt
 * protocols=>=TLSv1.3" gets TLS 1.2 and a would-defer (stage tls), at
 * the handshake's check and on a reused leg; a TLS 1.3 server none.
 * Red before: the range was set on the SSL, the handshake failed, and
 * the leg went on in cleartext (the fallback of may).  The upper end
 * stays on the SSL (a monitored "<=TLSv1.2" negotiates TLS 1.2 as
 * enforce mode would, no would-defer), and a may line's own range
 * applies in the handshake, monitored or not.
 */
static void
test_monitored_protocols(void **state)
{
	struct policy_verdict *v7 = verdict("192.0.2.7");
	struct policy_verdict *v9 = verdict("192.0.2.9");
	struct policy_verdict *mon = policy_verdict_dup(v7);
	struct policy_verdict *mon9 = policy_verdict_dup(v9);
	struct policy_verdict *mon10 = verdict("192.0.2.10");
	struct tls_proof proof;
	struct tls_result res;
	SSL *c;

	assert_non_null(mon);
	assert_non_null(mon9);
	policy_verdict_monitor(mon);
	policy_verdict_monitor(mon9);
	assert_int_equal(mon->level, TLS_LEVEL_MAY);
	assert_int_equal(mon->would_level, TLS_LEVEL_ENCRYPT);
	if ((c = handshake(mon, cert, key, TLS1_2_VERSION)) == NULL)
		fail_msg("monitored: the TLS 1.2 handshake failed (the leg "
		    "would go on in cleartext)");
	assert_int_equal(SSL_version(c), TLS1_2_VERSION);
	assert_int_equal(policy_tls_check(mon, c, &proof, &res), 0);
	assert_int_equal(res.would_defer, 1);
	assert_string_equal(res.reason, "validation-failure");
	assert_non_null(strstr(res.detail, "protocols="));
	assert_int_equal(proof.tls, 1);
	assert_int_equal(proof.failed, 1);
	assert_int_equal(policy_leg_fits(mon, &proof, c, &res), 0);
	assert_int_equal(res.would_defer, 1);
	/* enforced: this leg never carries .7's mail */
	assert_int_equal(policy_leg_fits(v7, &proof, c, &res), -1);
	SSL_free(c);
	assert_non_null(c = handshake(mon, cert, key, 0));
	assert_int_equal(SSL_version(c), TLS1_3_VERSION);
	assert_int_equal(policy_tls_check(mon, c, &proof, &res), 0);
	assert_int_equal(res.would_defer, 0);
	assert_int_equal(proof.failed, 0);
	SSL_free(c);
	policy_verdict_monitor(mon10);
	assert_non_null(c = handshake(mon10, cert, key, 0));
	assert_int_equal(SSL_version(c), TLS1_2_VERSION);
	assert_int_equal(policy_tls_check(mon10, c, &proof, &res), 0);
	assert_int_equal(res.would_defer, 0);
	SSL_free(c);
	/* enforced, and a may line's own range: in the handshake */
	assert_null(handshake(v7, cert, key, TLS1_2_VERSION));
	assert_null(handshake(v9, cert, key, TLS1_2_VERSION));
	assert_null(handshake(mon9, cert, key, TLS1_2_VERSION));
	policy_verdict_free(mon);
	policy_verdict_free(mon9);
	policy_verdict_free(mon10);
	policy_verdict_free(v7);
	policy_verdict_free(v9);
}

/* enforcement_override: DEST enforce|monitor, the same DEST forms and
 * lookup as tls_policy; anything else is an error naming the line. */
static void
test_enforcement_override(void **state)
{
	const char *good[] = { "mon.test monitor", ".sub.test monitor",
	    "enf.sub.test enforce", "192.0.2.7 monitor", NULL };
	const char *bad[][2] = { { "a.test", NULL }, { "a.test watch", NULL },
	    { "a.test monitor now", NULL }, { "-bad-.test monitor", NULL } };
	struct ovr_table t = { 0 };
	const struct ovr_entry *e;
	struct sockaddr_in sin;
	struct strlist l;
	char err[512];
	size_t i;

	l.v = (char **)good;
	l.n = 4;
	assert_int_equal(ovr_load_enforcement(&t, &l, err, sizeof(err)), 0);
	assert_non_null(e = ovr_find(&t, "mon.test", NULL));
	assert_int_equal(e->monitor, 1);
	assert_non_null(e = ovr_find(&t, "a.sub.test", NULL));
	assert_int_equal(e->monitor, 1);
	assert_non_null(e = ovr_find(&t, "enf.sub.test", NULL));
	assert_int_equal(e->monitor, 0);
	assert_null(ovr_find(&t, "sub.test", NULL));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	assert_non_null(e = ovr_find(&t, "other.test",
	    (struct sockaddr *)&sin));
	assert_int_equal(e->monitor, 1);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l.v = (char **)bad[i];
		l.n = 1;
		assert_int_equal(ovr_load_enforcement(&t, &l, err,
		    sizeof(err)), -1);
		if (strstr(err, "enforcement_override \"") == NULL)
			fail_msg("no line named: %s", err);
	}
	/* one line per destination */
	{
		const char *dup[] = { "example.com monitor",
		    "example.com enforce", NULL };

		l.v = (char **)dup;
		l.n = 2;
		assert_int_equal(ovr_load_enforcement(&t, &l, err,
		    sizeof(err)), -1);
		assert_non_null(strstr(err, "enforcement_override: the same "
		    "destination twice"));
	}
	/* a failed load keeps the table it had */
	assert_non_null(ovr_find(&t, "mon.test", NULL));
	ovr_clear(&t);
}

/*
 * An IPv4-mapped IPv6 address ("::ffff:192.0.2.7", "[::ffff:192.0.2.7]")
 * names the IPv4 destination 192.0.2.7: the engine looks destinations up
 * as IPv4 (policy_lookup() unmaps a mapped address), so such a line was
 * kept as an IPv6 entry that nothing ever matched, and the destination
 * got the default (may) instead of what the line says.  Its twin in
 * IPv4 form is the same destination twice.
 */
static void
test_v4mapped_address(void **state)
{
	const char *lines[] = { "[::ffff:192.0.2.7] secure", NULL };
	const char *two[] = { "::ffff:192.0.2.7 secure", "192.0.2.7 may",
	    NULL };
	struct ovr_table t = { 0 }, m = { 0 };
	struct strlist l;
	struct sockaddr_in sin;
	const struct ovr_entry *e;
	char err[512];

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	assert_int_equal(load(&t, lines, NULL, err, sizeof(err)), 0);
	e = ovr_find(&t, "any.test", (struct sockaddr *)&sin);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_SECURE);
	ovr_clear(&t);
	assert_int_equal(load(&t, two, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "the same destination twice"));
	/* enforcement_override: the same forms */
	{
		char *ml[] = { "::ffff:192.0.2.7 enforce" };

		l.v = ml;
		l.n = 1;
		assert_int_equal(ovr_load_enforcement(&m, &l, err,
		    sizeof(err)), 0);
	}
	e = ovr_find(&m, "any.test", (struct sockaddr *)&sin);
	assert_non_null(e);
	assert_int_equal(e->monitor, 0);
	ovr_clear(&m);
	/* behind the well-known NAT64 prefix: the IPv4 destination too
	 * (policy_lookup() judges 64:ff9b::G as G) */
	{
		const char *n64[] = { "[64:ff9b::192.0.2.7] encrypt", NULL };
		const char *twin[] = { "64:ff9b::c000:207 secure",
		    "192.0.2.7 may", NULL };

		assert_int_equal(load(&t, n64, NULL, err, sizeof(err)), 0);
		e = ovr_find(&t, "any.test", (struct sockaddr *)&sin);
		assert_non_null(e);
		assert_int_equal(e->level, OVR_ENCRYPT);
		ovr_clear(&t);
		assert_int_equal(load(&t, twin, NULL, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "the same destination twice"));
	}
}

/*
 * An address line in the form of a configured NAT64 prefix names the
 * IPv4 destination it embeds, as policy_lookup() judges the connection
 * (netaddr_judged(), nat64_prefix): a network-specific prefix's form
 * was kept as an IPv6 entry nothing matched, and the well-known form was
 * turned into IPv4 even under nat64_prefix = none, where the engine
 * judges 64:ff9b::G as itself.  Either way the line did not apply and
 * the relay's mail got the default, may, in place of secure.
 */
static int
set_nat64(const char *v)
{
	struct strlist l;
	char *vv[1], err[256];

	vv[0] = (char *)v;
	l.v = vv;
	l.n = 1;
	return netaddr_set_nat64(&l, err, sizeof(err));
}

static void
test_nat64_prefix_address(void **state)
{
	const char *nsp[] = { "[2001:db8:64::c000:207] secure", NULL };
	const char *wk[] = { "[64:ff9b::c000:207] secure", NULL };
	const char *twin[] = { "2001:db8:64::192.0.2.7 secure",
	    "192.0.2.7 may", NULL };
	struct ovr_table t = { 0 }, m = { 0 };
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	const struct ovr_entry *e;
	struct strlist l;
	char err[512];

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;

	/* a network-specific prefix: the line applies to the connection
	 * to NSP+G and to G, which the engine judges alike */
	assert_int_equal(set_nat64("2001:db8:64::/96"), 0);
	assert_int_equal(load(&t, nsp, NULL, err, sizeof(err)), 0);
	e = ovr_find(&t, "any.test", (struct sockaddr *)&sin);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_SECURE);
	inet_pton(AF_INET6, "2001:db8:64::c000:207", &sin6.sin6_addr);
	e = ovr_find(&t, "any.test", (struct sockaddr *)&sin6);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_SECURE);
	ovr_clear(&t);
	/* and its twin in IPv4 form is the same destination twice */
	assert_int_equal(load(&t, twin, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "the same destination twice"));
	/* enforcement_override: the same */
	{
		char *ml[] = { "2001:db8:64::c000:207 enforce" };

		l.v = ml;
		l.n = 1;
		assert_int_equal(ovr_load_enforcement(&m, &l, err,
		    sizeof(err)), 0);
	}
	e = ovr_find(&m, "any.test", (struct sockaddr *)&sin);
	assert_non_null(e);
	ovr_clear(&m);

	/* nat64_prefix = none: 64:ff9b::G is an IPv6 address of its own,
	 * and a line naming it applies to a connection made to it */
	assert_int_equal(set_nat64("none"), 0);
	assert_int_equal(load(&t, wk, NULL, err, sizeof(err)), 0);
	inet_pton(AF_INET6, "64:ff9b::c000:207", &sin6.sin6_addr);
	e = ovr_find(&t, "any.test", (struct sockaddr *)&sin6);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_SECURE);
	assert_null(ovr_find(&t, "any.test", (struct sockaddr *)&sin));
	ovr_clear(&t);
	assert_int_equal(set_nat64("64:ff9b::/96"), 0);
}

/*
 * A destination that looks like an IPv4 address but is none inet_pton()
 * reads (a trailing dot, a leading zero, an octal octet, one number) was
 * taken as a domain, which no recipient domain is (no DNS name ends in
 * an all-digit label): `mxguard -n` said nothing, and mail to the relay
 * at 192.0.2.25 got the default, may, in place of the line's secure.
 * Refused, in every form that names a destination.
 */
static void
test_numeric_not_address(void **state)
{
	static const char *bad[] = { "192.0.2.25. secure",
	    "192.0.2.025 secure", "0300.0.2.25 secure", "3221226009 secure",
	    ".0.2.25 encrypt", NULL };
	const char *one[2] = { NULL, NULL };
	struct ovr_table t = { 0 };
	struct strlist l;
	char *ml[1], err[512], pf[] = "/tmp/test_override_numXXXXXX";
	FILE *f;
	int i, fd;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		one[0] = bad[i];
		assert_int_equal(load(&t, one, NULL, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "no IP address"));
	}
	/* enforcement_override: the same forms */
	ml[0] = (char *)"192.0.2.25. enforce";
	l.v = ml;
	l.n = 1;
	assert_int_equal(ovr_load_enforcement(&t, &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no IP address"));
	/* the Postfix file: bare, or bracketed (was a [name] warning) */
	assert_true((fd = mkstemp(pf)) >= 0);
	assert_non_null(f = fdopen(fd, "w"));
	fputs("[192.0.2.025] secure\n", f);
	fclose(f);
	one[0] = NULL;
	assert_int_equal(load(&t, one, pf, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no IP address"));
	unlink(pf);
	/* names with digits are still names; a real address still one */
	{
		const char *ok[] = { "mx1.example secure", "1.example may",
		    "example.1a encrypt", "192.0.2.25 secure", NULL };

		assert_int_equal(load(&t, ok, NULL, err, sizeof(err)), 0);
		assert_int_equal(t.n, 4);
		assert_int_equal(t.e[3].is_addr, 1);
		ovr_clear(&t);
	}
}

/*
 * A policy file of tens of thousands of domains (a provider's customers
 * pinned to secure): every pair of lines was compared for duplicates, so
 * 60000 lines blocked the event loop for about 14 s at every load, at
 * start and twice at a reload (the check, then the engine), long enough
 * for sessions to stall and the watchdog (WatchdogSec=30s) to come near;
 * every lookup read the whole table once per label.  The domain entries
 * are now sorted once and searched (the time is the bench's business, not
 * a unit test's: measured, mxguard -n on 60000 lines 28 s before, 3 s
 * after).  Checked here: the index is the domain entries in order, exact,
 * parent and address entries are found, and the duplicate named is still
 * the earliest pair.
 */

static void
test_large_file(void **state)
{
	const int N = 20000;
	const char *none[] = { NULL };
	const char *mx[] = { "192.0.2.9 encrypt", "zz.test may",
	    ".sub.test secure", NULL };
	struct ovr_table t = { 0 };
	struct sockaddr_in sin;
	const struct ovr_entry *e;
	char err[512], pf[] = "/tmp/test_override_bigXXXXXX";
	FILE *f;
	int i, fd;

	(void)state;
	assert_true((fd = mkstemp(pf)) >= 0);
	assert_non_null(f = fdopen(fd, "w"));
	for (i = 0; i < N; i++)
		fprintf(f, "d%d.example secure\n", i);
	fprintf(f, "[192.0.2.7] encrypt\n.parent.example verify\n");
	fclose(f);
	assert_int_equal(load(&t, none, pf, err, sizeof(err)), 0);
	assert_int_equal(t.n, N + 2);
	/* the index: every domain entry once, in order */
	assert_int_equal(t.nd, N + 1);
	for (i = 1; i < t.nd; i++)
		assert_true(strcmp(t.e[t.didx[i - 1]].dest,
		    t.e[t.didx[i]].dest) < 0);
	e = ovr_find(&t, "d13337.example", NULL);
	assert_non_null(e);
	assert_string_equal(e->dest, "d13337.example");
	e = ovr_find(&t, "a.b.parent.example", NULL);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_VERIFY);
	assert_null(ovr_find(&t, "parent.example", NULL));
	assert_null(ovr_find(&t, "d50000.example", NULL));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	e = ovr_find(&t, "d1.example", (struct sockaddr *)&sin);
	assert_non_null(e);
	assert_int_equal(e->level, OVR_ENCRYPT);
	ovr_clear(&t);
	/* the earliest pair is named: zz.test (lines 2 and 4) before
	 * .sub.test (3 and 5), in mxguard.conf order before the file */
	assert_non_null(f = fopen(pf, "w"));
	fprintf(f, "zz.test encrypt\n.sub.test may\n192.0.2.9 none\n");
	fclose(f);
	assert_int_equal(load(&t, mx, pf, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"192.0.2.9 encrypt\" and "
	    "\"192.0.2.9 none\""));
	mx[0] = "a.test may";
	assert_int_equal(load(&t, mx, pf, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"zz.test may\" and \"zz.test "
	    "encrypt\""));
	unlink(pf);
}

int
main(void)
{
	const struct CMUnitTest parse[] = {
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_old_dane_spelling),
		cmocka_unit_test(test_match_names_normalised),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_postfix_tokens),
		cmocka_unit_test(test_postfix_file),
		cmocka_unit_test(test_postfix_file_errors),
		cmocka_unit_test(test_v4mapped_address),
		cmocka_unit_test(test_nat64_prefix_address),
		cmocka_unit_test(test_numeric_not_address),
		cmocka_unit_test(test_large_file),
	};
	const struct CMUnitTest tls[] = {
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_protocols),
		cmocka_unit_test(test_monitored_protocols),
		cmocka_unit_test(test_enforcement_override),
	};
	int rc;

	log_init("test", 0, LOG_LVL_ERR);
	rc = cmocka_run_group_tests_name("override parsing", parse, NULL,
	    NULL);
	return rc | cmocka_run_group_tests_name("override tls", tls,
	    setup_tls, teardown_tls);
}
