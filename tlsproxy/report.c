/*
 * report.c - delivering TLSRPT reports (see report.h, docs/tlsrpt.md).
 *
 * One run walks its list of due (day, domain) pairs in order, one pair
 * and one URI at a time: reports are few (one per domain and day) and a
 * sequential run keeps the load on receivers and on us flat.  The state
 * of the URI being delivered is in struct report_run itself:
 *
 *   job_next -> TXT lookup -> build -> uri_next -> (https | smtp) try
 *     -> delivered / try failed -> retry timer -> try ... -> uri_next
 *     -> all URIs tried -> mark sent -> job_next -> ... -> done
 *
 * SMTP: MX walk of the address's domain, then its hosts' addresses in
 * order until one accepts: greeting, EHLO, leg_secure() at level "may",
 * MAIL, RCPT, DATA, the message (dot-stuffed), QUIT.  A 5xx to MAIL, RCPT
 * or the message is final for that URI; anything else tries the next
 * address, and after the last one the URI's try failed.
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
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/log.h"
#include "core/stats.h"
#include "policy/dns.h"
#include "policy/http.h"
#include "policy/mx.h"
#include "policy/policy.h"
#include "policy/tlsrpt.h"
#include "tlsproxy/leg.h"
#include "tlsproxy/report.h"
#include "tlsproxy/tls.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define MAX_JOBS	10000	/* pairs one run takes on */
#define CTYPE		"application/tlsrpt+gzip"

enum smtp_step { ST_NONE, ST_MAIL, ST_RCPT, ST_DATA, ST_DOT, ST_QUIT };

struct report_run {
	struct ev_loop		*loop;
	const struct config	*cfg;
	struct tlsrpt_store	*store;
	struct policy		*policy;
	struct report_opts	 opts;
	report_done_cb		*cb;
	void			*arg;
	struct report_totals	 tot;

	struct dns		*dns;
	SSL_CTX			*https;		/* WebPKI store */
	struct tls_ctx		*tls;		/* SMTP legs */
	struct leg_env		 env;
	char			 from[320];
	char			 submitter[256];
	char			 helo[256];
	char			 org[256];
	char			 contact[330];

	struct tlsrpt_due	*jobs;
	size_t			 njobs, ji;
	struct ev_timer		*step;		/* next job from the loop */
	struct ev_timer		*retry;

	/* the job */
	struct dns_req		*txtq;
	struct tlsrpt_policy_record rec;
	unsigned char		*gz;
	size_t			 gzlen;
	char			 filename[700];
	char			 report_id[80];
	int			 uri;		/* rua index being delivered */
	int			 ok, bad;	/* URIs of this job */

	/* the URI */
	int			 attempt;
	struct http_req		*http;
	char			*msg;		/* mailto: the message */
	size_t			 msglen;
	struct mx_walk		*walk;
	struct mx_result	*mx;
	int			 host, addr;	/* next address to try */
	struct leg		*leg;
	enum smtp_step		 sstep;
	int			 permanent;	/* a 5xx: no more tries */
	char			 lasterr[300];
};

static void job_next(struct report_run *);
static void uri_next(struct report_run *);
static void try_uri(struct report_run *);
static void smtp_next_addr(struct report_run *);

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
	ev_timer_stop(r->retry);
	free(r->msg);
	r->msg = NULL;
	r->attempt = 0;
	r->permanent = 0;
	r->lasterr[0] = '\0';
}

static void
job_clear(struct report_run *r)
{
	dns_cancel(r->txtq);
	r->txtq = NULL;
	uri_clear(r);
	free(r->gz);
	r->gz = NULL;
	memset(&r->rec, 0, sizeof(r->rec));
	r->uri = r->ok = r->bad = 0;
}

static void
run_free(struct report_run *r)
{
	job_clear(r);
	ev_timer_free(r->step);
	ev_timer_free(r->retry);
	free(r->jobs);
	dns_free(r->dns);
	SSL_CTX_free(r->https);
	tls_ctx_free(r->tls);
	free(r);
}

void
report_cancel(struct report_run *r)
{
	if (r != NULL)
		run_free(r);
}

static const char *
transport(const struct tlsrpt_uri *u)
{
	return u->kind == TLSRPT_URI_HTTPS ? "https" : "mailto";
}

