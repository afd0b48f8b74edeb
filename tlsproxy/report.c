/*
 * report.c - delivering TLSRPT reports (see report.h, docs/tlsrpt.md).
 *
 * One run walks its list of due (day, domain) pairs in order (those never
 * tried first, then retries: order_jobs()), one pair and one URI at a
 * time: reports are few (one per domain and day) and a sequential run
 * keeps the load on receivers and on us flat.  Nothing
 * waits in a run: every URI gets at most one try, under a deadline; a
 * failed try parks the URI (its next try in the store, for a later run)
 * and the run goes on.  The state of the URI being delivered is in
 * struct report_run itself:
 *
 *   job_next -> (parked pair: skip) -> TXT lookup (failed: txt_failed(),
 *     the pair parked or dropped) -> build -> uri_next
 *     -> (delivered, given up or parked URI: skip) -> (https | smtp) try
 *     -> delivered / failed: parked or given up -> uri_next -> ...
 *     -> all URIs seen -> job_end: mark sent, or park the pair
 *     -> job_next -> ... -> done
 *
 * Deadlines: `trydl` (one mailto try: MX walk and every address), `jobdl`
 * (the pair), `run_end` (the run).  When the pair's deadline passes, the
 * URI under way fails its try and the URIs not reached are parked without
 * a try.  Each is armed once, so no receiver extends one by trickling.
 * And a destination (https host, mailto domain: struct dest) has dest_ms
 * in all for its tries of the run, whatever they end in: a try gets no
 * more than what its destination has left, and once it has none, its
 * URIs are parked without a try.  Without that a tarpit that is the
 * destination of many reports (a wildcard _smtp._tls record) took a try
 * of each, one after the other, and held up every report behind them for
 * hours; now it costs the run dest_ms.
 *
 * SMTP: MX walk of the address's domain, then the addresses of its first
 * max_mx hosts (max_addr each; global ones only unless
 * tlsrpt_private_destinations) in order until one accepts: greeting, EHLO,
 * leg_secure() at level "may", MAIL, RCPT, DATA, the message
 * (dot-stuffed), QUIT.  A 5xx to MAIL, RCPT or the message is final for
 * that URI; anything else tries the next address, and after the last one
 * the URI's try failed.
 *
 * Delivery state (report.h): int64 values in the store's "sent" database,
 * under the names state_name() makes; tlsrpt_is_sent() reads one,
 * tlsrpt_mark_batch() writes a step's together (state_flush(): one flush
 * to disk per pair), tlsrpt_prune() drops them with the day.
 *
 * Who frees what: the run owns the job list, the report being delivered,
 * the message, its resolver, its SSL contexts, the MX walk's result and
 * the leg; report_cancel() and the end of the run free them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/log.h"
#include "core/netaddr.h"
#include "core/stats.h"
#include "policy/dns.h"
#include "policy/http.h"
#include "policy/mx.h"
#include "policy/policy.h"
#include "policy/tlsrpt.h"
#include "policy/tlsrpt_rec.h"
#include "tlsproxy/leg.h"
#include "tlsproxy/report.h"
#include "tlsproxy/tls.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define MAX_JOBS	10000	/* pairs one run takes on */
#define CTYPE		"application/tlsrpt+gzip"

/* defaults of struct report_opts */
#define BACKOFF_MS	(5 * 60 * 1000ULL)
#define BACKOFF_MAX_MS	(60 * 60 * 1000ULL)
#define GIVE_UP_MS	(24 * 60 * 60 * 1000ULL)	/* RFC 8460 5.5 */
#define TRY_MS		(2 * 60 * 1000ULL)
#define JOB_MS		(15 * 60 * 1000ULL)
#define RUN_MS		(60 * 60 * 1000ULL)
#define DEST_MS		(5 * 60 * 1000ULL)
#define DEST_BUCKETS	1024	/* the run's destination table */
#define MAX_MX		2
#define MAX_ADDR	2

/* delivery state names (one letter each, see state_name()) */
#define S_DELIVERED	'd'	/* URI delivered: when */
#define S_GIVEN_UP	'g'	/* URI given up: when */
#define S_FIRST		'f'	/* URI's first failed try: when */
#define S_NEXT		'n'	/* URI's next try: when */
#define S_TRIES		't'	/* URI's failed tries: count */
#define S_JOB		'j'	/* pair's earliest next try: when */
#define S_ID		'i'	/* pair's report-id: its random part */
#define S_DESTS		'u'	/* pair's URIs claimed: count */

/* URIs one pair may ever try: a record has at most TLSRPT_RUA_MAX, and
 * one that names new ones at every lookup gets no more */
#define PAIR_DESTS	TLSRPT_RUA_MAX

#define MAX_STAGED	8	/* state values written together */

enum smtp_step { ST_NONE, ST_MAIL, ST_RCPT, ST_DATA, ST_DOT, ST_QUIT };

/* A destination (an https host, a mailto domain) and the time the run's
 * tries to it took so far. */
struct dest {
	struct dest	*next;		/* in its hash bucket */
	uint64_t	 spent_ms;
	char		 key[];
};

struct report_run {
	struct ev_loop		*loop;
	const struct config	*cfg;
	struct tlsrpt_store	*store;
	struct policy		*policy;
	struct report_opts	 opts;
	report_done_cb		*cb;
	void			*arg;
	struct report_totals	 tot;
	int64_t			 today;
	int64_t			 run_end;	/* wall ms */

	struct dns		*dns;
	SSL_CTX			*https;		/* WebPKI store */
	struct tls_ctx		*tls;		/* SMTP legs */
	struct leg_env		 env;
	char			 from[320];
	char			 submitter[256];
	char			 helo[256];
	char			 org[256];
	char			 contact[330];
	struct tlsrpt_dkim_key	*dkim;		/* loaded at the first mailto,
						 * wiped at the end */
	int			 dkim_tried;
	int			 locked;	/* holds the store's run lock */

	struct tlsrpt_due	*jobs;
	size_t			 njobs, ji;
	struct dest		*dests[DEST_BUCKETS];
	struct ev_timer		*step;		/* next job from the loop */
	struct ev_timer		*trydl;		/* the try's deadline */
	struct ev_timer		*jobdl;		/* the pair's deadline */

	/* the job */
	struct dns_req		*txtq;
	struct tlsrpt_policy_record rec;
	unsigned char		*gz;
	size_t			 gzlen;
	char			 filename[700];
	char			 report_id[80];
	int			 preview;	/* today's: no state, no mark */
	int			 expired;	/* the pair's deadline passed */
	int			 uri;		/* rua index being delivered */
	int			 ok, bad;	/* URIs of this job */
	int			 pend;		/* URIs parked */
	int64_t			 jnext;		/* their earliest next try */
	int			 dest_warned;	/* pair-limit logged */
	/* state values not written yet: one transaction per step, and
	 * one flush to disk per pair (state_flush()) */
	struct {
		char		 name[80];
		int64_t		 v;
	}			 stg[MAX_STAGED];
	int			 nstg;

	/* the URI */
	int			 tries;		/* failed tries before this one */
	uint64_t		 try_ms;	/* this try's deadline */
	uint64_t		 try_start;	/* ev_now() at its start */
	struct dest		*dest;		/* its destination */
	int			 dest_cut;	/* try_ms is the destination's
						 * time left, not the try's */
	struct http_req		*http;
	char			*msg;		/* mailto: the message */
	size_t			 msglen;
	struct mx_walk		*walk;
	struct mx_result	*mx;
	int			 host, addr;	/* next address to try */
	int			 refused;	/* addresses not global */
	int			 dialed;	/* addresses connected to */
	int			 lookupfail;	/* MX hosts whose A or AAAA
						 * lookup gave no answer */
	struct leg		*leg;
	enum smtp_step		 sstep;
	int			 permanent;	/* a 5xx: no more tries */
	char			 lasterr[300];
};

static void job_next(struct report_run *);
static void uri_next(struct report_run *);
static void try_uri(struct report_run *);
static void smtp_next_addr(struct report_run *);
static void txt_failed(struct report_run *, const char *, const char *);

