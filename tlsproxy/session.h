/*
 * session.h - one relayed SMTP session: the client leg (the MTA, whose
 * connection to the remote MX was diverted to us) and the upstream leg
 * (our own connection to that MX).  See session.c for the state machine.
 *
 * The proxy (proxy.c) owns the environment and calls session_start() for
 * each accepted connection; the session frees itself when both legs are
 * closed and tells the proxy through env->on_session_end.
 */
#ifndef MXG_SESSION_H
#define MXG_SESSION_H

#include <sys/socket.h>

#include "core/config.h"
#include "core/ev.h"
#include "policy/policy.h"
#include "tlsproxy/reuse.h"
#include "tlsproxy/tls.h"

struct session;

struct session_env {
	struct ev_loop		*loop;
	const struct config	*cfg;		/* replaced on reload */
	struct policy		*policy;
	struct tls_ctx		*tls;
	struct reuse		*reuse;		/* parked upstream legs */
	int			 nsessions;	/* live sessions */
	int			 draining;
	int			 retiring;	/* this worker could not apply
						 * a reload: no new transaction
						 * or recipient here (421) */
	uint64_t		 gen;		/* configuration generation:
						 * a session reuses a verdict
						 * only of the current one */
	uint64_t		 policy_grace;	/* ms past policy_timeout before
						 * a session gives up on the
						 * engine (0: 30 s) */
	uint64_t		 verdict_max_age; /* ms a verdict serves new
						 * transactions of its session
						 * (0: 60 s) */
	struct session		*sessions;	/* live ones, linked */
};

/* Takes ownership of fd.  Returns 0, or -1 (fd closed) on error. */
int	session_start(struct session_env *, int fd,
	    const struct sockaddr_storage *client,
	    const struct sockaddr_storage *dst);
/* The drain has begun (env->draining): a session with no transaction
 * under way, waiting for its client, ends now (421, QUIT upstream). */
void	session_drain_all(struct session_env *);
/* Frees every live session at once (exit after the drain deadline). */
void	session_abort_all(struct session_env *);

#endif
