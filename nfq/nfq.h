/*
 * nfq.h - NFQUEUE steering: the SYN of each new outbound port-25 flow is
 * queued to mxguard, which answers with a verdict mark that the rules save
 * to the connmark (docs/architecture.md, "Packet path"):
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

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/cidr.h"

/* Returns nonzero when the proxy takes no more sessions. */
typedef int nfq_saturated_fn(void *arg);

struct nfq;

struct nfq	*nfq_open(struct ev_loop *, const struct config *,
		    nfq_saturated_fn *, void *arg, char *err, size_t errsz);
void		 nfq_close(struct nfq *);
/* New bypass lists and fail mode (SIGHUP). */
/* The bypass lists parse (every entry an address or prefix): 0, or -1
 * with err.  For mxguard -n and a reload, before anything is applied. */
int		 nfq_config_check(const struct config *, char *err,
		    size_t errsz);
int		 nfq_reconfigure(struct nfq *, const struct config *,
		    char *err, size_t errsz);

/* The decision for one SYN, as a pure function (unit-tested): exempt
 * source, then exempt destination, then saturation (fail_open: BYPASS,
 * else DROP), else INTERCEPT.  *why says which rule decided. */
enum nfq_verdict { NFQ_INTERCEPT, NFQ_BYPASS, NFQ_DROP };
enum nfq_reason { NFQ_R_NONE, NFQ_R_BYPASS_SRC, NFQ_R_BYPASS_DST,
		  NFQ_R_SATURATED, NFQ_R_NO_LISTENER };
enum nfq_verdict nfq_decide(const struct cidr *src, int nsrc,
		    const struct cidr *dst, int ndst, int family,
		    const void *saddr, const void *daddr, int saturated,
		    int fail_open, enum nfq_reason *why);
/* Points saddr/daddr into an IPv4 or IPv6 packet; -1 if it is neither or
 * too short. */
int		 nfq_packet_addrs(const uint8_t *pkt, size_t len, int *family,
		    const uint8_t **saddr, const uint8_t **daddr);

#endif
