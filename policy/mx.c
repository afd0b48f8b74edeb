/*
 * mx.c - the one MX walk (see mx.h).
 *
 * MX of D, then the address lookups of every host in parallel; the walk
 * reports when the last of them has answered.  Every lookup goes through
 * dns.c, which answers from the event loop, so the walk's callback does
 * too.  The walk owns its result until it reports; then the receiver does.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/netaddr.h"
#include "policy/dane.h"	/* dane_ede(): Extended DNS Errors */
#include "policy/dns.h"
#include "policy/mx.h"

struct sub {
	struct mx_walk	*w;
	int		 idx;		/* host, or -1 for the MX lookup */
	int		 family;
	struct dns_req	*q;
};

struct mx_walk {
	struct dns	*dns;
	mx_cb		*cb;
	void		*arg;
	int		 families;
	int		 dst_family;	/* 0: no A */
	unsigned char	 dst[16];
	struct sub	 mxq;
	struct sub	 sub[MX_MAX_HOSTS][2];	/* A, AAAA */
	struct mx_result *res;
};

int
mx_status_failed(int st)
{
	return st == -1 || st == DNS_SERVFAIL || st == DNS_TIMEOUT ||
	    st == DNS_ERROR || st == DNS_LOCAL;
}

int
mx_result_local(const struct mx_result *m)
{
	int i;

	if (m == NULL)
		return 0;
	if (m->status == DNS_LOCAL)
		return 1;
	if (m->owner >= 0)
		return 0;
	for (i = 0; i < m->nhost; i++)
		if (m->host[i].has_dst)
			return 0;
	for (i = 0; i < m->nhost; i++)
		if (m->host[i].st4 == DNS_LOCAL || m->host[i].st6 == DNS_LOCAL)
			return 1;
	return 0;
}

int
mx_host_status(const struct mx_host *h, int family)
{
	return family == AF_INET6 ? h->st6 : h->st4;
}

static void
stop(struct mx_walk *w)
{
	int i, j;

	dns_cancel(w->mxq.q);
	w->mxq.q = NULL;
	for (i = 0; i < MX_MAX_HOSTS; i++)
		for (j = 0; j < 2; j++) {
			dns_cancel(w->sub[i][j].q);
			w->sub[i][j].q = NULL;
		}
}

/* A records before AAAA records, each in answer order: the A and AAAA
 * answers arrive in either order. */
static void
order_addrs(struct mx_host *h)
{
	struct sockaddr_storage tmp[MX_MAX_ADDRS];
	int i, n = 0;

	for (i = 0; i < h->naddr; i++)
		if (h->addr[i].ss_family == AF_INET)
			tmp[n++] = h->addr[i];
	for (i = 0; i < h->naddr; i++)
		if (h->addr[i].ss_family != AF_INET)
			tmp[n++] = h->addr[i];
	memcpy(h->addr, tmp, sizeof(tmp[0]) * (size_t)n);
}

static void
report(struct mx_walk *w)
{
	struct mx_result *res = w->res;
	int i;

	res->owner = -1;
	for (i = 0; i < res->nhost; i++) {
		order_addrs(&res->host[i]);
		if (res->host[i].has_dst && res->owner < 0)
			res->owner = i;
	}
	w->res = NULL;
	w->cb(w->arg, res);
	free(w);
}

/* A among the host's addresses: the records the answer keeps and those
 * past them (more than DNS_MAX_RR: dns_rr_cut()).  Judged on the kept
 * ones alone, a signed host whose RRset is that large would not own A
 * when A is past the 64th, and an unsigned host that an attacker on the
 * path makes claim A would be H instead: no DANE. */
static int
has_dst(const struct mx_walk *w, const struct dns_answer *a)
{
	const unsigned char *rd;
	uint16_t rdlen;
	int i;

	for (i = 0; i < a->nrr; i++) {
		if (w->dst_family == AF_INET && a->rr[i].type == DNS_T_A &&
		    memcmp(&a->rr[i].u.a, w->dst, 4) == 0)
			return 1;
		if (w->dst_family == AF_INET6 &&
		    a->rr[i].type == DNS_T_AAAA &&
		    memcmp(&a->rr[i].u.aaaa, w->dst, 16) == 0)
			return 1;
	}
	for (i = 0; (rd = dns_rr_cut(a, i, &rdlen)) != NULL; i++) {
		if (w->dst_family == AF_INET && a->qtype == DNS_T_A &&
		    rdlen == 4 && memcmp(rd, w->dst, 4) == 0)
			return 1;
		if (w->dst_family == AF_INET6 && a->qtype == DNS_T_AAAA &&
		    rdlen == 16 && memcmp(rd, w->dst, 16) == 0)
			return 1;
	}
	return 0;
}

