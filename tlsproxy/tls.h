/*
 * tls.h - OpenSSL contexts of the proxy.
 *
 * The client context (upstream leg) verifies against the WebPKI store
 * (config tls_ca_file/tls_ca_path, else OpenSSL's default paths), has
 * DANE enabled and never offers a NULL-encryption suite, whatever
 * tls_ciphers lists.  Its verify callback never aborts a handshake,
 * because the verdict is the policy's (policy_tls_check after the
 * handshake), not OpenSSL's.  The server context (client leg) exists only
 * when a local certificate is configured.  tls_ctx_new() returns a struct
 * freed by tls_ctx_free().
 */
#ifndef MXG_TLS_H
#define MXG_TLS_H

#include <openssl/ssl.h>

#include "core/config.h"

struct tls_ctx;

struct tls_ctx	*tls_ctx_new(const struct config *, char *err, size_t errsz);
/* The client context alone, no server side whatever tls_cert_file says:
 * for the TLSRPT run's mail legs (tlsproxy/report.c), made after the drop
 * as `user`, who may not read tls_key_file. */
struct tls_ctx	*tls_ctx_new_client(const struct config *, char *err,
		    size_t errsz);
void		 tls_ctx_free(struct tls_ctx *);
/* A fresh SSL for the upstream leg; NULL on error. */
SSL		*tls_client_new(struct tls_ctx *);
/* A fresh SSL for the client leg, or NULL when no certificate is set. */
SSL		*tls_server_new(struct tls_ctx *);
int		 tls_server_enabled(const struct tls_ctx *);
/* 1 if ssl was made by t (tls_client_new): a connection set up before a
 * reload changed the TLS settings is not from the current context.  (The
 * SSL holds a reference to its SSL_CTX, so an old context's address is
 * never reused while ssl lives.) */
int		 tls_client_current(const struct tls_ctx *, const SSL *ssl);
/* The lowest protocol version t's client context negotiates (the
 * tls_min_version it was made with), e.g. TLS1_2_VERSION; 0: any. */
int		 tls_client_min_version(const struct tls_ctx *);
/* 1 if t's client context offers cipher c (tls_ciphers, or a TLS 1.3
 * suite); 0 if a reload took it out. */
int		 tls_client_cipher_allowed(const struct tls_ctx *,
		    const SSL_CIPHER *c);
/* OpenSSL's security level of t's client context (tls_ciphers'
 * @SECLEVEL, or the system default). */
int		 tls_client_security_level(const struct tls_ctx *);
/* TLS session resumption per upstream: key names the destination and
 * everything the policy checked (MX host, level, TLSA digest), so a
 * resumed session never stands in for a check of another policy.  Call
 * before the handshake; new sessions the server hands out are stored
 * under the same key.  The cache is bounded and entries expire with the
 * session's own lifetime. */
void		 tls_client_resume(struct tls_ctx *, SSL *, const char *key);
/* After the handshake and the policy's check of it.  proven: the check
 * passed with nothing failed; the sessions the server issued are cached
 * (before this they are only held), and a session the server refused to
 * resume is not offered again.  Not proven (also a handshake that broke
 * off): nothing of this connection is cached, and the key's cached
 * sessions are dropped.  An ssl not of t (begun before a reload) leaves
 * t's cache alone: its sessions were made with the old settings.
 * not_after: until when the proof stands (the earliest notAfter of the
 * chain that verified, struct tls_proof; 0: no end): its sessions are
 * not offered from then on. */
void		 tls_client_done(struct tls_ctx *, SSL *, int proven,
		    int64_t not_after);
/* Drops what is cached under key (a session that failed its policy
 * check, e.g. a TLS 1.2 session stored during the handshake). */
void		 tls_client_forget(struct tls_ctx *, const char *key);
/* "CN=..., O=..." of the peer certificate's subject and issuer. */
void		 tls_peer_names(SSL *, char *subj, size_t subjsz, char *iss,
		    size_t isssz);

#endif