static void
count(const char *what, const char *transport, const char *result)
{
	char name[160];

	if (transport == NULL)
		snprintf(name, sizeof(name), "mxguard_tlsrpt_reports_%s_total",
		    what);
	else
		snprintf(name, sizeof(name), "mxguard_tlsrpt_%s_total"
		    "{transport=\"%s\",result=\"%s\"}", what, transport,
		    result);
	stats_add(stats_get(name, transport == NULL ? "TLSRPT reports "
	    "built" : strcmp(what, "deliveries") == 0 ? "TLSRPT delivery "
	    "attempts by transport and result" : "TLSRPT reports by "
	    "transport and final result"), 1);
}

void
report_from(const struct config *cfg, char *buf, size_t sz)
{
	char host[256] = "";

	if (cfg->tlsrpt_from[0] != '\0') {
		snprintf(buf, sz, "%s", cfg->tlsrpt_from);
		return;
	}
	if (gethostname(host, sizeof(host) - 1) == -1 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	snprintf(buf, sz, "noreply-tlsrpt@%s", host);
}

/* Wall clock in ms: the delivery state outlives the process. */
static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- delivery state ---------------------------------------------------- */

/*
 * The name of one state value of the pair's domain and, unless uri is
 * NULL, of one of its URIs: "<tag>-<32 hex of SHA-256>.tlsrpt.invalid".
 * No policy domain can be under .invalid (RFC 6761), so these names never
 * meet a real pair in the "sent" database, and tlsrpt_due_list() never
 * lists them (it walks the counts).
 */
static void
state_name(char tag, const char *domain, const char *uri, char *buf,
    size_t sz)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	char hex[33];
	int i;

	memset(md, 0, sizeof(md));
	if (c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1) {
		EVP_DigestUpdate(c, domain, strlen(domain) + 1);
		if (uri != NULL)
			EVP_DigestUpdate(c, uri, strlen(uri));
		EVP_DigestFinal_ex(c, md, &mdlen);
	}
	EVP_MD_CTX_free(c);
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(buf, sz, "%c-%s.tlsrpt.invalid", tag, hex);
}

/* A URI's identity: the delivery target, not its spelling. */
static void
uri_key(const struct tlsrpt_uri *u, char *buf, size_t sz)
{
	if (u->kind == TLSRPT_URI_MAILTO)
		snprintf(buf, sz, "mailto:%s", u->addr);
	else
		snprintf(buf, sz, "https://%s:%u%s", u->host,
		    (unsigned)u->port, u->path);
}

/* The value of pair j, 0 when there is none (or it cannot be read:
 * logged). */
static int64_t
state_read(struct report_run *r, const struct tlsrpt_due *j, char tag,
    const struct tlsrpt_uri *u)
{
	char name[80], key[TLSRPT_URI_MAX + 400];
	int64_t v = 0;

	if (u != NULL)
		uri_key(u, key, sizeof(key));
	state_name(tag, j->domain, u ? key : NULL, name, sizeof(name));
	if (tlsrpt_is_sent(r->store, j->day, name, &v) == -1) {
		log_warn("event=tlsrpt-state-failed domain=%s error=\"%s\"",
		    j->domain, tlsrpt_store_error(r->store));
		return 0;
	}
	return v;
}

/* The same, of the pair under way. */
static int64_t
state_get(struct report_run *r, char tag, const struct tlsrpt_uri *u)
{
	return state_read(r, &r->jobs[r->ji], tag, u);
}

/*
 * Writes the values staged since the last call in one transaction, and
 * with sync flushes everything written so far to disk: 0, or -1 (logged).
 * One step of a pair (a URI's try, its end) writes once; a pair flushes
 * once, at its end (job_end()), and once more when it makes its report-id
 * (job_build()), so that no report goes out under an id a crash could
 * lose.  What an OS crash may lose before a flush only makes us do again
 * what was done (a try, a delivery: a resend under the same report-id),
 * never skip something: nothing is written before it happened.
 */
static int
state_flush(struct report_run *r, int sync)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	struct tlsrpt_mark m[MAX_STAGED];
	int i, n = r->nstg, rc;

	for (i = 0; i < n; i++) {
		m[i].domain = r->stg[i].name;
		m[i].when = r->stg[i].v;
	}
	r->nstg = 0;
	rc = n > 0 ? tlsrpt_mark_batch(r->store, j->day, m, (size_t)n, sync) :
	    sync ? tlsrpt_store_sync(r->store) : 0;
	if (rc == -1)
		log_warn("event=tlsrpt-state-failed domain=%s error=\"%s\"",
		    j->domain, tlsrpt_store_error(r->store));
	return rc;
}

/* Stages one value under name (a state name, or the domain itself: its
 * sent mark) for the next state_flush(). */
static void
state_stage(struct report_run *r, const char *name, int64_t v)
{
	if (r->nstg == MAX_STAGED)
		(void)state_flush(r, 0);
	snprintf(r->stg[r->nstg].name, sizeof(r->stg[0].name), "%s", name);
	r->stg[r->nstg++].v = v;
}

static void
state_put(struct report_run *r, char tag, const struct tlsrpt_uri *u,
    int64_t v)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	char name[80], key[TLSRPT_URI_MAX + 400];

	if (u != NULL)
		uri_key(u, key, sizeof(key));
	state_name(tag, j->domain, u ? key : NULL, name, sizeof(name));
	state_stage(r, name, v);
}

/* ---- destinations: the time each one took in the run ------------------- */

/* The destination of u: its host for https, its domain for mailto. */
static void
dest_key(const struct tlsrpt_uri *u, char *buf, size_t sz)
{
	const char *at = strrchr(u->addr, '@');

	if (u->kind == TLSRPT_URI_HTTPS)
		snprintf(buf, sz, "https:%s", u->host);
	else
		snprintf(buf, sz, "mailto:%s", at != NULL ? at + 1 : u->addr);
}

/* u's destination, made at its first use; NULL when out of memory (its
 * tries are then bounded by their own deadlines only). */
