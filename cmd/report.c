/*
 * report.c - `mxguard report`: the SMTP TLS Reporting (RFC 8460) counts
 * and reports (docs/tlsrpt.md).
 *
 *   mxguard report show [DOMAIN] [--json]
 *       the counts kept in state_dir/tlsrpt.mdb for today and yesterday
 *       (UTC), per policy domain, and whether its report was sent;
 *   mxguard report send [--now]
 *       builds and delivers the reports that are due (days before today
 *       not sent yet; --now: today's counts so far too, for testing), at
 *       once, with a few quick retries (the daemon waits longer).
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
#include "policy/tlsrpt.h"
#include "tlsproxy/report.h"

#define SHOW_MAX	2000

static void
usage(void)
{
	fprintf(stderr, "usage: mxguard report show [domain] [--json]\n"
	    "       mxguard report send [--now]\n");
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

static int
send_now(const struct config *cfg, struct tlsrpt_store *st, int now)
{
	struct ev_loop *loop;
	struct report_opts o;
	struct report_run *r;
	char err[512];

	if ((loop = ev_loop_new()) == NULL) {
		fprintf(stderr, "mxguard: report: no event loop\n");
		return 1;
	}
	memset(&o, 0, sizeof(o));
	o.now = now;
	o.attempts = 3;
	o.backoff_ms = 2000;
	if ((r = report_run(loop, cfg, st, NULL, &o, sent_cb, loop, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "mxguard: report: %s\n", err);
		ev_loop_free(loop);
		return 1;
	}
	ev_loop_run(loop);
	if (!done)
		report_cancel(r);
	io_linger_flush();	/* a connection still waiting for its close */
	ev_loop_free(loop);
	printf("due=%d built=%d sent=%d failed=%d skipped=%d no_record=%d "
	    "deferred=%d\n", totals.due, totals.built, totals.sent,
	    totals.failed, totals.skipped, totals.no_record,
	    totals.deferred);
	return totals.failed || totals.deferred ? 2 : 0;
}

int
cmd_report(int argc, char **argv, struct config *cfg,
    const struct cmd_opts *opts)
{
	struct tlsrpt_store *st;
	const char *dom = NULL;
	char err[512];
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
	log_init("mxguard", 0, cfg->log_level);
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
