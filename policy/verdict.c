/*
 * verdict.c - operations on the verdict value (see verdict.h): copy and
 * free, setting a TLS session up for a verdict, checking a finished
 * handshake against it, and deciding whether a leg's proof satisfies a
 * recipient's verdict.
 *
 * The rule this file enforces: a recipient's mail crosses a leg only if
 * what the leg has proven satisfies everything the recipient's verdict
 * demands.  Proofs are values (struct tls_proof): a leg's proof names the
 * level, host and a SHA-256 identity of what authenticated it, and
 * nothing here trusts a pointer to decide that two checks are the same.
 *
 * Functions:
 *   policy_verdict_dup/free     value semantics for verdicts
 *   policy_tls_prepare          SNI (a host name, never an address),
 *                               names, store, TLSA on an SSL
 *   policy_tls_check            judge a handshake prepared for v
 *   policy_leg_fits             judge an existing leg for a new verdict
 *   policy_tls_session_key      resumption key (or none)
 *   policy_verdict_monitor      enforcement = monitor: watch, don't enforce
 *
 * A monitored verdict (enforcement = monitor) is judged twice: as its
 * enforced level MAY, which decides, and as enforce_view(), the verdict
 * enforce mode would apply, whose failure only sets would_defer.  The
 * proof is always what the handshake proved, so a monitored check that
 * fails leaves a failed proof: such a leg is never parked nor its
 * session cached, and an enforced recipient's own check decides for it.
 *
 * Who frees what: policy_verdict_dup() returns a verdict the caller frees
 * with policy_verdict_free(); the SSL ex_data this file attaches is freed
 * with the SSL.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "policy/dane.h"
#include "policy/tlsrpt.h"
#include "policy/verdict.h"
#include "policy/verdict_tls.h"

/* Verdict texts are bounded on purpose: a long name is cut, not a bug. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static const char *level_names[] = {
	"none", "may", "encrypt", "dane", "verify", "defer",
};

const char *
tls_level_name(enum tls_level l)
{
	return (unsigned)l < 6 ? level_names[l] : "?";
}

void
policy_verdict_free(struct policy_verdict *v)
{
	if (v == NULL)
		return;
	free(v->rpt);
	if (v->tls != NULL) {
		dane_info_free(v->tls->dane);
		X509_STORE_free(v->tls->store);
		free(v->tls);
	}
	free(v);
}

struct policy_verdict *
policy_verdict_dup(const struct policy_verdict *v)
{
	struct policy_verdict *c;

	if ((c = malloc(sizeof(*c))) == NULL)
		return NULL;
	*c = *v;
	c->tls = NULL;
	c->rpt = NULL;
	if (v->rpt != NULL) {
		size_t n = sizeof(*v->rpt) + v->rpt->len;

		if ((c->rpt = malloc(n)) == NULL)
			goto fail;
		memcpy(c->rpt, v->rpt, n);
	}
	if (v->tls == NULL)
		return c;
	if ((c->tls = malloc(sizeof(*c->tls))) == NULL)
		goto fail;
	*c->tls = *v->tls;
	c->tls->dane = NULL;
	if (c->tls->store != NULL && !X509_STORE_up_ref(c->tls->store)) {
		c->tls->store = NULL;
		goto fail;
	}
	if (v->tls->dane != NULL &&
	    (c->tls->dane = dane_info_dup(v->tls->dane)) == NULL)
		goto fail;
	return c;
fail:
	policy_verdict_free(c);
	return NULL;
}

uint64_t
policy_report_key(const struct policy_verdict *v, int64_t now)
{
	unsigned char md[EVP_MAX_MD_SIZE], t;
	int64_t day = tlsrpt_day(now);
	int32_t nstr = 0;
	EVP_MD_CTX *c;
	uint64_t k = 0;
	int i, ok;

	/* as tlsrpt_rec.c's count() names the policy: no rpt is
	 * no-policy-found */
	t = v->rpt != NULL ? (unsigned char)v->rpt->type : TLSRPT_POLICY_NONE;
	if (v->rpt != NULL)
		nstr = v->rpt->nstrings;
	if ((c = EVP_MD_CTX_new()) == NULL)
		return 0;
	/* the domain with its NUL, fixed-size fields, the policy's strings
	 * and MX patterns (each NUL-terminated) last: unambiguous */
	ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(c, v->domain, strlen(v->domain) + 1) == 1 &&
	    EVP_DigestUpdate(c, &day, sizeof(day)) == 1 &&
	    EVP_DigestUpdate(c, &t, 1) == 1 &&
	    EVP_DigestUpdate(c, &nstr, sizeof(nstr)) == 1 &&
	    (v->rpt == NULL ||
	    EVP_DigestUpdate(c, v->rpt->buf, v->rpt->len) == 1) &&
	    EVP_DigestFinal_ex(c, md, NULL) == 1;
	EVP_MD_CTX_free(c);
	if (!ok)
		return 0;
	for (i = 0; i < 8; i++)
		k = k << 8 | md[i];
	return k;
}

