/*
 * policy.c - the policy engine (see policy.h, docs/policy.md).
 *
 * A lookup for recipient domain D and destination address A runs, all at
 * once on the event loop:
 *   - the MX walk (policy/mx.c): MX of D, then A or AAAA (the family of A)
 *     of every MX host, to find the MX host H that owns A (mxguard's own
 *     DNS is the trusted view); when it has answered and unless an
 *     override other than "dane" decides, DANE (policy/dane.c) looks up
 *     and evaluates the TLSA records of the hosts it resolved;
 *   - unless an override decides: the _mta-sts.D TXT record and the cached
 *     policy of D (LMDB), then a fetch when there is no valid cached policy
 *     or the TXT id changed (not while a valid policy is cached and a
 *     fetch under a new id failed lately: newid_backoff()), or, when the
 *     TXT lookup fails or finds no record, under the id of an expired
 *     cached policy (refetch_expired()).
 *     A background fetch refreshes a policy within sts_refresh_margin of
 *     its expiry.
 * Apart from lookups, a timer (sts_refresh_interval, jittered) refreshes
 * the recently used cached policies near their expiry with no mail at all
 * ("background refresh" below).
 * When everything has answered, or at policy_timeout (the engine owns it
 * and always answers by then), decide(): overrides, DANE (which defers
 * while its lookups still run), MTA-STS enforce, then the opportunistic
 * default (may, or encrypt with require_tls), which the TLS history
 * (policy/history.c) raises to encrypt for a server that completed
 * STARTTLS within tls_history_window.  An MTA-STS testing policy keeps
 * that level and only adds its check, reported (report_only).  The
 * decision is logged in one line and counted.
 *
 * Last, enforcement = monitor (global, or an enforcement_override for the
 * destination) turns the decided verdict into a monitored one
 * (policy_verdict_monitor): delivered with the best TLS available, while
 * what enforce mode would do stays in would_level and its checks still
 * run on the leg, for the session's would-defer lines.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/ctstat.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/stats.h"
#include "policy/cache.h"
#include "policy/dane.h"
#include "policy/dns.h"
#include "policy/history.h"
#include "policy/http.h"
#include "policy/mx.h"
#include "policy/override.h"
#include "policy/policy.h"
#include "policy/redis.h"
#include "policy/sts.h"
#include "policy/tlsrpt.h"
#include "policy/tlsrpt_rec.h"
#include "policy/verdict_tls.h"

/* Verdict texts are bounded on purpose: a long name is cut, not a bug. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif


struct fetch;

struct policy_req {
	struct policy	*pol;
	uint64_t	 gen;		/* p->store_gen at its start: it may
					 * use that resolver and CA store and
					 * every later one (retired_free()) */
	struct policy_req *next, *prev;	/* live requests */
	policy_cb	*cb;
	void		*arg;
	struct policy_verdict *v;
	struct ev_timer	*tmo;
	struct ev_timer	*fire;
	int		 decided;

	struct sockaddr_storage dst;
	int		 have_dst;
	char		 dststr[64];
	char		 tag[24];	/* "sid=...", or empty */
	const struct ovr_entry *ovr;
	struct ovr_entry ovr_copy;

	/* MX hosts and their addresses (policy/mx.c) */
	struct mx_walk	*walk;
	struct mx_result *mx;		/* its answer */

	/* DANE (policy/dane.c), on the MX walk's answer */
	int		 dane_wanted;	/* DANE decides for this request */
	int		 dane_failed;	/* the lookup could not start */
	struct dane_req	*daneq;
	struct dane_info *dane;		/* its answer */

	/* MTA-STS */
	int		 sts;		/* MTA-STS lookups run */
	struct dns_req	*txtq;
	int		 txt_done;
	enum dns_status	 txt_st;
	int		 txt_rc;	/* sts_txt_select */
	int		 txt_cut;	/* TXT records past DNS_MAX_RR, unseen */
	unsigned	 txt_lenient;	/* STS_LENIENT_TXT_* of the record */
	char		 txt_id[STS_ID_MAX + 1];
	char		 txt_err[128];
	int		 have_cached;
	int		 cache_unknown;	/* the MTA-STS cache could not answer */
	struct sts_cache_entry cached;
	enum sts_cache_state cached_state;
	struct sts_policy *fresh;	/* fetched during this lookup */
	char		 fresh_id[STS_ID_MAX + 1];
	int64_t		 fresh_started;	/* when its fetch started (its
					 * "fetched" in the cache) */
	struct fetch	*fetch;
	struct policy_req *fnext;
	int		 sts_done;
	char		 fetch_reason[48];
	char		 fetch_err[256];
	int		 refetch_expired; /* waits on a fetch under the id of
					 * its expired cached policy */
	int		 fetch_local;	/* the TXT lookup or the fetch failed,
					 * or the fetch could not start, for
					 * want of this gateway's own
					 * resources (HTTP_LOCAL_ERROR,
					 * dns_local_failures()) */
	struct dns	*txt_dns;	/* the resolver the TXT query went to */
	unsigned	 txt_local0;	/* its dns_local_failures() then */
	uint64_t	 txt_ct0;	/* ctstat_drops() then */

	/* the shared store (policy/redis.c), asked on a local miss */
	struct redis_op	*rs_sts;	/* MTA-STS policy under way */
	struct redis_op	*rs_hist;	/* TLS history under way */
	int		 have_rhist;	/* rhist: another gateway saw this
					 * address complete STARTTLS */
	struct history_entry rhist;
	struct redis_op	*rs_host;	/* the MX host's own record */
	int		 have_rhost;	/* rhost: another gateway saw
					 * rhost_name complete STARTTLS */
	struct history_entry rhost;
	char		 rhost_name[256];
	int		 have_remote;	/* remote: another gateway's policy,
					 * the last resort (sts_effective) */
	struct sts_cache_entry remote;

	int		 rpt_kind;	/* RPT_*: the published policy that
					 * decided, for TLSRPT */
	double		 started;	/* stats_clock() at the lookup */
};

enum { RPT_NONE, RPT_STS, RPT_TLSA };

struct fetch {
	struct fetch	*next;
	struct policy	*pol;
	char		 domain[256];
	char		 id[STS_ID_MAX + 1];
	struct http_req	*http;
	struct policy_req *waiters;
	int		 background;	/* started by the refresh timer */
	int		 expired;	/* serves refetch_expired() */
	int		 newid;		/* serves a lookup with a valid cached
					 * policy under a new TXT id */
	int64_t		 started;	/* clock_now(): the policy's "fetched" */
	uint64_t	 store_gen;	/* the CA store (and resolver) it runs
					 * through: p->store_gen when it
					 * started (fetch_current()) */
};

/* A background refresh waiting for its _mta-sts TXT answer. */
struct bgref {
	struct bgref	*next;
	struct policy	*pol;
	uint64_t	 gen;		/* p->store_gen: q's resolver */
	struct dns_req	*q;
	char		 domain[256];
	char		 id[STS_ID_MAX + 1];	/* the cached id */
};

/* A domain whose background refresh failed sits out rounds: 1 after its
 * first failure, doubling to BG_SKIP_MAX, so domains whose policy hosts
 * never answer (an attacker's, which could otherwise be the soonest to
 * expire round after round) do not take every place of a round from the
 * rest.  The record also holds the lookups' back-offs after failed
 * fetches (refetch_result(), newid_failed()).  At most BG_FAILS_MAX are
 * remembered (the oldest forgotten: its back-offs end early). */
struct bgfail {
	struct bgfail	*next;
	char		 domain[256];
	unsigned	 fails;
	unsigned	 skip;		/* rounds still to sit out */
	int64_t		 refetch_at;	/* clock_now(): no refetch of an
					 * expired policy before (refetch_
					 * expired()); 0: none failed */
	unsigned	 newid_fails;	/* failed fetches under a new TXT id
					 * while a valid policy was cached */
	int64_t		 newid_at;	/* clock_now(): no such fetch before
					 * (newid_backoff()); 0: none */
};

#define BG_SKIP_MAX	8
#define BG_FAILS_MAX	4096

/* After a failed refetch of an expired policy, lookups go without one for
 * REFETCH_BACKOFF_S, doubling with each failure to REFETCH_BACKOFF_MAX_S;
 * after a failed fetch under a new TXT id, lookups of a domain with a valid
 * cached policy start none for as long (newid_backoff()). */
#define REFETCH_BACKOFF_S	60
#define REFETCH_BACKOFF_MAX_S	960

#define RETIRED_MAX	8

/* MTA-STS fetches nobody waits for at most, per worker: a refresh near
 * expiry that a lookup starts and does not wait for, and a fetch whose
 * lookups all went (their sessions closed, or policy_timeout came
 * first).  Without a bound, whoever has mail relayed to many domains
 * whose policy hosts it holds for sts_fetch_timeout kept one fetch (up to
 * 4 connections and their TLS state) per recipient domain open, at the
 * rate lookups decide, not bounded by the sessions; the descriptors ran
 * out for the sessions and for the legitimate fetches.  Past it such a
 * fetch is not started or is cancelled: the cached policy still decides,
 * and the next lookup or the refresh timer refreshes it.  A fetch that a
 * lookup waits for is never held back (the lookups are bounded by the
 * sessions); the refresh timer's rounds have their own bound,
 * sts_refresh_max. */
#define FETCH_DETACHED_MAX	64

struct policy {
	struct ev_loop	*loop;
	int		 require_tls;
	int		 sts_enable;
	int		 dane_enable;
	uint64_t	 policy_timeout;
	uint64_t	 fetch_timeout;
	size_t		 max_body;
	int		 refresh_margin;
	uint64_t	 refresh_interval;	/* ms; 0: no background refresh */
	int		 refresh_max;		/* fetches a round starts */
	struct ev_timer	*refresh_tmr;
	struct bgref	*bgrefs;
	struct bgfail	*bgfails;	/* newest first */
	int		 nbgfails;
	uint32_t	 mark;
	struct ovr_table ovr;
	struct ovr_table modes;		/* enforcement_override */
	int		 monitor;	/* enforcement = monitor */
	struct dns	*dns;
	SSL_CTX		*ctx;		/* HTTPS fetches; its store verifies MXs */
	uint64_t	 store_gen;	/* identity of ctx's store */
	struct sts_cache *cache;
	struct fetch	*fetches;
	struct policy_req *reqs;
	struct history	*hist;		/* TLS history, NULL when off */
	int64_t		 hist_window;	/* seconds */
	struct tlsrpt_rec *rec;		/* TLSRPT recorder, NULL when off */
	int		 rpt_private;	/* tlsrpt_private_destinations */
	char		*state_dir;
	int		 stores_open;	/* policy_open_stores() was called */
	/* the stores the configuration asks for, with their limits: one
	 * that did not open is tried again (stores_try()), and until then
	 * verdicts take it for a store that cannot answer */
	int		 want_hist, want_cache;
	size_t		 hist_max, cache_max, cache_entry_max;
	int64_t		 stores_retry_at;
	int		 resolver_ok;	/* the self-check's word: -1, 0, 1 */
	struct redis	*rs;		/* shared store, NULL when off */
	/* resolvers and CA stores that reloads replaced: lookups, fetches
	 * and reports under way may still use them; each freed once
	 * nothing in flight that started under it is left
	 * (retired_free()); old_gen: the store_gen they had */
	struct dns	*old_dns[RETIRED_MAX];
	SSL_CTX		*old_ctx[RETIRED_MAX];
	uint64_t	 old_gen[RETIRED_MAX];
	int		 nold;
	struct ev_timer	*swap_tmr;
};

/* Each CA store the engine makes gets a number of its own: a proof or a
 * resumption key names the store it was verified against. */
static uint64_t store_gens;

