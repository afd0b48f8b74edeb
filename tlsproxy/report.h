/*
 * report.h - delivering the SMTP TLS Reporting aggregate reports (RFC 8460
 * section 5) that policy/tlsrpt_store.c counted.
 *
 * A run takes the (day, policy domain) pairs that are due (days before
 * today that were not sent; with `now`, today's too, as a preview), one
 * after the other.  For each: the _smtp._tls TXT record is looked up again
 * (only a valid record gets a report: RFC 8460 section 3), the report is
 * built (JSON, gzip, file name: policy/tlsrpt_report.c), and delivered to
 * every rua URI (identical URIs once):
 *   https:   POST, Content-Type application/tlsrpt+gzip, through the MTA-STS
 *            HTTPS client (policy/http.c: WebPKI, SNI, SO_MARK, global
 *            addresses only unless tlsrpt_private_destinations; a host
 *            with none is a final failure, as for mailto);
 *   mailto:  the DKIM-signed multipart/report of policy/tlsrpt_mail.c,
 *            sent by mxguard itself over an upstream leg (tlsproxy/leg.c)
 *            to the MX hosts of the address's domain (policy/mx.c's
 *            walk; at most max_mx hosts x max_addr addresses, global
 *            addresses only unless tlsrpt_private_destinations).  The
 *            leg is secured at level "may" whatever the domain publishes:
 *            RFC 8460 section 5.3 wants report delivery not to fail on
 *            TLS, so a stripped STARTTLS or a bad certificate means
 *            cleartext.  The leg's socket carries upstream_mark, so the
 *            divert rules never send the report back into mxguard, and
 *            the attempt is no session: nothing is recorded about it.
 *
 * Bounded: a run makes at most one try per URI, a try has a deadline
 * (try_ms for all of a mailto try; the HTTPS client's own timeout), a
 * report one (job_ms for all its URIs), the run one (run_ms), and a
 * destination (an https host, a mailto domain) has dest_ms in all for its
 * tries of the run (its later URIs are parked without a try: a tarpit
 * named by many reports costs the run dest_ms, not a try each).  A URI whose
 * try failed is parked: its next try is due after an exponential backoff
 * (backoff_ms doubling up to backoff_max_ms), in a later run, and the run
 * goes on with the next URI and report.  RFC 8460 section 5.5: retries for
 * up to give_up_ms (24 h) after the first try; then, or after a 5xx, the
 * URI is given up.  A pair is marked sent when every URI was delivered,
 * given up or skipped.  The delivery state (per day, domain and URI:
 * delivered, given up, first failure, next try, tries; per pair: its next
 * try) lives in the store's "sent" database under names that are no
 * domain (`<tag>-<hash>.tlsrpt.invalid`), pruned with the day, written
 * one transaction per try and flushed to disk once per pair (a crash of
 * the OS may cause a resend, never a loss).  Today's
 * pair (`now`) is a preview: no state, never marked sent.  A domain whose
 * lookup failed, or found no valid record (it had one when its sessions
 * were counted), is retried as a URI is (backoff, given up after
 * give_up_ms: dropped, marked sent without delivery).
 * Pairs never tried go before retries, so that retries cannot starve
 * them.  A URI tried for the first time is a new destination: at most 8
 * per pair ever (a record that names new URIs at each lookup gets no
 * more) and max_destinations per day (tlsrpt_dest_claim()); one over
 * either bound is skipped (mxguard_tlsrpt_destinations_refused_total).
 * Each try is logged (event=tlsrpt-delivery) and counted
 * (mxguard_tlsrpt_deliveries_total{transport,result}).
 *
 * One run at a time over a store (tlsrpt_run_lock(), a lock file in
 * state_dir): a run that finds another under way, the daemon's or a
 * `mxguard report send`'s, does nothing and ends with busy set, its next
 * try backoff_ms later; two at once sent the same reports twice.
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
	int		 now;		/* today's counts too (a preview) */
	int		 retry_now;	/* parked URIs now, whatever their
					 * next try (mxguard report send) */
	uint64_t	 backoff_ms;	/* after a first failure (0: 5 min) */
	uint64_t	 backoff_max_ms; /* (0: 1 h) */
	uint64_t	 give_up_ms;	/* after the first try (0: 24 h) */
	uint64_t	 try_ms;	/* one mailto try (0: 2 min) */
	uint64_t	 job_ms;	/* one report, all URIs (0: 15 min) */
	uint64_t	 run_ms;	/* the run: later reports stay due
					 * (0: 1 h) */
	uint64_t	 dest_ms;	/* one destination (https host,
					 * mailto domain): all its tries
					 * in the run (0: 5 min) */
	int		 max_mx;	/* MX hosts per mailto try (0: 2) */
	int		 max_addr;	/* addresses per host (0: 2) */
};

struct report_totals {
	int		 due;		/* pairs looked at */
	int		 built;		/* reports built */
	int		 sent;		/* URIs delivered to */
	int		 failed;	/* URIs given up (5xx, 24 h passed,
					 * a preview's failure) */
	int		 parked;	/* URIs that failed, tried again
					 * later (also those not reached
					 * before a deadline) */
	int		 skipped;	/* URIs not tried (mailto without
					 * DKIM key, tlsrpt_https_only,
					 * over a destination bound) */
	int		 no_record;	/* pairs dropped: no valid
					 * _smtp._tls record any more, or
					 * its lookup failed for
					 * give_up_ms */
	int		 deferred;	/* pairs left due (lookup failed,
					 * retried later; run deadline) */
	int		 waiting;	/* pairs left due with URIs parked,
					 * or skipped before their next
					 * try */
	int64_t		 next_retry_ms;	/* wall clock (ms) of the earliest
					 * parked retry, 0 none */
	int		 busy;		/* another run held the store's
					 * run lock: nothing done, try
					 * again at next_retry_ms */
};

typedef void report_done_cb(void *arg, const struct report_totals *);

/* policy may be NULL (no TLS history notes then).  NULL with err when
 * the run cannot start; the callback always comes from the event loop. */
struct report_run *report_run(struct ev_loop *, const struct config *,
		    struct tlsrpt_store *, struct policy *,
		    const struct report_opts *, report_done_cb *, void *arg,
		    char *err, size_t errsz);
void		 report_cancel(struct report_run *);
/* The configuration the run started with, which it keeps to its end. */
const struct config *report_run_config(const struct report_run *);

/*
 * A run's delay (ms from now_s, wall clock seconds) moved out of the first
 * grace_s seconds of a UTC day: a day's counts may still come in then (an
 * attempt waits for its domain's _smtp._tls lookup before it is recorded
 * under the day it was made, and a worker writes its records to the store
 * up to a second late), and a run then would send that day's report and
 * mark it sent without them.  A delay outside that window is returned as
 * it is.
 */
uint64_t	 report_day_grace(uint64_t now_s, uint64_t delay_ms,
		    unsigned grace_s);
/* The grace: 60 s plus twice dns_timeout (an attempt's _smtp._tls
 * lookup, tried twice, and a worker's flush of its records). */
#define REPORT_DAY_GRACE_S(c) \
	((unsigned)(60 + 2 * (((c)->dns_timeout + 999) / 1000)))

/* The report's submitter and sender: tlsrpt_from, or
 * noreply-tlsrpt@<host name>. */
void		 report_from(const struct config *, char *buf, size_t sz);

#endif
