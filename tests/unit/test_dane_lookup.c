/*
 * test_dane_lookup.c - the DANE decision (dane_lookup) on canned DNS
 * answers: dns_query/dns_cancel are replaced (--wrap) by a table of
 * responses built as wire messages and parsed by the real dns_parse(), so
 * the AD bit, CNAME chains and Extended DNS Errors go through the same
 * code as in production.  Covers RFC 7672 sections 2.2.1 (insecure MX to
 * a signed host, implicit MX), 2.2.2 (CNAME-expanded TLSA base, then the
 * original name), usable vs. unusable records, lookup failures in signed
 * zones, and a destination that is no MX host's address.
 */
// WRAP: dns_query dns_cancel
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/ev.h"
#include "policy/dane.h"
#include "policy/dns.h"

/* ---- wire messages ---- */

#include "dnsmsg.h"

/* ---- the fake resolver ---- */

#define MAXF	32

static struct fake {
	char		 name[256];
	int		 type;
	enum dns_status	 st;
	struct dns_answer *a;
} fakes[MAXF];
static int nfakes;
static struct ev_loop *loop;
static int queries;

struct dns_req {
	struct ev_timer	*t;
	dns_cb		*cb;
	void		*arg;
	struct fake	*f;
};

static void
answer(const char *name, int type, enum dns_status st, struct msg *m)
{
	struct fake *f = &fakes[nfakes++];

	snprintf(f->name, sizeof(f->name), "%s", name);
	f->type = type;
	f->st = st;
	f->a = m ? dns_parse(m->b, m->n, name, type) : NULL;
	/* the combined status dns.c would give */
	if (f->a != NULL && st == DNS_ERROR)
		f->st = f->a->status;
}

static void
fire(void *arg)
{
	struct dns_req *r = arg;
	struct fake *f = r->f;

	ev_timer_free(r->t);
	r->cb(r->arg, f ? f->st : DNS_NXDOMAIN, f ? f->a : NULL);
	free(r);
}

struct dns_req *__wrap_dns_query(struct dns *d, const char *name, int type,
    dns_cb *cb, void *arg);
void __wrap_dns_cancel(struct dns_req *r);

struct dns_req *
__wrap_dns_query(struct dns *d, const char *name, int type, dns_cb *cb,
    void *arg)
{
	struct dns_req *r = calloc(1, sizeof(*r));
	int i;

	queries++;
	r->cb = cb;
	r->arg = arg;
	for (i = 0; i < nfakes; i++)
		if (fakes[i].type == type && strcmp(fakes[i].name, name) == 0)
			r->f = &fakes[i];
	r->t = ev_timer_new(loop, fire, r);
	ev_timer_arm(r->t, 0);
	return r;
}

void
__wrap_dns_cancel(struct dns_req *r)
{
	if (r == NULL)
		return;
	ev_timer_free(r->t);
	free(r);
}

static struct dane_info *got;

static void
done(void *arg, struct dane_info *d)
{
	got = d;
	ev_loop_stop(loop);
}

static struct dane_info *
run(const char *domain, const char *dst)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, dst, &sin.sin_addr);
	got = NULL;
	assert_non_null(dane_lookup((struct dns *)&sin, domain,
	    (struct sockaddr *)&sin, done, NULL));
	ev_loop_run(loop);
	assert_non_null(got);
	printf("# %s %s: %s reason=%s mx=%s base=%s names=%d detail=%s\n",
	    domain, dst, dane_state_name(got->state), got->reason,
	    got->mx_host, got->tlsa_base, got->nnames, got->detail);
	return got;
}

static int
setup(void **state)
{
	loop = ev_loop_new();
	nfakes = 0;
	queries = 0;
	return 0;
}

static int
teardown(void **state)
{
	int i;

	for (i = 0; i < nfakes; i++)
		dns_answer_unref(fakes[i].a);
	nfakes = 0;
	dane_info_free(got);
	got = NULL;
	ev_loop_free(loop);
	return 0;
}

/* ---- scenarios ---- */

static void
mx(const char *d, int ad, const char *h1, const char *h2)
{
	struct msg m;

	begin(&m, 0x1234, ad, 0, d, DNS_T_MX, h2 ? 2 : 1, 0, 0);
	rr_name(&m, d, DNS_T_MX, 20, h1, 300);
	if (h2)
		rr_name(&m, d, DNS_T_MX, 10, h2, 300);
	answer(d, DNS_T_MX, ad ? DNS_SECURE : DNS_INSECURE, &m);
}

static void
a(const char *h, int ad, const char *ip)
{
	struct msg m;

	begin(&m, 0x1234, ad, 0, h, DNS_T_A, 1, 0, 0);
	rr_a(&m, h, ip, 300);
	answer(h, DNS_T_A, ad ? DNS_SECURE : DNS_INSECURE, &m);
}