static SSL_CTX *
make_ctx(const struct config *cfg, char *err, size_t errsz)
{
	SSL_CTX *ctx;
	const char *file = cfg->tls_ca_file[0] ? cfg->tls_ca_file : NULL;
	const char *path = cfg->tls_ca_path[0] ? cfg->tls_ca_path : NULL;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errsz, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (file || path) {
		if (!SSL_CTX_load_verify_locations(ctx, file, path)) {
			snprintf(err, errsz, "loading CA %s%s%s failed",
			    file ? file : "", file && path ? " " : "",
			    path ? path : "");
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (!SSL_CTX_set_default_verify_paths(ctx)) {
		snprintf(err, errsz, "loading the system CA store failed");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void refresh_round(void *);
static void refresh_arm(struct policy *);
static int fetches_detached(const struct policy *);
static void fetch_shed(struct policy *, const char *, const char *,
    struct fetch *);
static void lookup_backoffs_end(struct policy *);
static void bgref_free(struct bgref *);

/* Nothing in flight uses p->dns or p->ctx. */
static int
policy_idle(const struct policy *p)
{
	return p->reqs == NULL && p->fetches == NULL && p->bgrefs == NULL &&
	    !tlsrpt_rec_busy(p->rec);
}

/*
 * Whether something in flight may still use the resolver and CA store of
 * generation gen (dns): a lookup or a background refresh started under
 * it or before (a lookup's later steps take the engine's resolver of
 * their moment, one of gen or after), a fetch started under it, a TLSRPT
 * lookup sent to it.
 */
static int
retired_in_use(const struct policy *p, uint64_t gen, const struct dns *dns)
{
	const struct policy_req *r;
	const struct fetch *f;
	const struct bgref *b;

	for (r = p->reqs; r != NULL; r = r->next)
		if (r->gen <= gen)
			return 1;
	for (f = p->fetches; f != NULL; f = f->next)
		if (f->store_gen <= gen)
			return 1;
	for (b = p->bgrefs; b != NULL; b = b->next)
		if (b->gen <= gen)
			return 1;
	return tlsrpt_rec_uses(p->rec, dns);
}

/* A reload's resolver and CA store are used at once by every lookup,
 * fetch and report that starts after it (an engine kept busy must not
 * keep a CA store or a resolver the operator replaced).  Each replaced
 * one is freed once what started under it has ended, whatever started
 * since: the loop asks every 50 ms (a timer, so never from inside a
 * resolver callback that the old resolver is still running).  Waiting
 * for an idle engine instead kept them all on a gateway whose MTA never
 * let the engine idle, where every lookup ends: the ninth reload was
 * refused (RETIRED_MAX) for as long as the traffic went on. */
static void
retired_free(void *arg)
{
	struct policy *p = arg;
	int i, n = 0, freed = 0;

	if (p->nold == 0)
		return;
	for (i = 0; i < p->nold; i++) {
		if (retired_in_use(p, p->old_gen[i], p->old_dns[i])) {
			p->old_dns[n] = p->old_dns[i];
			p->old_ctx[n] = p->old_ctx[i];
			p->old_gen[n++] = p->old_gen[i];
			continue;
		}
		dns_free(p->old_dns[i]);
		SSL_CTX_free(p->old_ctx[i]);
		freed++;
	}
	p->nold = n;
	if (freed > 0)
		log_debug("event=reload-retired-freed count=%d left=%d", freed,
		    n);
	if (n > 0)
		ev_timer_arm(p->swap_tmr, 50);
}

/* The engine; its stores only if stores (policy_open_stores()). */
static struct policy *
policy_make(struct ev_loop *loop, const struct config *cfg, int stores,
    char *err, size_t errsz)
{
	struct policy *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	p->loop = loop;
	p->resolver_ok = -1;
	if ((p->state_dir = strdup(cfg->state_dir)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	if ((p->dns = dns_new(loop, cfg, err, errsz)) == NULL)
		goto fail;
	if ((p->ctx = make_ctx(cfg, err, errsz)) == NULL)
		goto fail;
	p->store_gen = ++store_gens;
	if (policy_reconfigure(p, cfg, err, errsz) == -1)
		goto fail;
	if (stores)
		policy_open_stores(p, cfg);
	/* one client per process, made here, where the engine is */
	if ((p->rs = redis_new(loop, cfg, err, errsz)) == NULL &&
	    err[0] != '\0')
		goto fail;
	if ((p->swap_tmr = ev_timer_new(loop, retired_free, p)) == NULL ||
	    (p->refresh_tmr = ev_timer_new(loop, refresh_round, p)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	refresh_arm(p);
	return p;
fail:
	policy_free(p);
	return NULL;
}

struct policy *
policy_new(struct ev_loop *loop, const struct config *cfg, char *err,
    size_t errsz)
{
	return policy_make(loop, cfg, 1, err, errsz);
}

struct policy *
policy_new_nostores(struct ev_loop *loop, const struct config *cfg,
    char *err, size_t errsz)
{
	return policy_make(loop, cfg, 0, err, errsz);
}

/* TLSRPT: the store is opened where the state is (a reload may turn
 * recording on or off; counts already made stay in the store), and only
 * once the stores may be opened at all. */
static void
tlsrpt_apply(struct policy *p, const struct config *cfg)
{
	char cerr[512], q[1024];

	if (cfg->tlsrpt_enable && p->rec == NULL && p->stores_open) {
		if ((p->rec = tlsrpt_rec_new(p->loop, p->state_dir, cerr,
		    sizeof(cerr))) == NULL)
			log_warn("event=tlsrpt-unavailable error=%s "
			    "note=\"no TLSRPT counts are recorded\"",
			    log_q(q, sizeof(q), cerr));
	} else if (!cfg->tlsrpt_enable && p->rec != NULL) {
		tlsrpt_rec_free(p->rec);
		p->rec = NULL;
	}
}

/* How often a store that did not open is tried again. */
#define STORES_RETRY_S	60

/* A store the configuration asks for that is not open (yet). */
static int
hist_missing(const struct policy *p)
{
	return p->stores_open && p->want_hist && p->hist == NULL;
}

static int
cache_missing(const struct policy *p)
{
	return p->stores_open && p->want_cache && p->cache == NULL;
}

/*
 * Opens the stores the configuration asks for that are not open.  One
 * that cannot be opened is logged and tried again (at the next lookup a
 * minute later, or a reload); it is never fatal, and never "no record":
 * until it opens, the verdicts it would have informed take the strictest
 * answer it could have given (decide()).
 */
static void
stores_try(struct policy *p)
{
	char cerr[512], q[1024];
	int again = p->stores_retry_at != 0;

	p->stores_retry_at = clock_now() + STORES_RETRY_S;
	if (hist_missing(p)) {
		if ((p->hist = history_open_limits(p->state_dir, p->hist_max,
		    p->hist_window, 0, cerr, sizeof(cerr))) == NULL)
			log_warn("event=tls-history-unavailable error=%s "
			    "note=\"TLS required where the history is asked; "
			    "tried again in %ds\"", log_q(q, sizeof(q), cerr),
			    STORES_RETRY_S);
		else if (again)
			log_warn("event=store-opened store=history");
	}
	if (cache_missing(p)) {
		if ((p->cache = sts_cache_open_limits(p->state_dir,
		    p->cache_max, p->cache_entry_max, 0, cerr,
		    sizeof(cerr))) == NULL)
			log_warn("event=sts-cache-unavailable error=%s "
			    "note=\"mail is deferred unless the domain's "
			    "MTA-STS policy is fetched or DANE decides; tried "
			    "again in %ds\"", log_q(q, sizeof(q), cerr),
			    STORES_RETRY_S);
		else if (again)
			log_warn("event=store-opened store=sts-cache");
	}
}

/* A configured store that is not open, when a minute has passed. */
static void
stores_retry(struct policy *p)
{
	if ((hist_missing(p) || cache_missing(p)) &&
	    clock_now() >= p->stores_retry_at)
		stores_try(p);
}

/* What the stores are asked for from cfg (the stores are opened by
 * stores_try() once policy_open_stores() was called). */
static void
stores_want(struct policy *p, const struct config *cfg)
{
	p->want_hist = cfg->tls_history;
	p->want_cache = cfg->sts_enable;
	p->hist_max = (size_t)cfg->tls_history_max_entries;
	p->cache_max = (size_t)cfg->sts_cache_max_entries;
	p->cache_entry_max = cfg->sts_cache_max_entry_size;
}

void
policy_open_stores(struct policy *p, const struct config *cfg)
{
	if (p->stores_open)
		return;
	p->stores_open = 1;
	stores_want(p, cfg);
	stores_try(p);
	tlsrpt_apply(p, cfg);
}

static void fetch_free(struct fetch *);

void
policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	while (p->reqs != NULL)
		policy_cancel(p->reqs);
	ev_timer_free(p->refresh_tmr);
	ev_timer_free(p->swap_tmr);
	while (p->bgrefs != NULL)
		bgref_free(p->bgrefs);
	while (p->bgfails != NULL) {
		struct bgfail *bf = p->bgfails;

		p->bgfails = bf->next;
		free(bf);
	}
	while (p->fetches != NULL)
		fetch_free(p->fetches);
	redis_free(p->rs);
	tlsrpt_rec_free(p->rec);
	free(p->state_dir);
	/* (after everything that may still have a query on them) */
	for (int i = 0; i < p->nold; i++) {
		dns_free(p->old_dns[i]);
		SSL_CTX_free(p->old_ctx[i]);
	}
	dns_free(p->dns);
	SSL_CTX_free(p->ctx);
	sts_cache_close(p->cache);
	history_close(p->hist);
	ovr_clear(&p->ovr);
	ovr_clear(&p->modes);
	free(p);
}

int
policy_reconfigure(struct policy *p, const struct config *cfg, char *err,
    size_t errsz)
{
	struct ovr_table t = { 0 }, m = { 0 };
	struct redis *nrs = NULL;
	struct dns *nd = NULL;
	SSL_CTX *nc = NULL;
	int reload = p->ovr.e != NULL;

	if (ovr_load_enforcement(&m, &cfg->enforcement_override, err,
	    errsz) == -1 ||
	    ovr_load(&t, &cfg->tls_policy, cfg->tls_policy_file,
	    cfg->tls_policy_text, cfg->tls_policy_len, err, errsz) == -1)
		goto fail;
	if (reload) {
		/* a reload: a new Redis client (a rotated password or
		 * certificate takes effect), resolver and CA store, all made
		 * before anything is committed: a bad setting fails the
		 * reload */
		retired_free(p);	/* frees them if idle */
		if (p->nold == RETIRED_MAX) {
			snprintf(err, errsz, "%d reloads while lookups never "
			    "stopped running: try again when they do",
			    RETIRED_MAX);
			goto fail;
		}
		nrs = redis_new(p->loop, cfg, err, errsz);
		if ((nrs == NULL && err[0] != '\0') ||
		    (nd = dns_new(p->loop, cfg, err, errsz)) == NULL ||
		    (nc = make_ctx(cfg, err, errsz)) == NULL)
			goto fail;
		/* resolver and CA store: in use at once; the replaced ones
		 * are freed when nothing in flight can use them */
		p->old_dns[p->nold] = p->dns;
		p->old_ctx[p->nold] = p->ctx;
		p->old_gen[p->nold++] = p->store_gen;
		p->dns = nd;
		p->ctx = nc;
		p->store_gen = ++store_gens;
		/* fetches that failed through the replaced ones hold
		 * no lookup back now */
		lookup_backoffs_end(p);
		log_info("event=reload-applied what=resolver,ca-store%s",
		    policy_idle(p) ? "" : " note=\"lookups under way end on "
		    "the ones they started with\"");
		retired_free(p);
		/* lookups under way keep their ops on the old client, which
		 * answers them and then frees itself */
		if (nrs != NULL || p->rs != NULL) {
			redis_retire(p->rs);
			p->rs = nrs;
			log_info("event=redis-reloaded address=%s",
			    nrs != NULL ? cfg->redis_address : "off");
		}
	}
	/* overrides point into p->ovr only during decide(), which copies */
	ovr_clear(&p->ovr);
	p->ovr = t;
	ovr_clear(&p->modes);
	p->modes = m;
	p->monitor = strcmp(cfg->enforcement, "monitor") == 0;
	p->rpt_private = cfg->tlsrpt_private_destinations;
	if (p->ovr.e == NULL)
		p->ovr.e = calloc(1, sizeof(struct ovr_entry)); /* "loaded" */
	p->require_tls = strcmp(cfg->require_tls, "yes") == 0;
	p->sts_enable = cfg->sts_enable;
	p->dane_enable = cfg->dane_enable;
	p->hist_window = cfg->tls_history ?
	    (int64_t)(cfg->tls_history_window / 1000) : 0;
	history_set_window(p->hist, p->hist_window);
	p->policy_timeout = cfg->policy_timeout ? cfg->policy_timeout : 60000;
	p->fetch_timeout = cfg->sts_fetch_timeout;
	p->max_body = cfg->sts_max_body ? cfg->sts_max_body : 65536;
	p->refresh_margin = cfg->sts_refresh_margin;
	p->refresh_max = cfg->sts_refresh_max > 0 ? cfg->sts_refresh_max : 100;
	if (p->refresh_interval != cfg->sts_refresh_interval) {
		p->refresh_interval = cfg->sts_refresh_interval;
		refresh_arm(p);		/* no-op before the timer exists */
	}
	p->mark = cfg->upstream_mark;
	/* a store turned on, or one that did not open: tried now */
	stores_want(p, cfg);
	if (p->stores_open)
		stores_try(p);
	tlsrpt_apply(p, cfg);
	return 0;
fail:
	redis_free(nrs);
	dns_free(nd);
	SSL_CTX_free(nc);
	ovr_clear(&t);
	ovr_clear(&m);
	return -1;
}

/* ---- verdict helpers ---- */

static int
verdict_names(struct policy *p, struct policy_verdict *v, int n,
    const char names[][256])
{
	int i;

	if (v->tls == NULL) {
		if ((v->tls = calloc(1, sizeof(*v->tls))) == NULL)
			return -1;
		v->tls->store = SSL_CTX_get_cert_store(p->ctx);
		X509_STORE_up_ref(v->tls->store);
		v->tls->store_gen = p->store_gen;
	}
	for (i = 0; i < n && v->tls->nnames < OVR_MAX_MATCH; i++)
		snprintf(v->tls->names[v->tls->nnames++], 256, "%s", names[i]);
	return 0;
}

static void
sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t bufsz)
{
	const void *a = ss->ss_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)ss)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	if (inet_ntop(ss->ss_family, a, buf, (socklen_t)bufsz) == NULL)
		snprintf(buf, bufsz, "-");
}

/* ---- request lifetime ---- */

static void
req_unlink_fetch(struct policy_req *r)
{
	struct policy_req **pp;
	struct fetch *f = r->fetch;

	if (f == NULL)
		return;
	for (pp = &f->waiters; *pp != NULL; pp = &(*pp)->fnext)
		if (*pp == r) {
			*pp = r->fnext;
			break;
		}
	r->fetch = NULL;
	/* (f->http is NULL while fetch_done() hands it out) */
	if (f->waiters == NULL && !f->background && f->http != NULL &&
	    fetches_detached(r->pol) > FETCH_DETACHED_MAX)
		fetch_shed(r->pol, f->domain, f->id, f);
}

static void
req_stop_lookups(struct policy_req *r)
{
	mx_walk_cancel(r->walk);
	r->walk = NULL;
	dns_cancel(r->txtq);
	r->txtq = NULL;
	dane_cancel(r->daneq);
	r->daneq = NULL;
	redis_cancel(r->rs_sts);
	r->rs_sts = NULL;
	redis_cancel(r->rs_hist);
	r->rs_hist = NULL;
	redis_cancel(r->rs_host);
	r->rs_host = NULL;
	req_unlink_fetch(r);
}

static void
req_destroy(struct policy_req *r)
{
	struct policy *p = r->pol;

	req_stop_lookups(r);
	if (r->prev)
		r->prev->next = r->next;
	else
		p->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	ev_timer_free(r->tmo);
	ev_timer_free(r->fire);
	sts_cache_entry_clear(&r->cached);
	sts_cache_entry_clear(&r->remote);
	free(r->mx);
	dane_info_free(r->dane);
	free(r->fresh);
	policy_verdict_free(r->v);
	free(r);
}

static void
req_fire(void *arg)
{
	struct policy_req *r = arg;
	struct policy_verdict *v = r->v;
	policy_cb *cb = r->cb;
	void *cbarg = r->arg;

	r->v = NULL;
	req_destroy(r);
	cb(cbarg, v);
}

/* ---- the decision ---- */

static void
count(const struct policy_verdict *v, const char *result)
{
	char name[200];

	snprintf(name, sizeof(name), "mxguard_policy_decisions_total"
	    "{source=\"%s\",level=\"%s\",result=\"%s\"}", v->source,
	    tls_level_name(v->level), result);
	stats_add(stats_get(name, "Policy decisions at the first RCPT"), 1);
}

static void
log_decision(struct policy_req *r, const char *result, int mon_skipped)
{
	struct policy_verdict *v = r->v;
	char qd[300], qs[160];

	log_info("%s%sevent=policy domain=%s dst=%s mx=%s source=%s level=%s "
	    "result=%s reason=%s%s%s%s%s sts=%s detail=%s%s%s",
	    r->tag[0] ? "sid=" : "",
	    r->tag[0] ? r->tag : "", v->domain[0] ? v->domain : "-", r->dststr,
	    v->mx_host[0] ? v->mx_host : "-", v->source,
	    tls_level_name(v->level), result, v->reason[0] ? v->reason : "-",
	    v->report_only ? " report_only=yes" : "",
	    v->monitor ? " enforcement=monitor would_level=" : "",
	    v->monitor ? tls_level_name(v->would_level) : "",
	    mon_skipped ? " monitor_override=not-applied" : "",
	    log_q(qs, sizeof(qs), v->sts_note[0] ? v->sts_note : "-"),
	    log_q(qd, sizeof(qd), v->detail[0] ? v->detail : "-"),
	    v->dane_note ? " dane=not-applicable dane_reason=" : "",
	    v->dane_note ? v->dane_note : "");
	count(v, result);
}

static void
defer(struct policy_req *r, const char *source, const char *reason,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
defer(struct policy_req *r, const char *source, const char *reason,
    const char *fmt, ...)
{
	va_list ap;

	r->v->level = TLS_LEVEL_DEFER;
	r->v->source = source;
	snprintf(r->v->reason, sizeof(r->v->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(r->v->detail, sizeof(r->v->detail), fmt, ap);
	va_end(ap);
}

static void apply_override_level(struct policy_req *);

/* The override's level, then protocols= on whatever TLS it asks for. */
static void
apply_override(struct policy_req *r)
{
	const struct ovr_entry *o = &r->ovr_copy;
	struct policy_verdict *v = r->v;
	char none[1][256];

	apply_override_level(r);
	if (o->min_proto == 0 && o->max_proto == 0)
		return;
	if (v->level == TLS_LEVEL_NONE || v->level == TLS_LEVEL_DEFER)
		return;
	if (v->tls == NULL && verdict_names(r->pol, v, 0, none) == -1) {
		defer(r, "override", "validation-failure", "out of memory");
		return;
	}
	v->tls->min_proto = o->min_proto;
	v->tls->max_proto = o->max_proto;
}

static const struct sts_policy *sts_effective(struct policy_req *,
    const char **);

/* Appends one string to a policy_rpt being built (NUL included). */
static int
rpt_add(struct policy_rpt **rp, size_t *cap, const char *str)
{
	size_t n = strlen(str) + 1;
	struct policy_rpt *np;

	if ((*rp)->len + n > *cap) {
		size_t ncap = (*cap + n) * 2;

		if ((np = realloc(*rp, sizeof(*np) + ncap)) == NULL)
			return -1;
		*rp = np;
		*cap = ncap;
	}
	memcpy((*rp)->buf + (*rp)->len, str, n);
	(*rp)->len += n;
	return 0;
}

/*
 * v->rpt from the published policy that decided (r->rpt_kind): the
 * MTA-STS policy's lines and MX patterns, or the TLSA RRset of H and H.
 * Only for TLSRPT: a verdict without it is reported as no-policy-found,
 * so running out of memory here costs a report's detail, not mail.
 */
static void
rpt_fill(struct policy_req *r)
{
	struct policy_verdict *v = r->v;
	const struct sts_policy *sp;
	const char *origin;
	struct policy_rpt *rp;
	size_t cap = 1024;
	char line[1100];
	int i, ok = 1;

	if (r->rpt_kind == RPT_NONE)
		return;
	if ((rp = calloc(1, sizeof(*rp) + cap)) == NULL)
		return;
	if (r->rpt_kind == RPT_STS) {
		sp = sts_effective(r, &origin);
		if (sp == NULL) {
			free(rp);
			return;
		}
		rp->type = TLSRPT_POLICY_STS;
		/* the policy file as section 3.2 writes it; the RFC 8460
		 * policy-string is its lines */
		ok = rpt_add(&rp, &cap, "version: STSv1") == 0;
		snprintf(line, sizeof(line), "mode: %s",
		    sts_mode_name(sp->mode));
		ok = ok && rpt_add(&rp, &cap, line) == 0;
		for (i = 0; ok && i < sp->nmx; i++) {
			snprintf(line, sizeof(line), "mx: %s", sp->mx[i]);
			ok = rpt_add(&rp, &cap, line) == 0;
		}
		snprintf(line, sizeof(line), "max_age: %u", sp->max_age);
		ok = ok && rpt_add(&rp, &cap, line) == 0;
		rp->nstrings = sp->nmx + 3;
		for (i = 0; ok && i < sp->nmx; i++)
			ok = rpt_add(&rp, &cap, sp->mx[i]) == 0;
		rp->nmx = sp->nmx;
	} else {
		rp->type = TLSRPT_POLICY_TLSA;
		for (i = 0; r->dane != NULL && ok && i < r->dane->ntlsa;
		    i++) {
			dane_tlsa_format(&r->dane->tlsa[i], line,
			    sizeof(line));
			ok = rpt_add(&rp, &cap, line) == 0;
			rp->nstrings++;
		}
		if (ok && v->mx_host[0]) {
			ok = rpt_add(&rp, &cap, v->mx_host) == 0;
			rp->nmx = 1;
		}
	}
	if (!ok) {
		free(rp);
		return;
	}
	free(v->rpt);
	v->rpt = rp;
}

/*
 * Did the recipient domain's own policy decide?  DANE and MTA-STS (the
 * domain's published word, a failed lookup of either included) and a
 * domain line of tls_policy.  An address line's monitor does not reach
 * them: whoever answers the MTA's unsigned MX query can send any domain's
 * mail to that address.
 */
static int
domain_decided(const struct policy_req *r)
{
	const char *s = r->v->source;

	if (s == NULL)
		return 0;
	/* (MTA-STS testing or none demand nothing: level may) */
	if (strcmp(s, "dane") == 0 || strcmp(s, "mta-sts") == 0)
		return r->v->level != TLS_LEVEL_MAY &&
		    r->v->level != TLS_LEVEL_NONE;
	return strcmp(s, "override") == 0 && r->ovr != NULL &&
	    !r->ovr->is_addr;
}

/*
 * enforcement = monitor for this request's destination?  The address's
 * line and the domain's (exact, else the closest parent) are looked up
 * apart, and an enforce line of either wins: a monitor line for a relay's
 * address must not monitor a domain written "enforce", whose mail an
 * attacker who answers the MTA's MX query sends to that address.  For the
 * same reason an address's monitor line alone monitors only what this
 * gateway demands of that address (tls_policy address line, the TLS
 * history, require_tls, the default), never a verdict the domain's own
 * policy decided (domain_decided()): that one needs a line for the
 * domain, or enforcement = monitor.  *skipped says such a line was
 * passed over, for the log.
 */
static int
monitored(const struct policy_req *r, int *skipped)
{
	const struct ovr_entry *a = NULL, *d;

	*skipped = 0;
	if (r->have_dst)
		a = ovr_find(&r->pol->modes, NULL,
		    (const struct sockaddr *)&r->dst);
	d = ovr_find(&r->pol->modes, r->v->domain, NULL);
	if ((a != NULL && !a->monitor) || (d != NULL && !d->monitor))
		return 0;
	if (d != NULL)
		return 1;
	if (a != NULL && !domain_decided(r))
		return 1;
	if (a != NULL && !r->pol->monitor)
		*skipped = 1;
	return r->pol->monitor;
}

static void
finish(struct policy_req *r)
{
	struct policy_verdict *v = r->v;
	const char *result;
	int mon_skipped;

	rpt_fill(r);
	/* DANE would have been asked, but the self-check says the resolver
	 * never sets the AD bit: say why no DANE verdict could come */
	if (r->pol->resolver_ok == 0 && r->pol->dane_enable &&
	    v->level != TLS_LEVEL_DANE && (r->ovr == NULL ||
	    r->ovr->level == OVR_DANE || r->ovr->level == OVR_DANE_MAY))
		v->dane_note = "resolver-not-validating";
	r->decided = 1;
	req_stop_lookups(r);
	ev_timer_stop(r->tmo);
	if (monitored(r, &mon_skipped))
		policy_verdict_monitor(v);
	if (v->level == TLS_LEVEL_DEFER)
		result = "defer";
	else if (v->monitor && v->would_level == TLS_LEVEL_DEFER)
		result = "would-defer";
	else if (v->report_only && v->reason[0])
		result = "report-only-failure";
	else
		result = "ok";
	log_decision(r, result, mon_skipped);
	stats_observe(stats_histogram("mxguard_policy_decision_seconds",
	    "Time from a policy lookup's start to its verdict", NULL, 0),
	    stats_clock() - r->started);
	ev_timer_arm(r->fire, 0);
}

/* The MX walk's answer, or what it had at policy_timeout. */
static const struct mx_result *
mx_view(const struct policy_req *r)
{
	if (r->mx != NULL)
		return r->mx;
	return r->walk != NULL ? mx_walk_peek(r->walk) : NULL;
}

static const char *
mx_lookup_failure(struct policy_req *r)
{
	const struct mx_result *m = mx_view(r);

	if (m == NULL || m->status == -1)
		return "MX lookup timed out";
	switch (m->status) {
	case DNS_SERVFAIL:
		return "MX lookup failed (SERVFAIL or bogus)";
	case DNS_TIMEOUT:
		return "MX lookup timed out";
	case DNS_ERROR:
		return "MX lookup failed";
	case DNS_LOCAL:
		return "MX lookup not sent for want of local resources";
	default:
		return NULL;
	}
}

static void dane_verdict(struct policy_req *);

/*
 * match= of verify/secure into reference names, with Postfix's match
 * strategies: "nexthop" is the recipient domain (the next hop as mxguard
 * sees it), "dot-nexthop" its subdomains, "hostname" the MX host H (none
 * while H is unknown: then nothing matches); other names as written.
 * Returns how many names it wrote.
 */
static int
match_names(const struct ovr_entry *o, const struct policy_verdict *v,
    char out[OVR_MAX_MATCH][256])
{
	int i, n = 0;

	for (i = 0; i < o->nmatch && n < OVR_MAX_MATCH; i++)
		if (strcasecmp(o->match[i], "nexthop") == 0)
			snprintf(out[n++], 256, "%s", v->domain);
		else if (strcasecmp(o->match[i], "dot-nexthop") == 0)
			snprintf(out[n++], 256, ".%s", v->domain);
		else if (strcasecmp(o->match[i], "hostname") == 0) {
			if (v->mx_host[0] != '\0')
				snprintf(out[n++], 256, "%s", v->mx_host);
		} else
			snprintf(out[n++], 256, "%s", o->match[i]);
	return n;
}

static void
apply_override_level(struct policy_req *r)
{
	struct policy *p = r->pol;
	struct policy_verdict *v = r->v;
	const struct ovr_entry *o = &r->ovr_copy;
	char names[2][256], names2[OVR_MAX_MATCH][256];

	v->source = "override";
	snprintf(v->detail, sizeof(v->detail), "tls_policy \"%s\"", o->line);
	switch (o->level) {
	case OVR_NONE:
		v->level = TLS_LEVEL_NONE;
		return;
	case OVR_MAY:
		v->level = TLS_LEVEL_MAY;
		return;
	case OVR_ENCRYPT:
		v->level = TLS_LEVEL_ENCRYPT;
		return;
	case OVR_DANE:
		/* DANE required (Postfix's dane-only): usable TLSA records
		 * authenticate; unusable ones authenticate nothing and, as in
		 * Postfix, are no fallback to encrypt: they defer, as none
		 * at all does */
		if (r->dane != NULL && r->dane->state != DANE_NONE &&
		    r->dane->state != DANE_UNUSABLE) {
			dane_verdict(r);
			v->source = "override";
			return;
		}
		if (r->dane != NULL && r->dane->state == DANE_UNUSABLE) {
			/* this gateway's demand, beyond what the records
			 * publish (TLS): not reported as their failure */
			if (r->dane->mx_host[0] != '\0')
				snprintf(v->mx_host, sizeof(v->mx_host), "%s",
				    r->dane->mx_host);
			v->level = TLS_LEVEL_DEFER;
			snprintf(v->reason, sizeof(v->reason), "dane-required");
			snprintf(v->detail, sizeof(v->detail), "tls_policy "
			    "\"%s\": only unusable TLSA records: no DANE "
			    "authentication (dane-only)", o->line);
			return;
		}
		v->level = TLS_LEVEL_DEFER;
		snprintf(v->reason, sizeof(v->reason), "dane-required");
		snprintf(v->detail, sizeof(v->detail), "tls_policy \"%s\": "
		    "%s", o->line, r->dane ? r->dane->detail :
		    "DANE lookup did not finish");
		return;
	case OVR_DANE_MAY:
		/* Postfix's dane: DANE when the records are there (and a
		 * failed lookup defers, as dane_verdict says), else may */
		if (r->dane != NULL && r->dane->state != DANE_NONE) {
			dane_verdict(r);
			v->source = "override";
			return;
		}
		if (r->dane == NULL && r->dane_wanted) {
			v->level = TLS_LEVEL_DEFER;
			snprintf(v->reason, sizeof(v->reason), "dane-required");
			snprintf(v->detail, sizeof(v->detail), "tls_policy "
			    "\"%s\": DANE lookup did not finish", o->line);
			return;
		}
		v->level = TLS_LEVEL_MAY;
		return;
	case OVR_FINGERPRINT:
		/* the live leaf must match one digest: verdict.c checks it
		 * where verify checks the chain (no names, no CA store) */
		v->level = TLS_LEVEL_VERIFY;
		if (verdict_names(p, v, 0, names) == -1) {
			defer(r, "override", "validation-failure",
			    "out of memory");
			return;
		}
		v->tls->nfp = o->nfp;
		memcpy(v->tls->fp, o->fp, sizeof(v->tls->fp));
		return;
	case OVR_VERIFY:
	case OVR_SECURE:
		v->level = TLS_LEVEL_VERIFY;
		if (o->nmatch > 0) {
			if (verdict_names(p, v, match_names(o, v, names2),
			    names2) == -1)
				defer(r, "override", "validation-failure",
				    "out of memory");
			return;
		}
		if (o->level == OVR_VERIFY && v->mx_host[0]) {
			snprintf(names[0], 256, "%s", v->mx_host);
			verdict_names(p, v, 1, names);
		} else if (o->level == OVR_VERIFY) {
			/* verify's name is H's (Postfix's match=hostname):
			 * no H, nothing matches; never secure's D and .D */
			verdict_names(p, v, 0, names);
		} else {
			snprintf(names[0], 256, "%s", v->domain);
			snprintf(names[1], 256, ".%s", v->domain);
			verdict_names(p, v, 2, names);
		}
		return;
	}
}

static const struct sts_policy *sts_effective(struct policy_req *,
    const char **);
static void check_done(struct policy_req *);

/* The verdict from r->dane (not DANE_NONE). */
static void
dane_verdict(struct policy_req *r)
{
	struct policy_verdict *v = r->v;
	char none[1][256];

	r->rpt_kind = RPT_TLSA;
	dane_apply(r->dane, v);
	if (v->level != TLS_LEVEL_DANE)
		return;
	if (verdict_names(r->pol, v, 0, none) == -1 ||
	    (v->tls->dane = dane_info_dup(r->dane)) == NULL)
		defer(r, "dane", "validation-failure", "out of memory");
}

/*
 * DANE (docs/policy.md "Order of the sources", policy/dane.c,
 * docs/dane.md) decides here, before MTA-STS, from secure MX/A/TLSA
 * lookups: returns 1 when it has set the verdict (TLS_LEVEL_DANE;
 * TLS_LEVEL_ENCRYPT for only unusable records; TLS_LEVEL_DEFER), 0 to
 * fall through.  A DANE lookup still running at policy_timeout defers: a
 * signed zone must never fall back.
 */
static int
dane_decide(struct policy_req *r)
{
	struct policy_verdict *v = r->v;
	const struct sts_policy *sp;
	const char *origin;

	if (r->dane_wanted && r->dane == NULL) {
		/* policy_timeout (the MX walk or the TLSA lookups still
		 * running), or the lookup could not start: never fall back
		 * while DNSSEC may say DANE */
		dane_cancel(r->daneq);
		r->daneq = NULL;
		r->rpt_kind = RPT_TLSA;
		if (r->dane_failed) {
			/* dane_lookup() had no memory: this gateway's
			 * trouble, not the domain's (not reported) */
			defer(r, "dane", DANE_LOCAL_ERROR, "DNSSEC/DANE "
			    "lookup could not start: out of memory");
			r->v->local = 1;
		} else
			defer(r, "dane", "dnssec-invalid", "DNSSEC/DANE "
			    "lookups did not finish within policy_timeout");
		return 1;
	}
	if (r->dane == NULL)
		return 0;
	if (r->dane->state == DANE_NONE) {
		if (v->mx_host[0] == '\0' && r->dane->mx_host[0] != '\0')
			snprintf(v->mx_host, sizeof(v->mx_host), "%s",
			    r->dane->mx_host);
		return 0;
	}
	sp = r->sts ? sts_effective(r, &origin) : NULL;
	if (sp != NULL && sp->mode == STS_MODE_ENFORCE && !r->dane->mx_secure &&
	    (r->dane->mx_host[0] == '\0' ||
	    !sts_policy_match(sp, r->dane->mx_host))) {
		/* DANE outranks MTA-STS where DNSSEC says which hosts are
		 * D's MX.  With an insecure MX RRset an attacker on the path
		 * writes the host list: a host it adds, in a signed zone of
		 * its own with TLSA records for its own key, must not stand
		 * in for the enforce policy, which names the hosts D allows
		 * (the policy decides, for a host it lists, or defers). */
		log_info("event=dane-insecure-mx-mta-sts domain=%s mx=%s "
		    "dane=%s sts_mode=enforce note=\"MX RRset not "
		    "DNSSEC-validated and the host is not in the MTA-STS "
		    "policy: the policy applies\"", v->domain,
		    r->dane->mx_host[0] ? r->dane->mx_host : "-",
		    dane_state_name(r->dane->state));
		return 0;
	}
	if (r->dane->state == DANE_UNUSABLE && sp != NULL &&
	    sp->mode == STS_MODE_ENFORCE) {
		/* Unusable records authenticate nothing: they must not stand
		 * in for the MTA-STS policy's PKIX check, which demands TLS
		 * as well (no DANE check fails here for MTA-STS to override,
		 * RFC 8461 section 2). */
		v->dane_note = "tlsa-unusable";
		log_info("event=dane-unusable-mta-sts domain=%s mx=%s "
		    "sts_mode=enforce note=\"only unusable TLSA records: "
		    "the MTA-STS policy applies\"", v->domain,
		    r->dane->mx_host[0] ? r->dane->mx_host : "-");
		return 0;
	}
	dane_verdict(r);
	if (sp != NULL && sp->mode != STS_MODE_NONE) {
		snprintf(v->sts_note, sizeof(v->sts_note), "mode=%s,ignored",
		    sts_mode_name(sp->mode));
		log_info("event=dane-over-mta-sts domain=%s mx=%s dane=%s "
		    "sts_mode=%s note=\"DANE takes precedence over MTA-STS\"",
		    v->domain, v->mx_host[0] ? v->mx_host : "-",
		    dane_state_name(r->dane->state), sts_mode_name(sp->mode));
	}
	return 1;
}

static void
on_dane(void *arg, struct dane_info *d)
{
	struct policy_req *r = arg;

	r->daneq = NULL;
	r->dane = d;
	check_done(r);
}

static const struct sts_policy *
sts_effective(struct policy_req *r, const char **origin)
{
	if (r->fresh != NULL) {
		*origin = "fetched";
		return r->fresh;
	}
	if (r->have_cached && r->cached_state != STS_CACHE_EXPIRED) {
		*origin = "cached";
		return &r->cached.pol;
	}
	/* last: a policy another gateway fetched, where this one has none
	 * of its own (redis_sts_usable(): enforce only, so it can only
	 * make the verdict stricter than no policy).  Not when the local
	 * cache could not answer: it may hold an enforce policy with other
	 * MX patterns, and "stricter than no policy" is not "stricter than
	 * that" (the lookup defers, store-error) */
	if (r->have_remote && !r->cache_unknown &&
	    clock_now() < r->remote.expires) {
		*origin = "redis";
		return &r->remote.pol;
	}
	*origin = NULL;
	return NULL;
}

static void sts_enforce(struct policy_req *, const struct sts_policy *);
static void sts_testing(struct policy_req *, const struct sts_policy *);
static void remote_history_apply(struct policy_req *);

/*
 * The cache read at the lookup's start may be out of date by the time it
 * decides (up to policy_timeout later): another lookup, or another worker
 * sharing the file, may have stored a policy fetched since.  An attacker
 * who fails this lookup's TXT query or fetch must not get it decided on
 * the older (testing, none, expired) record or on none: the record
 * fetched last is taken.  So also over the policy this lookup's own fetch
 * brought, when a fetch started after it stored its policy meanwhile: an
 * attacker who held this response back (the cache kept the newer one,
 * sts_cache_put()) must not get the lookup decided on the older policy
 * (a testing one, where the domain has since gone to enforce).  A newer
 * record already expired leaves the fetched policy (still valid) to
 * decide.
 */
static void
cache_reread(struct policy_req *r)
{
	struct policy *p = r->pol;
	struct sts_cache_entry e;
	int rc;

	if (p->cache == NULL)
		return;
	memset(&e, 0, sizeof(e));
	if ((rc = sts_cache_get(p->cache, r->v->domain, &e)) != 1) {
		if (rc == -1 && r->fresh == NULL)
			r->cache_unknown = 1;
		return;
	}
	if (r->fresh != NULL && (e.fetched <= r->fresh_started ||
	    sts_cache_state(&e, clock_now(), p->refresh_margin) ==
	    STS_CACHE_EXPIRED)) {
		sts_cache_entry_clear(&e);
		return;
	}
	if (r->fresh == NULL && r->have_cached &&
	    e.fetched <= r->cached.fetched) {
		sts_cache_entry_clear(&e);
		return;
	}
	if (r->fresh != NULL) {
		log_info("event=sts-cache-newer domain=%s id=%s mode=%s "
		    "fetched_id=%s note=\"a policy fetched after this lookup's "
		    "own fetch started decides\"", r->v->domain, e.id,
		    sts_mode_name(e.pol.mode), r->fresh_id);
		free(r->fresh);
		r->fresh = NULL;
	} else
		log_info("event=sts-cache-newer domain=%s id=%s mode=%s "
		    "note=\"a policy fetched during this lookup decides\"",
		    r->v->domain, e.id, sts_mode_name(e.pol.mode));
	if (r->have_cached)
		sts_cache_entry_clear(&r->cached);
	r->cached = e;
	r->have_cached = 1;
	r->cached_state = sts_cache_state(&r->cached, clock_now(),
	    p->refresh_margin);
}

/*
 * No MX host was found to own A, and the address lookup of one failed (or
 * had not answered by policy_timeout): that host may own A.  An attacker
 * on the path who answers the MTA's query for it with an address of its
 * own and fails the gateway's would otherwise meet only A's own history
 * record, which knows nothing of its address, where answering both would
 * have met the host's.  So the host's own record counts (history.c), as
 * DANE counts such a failure (no_owner() in dane.c).  A host whose lookup
 * answered other addresses does not own A (a relay's address keeps what
 * applies to it).  1 when it raised the verdict.
 */
static int
history_unowned(struct policy_req *r)
{
	const struct mx_result *m = mx_view(r);
	int i;

	if (m == NULL)
		return 0;
	for (i = 0; i < m->nhost; i++)
		if (m->host[i].has_dst)
			return 0;
	for (i = 0; i < m->nhost; i++)
		if (mx_status_failed(mx_host_status(&m->host[i],
		    r->dst.ss_family)) && history_apply_unowned(r->pol->hist,
		    r->pol->hist_window, (struct sockaddr *)&r->dst,
		    m->host[i].name, r->v))
			return 1;
	return 0;
}

/*
 * The cached policy that decides, written through to Redis again, once an
 * hour per domain (the first use that sts_cache_touch() marks): a policy
 * reached Redis only with its fetch, so one fetched while Redis was down
 * or still connecting (the failed write only counted), or one Redis lost
 * since (a restart without its data, an eviction), was not there for the
 * other gateway until the next fetch, near the end of a max_age of up to
 * a year; after a failover, an attacker who blocks that gateway's own
 * fetch got the domain's mail through without the policy.  The server
 * keeps the newer fetch (redis_sts_replaces()), so this older copy never
 * replaces what another gateway fetched since.  Not a body stored as its
 * fields that lost patterns past STS_MAX_MX (Redis holds policies as
 * fetched, whose dropped patterns a peer counts itself): that one goes
 * again with its next fetch.
 */
static void
cached_put_again(struct policy_req *r)
{
	struct policy *p = r->pol;

	if (p->rs == NULL || r->cached.pol.mx_over > 0)
		return;
	redis_sts_put(p->rs, r->v->domain, &r->cached);
}

static void
decide(struct policy_req *r)
{
	struct policy *p = r->pol;
	struct policy_verdict *v = r->v;
	const struct mx_result *m = mx_view(r);
	const struct sts_policy *sp;
	const char *origin;
	int i;

	if (r->decided)
		return;
	if (r->sts)
		cache_reread(r);
	sp = r->sts ? sts_effective(r, &origin) : NULL;
	/* the cached policy takes part in this decision (DANE may still
	 * outrank it): marked used, so the background refresh keeps it
	 * (sts_cache_due()); also after a failed fetch under a new TXT id,
	 * which an attacker who writes the record and blocks the policy
	 * host can make of every lookup */
	if (sp == &r->cached.pol && p->cache != NULL &&
	    sts_cache_touch(p->cache, v->domain, clock_now()) == 1)
		cached_put_again(r);
	/* H: the most preferred MX host owning A; when several own A, one
	 * the MTA-STS policy lists, if any */
	for (i = 0; m != NULL && i < m->nhost; i++)
		if (m->host[i].has_dst) {
			if (v->mx_host[0] == '\0')
				snprintf(v->mx_host, sizeof(v->mx_host), "%s",
				    m->host[i].name);
			if (sp == NULL || sp->mode == STS_MODE_NONE ||
			    sts_policy_match(sp, m->host[i].name)) {
				snprintf(v->mx_host, sizeof(v->mx_host), "%s",
				    m->host[i].name);
				break;
			}
		}
	if (r->ovr != NULL) {
		apply_override(r);
		finish(r);
		return;
	}
	/* RFC 7505: D's DNSSEC-validated null MX says it accepts no mail,
	 * so no address the MTA was sent to is D's (a resolver of its
	 * that was answered otherwise, or a relay without a tls_policy
	 * address line).  Deferred, not bounced: mxguard may not see the
	 * whole route.  An unsigned null MX anybody on the path can write,
	 * and it decides nothing; DNSSEC is trusted where DANE is on. */
	if (p->dane_enable && m != NULL && m->null_mx && m->secure) {
		defer(r, "dane", "validation-failure", "%s has a "
		    "DNSSEC-validated null MX (RFC 7505): it accepts no mail",
		    v->domain);
		finish(r);
		return;
	}
	if (p->dane_enable && dane_decide(r)) {
		finish(r);
		return;
	}
	if (sp != NULL) {
		const struct sts_cache_entry *ce = sp == &r->remote.pol ?
		    &r->remote : &r->cached;
		int64_t age = r->fresh ? 0 :
		    clock_now() - ce->fetched;

		snprintf(v->sts_note, sizeof(v->sts_note),
		    "mode=%s,id=%s,%s,age=%llds", sts_mode_name(sp->mode),
		    r->fresh ? r->fresh_id : ce->id, origin,
		    (long long)age);
		if (sp == &r->remote.pol)
			log_info("event=sts-policy-from-redis domain=%s id=%s "
			    "mode=%s age=%llds note=\"no policy of this "
			    "gateway's own: the one another gateway fetched "
			    "decides\"", v->domain, ce->id,
			    sts_mode_name(sp->mode), (long long)age);
	} else if (r->sts && r->fetch_reason[0])
		snprintf(v->sts_note, sizeof(v->sts_note), "%s",
		    r->fetch_reason);
	if (sp != NULL && sp->mode == STS_MODE_ENFORCE) {
		sts_enforce(r, sp);
		finish(r);
		return;
	}
	/* no policy, but the cache that may hold one could not be read:
	 * a lookup table that fails defers, as in Postfix (RFC 8461
	 * section 5.1: a cached policy applies whatever DNS says now) */
	if (sp == NULL && r->cache_unknown) {
		defer(r, "mta-sts", "store-error", "the MTA-STS policy cache "
		    "could not be read, and no policy of %s was fetched: "
		    "a cached one may apply", v->domain);
		v->local = 1;
		finish(r);
		return;
	}
	/* no policy, and the fetch the domain's record asks for failed for
	 * want of this gateway's descriptors, ports or memory (a flood may
	 * have taken them): that says nothing of the domain's policy, and
	 * deciding without it would deliver below a policy the domain may
	 * publish.  Deferred, the MTA retries once the resources are back */
	if (sp == NULL && r->fetch_local) {
		defer(r, "mta-sts", "local-error", "the MTA-STS policy of %s "
		    "could not be looked up for want of local resources (%s)",
		    v->domain, r->fetch_err[0] ? r->fetch_err : "cannot start");
		v->local = 1;
		finish(r);
		return;
	}
	/* what applies without an MTA-STS policy (also in mode testing,
	 * which never weakens it) */
	if (p->require_tls) {
		v->level = TLS_LEVEL_ENCRYPT;
		v->source = "require_tls";
	} else {
		v->level = TLS_LEVEL_MAY;
		v->source = sp != NULL ? "mta-sts" : "default";
	}
	if (sp != NULL && sp->mode == STS_MODE_TESTING)
		sts_testing(r, sp);
	else if (sp != NULL)
		snprintf(v->detail, sizeof(v->detail), "MTA-STS mode none");
	else if (r->sts && r->fetch_err[0])
		snprintf(v->detail, sizeof(v->detail), "no usable MTA-STS "
		    "policy: %s", r->fetch_err);
	else if (r->sts && r->txt_rc == -1)
		snprintf(v->detail, sizeof(v->detail), "MTA-STS TXT record "
		    "invalid: %s", r->txt_err);
	else if (r->sts && r->refetch_expired)
		snprintf(v->detail, sizeof(v->detail), "no TLS policy: the "
		    "cached MTA-STS policy (id %s) expired, and fetching it "
		    "again failed", r->cached.id);
	else
		snprintf(v->detail, sizeof(v->detail), "no TLS policy");
	if (r->have_dst && !history_apply(p->hist, p->hist_window,
	    (struct sockaddr *)&r->dst, v) && !history_unowned(r))
		remote_history_apply(r);
	if (r->have_dst && p->hist_window > 0 && hist_missing(p))
		history_unreadable(v, (struct sockaddr *)&r->dst,
		    "the TLS history store is not open");
	/* the testing policy's check is reported whatever level applies */
	v->report_only = sp != NULL && sp->mode == STS_MODE_TESTING;
	finish(r);
}

/*
 * No MX host kept owns A, and the MX answer named hosts that were not
 * kept (MX_MAX_HOSTS, DNS_MAX_RR): one of them may, so "A is no MX
 * host's address" is not known (DANE counts them likewise: unkept).
 */
static int
unkept_owner(struct policy_req *r)
{
	const struct mx_result *m = mx_view(r);

	return m != NULL && m->nunkept > 0;
}

/* MTA-STS enforce: verify for H, or defer. */
static void
sts_enforce(struct policy_req *r, const struct sts_policy *sp)
{
	struct policy_verdict *v = r->v;
	const char *mxfail;
	char names[1][256];

	v->source = "mta-sts";
	r->rpt_kind = RPT_STS;
	if (v->mx_host[0] == '\0') {
		mxfail = mx_lookup_failure(r);
		if (r->have_dst && mx_result_local(mx_view(r))) {
			/* the resolver could not be asked (c-ares says
			 * "refused"): nothing of D's hosts is known, and the
			 * failure is this gateway's, not D's to be told of */
			int e = 0;

			(void)dns_local_failures(r->pol->dns, &e);
			defer(r, "mta-sts", "local-error", "the MX hosts of %s "
			    "could not be looked up for want of local "
			    "resources (%s) (MTA-STS enforce)", v->domain,
			    e ? strerror(e) : "no socket, buffer or memory");
			v->local = 1;
			return;
		}
		if (r->have_dst && mxfail == NULL && unkept_owner(r)) {
			/* an MX host past those looked up (MX_MAX_HOSTS)
			 * may own A: unknown, not a failure of D's */
			defer(r, "mta-sts", "local-error", "%s is not an "
			    "address of the %d MX hosts of %s that mxguard "
			    "looks up, and %d more were not: one of them may "
			    "own it (MTA-STS enforce)", r->dststr,
			    mx_view(r)->nhost, v->domain,
			    mx_view(r)->nunkept);
			v->local = 1;
			return;
		}
		if (!r->have_dst)
			defer(r, "mta-sts", "validation-failure", "no "
			    "destination address to match against the MX "
			    "hosts of %s (MTA-STS enforce)", v->domain);
		else
			defer(r, "mta-sts", "validation-failure", "%s%s%s is "
			    "not an address of any MX host of %s (MTA-STS "
			    "enforce)", mxfail ? mxfail : "",
			    mxfail ? ": " : "", r->dststr, v->domain);
		return;
	}
	if (!sts_policy_match(sp, v->mx_host) && sp->mx_over > 0) {
		/* H may be in a pattern past those kept (sts.h): not known
		 * to be allowed, and not known to be refused either, so
		 * deferred as this gateway's limit, not reported */
		defer(r, "mta-sts", "local-error", "MX host %s matches none "
		    "of the first %d mx patterns of the MTA-STS policy of %s, "
		    "and mxguard keeps no more: %d not checked", v->mx_host,
		    sp->nmx, v->domain, sp->mx_over);
		v->local = 1;
		return;
	}
	if (!sts_policy_match(sp, v->mx_host)) {
		defer(r, "mta-sts", "validation-failure", "MX host %s is not "
		    "in the MTA-STS policy of %s", v->mx_host, v->domain);
		return;
	}
	snprintf(v->detail, sizeof(v->detail), "MX host %s matches the "
	    "MTA-STS policy of %s", v->mx_host, v->domain);
	v->level = TLS_LEVEL_VERIFY;
	snprintf(names[0], 256, "%s", v->mx_host);
	if (verdict_names(r->pol, v, 1, names) == -1)
		defer(r, "mta-sts", "validation-failure", "out of memory");
}

/*
 * MTA-STS testing (RFC 8461 section 5): the policy's check is evaluated
 * and reported, never enforced.  The verdict keeps the level that applies
 * without the policy (set by the caller: may or require_tls's encrypt,
 * then the TLS history): a testing policy never weakens it, and never
 * makes it verify.  The names (H) go into v->tls so that the session can
 * report the certificate check; a failure known already (H not in the
 * policy, A no MX host's address) is in reason.
 */
static void
sts_testing(struct policy_req *r, const struct sts_policy *sp)
{
	struct policy_verdict *v = r->v;
	char names[1][256];

	r->rpt_kind = RPT_STS;
	if (v->mx_host[0] == '\0' && r->have_dst &&
	    mx_result_local(mx_view(r))) {
		/* the check could not be made (the resolver was not asked):
		 * nothing to report of D, and nothing to enforce either */
		snprintf(v->detail, sizeof(v->detail), "the MX hosts of %s "
		    "could not be looked up for want of local resources "
		    "(MTA-STS testing: not reported)", v->domain);
		v->local = 1;
		(void)verdict_names(r->pol, v, 0, names);
		return;
	}
	if (v->mx_host[0] == '\0' && r->have_dst &&
	    mx_lookup_failure(r) == NULL && unkept_owner(r)) {
		snprintf(v->detail, sizeof(v->detail), "%s is not an address "
		    "of the %d MX hosts of %s that mxguard looks up, and %d "
		    "more were not (MTA-STS testing: not reported)",
		    r->dststr, mx_view(r)->nhost, v->domain,
		    mx_view(r)->nunkept);
		v->local = 1;
		(void)verdict_names(r->pol, v, 0, names);
		return;
	}
	if (v->mx_host[0] == '\0') {
		snprintf(v->reason, sizeof(v->reason), "validation-failure");
		snprintf(v->detail, sizeof(v->detail), "%s is not an address "
		    "of any MX host of %s (MTA-STS testing: reported only)",
		    r->dststr, v->domain);
		(void)verdict_names(r->pol, v, 0, names);
		return;
	}
	if (!sts_policy_match(sp, v->mx_host) && sp->mx_over > 0) {
		snprintf(v->detail, sizeof(v->detail), "MX host %s matches "
		    "none of the first %d mx patterns of the MTA-STS policy of "
		    "%s, and mxguard keeps no more: %d not checked (testing: "
		    "not reported)", v->mx_host, sp->nmx, v->domain,
		    sp->mx_over);
		v->local = 1;
		(void)verdict_names(r->pol, v, 0, names);
		return;
	}
	if (!sts_policy_match(sp, v->mx_host)) {
		snprintf(v->reason, sizeof(v->reason), "validation-failure");
		snprintf(v->detail, sizeof(v->detail), "MX host %s is not in "
		    "the MTA-STS policy of %s (testing: reported only)",
		    v->mx_host, v->domain);
	} else
		snprintf(v->detail, sizeof(v->detail), "MX host %s matches "
		    "the MTA-STS policy of %s (testing: reported only)",
		    v->mx_host, v->domain);
	snprintf(names[0], 256, "%s", v->mx_host);
	(void)verdict_names(r->pol, v, 1, names);
}

static void
check_done(struct policy_req *r)
{
	if (r->decided)
		return;
	if (r->mx == NULL)
		return;
	if (r->sts && !r->sts_done)
		return;
	if (r->dane_wanted && r->dane == NULL && !r->dane_failed)
		return;
	/* bounded by redis_timeout, below policy_timeout */
	if (r->rs_sts != NULL || r->rs_hist != NULL || r->rs_host != NULL)
		return;
	decide(r);
}

static void
req_timeout(void *arg)
{
	struct policy_req *r = arg;

	if (r->sts && !r->sts_done && r->fetch != NULL &&
	    !r->refetch_expired) {
		snprintf(r->fetch_reason, sizeof(r->fetch_reason),
		    "sts-policy-fetch-error");
		snprintf(r->fetch_err, sizeof(r->fetch_err), "policy fetch "
		    "still running at policy_timeout");
	}
	log_warn("event=policy-timeout domain=%s dst=%s", r->v->domain,
	    r->dststr);
	decide(r);
}

/* ---- MX and addresses ---- */

static void redis_host_ask(struct policy_req *);

static void
on_walk(void *arg, struct mx_result *m)
{
	struct policy_req *r = arg;

	r->walk = NULL;
	r->mx = m;
	redis_host_ask(r);
	if (r->dane_wanted && (r->daneq = dane_lookup(r->pol->loop,
	    r->pol->dns, m, (struct sockaddr *)&r->dst, on_dane, r)) == NULL)
		r->dane_failed = 1;
	check_done(r);
}

/* ---- MTA-STS ---- */

static void fetch_done(void *arg, int ok, const char *body, size_t len,
    const char *kind, const char *err);

static void
fetch_free(struct fetch *f)
{
	struct fetch **pp;

	for (pp = &f->pol->fetches; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	while (f->waiters != NULL) {
		struct policy_req *r = f->waiters;

		f->waiters = r->fnext;
		r->fetch = NULL;
	}
	http_cancel(f->http);
	free(f);
}

/*
 * Does f run through the CA store and resolver in force?  One that
 * started before a reload runs on through the ones it replaced (a CA
 * bundle without the policy host's root, a resolver that failed its
 * name: what the operator may have reloaded to fix), and the reload's
 * serve every fetch from then on (lookup_backoffs_end()).
 */
static int
fetch_current(const struct policy *p, const struct fetch *f)
{
	return f->store_gen == p->store_gen;
}

/*
 * The fetch of domain under id that a lookup or a refresh joins: only one
 * through the CA store and resolver in force.  A lookup that joined one
 * begun before a reload got what the replaced ones gave: a failure there
 * left the domain's new policy unfetched (the cached one, or none at first
 * contact, decided), for as long as that fetch ran (sts_fetch_timeout, an
 * attacker on the path can hold it that long), where the reload's store
 * would have fetched it.  The older fetch runs on for its own lookups.
 */
static struct fetch *
fetch_find(struct policy *p, const char *domain, const char *id)
{
	struct fetch *f;

	for (f = p->fetches; f != NULL; f = f->next)
		if (fetch_current(p, f) && strcmp(f->domain, domain) == 0 &&
		    strcmp(f->id, id) == 0)
			return f;
	return NULL;
}

static struct fetch *
fetch_start(struct policy *p, const char *domain, const char *id)
{
	struct fetch *f;
	char host[300];

	if ((f = fetch_find(p, domain, id)) != NULL)
		return f;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->pol = p;
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
	snprintf(f->id, sizeof(f->id), "%s", id);
	f->started = clock_now();
	f->store_gen = p->store_gen;
	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	f->http = http_get(p->loop, p->dns, p->ctx, host,
	    "/.well-known/mta-sts.txt", p->fetch_timeout, p->max_body,
	    p->mark, fetch_done, f);
	if (f->http == NULL) {
		free(f);
		return NULL;
	}
	f->next = p->fetches;
	p->fetches = f;
	log_info("event=sts-fetch-start domain=%s id=%s", domain, id);
	return f;
}

/* Fetches that count against FETCH_DETACHED_MAX. */
static int
fetches_detached(const struct policy *p)
{
	const struct fetch *f;
	int n = 0;

	for (f = p->fetches; f != NULL; f = f->next)
		if (f->waiters == NULL && !f->background)
			n++;
	return n;
}

/* A fetch of domain under id that nobody waits for, past
 * FETCH_DETACHED_MAX: not started (f NULL), or f cancelled; logged and
 * counted. */
static void
fetch_shed(struct policy *p, const char *domain, const char *id,
    struct fetch *f)
{
	log_info("event=sts-fetch-shed domain=%s id=%s action=%s limit=%d "
	    "note=\"too many fetches nobody waits for; the cached policy "
	    "stays\"", domain, id, f != NULL ? "cancelled" : "not-started",
	    FETCH_DETACHED_MAX);
	stats_add(stats_get("mxguard_sts_fetches_shed_total", "MTA-STS "
	    "fetches nobody waited for, not started or cancelled past the "
	    "bound"), 1);
	if (f != NULL)
		fetch_free(f);
}

/* The end of one background refresh: logged and counted. */
static void
refresh_result(const char *domain, const char *id, const char *result,
    const char *reason, uint32_t max_age)
{
	char name[100];

	if (reason == NULL)
		log_info("event=sts-refresh-background domain=%s id=%s "
		    "result=%s max_age=%u", domain, id, result, max_age);
	else
		log_warn("event=sts-refresh-background domain=%s id=%s "
		    "result=%s reason=%s note=\"the cached policy stays\"",
		    domain, id, result, reason);
	snprintf(name, sizeof(name), "mxguard_sts_refresh_background_total"
	    "{result=\"%s\"}", result);
	stats_add(stats_get(name, "MTA-STS policies refreshed by the "
	    "background timer"), 1);
}

static struct bgfail **
bgfail_find(struct policy *p, const char *domain)
{
	struct bgfail **pp;

	for (pp = &p->bgfails; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->domain, domain) == 0)
			return pp;
	return NULL;
}

/* The domain's record, unlinked (a new one if it had none; NULL when out
 * of memory): bgfail_put() links it first again. */
static struct bgfail *
bgfail_take(struct policy *p, const char *domain)
{
	struct bgfail **pp = bgfail_find(p, domain), *bf;

	if (pp != NULL) {
		bf = *pp;
		*pp = bf->next;
		p->nbgfails--;
		return bf;
	}
	if ((bf = calloc(1, sizeof(*bf))) == NULL)
		return NULL;
	snprintf(bf->domain, sizeof(bf->domain), "%s", domain);
	return bf;
}

static void
bgfail_put(struct policy *p, struct bgfail *bf)
{
	struct bgfail **pp;

	bf->next = p->bgfails;
	p->bgfails = bf;
	if (++p->nbgfails > BG_FAILS_MAX) {
		/* the oldest goes */
		for (pp = &p->bgfails; (*pp)->next != NULL; pp = &(*pp)->next)
			;
		free(*pp);
		*pp = NULL;
		p->nbgfails--;
	}
}

/* A background refresh of domain ended: ok forgets its failures (and the
 * back-offs below), else one more sets the rounds it sits out (struct
 * bgfail). */
static void
bgfail_note(struct policy *p, const char *domain, int ok)
{
	struct bgfail **pp, *bf;

	if (ok) {
		if ((pp = bgfail_find(p, domain)) != NULL) {
			bf = *pp;
			*pp = bf->next;
			p->nbgfails--;
			free(bf);
		}
		return;
	}
	if ((bf = bgfail_take(p, domain)) == NULL)
		return;
	if (bf->fails < 31)
		bf->fails++;
	/* 1, 2, 4, then BG_SKIP_MAX rounds; the next round's start counts
	 * one off before it looks */
	bf->skip = (bf->fails < 4 ? 1u << (bf->fails - 1) : BG_SKIP_MAX) + 1;
	bgfail_put(p, bf);
}

/* A fetch under a new TXT id failed while the domain had a valid cached
 * policy: lookups of it fetch none under a new id for REFETCH_BACKOFF_S,
 * doubling with each such failure to REFETCH_BACKOFF_MAX_S.  Its own
 * count: the background refresh does not sit out rounds for it. */
static void
newid_failed(struct policy *p, const char *domain)
{
	struct bgfail *bf;
	int64_t wait;

	if ((bf = bgfail_take(p, domain)) == NULL)
		return;
	if (bf->newid_fails < 31)
		bf->newid_fails++;
	wait = (int64_t)REFETCH_BACKOFF_S << (bf->newid_fails > 5 ? 5 :
	    bf->newid_fails - 1);
	if (wait > REFETCH_BACKOFF_MAX_S)
		wait = REFETCH_BACKOFF_MAX_S;
	bf->newid_at = clock_now() + wait;
	bgfail_put(p, bf);
}

/* A reload replaced the resolver and the CA store: the lookups' back-offs
 * (newid_failed(), refetch_result()) end, as their failures came through
 * the old ones (a CA bundle without the policy host's root, a resolver
 * that failed its name: what the operator may have reloaded to fix), and
 * a reload's are used at once by every fetch that starts after it
 * (retired_free()).  Kept, a back-off (up to REFETCH_BACKOFF_MAX_S) went
 * on letting the older cached policy decide without a fetch, where the
 * domain's new id may name a stricter one, or, after a failed refetch of
 * an expired policy, left the domain's lookups with none.  The counts
 * stay: a fetch that fails again backs off for the next step. */
static void
lookup_backoffs_end(struct policy *p)
{
	struct bgfail *bf;

	for (bf = p->bgfails; bf != NULL; bf = bf->next) {
		bf->newid_at = 0;
		bf->refetch_at = 0;
	}
}

/*
 * A valid policy of D is cached and the TXT record names another id: a
 * fetch under it, and the lookup waits for it (up to sts_fetch_timeout),
 * unless one failed within the domain's back-off (newid_failed()): then
 * the cached policy decides at once, as it would after the fetch failed
 * (RFC 8461 section 3.3: a valid cached policy applies when no live one
 * can be fetched; and it suggests no new try for five minutes or longer
 * after a failed GET).  Without it, an attacker on the path who writes a
 * new id into every TXT answer of an unsigned zone and stalls the policy
 * host made every lookup of D start a fetch and wait for it: every
 * message to D waited, each holding a session, and the policy host got
 * a fetch per message (a domain's own new id with its policy host down
 * did the same, for as long as that lasted).  The background refresh
 * still runs (its own rounds, no round sat out for this), any fetch
 * of D that works ends the back-off (bgfail_note()), and so does a
 * reload (lookup_backoffs_end()).  Nothing valid
 * cached: no back-off, every lookup fetches (there is no policy to
 * decide at once, and skipping the fetch could only lose one).
 * Likewise while such a fetch of D runs under another new id: the
 * attacker's answers carry a new id each with a TTL of 0, so lookups
 * that overlap share no fetch (one under the same id still shares it),
 * and before the first one failed each lookup started one and waited.
 * 1 when the cached policy decides at once.
 */
static int
newid_backoff(struct policy_req *r)
{
	struct bgfail **pp = bgfail_find(r->pol, r->v->domain);
	struct fetch *f;

	/* (one through a CA store a reload replaced holds nothing back:
	 * fetch_find()) */
	for (f = r->pol->fetches; f != NULL; f = f->next)
		if (f->newid && fetch_current(r->pol, f) &&
		    strcmp(f->domain, r->v->domain) == 0 &&
		    strcmp(f->id, r->txt_id) != 0) {
			log_info("event=sts-fetch-backoff domain=%s id=%s "
			    "cached_id=%s running_id=%s note=\"a fetch under "
			    "another new TXT id runs: the cached policy "
			    "decides\"", r->v->domain, r->txt_id,
			    r->cached.id, f->id);
			goto backoff;
		}
	if (pp == NULL || (*pp)->newid_at <= clock_now())
		return 0;
	log_info("event=sts-fetch-backoff domain=%s id=%s cached_id=%s "
	    "retry_in=%llds note=\"a fetch under a new TXT id failed lately: "
	    "the cached policy decides\"", r->v->domain, r->txt_id,
	    r->cached.id, (long long)((*pp)->newid_at - clock_now()));
backoff:
	stats_add(stats_get("mxguard_sts_new_id_backoff_total", "Lookups "
	    "that a valid cached MTA-STS policy decided at once, a fetch "
	    "under a new TXT id having failed lately or one under another "
	    "new id running"), 1);
	return 1;
}

static void
sts_resolved(struct policy_req *r)
{
	r->sts_done = 1;
	check_done(r);
}

static void
refetch_count(const char *result)
{
	char name[100];

	snprintf(name, sizeof(name), "mxguard_sts_refetch_expired_total"
	    "{result=\"%s\"}", result);
	stats_add(stats_get(name, "Fetches of expired MTA-STS policies while "
	    "the TXT lookup failed or found no record"), 1);
}

/* A refetch of an expired policy ended (after bgfail_note()): counted; a
 * failure starts or lengthens the domain's back-off. */
static void
refetch_result(struct policy *p, const char *domain, int ok)
{
	struct bgfail **pp;
	int64_t wait;

	refetch_count(ok ? "ok" : "error");
	if (ok || (pp = bgfail_find(p, domain)) == NULL)
		return;
	/* fails: this one and the domain's earlier ones (>= 1) */
	wait = (int64_t)REFETCH_BACKOFF_S << ((*pp)->fails > 5 ? 5 :
	    (*pp)->fails - 1);
	if (wait > REFETCH_BACKOFF_MAX_S)
		wait = REFETCH_BACKOFF_MAX_S;
	(*pp)->refetch_at = clock_now() + wait;
}

/*
 * The TXT lookup failed or found no (valid) record, and no valid policy
 * is cached, but an expired one is: fetch under its id, and the lookup
 * waits (within policy_timeout) as for a new TXT id.  An attacker who
 * fails the TXT query of a domain whose policy nobody used for a max_age
 * (so no refresh kept it) must not get "no policy" while the policy host
 * still serves one.  This only adds a policy: the fetched one is the
 * domain's own (HTTPS, WebPKI), a failed fetch leaves the lookup as it
 * was (RFC 8461: an expired policy is no policy), and a valid cached
 * policy never gets here.  No fetch for a domain with nothing cached (it
 * would fetch for every domain whose TXT lookup fails); one per domain at
 * a time (fetch_start() shares it); after a failed one, none for the
 * domain's back-off (refetch_result(); a reload ends it:
 * lookup_backoffs_end()).  1 when the lookup waits.
 */
static int
refetch_expired(struct policy_req *r)
{
	struct policy *p = r->pol;
	const char *txt = r->txt_rc == 0 ? "none" : r->txt_rc == -1 ?
	    "invalid" : "lookup-failed";
	struct bgfail **pp;
	struct fetch *f;

	if (!r->have_cached || r->cached_state != STS_CACHE_EXPIRED ||
	    r->txt_rc == 1)
		return 0;
	if ((pp = bgfail_find(p, r->v->domain)) != NULL &&
	    (*pp)->refetch_at > clock_now()) {
		log_info("event=sts-refetch-expired domain=%s id=%s txt=%s "
		    "result=backoff retry_in=%llds note=\"a fetch under this "
		    "id failed lately: no policy\"", r->v->domain,
		    r->cached.id, txt,
		    (long long)((*pp)->refetch_at - clock_now()));
		refetch_count("backoff");
		return 0;
	}
	if ((f = fetch_start(p, r->v->domain, r->cached.id)) == NULL) {
		log_warn("event=sts-refetch-expired domain=%s id=%s txt=%s "
		    "result=error reason=cannot-start", r->v->domain,
		    r->cached.id, txt);
		refetch_count("error");
		r->fetch_local = 1;	/* out of memory */
		return 0;
	}
	log_info("event=sts-refetch-expired domain=%s id=%s txt=%s "
	    "expired_ago=%llds note=\"fetching the expired cached policy "
	    "under its id; the lookup waits\"", r->v->domain, r->cached.id,
	    txt, (long long)(clock_now() - r->cached.expires));
	f->expired = 1;
	r->refetch_expired = 1;
	r->fetch = f;
	r->fnext = f->waiters;
	f->waiters = r;
	return 1;
}

static void
fetch_done(void *arg, int ok, const char *body, size_t len,
    const char *kind, const char *err)
{
	struct fetch *f = arg;
	struct policy *p = f->pol;
	struct sts_policy *sp = NULL;
	char perr[160], qe[300], lbuf[256];
	const char *reason = kind;
	int local = ok != 0 && kind != NULL &&
	    strcmp(kind, HTTP_LOCAL_ERROR) == 0, noted;

	f->http = NULL;
	if (ok == 0) {
		if ((sp = malloc(sizeof(*sp))) == NULL) {
			ok = -1;
			reason = HTTP_LOCAL_ERROR;
			local = 1;
			err = "out of memory";
		} else if (sts_policy_parse(body, len, sp, perr,
		    sizeof(perr)) == -1) {
			ok = -1;
			reason = "sts-policy-invalid";
			err = perr;
		}
	}
	if (ok == 0) {
		struct sts_cache_entry e;
		int64_t now = clock_now();

		memset(&e, 0, sizeof(e));
		snprintf(e.id, sizeof(e.id), "%s", f->id);
		/* when the fetch started: of overlapping fetches, the last
		 * one started wins in the cache (and in Redis), whichever
		 * ends last (sts_cache_put) */
		e.fetched = f->started;
		e.checked = now;
		e.expires = f->started + sp->max_age;
		e.body = (char *)body;
		e.bodylen = len;
		if (p->cache != NULL && f->background && f->waiters == NULL) {
			struct sts_cache_entry old;

			/* nobody used the policy for this fetch: it stays
			 * as recently used as it was, or a refresh would
			 * keep it "recently used" for ever */
			if (sts_cache_get(p->cache, f->domain, &old) == 1) {
				e.last_used = old.last_used;
				sts_cache_entry_clear(&old);
			}
		}
		/* write-through: what this gateway fetched and keeps,
		 * another one may use where it has nothing.  Not a policy
		 * fetched through a CA store a reload replaced: the reload
		 * may have removed the CA that let it pass (a distrusted
		 * one, an attacker's certificate from it on the policy
		 * host), and kept, it would decide every lookup of the
		 * domain under that id for up to max_age; the lookups that
		 * started before the reload use it, as they use the rest of
		 * what they started with, and the next lookup fetches
		 * again through the reload's store */
		if (!fetch_current(p, f))
			log_info("event=sts-fetch-not-kept domain=%s id=%s "
			    "note=\"fetched through a CA store a reload "
			    "replaced: used by the lookups under way, not "
			    "cached\"", f->domain, f->id);
		else if (p->cache == NULL || sts_cache_put(p->cache,
		    f->domain, &e) == 0)
			redis_sts_put(p->rs, f->domain, &e);
		/* lenient=: what the file got wrong that mxguard let pass
		 * (docs/policy.md), for the operator to tell the domain */
		log_info("event=sts-fetch domain=%s id=%s result=ok mode=%s "
		    "max_age=%u mx_patterns=%d%s%s", f->domain, f->id,
		    sts_mode_name(sp->mode), sp->max_age, sp->nmx,
		    sp->lenient ? " lenient=" : "", sp->lenient ?
		    sts_lenient_names(sp->lenient, lbuf, sizeof(lbuf)) : "");
		if (sp->mx_over > 0)
			log_warn("event=sts-mx-patterns-dropped domain=%s "
			    "id=%s kept=%d dropped=%d note=\"an MX host only "
			    "the dropped patterns list is deferred\"",
			    f->domain, f->id, sp->nmx, sp->mx_over);
		stats_add(stats_get("mxguard_sts_fetches_total{result=\"ok\"}",
		    "MTA-STS policy fetches"), 1);
	} else {
		/* result=local-error: this gateway's trouble, counted apart
		 * from the domain's failures */
		log_warn("event=sts-fetch domain=%s id=%s result=%s "
		    "reason=%s detail=%s", f->domain, f->id, local ?
		    "local-error" : "error", reason,
		    log_q(qe, sizeof(qe), err ? err : "-"));
		stats_add(stats_get(local ?
		    "mxguard_sts_fetches_total{result=\"local-error\"}" :
		    "mxguard_sts_fetches_total{result=\"error\"}",
		    "MTA-STS policy fetches"), 1);
	}
	if (f->background)
		refresh_result(f->domain, f->id, ok == 0 ? "ok" : local ?
		    "local-error" : "error", ok == 0 ? NULL : reason,
		    ok == 0 ? sp->max_age : 0);
	/* any fetch that worked ends the domain's sitting out; one this
	 * gateway could not make says nothing of the domain: no sitting
	 * out, no back-off (the next round or lookup tries again); nor
	 * does one that failed through a CA store and resolver a reload
	 * replaced since: the reload ended the back-offs such failures
	 * began (lookup_backoffs_end()), and one that ends after it must
	 * not begin one anew, the older cached policy (or none) deciding
	 * without a fetch through the reload's */
	noted = !local && (ok == 0 || fetch_current(p, f));
	if ((f->background || f->expired || ok == 0) && noted)
		bgfail_note(p, f->domain, ok == 0);
	if (f->expired && noted)
		refetch_result(p, f->domain, ok == 0);
	if (f->newid && ok != 0 && noted)
		newid_failed(p, f->domain);
	while (f->waiters != NULL) {
		struct policy_req *r = f->waiters;

		f->waiters = r->fnext;
		r->fetch = NULL;
		r->fetch_local = local;
		if (ok == 0) {
			if ((r->fresh = malloc(sizeof(*r->fresh))) != NULL) {
				*r->fresh = *sp;
				snprintf(r->fresh_id, sizeof(r->fresh_id), "%s",
				    f->id);
				r->fresh_started = f->started;
			} else {
				/* the host served its policy, and this
				 * lookup has no memory for it: unless the
				 * cache kept it (cache_reread()), nothing
				 * of the domain's policy is known, and
				 * deciding without it would deliver below
				 * it (decide() defers) */
				r->fetch_local = 1;
				snprintf(r->fetch_reason,
				    sizeof(r->fetch_reason), "%s",
				    HTTP_LOCAL_ERROR);
				snprintf(r->fetch_err, sizeof(r->fetch_err),
				    "out of memory for the policy fetched");
			}
		} else if (!r->refetch_expired || local) {
			/* (a failed refetch of an expired policy leaves the
			 * lookup as it would be without it: no policy) */
			snprintf(r->fetch_reason, sizeof(r->fetch_reason),
			    "%s", reason);
			snprintf(r->fetch_err, sizeof(r->fetch_err), "%s",
			    err ? err : "");
		}
		sts_resolved(r);
	}
	free(sp);
	fetch_free(f);
}

/*
 * sts_txt_select() over a whole _mta-sts answer, the records past those
 * an answer keeps (DNS_MAX_RR, 64) included (dns_txt_cut()): a v=STSv1
 * record past the 64th is the domain's as much as one before it, and
 * the kept part alone cannot tell one record (whose new id must be
 * fetched at once: a domain that moved its MX or went to enforce) from
 * two (no valid record: a cached policy stands).  -3 when a record past
 * the kept could not be read (out of memory, malformed): the caller
 * reads the answer as cut (sts_step(), r->txt_cut).
 */
static int
txt_select_whole(const struct dns_answer *a, char id[STS_ID_MAX + 1],
    unsigned *lenient, char *err, size_t errsz)
{
	struct dns_txt_all w;
	int rc = -3;

	if (dns_txt_all(a, &w) == 0)
		rc = sts_txt_select(w.txt, w.len, w.n, id, lenient, err,
		    errsz);
	dns_txt_all_free(&w);
	return rc;
}

static void
sts_step(struct policy_req *r)
{
	struct policy *p = r->pol;
	int valid = r->have_cached && r->cached_state != STS_CACHE_EXPIRED;
	struct fetch *f;

	/*
	 * One v=STSv1 record among the kept of a cut answer (txt_cut): a
	 * second past them would make the domain's record invalid (RFC
	 * 8461 section 3.1), which leaves a cached policy in force.  So a
	 * cached one stands, as for a failed lookup; with none cached the
	 * record's policy is fetched, as the whole answer of one record
	 * would have it: never less than either reading of the answer.
	 */
	if (valid && (r->txt_rc != 1 || r->txt_cut > 0 ||
	    strcmp(r->txt_id, r->cached.id) == 0)) {
		/* the cached policy stands (also when DNS fails or the
		 * record disappeared); refresh near expiry in background,
		 * also when the TXT lookup failed or found no record (then
		 * under the cached id): RFC 8461 section 5.1, and an
		 * attacker who suppresses the TXT record must not make the
		 * policy run out.  A failed fetch leaves the cache alone. */
		if (r->cached_state == STS_CACHE_REFRESH) {
			int own = r->txt_rc == 1 && r->txt_cut == 0;

			if (!own)
				log_info("event=sts-refresh domain=%s id=%s "
				    "txt=%s note=\"refreshing under the cached "
				    "id\"", r->v->domain, r->cached.id,
				    r->txt_cut > 0 ? "truncated" :
				    r->txt_rc == 0 ? "none" : r->txt_rc == -1 ?
				    "invalid" : "lookup-failed");
			const char *id = own ? r->txt_id : r->cached.id;

			if (fetch_find(p, r->v->domain, id) == NULL &&
			    fetches_detached(p) >= FETCH_DETACHED_MAX)
				fetch_shed(p, r->v->domain, id, NULL);
			else
				(void)fetch_start(p, r->v->domain, id);
		}
		/* marked used when it decides (decide()) */
		sts_resolved(r);
		return;
	}
	if (r->txt_rc != 1) {
		if (r->txt_rc == -1) {
			snprintf(r->fetch_reason, sizeof(r->fetch_reason),
			    "sts-policy-invalid");
			char q[300];

			log_info("event=sts-txt domain=%s result=invalid "
			    "detail=%s", r->v->domain,
			    log_q(q, sizeof(q), r->txt_err));
		}
		if (!refetch_expired(r))
			sts_resolved(r);	/* no policy */
		return;
	}
	/* a new id with a valid cached policy, within the back-off of a
	 * failed fetch: the cached policy decides at once */
	if (valid && newid_backoff(r)) {
		sts_resolved(r);
		return;
	}
	/* no valid cached policy, or a new id: fetch and wait; a record
	 * taken outside the ABNF is named once a fetch, for the operator
	 * to tell the domain */
	if (r->txt_lenient != 0) {
		char lbuf[128];

		log_info("event=sts-txt domain=%s id=%s result=ok lenient=%s",
		    r->v->domain, r->txt_id, sts_lenient_names(r->txt_lenient,
		    lbuf, sizeof(lbuf)));
	}
	if ((f = fetch_start(p, r->v->domain, r->txt_id)) == NULL) {
		snprintf(r->fetch_reason, sizeof(r->fetch_reason),
		    "sts-policy-fetch-error");
		snprintf(r->fetch_err, sizeof(r->fetch_err), "cannot start");
		r->fetch_local = 1;	/* out of memory */
		sts_resolved(r);
		return;
	}
	if (valid)
		f->newid = 1;
	r->fetch = f;
	r->fnext = f->waiters;
	f->waiters = r;
}

static void
on_txt(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct policy_req *r = arg;
	const char *txts[DNS_MAX_RR];
	size_t lens[DNS_MAX_RR];
	int i, n = 0;

	r->txtq = NULL;
	r->txt_done = 1;
	r->txt_st = st;
	r->txt_rc = 0;
	r->txt_cut = 0;
	if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE) &&
	    a->ndropped > 0 && (r->txt_rc = txt_select_whole(a, r->txt_id,
	    &r->txt_lenient, r->txt_err, sizeof(r->txt_err))) != -3) {
		/* more records than an answer keeps, all read */
	} else if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE)) {
		for (i = 0; i < a->nrr; i++) {
			txts[n] = a->rr[i].u.txt.text;
			lens[n++] = a->rr[i].u.txt.len;
		}
		r->txt_rc = sts_txt_select(txts, lens, n, r->txt_id,
		    &r->txt_lenient, r->txt_err, sizeof(r->txt_err));
		/* more records than kept, and those past them could not be
		 * read (txt_select_whole()): the unseen ones may hold a
		 * v=STSv1 record.  Several (or a malformed one) among the
		 * kept are invalid whatever the rest say; none is a failed
		 * lookup, not "no record"; one is read in sts_step() */
		if ((r->txt_cut = a->ndropped) > 0 && r->txt_rc == 0) {
			r->txt_rc = -2;
			snprintf(r->txt_err, sizeof(r->txt_err), "TXT lookup: "
			    "%d records, more than the %d kept", a->nrr +
			    a->ndropped, DNS_MAX_RR);
		}
		if (r->txt_cut > 0)
			log_info("event=sts-txt domain=%s result=truncated "
			    "records=%d kept=%d stsv1_kept=%s", r->v->domain,
			    a->nrr + a->ndropped, a->nrr, r->txt_rc == 1 ?
			    "one" : r->txt_rc == -1 ? "invalid" : "none");
	} else if (st != DNS_NXDOMAIN && st != DNS_NODATA) {
		int e = 0;
		uint64_t drops;

		r->txt_rc = -2;		/* lookup failed */
		snprintf(r->txt_err, sizeof(r->txt_err), "TXT lookup: %s",
		    dns_status_name(st));
		/* the resolver could not open its socket or send meanwhile
		 * (c-ares says "refused", as for a server's refusal; or
		 * DNS_LOCAL), or conntrack dropped packets here (its table
		 * full: a query over TCP, or an answer, lost as if the
		 * server had not answered; ctstat.h): no answer that says
		 * anything of the domain (decide() defers) */
		if (dns_local_failures(r->txt_dns, &e) != r->txt_local0 ||
		    st == DNS_LOCAL) {
			r->fetch_local = 1;
			snprintf(r->fetch_err, sizeof(r->fetch_err), "the "
			    "_mta-sts TXT lookup: the resolver could not send "
			    "its query: %s", e ? strerror(e) : "out of memory");
		} else if ((drops = ctstat_drops()) != r->txt_ct0) {
			r->fetch_local = 1;
			snprintf(r->fetch_err, sizeof(r->fetch_err), "the "
			    "_mta-sts TXT lookup: conntrack table full: %llu "
			    "packets dropped meanwhile",
			    (unsigned long long)(drops - r->txt_ct0));
		}
	}
	sts_step(r);
}

/*
 * _mta-sts.D and mta-sts.D must be DNS names (sts_dns_name_check(), the
 * check http.c makes too): a long D makes them longer than 253 octets.
 * Such a D can have no MTA-STS policy; the lookup counts as a fetch
 * error (RFC 8460 sts-policy-fetch-error), before any query, and a
 * policy cached under D (a cut name fetched it) is not used.  1 if so.
 */
static int
sts_names_refused(struct policy_req *r)
{
	char name[300], err[160], qe[200];
	const char *prefix[] = { "_mta-sts.", "mta-sts." };
	int i;

	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "%s%s", prefix[i], r->v->domain);
		if (sts_dns_name_check(name, err, sizeof(err)) == 0)
			continue;
		snprintf(r->fetch_reason, sizeof(r->fetch_reason),
		    "sts-policy-fetch-error");
		snprintf(r->fetch_err, sizeof(r->fetch_err), "%s%.40s... is not "
		    "a valid DNS name: %s", prefix[i], r->v->domain, err);
		log_warn("event=sts-name-invalid domain=%s name=%sDOMAIN "
		    "octets=%zu reason=sts-policy-fetch-error detail=%s",
		    r->v->domain, prefix[i], strlen(name),
		    log_q(qe, sizeof(qe), err));
		r->sts_done = 1;
		return 1;
	}
	return 0;
}

/* ---- background refresh ----
 *
 * Every sts_refresh_interval (each period drawn from 90 to 110 % of it, so
 * that several instances do not fetch in step), the cache is asked for the
 * policies within sts_refresh_margin of their expiry and used in a
 * decision during their last max_age (sts_cache_due()), at most
 * sts_refresh_max of them, soonest to expire first.  Each one is refreshed
 * as a lookup would: the _mta-sts TXT record first, then a fetch under the
 * id it names, or under the cached id when it is missing or its lookup
 * fails (RFC 8461 section 5.1).  fetch_done() stores a fetched policy; a
 * failed fetch leaves the cached one as it is.  A round starts nothing for
 * a domain whose refresh or fetch still runs, so at most sts_refresh_max
 * background fetches are started per interval.  A domain whose background
 * refresh failed sits out the next rounds (struct bgfail), and the next
 * due ones take its place.
 */

static void
bgref_free(struct bgref *b)
{
	struct bgref **pp;

	for (pp = &b->pol->bgrefs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	dns_cancel(b->q);
	free(b);
}

static void
refresh_arm(struct policy *p)
{
	uint64_t ms = p->refresh_interval, j = 0;
	unsigned char rb[4];

	if (p->refresh_tmr == NULL)
		return;
	if (ms == 0) {
		ev_timer_stop(p->refresh_tmr);
		return;
	}
	if (RAND_bytes(rb, sizeof(rb)) == 1)
		j = ((uint64_t)rb[0] << 24 | (uint64_t)rb[1] << 16 |
		    (uint64_t)rb[2] << 8 | rb[3]) % (ms / 5 + 1);
	ev_timer_arm(p->refresh_tmr, ms - ms / 10 + j);
}

static void
bg_txt(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct bgref *b = arg;
	struct policy *p = b->pol;
	const char *txts[DNS_MAX_RR];
	size_t lens[DNS_MAX_RR];
	char id[STS_ID_MAX + 1], terr[128];
	struct fetch *f;
	int i, n = 0, rc = -2;

	b->q = NULL;
	if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE) &&
	    a->ndropped > 0 && (rc = txt_select_whole(a, id, NULL, terr,
	    sizeof(terr))) != -3) {
		/* more records than an answer keeps, all read */
	} else if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE)) {
		for (i = 0; i < a->nrr; i++) {
			txts[n] = a->rr[i].u.txt.text;
			lens[n++] = a->rr[i].u.txt.len;
		}
		rc = sts_txt_select(txts, lens, n, id, NULL, terr,
		    sizeof(terr));
		/* a cut answer (its records past the kept unread): the
		 * cached policy stands (sts_step()) */
		if (a->ndropped > 0 && rc != -1)
			rc = -3;
	}
	if (rc != 1) {
		log_info("event=sts-refresh domain=%s id=%s txt=%s "
		    "note=\"refreshing under the cached id\"", b->domain,
		    b->id, rc == -3 ? "truncated" : rc == 0 ||
		    st == DNS_NXDOMAIN || st == DNS_NODATA ? "none" :
		    rc == -1 ? "invalid" : "lookup-failed");
		snprintf(id, sizeof(id), "%s", b->id);
	}
	if ((f = fetch_start(p, b->domain, id)) != NULL)
		f->background = 1;
	else
		refresh_result(b->domain, id, "error", "cannot-start", 0);
	bgref_free(b);
}

