/*
 * policy.c - `mxguard policy DOMAIN`: what mxguard knows and would decide
 * for a recipient domain.  Prints the MX hosts and their addresses, the
 * _mta-sts TXT record, the MTA-STS policy (from the cache or fetched now,
 * with its age), and the verdict policy_lookup() gives for every MX
 * address.  Runs its own event loop with the configured resolver and the
 * daemon's policy cache (state_dir); a fetched policy is cached as the
 * daemon would.  Exit status: 0, or 1 on usage or setup errors; 2 when
 * some MX address would be deferred.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "core/ev.h"
#include "core/log.h"
#include "policy/cache.h"
#include "policy/dns.h"
#include "policy/policy.h"
#include "policy/sts.h"

#define MAXH	16
#define MAXA	8

struct host {
	char		 name[256];
	int		 pref;
	enum dns_status	 st4, st6;
	int		 naddr;
	struct sockaddr_storage addr[MAXA];
};

struct run {
	struct ev_loop	*loop;
	int		 outstanding;
	/* MX */
	const char	*domain;
	enum dns_status	 mx_st;
	int		 nhost;
	struct host	 hosts[MAXH];
	/* TXT */
	enum dns_status	 txt_st;
	int		 ntxt;
	char		 txt[8][512];
	/* verdict */
	struct policy_verdict *v;
};

static void
one_done(struct run *r)
{
	if (--r->outstanding == 0)
		ev_loop_stop(r->loop);
}

static void
wait_all(struct run *r)
{
	if (r->outstanding > 0)
		ev_loop_run(r->loop);
}

static void
on_mx(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct run *r = arg;
	int i;

	struct dns_mx mx[MAXH];

	r->mx_st = st;
	r->nhost = dns_mx_hosts(st, a, r->domain, mx, MAXH);
	for (i = 0; i < r->nhost; i++) {
		memcpy(r->hosts[i].name, mx[i].name, sizeof(mx[i].name));
		r->hosts[i].pref = mx[i].pref;
	}
	one_done(r);
}

struct addr_q {
	struct run	*r;
	struct host	*h;
	int		 v6;
};

static void
on_addr(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct addr_q *q = arg;
	struct host *h = q->h;
	int i;

	if (q->v6)
		h->st6 = st;
	else
		h->st4 = st;
	if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE))
		for (i = 0; i < a->nrr && h->naddr < MAXA; i++) {
			struct sockaddr_storage *ss = &h->addr[h->naddr++];

			memset(ss, 0, sizeof(*ss));
			if (q->v6) {
				struct sockaddr_in6 *s6 = (void *)ss;

				s6->sin6_family = AF_INET6;
				s6->sin6_port = htons(25);
				s6->sin6_addr = a->rr[i].u.aaaa;
			} else {
				struct sockaddr_in *s4 = (void *)ss;

				s4->sin_family = AF_INET;
				s4->sin_port = htons(25);
				s4->sin_addr = a->rr[i].u.a;
			}
		}
	one_done(q->r);
	free(q);
}

static void
on_txt(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct run *r = arg;
	int i;

	r->txt_st = st;
	if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE))
		for (i = 0; i < a->nrr && r->ntxt < 8; i++) {
			char q[512];

			snprintf(r->txt[r->ntxt++], 512, "%s", log_qn(q,
			    sizeof(q), a->rr[i].u.txt.text,
			    a->rr[i].u.txt.len));
		}
	one_done(r);
}

static void
on_verdict(void *arg, struct policy_verdict *v)
{
	struct run *r = arg;

	r->v = v;
	one_done(r);
}

static const char *
addr_str(const struct sockaddr_storage *ss, char *buf, size_t sz)
{
	const void *p = ss->ss_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)ss)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	return inet_ntop(ss->ss_family, p, buf, (socklen_t)sz) ? buf : "?";
}

static int
print_verdict(const char *what, const struct policy_verdict *v)
{
	printf("  %s: %s", what, tls_level_name(v->level));
	if (v->report_only)
		printf(" (report only)");
	printf("  source=%s", v->source);
	if (v->mx_host[0])
		printf(" mx=%s", v->mx_host);
	if (v->reason[0])
		printf(" reason=%s", v->reason);
	printf("\n    %s\n", v->detail);
	return v->level == TLS_LEVEL_DEFER;
}

static struct policy_verdict *
lookup(struct run *r, struct policy *p, const char *domain,
    const struct sockaddr_storage *ss)
{
	socklen_t sl = ss == NULL ? 0 : ss->ss_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	r->v = NULL;
	r->outstanding = 1;
	if (policy_lookup(p, domain, (const struct sockaddr *)ss, sl, NULL,
	    on_verdict, r) == NULL)
		return NULL;
	wait_all(r);
	return r->v;
}

