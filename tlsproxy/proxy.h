/*
 * proxy.h - the transparent listeners and the sessions they start.
 *
 * proxy_new() opens the listeners (privileged: IP_TRANSPARENT for TPROXY,
 * low ports) and returns an object freed by proxy_free(), which closes
 * the listeners; sessions under way keep running until they end.
 * The original destination of an accepted connection comes from
 * SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST (REDIRECT) or from the accepted
 * socket's local address (TPROXY).
 */
#ifndef MXG_PROXY_H
#define MXG_PROXY_H

#include "core/config.h"
#include "core/ev.h"
#include "policy/policy.h"

struct proxy;
struct tls_ctx;

struct proxy	*proxy_new(struct ev_loop *, const struct config *,
		    struct policy *, char *err, size_t errsz);
void		 proxy_free(struct proxy *);
/* Workers (cmd/workers.c): the supervisor opens each worker's listeners
 * (every `listen` address with SO_REUSEPORT) into fds, returning how many
 * or -1 with err; the worker's proxy adopts them (and closes them in
 * proxy_drain/proxy_free), and counts the sessions of all workers against
 * max_sessions through total(). */
int		 proxy_listen(const struct config *, int *fds, int maxfds,
		    char *err, size_t errsz);
struct proxy	*proxy_new_fds(struct ev_loop *, const struct config *,
		    struct policy *, const int *fds, int nfds, char *err,
		    size_t errsz);
void		 proxy_set_total(struct proxy *, int64_t (*total)(void *),
		    void *arg);
/* New configuration (SIGHUP): timeouts, limits, TLS files, in two steps
 * so that a reload applies whole or not at all.  proxy_prepare() makes
 * what the configuration needs (NULL with err when its TLS files do not
 * load); proxy_commit(), which cannot fail, applies it and takes the
 * tls_ctx, or tls_ctx_free() drops it when another part of the daemon
 * refused the reload.  Listeners stay. */
struct tls_ctx	*proxy_prepare(const struct config *, char *err,
		    size_t errsz);
void		 proxy_commit(struct proxy *, const struct config *,
		    struct tls_ctx *);
/* Stops accepting (SIGTERM); sessions go on. */
void		 proxy_drain(struct proxy *);
/* A worker that could not apply a reload: its sessions take no new
 * transaction or recipient (421), as their verdicts would follow the
 * configuration the others no longer run.  Then proxy_drain(). */
void		 proxy_retire(struct proxy *);
int		 proxy_sessions(const struct proxy *);
/* For nfq: nonzero when at max_sessions. */
int		 proxy_saturated(void *proxy);

#endif