static int
refresh_running(struct policy *p, const char *domain)
{
	struct bgref *b;
	struct fetch *f;

	for (b = p->bgrefs; b != NULL; b = b->next)
		if (strcmp(b->domain, domain) == 0)
			return 1;
	for (f = p->fetches; f != NULL; f = f->next)
		if (strcmp(f->domain, domain) == 0)
			return 1;
	return 0;
}

static void
refresh_round(void *arg)
{
	struct policy *p = arg;
	struct sts_cache_due *due;
	struct bgfail *bf;
	struct bgref *b;
	char name[300], err[160];
	size_t n, i, ncand;
	int started = 0;

	refresh_arm(p);
	if (!p->sts_enable || p->cache == NULL)
		return;
	for (bf = p->bgfails; bf != NULL; bf = bf->next)
		if (bf->skip > 0)
			bf->skip--;
	/* more candidates than places: those sitting out make room for the
	 * next ones to expire */
	ncand = (size_t)p->refresh_max + ((size_t)p->refresh_max * BG_SKIP_MAX <
	    BG_FAILS_MAX ? (size_t)p->refresh_max * BG_SKIP_MAX :
	    BG_FAILS_MAX);
	if ((due = calloc(ncand, sizeof(*due))) == NULL)
		return;
	n = sts_cache_due(p->cache, clock_now(), p->refresh_margin,
	    due, ncand);
	for (i = 0; i < n && started < p->refresh_max; i++) {
		struct bgfail **pp;

		if (refresh_running(p, due[i].domain))
			continue;
		if ((pp = bgfail_find(p, due[i].domain)) != NULL &&
		    (*pp)->skip > 0) {
			log_debug("event=sts-refresh-background-skip domain=%s "
			    "failures=%u rounds_left=%u", due[i].domain,
			    (*pp)->fails, (*pp)->skip);
			continue;
		}
		started++;
		snprintf(name, sizeof(name), "_mta-sts.%s", due[i].domain);
		if (sts_dns_name_check(name, err, sizeof(err)) == -1 ||
		    (b = calloc(1, sizeof(*b))) == NULL)
			continue;
		b->pol = p;
		b->gen = p->store_gen;
		snprintf(b->domain, sizeof(b->domain), "%s", due[i].domain);
		snprintf(b->id, sizeof(b->id), "%s", due[i].id);
		log_debug("event=sts-refresh-background-start domain=%s id=%s "
		    "expires_in=%lld", b->domain, b->id,
		    (long long)(due[i].expires - clock_now()));
		b->next = p->bgrefs;
		p->bgrefs = b;
		if ((b->q = dns_query(p->dns, name, DNS_T_TXT, bg_txt,
		    b)) == NULL) {
			refresh_result(b->domain, b->id, "error",
			    "cannot-start", 0);
			bgref_free(b);
		}
	}
	free(due);
}