static void
tlsa(const char *h, int ad, int u, int s, int mt, int len)
{
	struct msg m;
	char q[300];

	snprintf(q, sizeof(q), "_25._tcp.%s", h);
	begin(&m, 0x1234, ad, 0, q, DNS_T_TLSA, 1, 0, 0);
	rr_tlsa(&m, q, u, s, mt, len, 300);
	answer(q, DNS_T_TLSA, ad ? DNS_SECURE : DNS_INSECURE, &m);
}

static void
fail_with(const char *name, int type, int ede)
{
	struct msg m;

	begin(&m, 0x1234, 0, 2, name, type, 0, 0, ede >= 0 ? 1 : 0);
	if (ede >= 0)
		rr_opt_ede(&m, ede);
	answer(name, type, DNS_SERVFAIL, &m);
}

static void
test_secure_usable(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	tlsa("mx.d.test", 1, 3, 1, 1, 32);
	d = run("D.Test.", "192.0.2.1");
	assert_int_equal(d->state, DANE_USABLE);
	assert_string_equal(d->domain, "d.test");
	assert_string_equal(d->mx_host, "mx.d.test");
	assert_string_equal(d->tlsa_base, "mx.d.test");
	assert_int_equal(d->mx_secure, 1);
	assert_int_equal(d->nnames, 2);
	assert_string_equal(d->names[0], "mx.d.test");
	assert_string_equal(d->names[1], "d.test");
	assert_int_equal(d->ntlsa, 1);
	assert_int_equal(d->nusable, 1);
}

static void
test_preference_order(void **s)
{
	struct dane_info *d;
	struct msg m;

	/* both hosts have A; the preferred one (10) is H */
	mx("d.test", 1, "mx20.d.test", "mx10.d.test");
	begin(&m, 0x1234, 1, 0, "mx20.d.test", DNS_T_A, 1, 0, 0);
	rr_a(&m, "mx20.d.test", "192.0.2.1", 300);
	answer("mx20.d.test", DNS_T_A, DNS_SECURE, &m);
	a("mx10.d.test", 1, "192.0.2.1");
	tlsa("mx10.d.test", 1, 3, 1, 1, 32);
	d = run("d.test", "192.0.2.1");
	assert_string_equal(d->mx_host, "mx10.d.test");
	assert_int_equal(d->mx[0].pref, 10);
}

static void
test_insecure_address(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 0, "192.0.2.1");
	tlsa("mx.d.test", 1, 3, 1, 1, 32);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_NONE);
	assert_string_equal(d->mx_host, "mx.d.test");
	assert_int_equal(d->tlsa_status, -1);	/* not even asked */
}

/* RFC 7672 2.2.1: insecure MX RRset, MX host in a signed zone */
static void
test_insecure_mx_signed_host(void **s)
{
	struct dane_info *d;

	mx("d.test", 0, "mx.signed.test", NULL);
	a("mx.signed.test", 1, "192.0.2.1");
	tlsa("mx.signed.test", 1, 2, 0, 1, 32);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_USABLE);
	assert_int_equal(d->mx_secure, 0);
	/* D is not a reference identifier then */
	assert_int_equal(d->nnames, 1);
	assert_string_equal(d->names[0], "mx.signed.test");
}

static void
test_implicit_mx(void **s)
{
	struct dane_info *d;
	struct msg m;

	begin(&m, 0x1234, 1, 0, "d.test", DNS_T_MX, 0, 0, 0);
	answer("d.test", DNS_T_MX, DNS_NODATA, &m);
	a("d.test", 1, "192.0.2.1");
	tlsa("d.test", 1, 3, 1, 1, 32);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_USABLE);
	assert_int_equal(d->implicit_mx, 1);
	assert_int_equal(d->mx_secure, 1);
	assert_string_equal(d->mx_host, "d.test");
}

static void
test_only_unusable(void **s)
{
	struct dane_info *d;
	struct msg m;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	begin(&m, 0x1234, 1, 0, "_25._tcp.mx.d.test", DNS_T_TLSA, 3, 0, 0);
	rr_tlsa(&m, "_25._tcp.mx.d.test", 1, 1, 1, 32, 300);	/* PKIX-EE */
	rr_tlsa(&m, "_25._tcp.mx.d.test", 3, 1, 1, 31, 300);	/* bad length */
	rr_tlsa(&m, "_25._tcp.mx.d.test", 3, 1, 9, 32, 300);	/* unknown type */
	answer("_25._tcp.mx.d.test", DNS_T_TLSA, DNS_SECURE, &m);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_UNUSABLE);
	assert_int_equal(d->ntlsa, 3);
	assert_int_equal(d->nusable, 0);
}

static void
test_tlsa_servfail(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	fail_with("_25._tcp.mx.d.test", DNS_T_TLSA, 6);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "dnssec-invalid");
	assert_int_equal(d->tlsa_ede, 6);
}

static void
test_tlsa_servfail_no_ede(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	fail_with("_25._tcp.mx.d.test", DNS_T_TLSA, -1);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "dnssec-invalid");
}

static void
test_tlsa_timeout(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	answer("_25._tcp.mx.d.test", DNS_T_TLSA, DNS_TIMEOUT, NULL);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_DEFER);
}