static void
on_addr(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct sub *s = arg;
	struct mx_walk *w = s->w;
	struct mx_host *h = &w->res->host[s->idx];
	int i;

	s->q = NULL;
	if (s->family == AF_INET6)
		h->st6 = st;
	else
		h->st4 = st;
	if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE)) {
		if (s->family == w->dst_family && has_dst(w, a))
			h->has_dst = 1;
		/* against the host's own name, not the answer's question:
		 * a chain the resolver answered a link at a time comes as the
		 * last link's answer (dns.c), asked for its target */
		if (st == DNS_SECURE && h->expanded[0] == '\0' &&
		    strcmp(a->name, h->name) != 0)
			snprintf(h->expanded, sizeof(h->expanded), "%s",
			    a->name);
		for (i = 0; i < a->nrr; i++) {
			struct sockaddr_storage *ss = &h->addr[h->naddr];
			struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

			if (h->naddr == MX_MAX_ADDRS) {
				if (a->rr[i].type == DNS_T_A ||
				    a->rr[i].type == DNS_T_AAAA)
					h->nmore++;
				continue;
			}
			memset(ss, 0, sizeof(*ss));
			if (a->rr[i].type == DNS_T_A) {
				s4->sin_family = AF_INET;
				s4->sin_port = htons(25);
				s4->sin_addr = a->rr[i].u.a;
			} else if (a->rr[i].type == DNS_T_AAAA) {
				s6->sin6_family = AF_INET6;
				s6->sin6_port = htons(25);
				s6->sin6_addr = a->rr[i].u.aaaa;
			} else
				continue;
			h->naddr++;
		}
		/* the records past those the answer keeps: not kept
		 * either */
		if (a->qtype == DNS_T_A || a->qtype == DNS_T_AAAA)
			h->nmore += a->ndropped;
	}
	if (--w->res->pending == 0)
		report(w);
}

static int
host_cmp(const void *a, const void *b)
{
	const struct mx_host *x = a, *y = b;

	if (x->pref != y->pref)
		return (int)x->pref - (int)y->pref;
	return strcmp(x->name, y->name);
}

static int host_cmp(const void *, const void *);

static void
add_host(struct mx_result *res, const char *name, uint16_t pref)
{
	struct mx_host *h, cand;
	int i, worst = 0;

	for (i = 0; i < res->nhost; i++)
		if (strcmp(res->host[i].name, name) == 0) {
			/* the same host twice: its best preference counts */
			if (pref < res->host[i].pref)
				res->host[i].pref = pref;
			return;
		}
	if (res->nhost < MX_MAX_HOSTS)
		h = &res->host[res->nhost++];
	else {
		/* more hosts than kept: the best ones stay, whatever the
		 * answer's order (which the resolver may shuffle) */
		for (i = 1; i < res->nhost; i++)
			if (host_cmp(&res->host[i], &res->host[worst]) > 0)
				worst = i;
		memset(&cand, 0, sizeof(cand));
		snprintf(cand.name, sizeof(cand.name), "%s", name);
		cand.pref = pref;
		res->nunkept++;
		if (host_cmp(&cand, &res->host[worst]) >= 0)
			return;
		h = &res->host[worst];
		memset(h, 0, sizeof(*h));
	}
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->pref = pref;
	h->st4 = h->st6 = -1;
}