unsigned long
policy_fd_need(const struct config *cfg)
{
	unsigned long n = DNS_SOCKETS_MAX;

	if (cfg->sts_enable)
		n += (unsigned long)HTTP_GET_TRIES_MAX *
		    ((unsigned long)cfg->max_sessions + FETCH_DETACHED_MAX +
		    (unsigned long)cfg->sts_refresh_max);
	return n;
}

/* ---- the shared store (policy/redis.c) ---- */

static void
on_redis_sts(void *arg, int rc, const struct sts_cache_entry *e)
{
	struct policy_req *r = arg;
	int64_t now = clock_now();

	r->rs_sts = NULL;
	if (rc == 1 && redis_sts_usable(r->have_cached ? &r->cached : NULL,
	    e, now)) {
		r->remote = *e;
		if ((r->remote.body = malloc(e->bodylen + 1)) != NULL) {
			memcpy(r->remote.body, e->body, e->bodylen + 1);
			r->have_remote = 1;
			log_info("event=sts-redis domain=%s id=%s mode=%s "
			    "age=%llds result=fallback note=\"used only if "
			    "this gateway finds no policy itself\"",
			    r->v->domain, e->id, sts_mode_name(e->pol.mode),
			    (long long)(now - e->fetched));
		} else
			memset(&r->remote, 0, sizeof(r->remote));
	} else if (rc == 1)
		log_info("event=sts-redis domain=%s id=%s mode=%s "
		    "result=ignored note=\"only an unexpired enforce policy "
		    "counts where this gateway has none\"", r->v->domain,
		    e->id, sts_mode_name(e->pol.mode));
	check_done(r);
}

