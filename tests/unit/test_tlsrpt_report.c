/*
 * test_tlsrpt_report.c - the TLSRPT store and report: counts per UTC day
 * (across a day boundary), surviving a reopen, the bounds and their
 * overflow counters, due/sent/prune, the report JSON checked field by
 * field against RFC 8460 section 4 (sts and tlsa policies with failure
 * details, no-policy-found), the gzip round trip and the file name.
 *
 * test_report_json also writes the reports it checked to
 * <dir of this binary>/tlsrpt-example-{sts,tlsa}.json: docs/tlsrpt.md
 * shows them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <libgen.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>
#include <zlib.h>

#include "policy/tlsrpt.h"

static char dir[64];
static char example_dir[4096];

static void
write_example(const char *name, const char *json)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", example_dir, name);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "%s\n", json);
	fclose(f);
}

/* 2024-05-01, a Wednesday: 19844 days after 1970-01-01 */
#define DAY	19844
#define T0	((int64_t)DAY * 86400)

static const char *const sts_lines[] = {
	"version: STSv1", "mode: enforce", "mx: mx1.company-y.example",
	"mx: *.backup.company-y.example", "max_age: 604800",
};
static const char *const sts_mx[] = {
	"mx1.company-y.example", "*.backup.company-y.example",
};
static const char *const tlsa_recs[] = {
	"3 1 1 8ACD2C1E5BB40C0C2A5C8B3DDFDE76E1E5E0A4E67E7F2C5EB0A1A2C3D4E5F601",
	"2 0 1 1C2B3A4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F809",
};
static const char *const tlsa_mx[] = { "mx.dane.example" };

static struct tlsrpt_attempt
sts_attempt(enum tlsrpt_result r, const char *mx, const char *ip)
{
	struct tlsrpt_attempt a;

	memset(&a, 0, sizeof(a));
	a.policy_domain = "Company-Y.Example.";
	a.policy_type = TLSRPT_POLICY_STS;
	a.policy_strings = sts_lines;
	a.npolicy_strings = 5;
	a.mx_hosts = sts_mx;
	a.nmx_hosts = 2;
	a.result = r;
	a.sending_mta_ip = "192.0.2.25";
	a.receiving_mx_hostname = mx;
	a.receiving_ip = ip;
	return a;
}

static struct tlsrpt_attempt
tlsa_attempt(enum tlsrpt_result r)
{
	struct tlsrpt_attempt a;

	memset(&a, 0, sizeof(a));
	a.policy_domain = "dane.example";
	a.policy_type = TLSRPT_POLICY_TLSA;
	a.policy_strings = tlsa_recs;
	a.npolicy_strings = 2;
	a.mx_hosts = tlsa_mx;
	a.nmx_hosts = 1;
	a.result = r;
	a.sending_mta_ip = "2001:db8::25";
	a.receiving_mx_hostname = "mx.dane.example";
	a.receiving_mx_helo = "mx.dane.example";
	a.receiving_ip = "2001:db8::53";
	return a;
}

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/mxg-tlsrpt-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct tlsrpt_store *
open_store(const struct tlsrpt_limits *lim)
{
	char err[256];
	struct tlsrpt_store *st = tlsrpt_store_open(dir, lim, err, sizeof(err));

	if (st == NULL)
		fail_msg("open: %s", err);
	return st;
}

static void
rec(struct tlsrpt_store *st, int64_t day, const struct tlsrpt_attempt *a,
    int want)
{
	int r = tlsrpt_record(st, day, a);

	if (r != want)
		fail_msg("tlsrpt_record = %d, want %d (%s)", r, want,
		    tlsrpt_store_error(st));
}

/* ---- RFC 8460 section 4: the fields and their JSON types ---- */

static int
is_rfc3339_utc(const char *s)
{
	regex_t re;
	int ok;

	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:"
	    "[0-9]{2}:[0-9]{2}Z$", REG_EXTENDED | REG_NOSUB), 0);
	ok = regexec(&re, s, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

/* Every key of o is one of allowed[]; every one of required[] is there. */
static void
keys_ok(json_t *o, const char *what, const char *const *allowed,
    const char *const *required)
{
	const char *key;
	json_t *v;
	size_t i;

	assert_true(json_is_object(o));
	json_object_foreach(o, key, v) {
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL)
			fail_msg("%s: key \"%s\" is not in RFC 8460 section 4",
			    what, key);
	}
	for (i = 0; required[i] != NULL; i++)
		if (json_object_get(o, required[i]) == NULL)
			fail_msg("%s: required key \"%s\" missing", what,
			    required[i]);
}

