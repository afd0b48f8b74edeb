/*
 * control.h - the daemon's unix control socket (`mxguard status`) and the
 * Prometheus text endpoint, both serving core/stats counters.  One object
 * for both, created before privileges are dropped (the socket lives under
 * /run/mxguard), freed by control_close().
 */
#ifndef MXG_CONTROL_H
#define MXG_CONTROL_H

#include "core/config.h"
#include "core/ev.h"

struct control;

struct control	*control_open(struct ev_loop *, const struct config *,
		    char *err, size_t errsz);
void		 control_close(struct control *);

#endif