/* ---- monitor mode ---- */

void
policy_verdict_monitor(struct policy_verdict *v)
{
	if (v->monitor)
		return;
	v->monitor = 1;
	v->would_level = v->level;
	if (v->level > TLS_LEVEL_MAY)
		v->level = TLS_LEVEL_MAY;
}

/* The verdict enforce mode would apply, as a view sharing v's parts (never
 * freed); 0 when it demands a TLS check beyond what v enforces. */
static int
enforce_view(const struct policy_verdict *v, struct policy_verdict *w)
{
	if (!v->monitor || v->would_level <= TLS_LEVEL_MAY ||
	    v->would_level == TLS_LEVEL_DEFER)
		return -1;
	*w = *v;
	w->monitor = 0;
	w->level = v->would_level;
	return 0;
}

/* ---- name checks ---- */

/*
 * The X509_CHECK_FLAG_* of v's WebPKI name check.  MTA-STS (enforce, and
 * a testing policy's reported check) matches DNS-IDs only: RFC 8461
 * section 4.2, the certificate MUST have a subject alternative name with
 * a DNS-ID matching the host name; the subject CN is never looked at.
 * The Postfix levels of an override (verify, secure) match what Postfix
 * documents: the dNSNames of the subjectAltName, and the CommonName only
 * when there is no dNSName (OpenSSL's default).  No partial wildcards
 * anywhere.  Part of the check's identity (verdict_identity).
 */
static unsigned int
name_flags(const struct policy_verdict *v)
{
	unsigned int f = X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;

	if (v->report_only ||
	    (v->source != NULL && strcmp(v->source, "mta-sts") == 0))
		f |= X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
	return f;
}

/* ---- identities ---- */

/* SHA-256 over what a check of v stands for.  DANE: the TLSA RRset's
 * digest, its base domain and the DANE-TA reference names.  VERIFY (and
 * the report-only check): the CA store's identity, the name check's
 * flags (DNS-IDs only or the CN too) and the reference names.  Returns -1
 * when v authenticates nothing. */
static int
verdict_identity(const struct policy_verdict *v, unsigned char out[32])
{
	EVP_MD_CTX *md;
	char gen[32];
	int i, ok;

	if (v->tls == NULL)
		return -1;
	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	if (v->level == TLS_LEVEL_DANE) {
		const struct dane_info *d = v->tls->dane;

		if (d == NULL) {
			EVP_MD_CTX_free(md);
			return -1;
		}
		ok = ok && EVP_DigestUpdate(md, "dane", 5) &&
		    EVP_DigestUpdate(md, d->digest, sizeof(d->digest)) &&
		    EVP_DigestUpdate(md, d->tlsa_base, strlen(d->tlsa_base) + 1);
		for (i = 0; ok && i < d->nnames; i++)
			ok = EVP_DigestUpdate(md, d->names[i],
			    strlen(d->names[i]) + 1);
	} else if (v->tls->nfp > 0) {
		/* fingerprint: the digests alone say what is proven */
		ok = ok && EVP_DigestUpdate(md, "fingerprint", 12);
		for (i = 0; ok && i < v->tls->nfp; i++)
			ok = EVP_DigestUpdate(md, v->tls->fp[i], 32);
	} else {
		if (v->tls->store == NULL || v->tls->nnames == 0) {
			EVP_MD_CTX_free(md);
			return -1;
		}
		snprintf(gen, sizeof(gen), "%llu %x",
		    (unsigned long long)v->tls->store_gen, name_flags(v));
		ok = ok && EVP_DigestUpdate(md, "verify", 7) &&
		    EVP_DigestUpdate(md, gen, strlen(gen) + 1);
		for (i = 0; ok && i < v->tls->nnames; i++)
			ok = EVP_DigestUpdate(md, v->tls->names[i],
			    strlen(v->tls->names[i]) + 1);
	}
	ok = ok && EVP_DigestFinal_ex(md, out, NULL);
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* ---- before the handshake ---- */

/* SSL ex_data: the identity (a copy, 32 bytes) of the WebPKI check the
 * SSL object was prepared for.  verify_peer() may take the handshake's
 * own verification only for that very identity. */
static int prepared_idx = -1;

static void
prepared_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	free(ptr);
}

