/*
 * tls.c - OpenSSL contexts for both legs (see tls.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "tlsproxy/tls.h"

#define RESUME_SLOTS	1024
/* A full TLS 1.3 handshake brings several tickets: keep the newest few
 * per key.  The newest is offered to every new connection (servers that
 * issue stateless tickets accept them again, and concurrent sessions to
 * one MX all resume); one the server refused is dropped, so a server that
 * treats tickets as single use (RFC 8446 C.4) gets the next one. */
#define RESUME_DEPTH	4
/* A ticket is what the server puts in it, up to 64 KB (TLS 1.2) or
 * 128 KB (1.3): a hostile MX issuing large ones to proven handshakes
 * under many keys (an MX host name per domain of its own) made the cache
 * hold RESUME_SLOTS * RESUME_DEPTH of them, hundreds of megabytes per
 * worker.  Real tickets are a few hundred bytes to a few KB; a larger one
 * is not kept (that server's connections are not resumed, nothing
 * else). */
#define RESUME_TICKET_MAX	(8 * 1024)
/* A session also holds the server's certificate chain, which the server
 * chooses too (OpenSSL takes up to 100 KB), parsed: some 4 KB of memory
 * per certificate besides a few times its DER.  A session whose chain has
 * more certificates or DER bytes than these is not kept.  Real chains
 * have 2-4 certificates and 2-10 KB. */
#define RESUME_CHAIN_CERTS	10
#define RESUME_CHAIN_MAX	(16 * 1024)

/* One session kept for resumption. */
struct resume_entry {
	SSL_SESSION	*sess;
	int64_t		 not_after;	/* until when its proof stands (0: no
					 * end; tls_client_done()) */
	int64_t		 born;		/* when the server issued it, boot
					 * clock seconds (boot_s()) */
};

/* The newest few sessions of one key, oldest first.  The list owns a
 * reference to each session. */
struct resume_list {
	struct resume_entry	 e[RESUME_DEPTH];
	int			 n;
};

/* Takes the caller's reference to e.sess; a full list drops its oldest. */
static void
list_push(struct resume_list *l, struct resume_entry e)
{
	if (l->n == RESUME_DEPTH) {
		SSL_SESSION_free(l->e[0].sess);
		memmove(l->e, l->e + 1, (RESUME_DEPTH - 1) * sizeof(l->e[0]));
		l->n--;
	}
	l->e[l->n++] = e;
}

/* Frees entry i's session and closes the gap. */
static void
list_remove(struct resume_list *l, int i)
{
	SSL_SESSION_free(l->e[i].sess);
	memmove(l->e + i, l->e + i + 1, (l->n - i - 1) * sizeof(l->e[0]));
	l->n--;
}

static void
list_clear(struct resume_list *l)
{
	while (l->n > 0)
		SSL_SESSION_free(l->e[--l->n].sess);
}

struct resume_slot {
	char			*key;
	struct resume_list	 list;
};

static void
slot_clear(struct resume_slot *slot)
{
	list_clear(&slot->list);
	free(slot->key);
	slot->key = NULL;
}

struct tls_ctx {
	SSL_CTX	*client;
	SSL_CTX	*server;	/* NULL without a local certificate */
	/* open-addressed by key hash; a collision replaces: a cache, not
	 * a store */
	struct resume_slot *slots;
};

static int key_index = -1;	/* SSL ex_data: the resumption key */
static int offer_index = -1;	/* SSL ex_data: the session offered */
static int pending_index = -1;	/* SSL ex_data: sessions held until the
				 * policy check has passed */

/* Sessions the server issued before the policy judged the handshake
 * (TLS 1.2 during it, TLS 1.3 tickets right after): held here, cached only
 * when tls_client_done() says the check passed.  After that, new tickets
 * go to the cache directly. */
struct pending {
	int			 proven;
	int64_t			 not_after;	/* once proven: the proof's */
	struct resume_list	 held;		/* not_after unset until
						 * proven */
};

