/*
 * dnscheck.c - the resolver self-check (see dnscheck.h).
 *
 * One round asks two questions at once on the checker's own struct dns:
 * SIGNED DNSKEY, and BOGUS A when a bogus name is configured.  The round
 * ends when both have answered or at its deadline, whichever comes first;
 * the verdict sets the gauge and, outside ONESHOT, logs and re-arms the
 * interval timer.  Strings from the configuration are copied: the daemon
 * may free an old configuration after SIGHUP while the checker runs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/stats.h"
#include "policy/dns.h"
#include "policy/dnscheck.h"

#define PENDING		(-2)

struct dnscheck {
	struct ev_loop	*loop;
	struct dns	*dns;
	int		 flags;
	uint64_t	 interval;
	uint64_t	 timeout;
	char		*signed_name;
	char		*bogus_name;	/* NULL: none */
	char		 servers[256];	/* for the log */
	struct ev_timer	*tick;		/* next round */
	struct ev_timer	*deadline;	/* this round */
	struct dns_req	*rq_signed;
	struct dns_req	*rq_bogus;
	int		 st_signed;	/* enum dns_status or PENDING */
	int		 st_bogus;	/* same, or -1: not asked */
	int		 state;		/* -1 unknown, 0, 1 */
	struct stat_ctr	*gauge;
	dnscheck_cb	*cb;
	void		*arg;
};

int
dnscheck_verdict(enum dns_status s, int b, const char **why)
{
	switch (s) {
	case DNS_SECURE:
		break;
	case DNS_INSECURE:
		*why = "the signed name's DNSKEY came back without the AD bit";
		return 0;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		*why = "the signed name has no DNSKEY record";
		return 0;
	case DNS_SERVFAIL:
		*why = "the signed name's DNSKEY came back SERVFAIL";
		return 0;
	case DNS_TIMEOUT:
		*why = "the resolver did not answer";
		return 0;
	case DNS_LOCAL:
		*why = "the query could not be sent for want of local "
		    "resources";
		return 0;
	default:
		*why = "no usable answer for the signed name";
		return 0;
	}
	if (b == -1 || b == DNS_SERVFAIL) {
		*why = b == -1 ? "the signed name validated" :
		    "the signed name validated, the bogus name was rejected";
		return 1;
	}
	if (b == DNS_TIMEOUT)
		*why = "the resolver did not answer for the bogus name";
	else if (b == DNS_LOCAL)
		*why = "the query for the bogus name could not be sent for "
		    "want of local resources";
	else
		*why = "the bogus name resolved: bogus data is not rejected";
	return 0;
}

static void round_start(void *);

static void
round_end(struct dnscheck *c)
{
	const char *why;
	char q1[300], q2[300], q3[300];
	int v, was = c->state;

	ev_timer_stop(c->deadline);
	v = dnscheck_verdict((enum dns_status)c->st_signed, c->st_bogus, &why);
	c->state = v;
	if (!(c->flags & DNSCHECK_ONESHOT)) {
		stats_set(c->gauge, v);
		if (v == 0)
			log_warn("event=dns-not-validating resolver=%s "
			    "signed=%s status=%s%s%s reason=%s "
			    "note=\"DANE cannot apply\"",
			    log_q(q1, sizeof(q1), c->servers),
			    log_q(q2, sizeof(q2), c->signed_name),
			    dns_status_name((enum dns_status)c->st_signed),
			    c->bogus_name ? " bogus_status=" : "",
			    c->bogus_name ? (c->st_bogus == PENDING ? "?" :
			    dns_status_name((enum dns_status)c->st_bogus)) :
			    "", log_q(q3, sizeof(q3), why));
		else if (was != 1)
			log_info("event=dns-validating resolver=%s signed=%s%s%s",
			    log_q(q1, sizeof(q1), c->servers),
			    log_q(q2, sizeof(q2), c->signed_name),
			    c->bogus_name ? " bogus=" : "",
			    c->bogus_name ? log_q(q3, sizeof(q3),
			    c->bogus_name) : "");
		ev_timer_arm(c->tick, c->interval);
	}
	if (c->cb != NULL)
		c->cb(c->arg, v, why);	/* last: it may free c */
}

static void
signed_done(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct dnscheck *c = arg;

	(void)a;
	c->rq_signed = NULL;
	c->st_signed = st;
	if (c->st_bogus != PENDING)
		round_end(c);
}

static void
bogus_done(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct dnscheck *c = arg;

	(void)a;
	c->rq_bogus = NULL;
	c->st_bogus = st;
	if (c->st_signed != PENDING)
		round_end(c);
}