static struct dest *
dest_get(struct report_run *r, const struct tlsrpt_uri *u)
{
	char key[TLSRPT_URI_MAX + 16];
	uint32_t h = 2166136261u;	/* FNV-1a */
	const char *p;
	struct dest *d;
	size_t n;

	dest_key(u, key, sizeof(key));
	for (p = key; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (d = r->dests[h % DEST_BUCKETS]; d != NULL; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	n = strlen(key) + 1;
	if ((d = calloc(1, sizeof(*d) + n)) == NULL)
		return NULL;
	memcpy(d->key, key, n);
	d->next = r->dests[h % DEST_BUCKETS];
	r->dests[h % DEST_BUCKETS] = d;
	return d;
}

/* 1 when u's destination has had its dest_ms in this run. */
static int
dest_used_up(struct report_run *r, const struct tlsrpt_uri *u)
{
	const struct dest *d = dest_get(r, u);

	return d != NULL && d->spent_ms >= r->opts.dest_ms;
}

/* The try under way ended: its time goes to its destination's account;
 * the destination's last try is logged. */
static void
dest_charge(struct report_run *r)
{
	struct dest *d = r->dest;
	char qd[400];

	if (d == NULL)
		return;
	r->dest = NULL;
	d->spent_ms += ev_now(r->loop) - r->try_start;
	if (d->spent_ms >= r->opts.dest_ms)
		log_warn("event=tlsrpt-destination-slow destination=%s "
		    "spent_ms=%llu dest_ms=%llu note=\"its other reports of "
		    "this run wait for a later run\"", log_q(qd, sizeof(qd),
		    d->key), (unsigned long long)d->spent_ms,
		    (unsigned long long)r->opts.dest_ms);
}

static void
dests_free(struct report_run *r)
{
	struct dest *d;
	size_t i;

	for (i = 0; i < DEST_BUCKETS; i++)
		while ((d = r->dests[i]) != NULL) {
			r->dests[i] = d->next;
			free(d);
		}
}

/*
 * Whether a next try the store keeps (a URI's S_NEXT, a pair's S_JOB, in
 * wall-clock ms) is still to wait for at now.  Every one is written at
 * most backoff_max_ms ahead (backoff(), or backoff_ms for a URI not
 * reached), so one further ahead was written before the wall clock was
 * stepped back (a host that ran ahead and NTP set right, or an attacker
 * on the path to its NTP server who moved it forward for a run): due
 * now.  Before, the pair waited for the size of the step, a year, and
 * tlsrpt_retention dropped it unsent meanwhile.
 */
static int
next_pending(const struct report_run *r, int64_t next, int64_t now)
{
	return next > now && next - now <= (int64_t)r->opts.backoff_max_ms;
}

/* One URI that cannot be tried now: next is when it can. */
static void
park(struct report_run *r, int64_t next)
{
	r->pend++;
	r->tot.parked++;
	if (r->jnext == 0 || next < r->jnext)
		r->jnext = next;
}

/* ---- the end of a URI, a job, the run ---------------------------------- */

static void
smtp_clear(struct report_run *r)
{
	mx_walk_cancel(r->walk);
	r->walk = NULL;
	free(r->mx);
	r->mx = NULL;
	leg_free(r->leg);
	r->leg = NULL;
	r->sstep = ST_NONE;
}

static void
uri_clear(struct report_run *r)
{
	http_cancel(r->http);
	r->http = NULL;
	smtp_clear(r);
	ev_timer_stop(r->trydl);
	free(r->msg);
	r->msg = NULL;
	r->tries = 0;
	r->permanent = 0;
	r->dest = NULL;
	r->dest_cut = 0;
	r->refused = r->dialed = r->lookupfail = 0;
	r->lasterr[0] = '\0';
}

static void
job_clear(struct report_run *r)
{
	dns_cancel(r->txtq);
	r->txtq = NULL;
	uri_clear(r);
	ev_timer_stop(r->jobdl);
	free(r->gz);
	r->gz = NULL;
	memset(&r->rec, 0, sizeof(r->rec));
	r->uri = r->ok = r->bad = r->pend = 0;
	r->preview = r->expired = 0;
	r->jnext = 0;
	r->dest_warned = 0;
	r->nstg = 0;
}

static void
run_free(struct report_run *r)
{
	job_clear(r);
	ev_timer_free(r->step);
	ev_timer_free(r->trydl);
	ev_timer_free(r->jobdl);
	tlsrpt_dkim_key_free(r->dkim);
	free(r->jobs);
	dests_free(r);
	if (r->locked)
		tlsrpt_run_unlock(r->store);
	dns_free(r->dns);
	SSL_CTX_free(r->https);
	tls_ctx_free(r->tls);
	free(r);
}

const struct config *
report_run_config(const struct report_run *r)
{
	return r->cfg;
}

void
report_cancel(struct report_run *r)
{
	if (r == NULL)
		return;
	/* a pair under way: what it wrote goes to disk now */
	if (r->ji < r->njobs) {
		(void)state_flush(r, 0);
		(void)tlsrpt_store_sync(r->store);
	}
	run_free(r);
}

static const char *
transport(const struct tlsrpt_uri *u)
{
	return u->kind == TLSRPT_URI_HTTPS ? "https" : "mailto";
}

/* More failed tries than a URI ever makes in its 24 hours (one a run at
 * most, runs backoff_ms apart at least): a count read back beyond it
 * (or below 0) is a corrupt or foreign value. */
#define TRIES_MAX	1000000

/* The failed tries of URI u (NULL: the pair's TXT lookup) before this
 * one, as the store has them: an int whose + 1 cannot overflow.  The
 * count decides nothing (the time since the first failure gives a URI
 * up, backoff()); it is the log's try= and what the operator reads. */
static int
tries_get(struct report_run *r, const struct tlsrpt_uri *u)
{
	int64_t n = state_get(r, S_TRIES, u);

	return n < 0 || n > TRIES_MAX ? TRIES_MAX : (int)n;
}

/*
 * A failed try of URI u, or with u NULL of the pair's TXT lookup, after
 * `tries` failed ones before it: stages its first failure (when this is
 * the first) and its tries, and says when it may be tried again.  0: at
 * *next, after a backoff (*delay) that doubles from backoff_ms: the time
 * since its first failure, at least backoff_ms, at most backoff_max_ms.
 * 1: that would be more than give_up_ms after the first failure, so it is
 * given up (RFC 8460 section 5.5: retries for up to 24 hours).
 */
static int
backoff(struct report_run *r, const struct tlsrpt_uri *u, int tries,
    int64_t now, int64_t *next, int64_t *delay)
{
	int64_t first, d;

	/* a first failure dated ahead of now was written before the wall
	 * clock was stepped back: the window starts again, or it would end
	 * only when the clock came back to it, a year later.  So does one
	 * before 1970 (a corrupt store: now - first overflowed, and next -
	 * first wrapped below give_up_ms, so the URI was never given up) */
	if ((first = state_get(r, S_FIRST, u)) <= 0 || first > now) {
		first = now;
		state_put(r, S_FIRST, u, first);
	}
	d = now - first;
	if (d < (int64_t)r->opts.backoff_ms)
		d = (int64_t)r->opts.backoff_ms;
	if (d > (int64_t)r->opts.backoff_max_ms)
		d = (int64_t)r->opts.backoff_max_ms;
	*delay = d;
	*next = now + d;
	state_put(r, S_TRIES, u, tries + 1);
	return *next - first > (int64_t)r->opts.give_up_ms;
}

/*
 * The try of the current URI is over: ok, or failed (r->lasterr).  A
 * failure parks the URI for a later run (backoff()), or gives it up: a
 * 5xx, a preview, or the end of its retries.
 */
static void
try_done(struct report_run *r, int ok)
{
	const struct tlsrpt_uri *u = &r->rec.rua[r->uri];
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	int64_t now = wall_ms(), next = 0, delay = 0;
	int final = 1;
	char qu[600], qe[600], nx[40] = "";

	ev_timer_stop(r->trydl);
	dest_charge(r);
	http_cancel(r->http);
	r->http = NULL;
	smtp_clear(r);
	count("deliveries", transport(u), ok ? "sent" : "failed");
	if (ok) {
		if (!r->preview)
			state_put(r, S_DELIVERED, u, now);
	} else if (!r->preview && !r->permanent) {
		if (backoff(r, u, r->tries, now, &next, &delay) == 0) {
			final = 0;
			state_put(r, S_NEXT, u, next);
			snprintf(nx, sizeof(nx), " next_in_s=%lld",
			    (long long)((delay + 999) / 1000));
		} else
			snprintf(nx, sizeof(nx), " gave_up=yes");
	}
	if (!ok && final && !r->preview)
		state_put(r, S_GIVEN_UP, u, now);
	(void)state_flush(r, 0);	/* the try's values, together */
	log_info("event=tlsrpt-delivery domain=%s day=%lld uri=%s "
	    "try=%d result=%s%s%s%s%s", j->domain, (long long)j->day,
	    log_q(qu, sizeof(qu), u->uri), r->tries + 1,
	    ok ? "sent" : "failed", ok ? "" : " error=",
	    ok ? "" : log_q(qe, sizeof(qe), r->lasterr),
	    ok ? "" : final ? " final=yes" : " final=no", nx);
	if (ok) {
		count("reports", transport(u), "sent");
		r->tot.sent++;
		r->ok++;
	} else if (final) {
		count("reports", transport(u), "failed");
		r->tot.failed++;
		r->bad++;
	} else
		park(r, next);
	r->uri++;
	uri_next(r);
}

/* The try's deadline: whatever it was doing, it failed. */
static void
trydl_cb(void *arg)
{
	struct report_run *r = arg;

	char before[sizeof(r->lasterr)];

	snprintf(before, sizeof(before), "%s", r->lasterr);
	if (r->dest_cut)
		snprintf(r->lasterr, sizeof(r->lasterr), "the destination's "
		    "time in this run (%llu ms in all) ran out%s%s",
		    (unsigned long long)r->opts.dest_ms, before[0] ?
		    "; before: " : "", before);
	else
		snprintf(r->lasterr, sizeof(r->lasterr), "the try's deadline "
		    "(%llu ms) passed%s%s", (unsigned long long)r->try_ms,
		    before[0] ? "; before: " : "", before);
	try_done(r, 0);
}

/* The pair's deadline: the URI under way fails its try, the others wait
 * for the next run. */
static void
jobdl_cb(void *arg)
{
	struct report_run *r = arg;
	const struct tlsrpt_due *j = &r->jobs[r->ji];

	r->expired = 1;
	log_info("event=tlsrpt-report domain=%s day=%lld result=deadline "
	    "job_s=%llu", j->domain, (long long)j->day,
	    (unsigned long long)(r->opts.job_ms / 1000));
	if (r->txtq != NULL) {
		/* no record yet: a failed lookup */
		dns_cancel(r->txtq);
		r->txtq = NULL;
		txt_failed(r, "lookup-failed", "TXT lookup: no answer before "
		    "the report's deadline");
		return;
	}
	if (r->http != NULL || r->walk != NULL || r->mx != NULL || r->leg != NULL) {
		snprintf(r->lasterr, sizeof(r->lasterr), "the report's "
		    "deadline (%llu s) passed",
		    (unsigned long long)(r->opts.job_ms / 1000));
		try_done(r, 0);
	}
}

static void
done_cb(void *arg)
{
	struct report_run *r = arg;

	job_next(r);
}

/* ---- https ------------------------------------------------------------- */

static void
on_post(void *arg, int ok, const char *body, size_t len, const char *kind,
    const char *err)
{
	struct report_run *r = arg;

	r->http = NULL;
	if (ok != 0) {
		snprintf(r->lasterr, sizeof(r->lasterr), "%s", err ? err :
		    "failed");
		/* every address of the host refused: as a mailto whose MX
		 * addresses all are, no use retrying (nor logging the
		 * refusals again every try) */
		if (kind != NULL && strcmp(kind, HTTP_DESTINATION_REFUSED) == 0)
			r->permanent = 1;
	}
	try_done(r, ok == 0);
}

static void
try_https(struct report_run *r, const struct tlsrpt_uri *u)
{
	/* the URI names the port: refused, it stays refused */
	if (netaddr_refuse_port(u->host, u->port,
	    &r->cfg->tlsrpt_https_ports, r->lasterr, sizeof(r->lasterr))) {
		r->permanent = 1;
		try_done(r, 0);
		return;
	}
	r->http = http_post(r->loop, r->dns, r->https, u->host, u->port,
	    u->path, CTYPE, r->gz, r->gzlen, r->cfg->sts_fetch_timeout,
	    r->cfg->upstream_mark, r->cfg->tlsrpt_private_destinations,
	    on_post, r);
	if (r->http == NULL) {
		snprintf(r->lasterr, sizeof(r->lasterr), "cannot start the "
		    "HTTPS request");
		r->permanent = 1;
		try_done(r, 0);
	}
}

/* ---- mailto ------------------------------------------------------------ */

static void
smtp_fail(struct report_run *r, int permanent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
smtp_fail(struct report_run *r, int permanent, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->lasterr, sizeof(r->lasterr), fmt, ap);
	va_end(ap);
	if (permanent) {
		r->permanent = 1;
		try_done(r, 0);
		return;
	}
	/* this address did not take it: the next one may */
	leg_free(r->leg);
	r->leg = NULL;
	r->sstep = ST_NONE;
	smtp_next_addr(r);
}

/* The message, dot-stuffed, and the final dot. */
static void
smtp_body(struct report_run *r)
{
	const char *p = r->msg, *end = r->msg + r->msglen, *nl;

	leg_body_begin(r->leg, 0);
	while (p < end) {
		if (*p == '.')
			leg_write(r->leg, ".", 1);
		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl ? nl + 1 : end;
		leg_write(r->leg, p, (size_t)(nl - p));
		p = nl;
	}
	if (r->msglen < 2 || memcmp(end - 2, "\r\n", 2) != 0)
		leg_write(r->leg, "\r\n", 2);
	leg_write(r->leg, ".\r\n", 3);
	leg_body_end(r->leg);
	r->sstep = ST_DOT;
}

static void
smtp_reply(struct report_run *r, const struct smtp_reply *rep)
{
	const struct tlsrpt_uri *u = &r->rec.rua[r->uri];
	char line[400];
	size_t tl;
	const char *t = smtp_reply_text(rep, rep->nlines - 1, &tl);

	if (r->sstep == ST_DATA ? rep->code != 354 : rep->code / 100 != 2) {
		smtp_fail(r, rep->code / 100 == 5, "%s: %d %.*s",
		    r->sstep == ST_MAIL ? "MAIL" : r->sstep == ST_RCPT ?
		    "RCPT" : r->sstep == ST_DATA ? "DATA" : "message",
		    rep->code, (int)(tl > 200 ? 200 : tl), t);
		return;
	}
	switch (r->sstep) {
	case ST_MAIL:
		snprintf(line, sizeof(line), "RCPT TO:<%s>", u->addr);
		r->sstep = ST_RCPT;
		leg_command(r->leg, 1, line);
		return;
	case ST_RCPT:
		r->sstep = ST_DATA;
		leg_command(r->leg, 1, "DATA");
		return;
	case ST_DATA:
		smtp_body(r);
		return;
	case ST_DOT:
		/* delivered; QUIT is a courtesy, the leg goes with it */
		leg_quit(r->leg);
		r->sstep = ST_QUIT;
		try_done(r, 1);
		return;
	default:
		return;
	}
}

static void
smtp_mail(struct report_run *r)
{
	char line[400];

	log_info("event=tlsrpt-smtp mx=%s tls=%s", r->mx->host[r->host].name,
	    leg_tls_proto(r->leg)[0] ? leg_tls_proto(r->leg) : "no");
	snprintf(line, sizeof(line), "MAIL FROM:<%s>", r->from);
	r->sstep = ST_MAIL;
	leg_command(r->leg, 1, line);
}

/*
 * A name EHLO may say (RFC 5321 section 4.1.1.1): a dotted host name.
 * Many MXes refuse a bare one (a Debian host's gethostname(), "gw"),
 * EHLO and HELO alike, and the report would be retried for a day and
 * given up; none is refused for an address literal.
 */
static int
fqdn(const char *name)
{
	return tlsrpt_valid_host(name, strlen(name)) &&
	    strchr(name, '.') != NULL;
}

/* The address literal of our end of the connection (ip, leg_local_ip()):
 * [192.0.2.1], [IPv6:2001:db8::1]; an IPv4-mapped one as IPv4. */
static void
helo_literal(const char *ip, char *buf, size_t sz)
{
	if (ip == NULL || ip[0] == '\0')
		snprintf(buf, sz, "localhost");	/* not had: as Postfix */
	else if (strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip, '.'))
		snprintf(buf, sz, "[%s]", ip + 7);
	else if (strchr(ip, ':') != NULL)
		snprintf(buf, sz, "[IPv6:%s]", ip);
	else
		snprintf(buf, sz, "[%s]", ip);
}

static void
smtp_event(struct leg *l, enum leg_event ev, const struct leg_news *n,
    void *arg)
{
	struct report_run *r = arg;
	struct policy_verdict v;
	struct tls_result res;

	switch (ev) {
	case LEG_GREETING:
		if (n->reply->code / 100 != 2) {
			smtp_fail(r, 0, "greeting %d", n->reply->code);
			return;
		}
		if (r->helo[0] != '\0')
			leg_hello(l, r->helo);
		else {
			char lit[80];

			helo_literal(leg_local_ip(l), lit, sizeof(lit));
			leg_hello(l, lit);
		}
		return;
	case LEG_HELLO:
		if (n->reply->code / 100 != 2) {
			smtp_fail(r, 0, "EHLO/HELO refused: %d",
			    n->reply->code);
			return;
		}
		/* RFC 8460 section 5.3: report delivery must not fail on
		 * TLS.  Level "may": STARTTLS when offered, any certificate,
		 * cleartext when it is stripped or the handshake fails. */
		memset(&v, 0, sizeof(v));
		v.level = TLS_LEVEL_MAY;
		v.source = "tlsrpt";
		snprintf(v.domain, sizeof(v.domain), "%s", r->mx->domain);
		snprintf(v.mx_host, sizeof(v.mx_host), "%s",
		    r->mx->host[r->host].name);
		switch (leg_secure(l, &v, 0, &res)) {
		case LEG_SECURE_READY:
			smtp_mail(r);
			return;
		case LEG_SECURE_PENDING:
			return;
		default:
			smtp_fail(r, 0, "%s", res.detail);
			return;
		}
	case LEG_READY:
		smtp_mail(r);
		return;
	case LEG_TLS_FAILED:
		smtp_fail(r, 0, "TLS: %s", n->res ? n->res->detail : "?");
		return;
	case LEG_REPLY:
		smtp_reply(r, n->reply);
		return;
	case LEG_ERROR:
		if (r->sstep == ST_QUIT)
			return;
		smtp_fail(r, 0, "%s", n->why ? n->why : "connection lost");
		return;
	case LEG_CLOSED:
	case LEG_LOWAT:
	default:
		return;
	}
}

/* An MX address a report may not go to (SSRF: the rua comes from a
 * record anyone may publish, and the socket bypasses the divert rules). */
static int
refuse(struct report_run *r, const struct mx_host *h,
    const struct sockaddr_storage *ss)
{
	if (!netaddr_refuse(h->name, (const struct sockaddr *)ss,
	    r->cfg->tlsrpt_private_destinations, r->lasterr,
	    sizeof(r->lasterr)))
		return 0;
	r->refused++;
	return 1;
}

/* An address lookup that gave no answer (SERVFAIL, a timeout, none
 * yet): the address it would have named may be one a report may go to. */
static int
addr_lookup_failed(int st)
{
	return st != DNS_SECURE && st != DNS_INSECURE && st != DNS_NXDOMAIN &&
	    st != DNS_NODATA;
}

/* The next address of the first max_mx MX hosts (max_addr each), in the
 * walk's order. */
static void
smtp_next_addr(struct report_run *r)
{
	const struct mx_host *h;
	const struct sockaddr_storage *ss;
	char tag[24];

	for (; r->mx != NULL && r->host < r->mx->nhost &&
	    r->host < r->opts.max_mx; r->host++, r->addr = 0) {
		h = &r->mx->host[r->host];
		if (r->addr == 0 && (addr_lookup_failed(h->st4) ||
		    addr_lookup_failed(h->st6)))
			r->lookupfail++;
		while (r->addr < h->naddr && r->addr < r->opts.max_addr) {
			ss = &h->addr[r->addr++];
			if (refuse(r, h, ss))
				continue;
			r->dialed++;
			snprintf(tag, sizeof(tag), "tlsrpt-%zu", r->ji);
			r->leg = leg_new(&r->env, ss, tag, smtp_event, r);
			if (r->leg != NULL)
				return;
			snprintf(r->lasterr, sizeof(r->lasterr), "%s: cannot "
			    "connect", h->name);
		}
	}
	if (r->refused > 0 && r->dialed == 0 && r->lookupfail == 0) {
		/* nothing but addresses we may not go to, and every lookup
		 * answered: no use retrying (one that failed may name a
		 * global address next time) */
		snprintf(r->lasterr, sizeof(r->lasterr), "%s: no MX address "
		    "is global (%d refused; tlsrpt_private_destinations = "
		    "no)", r->mx->domain, r->refused);
		r->permanent = 1;
	}
	if (!r->lasterr[0])
		snprintf(r->lasterr, sizeof(r->lasterr), "no MX host "
		    "address");
	try_done(r, 0);
}

static void
on_walk(void *arg, struct mx_result *m)
{
	struct report_run *r = arg;

	r->walk = NULL;
	r->mx = m;
	r->host = r->addr = 0;
	if (m->null_mx) {
		snprintf(r->lasterr, sizeof(r->lasterr), "%s accepts no mail "
		    "(null MX)", m->domain);
		r->permanent = 1;
		try_done(r, 0);
		return;
	}
	if (m->nhost == 0)
		snprintf(r->lasterr, sizeof(r->lasterr), "MX lookup of %s: "
		    "%s", m->domain, m->status >= 0 ?
		    dns_status_name(m->status) : "no answer");
	smtp_next_addr(r);
}

static void
try_mailto(struct report_run *r, const struct tlsrpt_uri *u)
{
	const char *dom = strrchr(u->addr, '@') + 1;

	r->walk = mx_walk(r->dns, dom, NULL, MX_WALK_A | MX_WALK_AAAA,
	    on_walk, r);
	if (r->walk == NULL) {
		snprintf(r->lasterr, sizeof(r->lasterr), "cannot look up the "
		    "MX of %s", dom);
		try_done(r, 0);
	}
}

static void
try_uri(struct report_run *r)
{
	const struct tlsrpt_uri *u = &r->rec.rua[r->uri];

	r->tries = r->preview ? 0 : tries_get(r, u);
	r->lasterr[0] = '\0';
	/* https: the client's own overall timeout, and a guard after it */
	r->try_ms = u->kind == TLSRPT_URI_HTTPS ?
	    r->cfg->sts_fetch_timeout + 5000 : r->opts.try_ms;
	/* and no more than what its destination has left in this run:
	 * however it trickles, a receiver costs the run dest_ms at most;
	 * from the time now, not the loop's cached time, which building the
	 * report (gzip, DKIM) in this callback may have left behind */
	ev_now_update(r->loop);
	r->try_start = ev_now(r->loop);
	r->dest_cut = 0;
	if ((r->dest = dest_get(r, u)) != NULL &&
	    r->opts.dest_ms - r->dest->spent_ms < r->try_ms) {
		r->try_ms = r->opts.dest_ms - r->dest->spent_ms;
		r->dest_cut = 1;
	}
	ev_timer_arm(r->trydl, r->try_ms);
	if (u->kind == TLSRPT_URI_HTTPS)
		try_https(r, u);
	else
		try_mailto(r, u);
}

/* ---- jobs -------------------------------------------------------------- */

/*
 * The DKIM key, read and checked once per run, at its first mailto URI:
 * it was read and parsed again for every one.  NULL when it cannot be had
 * (logged once).
 */
static const struct tlsrpt_dkim_key *
dkim_key(struct report_run *r)
{
	char err[300], qe[400];

	if (!r->dkim_tried) {
		r->dkim_tried = 1;
		if ((r->dkim = tlsrpt_dkim_key_load(r->cfg->tlsrpt_dkim_key,
		    err, sizeof(err))) == NULL)
			log_warn("event=tlsrpt-mail-failed error=%s",
			    log_q(qe, sizeof(qe), err));
	}
	return r->dkim;
}

static int
mail_build(struct report_run *r, const struct tlsrpt_uri *u)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	struct tlsrpt_mail m;
	char err[256], dkdom[256];
	const char *at = strrchr(r->from, '@');

	snprintf(dkdom, sizeof(dkdom), "%s", r->cfg->tlsrpt_dkim_domain[0] ?
	    r->cfg->tlsrpt_dkim_domain : at ? at + 1 : "");
	memset(&m, 0, sizeof(m));
	m.from = r->from;
	m.to = u->addr;
	m.submitter = r->submitter;
	m.policy_domain = j->domain;
	m.report_id = r->report_id;
	m.filename = r->filename;
	m.date = (int64_t)time(NULL);
	m.gz = r->gz;
	m.gzlen = r->gzlen;
	m.dkim_key = r->dkim;
	m.dkim_selector = r->cfg->tlsrpt_dkim_selector;
	m.dkim_domain = dkdom;
	if (tlsrpt_mail_build(&m, &r->msg, &r->msglen, err,
	    sizeof(err)) == -1) {
		char qu[600], qe[600];

		log_warn("event=tlsrpt-mail-failed domain=%s uri=%s error=%s",
		    j->domain, log_q(qu, sizeof(qu), u->uri),
		    log_q(qe, sizeof(qe), err));
		return -1;
	}
	return 0;
}