/* One try of the current URI is over: ok, or failed (r->lasterr). */
static void
try_done(struct report_run *r, int ok)
{
	const struct tlsrpt_uri *u = &r->rec.rua[r->uri];
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	uint64_t delay;
	int last;

	count("deliveries", transport(u), ok ? "sent" : "failed");
	last = ok || r->permanent || r->attempt >= r->opts.attempts;
	{
		char qu[600], qe[600];

		log_info("event=tlsrpt-delivery domain=%s day=%lld uri=%s "
		    "try=%d result=%s%s%s%s", j->domain, (long long)j->day,
		    log_q(qu, sizeof(qu), u->uri), r->attempt,
		    ok ? "sent" : "failed", ok ? "" : " error=",
		    ok ? "" : log_q(qe, sizeof(qe), r->lasterr),
		    ok ? "" : last ? " final=yes" : " final=no");
	}
	http_cancel(r->http);
	r->http = NULL;
	smtp_clear(r);
	if (!last) {
		delay = r->opts.backoff_ms << (r->attempt - 1 < 10 ?
		    r->attempt - 1 : 10);
		ev_timer_arm(r->retry, delay);
		return;
	}
	count("reports", transport(u), ok ? "sent" : "failed");
	if (ok) {
		r->tot.sent++;
		r->ok++;
	} else {
		r->tot.failed++;
		r->bad++;
	}
	r->uri++;
	uri_next(r);
}

static void
retry_cb(void *arg)
{
	try_uri(arg);
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
	if (ok != 0)
		snprintf(r->lasterr, sizeof(r->lasterr), "%s", err ? err :
		    "failed");
	try_done(r, ok == 0);
}