/* The round ran out of time: what has not answered timed out. */
static void
round_expired(void *arg)
{
	struct dnscheck *c = arg;

	if (c->rq_signed != NULL) {
		dns_cancel(c->rq_signed);
		c->rq_signed = NULL;
		c->st_signed = DNS_TIMEOUT;
	}
	if (c->rq_bogus != NULL) {
		dns_cancel(c->rq_bogus);
		c->rq_bogus = NULL;
		c->st_bogus = DNS_TIMEOUT;
	}
	round_end(c);
}

static void
round_start(void *arg)
{
	struct dnscheck *c = arg;

	/* a cached answer would only repeat the last round */
	dns_cache_flush(c->dns);
	c->st_signed = PENDING;
	c->st_bogus = c->bogus_name ? PENDING : -1;
	ev_timer_arm(c->deadline, c->timeout);
	if ((c->rq_signed = dns_query(c->dns, c->signed_name, DNS_T_DNSKEY,
	    signed_done, c)) == NULL)
		c->st_signed = DNS_ERROR;
	if (c->bogus_name != NULL && (c->rq_bogus = dns_query(c->dns,
	    c->bogus_name, DNS_T_A, bogus_done, c)) == NULL)
		c->st_bogus = DNS_ERROR;
	/* answers always come from the loop, so only a failed query ends
	 * the round here; the deadline timer then is stopped by round_end */
	if (c->st_signed != PENDING && c->st_bogus != PENDING) {
		dns_cancel(c->rq_signed);
		dns_cancel(c->rq_bogus);
		c->rq_signed = c->rq_bogus = NULL;
		round_end(c);
	}
}

struct dnscheck *
dnscheck_new(struct ev_loop *loop, const struct config *cfg, int flags,
    uint64_t timeout_ms, dnscheck_cb *cb, void *arg, char *err, size_t errsz)
{
	struct dnscheck *c;
	size_t o = 0;
	int i;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	c->loop = loop;
	c->flags = flags;
	c->interval = cfg->dns_check_interval;
	c->timeout = timeout_ms ? timeout_ms : cfg->dns_timeout;
	c->state = -1;
	c->cb = cb;
	c->arg = arg;
	c->st_signed = c->st_bogus = -1;
	if (cfg->dns_servers.n == 0)
		snprintf(c->servers, sizeof(c->servers), "resolv.conf");
	for (i = 0; i < cfg->dns_servers.n && o < sizeof(c->servers); i++) {
		int n = snprintf(c->servers + o, sizeof(c->servers) - o,
		    "%s%s", i ? "," : "", cfg->dns_servers.v[i]);

		if (n < 0)
			break;
		o += (size_t)n;
	}
	if ((c->signed_name = strdup(cfg->dns_check_signed_name)) == NULL ||
	    (*cfg->dns_check_bogus_name != '\0' &&
	    (c->bogus_name = strdup(cfg->dns_check_bogus_name)) == NULL) ||
	    (c->tick = ev_timer_new(loop, round_start, c)) == NULL ||
	    (c->deadline = ev_timer_new(loop, round_expired, c)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	if ((c->dns = dns_new(loop, cfg, err, errsz)) == NULL)
		goto fail;
	if (!(flags & DNSCHECK_ONESHOT))
		c->gauge = stats_get("mxguard_dns_validating",
		    "1 when the resolver was seen validating DNSSEC "
		    "(a signed name with AD, a bogus name SERVFAIL)");
	ev_timer_arm(c->tick, 0);
	return c;
fail:
	dnscheck_free(c);
	return NULL;
}

void
dnscheck_free(struct dnscheck *c)
{
	if (c == NULL)
		return;
	dns_cancel(c->rq_signed);
	dns_cancel(c->rq_bogus);
	ev_timer_free(c->tick);
	ev_timer_free(c->deadline);
	if (c->dns != NULL)
		dns_free(c->dns);
	free(c->signed_name);
	free(c->bogus_name);
	free(c);
}

const char *
dnscheck_remote_server(const struct config *cfg, const char *resolvconf,
    int *others)
{
	static struct dns_server first;
	int n;

	if (others != NULL)
		*others = 0;
	if ((n = dns_servers_of(cfg, resolvconf, &first, 1)) <= 0)
		/* no address c-ares takes: not known to be loopback */
		return cfg->dns_servers.n > 0 ? cfg->dns_servers.v[0] : NULL;
	if (others != NULL)
		*others = n - 1;
	return first.loopback ? NULL : first.text;
}

int
dnscheck_state(const struct dnscheck *c)
{
	return c->state;
}