/*
 * A URI of the pair that has no delivery state yet is a new destination:
 * counted against the pair's PAIR_DESTS and the day's max_destinations
 * (tlsrpt_dest_claim()) before its first try writes any state, so that a
 * wildcard _smtp._tls record (every subdomain a policy domain) or one
 * that names new URIs at every lookup cannot make the deliveries of a
 * day, nor their state in the store, grow without bound.  0: try it (a
 * URI tried before, or claimed now: the pair's count staged); 1: over a
 * bound, *why says which (skipped, counted in
 * mxguard_tlsrpt_destinations_refused_total{reason}); -1: the store
 * failed (logged).
 */
static int
dest_claim(struct report_run *r, const struct tlsrpt_uri *u,
    const char **why)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	int64_t n;
	const char *reason = NULL;
	char name[160];
	int rc;

	if (state_get(r, S_TRIES, u) != 0 || state_get(r, S_FIRST, u) != 0)
		return 0;
	/* a count below 0 is a corrupt store's: at the bound, as tries
	 * past theirs are (tries_get()), or the bound is gone */
	if ((n = state_get(r, S_DESTS, NULL)) >= PAIR_DESTS || n < 0) {
		reason = "pair-limit";
		*why = "the pair's destination bound (8 URIs ever tried)";
		if (!r->dest_warned++)
				log_warn("event=tlsrpt-destinations-refused "
			    "domain=%s day=%lld reason=pair-limit max=%d "
			    "note=\"its record names other URIs than those "
			    "tried\"", j->domain, (long long)j->day,
			    PAIR_DESTS);
	} else if ((rc = tlsrpt_dest_claim(r->store, j->day)) == -1) {
		log_warn("event=tlsrpt-state-failed domain=%s error=\"%s\"",
		    j->domain, tlsrpt_store_error(r->store));
		return -1;
	} else if (rc == 0) {
		reason = "day-limit";
		*why = "the day's destination bound (max_destinations)";
	} else {
		state_put(r, S_DESTS, NULL, n + 1);
		return 0;
	}
	snprintf(name, sizeof(name), "mxguard_tlsrpt_destinations_refused_"
	    "total{reason=\"%s\"}", reason);
	stats_add(stats_get(name, "TLSRPT report URIs not tried: over the "
	    "day's or the pair's bound on destinations"), 1);
	return 1;
}

