/*
 * policy.h - what the upstream leg of a delivery must achieve, per
 * recipient domain D and destination address A (docs/policy.md).
 *
 * Order: per-destination overrides (config tls_policy), DANE (RFC 7672),
 * MTA-STS (RFC 8461), TLS history, then opportunistic.  The engine does its
 * own DNS (c-ares on the event loop) and HTTPS fetches; a lookup answers
 * through a callback, always from the event loop, never from inside
 * policy_lookup().
 *
 * Who frees what: policy_new()/policy_free() for the engine;
 * policy_lookup() returns a request that ends either with its callback
 * (the request is then gone) or with policy_cancel() (no callback).  The
 * callback receives a verdict the receiver owns and frees with
 * policy_verdict_free().
 *
 * The verdict is a value type with its TLS checks in policy/verdict.h:
 * policy_tls_prepare() before a handshake, policy_tls_check() after it
 * (which yields the leg's proof), policy_leg_fits() for every later
 * recipient on that leg.
 */
#ifndef MXG_POLICY_H
#define MXG_POLICY_H

#include <sys/socket.h>
#include <openssl/ssl.h>

#include "core/config.h"
#include "core/ev.h"

#include "policy/verdict.h"

struct policy;
struct policy_req;
typedef void policy_cb(void *arg, struct policy_verdict *v);

struct policy	*policy_new(struct ev_loop *, const struct config *,
		    char *err, size_t errsz);
/* The daemon's two steps: the engine without its stores (the MTA-STS
 * cache, the TLS history, the TLSRPT store), made while still root, then
 * policy_open_stores() once privileges are dropped, so that root never
 * opens a file in state_dir, a directory the unprivileged `user` owns
 * (cmd/priv.h).  policy_new() is both at once, for callers that already
 * run as whoever should own the stores.  A store that cannot be opened is
 * logged and left out, as in policy_new(). */
struct policy	*policy_new_nostores(struct ev_loop *, const struct config *,
		    char *err, size_t errsz);
void		 policy_open_stores(struct policy *, const struct config *);
void		 policy_free(struct policy *);
/* New settings (SIGHUP); requests under way finish with the old ones. */
int		 policy_reconfigure(struct policy *, const struct config *,
		    char *err, size_t errsz);

/* domain as the client gave it (policy normalises); dst = A; tag (may be
 * NULL) names the asker in the decision's log line: "sid=TAG".  The
 * engine owns policy_timeout: the callback always comes by then (DANE
 * lookups still running defer, dnssec-invalid), so a caller needs no
 * timer of its own. */
struct policy_req *policy_lookup(struct policy *, const char *domain,
		    const struct sockaddr *dst, socklen_t dstlen,
		    const char *tag, policy_cb *, void *arg);
void		 policy_cancel(struct policy_req *);

/* TLS checks of verdicts and legs: policy/verdict.h. */

/* Delivery outcome news, for the TLS history and counters: the server at
 * dst (MX host name if known) offered STARTTLS or not, and TLS came up or
 * not.  p may be NULL (nothing is noted). */
void		 policy_record_tls(struct policy *, const struct sockaddr *dst,
		    const char *mx_host, int starttls_offered, int tls_ok);

/*
 * One upstream attempt under verdict v, for SMTP TLS Reporting (RFC 8460,
 * docs/tlsrpt.md): the session calls this once per session and report
 * (policy_report_key(): the policy domain's policy), with the outcome
 * the leg met.  Recorded under v->domain only
 * when tlsrpt_enable is set and the domain publishes a valid
 * _smtp._tls record (looked up here, cached for its TTL).  Never called
 * for a report's own delivery.  Strings are copied.
 */
struct policy_attempt {
	const char	*result;	/* RFC 8460 result type; NULL or
					 * "success": a successful session;
					 * "" or an unknown name counts as
					 * validation-failure */
	const char	*detail;	/* why it failed (failure-reason-code) */
	const struct sockaddr *mx_addr;	/* receiving-ip */
	const char	*local_ip;	/* sending-mta-ip (our source address) */
	const char	*greeting;	/* the MX's 220 line, for its HELO
					 * name (may be NULL) */
};
void		 policy_report_attempt(struct policy *,
		    const struct policy_verdict *v,
		    const struct policy_attempt *);

/* An SSL_CTX for HTTPS clients verifying the WebPKI with the configured
 * CA store (tls_ca_file, tls_ca_path, else the system's), TLS 1.2 at
 * least: the one MTA-STS fetches use.  The caller frees it. */
SSL_CTX		*policy_webpki_ctx(const struct config *, char *err,
		    size_t errsz);
/* The TLSRPT store the engine records into (NULL: tlsrpt_enable off or
 * the store could not be opened). */
struct tlsrpt_store;
struct tlsrpt_store *policy_tlsrpt_store(struct policy *);

/* For `mxguard policy`: the engine's resolver and MTA-STS cache (NULL if
 * the cache could not be opened).  Declared opaque here; see policy/dns.h
 * and policy/cache.h. */
struct dns;
struct sts_cache;
struct dns	*policy_dns(struct policy *);

/* The resolver self-check's latest word (policy/dnscheck.h): -1 not known
 * (the start), 0 not validating, 1 validating.  While it is 0, a verdict
 * DANE could have decided carries dane_note "resolver-not-validating". */
void		 policy_set_resolver_validating(struct policy *, int);
struct sts_cache *policy_sts_cache(struct policy *);

/* Descriptors the engine of one worker may hold at once under cfg, at
 * most: 4 (HTTP_GET_TRIES_MAX) for the fetch each session's lookup may
 * wait for (max_sessions), for each of FETCH_DETACHED_MAX fetches nobody
 * waits for and each of sts_refresh_max background refreshes (with
 * MTA-STS on), and the resolver's DNS_SOCKETS_MAX (docs/deployment.md,
 * "Open files"). */
unsigned long	 policy_fd_need(const struct config *);

#endif
