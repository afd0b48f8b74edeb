/*
 * nfq.h - NFQUEUE steering: the SYN of each new outbound port-25 flow is
 * queued to mxguard, which answers with a verdict mark that the rules save
 * to the connmark (DESIGN.md section 2):
 *
 *   INTERCEPT  config intercept_mark: later rules divert the flow to us
 *   BYPASS     config upstream_mark: the flow goes direct (exempt source or
 *              destination; or fail_mode=open while the proxy is full)
 *   DROP       fail_mode=closed while the proxy is full
 *
 * The queue fd is one more fd in the event loop.  The entry point hands in
 * a function that says whether the proxy is saturated, so nfq/ never
 * includes tlsproxy/.  nfq_open() returns an object freed by nfq_close().
 */
#ifndef MXG_NFQ_H
#define MXG_NFQ_H

#include "core/config.h"
#include "core/ev.h"

/* Returns nonzero when the proxy takes no more sessions. */
typedef int nfq_saturated_fn(void *arg);

struct nfq;

struct nfq	*nfq_open(struct ev_loop *, const struct config *,
		    nfq_saturated_fn *, void *arg, char *err, size_t errsz);
void		 nfq_close(struct nfq *);
/* New bypass lists and fail mode (SIGHUP). */
int		 nfq_reconfigure(struct nfq *, const struct config *,
		    char *err, size_t errsz);

#endif