/*
 * Another gateway's TLS history decides itself where the local one could
 * not take it in: this process runs without its history store (it failed
 * to open), or the store refused the merge (full of records that expect
 * TLS, an error).  Like history_apply(): may becomes encrypt.
 */
static void
remote_history_apply(struct policy_req *r)
{
	struct policy *p = r->pol;
	struct policy_verdict *v = r->v;
	const struct history_entry *e;
	int64_t now = clock_now();
	char qd[300], qh[300];

	if (v->level != TLS_LEVEL_MAY)
		return;
	if (r->have_rhist && history_expects_tls(&r->rhist, now,
	    p->hist_window)) {
		e = &r->rhist;
		snprintf(v->detail, sizeof(v->detail), "%s completed STARTTLS "
		    "%llds ago, seen by another gateway (shared history; "
		    "window %llds): TLS required", r->dststr,
		    (long long)(now - e->last_tls), (long long)p->hist_window);
	} else if (r->have_rhost && history_expects_tls(&r->rhost, now,
	    p->hist_window) && (v->mx_host[0] == '\0' ||
	    strcmp(v->mx_host, r->rhost_name) == 0)) {
		/* the host's own record: H, or (no host owns the address)
		 * the host whose address lookup failed (redis_host_ask()) */
		e = &r->rhost;
		snprintf(v->detail, sizeof(v->detail), "MX host %s completed "
		    "STARTTLS %llds ago, seen by another gateway (shared "
		    "history; window %llds), now at %s: TLS required",
		    r->rhost_name, (long long)(now - e->last_tls),
		    (long long)p->hist_window, r->dststr);
	} else
		return;
	v->level = TLS_LEVEL_ENCRYPT;
	v->source = "tls-history";
	log_info("event=tls-history domain=%s dst=%s mx=%s last_tls_age=%llds "
	    "window=%llds level=encrypt from=redis",
	    log_q(qd, sizeof(qd), v->domain), r->dststr,
	    log_q(qh, sizeof(qh), e == &r->rhost ? r->rhost_name : "-"),
	    (long long)(now - e->last_tls), (long long)p->hist_window);
}

