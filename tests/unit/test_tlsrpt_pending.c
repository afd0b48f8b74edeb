/*
 * test_tlsrpt_pending.c - the attempts the TLSRPT recorder keeps while
 * their domain's _smtp._tls lookup runs are bounded in all, not only per
 * domain (policy/tlsrpt_rec.c, TLSRPT_REC_PENDING_BYTES): each holds a
 * copy of its verdict, and a DANE verdict's report strings and TLSA
 * RRset are up to a few hundred KB, so many domains whose answers an
 * attacker holds back until just before dns_timeout (32 attempts each,
 * 10,000 domains) held gigabytes.  DNS faked (fakedns.h): the loop never
 * runs, so every lookup stays under way.  And a lookup this host could not
 * make (DNS_LOCAL) settles "no record" for a minute only, not for a
 * failed lookup's five (time() wrapped: timestep.h).
 */
// WRAP: dns_query dns_cancel time
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/log.h"
#include "core/stats.h"
#include "policy/tlsrpt.h"
#include "policy/tlsrpt_rec.h"
#include "policy/verdict_tls.h"

#include "fakedns.h"
#include "heapmeter.h"
#include "timestep.h"

#define NDOM	200
#define RPTLEN	(200 * 1024)	/* a TLSA RRset's report strings */

