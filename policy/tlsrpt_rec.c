/*
 * tlsrpt_rec.c - the daemon records upstream attempts for TLSRPT (see
 * tlsrpt_rec.h, docs/tlsrpt.md).
 *
 * A small hash of policy domains holds each domain's _smtp._tls answer
 * (has a valid record or not) until its TTL runs out, and, while the
 * lookup runs, the attempts that wait for it.  An attempt is a copy: the
 * verdict (a value, policy_verdict_dup) and the outcome's strings.  The
 * hash is bounded (TLSRPT_REC_DOMAINS): when full, expired answers go,
 * then every settled one (the resolver caches too); a domain whose lookup
 * runs is never dropped.
 *
 * The store commits without a flush to disk (tlsrpt_store.c says why)
 * and flushes on a record at most once a second; a timer flushes the
 * tail, a second after the last record, so that an OS crash loses about
 * a second of counts at most.  A record that fails is counted every time
 * (error) and logged once a minute at most.
 *
 * Who frees what: the recorder owns its hash, the waiting attempts, the
 * store and the flush timer; tlsrpt_rec_free() cancels its lookups.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/netaddr.h"
#include "core/stats.h"
#include "policy/dane.h"
#include "policy/dns.h"
#include "policy/sts.h"
#include "policy/tlsrpt.h"
#include "policy/tlsrpt_int.h"	/* tr_sync(), tr_dirty() only */
#include "policy/tlsrpt_rec.h"
#include "policy/verdict_tls.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define NBUCKETS	4096
#define TTL_MIN		60	/* seconds an answer is kept at least */
#define TTL_MAX		86400	/* and at most */
#define TTL_FAIL	300	/* a failed lookup: no reports that long */
/* a lookup this host could not make (DNS_LOCAL: no descriptor, buffer or
 * memory) says nothing of the domain: kept only as long as the shortest
 * answer, so that the domain's reports are not dropped for TTL_FAIL
 * because of our own trouble; not dropped at once either, or every
 * attempt of the domain would ask again while the host is short of what
 * the query needs */
#define TTL_LOCAL	TTL_MIN
/* a valid record stands in for a re-lookup that fails (SERVFAIL, a
 * timeout, bogus, our own trouble) this long past its TTL: a failed
 * lookup says nothing of the domain, and one that an attacker on the
 * path makes fail (it drops or spoils the answers) would otherwise stop
 * the counting of its own attack on the domain's mail for TTL_FAIL, at
 * each try.  RFC 8767's serve-stale suggests one to three days */
#define TTL_STALE	86400
#define FLUSH_MS	1000	/* the tail of the records on disk after */
#define ERR_LOG_S	60	/* a failing record logged once a minute */

enum { DOM_PENDING, DOM_YES, DOM_NO };

struct rec_pend {
	struct rec_pend		*next;
	int64_t			 day;
	struct policy_verdict	*v;
	char			 result[48];
	char			 detail[256];
	char			 local[64];
	char			 ip[64];
	char			 helo[256];
	size_t			 bytes;		/* pend_bytes() */
};

struct rec_dom {
	struct rec_dom		*next;		/* hash chain */
	struct tlsrpt_rec	*rc;
	char			 domain[256];
	int			 state;		/* DOM_* */
	int64_t			 expires;	/* DOM_YES, DOM_NO */
	int64_t			 stale_until;	/* a valid record stands in
						 * for a failed lookup until */
	struct dns_req		*q;		/* DOM_PENDING */
	const struct dns	*qdns;		/* the resolver q was sent to */
	struct rec_pend		*pend, **pend_tail;
	int			 npend;
};

struct tlsrpt_rec {
	struct ev_loop		*loop;
	struct tlsrpt_store	*store;
	struct ev_timer		*flush;		/* tr_sync() of the tail */
	struct rec_dom		*hash[NBUCKETS];
	int			 ndom;
	int			 busy;		/* lookups under way */
	size_t			 pend_bytes;	/* of every waiting attempt */
	time_t			 err_logged;	/* last failure logged */
	unsigned long		 err_quiet;	/* failures not logged since */
};

static struct stat_ctr *st_ok, *st_fail, *st_over, *st_skip, *st_err;