static void
on_redis_hist(void *arg, int rc, const struct history_entry *e)
{
	struct policy_req *r = arg;
	struct policy *p = r->pol;
	int64_t now = clock_now();

	r->rs_hist = NULL;
	if (rc == 1 && history_expects_tls(e, now, p->hist_window)) {
		/* kept for this verdict whatever the local store does with
		 * it (remote_history_apply()) */
		r->rhist = *e;
		r->have_rhist = 1;
		if (history_merge(p->hist, (struct sockaddr *)&r->dst, e,
		    now) == 0)
			log_info("event=tls-history-redis dst=%s "
			    "last_tls_age=%llds note=\"another gateway saw "
			    "STARTTLS here: merged\"", r->dststr,
			    (long long)(now - e->last_tls));
	}
	check_done(r);
}

/*
 * Does a local history record expect TLS for as long as this lookup may
 * still take (policy_timeout from now)?  Only then is the shared store's
 * record not asked for: the decision is made when everything has
 * answered, up to policy_timeout after the start (an attacker on the path
 * holds the DNS answers, or the policy host's, that long), and a local
 * record that ran out of its window meanwhile left it with neither (may,
 * where another gateway saw STARTTLS: test_redis_engine
 * test_history_local_expires_during_lookup).
 */
static int
hist_lasts_lookup(const struct policy *p, const struct history_entry *e)
{
	return history_expects_tls(e, clock_now() +
	    (int64_t)(p->policy_timeout / 1000) + 1, p->hist_window);
}