static void
test_pending_bytes_bounded(void **state)
{
	char dir[] = "/tmp/mxg-rpend-XXXXXX", err[256], cmd[300];
	struct tlsrpt_rec *rc;
	struct policy_verdict v;
	struct policy_attempt at;
	struct stat_ctr *errs;
	struct mallinfo2 m0, m1;
	int64_t errs0;
	int i, measure = heap_measurable();

	(void)state;
	log_init("test", 0, LOG_LVL_ERR);
	assert_non_null(mkdtemp(dir));
	loop = ev_loop_new();
	rc = tlsrpt_rec_new(loop, dir, err, sizeof(err));
	assert_non_null(rc);
	errs = stats_get("mxguard_tlsrpt_attempts_total{result=\"error\"}",
	    NULL);
	errs0 = stats_value(errs);

	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_DANE;
	v.source = "dane";
	assert_non_null(v.rpt = calloc(1, sizeof(*v.rpt) + RPTLEN));
	v.rpt->type = TLSRPT_POLICY_TLSA;
	v.rpt->nstrings = 1;
	v.rpt->len = RPTLEN;
	memset(v.rpt->buf, 'a', RPTLEN - 1);
	memset(&at, 0, sizeof(at));
	at.result = "validation-failure";
	at.detail = "x";

	m0 = mallinfo2();
	for (i = 0; i < NDOM; i++) {
		snprintf(v.domain, sizeof(v.domain), "d%d.flood.test", i);
		tlsrpt_rec_attempt(rc, NULL, &v, &at);
	}
	m1 = mallinfo2();
	/* every domain's lookup asked and waiting */
	assert_int_equal(queries, NDOM);
	assert_true(tlsrpt_rec_busy(rc));
	/* 200 attempts of 200 KB: 40 MB wanted; 16 MB kept, the rest
	 * counted as errors.  Red before: none refused, 40 MB held */
	assert_true(stats_value(errs) - errs0 >= NDOM -
	    (int64_t)(TLSRPT_REC_PENDING_BYTES / RPTLEN));
	if (measure)
		assert_true(m1.uordblks - m0.uordblks <
		    TLSRPT_REC_PENDING_BYTES + 2 * 1024 * 1024);

	free(v.rpt);
	tlsrpt_rec_free(rc);
	fakes_clear();
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* The loop runs until no _smtp._tls lookup is under way (the fake's
 * answers come from zero timers); a test that waits longer fails. */
static struct tlsrpt_rec *settle_rc;
static int settle_late;
static struct ev_timer *settle_t;

static void
settle_poll(void *arg)
{
	struct ev_timer *t = *(struct ev_timer **)arg;

	if (!tlsrpt_rec_busy(settle_rc))
		ev_loop_stop(loop);
	else
		ev_timer_arm(t, 1);
}

static void
settle_limit(void *arg)
{
	settle_late = 1;
	ev_loop_stop(loop);
}

static void
settle(struct tlsrpt_rec *rc)
{
	struct ev_timer *p, *l;

	settle_rc = rc;
	settle_late = 0;
	p = ev_timer_new(loop, settle_poll, &settle_t);
	l = ev_timer_new(loop, settle_limit, NULL);
	assert_non_null(p);
	assert_non_null(l);
	settle_t = p;
	ev_timer_arm(p, 0);
	ev_timer_arm(l, 5000);
	ev_loop_run(loop);
	ev_timer_free(p);
	ev_timer_free(l);
	assert_false(settle_late);
}

/*
 * A domain's _smtp._tls lookup that failed for want of this gateway's own
 * resources (DNS_LOCAL: no descriptor, buffer or memory for the query)
 * says nothing of the domain, yet settled "no record" for TTL_FAIL
 * (300 s) as a SERVFAIL does: a flood that took the descriptors for a
 * moment dropped the domain's reports for five minutes, the failures an
 * attacker caused meanwhile included.  Now such a lookup is kept TTL_MIN
 * (60 s): 61 s later an attempt asks again and is counted.  A SERVFAIL
 * still holds for TTL_FAIL.  Red before: no second lookup of loc.test.
 */
static void
test_local_failure_short(void **state)
{
	char dir[] = "/tmp/mxg-rpend-XXXXXX", err[256], cmd[300];
	struct tlsrpt_rec *rc;
	struct policy_verdict v;
	struct policy_attempt at;
	struct stat_ctr *skip, *fail;
	int64_t skip0, fail0;
	struct msg m;

	(void)state;
	log_init("test", 0, LOG_LVL_ERR);
	assert_non_null(mkdtemp(dir));
	loop = ev_loop_new();
	rc = tlsrpt_rec_new(loop, dir, err, sizeof(err));
	assert_non_null(rc);
	skip = stats_get("mxguard_tlsrpt_attempts_total{result=\"no-record\"}",
	    NULL);
	fail = stats_get("mxguard_tlsrpt_attempts_total{result=\"failure\"}",
	    NULL);
	queries = 0;
	time_step = 0;
	answer("_smtp._tls.loc.test", DNS_T_TXT, DNS_LOCAL, NULL);
	answer("_smtp._tls.sf.test", DNS_T_TXT, DNS_SERVFAIL, NULL);

	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_VERIFY;
	v.source = "mta-sts";
	memset(&at, 0, sizeof(at));
	at.result = "validation-failure";
	at.detail = "x";
	snprintf(v.domain, sizeof(v.domain), "loc.test");
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	snprintf(v.domain, sizeof(v.domain), "sf.test");
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	assert_int_equal(queries, 2);
	skip0 = stats_value(skip);
	settle(rc);
	/* both waiting attempts dropped: no record known */
	assert_int_equal(stats_value(skip) - skip0, 2);

	/* the resolver is back, and both domains publish a record */
	begin(&m, 0x1234, 0, 0, "_smtp._tls.loc.test", DNS_T_TXT, 1, 0, 0);
	rr_txt(&m, "_smtp._tls.loc.test", "v=TLSRPTv1; rua=mailto:r@loc.test",
	    NULL, 300);
	answer("_smtp._tls.loc.test", DNS_T_TXT, DNS_INSECURE, &m);
	begin(&m, 0x1234, 0, 0, "_smtp._tls.sf.test", DNS_T_TXT, 1, 0, 0);
	rr_txt(&m, "_smtp._tls.sf.test", "v=TLSRPTv1; rua=mailto:r@sf.test",
	    NULL, 300);
	answer("_smtp._tls.sf.test", DNS_T_TXT, DNS_INSECURE, &m);

	time_step = 61;
	fail0 = stats_value(fail);
	skip0 = stats_value(skip);
	snprintf(v.domain, sizeof(v.domain), "loc.test");
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	snprintf(v.domain, sizeof(v.domain), "sf.test");
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	/* loc.test asked again; sf.test's failure still holds */
	assert_int_equal(queries, 3);
	assert_int_equal(stats_value(skip) - skip0, 1);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 1);

	/* and sf.test asks again after TTL_FAIL */
	time_step = 301;
	snprintf(v.domain, sizeof(v.domain), "sf.test");
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	assert_int_equal(queries, 4);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 2);

	time_step = 0;
	tlsrpt_rec_free(rc);
	fakes_clear();
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * A valid record stands in for a re-lookup that fails.  stale.test's
 * record (TTL 60 s) is known; 61 s later its lookup gets SERVFAIL (an
 * attacker on the path drops or spoils the answers, or the domain's
 * servers have a bad minute): that says nothing of the domain, yet the
 * attempts were dropped as "no record" for TTL_FAIL (300 s), every
 * time, so the attacker's own failures went uncounted.  Now they are
 * counted under the record known, for up to TTL_STALE past its TTL;
 * NXDOMAIN (the domain's word) still stops the counting, and so does a
 * failure past TTL_STALE.
 */
static void
test_stale_record_on_failure(void **state)
{
	char dir[] = "/tmp/mxg-rpend-XXXXXX", err[256], cmd[300];
	struct tlsrpt_rec *rc;
	struct policy_verdict v;
	struct policy_attempt at;
	struct stat_ctr *skip, *fail;
	int64_t skip0, fail0;
	struct msg m;

	(void)state;
	log_init("test", 0, LOG_LVL_ERR);
	assert_non_null(mkdtemp(dir));
	loop = ev_loop_new();
	rc = tlsrpt_rec_new(loop, dir, err, sizeof(err));
	assert_non_null(rc);
	skip = stats_get("mxguard_tlsrpt_attempts_total{result=\"no-record\"}",
	    NULL);
	fail = stats_get("mxguard_tlsrpt_attempts_total{result=\"failure\"}",
	    NULL);
	queries = 0;
	time_step = 0;
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_VERIFY;
	v.source = "mta-sts";
	snprintf(v.domain, sizeof(v.domain), "stale.test");
	memset(&at, 0, sizeof(at));
	at.result = "starttls-not-supported";
	at.detail = "x";

	begin(&m, 0x1234, 0, 0, "_smtp._tls.stale.test", DNS_T_TXT, 1, 0, 0);
	rr_txt(&m, "_smtp._tls.stale.test",
	    "v=TLSRPTv1; rua=mailto:r@stale.test", NULL, 60);
	answer("_smtp._tls.stale.test", DNS_T_TXT, DNS_INSECURE, &m);
	fail0 = stats_value(fail);
	skip0 = stats_value(skip);
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 1);

	/* expired; its lookup fails: counted all the same */
	answer("_smtp._tls.stale.test", DNS_T_TXT, DNS_SERVFAIL, NULL);
	time_step = 61;
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	assert_int_equal(queries, 2);
	settle(rc);
	assert_int_equal(stats_value(skip) - skip0, 0);
	assert_int_equal(stats_value(fail) - fail0, 2);
	/* asked again after TTL_FAIL, a timeout now: still counted */
	answer("_smtp._tls.stale.test", DNS_T_TXT, DNS_TIMEOUT, NULL);
	time_step = 61 + 301;
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	assert_int_equal(queries, 3);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 3);

	/* past TTL_STALE: no record known any more */
	time_step = 60 + 86400 + 1;
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	assert_int_equal(queries, 4);
	settle(rc);
	assert_int_equal(stats_value(skip) - skip0, 1);
	assert_int_equal(stats_value(fail) - fail0, 3);

	/* the record back, then NXDOMAIN: the domain's word, not counted */
	answer("_smtp._tls.stale.test", DNS_T_TXT, DNS_INSECURE, &m);
	time_step += 301;
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 4);
	answer("_smtp._tls.stale.test", DNS_T_TXT, DNS_NXDOMAIN, NULL);
	time_step += 61;
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	assert_int_equal(queries, 6);
	settle(rc);
	assert_int_equal(stats_value(skip) - skip0, 2);
	assert_int_equal(stats_value(fail) - fail0, 4);

	time_step = 0;
	tlsrpt_rec_free(rc);
	fakes_clear();
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * The wall clock stepped back (a host that ran a year ahead, set right
 * by NTP; or an attacker on the path to the NTP server who moved it
 * forward for a moment while it made back.test's _smtp._tls lookup
 * fail): the cache's times were written on the clock ahead.  An answer
 * is kept TTL_MAX (a day) at most, so one that expires further ahead
 * than that was written before a step back: asked again.  Red before:
 * the failed lookup's "no record" held for the year of the step, no
 * lookup was made and back.test's attempts went uncounted (queries 1,
 * not 2).  A valid record's serve-stale time is bounded the same way.
 */