/* Every URI was seen: the pair is sent, or waits for its parked URIs. */
static void
job_end(struct report_run *r)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];

	if (r->preview) {
		/* today's counts so far: the day's report comes tomorrow */
		log_info("event=tlsrpt-report-done domain=%s day=%lld "
		    "delivered=%d failed=%d preview=yes", j->domain,
		    (long long)j->day, r->ok, r->bad);
	} else if (r->pend == 0) {
		/* on disk with every value of the pair written before it */
		state_stage(r, j->domain, (int64_t)time(NULL));
		if (state_flush(r, 1) == -1)
			log_warn("event=tlsrpt-mark-failed domain=%s "
			    "error=\"%s\"", j->domain,
			    tlsrpt_store_error(r->store));
		log_info("event=tlsrpt-report-done domain=%s day=%lld "
		    "delivered=%d failed=%d", j->domain, (long long)j->day,
		    r->ok, r->bad);
	} else {
		state_put(r, S_JOB, NULL, r->jnext);
		(void)state_flush(r, 1);
		r->tot.waiting++;
		if (r->tot.next_retry_ms == 0 || r->jnext < r->tot.next_retry_ms)
			r->tot.next_retry_ms = r->jnext;
		log_info("event=tlsrpt-report-waiting domain=%s day=%lld "
		    "delivered=%d failed=%d parked=%d next_in_s=%lld",
		    j->domain, (long long)j->day, r->ok, r->bad, r->pend,
		    (long long)((r->jnext - wall_ms() + 999) / 1000));
	}
	r->ji++;
	job_clear(r);
	ev_timer_arm(r->step, 0);
}

