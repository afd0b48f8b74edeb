/*
 * tls.c - OpenSSL contexts for both legs (see tls.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tlsproxy/tls.h"

struct tls_ctx {
	SSL_CTX	*client;
	SSL_CTX	*server;	/* NULL without a local certificate */
};

static int
version_of(const char *name)
{
	if (strcmp(name, "TLSv1.3") == 0)
		return TLS1_3_VERSION;
	if (strcmp(name, "TLSv1.2") == 0)
		return TLS1_2_VERSION;
	if (strcmp(name, "TLSv1.1") == 0)
		return TLS1_1_VERSION;
	return TLS1_VERSION;
}

/* Completes every handshake: the policy judges the result afterwards
 * (SSL_get_verify_result keeps the first error). */
static int
verify_accept(int ok, X509_STORE_CTX *ctx)
{
	return 1;
}

static void
ssl_err(char *err, size_t errsz, const char *what)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	snprintf(err, errsz, "%s: %s", what, buf);
	ERR_clear_error();
}

struct tls_ctx *
tls_ctx_new(const struct config *cfg, char *err, size_t errsz)
{
	struct tls_ctx *t;
	const char *cafile = *cfg->tls_ca_file ? cfg->tls_ca_file : NULL;
	const char *capath = *cfg->tls_ca_path ? cfg->tls_ca_path : NULL;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if ((t->client = SSL_CTX_new(TLS_client_method())) == NULL) {
		ssl_err(err, errsz, "creating the client TLS context");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->client,
	    version_of(cfg->tls_min_version));
	if (!SSL_CTX_set_cipher_list(t->client, cfg->tls_ciphers)) {
		ssl_err(err, errsz, "setting tls_ciphers");
		goto fail;
	}
	if (cafile || capath) {
		if (!SSL_CTX_load_verify_locations(t->client, cafile, capath)) {
			ssl_err(err, errsz, "loading tls_ca_file/tls_ca_path");
			goto fail;
		}
	} else if (!SSL_CTX_set_default_verify_paths(t->client)) {
		ssl_err(err, errsz, "loading the system CA store");
		goto fail;
	}
	if (SSL_CTX_dane_enable(t->client) <= 0) {
		ssl_err(err, errsz, "enabling DANE");
		goto fail;
	}
	SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, verify_accept);
	SSL_CTX_set_mode(t->client, SSL_MODE_RELEASE_BUFFERS);
	/* resumption is per MX host and set up by the session */
	SSL_CTX_set_session_cache_mode(t->client, SSL_SESS_CACHE_OFF);

	if (*cfg->tls_cert_file) {
		if ((t->server = SSL_CTX_new(TLS_server_method())) == NULL) {
			ssl_err(err, errsz, "creating the server TLS context");
			goto fail;
		}
		if (SSL_CTX_use_certificate_chain_file(t->server,
		    cfg->tls_cert_file) != 1) {
			ssl_err(err, errsz, "loading tls_cert_file");
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(t->server, cfg->tls_key_file,
		    SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(t->server) != 1) {
			ssl_err(err, errsz, "loading tls_key_file");
			goto fail;
		}
		SSL_CTX_set_mode(t->server, SSL_MODE_RELEASE_BUFFERS);
	}
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

void
tls_ctx_free(struct tls_ctx *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->client);
	SSL_CTX_free(t->server);
	free(t);
}

SSL *
tls_client_new(struct tls_ctx *t)
{
	return SSL_new(t->client);
}

SSL *
tls_server_new(struct tls_ctx *t)
{
	return t->server ? SSL_new(t->server) : NULL;
}

int
tls_server_enabled(const struct tls_ctx *t)
{
	return t->server != NULL;
}

void
tls_peer_names(SSL *ssl, char *subj, size_t subjsz, char *iss, size_t isssz)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);

	*subj = *iss = '\0';
	if (peer == NULL)
		return;
	X509_NAME_oneline(X509_get_subject_name(peer), subj, (int)subjsz);
	X509_NAME_oneline(X509_get_issuer_name(peer), iss, (int)isssz);
}