static void
try_https(struct report_run *r, const struct tlsrpt_uri *u)
{
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
		leg_hello(l, r->helo);
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

/* The next address of the MX hosts, in the walk's order. */
static void
smtp_next_addr(struct report_run *r)
{
	const struct mx_host *h;
	char tag[24];

	for (; r->mx != NULL && r->host < r->mx->nhost; r->host++,
	    r->addr = 0) {
		h = &r->mx->host[r->host];
		if (r->addr >= h->naddr)
			continue;
		snprintf(tag, sizeof(tag), "tlsrpt-%zu", r->ji);
		r->leg = leg_new(&r->env, &h->addr[r->addr++], tag,
		    smtp_event, r);
		if (r->leg != NULL)
			return;
		snprintf(r->lasterr, sizeof(r->lasterr), "%s: cannot "
		    "connect", h->name);
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

	r->attempt++;
	r->lasterr[0] = '\0';
	if (u->kind == TLSRPT_URI_HTTPS)
		try_https(r, u);
	else
		try_mailto(r, u);
}

/* ---- jobs -------------------------------------------------------------- */

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
	m.dkim_key_file = r->cfg->tlsrpt_dkim_key;
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

static void
uri_next(struct report_run *r)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	const struct tlsrpt_uri *u;
	const char *why;
	char qu[600];

	uri_clear(r);
	while (r->uri < r->rec.nrua) {
		u = &r->rec.rua[r->uri];
		why = NULL;
		if (u->kind == TLSRPT_URI_MAILTO && r->cfg->tlsrpt_https_only)
			why = "tlsrpt_https_only";
		else if (u->kind == TLSRPT_URI_MAILTO &&
		    r->cfg->tlsrpt_dkim_key[0] == '\0')
			why = "no tlsrpt_dkim_key (RFC 8460 requires DKIM)";
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
	/* every URI tried: this report is done */
	if (tlsrpt_mark_sent(r->store, j->day, j->domain,
	    (int64_t)time(NULL)) == -1)
		log_warn("event=tlsrpt-mark-failed domain=%s error=\"%s\"",
		    j->domain, tlsrpt_store_error(r->store));
	log_info("event=tlsrpt-report-done domain=%s day=%lld delivered=%d "
	    "failed=%d", j->domain, (long long)j->day, r->ok, r->bad);
	r->ji++;
	job_clear(r);
	ev_timer_arm(r->step, 0);
}

static void
job_build(struct report_run *r)
{
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	unsigned char rnd[12];
	char *json = NULL, hex[25];
	int i, rc;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	for (i = 0; i < 12; i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	{
		time_t t = (time_t)(j->day * 86400);
		struct tm tm;
		char ymd[16];

		gmtime_r(&t, &tm);
		strftime(ymd, sizeof(ymd), "%Y%m%d", &tm);
		/* the day it covers, and random: unique per report */
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
	    "file=\"%s\" bytes=%zu uris=%d", j->domain, (long long)j->day,
	    r->report_id, r->filename, r->gzlen, r->rec.nrua);
	r->uri = 0;
	uri_next(r);
}

static void
on_txt(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct report_run *r = arg;
	const struct tlsrpt_due *j = &r->jobs[r->ji];
	const char *txts[DNS_MAX_RR];
	size_t lens[DNS_MAX_RR];
	char err[160] = "";
	int i, n = 0, sel = 0;

	r->txtq = NULL;
	if (a != NULL && (st == DNS_SECURE || st == DNS_INSECURE)) {
		for (i = 0; i < a->nrr && n < DNS_MAX_RR; i++) {
			txts[n] = a->rr[i].u.txt.text;
			lens[n++] = a->rr[i].u.txt.len;
		}
		sel = tlsrpt_txt_select(txts, lens, n, &r->rec, err,
		    sizeof(err));
	} else if (st != DNS_NXDOMAIN && st != DNS_NODATA) {
		/* cannot tell: the report stays due for the next run */
		log_info("event=tlsrpt-report domain=%s day=%lld result=deferred "
		    "reason=\"TXT lookup: %s\"", j->domain, (long long)j->day,
		    dns_status_name(st));
		r->tot.deferred++;
		r->ji++;
		job_clear(r);
		ev_timer_arm(r->step, 0);
		return;
	}
	if (sel != 1) {
		log_info("event=tlsrpt-report domain=%s day=%lld result=dropped "
		    "reason=\"no valid _smtp._tls record%s%s\"", j->domain,
		    (long long)j->day, err[0] ? ": " : "", err);
		r->tot.no_record++;
		(void)tlsrpt_mark_sent(r->store, j->day, j->domain,
		    (int64_t)time(NULL));
		r->ji++;
		job_clear(r);
		ev_timer_arm(r->step, 0);
		return;
	}
	job_build(r);
}

static void
finish_run(struct report_run *r)
{
	report_done_cb *cb = r->cb;
	void *arg = r->arg;
	struct report_totals t = r->tot;

	log_info("event=tlsrpt-run-done due=%d built=%d sent=%d failed=%d "
	    "skipped=%d no_record=%d deferred=%d", t.due, t.built, t.sent,
	    t.failed, t.skipped, t.no_record, t.deferred);
	run_free(r);
	cb(arg, &t);
}

static void
job_next(struct report_run *r)
{
	char name[300];

	if (r->ji >= r->njobs) {
		finish_run(r);
		return;
	}
	snprintf(name, sizeof(name), "_smtp._tls.%s", r->jobs[r->ji].domain);
	if ((r->txtq = dns_query(r->dns, name, DNS_T_TXT, on_txt, r)) ==
	    NULL) {
		r->tot.deferred++;
		r->ji++;
		ev_timer_arm(r->step, 0);
	}
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
	long n;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	r->loop = loop;
	r->cfg = cfg;
	r->store = store;
	r->policy = policy;
	r->opts = *opts;
	if (r->opts.attempts <= 0)
		r->opts.attempts = 4;
	if (r->opts.backoff_ms == 0)
		r->opts.backoff_ms = 60000;
	r->cb = cb;
	r->arg = arg;
	report_from(cfg, r->from, sizeof(r->from));
	at = strrchr(r->from, '@');
	snprintf(r->submitter, sizeof(r->submitter), "%s", at ? at + 1 :
	    r->from);
	if (gethostname(r->helo, sizeof(r->helo) - 1) == -1 ||
	    r->helo[0] == '\0')
		snprintf(r->helo, sizeof(r->helo), "%s", r->submitter);
	snprintf(r->org, sizeof(r->org), "%s", cfg->tlsrpt_org_name[0] ?
	    cfg->tlsrpt_org_name : r->helo);
	if (cfg->tlsrpt_contact[0])
		snprintf(r->contact, sizeof(r->contact), "%s",
		    cfg->tlsrpt_contact);
	else
		snprintf(r->contact, sizeof(r->contact), "%s", r->from);
	if ((r->jobs = calloc(MAX_JOBS, sizeof(*r->jobs))) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	/* due: days before today; with now, today too (tomorrow's list) */
	if ((n = tlsrpt_due_list(store, opts->now ? today + 1 : today,
	    r->jobs, MAX_JOBS, &r->njobs)) == -1) {
		snprintf(err, errsz, "%s", tlsrpt_store_error(store));
		goto fail;
	}
	r->tot.due = (int)r->njobs;
	if ((r->dns = dns_new(loop, cfg, err, errsz)) == NULL)
		goto fail;
	if ((r->https = policy_webpki_ctx(cfg, err, errsz)) == NULL)
		goto fail;
	if ((r->tls = tls_ctx_new(cfg, err, errsz)) == NULL)
		goto fail;
	r->env.loop = loop;
	r->env.cfg = &r->cfg;
	r->env.tls = &r->tls;
	r->env.policy = policy;
	if ((r->step = ev_timer_new(loop, done_cb, r)) == NULL ||
	    (r->retry = ev_timer_new(loop, retry_cb, r)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	log_info("event=tlsrpt-run due=%zu now=%s", r->njobs, opts->now ?
	    "yes" : "no");
	ev_timer_arm(r->step, 0);
	return r;
fail:
	run_free(r);
	return NULL;
}