static int prepare(const struct policy_verdict *, SSL *, int);

int
policy_tls_prepare(const struct policy_verdict *v, SSL *ssl)
{
	struct policy_verdict w;

	/* monitor: set up for the check enforce mode would make (the
	 * handshake never fails on it: verification is judged after).  If
	 * that check cannot even be set up (no TLSA record OpenSSL takes),
	 * enforce mode would defer, which policy_tls_check() reports; a
	 * monitored verdict never defers: the TLS v itself demands.  The
	 * lower end of its protocols= range is enforce mode's demand too,
	 * so it is judged after the handshake (protocols_outside()), not
	 * set on the SSL: there a server below it failed the handshake,
	 * and may's cleartext retry sent the mail in the clear where the
	 * server offered TLS.  The upper end stays: with it the server
	 * negotiates what enforce mode would get */
	if (enforce_view(v, &w) == 0) {
		if (prepare(&w, ssl, 0) == 0)
			return 0;
		ERR_clear_error();
	}
	return prepare(v, ssl, !v->monitor || v->would_level <= TLS_LEVEL_MAY);
}

/* Under SSL_VERIFY_NONE the handshake goes on whatever this returns;
 * returning ok makes the verification stop at, and keep, its first
 * error (prepare()). */
static int
verify_first_error(int ok, X509_STORE_CTX *xc)
{
	return ok;
}

/* An address, not a host name: RFC 6066 section 3 forbids IP literals as
 * SNI (an override's match= naming the destination, an MX target that
 * looks like one). */
static int
ip_literal(const char *s)
{
	unsigned char a[16];

	return s[0] == '[' || inet_pton(AF_INET, s, a) == 1 ||
	    inet_pton(AF_INET6, s, a) == 1;
}