static void
stats_init(void)
{
	if (st_ok != NULL)
		return;
	st_ok = stats_get("mxguard_tlsrpt_attempts_total{result=\"success\"}",
	    "Upstream attempts counted for TLSRPT reports");
	st_fail = stats_get("mxguard_tlsrpt_attempts_total"
	    "{result=\"failure\"}", NULL);
	st_over = stats_get("mxguard_tlsrpt_attempts_total"
	    "{result=\"overflow\"}", NULL);
	st_skip = stats_get("mxguard_tlsrpt_attempts_total"
	    "{result=\"no-record\"}", NULL);
	st_err = stats_get("mxguard_tlsrpt_attempts_total{result=\"error\"}",
	    NULL);
}

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % NBUCKETS;
}

/* The records of the last second to disk (tlsrpt_record() flushed
 * those before). */
static void
on_flush(void *arg)
{
	struct tlsrpt_rec *rc = arg;
	char q[300];

	if (tr_sync(rc->store, 1) == -1)
		log_warn("event=tlsrpt-sync-failed error=%s",
		    log_q(q, sizeof(q), tlsrpt_store_error(rc->store)));
}

struct tlsrpt_rec *
tlsrpt_rec_new(struct ev_loop *loop, const char *state_dir, char *err,
    size_t errsz)
{
	struct tlsrpt_rec *rc;

	stats_init();
	if ((rc = calloc(1, sizeof(*rc))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	rc->loop = loop;
	if ((rc->flush = ev_timer_new(loop, on_flush, rc)) == NULL) {
		snprintf(err, errsz, "out of memory");
		free(rc);
		return NULL;
	}
	if ((rc->store = tlsrpt_store_open(state_dir, NULL, err,
	    errsz)) == NULL) {
		ev_timer_free(rc->flush);
		free(rc);
		return NULL;
	}
	return rc;
}

/* What a waiting attempt holds: its record and the verdict's copy
 * (policy_verdict_dup()).  Many domains whose _smtp._tls answers come
 * just before dns_timeout, each with 32 attempts waiting, held a copy of
 * a verdict per attempt (a DANE one with the TLSA RRset, up to 256
 * records, in the report's strings and in the DANE answer): without a
 * bound in all, gigabytes. */
static size_t
pend_bytes(const struct rec_pend *p)
{
	const struct policy_verdict *v = p->v;
	size_t n = sizeof(*p) + sizeof(*v);
	int i;

	if (v->rpt != NULL)
		n += sizeof(*v->rpt) + v->rpt->len;
	if (v->tls != NULL) {
		n += sizeof(*v->tls);
		if (v->tls->dane != NULL) {
			n += sizeof(*v->tls->dane);
			for (i = 0; i < v->tls->dane->ntlsa; i++)
				n += sizeof(v->tls->dane->tlsa[i]) +
				    v->tls->dane->tlsa[i].len;
		}
	}
	return n;
}

static void
pend_release(struct tlsrpt_rec *rc, struct rec_pend *p)
{
	rc->pend_bytes -= p->bytes;
	policy_verdict_free(p->v);
	free(p);
}

static void
pend_free_all(struct rec_dom *d)
{
	struct rec_pend *p;

	while ((p = d->pend) != NULL) {
		d->pend = p->next;
		pend_release(d->rc, p);
	}
	d->pend_tail = &d->pend;
	d->npend = 0;
}

static void
dom_free(struct rec_dom *d)
{
	if (d->q != NULL) {
		dns_cancel(d->q);
		d->rc->busy--;
	}
	pend_free_all(d);
	free(d);
}

void
tlsrpt_rec_free(struct tlsrpt_rec *rc)
{
	struct rec_dom *d;
	int i;

	if (rc == NULL)
		return;
	for (i = 0; i < NBUCKETS; i++)
		while ((d = rc->hash[i]) != NULL) {
			rc->hash[i] = d->next;
			dom_free(d);
		}
	ev_timer_free(rc->flush);
	tlsrpt_store_close(rc->store);	/* flushes */
	free(rc);
}

int
tlsrpt_rec_busy(const struct tlsrpt_rec *rc)
{
	return rc != NULL && rc->busy > 0;
}

/* A walk of every domain, done only while a reload's replaced resolver
 * waits to be freed (policy.c, retired_free()), and only while lookups
 * are under way. */
int
tlsrpt_rec_uses(const struct tlsrpt_rec *rc, const struct dns *dns)
{
	const struct rec_dom *d;
	int i;

	if (!tlsrpt_rec_busy(rc))
		return 0;
	for (i = 0; i < NBUCKETS; i++)
		for (d = rc->hash[i]; d != NULL; d = d->next)
			if (d->q != NULL && d->qdns == dns)
				return 1;
	return 0;
}

struct tlsrpt_store *
tlsrpt_rec_store(struct tlsrpt_rec *rc)
{
	return rc != NULL ? rc->store : NULL;
}

void
tlsrpt_greeting_name(const char *g, char *out, size_t outsz)
{
	size_t n = 0;

	out[0] = '\0';
	if (g == NULL || strlen(g) < 4 || (g[3] != ' ' && g[3] != '-'))
		return;
	g += 4;
	while (g[n] != '\0' && g[n] != ' ' && g[n] != '\r' && g[n] != '\n')
		n++;
	/* a name, not "[192.0.2.1]" or words: the report field is a host */
	if (n == 0 || n >= outsz || !tlsrpt_valid_host(g, n))
		return;
	memcpy(out, g, n);
	out[n] = '\0';
}

/* A result's type.  Only "success" (tlsrpt_rec_attempt() writes it for
 * a NULL result) is one: an empty or unknown name comes from a failure
 * whose reason got lost on the way, and counting it as a success would
 * tell the domain its MX was fine on a connection that failed */
static enum tlsrpt_result
result_of(const char *name)
{
	int i;
	const char *r;

	if (strcmp(name, "success") == 0)
		return TLSRPT_SUCCESS;
	for (i = 1; i < TLSRPT_NRESULTS; i++)
		if ((r = tlsrpt_result_name(i)) != NULL &&
		    strcmp(r, name) == 0)
			return i;
	/* a failure outside section 4.3's list (a TLS handshake error
	 * that was not a certificate's, say) or without a name: section
	 * 4.3.3's catch-all type */
	return TLSRPT_VALIDATION_FAILURE;
}

/* Counts one attempt of domain d into the store. */
static void
count(struct tlsrpt_rec *rc, const char *domain, const struct rec_pend *p)
{
	const struct policy_rpt *rp = p->v->rpt;
	struct tlsrpt_attempt a;
	const char **strs = NULL;
	const char *s;
	int i, n = 0, r;

	memset(&a, 0, sizeof(a));
	a.policy_domain = domain;
	a.policy_type = TLSRPT_POLICY_NONE;
	if (rp != NULL) {
		n = rp->nstrings + rp->nmx;
		if (n > 0 && (strs = calloc((size_t)n, sizeof(*strs))) ==
		    NULL) {
			stats_add(st_err, 1);
			return;
		}
		for (i = 0, s = rp->buf; i < n; i++, s += strlen(s) + 1)
			strs[i] = s;
		a.policy_type = rp->type;
		a.policy_strings = strs;
		a.npolicy_strings = rp->nstrings;
		a.mx_hosts = strs + rp->nstrings;
		a.nmx_hosts = rp->nmx;
	}
	a.result = result_of(p->result);
	a.sending_mta_ip = p->local[0] ? p->local : NULL;
	a.receiving_mx_hostname = p->v->mx_host[0] ? p->v->mx_host : NULL;
	a.receiving_mx_helo = p->helo[0] ? p->helo : NULL;
	a.receiving_ip = p->ip[0] ? p->ip : NULL;
	if (a.result != TLSRPT_SUCCESS)
		a.failure_reason = p->detail[0] ? p->detail : p->result;
	r = tlsrpt_record(rc->store, p->day, &a);
	free(strs);
	if (tr_dirty(rc->store) && !ev_timer_pending(rc->flush))
		ev_timer_arm(rc->flush, FLUSH_MS);
	if (r == -1) {
		time_t now = time(NULL);
		char q[300];

		stats_add(st_err, 1);
		/* a store that fails every write must not flood the log */
		if (rc->err_logged != 0 && now - rc->err_logged < ERR_LOG_S &&
		    now >= rc->err_logged) {
			rc->err_quiet++;
			return;
		}
		log_warn("event=tlsrpt-record-failed domain=%s error=%s "
		    "unlogged=%lu", domain, log_q(q, sizeof(q),
		    tlsrpt_store_error(rc->store)), rc->err_quiet);
		rc->err_logged = now;
		rc->err_quiet = 0;
		return;
	}
	stats_add(r == 1 ? st_over : a.result == TLSRPT_SUCCESS ? st_ok :
	    st_fail, 1);
	log_debug("event=tlsrpt-recorded domain=%s type=%s result=%s%s",
	    domain, tlsrpt_policy_type_name(a.policy_type), a.result ==
	    TLSRPT_SUCCESS ? "success" : tlsrpt_result_name(a.result),
	    r == 1 ? " overflow=yes" : "");
}

int
tlsrpt_txt_select_answer(const struct dns_answer *a,
    struct tlsrpt_policy_record *r, char *err, size_t errsz)
{
	struct dns_txt_all w;
	int rc = -2;

	memset(r, 0, sizeof(*r));
	if (dns_txt_all(a, &w) == 0)
		rc = tlsrpt_txt_select(w.txt, w.len, w.n, r, err, errsz);
	else
		snprintf(err, errsz, "TXT lookup: a record past the %d an "
		    "answer keeps unreadable", DNS_MAX_RR);
	dns_txt_all_free(&w);
	return rc;
}

static void
on_txt(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct rec_dom *d = arg;
	struct tlsrpt_rec *rc = d->rc;
	struct tlsrpt_policy_record pr;
	struct rec_pend *p;
	char err[160] = "", qe[200];
	int sel = 0, stale = 0, answered;
	int64_t ttl = TTL_FAIL, now = (int64_t)time(NULL);

	d->q = NULL;
	rc->busy--;
	answered = a != NULL && (st == DNS_SECURE || st == DNS_INSECURE);
	/* an answer one of whose records past the kept cannot be read
	 * says nothing: a failed lookup, as a SERVFAIL */
	if (answered && (sel = tlsrpt_txt_select_answer(a, &pr, err,
	    sizeof(err))) == -2) {
		answered = 0;
		sel = 0;
	}
	if (answered || (a != NULL && (st == DNS_NXDOMAIN ||
	    st == DNS_NODATA)))
		ttl = a->ttl;
	else if (st == DNS_LOCAL)
		ttl = TTL_LOCAL;
	if (ttl < TTL_MIN)
		ttl = TTL_MIN;
	if (ttl > TTL_MAX)
		ttl = TTL_MAX;
	if (sel == 1)
		d->stale_until = now + ttl + TTL_STALE;
	else if (!answered && st != DNS_NXDOMAIN && st != DNS_NODATA &&
	    d->stale_until > now)
		stale = 1;	/* no answer: the record we had stands */
	else
		d->stale_until = 0;	/* the domain's own word */
	d->state = sel == 1 || stale ? DOM_YES : DOM_NO;
	d->expires = now + ttl;
	/* the parser's errors may hold double quotes (mailto: header
	 * fields ("?") ...): one logfmt value only through log_q() */
	log_info("event=tlsrpt-discover domain=%s status=%s record=%s%s%s "
	    "ttl=%lld%s", d->domain, dns_status_name(st), sel == 1 ? "valid" :
	    stale ? "stale" : sel == -1 ? "invalid" : "none", err[0] ? " error=" : "",
	    err[0] ? log_q(qe, sizeof(qe), err) : "", (long long)ttl,
	    st == DNS_LOCAL ? " local=1" : "");
	while ((p = d->pend) != NULL) {
		d->pend = p->next;
		if (d->state == DOM_YES)
			count(rc, d->domain, p);
		else
			stats_add(st_skip, 1);
		pend_release(rc, p);
	}
	d->pend_tail = &d->pend;
	d->npend = 0;
}

/*
 * Whether d's answer has expired at now.  The cache's times are the wall
 * clock's (time()), and no answer is kept longer than TTL_MAX: one that
 * expires further ahead was written before the clock was stepped back (a
 * host that ran ahead and NTP set right, or an attacker on the path to
 * its NTP server who moved it forward while the lookup failed).  It has
 * expired too, or a failed lookup's "no record" held for the size of the
 * step, a year, and the domain's attempts went uncounted all that while.
 * Its serve-stale time is brought within its bound the same way: the
 * record stands for no more than TTL_MAX + TTL_STALE from now.
 */
static int
dom_expired(struct rec_dom *d, int64_t now)
{
	if (d->stale_until > now + TTL_MAX + TTL_STALE)
		d->stale_until = now + TTL_MAX + TTL_STALE;
	return d->expires <= now || d->expires > now + TTL_MAX;
}

/* Room for one more domain: expired answers go, then settled ones. */
static void
make_room(struct tlsrpt_rec *rc, int64_t now)
{
	struct rec_dom **pp, *d;
	int i, pass;

	for (pass = 0; pass < 2 && rc->ndom >= TLSRPT_REC_DOMAINS; pass++)
		for (i = 0; i < NBUCKETS; i++)
			for (pp = &rc->hash[i]; (d = *pp) != NULL;) {
				if (d->state != DOM_PENDING &&
				    (pass == 1 || dom_expired(d, now))) {
					*pp = d->next;
					dom_free(d);
					rc->ndom--;
				} else
					pp = &d->next;
			}
}

static struct rec_dom *
dom_get(struct tlsrpt_rec *rc, struct dns *dns, const char *domain,
    int64_t now)
{
	uint32_t h = hash(domain);
	struct rec_dom *d;
	char name[300], err[160];

	for (d = rc->hash[h]; d != NULL; d = d->next)
		if (strcmp(d->domain, domain) == 0)
			break;
	if (d != NULL && d->state != DOM_PENDING && dom_expired(d, now)) {
		d->state = DOM_PENDING;		/* ask again */
		d->q = NULL;
	} else if (d != NULL)
		return d;
	if (d == NULL) {
		snprintf(name, sizeof(name), "_smtp._tls.%s", domain);
		if (sts_dns_name_check(name, err, sizeof(err)) == -1)
			return NULL;
		make_room(rc, now);
		if (rc->ndom >= TLSRPT_REC_DOMAINS)
			return NULL;
		if ((d = calloc(1, sizeof(*d))) == NULL)
			return NULL;
		d->rc = rc;
		snprintf(d->domain, sizeof(d->domain), "%s", domain);
		d->state = DOM_PENDING;
		d->pend_tail = &d->pend;
		d->next = rc->hash[h];
		rc->hash[h] = d;
		rc->ndom++;
	}
	snprintf(name, sizeof(name), "_smtp._tls.%s", domain);
	d->qdns = dns;
	if ((d->q = dns_query(dns, name, DNS_T_TXT, on_txt, d)) == NULL) {
		d->state = d->stale_until > now ? DOM_YES : DOM_NO;
		d->expires = now + TTL_MIN;
		return d;
	}
	rc->busy++;
	return d;
}

static void
addr_str(const struct sockaddr *sa, char *buf, size_t sz)
{
	const void *a;

	buf[0] = '\0';
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr;
	else
		return;
	if (inet_ntop(sa->sa_family, a, buf, (socklen_t)sz) == NULL)
		buf[0] = '\0';
}

void
tlsrpt_rec_attempt(struct tlsrpt_rec *rc, struct dns *dns,
    const struct policy_verdict *v, const struct policy_attempt *at)
{
	int64_t now = (int64_t)time(NULL);
	struct sockaddr_storage judged;
	struct rec_dom *d;
	struct rec_pend *p;

	if (rc == NULL || v->domain[0] == '\0')
		return;
	if ((d = dom_get(rc, dns, v->domain, now)) == NULL) {
		stats_add(st_skip, 1);
		return;
	}
	if (d->state == DOM_NO) {
		stats_add(st_skip, 1);
		return;
	}
	if (d->state == DOM_PENDING && d->npend >= TLSRPT_REC_PENDING) {
		stats_add(st_err, 1);
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->v = policy_verdict_dup(v)) == NULL) {
		free(p);
		stats_add(st_err, 1);
		return;
	}
	p->day = tlsrpt_day(now);
	snprintf(p->result, sizeof(p->result), "%s", at->result ?
	    at->result : "success");
	snprintf(p->detail, sizeof(p->detail), "%s", at->detail ?
	    at->detail : "");
	snprintf(p->local, sizeof(p->local), "%s", at->local_ip ?
	    at->local_ip : "");
	/* the MX's own address, as the engine judged it: the IPv4 one
	 * behind a NAT64 prefix or an IPv4-mapped address, which the
	 * domain knows, not this network's synthesized one */
	if (at->mx_addr != NULL && netaddr_judged(at->mx_addr, &judged) == 0)
		addr_str((const struct sockaddr *)&judged, p->ip,
		    sizeof(p->ip));
	else
		addr_str(at->mx_addr, p->ip, sizeof(p->ip));
	tlsrpt_greeting_name(at->greeting, p->helo, sizeof(p->helo));
	if (d->state == DOM_YES) {
		count(rc, d->domain, p);
		policy_verdict_free(p->v);
		free(p);
		return;
	}
	p->bytes = pend_bytes(p);
	if (rc->pend_bytes + p->bytes > TLSRPT_REC_PENDING_BYTES) {
		stats_add(st_err, 1);
		policy_verdict_free(p->v);
		free(p);
		return;
	}
	rc->pend_bytes += p->bytes;
	*d->pend_tail = p;
	d->pend_tail = &p->next;
	d->npend++;
}