/* The address's TLS history from the shared store, when the local one
 * does not expect TLS there until the lookup decides (merging can only
 * raise it), or when this process has no history store of its own. */
static void
redis_hist_ask(struct policy_req *r)
{
	struct policy *p = r->pol;
	struct history_entry e;

	if (p->rs == NULL || p->hist_window <= 0 || !r->have_dst ||
	    r->ovr != NULL)
		return;
	if (p->hist != NULL && history_get(p->hist, "",
	    (struct sockaddr *)&r->dst, &e) == 1 && hist_lasts_lookup(p, &e))
		return;
	r->rs_hist = redis_hist_get(p->rs, (struct sockaddr *)&r->dst,
	    on_redis_hist, r);
}

static void
on_redis_host(void *arg, int rc, const struct history_entry *e)
{
	struct policy_req *r = arg;
	struct policy *p = r->pol;
	int64_t now = clock_now();
	char qh[300];

	r->rs_host = NULL;
	if (rc == 1 && history_expects_tls(e, now, p->hist_window)) {
		/* kept for this verdict whatever the local store does with
		 * it (remote_history_apply()) */
		r->rhost = *e;
		r->have_rhost = 1;
		if (history_merge_host(p->hist, r->rhost_name, e, now) == 0)
			log_info("event=tls-history-redis mx=%s "
			    "last_tls_age=%llds note=\"another gateway saw "
			    "STARTTLS at this MX host: merged\"",
			    log_q(qh, sizeof(qh), r->rhost_name),
			    (long long)(now - e->last_tls));
	}
	check_done(r);
}