/* floor: set protocols=' lowest version on the SSL (0: judged after) */
static int
prepare(const struct policy_verdict *v, SSL *ssl, int floor)
{
	const char *sni = v->mx_host[0] ? v->mx_host : NULL;
	unsigned char *id;
	int i;

	if (prepared_idx == -1)
		prepared_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    prepared_free);
	if (prepared_idx == -1)
		return -1;
	if (v->level != TLS_LEVEL_DANE && v->tls != NULL) {
		if ((id = malloc(32)) == NULL)
			return -1;
		if (verdict_identity(v, id) == -1) {
			free(id);
			id = NULL;
		}
		free(SSL_get_ex_data(ssl, prepared_idx));
		if (!SSL_set_ex_data(ssl, prepared_idx, id)) {
			free(id);
			return -1;
		}
	}

	if (sni == NULL && v->tls != NULL && v->tls->nnames > 0 &&
	    v->tls->names[0][0] != '.')
		sni = v->tls->names[0];
	if (sni != NULL && ip_literal(sni))
		sni = NULL;	/* none rather than an address */
	if (sni != NULL && !SSL_set_tlsext_host_name(ssl, sni))
		return -1;
	/* protocols=: never below the global tls_min_version */
	if (floor && v->tls != NULL &&
	    v->tls->min_proto > SSL_get_min_proto_version(ssl) &&
	    !SSL_set_min_proto_version(ssl, v->tls->min_proto))
		return -1;
	if (v->tls != NULL && v->tls->max_proto != 0 &&
	    !SSL_set_max_proto_version(ssl, v->tls->max_proto))
		return -1;
	if (v->level == TLS_LEVEL_DANE)
		return v->tls != NULL && v->tls->dane != NULL ?
		    dane_tls_prepare(v->tls->dane, ssl) : -1;
	/* verification is judged by policy_tls_check(), with a precise
	 * reason; the handshake itself never fails on it.  The callback
	 * stops the chain's verification at its first error, as a fresh
	 * X509_verify_cert() does (a NULL one would leave the context's,
	 * which accepts all and keeps the last error) */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, verify_first_error);
	/* validity on the policy clock: a wall clock stepped back would
	 * make an expired certificate valid again (core/clock.h) */
	X509_VERIFY_PARAM_set_time(SSL_get0_param(ssl), (time_t)clock_now());
	SSL_set_hostflags(ssl, name_flags(v));
	if (v->tls != NULL) {
		if (v->tls->store != NULL &&
		    !SSL_set1_verify_cert_store(ssl, v->tls->store))
			return -1;
		for (i = 0; i < v->tls->nnames; i++)
			if (!(i == 0 ? SSL_set1_host(ssl, v->tls->names[0]) :
			    SSL_add1_host(ssl, v->tls->names[i])))
				return -1;
	} else if (v->mx_host[0] != '\0' && !SSL_set1_host(ssl, v->mx_host))
		return -1;
	return 0;
}

/* ---- checks ---- */

/* RFC 8460 section 4.3.2.2: certificate-expired says "has expired"; a
 * certificate not yet valid (a wrong clock on either side, one issued
 * ahead) is one of the certificate failures certificate-not-trusted
 * covers, its detail the failure-reason-code */
static const char *
verify_reason(long vr)
{
	switch (vr) {
	case X509_V_OK:
		return "success";
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "certificate-expired";
	case X509_V_ERR_HOSTNAME_MISMATCH:
		return "certificate-host-mismatch";
	default:
		return "certificate-not-trusted";
	}
}

/*
 * Verifies the peer's chain against the verdict's store and names.  The
 * handshake's own result is taken only when the SSL object was prepared
 * for exactly this identity (compared by value) and the session is not a
 * resumed one (a resumed session's result is the original handshake's,
 * whatever it was checked for); otherwise the chain is verified afresh.
 */
/* fingerprint: the leaf's SHA-256, of the whole certificate or of its
 * public key (Postfix matches either), against the configured digests.
 * The public key's is Postfix's: over the DER SubjectPublicKeyInfo (as a
 * TLSA 3 1 1 record's), not X509_pubkey_digest()'s over the key bits
 * alone, which no configured digest would ever equal. */
static long
fingerprint_peer(const struct policy_verdict *v, X509 *peer)
{
	unsigned char cert[32], spki[32], *der = NULL;
	unsigned int len = 0, slen = 0;
	int i, n, ok;

	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(peer), &der);
	ok = n > 0 && EVP_Digest(der, (size_t)n, spki, &slen, EVP_sha256(),
	    NULL) && slen == 32;
	OPENSSL_free(der);
	if (!ok || !X509_digest(peer, EVP_sha256(), cert, &len) || len != 32) {
		ERR_clear_error();
		return X509_V_ERR_UNSPECIFIED;
	}
	for (i = 0; i < v->tls->nfp; i++)
		if (memcmp(v->tls->fp[i], cert, 32) == 0 ||
		    memcmp(v->tls->fp[i], spki, 32) == 0)
			return X509_V_OK;
	return X509_V_ERR_CERT_REJECTED;
}

int64_t
policy_chain_not_after(STACK_OF(X509) *chain)
{
	const ASN1_TIME *na;
	struct tm tm;
	int64_t t, min = 0;
	int i;

	if (chain == NULL || sk_X509_num(chain) == 0)
		return 1;
	for (i = 0; i < sk_X509_num(chain); i++) {
		memset(&tm, 0, sizeof(tm));
		if ((na = X509_get0_notAfter(sk_X509_value(chain, i))) ==
		    NULL || !ASN1_TIME_to_tm(na, &tm))
			return 1;
		t = (int64_t)timegm(&tm);
		if (min == 0 || t < min)
			min = t;
	}
	return min > 0 ? min : 1;
}