int
cmd_policy(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	struct run *r;
	struct policy *p;
	struct sts_cache *cache;
	struct sts_cache_entry e;
	char err[256], domain[256], name[300], a[64];
	int i, j, deferred = 0, nlookups = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: mxguard policy DOMAIN\n");
		return 1;
	}
	if (sts_domain_norm(argv[1], domain, sizeof(domain), err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "mxguard: policy: %s: %s\n", argv[1], err);
		return 1;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->loop = ev_loop_new()) == NULL) {
		fprintf(stderr, "mxguard: policy: out of memory\n");
		free(r);
		return 1;
	}
	if ((p = policy_new(r->loop, cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxguard: policy: %s\n", err);
		ev_loop_free(r->loop);
		free(r);
		return 1;
	}
	printf("domain %s\n", domain);

	/* MX and TXT */
	r->outstanding = 2;
	r->domain = domain;
	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	if (dns_query(policy_dns(p), domain, DNS_T_MX, on_mx, r) == NULL ||
	    dns_query(policy_dns(p), name, DNS_T_TXT, on_txt, r) == NULL) {
		fprintf(stderr, "mxguard: policy: out of memory\n");
		goto out;
	}
	wait_all(r);
	if (r->mx_st == DNS_NXDOMAIN || r->mx_st == DNS_NODATA) {
		printf("MX (%s: implicit MX, the domain itself)\n",
		    dns_status_name(r->mx_st));
	} else
		printf("MX (%s)\n", dns_status_name(r->mx_st));
	for (i = 0; i < r->nhost; i++) {
		struct addr_q *q4 = calloc(1, sizeof(*q4));
		struct addr_q *q6 = calloc(1, sizeof(*q6));

		if (q4 == NULL || q6 == NULL) {
			free(q4);
			free(q6);
			break;
		}
		q4->r = q6->r = r;
		q4->h = q6->h = &r->hosts[i];
		q6->v6 = 1;
		r->outstanding += 2;
		if (dns_query(policy_dns(p), r->hosts[i].name, DNS_T_A,
		    on_addr, q4) == NULL) {
			free(q4);
			r->outstanding--;
		}
		if (dns_query(policy_dns(p), r->hosts[i].name, DNS_T_AAAA,
		    on_addr, q6) == NULL) {
			free(q6);
			r->outstanding--;
		}
	}
	wait_all(r);
	for (i = 0; i < r->nhost; i++) {
		struct host *h = &r->hosts[i];

		printf("  %5d %s  A:%s AAAA:%s", h->pref, h->name,
		    dns_status_name(h->st4), dns_status_name(h->st6));
		for (j = 0; j < h->naddr; j++)
			printf(" %s", addr_str(&h->addr[j], a, sizeof(a)));
		printf("\n");
	}

	printf("MTA-STS TXT %s (%s)\n", name, dns_status_name(r->txt_st));
	for (i = 0; i < r->ntxt; i++)
		printf("  %s\n", r->txt[i]);

	/* verdicts: the first lookup also fetches and caches the policy */
	printf("verdicts\n");
	for (i = 0; i < r->nhost; i++)
		for (j = 0; j < r->hosts[i].naddr; j++) {
			struct policy_verdict *v = lookup(r, p, domain,
			    &r->hosts[i].addr[j]);
			char what[400];

			if (v == NULL)
				continue;
			if (nlookups++ == 0 && v->sts_note[0])
				printf("  (MTA-STS: %s)\n", v->sts_note);
			snprintf(what, sizeof(what), "%s [%s]",
			    r->hosts[i].name, addr_str(&r->hosts[i].addr[j],
			    a, sizeof(a)));
			deferred |= print_verdict(what, v);
			policy_verdict_free(v);
		}
	if (nlookups == 0) {
		struct policy_verdict *v = lookup(r, p, domain, NULL);

		if (v != NULL) {
			if (v->sts_note[0])
				printf("  (MTA-STS: %s)\n", v->sts_note);
			deferred |= print_verdict("(no MX address)", v);
			policy_verdict_free(v);
		}
	}

	/* the policy as cached now */
	if ((cache = policy_sts_cache(p)) == NULL)
		printf("MTA-STS policy cache: unavailable (state_dir %s)\n",
		    cfg->state_dir);
	else if (sts_cache_get(cache, domain, &e) == 1) {
		int64_t now = (int64_t)time(NULL);
		static const char *states[] = { "fresh", "refresh due",
		    "expired" };

		printf("MTA-STS policy (cached): id=%s mode=%s max_age=%u "
		    "age=%llds expires_in=%llds state=%s\n", e.id,
		    sts_mode_name(e.pol.mode), e.pol.max_age,
		    (long long)(now - e.fetched), (long long)(e.expires - now),
		    states[sts_cache_state(&e, now, cfg->sts_refresh_margin)]);
		for (i = 0; i < e.pol.nmx; i++)
			printf("  mx: %s\n", e.pol.mx[i]);
		sts_cache_entry_clear(&e);
	} else
		printf("MTA-STS policy: none cached\n");
out:
	policy_free(p);
	ev_loop_free(r->loop);
	free(r);
	return deferred ? 2 : 0;
}