static void
uri_next(struct report_run *r)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	const struct tlsrpt_uri *u;
	const char *why;
	char qu[600];
	int64_t v, now;

	uri_clear(r);
	while (r->uri < r->rec.nrua) {
		u = &r->rec.rua[r->uri];
		now = wall_ms();
		if (!r->preview) {
			if (state_get(r, S_DELIVERED, u) != 0) {
				r->ok++;	/* in an earlier run */
				r->uri++;
				continue;
			}
			if (state_get(r, S_GIVEN_UP, u) != 0) {
				r->bad++;
				r->uri++;
				continue;
			}
			if (r->expired) {
				/* not reached before the pair's deadline */
				park(r, now + (int64_t)r->opts.backoff_ms);
				r->uri++;
				continue;
			}
			v = r->opts.retry_now ? 0 : state_get(r, S_NEXT, u);
			if (next_pending(r, v, now)) {
				park(r, v);
				r->uri++;
				continue;
			}
		}
		if (dest_used_up(r, u)) {
			/* its receiver had its time in this run (logged) */
			park(r, now + (int64_t)r->opts.backoff_ms);
			r->uri++;
			continue;
		}
		/* what this gateway will not send (its configuration, its
		 * key) first: a URI skipped so is never tried, and claims no
		 * destination.  It has no delivery state, so a claim made
		 * for it was made again at every run of its pair (a sibling
		 * URI parked), until the pair's 8 and the day's
		 * max_destinations were used up by one URI never tried */
		why = NULL;
		if (u->kind == TLSRPT_URI_MAILTO &&
		    r->cfg->tlsrpt_https_only)
			why = "tlsrpt_https_only";
		else if (u->kind == TLSRPT_URI_MAILTO &&
		    r->cfg->tlsrpt_dkim_key[0] == '\0')
			why = "no tlsrpt_dkim_key (RFC 8460 requires DKIM)";
		else if (u->kind == TLSRPT_URI_MAILTO && dkim_key(r) == NULL)
			why = "the DKIM key could not be loaded";
		else if (!r->preview && dest_claim(r, u, &why) == -1) {
			/* the store failed (logged): not without a claim */
			park(r, now + (int64_t)r->opts.backoff_ms);
			r->uri++;
			continue;
		} else if (why != NULL)
			;	/* over a destination bound */
		else if (u->kind == TLSRPT_URI_MAILTO && mail_build(r, u) == -1)
			why = "the message could not be built";
		if (why == NULL) {
			try_uri(r);
			return;
		}
		log_info("event=tlsrpt-delivery domain=%s day=%lld uri=%s "
		    "result=skipped reason=\"%s\"", j->domain,
		    (long long)j->day, log_q(qu, sizeof(qu), u->uri), why);
		count("reports", transport(u), "skipped");
		r->tot.skipped++;
		r->uri++;
	}
	job_end(r);
}