static void
test_clock_stepped_back(void **state)
{
	char dir[] = "/tmp/mxg-rpend-XXXXXX", err[256], cmd[300];
	struct tlsrpt_rec *rc;
	struct policy_verdict v;
	struct policy_attempt at;
	struct stat_ctr *skip, *fail;
	int64_t skip0, fail0;
	struct msg m;

	(void)state;
	log_init("test", 0, LOG_LVL_ERR);
	assert_non_null(mkdtemp(dir));
	loop = ev_loop_new();
	rc = tlsrpt_rec_new(loop, dir, err, sizeof(err));
	assert_non_null(rc);
	skip = stats_get("mxguard_tlsrpt_attempts_total{result=\"no-record\"}",
	    NULL);
	fail = stats_get("mxguard_tlsrpt_attempts_total{result=\"failure\"}",
	    NULL);
	queries = 0;
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_VERIFY;
	v.source = "mta-sts";
	memset(&at, 0, sizeof(at));
	at.result = "starttls-not-supported";
	at.detail = "x";

	/* a year ahead: the lookup fails, no record known */
	time_step = 366 * 86400;
	answer("_smtp._tls.back.test", DNS_T_TXT, DNS_SERVFAIL, NULL);
	skip0 = stats_value(skip);
	snprintf(v.domain, sizeof(v.domain), "back.test");
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	assert_int_equal(queries, 1);
	settle(rc);
	assert_int_equal(stats_value(skip) - skip0, 1);

	/* set right; TTL_FAIL passes; the domain answers */
	time_step = 301;
	begin(&m, 0x1234, 0, 0, "_smtp._tls.back.test", DNS_T_TXT, 1, 0, 0);
	rr_txt(&m, "_smtp._tls.back.test",
	    "v=TLSRPTv1; rua=mailto:r@back.test", NULL, 60);
	answer("_smtp._tls.back.test", DNS_T_TXT, DNS_INSECURE, &m);
	fail0 = stats_value(fail);
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	assert_int_equal(queries, 2);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 1);

	/* a valid record seen a year ahead stands for a failed lookup no
	 * longer than TTL_MAX + TTL_STALE (two days) after the step */
	time_step = 366 * 86400;
	tlsrpt_rec_attempt(rc, NULL, &v, &at);	/* expired: asked again */
	assert_int_equal(queries, 3);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 2);
	answer("_smtp._tls.back.test", DNS_T_TXT, DNS_SERVFAIL, NULL);
	time_step = 0;
	tlsrpt_rec_attempt(rc, NULL, &v, &at);	/* stale: counted */
	assert_int_equal(queries, 4);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 3);
	time_step = 2 * 86400 + 301;
	skip0 = stats_value(skip);
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	assert_int_equal(queries, 5);
	settle(rc);
	assert_int_equal(stats_value(skip) - skip0, 1);
	assert_int_equal(stats_value(fail) - fail0, 3);

	time_step = 0;
	tlsrpt_rec_free(rc);
	fakes_clear();
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * An attempt's result type by name: NULL and "success" are a success,
 * anything else a failure.  An empty name (a failure whose reason got
 * lost on the way) was counted as a success, which would tell the domain
 * its MX was fine on a connection that failed.  Now it is section
 * 4.3.3's validation-failure, as an unknown name already was.  Red
 * before: the empty one counted as a success.
 */