/* Does a proof's identity still stand on the policy clock?  OpenSSL
 * takes a certificate as expired once its notAfter is not after now. */
static int
proof_current(const struct tls_proof *proof)
{
	return proof->not_after == 0 || clock_now() < proof->not_after;
}

/* not_after (may be NULL): on success, until when the chain that
 * verified stays valid (policy_chain_not_after(); 0 for a fingerprint,
 * which does not look at validity) */
static long
verify_peer(const struct policy_verdict *v, SSL *ssl, int fresh,
    int64_t *not_after)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	const unsigned char *prepared;
	unsigned char id[32];
	X509_STORE_CTX *xc;
	X509_VERIFY_PARAM *param;
	int64_t na = 0;
	long vr;
	int i;

	if (not_after != NULL)
		*not_after = 0;
	if (peer == NULL)
		return X509_V_ERR_UNSPECIFIED;
	if (v->tls != NULL && v->tls->nfp > 0)
		return fingerprint_peer(v, peer);
	if (v->tls == NULL || v->tls->store == NULL || v->tls->nnames == 0)
		return X509_V_ERR_HOSTNAME_MISMATCH;	/* no name to check */
	prepared = prepared_idx != -1 ? SSL_get_ex_data(ssl, prepared_idx) :
	    NULL;
	/* the handshake judged the chain's validity at the time prepare()
	 * set, up to tls_timeout per client flight ago (a server, or an
	 * attacker on the path, holds its flight that long): a chain that
	 * has expired since on the policy clock is verified afresh, now */
	if (!fresh && prepared != NULL && !SSL_session_reused(ssl) &&
	    verdict_identity(v, id) == 0 && memcmp(id, prepared, 32) == 0 &&
	    ((vr = SSL_get_verify_result(ssl)) != X509_V_OK ||
	    clock_now() < (na = policy_chain_not_after(
	    SSL_get0_verified_chain(ssl))))) {
		if (vr == X509_V_OK && not_after != NULL)
			*not_after = na;
		return vr;
	}
	if ((xc = X509_STORE_CTX_new()) == NULL)
		return X509_V_ERR_OUT_OF_MEM;
	if (!X509_STORE_CTX_init(xc, v->tls->store, peer, chain) ||
	    !X509_STORE_CTX_set_default(xc, "ssl_server")) {
		vr = X509_V_ERR_UNSPECIFIED;
		goto done;
	}
	param = X509_STORE_CTX_get0_param(xc);
	/* the key sizes and signature digests the handshake's own
	 * verification demands (OpenSSL sets them from the security level
	 * there only): without them a chain the first recipient's check
	 * refuses (EE_KEY_TOO_SMALL, CA_MD_TOO_WEAK) passes for the next */
	X509_VERIFY_PARAM_set_auth_level(param, SSL_get_security_level(ssl));
	X509_VERIFY_PARAM_set_hostflags(param, name_flags(v));
	X509_VERIFY_PARAM_set_time(param, (time_t)clock_now());
	/* a name OpenSSL did not take is a failed check: the param
	 * without it checks fewer names, none at all checks no name */
	for (i = 0; i < v->tls->nnames; i++)
		if (!(i == 0 ? X509_VERIFY_PARAM_set1_host(param,
		    v->tls->names[0], 0) : X509_VERIFY_PARAM_add1_host(param,
		    v->tls->names[i], 0))) {
			vr = X509_V_ERR_OUT_OF_MEM;
			goto done;
		}
	if (X509_verify_cert(xc) == 1) {
		vr = X509_V_OK;
		if (not_after != NULL)
			*not_after = policy_chain_not_after(
			    X509_STORE_CTX_get0_chain(xc));
	} else if ((vr = X509_STORE_CTX_get_error(xc)) == X509_V_OK)
		vr = X509_V_ERR_UNSPECIFIED;
