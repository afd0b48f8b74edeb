/*
 * report.c - `mxguard report`: the SMTP TLS Reporting (RFC 8460) counts
 * and reports (docs/tlsrpt.md).
 *
 *   mxguard report show [DOMAIN] [--json]
 *       the counts kept in state_dir/tlsrpt.mdb for today and yesterday
 *       (UTC), per policy domain, and whether its report was sent; DOMAIN
 *       as the daemon spells it (lower case, A-labels, no trailing dot);
 *   mxguard report send [--now]
 *       builds and delivers the reports that are due (days before today
 *       not sent yet), at once: up to 3 runs, 2 and 4 s apart, each one
 *       trying the URIs not delivered yet (also those the daemon parked
 *       for a later retry).  --now: also today's counts so far, as a
 *       preview: sent, but today is not marked sent, so its full report
 *       still goes out tomorrow.
 *
 * The store is LMDB: these commands read and write it while the daemon
 * runs.  Run as root, they drop to `user` before opening it, as the
 * daemon does (cmd/priv.h).  Exit status: 0; 1 on usage or setup
 * errors; 2 when `send` gave up on some URI or left a report due.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "cmd/priv.h"
#include "core/ev.h"
#include "core/io.h"
#include "core/log.h"
#include "policy/sts.h"
#include "policy/tlsrpt.h"
#include "tlsproxy/report.h"

#define SHOW_MAX	2000

static void
usage(void)
{
	fprintf(stderr, "usage: mxguard report show [domain] [--json]\n"
	    "       mxguard report send [--now]\n"
	    "  send: deliver the reports due (days before today); --now: "
	    "also today's\n"
	    "  counts so far, as a preview (today stays due for tomorrow)\n");
}

static void
day_str(int64_t day, char *buf, size_t sz)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sz, "%Y-%m-%d", &tm);
}

/* JSON strings here are domain names (LDH): no escaping needed, but the
 * store is outside input, so anything else is refused. */
static int
plain(const char *s)
{
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e || *s == '"' || *s == '\\')
			return 0;
	return 1;
}

static int
show(struct tlsrpt_store *st, const char *only, int json)
{
	static char doms[SHOW_MAX][254];
	int64_t today = tlsrpt_day((int64_t)time(NULL)), day;
	struct tlsrpt_counts c;
	struct tlsrpt_day_stats ds;
	size_t n, i;
	char ds_s[16];
	int d, first = 1, sent;

	if (json)
		printf("{\"days\": [");
	for (d = 0; d < 2; d++) {
		day = today - d;
		day_str(day, ds_s, sizeof(ds_s));
		if (tlsrpt_day_domains(st, day, doms, SHOW_MAX, &n) == -1 ||
		    tlsrpt_day_stats(st, day, &ds) == -1) {
			fprintf(stderr, "mxguard: report: %s\n",
			    tlsrpt_store_error(st));
			return 1;
		}
		if (json)
			printf("%s{\"date\": \"%s\", \"overflow-sessions\": "
			    "%llu, \"domains\": [", d ? ", " : "", ds_s,
			    (unsigned long long)ds.overflow_sessions);
		else
			printf("%s (%s)%s\n", ds_s, d ? "yesterday" : "today",
			    ds.overflow_sessions ? "" : "");
		first = 1;
		for (i = 0; i < n; i++) {
			if (only != NULL && strcmp(only, doms[i]) != 0)
				continue;
			if (!plain(doms[i]) ||
			    tlsrpt_counts(st, day, doms[i], &c) != 1)
				continue;
			sent = tlsrpt_is_sent(st, day, doms[i], NULL) == 1;
			if (json)
				printf("%s{\"domain\": \"%s\", \"successful\": "
				    "%llu, \"failed\": %llu, \"policies\": %u, "
				    "\"detail-overflow\": %llu, \"sent\": %s}",
				    first ? "" : ", ", doms[i],
				    (unsigned long long)c.successful,
				    (unsigned long long)c.failed, c.policies,
				    (unsigned long long)c.detail_overflow,
				    sent ? "true" : "false");
			else
				printf("  %-40s successful=%llu failed=%llu "
				    "policies=%u%s\n", doms[i],
				    (unsigned long long)c.successful,
				    (unsigned long long)c.failed, c.policies,
				    sent ? " sent" : "");
			first = 0;
		}
		if (json)
			printf("]}");
		else if (first)
			printf("  (nothing recorded%s)\n", only ? " for it" :
			    "");
		if (!json && ds.overflow_sessions)
			printf("  sessions over the store's bounds: %llu\n",
			    (unsigned long long)ds.overflow_sessions);
	}
	if (json)
		printf("]}\n");
	return 0;
}

#define SEND_RUNS	3	/* runs of `report send` */
#define SEND_BACKOFF_MS	2000	/* before the 2nd run, doubling */

static struct report_totals totals;
static int done;

static void
sent_cb(void *arg, const struct report_totals *t)
{
	struct ev_loop *loop = arg;

	totals = *t;
	done = 1;
	ev_loop_stop(loop);
}

static void
wake_cb(void *arg)
{
	ev_loop_stop(arg);
}

/* One run to its end: 0, or -1 (err). */
static int
one_run(struct ev_loop *loop, const struct config *cfg,
    struct tlsrpt_store *st, const struct report_opts *o, char *err,
    size_t errsz)
{
	struct report_run *r;

	done = 0;
	if ((r = report_run(loop, cfg, st, NULL, o, sent_cb, loop, err,
	    errsz)) == NULL)
		return -1;
	ev_loop_run(loop);
	if (!done)
		report_cancel(r);
	return 0;
}