static void
test_result_names(void **state)
{
	static const struct {
		const char	*result;
		int		 ok;
	} t[] = {
		{ NULL, 1 }, { "success", 1 }, { "", 0 },
		{ "starttls-not-supported", 0 }, { "no-such-type", 0 },
	};
	char dir[] = "/tmp/mxg-rpend-XXXXXX", err[256], cmd[300];
	struct tlsrpt_rec *rc;
	struct policy_verdict v;
	struct policy_attempt at;
	struct stat_ctr *ok, *fail;
	int64_t ok0, fail0;
	struct msg m;
	size_t i;

	(void)state;
	log_init("test", 0, LOG_LVL_ERR);
	assert_non_null(mkdtemp(dir));
	loop = ev_loop_new();
	rc = tlsrpt_rec_new(loop, dir, err, sizeof(err));
	assert_non_null(rc);
	ok = stats_get("mxguard_tlsrpt_attempts_total{result=\"success\"}",
	    NULL);
	fail = stats_get("mxguard_tlsrpt_attempts_total{result=\"failure\"}",
	    NULL);
	time_step = 0;
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_VERIFY;
	v.source = "mta-sts";
	snprintf(v.domain, sizeof(v.domain), "names.test");
	begin(&m, 0x1235, 0, 0, "_smtp._tls.names.test", DNS_T_TXT, 1, 0, 0);
	rr_txt(&m, "_smtp._tls.names.test",
	    "v=TLSRPTv1; rua=mailto:r@names.test", NULL, 3600);
	answer("_smtp._tls.names.test", DNS_T_TXT, DNS_INSECURE, &m);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&at, 0, sizeof(at));
		at.result = t[i].result;
		at.detail = "x";
		ok0 = stats_value(ok);
		fail0 = stats_value(fail);
		tlsrpt_rec_attempt(rc, NULL, &v, &at);
		settle(rc);
		assert_int_equal(stats_value(ok) - ok0, t[i].ok);
		assert_int_equal(stats_value(fail) - fail0, !t[i].ok);
	}

	tlsrpt_rec_free(rc);
	fakes_clear();
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * What the domain says of its own record ends a stale one at once: a
 * NODATA, an answer whose only TXT record is not a TLSRPT one, and one
 * whose TLSRPT record is invalid each stop the counting, the record
 * having been valid a TTL before (test_stale_record_on_failure covers
 * NXDOMAIN and the failures that keep it).  Green before and after
 * 487de9d; red with NODATA (or the answers) taken for a failure there.
 */