done:
	X509_STORE_CTX_free(xc);
	ERR_clear_error();
	return vr;
}

static const char *
verdict_name(const struct policy_verdict *v)
{
	return v->tls && v->tls->nnames ? v->tls->names[0] :
	    v->mx_host[0] ? v->mx_host : "an unknown MX host";
}

static void
webpki_result(const struct policy_verdict *v, long vr, struct tls_result *res)
{
	snprintf(res->reason, sizeof(res->reason), "%s", verify_reason(vr));
	if (v->tls != NULL && v->tls->nfp > 0)
		snprintf(res->detail, sizeof(res->detail), vr == X509_V_OK ?
		    "certificate fingerprint matched" : vr ==
		    X509_V_ERR_CERT_REJECTED ? "certificate fingerprint "
		    "matches none of the %d configured" : "no certificate "
		    "fingerprint to check (%d configured)", v->tls->nfp);
	else if (vr == X509_V_OK)
		snprintf(res->detail, sizeof(res->detail), "verified for %s",
		    verdict_name(v));
	else if (vr == X509_V_ERR_HOSTNAME_MISMATCH)
		snprintf(res->detail, sizeof(res->detail),
		    "certificate does not match %s", verdict_name(v));
	else
		snprintf(res->detail, sizeof(res->detail), "%s",
		    X509_verify_cert_error_string(vr));
}

static void
result_set(struct tls_result *res, const char *reason, const char *detail)
{
	snprintf(res->reason, sizeof(res->reason), "%s", reason);
	snprintf(res->detail, sizeof(res->detail), "%s", detail);
}

/* protocols=: is the live connection's version outside v's range (for
 * the levels that require TLS)?  Then 1, with the failure in res. */
static int
protocols_outside(const struct policy_verdict *v, SSL *ssl,
    struct tls_result *res)
{
	if (v->level == TLS_LEVEL_NONE || v->level == TLS_LEVEL_MAY ||
	    v->tls == NULL || ssl == NULL)
		return 0;
	if ((v->tls->min_proto == 0 || SSL_version(ssl) >=
	    v->tls->min_proto) && (v->tls->max_proto == 0 ||
	    SSL_version(ssl) <= v->tls->max_proto))
		return 0;
	snprintf(res->reason, sizeof(res->reason), "validation-failure");
	snprintf(res->detail, sizeof(res->detail), "%s is outside the "
	    "protocols= of the policy", SSL_get_version(ssl));
	return 1;
}

const char *
policy_no_starttls_reason(const struct policy_verdict *v)
{
	enum tls_level l = v->monitor ? v->would_level : v->level;

	/* DANE with only unusable TLSA records still requires TLS */
	return l == TLS_LEVEL_DANE || (l == TLS_LEVEL_ENCRYPT &&
	    v->source != NULL && strcmp(v->source, "dane") == 0) ?
	    "dane-required" : "starttls-not-supported";
}

/* The MTA-STS testing check of a report-only verdict: never enforced,
 * only its failure is noted in res. */
static void
report_check(const struct policy_verdict *v, const struct tls_proof *proof,
    SSL *ssl, struct tls_result *res)
{
	unsigned char id[32];
	long vr;

	if (!v->report_only)
		return;
	if (ssl == NULL || !proof->tls) {
		res->report_failed = 1;
		result_set(res, "starttls-not-supported",
		    "no TLS on this connection");
		return;
	}
	if (proof->level == TLS_LEVEL_VERIFY && !proof->failed &&
	    proof_current(proof) && verdict_identity(v, id) == 0 &&
	    memcmp(id, proof->id, sizeof(id)) == 0)
		return;
	if ((vr = verify_peer(v, ssl, 1, NULL)) != X509_V_OK) {
		res->report_failed = 1;
		webpki_result(v, vr, res);
	}
}