static void
test_tlsa_absent_or_insecure(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	/* no fake: NXDOMAIN */
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_NONE);
	dane_info_free(d);
	got = NULL;
	tlsa("mx.d.test", 0, 3, 1, 1, 32);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_NONE);
	assert_int_equal(d->tlsa_status, DNS_INSECURE);
}

/* RFC 7672 2.2.2: MX host is a CNAME: the expanded name first, then the
 * original when the expanded name has no TLSA */
static void
test_cname_expanded(void **s)
{
	struct dane_info *d;
	struct msg m;

	mx("d.test", 1, "mx.d.test", NULL);
	begin(&m, 0x1234, 1, 0, "mx.d.test", DNS_T_A, 2, 0, 0);
	rr_name(&m, "mx.d.test", DNS_T_CNAME, -1, "real.hoster.test", 300);
	rr_a(&m, "real.hoster.test", "192.0.2.1", 300);
	answer("mx.d.test", DNS_T_A, DNS_SECURE, &m);
	tlsa("real.hoster.test", 1, 3, 1, 1, 32);
	tlsa("mx.d.test", 1, 3, 1, 2, 64);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_USABLE);
	assert_string_equal(d->tlsa_base, "real.hoster.test");
	assert_int_equal(d->tlsa[0].mtype, 1);
	assert_int_equal(d->nnames, 3);
	assert_string_equal(d->names[0], "real.hoster.test");
	assert_string_equal(d->names[1], "mx.d.test");
	assert_string_equal(d->names[2], "d.test");
}

static void
test_cname_fallback(void **s)
{
	struct dane_info *d;
	struct msg m;

	mx("d.test", 1, "mx.d.test", NULL);
	begin(&m, 0x1234, 1, 0, "mx.d.test", DNS_T_A, 2, 0, 0);
	rr_name(&m, "mx.d.test", DNS_T_CNAME, -1, "real.hoster.test", 300);
	rr_a(&m, "real.hoster.test", "192.0.2.1", 300);
	answer("mx.d.test", DNS_T_A, DNS_SECURE, &m);
	begin(&m, 0x1234, 1, 0, "_25._tcp.real.hoster.test", DNS_T_TLSA, 0, 0, 0);
	answer("_25._tcp.real.hoster.test", DNS_T_TLSA, DNS_NODATA, &m);
	tlsa("mx.d.test", 1, 3, 1, 2, 64);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_USABLE);
	assert_string_equal(d->tlsa_base, "mx.d.test");
	assert_int_equal(d->tlsa[0].mtype, 2);
}

/* A is no MX host's address */
static void
test_not_an_mx_address(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	tlsa("mx.d.test", 1, 3, 1, 1, 32);
	d = run("d.test", "198.51.100.7");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "validation-failure");
	assert_string_equal(d->mx_host, "");
}

static void
test_not_an_mx_address_no_dane(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	d = run("d.test", "198.51.100.7");
	assert_int_equal(d->state, DANE_NONE);
}

static void
test_mx_failures(void **s)
{
	struct dane_info *d;

	fail_with("bogus.test", DNS_T_MX, 6);
	d = run("bogus.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "dnssec-invalid");
	assert_int_equal(d->mx_ede, 6);
	dane_info_free(d);
	got = NULL;
	/* plain failure, no sign of DNSSEC: DANE does not apply */
	fail_with("broken.test", DNS_T_MX, -1);
	d = run("broken.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_NONE);
	dane_info_free(d);
	got = NULL;
	answer("slow.test", DNS_T_MX, DNS_TIMEOUT, NULL);
	d = run("slow.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_NONE);
}

static void
test_ede_parser(void **s)
{
	struct msg m;

	fail_with("x.test", DNS_T_MX, 9);
	begin(&m, 0x1234, 0, 2, "x.test", DNS_T_MX, 0, 0, 1);
	rr_opt_ede(&m, 9);
	assert_int_equal(dane_ede(m.b, (size_t)m.n), 9);
	assert_true(dane_ede_dnssec(9));
	assert_false(dane_ede_dnssec(22));
	assert_int_equal(dane_ede(m.b, (size_t)m.n - 1), -1);
	begin(&m, 0x1234, 0, 2, "x.test", DNS_T_MX, 0, 0, 0);
	assert_int_equal(dane_ede(m.b, (size_t)m.n), -1);
	assert_int_equal(dane_ede(NULL, 0), -1);
}

static void
test_cancel(void **s)
{
	struct sockaddr_in sin;
	struct dane_req *r;

	mx("d.test", 1, "mx.d.test", NULL);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	r = dane_lookup(NULL, "d.test", (struct sockaddr *)&sin, done, NULL);
	assert_non_null(r);
	dane_cancel(r);
	assert_null(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_secure_usable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_preference_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_insecure_address, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_insecure_mx_signed_host,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_implicit_mx, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_only_unusable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_servfail, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_servfail_no_ede,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_absent_or_insecure,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cname_expanded, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cname_fallback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_an_mx_address, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_an_mx_address_no_dane,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mx_failures, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ede_parser, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
