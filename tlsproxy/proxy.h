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
/* New configuration (SIGHUP): timeouts, limits, TLS files.  Listeners
 * stay; -1 with err when the new TLS files do not load. */
int		 proxy_reconfigure(struct proxy *, const struct config *,
		    char *err, size_t errsz);
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