static void
on_mx(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct sub *s = arg;
	struct mx_walk *w = s->w;
	struct mx_result *res = w->res;
	int i, j, nnull = 0;
	static const int fam[2] = { AF_INET, AF_INET6 };
	static const int type[2] = { DNS_T_A, DNS_T_AAAA };
	static const int flag[2] = { MX_WALK_A, MX_WALK_AAAA };

	s->q = NULL;
	res->status = st;
	switch (st) {
	case DNS_SECURE:
	case DNS_INSECURE:
		res->secure = st == DNS_SECURE;
		if (a != NULL)
			res->nunkept += a->ndropped;
		for (i = 0; a != NULL && i < a->nrr; i++) {
			if (a->rr[i].u.mx.host[0] == '\0') {
				nnull++;	/* null MX (RFC 7505) */
				continue;
			}
			add_host(res, a->rr[i].u.mx.host, a->rr[i].u.mx.pref);
		}
		if (res->nhost == 0 && nnull > 0)
			res->null_mx = 1;
		qsort(res->host, (size_t)res->nhost, sizeof(res->host[0]),
		    host_cmp);
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		res->implicit = 1;
		res->secure = a != NULL && a->ad;
		add_host(res, res->domain, 0);
		break;
	default:
		res->ede = a != NULL ? dane_ede(a->raw, (size_t)a->rawlen) :
		    -1;
		break;
	}
	/* one pending count for the loop below, so that lookups failing
	 * to start cannot report before every lookup was started */
	res->pending = 1;
	for (i = 0; i < res->nhost; i++)
		for (j = 0; j < 2; j++) {
			struct sub *q = &w->sub[i][j];

			if (!(w->families & flag[j]))
				continue;
			q->w = w;
			q->idx = i;
			q->family = fam[j];
			res->pending++;
			q->q = dns_query(w->dns, res->host[i].name, type[j],
			    on_addr, q);
			if (q->q == NULL) {
				/* out of memory */
				if (j == 0)
					res->host[i].st4 = DNS_LOCAL;
				else
					res->host[i].st6 = DNS_LOCAL;
				res->pending--;
			}
		}
	if (--res->pending == 0)
		report(w);
}

struct mx_walk *
mx_walk(struct dns *dns, const char *domain, const struct sockaddr *dst,
    int families, mx_cb *cb, void *arg)
{
	struct mx_walk *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	if ((w->res = calloc(1, sizeof(*w->res))) == NULL) {
		free(w);
		return NULL;
	}
	w->dns = dns;
	w->cb = cb;
	w->arg = arg;
	w->families = families;
	w->res->status = -1;
	w->res->ede = -1;
	w->res->owner = -1;
	w->res->pending = 1;
	if (dst != NULL && dst->sa_family == AF_INET) {
		w->dst_family = AF_INET;
		memcpy(w->dst, &((const struct sockaddr_in *)dst)->sin_addr,
		    4);
	} else if (dst != NULL && dst->sa_family == AF_INET6) {
		w->dst_family = AF_INET6;
		memcpy(w->dst,
		    &((const struct sockaddr_in6 *)dst)->sin6_addr, 16);
	}
	if (dns_name_norm(domain, w->res->domain,
	    sizeof(w->res->domain)) == -1)
		snprintf(w->res->domain, sizeof(w->res->domain), "invalid");
	w->mxq.w = w;
	w->mxq.idx = -1;
	if ((w->mxq.q = dns_query(dns, w->res->domain, DNS_T_MX, on_mx,
	    &w->mxq)) == NULL) {
		free(w->res);
		free(w);
		return NULL;
	}
	return w;
}

void
mx_walk_cancel(struct mx_walk *w)
{
	if (w == NULL)
		return;
	stop(w);
	free(w->res);
	free(w);
}

int
mx_result_set_dst(struct mx_result *res, const struct sockaddr *dst)
{
	struct sockaddr_storage judged;
	int i, j;

	/* NAT64 (nat64_prefix) and IPv4-mapped addresses of G are G's
	 * (netaddr_judged()) */
	if (dst != NULL && netaddr_judged(dst, &judged) == 0)
		dst = (const struct sockaddr *)&judged;

	res->owner = -1;
	for (i = 0; i < res->nhost; i++) {
		struct mx_host *h = &res->host[i];

		h->has_dst = 0;
		for (j = 0; j < h->naddr && dst != NULL; j++) {
			const struct sockaddr_storage *ss = &h->addr[j];

			if (ss->ss_family != dst->sa_family)
				continue;
			if (dst->sa_family == AF_INET &&
			    memcmp(&((const struct sockaddr_in *)ss)->sin_addr,
			    &((const struct sockaddr_in *)dst)->sin_addr,
			    4) == 0)
				h->has_dst = 1;
			if (dst->sa_family == AF_INET6 &&
			    memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr,
			    &((const struct sockaddr_in6 *)dst)->sin6_addr,
			    16) == 0)
				h->has_dst = 1;
		}
		if (h->has_dst && res->owner < 0)
			res->owner = i;
	}
	return res->owner;
}

const struct mx_result *
mx_walk_peek(const struct mx_walk *w)
{
	return w->res;
}
