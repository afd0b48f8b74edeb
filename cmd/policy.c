/*
 * policy.c - `mxguard policy DOMAIN`: what mxguard knows and would decide
 * for a recipient domain.  Prints the MX hosts and their addresses (the
 * daemon's own MX walk, policy/mx.c, in its order), the
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
#include "policy/mx.h"
#include "policy/policy.h"
#include "policy/sts.h"

struct run {
	struct ev_loop	*loop;
	int		 outstanding;
	/* MX hosts and their addresses */
	struct mx_result *mx;
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
on_walk(void *arg, struct mx_result *m)
{
	struct run *r = arg;

	r->mx = m;
	one_done(r);
}

static const char *
st_name(int st)
{
	return st < 0 ? "-" : dns_status_name(st);
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

	/* MX hosts with their addresses, and TXT */
	r->outstanding = 2;
	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	if (mx_walk(policy_dns(p), domain, NULL, MX_WALK_A | MX_WALK_AAAA,
	    on_walk, r) == NULL ||
	    dns_query(policy_dns(p), name, DNS_T_TXT, on_txt, r) == NULL) {
		fprintf(stderr, "mxguard: policy: out of memory\n");
		goto out;
	}
	wait_all(r);
	if (r->mx->implicit)
		printf("MX (%s: implicit MX, the domain itself)\n",
		    dns_status_name(r->mx->status));
	else if (r->mx->null_mx)
		printf("MX (%s: null MX, the domain accepts no mail)\n",
		    dns_status_name(r->mx->status));
	else
		printf("MX (%s)\n", dns_status_name(r->mx->status));
	for (i = 0; i < r->mx->nhost; i++) {
		const struct mx_host *h = &r->mx->host[i];

		printf("  %5d %s  A:%s AAAA:%s", h->pref, h->name,
		    st_name(h->st4), st_name(h->st6));
		for (j = 0; j < h->naddr; j++)
			printf(" %s", addr_str(&h->addr[j], a, sizeof(a)));
		printf("\n");
	}

	printf("MTA-STS TXT %s (%s)\n", name, dns_status_name(r->txt_st));
	for (i = 0; i < r->ntxt; i++)
		printf("  %s\n", r->txt[i]);

	/* verdicts: the first lookup also fetches and caches the policy */
	printf("verdicts\n");
	for (i = 0; i < r->mx->nhost; i++)
		for (j = 0; j < r->mx->host[i].naddr; j++) {
			struct policy_verdict *v = lookup(r, p, domain,
			    &r->mx->host[i].addr[j]);
			char what[400];

			if (v == NULL)
				continue;
			if (nlookups++ == 0 && v->sts_note[0])
				printf("  (MTA-STS: %s)\n", v->sts_note);
			snprintf(what, sizeof(what), "%s [%s]",
			    r->mx->host[i].name,
			    addr_str(&r->mx->host[i].addr[j], a, sizeof(a)));
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
	free(r->mx);
	free(r);
	return deferred ? 2 : 0;
}