/*
 * A session's age is told on the boot clock, which no one sets: OpenSSL
 * stamps it with the wall clock, which an operator, NTP or a VM restored
 * from a snapshot steps.  Stepped back, the wall-clock age kept a
 * session on offer past its lifetime for the size of the step (in TLS
 * 1.2 that check is the client's only one; a server that still holds an
 * old ticket key, or whoever took it, resumes what should have ended);
 * stepped ahead, it dropped fresh ones.  CLOCK_BOOTTIME counts a
 * suspend, as the lifetime does.
 */
static int64_t
boot_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec;
}

/* Is sess, issued at born (boot_s()), within its lifetime: the session
 * timeout, or the server's ticket lifetime when that is shorter (a TLS
 * 1.3 ticket's is a bound, RFC 8446 section 4.6.1; OpenSSL keeps the
 * client's default timeout, 2 hours, beside it)? */
static int
session_live(const SSL_SESSION *sess, int64_t born)
{
	int64_t life = (int64_t)SSL_SESSION_get_timeout(sess), age;
	unsigned long hint = SSL_SESSION_get_ticket_lifetime_hint(sess);

	if (hint > 0 && (int64_t)hint < life)
		life = (int64_t)hint;
	age = boot_s() - born;
	return age >= 0 && age < life;
}

static void
pending_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	struct pending *p = ptr;

	if (p == NULL)
		return;
	list_clear(&p->held);
	free(p);
}

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

static unsigned
key_hash(const char *k)
{
	unsigned h = 2166136261u;

	while (*k)
		h = (h ^ (unsigned char)*k++) * 16777619u;
	return h % RESUME_SLOTS;
}

static void
key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	free(ptr);
}

/* OpenSSL hands us each session the server issued (TLS 1.3 tickets come
 * after the handshake). */
static void
cache_add(struct tls_ctx *t, const char *key, SSL_SESSION *sess,
    int64_t not_after, int64_t born)
{
	struct resume_slot *slot = &t->slots[key_hash(key)];

	if (slot->key == NULL || strcmp(slot->key, key) != 0) {
		slot_clear(slot);
		if ((slot->key = strdup(key)) == NULL) {
			SSL_SESSION_free(sess);
			return;
		}
	}
	list_push(&slot->list, (struct resume_entry){ sess, not_after, born });
}

/* Is the server's chain, as a session holds it, too large to keep?  (On
 * the client the chain has the leaf first.) */
static int
chain_too_large(SSL *ssl)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	size_t n = 0;
	int i, len;

	if (chain == NULL)
		return 0;
	if (sk_X509_num(chain) > RESUME_CHAIN_CERTS)
		return 1;
	for (i = 0; i < sk_X509_num(chain); i++)
		if ((len = i2d_X509(sk_X509_value(chain, i), NULL)) > 0 &&
		    (n += (size_t)len) > RESUME_CHAIN_MAX)
			return 1;
	return 0;
}

static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_ctx *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const char *key = SSL_get_ex_data(ssl, key_index);
	struct pending *p = SSL_get_ex_data(ssl, pending_index);
	const unsigned char *tick;
	size_t ticklen = 0;

	if (key == NULL || t == NULL || p == NULL ||
	    !SSL_SESSION_is_resumable(sess))
		return 0;
	SSL_SESSION_get0_ticket(sess, &tick, &ticklen);
	if (ticklen > RESUME_TICKET_MAX || chain_too_large(ssl))
		return 0;
	if (p->proven) {
		cache_add(t, key, sess, p->not_after, boot_s());
		return 1;	/* we keep the reference */
	}
	list_push(&p->held, (struct resume_entry){ sess, 0, boot_s() });
	return 1;
}

/*
 * Whether the certificates a session was proven with have expired on the
 * policy clock (or cannot be read): the leaf, and not_after, the earliest
 * notAfter of the chain that verified (the proof's, tls_client_done();
 * an intermediate or root often expires before the leaf).  Resumed, it
 * would fail the check (its chain's validity is judged again,
 * verdict.c), one 421 and a TLSRPT failure, where the server, its chain
 * renewed, would pass a full handshake: not offered.
 */
