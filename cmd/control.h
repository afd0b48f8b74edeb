/*
 * control.h - the daemon's unix control socket (`mxguard status`) and the
 * Prometheus text endpoint, both serving core/stats counters.  One object
 * for both, created before privileges are dropped (the socket lives under
 * /run/mxguard), freed by control_close().
 */
#ifndef MXG_CONTROL_H
#define MXG_CONTROL_H

#include <stdint.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/stats.h"

struct control;

struct control	*control_open(struct ev_loop *, const struct config *,
		    char *err, size_t errsz);
void		 control_close(struct control *);
/* The configuration the daemon runs from now on (a reload applied, or in
 * the supervisor one told to the workers): config_digest32() of it, for
 * "status" and "metrics"; control_open() starts with its cfg's.  ctl may
 * be NULL (a worker has none). */
void		 control_set_config(struct control *, uint32_t digest);
/* The supervisor's: n workers' metrics slots, whose word on the
 * configuration each runs (stats_shm_config()) status and metrics show
 * beside the one they were told. */
void		 control_set_workers(struct control *, struct stats_shm *,
		    int n);

#endif