static void
string_array_ok(json_t *a)
{
	size_t i;
	json_t *v;

	assert_true(json_is_array(a));
	json_array_foreach(a, i, v)
		assert_true(json_is_string(v));
}

static int
is_result_type(const char *s)
{
	int i;

	for (i = 1; i < TLSRPT_NRESULTS; i++)
		if (strcmp(s, tlsrpt_result_name((enum tlsrpt_result)i)) == 0)
			return 1;
	return 0;
}

/* The whole report against section 4; returns the root. */
static json_t *
report_schema_ok(const char *text)
{
	static const char *const top[] = { "organization-name", "date-range",
	    "contact-info", "report-id", "policies", NULL };
	static const char *const range[] = { "start-datetime",
	    "end-datetime", NULL };
	static const char *const pol_keys[] = { "policy", "summary",
	    "failure-details", NULL };
	static const char *const pol_req[] = { "policy", "summary", NULL };
	static const char *const policy[] = { "policy-type", "policy-string",
	    "policy-domain", "mx-host", NULL };
	static const char *const policy_req[] = { "policy-type",
	    "policy-domain", NULL };
	static const char *const summary[] = {
	    "total-successful-session-count", "total-failure-session-count",
	    NULL };
	static const char *const detail[] = { "result-type", "sending-mta-ip",
	    "receiving-mx-hostname", "receiving-mx-helo", "receiving-ip",
	    "failed-session-count", "additional-information",
	    "failure-reason-code", NULL };
	static const char *const detail_req[] = { "result-type",
	    "failed-session-count", NULL };
	json_error_t je;
	json_t *root, *p, *d, *v;
	size_t i, j;

	if ((root = json_loads(text, 0, &je)) == NULL)
		fail_msg("report is not JSON: %s", je.text);
	keys_ok(root, "report", top, top);
	assert_true(json_is_string(json_object_get(root, "organization-name")));
	assert_true(json_is_string(json_object_get(root, "contact-info")));
	assert_true(json_is_string(json_object_get(root, "report-id")));
	v = json_object_get(root, "date-range");
	keys_ok(v, "date-range", range, range);
	assert_true(is_rfc3339_utc(json_string_value(
	    json_object_get(v, "start-datetime"))));
	assert_true(is_rfc3339_utc(json_string_value(
	    json_object_get(v, "end-datetime"))));
	v = json_object_get(root, "policies");
	assert_true(json_is_array(v));
	assert_true(json_array_size(v) > 0);
	json_array_foreach(v, i, p) {
		json_t *pol = json_object_get(p, "policy"), *t;
		json_t *sum = json_object_get(p, "summary");
		json_t *fd = json_object_get(p, "failure-details");

		keys_ok(p, "policies[]", pol_keys, pol_req);
		keys_ok(pol, "policy", policy, policy_req);
		t = json_object_get(pol, "policy-type");
		assert_true(json_is_string(t));
		assert_true(strcmp(json_string_value(t), "sts") == 0 ||
		    strcmp(json_string_value(t), "tlsa") == 0 ||
		    strcmp(json_string_value(t), "no-policy-found") == 0);
		assert_true(json_is_string(json_object_get(pol,
		    "policy-domain")));
		if (json_object_get(pol, "policy-string") != NULL)
			string_array_ok(json_object_get(pol, "policy-string"));
		if (json_object_get(pol, "mx-host") != NULL)
			string_array_ok(json_object_get(pol, "mx-host"));
		keys_ok(sum, "summary", summary, summary);
		assert_true(json_is_integer(json_object_get(sum,
		    "total-successful-session-count")));
		assert_true(json_is_integer(json_object_get(sum,
		    "total-failure-session-count")));
		if (fd == NULL)
			continue;
		assert_true(json_is_array(fd));
		json_array_foreach(fd, j, d) {
			const char *k;
			json_t *x;

			keys_ok(d, "failure-details[]", detail, detail_req);
			json_object_foreach(d, k, x) {
				if (strcmp(k, "failed-session-count") == 0)
					assert_true(json_is_integer(x) &&
					    json_integer_value(x) > 0);
				else
					assert_true(json_is_string(x));
			}
			assert_true(is_result_type(json_string_value(
			    json_object_get(d, "result-type"))));
		}
	}
	return root;
}

