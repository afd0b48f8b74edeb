/*
 * hstime: the CPU that OpenSSL alone spends on one TLS 1.3 handshake, on
 * each side, with no network and no SMTP: the floor under mxguard's cost
 * per new upstream connection (docs/performance.md).
 *
 * Client and server run in one thread over a BIO pair; the time spent in
 * each side's calls (SSL_new, the handshake steps, reading the session
 * tickets, SSL_free) is added up separately.  A P-256 ECDSA certificate is
 * made in memory, as the bench's sink uses.  N full handshakes first, then
 * N resumed ones (the client offers the newest ticket, as mxguard does);
 * the client does not verify the chain (mxguard's check of a resumed
 * session costs no chain work either).
 *
 *   hstime [N]          default N = 2000
 *
 * Build: cc -O2 -o hstime hstime.c -lssl -lcrypto
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static SSL_SESSION *ticket;	/* the newest one the client got */
static double t_client, t_server;
static int not_resumed;

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int
new_ticket(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	SSL_SESSION_free(ticket);
	ticket = sess;
	return 1;		/* the reference is ours */
}

static void
one(SSL_CTX *cc, SSL_CTX *sc, int resume)
{
	SSL *c, *s;
	BIO *bc, *bs;
	char buf[64];
	int cdone = 0, sdone = 0, i;
	double t;

	t = now();
	c = SSL_new(cc);
	SSL_set_tlsext_host_name(c, "sink.test");
	if (resume && ticket != NULL)
		SSL_set_session(c, ticket);
	t_client += now() - t;
	t = now();
	s = SSL_new(sc);
	t_server += now() - t;
	if (c == NULL || s == NULL || !BIO_new_bio_pair(&bc, 0, &bs, 0)) {
		fprintf(stderr, "hstime: out of memory\n");
		exit(1);
	}
	SSL_set_bio(c, bc, bc);
	SSL_set_bio(s, bs, bs);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (i = 0; i < 20 && !(cdone && sdone); i++) {
		t = now();
		if (!cdone && SSL_do_handshake(c) == 1)
			cdone = 1;
		t_client += now() - t;
		t = now();
		if (!sdone && SSL_do_handshake(s) == 1)
			sdone = 1;
		t_server += now() - t;
	}
	if (!cdone || !sdone) {
		fprintf(stderr, "hstime: handshake did not complete\n");
		exit(1);
	}
	t = now();
	(void)SSL_read(c, buf, sizeof(buf));	/* the tickets */
	if (resume && !SSL_session_reused(c))
		not_resumed++;
	/* a clean end, or OpenSSL marks the session not resumable */
	SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(c);
	t_client += now() - t;
	t = now();
	SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(s);
	t_server += now() - t;
}

static int
server_cert(SSL_CTX *sc)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	int ok;

	if (key == NULL || x == NULL)
		return -1;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"sink.test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	ok = X509_sign(x, key, EVP_sha256()) > 0 &&
	    SSL_CTX_use_certificate(sc, x) == 1 &&
	    SSL_CTX_use_PrivateKey(sc, key) == 1;
	X509_free(x);
	EVP_PKEY_free(key);
	return ok ? 0 : -1;
}

int
main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000, i;
	SSL_CTX *sc = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cc = SSL_CTX_new(TLS_client_method());

	if (n <= 0 || sc == NULL || cc == NULL || server_cert(sc) == -1) {
		fprintf(stderr, "usage: hstime [N]  (or OpenSSL set-up failed)\n");
		return 1;
	}
	SSL_CTX_set_min_proto_version(cc, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(cc, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(cc, new_ticket);
	one(cc, sc, 0);			/* warm-up */
	t_client = t_server = 0;
	for (i = 0; i < n; i++)
		one(cc, sc, 0);
	printf("full     %s: client %.3f ms, server %.3f ms per handshake\n",
	    OpenSSL_version(OPENSSL_VERSION), t_client * 1000 / n,
	    t_server * 1000 / n);
	t_client = t_server = 0;
	for (i = 0; i < n; i++)
		one(cc, sc, 1);
	printf("resumed  %s: client %.3f ms, server %.3f ms per handshake "
	    "(%d of %d not resumed)\n", OpenSSL_version(OPENSSL_VERSION),
	    t_client * 1000 / n, t_server * 1000 / n, not_resumed, n);
	SSL_SESSION_free(ticket);
	SSL_CTX_free(cc);
	SSL_CTX_free(sc);
	return not_resumed ? 1 : 0;
}
