/*
 * testcert.h - certificates for unit tests, made in memory (OpenSSL).
 *
 *   test_cert(key, cn, san, issuer, ikey, from, to, is_ca)
 *
 * A v3 certificate for key with subject CN=cn, valid from `from` to `to`
 * seconds from now, signed by ikey as issuer (self-signed when issuer is
 * NULL).  is_ca: basic constraints CA:TRUE and keyCertSign.  Otherwise,
 * with san: subjectAltName DNS:san and extendedKeyUsage serverAuth; with
 * san NULL: no extension at all.  The caller frees it with X509_free().
 */
#ifndef MXG_TESTCERT_H
#define MXG_TESTCERT_H

#include <stdio.h>
#include <openssl/x509v3.h>

static void
test_cert_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
}

static X509 *
test_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
    EVP_PKEY *ikey, long from, long to, int is_ca)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509V3_CTX ctx;
	char buf[300];

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) :
	    X509_get_subject_name(x));
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	if (is_ca) {
		test_cert_ext(x, &ctx, NID_basic_constraints,
		    "critical,CA:TRUE");
		test_cert_ext(x, &ctx, NID_key_usage,
		    "critical,keyCertSign,cRLSign");
	} else if (san != NULL) {
		snprintf(buf, sizeof(buf), "DNS:%s", san);
		test_cert_ext(x, &ctx, NID_subject_alt_name, buf);
		test_cert_ext(x, &ctx, NID_ext_key_usage, "serverAuth");
	}
	if (X509_sign(x, ikey ? ikey : key, EVP_sha256()) <= 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

#endif