static int
peer_expired(const SSL_SESSION *sess, int64_t not_after)
{
	X509 *leaf = SSL_SESSION_get0_peer((SSL_SESSION *)sess);
	time_t now = (time_t)clock_now();

	return leaf == NULL || (not_after != 0 && now >= not_after) ||
	    X509_cmp_time(X509_get0_notAfter(leaf), &now) <= 0;
}

void
tls_client_resume(struct tls_ctx *t, SSL *ssl, const char *key)
{
	struct resume_slot *slot = &t->slots[key_hash(key)];
	struct pending *p;
	char *k;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return;
	if (!SSL_set_ex_data(ssl, pending_index, p)) {
		free(p);
		return;
	}
	if ((k = strdup(key)) == NULL)
		return;
	if (!SSL_set_ex_data(ssl, key_index, k)) {
		free(k);
		return;
	}
	if (slot->key == NULL || strcmp(slot->key, key) != 0)
		return;
	while (slot->list.n > 0) {
		struct resume_entry *e = &slot->list.e[slot->list.n - 1];

		if (SSL_SESSION_is_resumable(e->sess) &&
		    session_live(e->sess, e->born) &&
		    !peer_expired(e->sess, e->not_after)) {
			SSL_set_session(ssl, e->sess);
			SSL_set_ex_data(ssl, offer_index, e->sess);
			return;
		}
		list_remove(&slot->list, slot->list.n - 1);
	}
}

void
tls_client_done(struct tls_ctx *t, SSL *ssl, int proven, int64_t not_after)
{
	const char *key = SSL_get_ex_data(ssl, key_index);
	SSL_SESSION *offered = SSL_get_ex_data(ssl, offer_index);
	struct pending *p = SSL_get_ex_data(ssl, pending_index);
	struct resume_slot *slot;
	int i;

	if (key == NULL)
		return;
	if (!tls_client_current(t, ssl)) {
		/* begun before a reload: its sessions were made with the
		 * old settings, and t's cache is the new ones' (what the
		 * old cache held went with it) */
		SSL_set_ex_data(ssl, key_index, NULL);
		free((char *)key);
		return;
	}
	if (!proven) {
		/* nothing of this connection is ever resumed, and what was
		 * cached under the key before may be what led here */
		tls_client_forget(t, key);
		SSL_set_ex_data(ssl, key_index, NULL);
		free((char *)key);
		return;
	}
	if (p != NULL) {
		p->proven = 1;
		p->not_after = not_after;
		/* the references move to the cache */
		for (i = 0; i < p->held.n; i++)
			cache_add(t, key, p->held.e[i].sess, not_after,
			    p->held.e[i].born);
		p->held.n = 0;
	}
	if (offered == NULL || SSL_session_reused(ssl))
		return;
	/* the server would not resume it: do not offer it again */
	slot = &t->slots[key_hash(key)];
	for (i = 0; i < slot->list.n; i++)
		if (slot->list.e[i].sess == offered) {
			list_remove(&slot->list, i);
			break;
		}
}

void
tls_client_forget(struct tls_ctx *t, const char *key)
{
	struct resume_slot *slot = &t->slots[key_hash(key)];

	if (slot->key != NULL && strcmp(slot->key, key) == 0)
		slot_clear(slot);
}

/* Completes every handshake: the policy judges the result afterwards.
 * A WebPKI leg's SSL gets a callback of its own that keeps the first
 * error (policy/verdict.c, prepare()); under this one OpenSSL goes on
 * and keeps the last. */
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

/* tls_ciphers, never with a NULL-encryption suite (eNULL): the server
 * picks among what we offer, and every level that requires TLS (encrypt,
 * verify, dane) would take a session that encrypts nothing for TLS.
 * Postfix excludes them whatever its cipher settings say.  Appended last,
 * "!eNULL" removes them for good, whatever the list put first. */
