/*
 * test_tlsrpt_pending.c - the attempts the TLSRPT recorder keeps while
 * their domain's _smtp._tls lookup runs are bounded in all, not only per
 * domain (policy/tlsrpt_rec.c, TLSRPT_REC_PENDING_BYTES): each holds a
 * copy of its verdict, and a DANE verdict's report strings and TLSA
 * RRset are up to a few hundred KB, so many domains whose answers an
 * attacker holds back until just before dns_timeout (32 attempts each,
 * 10,000 domains) held gigabytes.  DNS faked (fakedns.h): the loop never
 * runs, so every lookup stays under way.
 */
// WRAP: dns_query dns_cancel
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pending_bytes_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
