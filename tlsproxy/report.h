/*
 * report.h - delivering the SMTP TLS Reporting aggregate reports (RFC 8460
 * section 5) that policy/tlsrpt_store.c counted.
 *
 * A run takes the (day, policy domain) pairs that are due (days before
 * today that were not sent; with `now`, today's too), one after the
 * other.  For each: the _smtp._tls TXT record is looked up again (only a
 * valid record gets a report: RFC 8460 section 3), the report is built
 * (JSON, gzip, file name: policy/tlsrpt_report.c), and delivered to every
 * rua URI:
 *   https:   POST, Content-Type application/tlsrpt+gzip, through the MTA-STS
 *            HTTPS client (policy/http.c: WebPKI, SNI, SO_MARK);
 *   mailto:  the DKIM-signed multipart/report of policy/tlsrpt_mail.c,
 *            sent by mxguard itself over an upstream leg (tlsproxy/leg.c)
 *            to the MX hosts of the address's domain (policy/mx.c's
 *            walk).  The leg is secured at level "may" whatever the
 *            domain publishes: RFC 8460 section 5.3 wants report delivery
 *            not to fail on TLS, so a stripped STARTTLS or a bad
 *            certificate means cleartext.  The leg's socket carries
 *            upstream_mark, so the divert rules never send the report
 *            back into mxguard, and the attempt is no session: nothing is
 *            recorded about the report's own delivery.
 * Each URI gets up to `attempts` tries, `backoff_ms` apart and doubling;
 * each try is logged (event=tlsrpt-delivery) and counted
 * (mxguard_tlsrpt_deliveries_total{transport,result}).  When every URI
 * was tried, the pair is marked sent (also when all of them failed: the
 * next day brings a new report).  A domain whose record is gone is marked
 * sent without delivery; one whose lookup failed stays due.
 *
 * Who frees what: report_run() returns a run that ends with its callback
 * (the run is freed before it) or report_cancel() (no callback).  The
 * run owns its resolver, its TLS contexts and its legs; the store and
 * the policy engine are the caller's and must outlive the run.
 */
#ifndef MXG_REPORT_H
#define MXG_REPORT_H

#include <stdint.h>

#include "core/config.h"
#include "core/ev.h"

struct policy;
struct tlsrpt_store;
struct report_run;

struct report_opts {
	int		 now;		/* today's counts too */
	int		 attempts;	/* tries per URI (0: 4) */
	uint64_t	 backoff_ms;	/* before the 2nd try (0: 60 s) */
};

struct report_totals {
	int		 due;		/* pairs looked at */
	int		 built;		/* reports built */
	int		 sent;		/* URIs delivered to */
	int		 failed;	/* URIs given up */
	int		 skipped;	/* URIs not tried (mailto without
					 * DKIM key, tlsrpt_https_only) */
	int		 no_record;	/* pairs whose domain has no valid
					 * _smtp._tls record any more */
	int		 deferred;	/* pairs left due (lookup failed) */
};

typedef void report_done_cb(void *arg, const struct report_totals *);

/* policy may be NULL (no TLS history notes then).  NULL with err when
 * the run cannot start; the callback always comes from the event loop. */
struct report_run *report_run(struct ev_loop *, const struct config *,
		    struct tlsrpt_store *, struct policy *,
		    const struct report_opts *, report_done_cb *, void *arg,
		    char *err, size_t errsz);
void		 report_cancel(struct report_run *);

/* The report's submitter and sender: tlsrpt_from, or
 * noreply-tlsrpt@<host name>. */
void		 report_from(const struct config *, char *buf, size_t sz);

#endif