static void
job_build(struct report_run *r)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	int64_t rnd = r->preview ? 0 : state_get(r, S_ID, NULL);
	char *json = NULL, hex[17];
	int rc;

	/* the day it covers and a random part, made once per pair and
	 * kept: a URI retried in a later run gets the same report under
	 * the same id, so a receiver that had it already can tell (a
	 * preview's, whose day is not over, is never kept) */
	if (rnd <= 0) {
		uint64_t u = 0;

		if (RAND_bytes((unsigned char *)&u, sizeof(u)) != 1)
			u = (uint64_t)wall_ms() * 2654435761u;
		rnd = (int64_t)(u >> 1) | 1;
		if (!r->preview) {
			state_put(r, S_ID, NULL, rnd);
			(void)state_flush(r, 1);
		}
	}
	{
		time_t t = (time_t)(j->day * 86400);
		struct tm tm;
		char ymd[16];

		gmtime_r(&t, &tm);
		strftime(ymd, sizeof(ymd), "%Y%m%d", &tm);
		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)rnd);
		snprintf(r->report_id, sizeof(r->report_id), "%s.%s", ymd,
		    hex);
	}
	rc = tlsrpt_report_build(r->store, j->domain, j->day, r->org,
	    r->contact, r->report_id, &json);
	if (rc == 1 && (tlsrpt_gzip(json, strlen(json), &r->gz,
	    &r->gzlen) == -1 || tlsrpt_filename(r->submitter, j->domain,
	    j->day, hex, r->filename, sizeof(r->filename)) == -1))
		rc = -1;
	free(json);
	if (rc != 1) {
		log_warn("event=tlsrpt-build-failed domain=%s day=%lld "
		    "error=\"%s\"", j->domain, (long long)j->day, rc == 0 ?
		    "nothing recorded" : tlsrpt_store_error(r->store));
		r->tot.deferred++;
		r->ji++;
		job_clear(r);
		ev_timer_arm(r->step, 0);
		return;
	}
	r->tot.built++;
	count("built", NULL, NULL);
	log_info("event=tlsrpt-report domain=%s day=%lld report_id=%s "
	    "file=\"%s\" bytes=%zu uris=%d%s", j->domain, (long long)j->day,
	    r->report_id, r->filename, r->gzlen, r->rec.nrua,
	    r->rec.rua_over > 0 ? " note=\"URIs past the first 8 of its "
	    "record not used\"" : "");
	r->uri = 0;
	uri_next(r);
}

/* Identical URIs of one record get one report. */
static void
dedup(struct tlsrpt_policy_record *rec)
{
	char a[TLSRPT_URI_MAX + 400], b[TLSRPT_URI_MAX + 400];
	int i, k, n = 0;

	for (i = 0; i < rec->nrua; i++) {
		uri_key(&rec->rua[i], a, sizeof(a));
		for (k = 0; k < n; k++) {
			uri_key(&rec->rua[k], b, sizeof(b));
			if (strcmp(a, b) == 0)
				break;
		}
		if (k < n)
			continue;
		if (n != i)
			rec->rua[n] = rec->rua[i];
		n++;
	}
	rec->nrua = n;
}

/*
 * The pair's TXT lookup did not give a valid record (why): it waits for a
 * later run as a failed URI does, after the same backoff (its first
 * failure and tries are pair values, its next try the pair's S_JOB, so a
 * run skips it until then without a lookup), and is given up after the
 * same give_up_ms: dropped, marked sent without a report, logged
 * (event=tlsrpt-report result=dropped) and counted
 * (mxguard_tlsrpt_reports_dropped_total{reason}).  A preview keeps no
 * state: it is only deferred.
 */
static void
txt_failed(struct report_run *r, const char *reason, const char *why)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	int64_t now = wall_ms(), next = 0, delay = 0;
	int tries = 0, final = 0;
	char name[160], qe[400];

	if (!r->preview) {
		tries = tries_get(r, NULL);
		final = backoff(r, NULL, tries, now, &next, &delay);
	}
	log_q(qe, sizeof(qe), why);
	if (final) {
		state_stage(r, j->domain, (int64_t)time(NULL));
		(void)state_flush(r, 0);
		r->tot.no_record++;
		snprintf(name, sizeof(name), "mxguard_tlsrpt_reports_dropped_"
		    "total{reason=\"%s\"}", reason);
		stats_add(stats_get(name, "TLSRPT reports given up for want of "
		    "a valid _smtp._tls record"), 1);
		log_warn("event=tlsrpt-report domain=%s day=%lld result=dropped "
		    "reason=%s error=%s try=%d final=yes", j->domain,
		    (long long)j->day, reason, qe, tries + 1);
	} else {
		if (!r->preview) {
			state_put(r, S_JOB, NULL, next);
			(void)state_flush(r, 0);
			if (r->tot.next_retry_ms == 0 ||
			    next < r->tot.next_retry_ms)
				r->tot.next_retry_ms = next;
		}
		r->tot.deferred++;
		if (r->preview)
			log_info("event=tlsrpt-report domain=%s day=%lld "
			    "result=deferred reason=%s error=%s preview=yes",
			    j->domain, (long long)j->day, reason, qe);
		else
			log_info("event=tlsrpt-report domain=%s day=%lld "
			    "result=deferred reason=%s error=%s try=%d final=no "
			    "next_in_s=%lld", j->domain, (long long)j->day,
			    reason, qe, tries + 1,
			    (long long)((delay + 999) / 1000));
	}
	r->ji++;
	job_clear(r);
	ev_timer_arm(r->step, 0);
}

static void
on_txt(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct report_run *r = arg;
	char err[160] = "";
	int sel = 0;

	r->txtq = NULL;
	if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE)) {
		/* the whole answer, past the 64 records it keeps */
		if ((sel = tlsrpt_txt_select_answer(a, &r->rec, err,
		    sizeof(err))) == -2) {
			/* a record past the kept unreadable: cannot tell */
			txt_failed(r, "lookup-failed", err);
			return;
		}
	} else if (st != DNS_NXDOMAIN && st != DNS_NODATA) {
		/* cannot tell: tried again later, as a failed URI */
		snprintf(err, sizeof(err), "TXT lookup: %s",
		    dns_status_name(st));
		txt_failed(r, "lookup-failed", err);
		return;
	}
	if (sel != 1) {
		/* The domain had a valid record when its sessions were
		 * counted (tlsrpt_rec.c counts no others): one gone now is
		 * as likely a passing DNS mistake, or an on-path attacker
		 * answering for an unsigned zone to keep the report of its
		 * own attack from going out, as a domain that stopped
		 * asking.  So no record is a failed lookup too: retried,
		 * then given up after the same window. */
		char why[300];

		if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE))
			snprintf(why, sizeof(why), "no valid _smtp._tls "
			    "record%s%s", err[0] ? ": " : "", err);
		else
			snprintf(why, sizeof(why), "no valid _smtp._tls "
			    "record: TXT lookup: %s", dns_status_name(st));
		txt_failed(r, "no-record", why);
		return;
	}
	if (!r->preview && state_get(r, S_FIRST, NULL) != 0) {
		/* the lookup's retries start again at its next failure */
		state_put(r, S_FIRST, NULL, 0);
		state_put(r, S_TRIES, NULL, 0);
		(void)state_flush(r, 0);
	}
	dedup(&r->rec);
	job_build(r);
}

static void
finish_run(struct report_run *r)
{
	report_done_cb *cb = r->cb;
	void *arg = r->arg;
	struct report_totals t = r->tot;

	log_info("event=tlsrpt-run-done due=%d built=%d sent=%d failed=%d "
	    "parked=%d skipped=%d no_record=%d deferred=%d waiting=%d", t.due,
	    t.built, t.sent, t.failed, t.parked, t.skipped, t.no_record,
	    t.deferred, t.waiting);
	run_free(r);
	cb(arg, &t);
}

static void
job_next(struct report_run *r)
{
	const struct tlsrpt_due *j;
	char name[300];
	int64_t v, now = wall_ms();

	if (r->ji < r->njobs && now >= r->run_end) {
		/* the run's time is up: the rest stays due, for a run soon */
		log_info("event=tlsrpt-run-deadline run_s=%llu left=%zu",
		    (unsigned long long)(r->opts.run_ms / 1000),
		    r->njobs - r->ji);
		r->tot.deferred += (int)(r->njobs - r->ji);
		r->ji = r->njobs;
		v = now + (int64_t)r->opts.backoff_ms;
		if (r->tot.next_retry_ms == 0 || v < r->tot.next_retry_ms)
			r->tot.next_retry_ms = v;
	}
	if (r->ji >= r->njobs) {
		finish_run(r);
		return;
	}
	j = &r->jobs[r->ji];
	r->preview = j->day >= r->today;
	v = r->preview || r->opts.retry_now ? 0 : state_get(r, S_JOB, NULL);
	if (next_pending(r, v, now)) {
		/* its URIs are parked: not before then */
		r->tot.waiting++;
		if (r->tot.next_retry_ms == 0 || v < r->tot.next_retry_ms)
			r->tot.next_retry_ms = v;
		r->ji++;
		ev_timer_arm(r->step, 0);
		return;
	}
	ev_timer_arm(r->jobdl, r->opts.job_ms);
	snprintf(name, sizeof(name), "_smtp._tls.%s", j->domain);
	if ((r->txtq = dns_query(r->dns, name, DNS_T_TXT, on_txt, r)) ==
	    NULL)
		txt_failed(r, "lookup-failed", "cannot start the TXT lookup");
}