static void
test_stale_ends_on_domain_word(void **state)
{
	static const char *said[] = { NULL, "v=spf1 -all",
	    "v=TLSRPTv1; rua=ftp://r.word.test/" };
	char dir[] = "/tmp/mxg-rpend-XXXXXX", err[256], cmd[300];
	struct tlsrpt_rec *rc;
	struct policy_verdict v;
	struct policy_attempt at;
	struct stat_ctr *skip, *fail;
	int64_t skip0, fail0;
	struct msg m, w;
	size_t i;

	(void)state;
	log_init("test", 0, LOG_LVL_ERR);
	assert_non_null(mkdtemp(dir));
	loop = ev_loop_new();
	rc = tlsrpt_rec_new(loop, dir, err, sizeof(err));
	assert_non_null(rc);
	skip = stats_get("mxguard_tlsrpt_attempts_total{result=\"no-record\"}",
	    NULL);
	fail = stats_get("mxguard_tlsrpt_attempts_total{result=\"failure\"}",
	    NULL);
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_VERIFY;
	v.source = "mta-sts";
	snprintf(v.domain, sizeof(v.domain), "word.test");
	memset(&at, 0, sizeof(at));
	at.result = "starttls-not-supported";
	at.detail = "x";
	begin(&m, 0x1236, 0, 0, "_smtp._tls.word.test", DNS_T_TXT, 1, 0, 0);
	rr_txt(&m, "_smtp._tls.word.test",
	    "v=TLSRPTv1; rua=mailto:r@word.test", NULL, 60);
	time_step = 0;
	for (i = 0; i < sizeof(said) / sizeof(said[0]); i++) {
		/* the record, counted */
		fakes_clear();
		answer("_smtp._tls.word.test", DNS_T_TXT, DNS_INSECURE, &m);
		fail0 = stats_value(fail);
		skip0 = stats_value(skip);
		tlsrpt_rec_attempt(rc, NULL, &v, &at);
		settle(rc);
		assert_int_equal(stats_value(fail) - fail0, 1);
		/* expired, and the domain's word: dropped */
		fakes_clear();
		if (said[i] == NULL) {
			begin(&w, 0x1237, 0, 0, "_smtp._tls.word.test",
			    DNS_T_TXT, 0, 0, 0);
			answer("_smtp._tls.word.test", DNS_T_TXT, DNS_NODATA,
			    &w);
		} else {
			begin(&w, 0x1237, 0, 0, "_smtp._tls.word.test",
			    DNS_T_TXT, 1, 0, 0);
			rr_txt(&w, "_smtp._tls.word.test", said[i], NULL, 60);
			answer("_smtp._tls.word.test", DNS_T_TXT, DNS_INSECURE,
			    &w);
		}
		time_step += 61;
		tlsrpt_rec_attempt(rc, NULL, &v, &at);
		settle(rc);
		assert_int_equal(stats_value(fail) - fail0, 1);
		assert_int_equal(stats_value(skip) - skip0, 1);
		/* and a failure after it finds no record to stand in */
		fakes_clear();
		answer("_smtp._tls.word.test", DNS_T_TXT, DNS_SERVFAIL, NULL);
		time_step += 301;
		tlsrpt_rec_attempt(rc, NULL, &v, &at);
		settle(rc);
		assert_int_equal(stats_value(fail) - fail0, 1);
		assert_int_equal(stats_value(skip) - skip0, 2);
		time_step += 301;
	}

	time_step = 0;
	tlsrpt_rec_free(rc);
	fakes_clear();
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* 65 TXT records at _smtp._tls.<dom>: first (NULL: junk), 63 junk, then
 * the 65th, past the 64 an answer keeps (DNS_MAX_RR): last (malformed
 * when bad) */
static void
cut_answer(struct msg *m, const char *dom, const char *first,
    const char *last, int bad)
{
	char name[300];
	int i;

	snprintf(name, sizeof(name), "_smtp._tls.%s", dom);
	begin(m, 0x1240, 0, 0, name, DNS_T_TXT, 65, 0, 0);
	if (first != NULL)
		rr_txt(m, name, first, NULL, 60);
	else
		rr_txt_q(m, "\001x", 2, 60);
	for (i = 0; i < 63; i++)
		rr_txt_q(m, "\001x", 2, 60);
	if (bad)
		rr_txt_q(m, "\011v=TLSRPT", 9, 60);	/* runs past its rdata */
	else
		rr_txt(m, name, last, NULL, 60);
	answer(name, DNS_T_TXT, DNS_INSECURE, m);
}

/*
 * An _smtp._tls answer of more TXT records than an answer keeps (64) was
 * judged on the kept ones: a second v=TLSRPTv1 record past the 64th
 * (RFC 8460 section 3: no reports) left the first counted, a lone one
 * there left the domain unreported.  Now the whole answer is read; one
 * past the kept that cannot be read is a failed lookup (the record known
 * stands, TTL_STALE), neither "no record" nor the kept part's verdict.
 * Red before: lone.test dropped, two.test counted, stale.test dropped
 * (no record in the kept part), keptone.test counted.
 */
static void
test_txt_cut(void **state)
{
	char dir[] = "/tmp/mxg-rpend-XXXXXX", err[256], cmd[300];
	struct tlsrpt_rec *rc;
	struct policy_verdict v;
	struct policy_attempt at;
	struct stat_ctr *skip, *fail;
	int64_t skip0, fail0;
	struct msg m;

	(void)state;
	log_init("test", 0, LOG_LVL_ERR);
	assert_non_null(mkdtemp(dir));
	loop = ev_loop_new();
	rc = tlsrpt_rec_new(loop, dir, err, sizeof(err));
	assert_non_null(rc);
	skip = stats_get("mxguard_tlsrpt_attempts_total{result=\"no-record\"}",
	    NULL);
	fail = stats_get("mxguard_tlsrpt_attempts_total{result=\"failure\"}",
	    NULL);
	time_step = 0;
	memset(&v, 0, sizeof(v));
	v.level = TLS_LEVEL_VERIFY;
	v.source = "mta-sts";
	memset(&at, 0, sizeof(at));
	at.result = "starttls-not-supported";
	at.detail = "x";

	/* the domain's only TLSRPT record 65th: counted */
	fakes_clear();
	cut_answer(&m, "lone.test", NULL, "v=TLSRPTv1; rua=mailto:r@lone.test",
	    0);
	snprintf(v.domain, sizeof(v.domain), "lone.test");
	fail0 = stats_value(fail);
	skip0 = stats_value(skip);
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 1);
	assert_int_equal(stats_value(skip) - skip0, 0);

	/* one first, another 65th: no reports */
	fakes_clear();
	cut_answer(&m, "two.test", "v=TLSRPTv1; rua=mailto:r@two.test",
	    "v=TLSRPTv1; rua=mailto:s@two.test", 0);
	snprintf(v.domain, sizeof(v.domain), "two.test");
	fail0 = stats_value(fail);
	skip0 = stats_value(skip);
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 0);
	assert_int_equal(stats_value(skip) - skip0, 1);

	/* a record valid a TTL ago, then an answer whose 65th record
	 * cannot be read: a failure, the record known stands */
	fakes_clear();
	begin(&m, 0x1241, 0, 0, "_smtp._tls.stale.test", DNS_T_TXT, 1, 0, 0);
	rr_txt(&m, "_smtp._tls.stale.test",
	    "v=TLSRPTv1; rua=mailto:r@stale.test", NULL, 60);
	answer("_smtp._tls.stale.test", DNS_T_TXT, DNS_INSECURE, &m);
	snprintf(v.domain, sizeof(v.domain), "stale.test");
	fail0 = stats_value(fail);
	skip0 = stats_value(skip);
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 1);
	fakes_clear();
	cut_answer(&m, "stale.test", NULL, NULL, 1);
	time_step += 61;
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 2);
	assert_int_equal(stats_value(skip) - skip0, 0);

	/* nothing known, a valid record kept, the 65th unreadable: a
	 * failure, not the kept part's "report" */
	fakes_clear();
	cut_answer(&m, "keptone.test", "v=TLSRPTv1; rua=mailto:r@keptone.test",
	    NULL, 1);
	snprintf(v.domain, sizeof(v.domain), "keptone.test");
	fail0 = stats_value(fail);
	skip0 = stats_value(skip);
	tlsrpt_rec_attempt(rc, NULL, &v, &at);
	settle(rc);
	assert_int_equal(stats_value(fail) - fail0, 0);
	assert_int_equal(stats_value(skip) - skip0, 1);

	time_step = 0;
	tlsrpt_rec_free(rc);
	fakes_clear();
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pending_bytes_bounded),
		cmocka_unit_test(test_local_failure_short),
		cmocka_unit_test(test_stale_record_on_failure),
		cmocka_unit_test(test_result_names),
		cmocka_unit_test(test_stale_ends_on_domain_word),
		cmocka_unit_test(test_txt_cut),
		cmocka_unit_test(test_clock_stepped_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