/* monitor: what enforce mode would say of this leg, into res */
static void
monitor_fits(const struct policy_verdict *v, const struct tls_proof *proof,
    SSL *ssl, struct tls_result *res)
{
	struct policy_verdict w;
	struct tls_result wres;

	if (v->would_level == TLS_LEVEL_DEFER) {
		res->would_defer = 1;
		result_set(res, v->reason[0] ? v->reason :
		    "validation-failure", v->detail);
		return;
	}
	if (enforce_view(v, &w) == -1)
		return;
	if (policy_leg_fits(&w, proof, ssl, &wres) == -1) {
		*res = wres;
		res->would_defer = 1;
	} else if (wres.report_failed)
		*res = wres;
}

int
policy_leg_fits(const struct policy_verdict *v, const struct tls_proof *proof,
    SSL *ssl, struct tls_result *res)
{
	unsigned char id[32];
	long vr;

	memset(res, 0, sizeof(*res));
	if (v->monitor && v->level <= TLS_LEVEL_MAY) {
		result_set(res, "success", "this connection is accepted "
		    "(enforcement = monitor)");
		monitor_fits(v, proof, ssl, res);
		return 0;
	}
	result_set(res, "success", "this connection satisfies the policy");
	if (v->level == TLS_LEVEL_DEFER) {
		result_set(res, v->reason[0] ? v->reason :
		    "validation-failure", v->detail);
		return -1;
	}
	if (v->level != TLS_LEVEL_NONE && v->level != TLS_LEVEL_MAY &&
	    (!proof->tls || ssl == NULL)) {
		result_set(res, policy_no_starttls_reason(v),
		    "this connection is not encrypted");
		return -1;
	}
	/* protocols=: the live connection's version, whatever the proof */
	if (protocols_outside(v, ssl, res))
		return -1;
	switch (v->level) {
	case TLS_LEVEL_NONE:
	case TLS_LEVEL_MAY:
	case TLS_LEVEL_ENCRYPT:
		break;
	case TLS_LEVEL_DANE:
		if (proof->level != TLS_LEVEL_DANE || proof->failed ||
		    verdict_identity(v, id) == -1 ||
		    memcmp(id, proof->id, sizeof(id)) != 0) {
			result_set(res, "validation-failure", "this connection "
			    "was not authenticated by these TLSA records");
			/* proven against other records, or none: these
			 * were never tried on it */
			res->untried = proof->level != TLS_LEVEL_DANE ||
			    verdict_identity(v, id) == -1 ||
			    memcmp(id, proof->id, sizeof(id)) != 0;
			return -1;
		}
		/* DANE-TA: the chain these records verified has expired
		 * since (a long session, a parked leg); a new connection
		 * fails as well, or its full handshake finds a new chain */
		if (!proof_current(proof)) {
			result_set(res, "certificate-expired", "the "
			    "certificate chain these TLSA records "
			    "authenticated on this connection has expired "
			    "since");
			return -1;
		}
		break;
	case TLS_LEVEL_VERIFY:
		if (proof->level == TLS_LEVEL_VERIFY && !proof->failed &&
		    proof_current(proof) && verdict_identity(v, id) == 0 &&
		    memcmp(id, proof->id, sizeof(id)) == 0)
			break;
		/* proven for other names, or not at all, or by a chain
		 * that has expired since on the policy clock (a long
		 * session, a parked leg): the live chain decides,
		 * verified from scratch */
		if ((vr = verify_peer(v, ssl, 1, NULL)) != X509_V_OK) {
			webpki_result(v, vr, res);
			return -1;
		}
		webpki_result(v, vr, res);
		break;
	case TLS_LEVEL_DEFER:
		return -1;
	}
	report_check(v, proof, ssl, res);
	return 0;
}

int
policy_verdict_unmeetable(const struct policy_verdict *v)
{
	enum tls_level l = v->monitor ? v->would_level : v->level;

	/* the names policy_tls_check() and verify_peer() check: none, and
	 * no digest either, is "no reference name" for every handshake */
	return l == TLS_LEVEL_VERIFY && (v->tls == NULL ||
	    (v->tls->nnames == 0 && v->tls->nfp == 0));
}

int
policy_tls_check(const struct policy_verdict *v, SSL *ssl,
    struct tls_proof *proof, struct tls_result *res)
{
	long vr;

	struct policy_verdict w;