struct ord {
	int64_t		 when;		/* the pair's next try, 0 none */
	size_t		 i;		/* in the due list */
};

static int
ord_cmp(const void *a, const void *b)
{
	const struct ord *x = a, *y = b;

	if (x->when != y->when)
		return x->when < y->when ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * The run's order: first the pairs never tried (no next try kept), in the
 * due list's order (oldest day first); then those waiting for a retry, the
 * earliest next try first.  So retries, however many and however slow (a
 * TXT lookup that times out takes dns_timeout), never hold up a pair's
 * first try; and a retry the run's deadline left behind keeps its place
 * before those tried since.  Returns the number of pairs never tried, or
 * -1 (out of memory: the list's order is kept).
 */
static long
order_jobs(struct report_run *r)
{
	struct ord *o;
	struct tlsrpt_due *copy;
	size_t i;
	long fresh = 0;

	if (r->njobs == 0)
		return 0;
	if ((o = calloc(r->njobs, sizeof(*o))) == NULL ||
	    (copy = malloc(r->njobs * sizeof(*copy))) == NULL) {
		free(o);
		return -1;
	}
	for (i = 0; i < r->njobs; i++) {
		o[i].i = i;
		o[i].when = state_read(r, &r->jobs[i], S_JOB, NULL);
		if (o[i].when <= 0) {
			o[i].when = 0;
			fresh++;
		}
	}
	qsort(o, r->njobs, sizeof(*o), ord_cmp);
	for (i = 0; i < r->njobs; i++)
		copy[i] = r->jobs[o[i].i];
	memcpy(r->jobs, copy, r->njobs * sizeof(*copy));
	free(copy);
	free(o);
	return fresh;
}

uint64_t
report_day_grace(uint64_t now_s, uint64_t delay_ms, unsigned grace_s)
{
	uint64_t at_ms = now_s * 1000 + delay_ms;
	uint64_t into = at_ms % (86400ULL * 1000);

	if (into >= (uint64_t)grace_s * 1000)
		return delay_ms;
	return delay_ms + (uint64_t)grace_s * 1000 - into;
}

struct report_run *
report_run(struct ev_loop *loop, const struct config *cfg,
    struct tlsrpt_store *store, struct policy *policy,
    const struct report_opts *opts, report_done_cb *cb, void *arg,
    char *err, size_t errsz)
{
	struct report_run *r;
	int64_t today = tlsrpt_day((int64_t)time(NULL));
	const char *at;
	long n, fresh;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	r->loop = loop;
	r->cfg = cfg;
	r->store = store;
	r->policy = policy;
	r->opts = *opts;
	if (r->opts.backoff_ms == 0)
		r->opts.backoff_ms = BACKOFF_MS;
	if (r->opts.backoff_max_ms == 0)
		r->opts.backoff_max_ms = BACKOFF_MAX_MS;
	if (r->opts.backoff_max_ms < r->opts.backoff_ms)
		r->opts.backoff_max_ms = r->opts.backoff_ms;
	if (r->opts.give_up_ms == 0)
		r->opts.give_up_ms = GIVE_UP_MS;
	if (r->opts.try_ms == 0)
		r->opts.try_ms = TRY_MS;
	if (r->opts.job_ms == 0)
		r->opts.job_ms = JOB_MS;
	if (r->opts.run_ms == 0)
		r->opts.run_ms = RUN_MS;
	if (r->opts.dest_ms == 0)
		r->opts.dest_ms = DEST_MS;
	if (r->opts.max_mx <= 0)
		r->opts.max_mx = MAX_MX;
	if (r->opts.max_addr <= 0)
		r->opts.max_addr = MAX_ADDR;
	r->today = today;
	r->run_end = wall_ms() + (int64_t)r->opts.run_ms;
	r->cb = cb;
	r->arg = arg;
	report_from(cfg, r->from, sizeof(r->from));
	at = strrchr(r->from, '@');
	snprintf(r->submitter, sizeof(r->submitter), "%s", at ? at + 1 :
	    r->from);
	/* EHLO goes to the MX of every rua a domain names, anyone's: with
	 * tlsrpt_from set, the name the operator shows receivers (as the
	 * organization-name), not this host's, which may be an inside one
	 * (gw3.dmz.corp.example) that no public DNS knows either */
	if (cfg->tlsrpt_from[0] != '\0' && fqdn(r->submitter))
		snprintf(r->helo, sizeof(r->helo), "%s", r->submitter);
	else {
		if (gethostname(r->helo, sizeof(r->helo) - 1) == -1)
			r->helo[0] = '\0';
		r->helo[sizeof(r->helo) - 1] = '\0';
		if (!fqdn(r->helo))
			snprintf(r->helo, sizeof(r->helo), "%s",
			    fqdn(r->submitter) ? r->submitter : "");
			    /* "": the address literal */
	}
	/* the name the operator shows receivers (tlsrpt_from's domain),
	 * not this host's, which may be an inside one: it goes to every
	 * domain that asks for reports */
	snprintf(r->org, sizeof(r->org), "%s", cfg->tlsrpt_org_name[0] ?
	    cfg->tlsrpt_org_name : r->submitter);
	if (cfg->tlsrpt_contact[0])
		snprintf(r->contact, sizeof(r->contact), "%s",
		    cfg->tlsrpt_contact);
	else
		snprintf(r->contact, sizeof(r->contact), "%s", r->from);
	if ((r->jobs = calloc(MAX_JOBS, sizeof(*r->jobs))) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	/* one run at a time: two would both send what is due */
	switch (tlsrpt_run_lock(store)) {
	case -1:
		snprintf(err, errsz, "%s", tlsrpt_store_error(store));
		goto fail;
	case 0:
		log_warn("event=tlsrpt-run-busy note=\"another report run "
		    "(the daemon's, or mxguard report send) is under way on "
		    "this store: this one sends nothing, tried again in "
		    "%llu s\"", (unsigned long long)((r->opts.backoff_ms +
		    999) / 1000));
		r->tot.busy = 1;
		r->tot.next_retry_ms = wall_ms() +
		    (int64_t)r->opts.backoff_ms;
		n = 0;
		break;
	default:
		r->locked = 1;
		/* due: days before today; with now, today too (tomorrow's
		 * list), as a preview: never marked sent (job_end) */
		n = tlsrpt_due_list(store, opts->now ? today + 1 : today,
		    r->jobs, MAX_JOBS, &r->njobs);
		break;
	}
	if (n == -1) {
		snprintf(err, errsz, "%s", tlsrpt_store_error(store));
		goto fail;
	}
	r->tot.due = (int)r->njobs;
	fresh = order_jobs(r);
	if ((r->dns = dns_new(loop, cfg, err, errsz)) == NULL)
		goto fail;
	if ((r->https = policy_webpki_ctx(cfg, err, errsz)) == NULL)
		goto fail;
	if ((r->tls = tls_ctx_new_client(cfg, err, errsz)) == NULL)
		goto fail;
	r->env.loop = loop;
	r->env.cfg = &r->cfg;
	r->env.tls = &r->tls;
	r->env.policy = policy;
	r->env.no_history = 1;	/* the rua domains' MX hosts: anyone's choice */
	if ((r->step = ev_timer_new(loop, done_cb, r)) == NULL ||
	    (r->trydl = ev_timer_new(loop, trydl_cb, r)) == NULL ||
	    (r->jobdl = ev_timer_new(loop, jobdl_cb, r)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	log_info("event=tlsrpt-run due=%zu fresh=%ld now=%s", r->njobs, fresh,
	    opts->now ? "yes" : "no");
	ev_timer_arm(r->step, 0);
	return r;
fail:
	run_free(r);
	return NULL;
}