static json_t *
find_policy(json_t *root, const char *type)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(root, "policies"), i, p)
		if (strcmp(json_string_value(json_object_get(json_object_get(p,
		    "policy"), "policy-type")), type) == 0)
			return p;
	fail_msg("no %s policy in the report", type);
	return NULL;
}

static json_int_t
jint(json_t *o, const char *k1, const char *k2)
{
	json_t *v = json_object_get(o, k1);

	if (k2 != NULL)
		v = json_object_get(v, k2);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static const char *
jstrv(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	assert_true(json_is_string(v));
	return json_string_value(v);
}

/* The failure-details entry of a result type and receiving IP. */
static json_t *
find_detail(json_t *p, const char *result, const char *ip)
{
	json_t *d;
	size_t i;

	json_array_foreach(json_object_get(p, "failure-details"), i, d)
		if (strcmp(jstrv(d, "result-type"), result) == 0 &&
		    (ip == NULL || strcmp(jstrv(d, "receiving-ip"), ip) == 0))
			return d;
	fail_msg("no failure detail %s %s", result, ip ? ip : "");
	return NULL;
}

static void
test_report_json(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_attempt a;
	json_t *root, *p, *d, *arr;
	char *json = NULL;
	int i;

	/* sts: 3 good, 2 expired at mx1/.10, 1 expired at mx1/.11 */
	a = sts_attempt(TLSRPT_SUCCESS, "mx1.company-y.example", "198.51.100.10");
	for (i = 0; i < 3; i++)
		rec(st, DAY, &a, 0);
	a = sts_attempt(TLSRPT_CERTIFICATE_EXPIRED, "mx1.company-y.example",
	    "198.51.100.10");
	a.failure_reason = "X509_V_ERR_CERT_HAS_EXPIRED";
	rec(st, DAY, &a, 0);
	rec(st, DAY, &a, 0);
	a.receiving_ip = "198.51.100.11";
	rec(st, DAY, &a, 0);
	a = sts_attempt(TLSRPT_STARTTLS_NOT_SUPPORTED, "mx2.backup.company-y."
	    "example", "198.51.100.20");
	a.additional_info = "https://mxguard.example/why/starttls";
	rec(st, DAY, &a, 0);
	/* tlsa: 2 good, 1 tlsa-invalid with a HELO; another day: ignored */
	a = tlsa_attempt(TLSRPT_SUCCESS);
	rec(st, DAY, &a, 0);
	rec(st, DAY, &a, 0);
	rec(st, DAY + 1, &a, 0);
	a = tlsa_attempt(TLSRPT_TLSA_INVALID);
	a.failure_reason = "no TLSA record matched the chain";
	rec(st, DAY, &a, 0);

	assert_int_equal(tlsrpt_report_build(st, "company-y.example", DAY,
	    "mxguard test", "mailto:tlsrpt@sender.example", "20240501.1",
	    &json), 1);
	root = report_schema_ok(json);
	assert_string_equal(jstrv(root, "organization-name"), "mxguard test");
	assert_string_equal(jstrv(root, "contact-info"),
	    "mailto:tlsrpt@sender.example");
	assert_string_equal(jstrv(root, "report-id"), "20240501.1");
	assert_string_equal(jstrv(json_object_get(root, "date-range"),
	    "start-datetime"), "2024-05-01T00:00:00Z");
	assert_string_equal(jstrv(json_object_get(root, "date-range"),
	    "end-datetime"), "2024-05-01T23:59:59Z");
	assert_int_equal(json_array_size(json_object_get(root, "policies")), 1);
	p = find_policy(root, "sts");
	assert_string_equal(jstrv(json_object_get(p, "policy"),
	    "policy-domain"), "company-y.example");
	arr = json_object_get(json_object_get(p, "policy"), "policy-string");
	assert_int_equal(json_array_size(arr), 5);
	for (i = 0; i < 5; i++)
		assert_string_equal(json_string_value(json_array_get(arr,
		    (size_t)i)), sts_lines[i]);
	arr = json_object_get(json_object_get(p, "policy"), "mx-host");
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(json_string_value(json_array_get(arr, 1)),
	    "*.backup.company-y.example");
	assert_int_equal(jint(p, "summary", "total-successful-session-count"),
	    3);
	assert_int_equal(jint(p, "summary", "total-failure-session-count"), 4);
	assert_int_equal(json_array_size(json_object_get(p,
	    "failure-details")), 3);
	d = find_detail(p, "certificate-expired", "198.51.100.10");
	assert_int_equal(jint(d, "failed-session-count", NULL), 2);
	assert_string_equal(jstrv(d, "sending-mta-ip"), "192.0.2.25");
	assert_string_equal(jstrv(d, "receiving-mx-hostname"),
	    "mx1.company-y.example");
	assert_string_equal(jstrv(d, "failure-reason-code"),
	    "X509_V_ERR_CERT_HAS_EXPIRED");
	assert_null(json_object_get(d, "receiving-mx-helo"));
	d = find_detail(p, "certificate-expired", "198.51.100.11");
	assert_int_equal(jint(d, "failed-session-count", NULL), 1);
	d = find_detail(p, "starttls-not-supported", NULL);
	assert_string_equal(jstrv(d, "additional-information"),
	    "https://mxguard.example/why/starttls");
	json_decref(root);
	write_example("tlsrpt-example-sts.json", json);
	free(json);

	assert_int_equal(tlsrpt_report_build(st, "dane.example", DAY,
	    "mxguard test", "mailto:tlsrpt@sender.example", "20240501.2",
	    &json), 1);
	root = report_schema_ok(json);
	p = find_policy(root, "tlsa");
	arr = json_object_get(json_object_get(p, "policy"), "policy-string");
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(json_string_value(json_array_get(arr, 0)),
	    tlsa_recs[0]);
	assert_int_equal(jint(p, "summary", "total-successful-session-count"),
	    2);
	assert_int_equal(jint(p, "summary", "total-failure-session-count"), 1);
	d = find_detail(p, "tlsa-invalid", "2001:db8::53");
	assert_int_equal(jint(d, "failed-session-count", NULL), 1);
	assert_string_equal(jstrv(d, "receiving-mx-helo"), "mx.dane.example");
	assert_string_equal(jstrv(d, "sending-mta-ip"), "2001:db8::25");
	json_decref(root);

	write_example("tlsrpt-example-tlsa.json", json);
	free(json);

	/* nothing recorded: 0, no JSON */
	assert_int_equal(tlsrpt_report_build(st, "other.example", DAY,
	    "o", "c", "r", &json), 0);
	assert_null(json);
	assert_int_equal(tlsrpt_report_build(st, "bad domain", DAY,
	    "o", "c", "r", &json), -1);
	tlsrpt_store_close(st);
}

static void
test_report_no_policy_and_sts_tlsa_same_domain(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_attempt a;
	json_t *root, *p;
	char *json;

	memset(&a, 0, sizeof(a));
	a.policy_domain = "plain.example";
	a.policy_type = TLSRPT_POLICY_NONE;
	a.result = TLSRPT_SUCCESS;
	rec(st, DAY, &a, 0);
	/* the same domain with a DANE policy and an MTA-STS one */
	a = tlsa_attempt(TLSRPT_DANE_REQUIRED);
	a.policy_domain = "plain.example";
	a.receiving_mx_helo = "bad\x01helo\xff";	/* from the wire */
	rec(st, DAY, &a, 0);
	a = sts_attempt(TLSRPT_STS_WEBPKI_INVALID, "mx1.company-y.example",
	    "198.51.100.10");
	a.policy_domain = "plain.example";
	rec(st, DAY, &a, 0);
	assert_int_equal(tlsrpt_report_build(st, "plain.example", DAY, "o",
	    "c", "r", &json), 1);
	root = report_schema_ok(json);
	assert_int_equal(json_array_size(json_object_get(root, "policies")), 3);
	p = find_policy(root, "no-policy-found");
	assert_null(json_object_get(json_object_get(p, "policy"),
	    "policy-string"));
	assert_null(json_object_get(json_object_get(p, "policy"), "mx-host"));
	assert_null(json_object_get(p, "failure-details"));
	assert_int_equal(jint(p, "summary", "total-successful-session-count"),
	    1);
	p = find_policy(root, "tlsa");
	assert_string_equal(jstrv(find_detail(p, "dane-required", NULL),
	    "receiving-mx-helo"), "bad?helo?");
	p = find_policy(root, "sts");
	find_detail(p, "sts-webpki-invalid", NULL);
	json_decref(root);
	free(json);
	tlsrpt_store_close(st);
}

static void
test_day_boundary(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_attempt a = sts_attempt(TLSRPT_SUCCESS,
	    "mx1.company-y.example", "198.51.100.10");
	struct tlsrpt_counts c;
	struct tlsrpt_due due[4];
	int64_t last = T0 + 86399, next = T0 + 86400;	/* 23:59:59, 00:00:00 */
	size_t n;
	char *json;
	json_t *root;

	assert_int_equal(tlsrpt_day(last), DAY);
	assert_int_equal(tlsrpt_day(next), DAY + 1);
	assert_int_equal(tlsrpt_day(0), 0);
	assert_int_equal(tlsrpt_day(-1), -1);
	rec(st, tlsrpt_day(last), &a, 0);
	a.result = TLSRPT_CERTIFICATE_NOT_TRUSTED;
	rec(st, tlsrpt_day(next), &a, 0);

	assert_int_equal(tlsrpt_counts(st, DAY, "company-y.example", &c), 1);
	assert_int_equal(c.successful, 1);
	assert_int_equal(c.failed, 0);
	assert_int_equal(tlsrpt_counts(st, DAY + 1, "company-y.example", &c),
	    1);
	assert_int_equal(c.successful, 0);
	assert_int_equal(c.failed, 1);

	/* each day's report holds only its own session */
	assert_int_equal(tlsrpt_report_build(st, "company-y.example", DAY + 1,
	    "o", "c", "r", &json), 1);
	root = report_schema_ok(json);
	assert_string_equal(jstrv(json_object_get(root, "date-range"),
	    "start-datetime"), "2024-05-02T00:00:00Z");
	assert_int_equal(jint(find_policy(root, "sts"), "summary",
	    "total-failure-session-count"), 1);
	assert_int_equal(jint(find_policy(root, "sts"), "summary",
	    "total-successful-session-count"), 0);
	json_decref(root);
	free(json);

	/* due: days before today, not sent, oldest first */
	assert_int_equal(tlsrpt_due_list(st, DAY + 1, due, 4, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(due[0].day, DAY);
	assert_string_equal(due[0].domain, "company-y.example");
	assert_int_equal(tlsrpt_due_list(st, DAY + 2, due, 4, &n), 2);
	assert_int_equal(n, 2);
	assert_int_equal(due[1].day, DAY + 1);
	assert_int_equal(tlsrpt_due_list(st, DAY + 2, due, 1, &n), 2);
	assert_int_equal(n, 1);
	assert_int_equal(tlsrpt_is_sent(st, DAY, "company-y.example", NULL), 0);
	assert_int_equal(tlsrpt_mark_sent(st, DAY, "Company-Y.example.",
	    T0 + 90000), 0);
	assert_int_equal(tlsrpt_is_sent(st, DAY, "company-y.example", &last),
	    1);
	assert_int_equal(last, T0 + 90000);
	assert_int_equal(tlsrpt_due_list(st, DAY + 2, due, 4, &n), 1);
	assert_int_equal(due[0].day, DAY + 1);

	/* prune: keep one day back from DAY + 2, i.e. DAY + 1 */
	assert_int_equal(tlsrpt_prune(st, DAY + 2, 1), 3); /* entry, sent, day */
	assert_int_equal(tlsrpt_counts(st, DAY, "company-y.example", &c), 0);
	assert_int_equal(tlsrpt_is_sent(st, DAY, "company-y.example", NULL), 0);
	assert_int_equal(tlsrpt_counts(st, DAY + 1, "company-y.example", &c),
	    1);
	assert_int_equal(tlsrpt_prune(st, DAY + 2, 1), 0);
	tlsrpt_store_close(st);
}

static void
test_persists(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_attempt a = tlsa_attempt(TLSRPT_VALIDATION_FAILURE);
	struct tlsrpt_counts c;

	rec(st, DAY, &a, 0);
	rec(st, DAY, &a, 0);
	tlsrpt_store_close(st);
	st = open_store(NULL);
	rec(st, DAY, &a, 0);
	assert_int_equal(tlsrpt_counts(st, DAY, "dane.example", &c), 1);
	assert_int_equal(c.failed, 3);
	assert_int_equal(c.buckets, 1);
	assert_int_equal(c.policies, 1);
	tlsrpt_store_close(st);
}

static void
test_bounded(void **state)
{
	struct tlsrpt_limits lim = { .max_domains = 3, .max_policies = 2,
	    .max_buckets = 4, .max_entry = 1024 };
	struct tlsrpt_store *st = open_store(&lim);
	struct tlsrpt_attempt a;
	struct tlsrpt_counts c;
	struct tlsrpt_day_stats ds;
	const char *other_lines[] = { "version: STSv1", "mode: testing" };
	const char *third_lines[] = { "version: STSv1", "mode: none" };
	char big[2000], domain[64], ip[64];
	const char *big_lines[] = { big };
	int i;

	/* domains: three fit, the fourth and fifth are overflow */
	for (i = 0; i < 5; i++) {
		memset(&a, 0, sizeof(a));
		snprintf(domain, sizeof(domain), "d%d.example", i);
		a.policy_domain = domain;
		a.policy_type = TLSRPT_POLICY_NONE;
		rec(st, DAY, &a, i < 3 ? 0 : 1);
		rec(st, DAY, &a, i < 3 ? 0 : 1);
	}
	assert_int_equal(tlsrpt_day_stats(st, DAY, &ds), 0);
	assert_int_equal(ds.domains, 3);
	assert_int_equal(ds.overflow_sessions, 4);
	assert_int_equal(tlsrpt_counts(st, DAY, "d3.example", &c), 0);
	assert_int_equal(tlsrpt_counts(st, DAY, "d2.example", &c), 1);
	assert_int_equal(c.successful, 2);
	/* the next day has its own bound */
	rec(st, DAY + 1, &a, 0);

	/* policies: d0 has one; one more fits, a third does not */
	a.policy_domain = "d0.example";
	a.policy_type = TLSRPT_POLICY_STS;
	a.policy_strings = other_lines;
	a.npolicy_strings = 2;
	rec(st, DAY, &a, 0);
	a.policy_strings = third_lines;
	rec(st, DAY, &a, 1);
	assert_int_equal(tlsrpt_day_stats(st, DAY, &ds), 0);
	assert_int_equal(ds.overflow_sessions, 5);

	/* buckets: 4 per domain over its policies, the rest counted */
	a.policy_strings = other_lines;
	a.result = TLSRPT_CERTIFICATE_NOT_TRUSTED;
	for (i = 0; i < 7; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		a.receiving_ip = ip;
		rec(st, DAY, &a, 0);
	}
	a.receiving_ip = "198.51.100.0";		/* an existing bucket */
	rec(st, DAY, &a, 0);
	a.policy_type = TLSRPT_POLICY_NONE;		/* d0's other policy */
	a.npolicy_strings = 0;
	a.receiving_ip = "198.51.100.99";
	rec(st, DAY, &a, 0);
	assert_int_equal(tlsrpt_counts(st, DAY, "d0.example", &c), 1);
	assert_int_equal(c.policies, 2);
	assert_int_equal(c.buckets, 4);
	assert_int_equal(c.failed, 9);
	assert_int_equal(c.detail_overflow, 4);	/* .4 .5 .6 .99 */
	assert_int_equal(c.successful, 3);	/* 2 no-policy, 1 sts */

	/* an entry larger than max_entry: overflow, nothing stored */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	a.policy_domain = "d1.example";
	a.policy_type = TLSRPT_POLICY_TLSA;
	a.policy_strings = big_lines;
	a.npolicy_strings = 1;
	rec(st, DAY, &a, 1);
	assert_int_equal(tlsrpt_counts(st, DAY, "d1.example", &c), 1);
	assert_int_equal(c.policies, 1);
	/* a bucket that would push the entry over max_entry: counted */
	a.policy_strings = other_lines;
	a.npolicy_strings = 2;
	a.failure_reason = big;		/* cut to TLSRPT_FIELD_MAX */
	for (i = 0; i < 4; i++) {
		snprintf(ip, sizeof(ip), "203.0.113.%d", i);
		a.receiving_ip = ip;
		rec(st, DAY, &a, 0);
	}
	/* entry 71 bytes + 3 buckets of 287 = 932 fit 1024, a 4th not */
	assert_int_equal(tlsrpt_counts(st, DAY, "d1.example", &c), 1);
	assert_int_equal(c.buckets, 3);
	assert_int_equal(c.detail_overflow, 1);
	assert_int_equal(c.failed, 4);

	/* malformed attempts are errors, not counts */
	a.policy_domain = NULL;
	rec(st, DAY, &a, -1);
	a.policy_domain = "not a domain";
	rec(st, DAY, &a, -1);
	a.policy_domain = "d1.example";
	a.result = TLSRPT_NRESULTS;
	rec(st, DAY, &a, -1);
	tlsrpt_store_close(st);
}

static void
test_gzip_roundtrip(void **state)
{
	struct tlsrpt_store *st = open_store(NULL);
	struct tlsrpt_attempt a = tlsa_attempt(TLSRPT_TLSA_INVALID);
	unsigned char *gz, back[65536];
	size_t gzlen;
	char *json;
	z_stream z;

	rec(st, DAY, &a, 0);
	assert_int_equal(tlsrpt_report_build(st, "dane.example", DAY, "o",
	    "c", "r", &json), 1);
	assert_int_equal(tlsrpt_gzip(json, strlen(json), &gz, &gzlen), 0);
	/* gzip, not raw deflate or zlib: magic 1f 8b, method 8 */
	assert_true(gzlen > 18);
	assert_int_equal(gz[0], 0x1f);
	assert_int_equal(gz[1], 0x8b);
	assert_int_equal(gz[2], 8);
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 16 + 15), Z_OK);	/* gzip only */
	z.next_in = gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = back;
	z.avail_out = sizeof(back);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, strlen(json));
	assert_memory_equal(back, json, strlen(json));
	inflateEnd(&z);
	free(gz);
	free(json);
	assert_int_equal(tlsrpt_gzip("", 0, &gz, &gzlen), 0);
	assert_int_equal(gz[0], 0x1f);
	free(gz);
	tlsrpt_store_close(st);
}