	if (enforce_view(v, &w) == 0) {
		/* monitor: the check enforce mode would make; its failure
		 * is noted, the proof stays what was proven */
		if (policy_tls_check(&w, ssl, proof, res) == -1) {
			proof->failed = 1;
			res->would_defer = 1;
		}
		return 0;
	}
	memset(proof, 0, sizeof(*proof));
	memset(res, 0, sizeof(*res));
	snprintf(proof->mx_host, sizeof(proof->mx_host), "%s", v->mx_host);
	proof->level = TLS_LEVEL_NONE;
	if (ssl == NULL)
		return policy_leg_fits(v, proof, NULL, res);
	proof->tls = 1;
	proof->level = TLS_LEVEL_ENCRYPT;
	if (v->level == TLS_LEVEL_DEFER)
		return policy_leg_fits(v, proof, ssl, res);
	/* protocols=: the handshake kept to the range, except for the
	 * enforce view of a monitored verdict, whose lowest version is
	 * judged here (policy_tls_prepare()) */
	if (protocols_outside(v, ssl, res)) {
		proof->failed = 1;
		return -1;
	}
	if (v->level == TLS_LEVEL_DANE) {
		if (v->tls == NULL || v->tls->dane == NULL) {
			proof->failed = 1;
			result_set(res, "validation-failure", "no TLSA records");
			return -1;
		}
		if (dane_tls_check(v->tls->dane, ssl, res->reason,
		    sizeof(res->reason), res->detail,
		    sizeof(res->detail), &proof->not_after) == -1 ||
		    verdict_identity(v, proof->id) == -1) {
			proof->failed = 1;
			return -1;
		}
		proof->level = TLS_LEVEL_DANE;
		return 0;
	}
	if (v->tls == NULL || (v->tls->nnames == 0 && v->tls->nfp == 0)) {
		/* nothing to authenticate: the verification result only
		 * informs the log */
		vr = SSL_get_verify_result(ssl);
		if (vr == X509_V_OK && SSL_get0_peer_certificate(ssl) == NULL)
			vr = X509_V_ERR_UNSPECIFIED;
		webpki_result(v, vr, res);
		if (v->level == TLS_LEVEL_VERIFY) {
			proof->failed = 1;
			result_set(res, "certificate-host-mismatch",
			    "no reference name to verify the certificate for");
			return -1;
		}
		return 0;
	}
	vr = verify_peer(v, ssl, 0, &proof->not_after);
	webpki_result(v, vr, res);
	if (vr == X509_V_OK) {
		if (verdict_identity(v, proof->id) == 0)
			proof->level = TLS_LEVEL_VERIFY;
		return 0;
	}
	if (v->level == TLS_LEVEL_VERIFY || v->report_only)
		proof->failed = 1;
	if (v->level == TLS_LEVEL_VERIFY)
		return -1;
	if (v->report_only)
		res->report_failed = 1;
	return 0;
}

int
policy_tls_session_key(const struct policy_verdict *v, char *buf, size_t sz)
{
	const char *host = v->mx_host[0] ? v->mx_host : "-";
	struct policy_verdict w;
	unsigned char id[32];
	char hex[65];
	int i, n;

	/* monitor: resume only what passed the check enforce mode makes,
	 * so that its would-defer is judged on a real handshake */
	if (enforce_view(v, &w) == 0)
		return policy_tls_session_key(&w, buf, sz);
	switch (v->level) {
	case TLS_LEVEL_DANE:
	case TLS_LEVEL_VERIFY:
		/* only a session that passed this very check */
		if (verdict_identity(v, id) == -1)
			return -1;
		for (i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", id[i]);
		n = snprintf(buf, sz, "%s|%s|%s", host,
		    tls_level_name(v->level), hex);
		break;
	case TLS_LEVEL_DEFER:
		return -1;
	default:
		/* none, may, encrypt (also under a report-only MTA-STS
		 * policy): nothing authenticated, nothing skipped; a
		 * resumed session's certificate is verified afresh for a
		 * report */
		n = snprintf(buf, sz, "%s|unauthenticated", host);
		break;
	}
	return n < 0 || (size_t)n >= sz ? -1 : 0;
}
