/*
 * dnscheck.h - is the configured resolver validating DNSSEC?
 *
 * mxguard trusts the AD bit of the resolver's answers (policy/dns.h): a
 * resolver that does not validate never sets it, and then DANE silently
 * never applies.  This module asks the resolver, at start and every
 * dns_check_interval, for the DNSKEY of dns_check_signed_name (default the
 * root, ".") - a validating resolver answers with AD set - and, when the
 * operator configured one, for the A record of dns_check_bogus_name, a
 * name with deliberately broken signatures that a validating resolver
 * must answer with SERVFAIL.  The result is the gauge
 * mxguard_dns_validating (core/stats.h), a warning while it is 0 and an
 * info line when it becomes 1.
 *
 * The checker owns its own struct dns, whose cache it flushes before every
 * round, so a cached answer never hides a resolver that stopped (or
 * started) validating.  dnscheck_free() cancels a round in flight; the
 * callback never runs after it.
 */
#ifndef MXG_DNSCHECK_H
#define MXG_DNSCHECK_H

#include <stdint.h>

#include "core/config.h"
#include "core/ev.h"
#include "policy/dns.h"

#define DNSCHECK_ONESHOT	0x01	/* one round, no timer, no logging */

struct dnscheck;

/* After every round: validating 1 or 0, and why (a short phrase, valid
 * during the call only). */
typedef void dnscheck_cb(void *arg, int validating, const char *why);

/* Starts the first round at once (from the event loop).  timeout_ms bounds
 * one round (0: the configuration's dns_timeout).  cb may be NULL.  NULL
 * with err filled when the resolver cannot be set up. */
struct dnscheck	*dnscheck_new(struct ev_loop *, const struct config *,
		    int flags, uint64_t timeout_ms, dnscheck_cb *, void *arg,
		    char *err, size_t errsz);
void		 dnscheck_free(struct dnscheck *);
/* -1 before the first round ends, else 0 or 1. */
int		 dnscheck_state(const struct dnscheck *);
/* The server mxguard asks (the first of dns_servers, or of resolvconf's
 * nameservers when dns_servers is empty; resolvconf NULL: the system's)
 * when it is not a loopback address (127/8, ::1), else NULL: mxguard
 * believes the AD bit of the answers, so anyone on the path to such a
 * server could forge it (docs/dane.md).  *others (may be NULL): how many
 * more servers are listed, which are never asked (dns_new()). */
const char	*dnscheck_remote_server(const struct config *,
		    const char *resolvconf, int *others);

/* The verdict of one round from the two answers (exposed for tests):
 * signed: the status of the signed name's DNSKEY; bogus: the status of
 * the bogus name, or -1 when none is configured.  Returns 1 or 0 and
 * points *why at a static phrase. */
int		 dnscheck_verdict(enum dns_status signed_st, int bogus_st,
		    const char **why);

#endif