static void
test_filename(void **state)
{
	char b[512];

	/* section 5.1: sender!policy-domain!begin!end[!unique-id].json.gz */
	assert_int_equal(tlsrpt_filename("mail.sender.example",
	    "company-y.example", DAY, "001", b, sizeof(b)), 0);
	assert_string_equal(b, "mail.sender.example!company-y.example!"
	    "1714521600!1714607999!001.json.gz");
	assert_int_equal(tlsrpt_filename("mail.sender.example",
	    "company-y.example", 0, NULL, b, sizeof(b)), 0);
	assert_string_equal(b, "mail.sender.example!company-y.example!0!"
	    "86399.json.gz");
	/* unique-id = 1*(ALPHA / DIGIT) */
	assert_int_equal(tlsrpt_filename("s.example", "d.example", DAY, "a-1",
	    b, sizeof(b)), -1);
	assert_int_equal(tlsrpt_filename("s.example", "d.example", DAY, "",
	    b, sizeof(b)), -1);
	assert_int_equal(tlsrpt_filename("s!example", "d.example", DAY, NULL,
	    b, sizeof(b)), -1);
	assert_int_equal(tlsrpt_filename("s.example", "d/../x", DAY, NULL,
	    b, sizeof(b)), -1);
	assert_int_equal(tlsrpt_filename("s.example", "d.example", DAY, NULL,
	    b, 20), -1);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_report_json, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_report_no_policy_and_sts_tlsa_same_domain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_day_boundary, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_persists, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gzip_roundtrip, setup,
		    teardown),
		cmocka_unit_test(test_filename),
	};
	char self[4096];

	snprintf(self, sizeof(self), "%s", argv[0]);
	snprintf(example_dir, sizeof(example_dir), "%s", dirname(self));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