/*
 * The MX host's own record ("host|", history.h) from the shared store,
 * once the MX walk has named the host: H, the first host owning the
 * destination, or, when none owns it, the first whose address lookup
 * failed (history_unowned()).  An attacker who answers the host's
 * address query with an address of its own meets that record on the
 * gateway that saw the host's TLS; without it in Redis, the other
 * gateway of a pair, after a failover, knew only the address's record,
 * which knows nothing of the attacker's address.  Not asked when the
 * local record expects TLS already, until the lookup decides
 * (hist_lasts_lookup()).
 */
static void
redis_host_ask(struct policy_req *r)
{
	struct policy *p = r->pol;
	const struct mx_result *m = r->mx;
	const char *host = NULL;
	struct history_entry e;
	int i;

	if (p->rs == NULL || p->hist_window <= 0 || !r->have_dst ||
	    r->ovr != NULL || m == NULL || r->rs_host != NULL)
		return;
	for (i = 0; i < m->nhost && host == NULL; i++)
		if (m->host[i].has_dst)
			host = m->host[i].name;
	for (i = 0; i < m->nhost && host == NULL; i++)
		if (mx_status_failed(mx_host_status(&m->host[i],
		    r->dst.ss_family)))
			host = m->host[i].name;
	if (host == NULL || host[0] == '\0')
		return;
	if (p->hist != NULL && history_get(p->hist, host, NULL, &e) == 1 &&
	    hist_lasts_lookup(p, &e))
		return;
	snprintf(r->rhost_name, sizeof(r->rhost_name), "%s", host);
	r->rs_host = redis_host_get(p->rs, host, on_redis_host, r);
}

/* ---- entry points ---- */

struct policy_req *
policy_lookup(struct policy *p, const char *domain,
    const struct sockaddr *dst, socklen_t dstlen, const char *tag,
    policy_cb *cb, void *arg)
{
	struct policy_req *r;
	struct policy_verdict *v;
	char err[200], name[300];

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->started = stats_clock();
	if ((v = calloc(1, sizeof(*v))) == NULL)
		goto fail;
	r->v = v;
	if ((r->fire = ev_timer_new(p->loop, req_fire, r)) == NULL ||
	    (r->tmo = ev_timer_new(p->loop, req_timeout, r)) == NULL)
		goto fail;
	r->pol = p;
	r->gen = p->store_gen;
	r->cb = cb;
	r->arg = arg;
	r->next = p->reqs;
	if (p->reqs)
		p->reqs->prev = r;
	p->reqs = r;
	v->source = "default";
	if (tag != NULL)	/* the log line's space ends it */
		snprintf(r->tag, sizeof(r->tag), "%s ", tag);
	snprintf(r->dststr, sizeof(r->dststr), "-");
	if (dst != NULL && ((dst->sa_family == AF_INET &&
	    dstlen >= sizeof(struct sockaddr_in)) ||
	    (dst->sa_family == AF_INET6 &&
	    dstlen >= sizeof(struct sockaddr_in6))))
		/* judged as netaddr_judged() says: a connection to P::G
		 * (P a nat64_prefix) reaches G through the network's
		 * NAT64, the AAAA that sent the MTA there was made by its
		 * DNS64 from G's A record (and may carry no AD bit), so H
		 * owns it by its A records, DANE and the history are G's.
		 * A prefix nat64_prefix does not name cannot be told. */
		r->have_dst = netaddr_judged(dst, &r->dst) == 0;
	if (r->have_dst)
		sockaddr_str(&r->dst, r->dststr, sizeof(r->dststr));
	if (sts_domain_norm(domain, v->domain, sizeof(v->domain), err,
	    sizeof(err)) == -1) {
		snprintf(v->domain, sizeof(v->domain), "%.200s", domain);
		for (char *c = v->domain; *c; c++)
			if (!isalnum((unsigned char)*c) && *c != '.' &&
			    *c != '-' && *c != '_')
				*c = '?';	/* a log token, whatever came */
		/* a destination override still applies */
		if ((r->ovr = ovr_find(&p->ovr, NULL, r->have_dst ?
		    (struct sockaddr *)&r->dst : NULL)) != NULL) {
			r->ovr_copy = *r->ovr;
			r->ovr = &r->ovr_copy;
			apply_override(r);
		} else
			defer(r, "default", "validation-failure",
			    "recipient domain refused: %s", err);
		finish(r);
		return r;
	}
	stores_retry(p);
	r->ovr = ovr_find(&p->ovr, v->domain,
	    r->have_dst ? (struct sockaddr *)&r->dst : NULL);
	if (r->ovr != NULL) {
		r->ovr_copy = *r->ovr;
		r->ovr = &r->ovr_copy;
	}
	ev_timer_arm(r->tmo, p->policy_timeout);
	/* the engine owns policy_timeout: whatever is still running then,
	 * req_timeout() decides and the callback comes */
	/* (not gated on the resolver self-check: a check name the resolver
	 * cannot validate says nothing about the zones it does validate) */
	r->dane_wanted = p->dane_enable && r->have_dst && (r->ovr == NULL ||
	    r->ovr->level == OVR_DANE || r->ovr->level == OVR_DANE_MAY);
	if ((r->walk = mx_walk(p->dns, v->domain, r->have_dst ?
	    (struct sockaddr *)&r->dst : NULL, !r->have_dst ? 0 :
	    r->dst.ss_family == AF_INET ? MX_WALK_A : MX_WALK_AAAA, on_walk,
	    r)) == NULL)
		goto fail;
	redis_hist_ask(r);
	if (r->ovr == NULL && p->sts_enable) {
		r->sts = 1;
		if (sts_names_refused(r))
			return r;
		if (p->cache != NULL) {
			int crc = sts_cache_get(p->cache, v->domain,
			    &r->cached);

			if (crc == 1) {
				r->have_cached = 1;
				r->cached_state = sts_cache_state(&r->cached,
				    clock_now(), p->refresh_margin);
			} else if (crc == -1)
				r->cache_unknown = 1;
		} else if (cache_missing(p))
			r->cache_unknown = 1;
		/* read-through on a local miss (no valid policy; not when
		 * the cache could not answer: see sts_effective()) */
		if (p->rs != NULL && !r->cache_unknown && !(r->have_cached &&
		    r->cached_state != STS_CACHE_EXPIRED))
			r->rs_sts = redis_sts_get(p->rs, v->domain,
			    on_redis_sts, r);
		snprintf(name, sizeof(name), "_mta-sts.%s", v->domain);
		r->txt_dns = p->dns;
		r->txt_local0 = dns_local_failures(p->dns, NULL);
		r->txt_ct0 = ctstat_drops();
		if ((r->txtq = dns_query(p->dns, name, DNS_T_TXT, on_txt,
		    r)) == NULL)
			goto fail;
	}
	return r;
fail:
	if (r->pol != NULL) {
		req_destroy(r);
		return NULL;
	}
	ev_timer_free(r->fire);
	ev_timer_free(r->tmo);
	free(v);
	free(r);
	return NULL;
}

void
policy_cancel(struct policy_req *r)
{
	if (r == NULL)
		return;
	req_destroy(r);
}

void
policy_record_tls(struct policy *p, const struct sockaddr *dst,
    const char *mx_host, int starttls_offered, int tls_ok)
{
	struct sockaddr_storage nd;

	if (p == NULL)
		return;
	/* under the address policy_lookup() reads */
	if (dst != NULL && netaddr_judged(dst, &nd) == 0)
		dst = (const struct sockaddr *)&nd;
	history_note(p->hist, p->hist_window, dst, mx_host, starttls_offered,
	    tls_ok);
	if (p->rs != NULL && p->hist != NULL && dst != NULL) {
		struct history_entry e;

		/* write-through of the address's record; the server merges
		 * it towards TLS with what other gateways wrote */
		if (history_get(p->hist, "", dst, &e) == 1)
			redis_hist_put(p->rs, dst, &e);
		/* and the host's own record, whatever its address: another
		 * gateway meets it where an attacker answers the host's
		 * address query with one of its own (redis_host_ask()) */
		if (mx_host != NULL && mx_host[0] != '\0' &&
		    history_get(p->hist, mx_host, NULL, &e) == 1)
			redis_host_put(p->rs, mx_host, &e);
	}
}

/*
 * A domain whose MTA-STS policy could not be had (the TXT record is there,
 * but the fetch failed, the certificate of mta-sts.D did not verify, or
 * the policy did not parse) is reported as no-policy-found with that
 * policy failure (RFC 8460 section 4.3.2.2): whatever the session did
 * next, the sender could not know what the domain asked for.
 */
/* Is ip (text) a global unicast address (netaddr_is_global())? */
static int
local_ip_global(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		return 0;
	return netaddr_is_global((const struct sockaddr *)&ss) == 1;
}

void
policy_report_attempt(struct policy *p, const struct policy_verdict *v,
    const struct policy_attempt *a)
{
	struct policy_attempt pa;

	if (p == NULL || p->rec == NULL)
		return;
	if (v->local)		/* this gateway's trouble, not the domain's */
		return;
	/* a tls_policy override that no published policy backs (its DANE
	 * records would: v->rpt) is this gateway's own rule: what it
	 * demanded is no policy of the domain's to report on, and its
	 * detail quotes this gateway's configuration */
	if (v->rpt == NULL && v->source != NULL &&
	    strcmp(v->source, "override") == 0)
		return;
	/* sending-mta-ip is the address the receiver saw.  Ours when it
	 * is not global (a gateway behind NAT, its private network) is
	 * not that one, and would tell every domain that asks for reports
	 * how the network behind this gateway is numbered: left out, but
	 * in a lab or a private network whose receivers see it
	 * (tlsrpt_private_destinations) */
	if (a->local_ip != NULL && !p->rpt_private &&
	    !local_ip_global(a->local_ip)) {
		pa = *a;
		pa.local_ip = NULL;
		a = &pa;
	}
	if (v->rpt == NULL && (strcmp(v->sts_note, "sts-policy-fetch-error") ==
	    0 || strcmp(v->sts_note, "sts-policy-invalid") == 0 ||
	    strcmp(v->sts_note, "sts-webpki-invalid") == 0)) {
		if (a != &pa)
			pa = *a;
		pa.result = v->sts_note;
		pa.detail = v->detail[0] ? v->detail :
		    "the MTA-STS policy could not be retrieved";
		a = &pa;
	}
	/* dane-required is, in RFC 8460 section 4.3.2.1, a sender that
	 * requires DANE finding no validated TLSA records: a verdict that
	 * deferred so.  Said of a connection (the verdict met it), it is a
	 * DANE MX that did not offer STARTTLS, or refused it, which the
	 * log and the MTA's reply call dane-required too, but a report's
	 * receiver must read as section 4.3.1's starttls-not-supported (a
	 * stripped STARTTLS), not as a TLSA publishing fault of its own. */
	if (a->result != NULL && strcmp(a->result, "dane-required") == 0 &&
	    v->level != TLS_LEVEL_DEFER &&
	    !(v->monitor && v->would_level == TLS_LEVEL_DEFER)) {
		if (a != &pa)
			pa = *a;
		pa.result = "starttls-not-supported";
		a = &pa;
	}
	tlsrpt_rec_attempt(p->rec, p->dns, v, a);
}

SSL_CTX *
policy_webpki_ctx(const struct config *cfg, char *err, size_t errsz)
{
	return make_ctx(cfg, err, errsz);
}

struct tlsrpt_store *
policy_tlsrpt_store(struct policy *p)
{
	return tlsrpt_rec_store(p->rec);
}

/* ---- for `mxguard policy` ---- */

void
policy_set_resolver_validating(struct policy *p, int validating)
{
	p->resolver_ok = validating;
}

struct dns *
policy_dns(struct policy *p)
{
	return p->dns;
}

struct sts_cache *
policy_sts_cache(struct policy *p)
{
	return p->cache;
}