static int
send_now(const struct config *cfg, struct tlsrpt_store *st, int now)
{
	struct ev_loop *loop;
	struct ev_timer *wait;
	struct report_opts o;
	struct report_totals sum;
	char err[512];
	uint64_t grace;
	int i, rc = 0;

	if ((loop = ev_loop_new()) == NULL ||
	    (wait = ev_timer_new(loop, wake_cb, loop)) == NULL) {
		fprintf(stderr, "mxguard: report: no event loop\n");
		if (loop != NULL)
			ev_loop_free(loop);
		return 1;
	}
	/* not in the first seconds of a UTC day (report_day_grace(), as the
	 * daemon's runs): the daemon's last counts of the day before may
	 * still be on their way, and this run would send that day's reports
	 * and mark them sent without them (a cron job at 00:00) */
	if ((grace = report_day_grace((uint64_t)time(NULL), 0,
	    REPORT_DAY_GRACE_S(cfg))) > 0) {
		fprintf(stderr, "mxguard: report: the first %u s of a UTC day, "
		    "when the day before's last counts may still come in: "
		    "waiting %llu s\n", REPORT_DAY_GRACE_S(cfg),
		    (unsigned long long)(grace + 999) / 1000);
		ev_timer_arm(wait, grace);
		ev_loop_run(loop);
	}
	memset(&o, 0, sizeof(o));
	memset(&sum, 0, sizeof(sum));
	o.now = now;
	o.retry_now = 1;	/* the operator asks: parked URIs too */
	o.backoff_ms = SEND_BACKOFF_MS;
	for (i = 0; i < SEND_RUNS; i++) {
		if (i > 0) {
			/* only what is still parked, after a short wait */
			ev_timer_arm(wait, (uint64_t)SEND_BACKOFF_MS << (i - 1));
			ev_loop_run(loop);
			o.now = 0;	/* the preview went once */
		}
		if (one_run(loop, cfg, st, &o, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: report: %s\n", err);
			rc = 1;
			break;
		}
		if (totals.busy) {
			/* the daemon's run (or another send) has the lock */
			fprintf(stderr, "mxguard: report: another report run "
			    "is under way on %s (the daemon's, or another "
			    "report send): %s\n", cfg->state_dir, i == 0 ?
			    "nothing sent, try again when it ends" : "it goes "
			    "on with what is left");
			if (i == 0)
				rc = 1;
			break;
		}
		if (i == 0)
			sum = totals;
		else {
			sum.built += totals.built;
			sum.sent += totals.sent;
			sum.failed += totals.failed;
			sum.skipped += totals.skipped;
			sum.no_record += totals.no_record;
		}
		sum.parked = totals.parked;
		sum.deferred = totals.deferred;
		sum.waiting = totals.waiting;
		if (totals.waiting == 0)
			break;
	}
	io_linger_flush();	/* a connection still waiting for its close */
	ev_timer_free(wait);
	ev_loop_free(loop);
	if (rc != 0)
		return rc;
	printf("due=%d built=%d sent=%d failed=%d skipped=%d no_record=%d "
	    "deferred=%d parked=%d\n", sum.due, sum.built, sum.sent,
	    sum.failed, sum.skipped, sum.no_record, sum.deferred, sum.parked);
	return sum.failed || sum.deferred || sum.waiting ? 2 : 0;
}

int
cmd_report(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	struct tlsrpt_store *st;
	struct cmd_cfgcheck cc;
	const char *dom = NULL;
	char err[512], domain[256];
	int i, json = 0, now = 0, rc;

	if (argc < 2 || (strcmp(argv[1], "show") != 0 &&
	    strcmp(argv[1], "send") != 0)) {
		usage();
		return 1;
	}
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[1], "show") == 0 && strcmp(argv[i],
		    "--json") == 0)
			json = 1;
		else if (strcmp(argv[1], "send") == 0 && strcmp(argv[i],
		    "--now") == 0)
			now = 1;
		else if (strcmp(argv[1], "show") == 0 && dom == NULL &&
		    argv[i][0] != '-')
			dom = argv[i];
		else {
			usage();
			return 1;
		}
	}
	/* the domain as the store keeps it, the engine's spelling (lower
	 * case, A-labels, no trailing dot): "Example.COM." or a U-label
	 * found nothing recorded, though the counts were there */
	if (dom != NULL) {
		if (sts_domain_norm(dom, domain, sizeof(domain), err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "mxguard: report: %s: %s\n", dom, err);
			return 1;
		}
		dom = domain;
	}
	log_init("mxguard", 0, cfg->log_level);
	/* a daemon on another state_dir (the file's edited since its start:
	 * a reload keeps the start's) keeps its reports elsewhere: show says
	 * so, send does not send from a store the daemon does not write,
	 * nor mark its reports sent */
	cmd_config_vs_daemon(cfg, &cc);
	if (cc.other_dir) {
		fprintf(stderr, "mxguard: report: %s%s\n", cc.warning,
		    strcmp(argv[1], "send") == 0 ? "; nothing sent" : "");
		if (strcmp(argv[1], "send") == 0)
			return 1;
	}
	/* the store is opened as `user`, never as root (cmd/priv.h) */
	if (priv_drop_cmd(cfg, strcmp(argv[1], "send") == 0,
	    err, sizeof(err)) == -1 ||
	    (st = tlsrpt_store_open(cfg->state_dir, NULL, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "mxguard: report: %s\n", err);
		return 1;
	}
	if (strcmp(argv[1], "show") == 0)
		rc = show(st, dom, json);
	else
		rc = send_now(cfg, st, now);
	tlsrpt_store_close(st);
	return rc;
}