static int
set_ciphers(SSL_CTX *ctx, const char *list)
{
	char *s;
	int ok;

	if (asprintf(&s, "%s:!eNULL", list) == -1)
		return -1;
	ok = SSL_CTX_set_cipher_list(ctx, s);
	free(s);
	return ok ? 0 : -1;
}

static struct tls_ctx *
ctx_new(const struct config *cfg, int server, char *err, size_t errsz)
{
	struct tls_ctx *t;
	const char *cafile = *cfg->tls_ca_file ? cfg->tls_ca_file : NULL;
	const char *capath = *cfg->tls_ca_path ? cfg->tls_ca_path : NULL;

	if (key_index == -1)
		key_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    key_free);
	if (offer_index == -1)
		offer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (pending_index == -1)
		pending_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    pending_free);
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->slots = calloc(RESUME_SLOTS, sizeof(*t->slots))) == NULL) {
		free(t);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if ((t->client = SSL_CTX_new(TLS_client_method())) == NULL) {
		ssl_err(err, errsz, "creating the client TLS context");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->client,
	    version_of(cfg->tls_min_version));
	if (set_ciphers(t->client, cfg->tls_ciphers) == -1) {
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
	/* the leg's proof is checked once, after the handshake: a TLS 1.2
	 * renegotiation could bring a certificate it never sees (Postfix
	 * turns renegotiation off too) */
	SSL_CTX_set_options(t->client, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(t->client, SSL_MODE_RELEASE_BUFFERS);
	/* one read() per burst of records, not two per record */
	SSL_CTX_set_read_ahead(t->client, 1);
	/* resumption is keyed by the session (tls_client_resume) */
	SSL_CTX_set_session_cache_mode(t->client, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(t->client, new_session_cb);
	SSL_CTX_set_app_data(t->client, t);

	if (server && *cfg->tls_cert_file) {
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
		SSL_CTX_set_read_ahead(t->server, 1);
		/* a client's renegotiations cost us handshakes, for nothing */
		SSL_CTX_set_options(t->server, SSL_OP_NO_RENEGOTIATION);
	}
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

struct tls_ctx *
tls_ctx_new(const struct config *cfg, char *err, size_t errsz)
{
	return ctx_new(cfg, 1, err, errsz);
}

/* the TLSRPT run's: made after the drop, where tls_key_file (root's)
 * cannot be read, and it has no client leg to offer STARTTLS on */
struct tls_ctx *
tls_ctx_new_client(const struct config *cfg, char *err, size_t errsz)
{
	return ctx_new(cfg, 0, err, errsz);
}

void
tls_ctx_free(struct tls_ctx *t)
{
	int i;

	if (t == NULL)
		return;
	for (i = 0; t->slots && i < RESUME_SLOTS; i++)
		slot_clear(&t->slots[i]);
	free(t->slots);
	/* SSL objects of live sessions keep the SSL_CTX alive: its
	 * new-session callback must not find this struct any more */
	if (t->client)
		SSL_CTX_set_app_data(t->client, NULL);
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

int
tls_client_current(const struct tls_ctx *t, const SSL *ssl)
{
	return ssl != NULL && SSL_get_SSL_CTX(ssl) == t->client;
}

int
tls_client_min_version(const struct tls_ctx *t)
{
	return (int)SSL_CTX_get_min_proto_version(t->client);
}

int
tls_client_cipher_allowed(const struct tls_ctx *t, const SSL_CIPHER *c)
{
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(t->client);
	uint32_t id = SSL_CIPHER_get_id(c);
	int i;

	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++)
		if (SSL_CIPHER_get_id(sk_SSL_CIPHER_value(sk, i)) == id)
			return 1;
	return 0;
}

int
tls_client_security_level(const struct tls_ctx *t)
{
	return SSL_CTX_get_security_level(t->client);
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
