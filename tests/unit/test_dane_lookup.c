/*
 * test_dane_lookup.c - the DANE decision (the MX walk, then dane_lookup
 * on its answer, as the engine runs them) on canned DNS answers:
 * dns_query/dns_cancel are replaced (--wrap) by fakedns.h's table of
 * responses built as wire messages and parsed by the real dns_parse(), so
 * the AD bit, CNAME chains and Extended DNS Errors go through the same
 * code as in production.  Covers RFC 7672 sections 2.2.1 (insecure MX to
 * a signed host, implicit MX), 2.2.2 (CNAME-expanded TLSA base, then the
 * original name), usable vs. unusable records, lookup failures in signed
 * zones (every shape: a failed address lookup of a host that might own
 * the destination, a failed TLSA lookup with or without an owner), and a
 * destination that is no MX host's address.
 */
// WRAP: dns_query dns_cancel malloc
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

#include "policy/mx.h"

#include "fakedns.h"

/* malloc(): fails every request of malloc_fail bytes while set (the
 * canned answers are parsed before a test arms it; during a lookup only
 * dane.c's own records are malloc()ed) */
static size_t malloc_fail;

void *__real_malloc(size_t);
void *__wrap_malloc(size_t);

void *
__wrap_malloc(size_t n)
{
	if (malloc_fail != 0 && n == malloc_fail)
		return NULL;
	return __real_malloc(n);
}

static struct dane_info *got;

static void
done(void *arg, struct dane_info *d)
{
	got = d;
	ev_loop_stop(loop);
}

static struct mx_result *walked;

static void
walk_done(void *arg, struct mx_result *m)
{
	walked = m;
	ev_loop_stop(loop);
}

/* The MX walk, then DANE on its answer, as the engine runs them; the
 * walk asks the destination's family only, as the engine does. */
static struct dane_info *
run_af(const char *domain, const char *dst, int family)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET6)
		inet_pton(AF_INET6, dst, &sin6->sin6_addr);
	else
		inet_pton(AF_INET, dst, &sin->sin_addr);
	got = NULL;
	walked = NULL;
	assert_non_null(mx_walk((struct dns *)&ss, domain,
	    (struct sockaddr *)&ss, family == AF_INET6 ? MX_WALK_AAAA :
	    MX_WALK_A, walk_done, NULL));
	ev_loop_run(loop);
	assert_non_null(walked);
	assert_non_null(dane_lookup(loop, (struct dns *)&ss, walked,
	    (struct sockaddr *)&ss, done, NULL));
	free(walked);
	walked = NULL;
	assert_null(got);		/* never synchronous */
	ev_loop_run(loop);
	assert_non_null(got);
	printf("# %s %s: %s reason=%s mx=%s base=%s names=%d detail=%s\n",
	    domain, dst, dane_state_name(got->state), got->reason,
	    got->mx_host, got->tlsa_base, got->nnames, got->detail);
	return got;
}

static struct dane_info *
run(const char *domain, const char *dst)
{
	return run_af(domain, dst, AF_INET);
}

static struct dane_info *
run6(const char *domain, const char *dst)
{
	return run_af(domain, dst, AF_INET6);
}

/* run("d.test", dst), asserting the verdict's state and, unless NULL,
 * its reason; the caller asserts the rest */
static struct dane_info *
expect(const char *dst, enum dane_state state, const char *reason)
{
	struct dane_info *d = run("d.test", dst);

	assert_int_equal(d->state, state);
	if (reason != NULL)
		assert_string_equal(d->reason, reason);
	return d;
}

/* Drops the verdict of a test's case, to run again */
static void
forget(void)
{
	dane_info_free(got);
	got = NULL;
}

/* ...and the canned answers too, for the test's next case */
static void
next_case(void)
{
	forget();
	fakes_clear();
}

/* The owner tests' MX RRset, secure or not, of mx20.d.test (answered by
 * the caller) and mx10.unsigned.test, whose insecure A is 192.0.2.1 */
static void
unsigned_owner(int mx_secure)
{
	mx("d.test", mx_secure, "mx20.d.test", "mx10.unsigned.test");
	a("mx10.unsigned.test", 0, "192.0.2.1");
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
	fakes_clear();
	dane_info_free(got);
	got = NULL;
	ev_loop_free(loop);
	return 0;
}

/* ---- scenarios ---- */

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

/* Two MX hosts own A: the preferred one (10) in an unsigned zone, whose
 * address records anyone on the path may write (or its operator points
 * at the other's server), the other (20) with secure addresses and TLSA
 * records.  Which of them the MTA meant cannot be told from A: DANE
 * applies, with the secure host's records (the server at A is that
 * host's too), never no DANE because the insecure one is preferred. */
static void
test_owner_secure_over_insecure(void **s)
{
	struct dane_info *d;

	unsigned_owner(1);
	a("mx20.d.test", 1, "192.0.2.1");
	tlsa("mx20.d.test", 1, 3, 1, 1, 32);
	d = expect("192.0.2.1", DANE_USABLE, NULL);
	assert_string_equal(d->mx_host, "mx20.d.test");
	assert_string_equal(d->tlsa_base, "mx20.d.test");

	/* the secure host publishes none: no DANE, as for either alone */
	next_case();
	unsigned_owner(1);
	a("mx20.d.test", 1, "192.0.2.1");
	expect("192.0.2.1", DANE_NONE, NULL);

	/* A is the insecure host's alone: no DANE for it (RFC 7672 2.2) */
	next_case();
	unsigned_owner(1);
	a("mx20.d.test", 1, "192.0.2.2");
	tlsa("mx20.d.test", 1, 3, 1, 1, 32);
	d = expect("192.0.2.1", DANE_NONE, NULL);
	assert_string_equal(d->mx_host, "mx10.unsigned.test");
}

/* As above, the secure host's A RRset larger than an answer keeps
 * (DNS_MAX_RR records), with A past the kept ones: it is that host's
 * address all the same.  Judged on the kept records alone, the insecure
 * host (whose records an attacker on the path writes to claim A) was H:
 * no DANE for the signed host's server at A. */
static void
test_owner_secure_past_kept_records(void **s)
{
	struct dane_info *d;
	struct msg q;
	int i, n = DNS_MAX_RR + 6;

	unsigned_owner(1);
	begin(&q, 0x1234, 1, 0, "mx20.d.test", DNS_T_A, n, 0, 0);
	for (i = 0; i < n; i++) {
		static const unsigned char hdr[12] = { 0xc0, 12, 0, DNS_T_A,
		    0, 1, 0, 0, 1, 44, 0, 4 };

		memcpy(q.b + q.n, hdr, sizeof(hdr));
		q.n += (int)sizeof(hdr);
		q.b[q.n++] = 198;
		q.b[q.n++] = 51;
		q.b[q.n++] = 100;
		q.b[q.n++] = (unsigned char)(i + 1);
	}
	/* the last record: A */
	q.b[q.n - 4] = 192;
	q.b[q.n - 3] = 0;
	q.b[q.n - 2] = 2;
	q.b[q.n - 1] = 1;
	answer("mx20.d.test", DNS_T_A, DNS_SECURE, &q);
	tlsa("mx20.d.test", 1, 3, 1, 1, 32);
	d = expect("192.0.2.1", DANE_USABLE, NULL);
	assert_string_equal(d->mx_host, "mx20.d.test");
}

/* As above, but the secure host's address lookup fails (an attacker on
 * the path holds or breaks it) while the insecure host claims A, the
 * secure host's real address where the MTA went for DANE.  That host may
 * own A: defer, never no DANE. */
static void
test_owner_insecure_secure_failed(void **s)
{
	struct dane_info *d;

	unsigned_owner(1);
	fail_with("mx20.d.test", DNS_T_A, 6);
	tlsa("mx20.d.test", 1, 3, 1, 1, 32);
	d = expect("192.0.2.1", DANE_DEFER, "dnssec-invalid");
	assert_int_equal(d->local, 0);
	assert_non_null(strstr(d->detail, "mx20.d.test"));

	/* a timeout, the preferred host's (order does not matter) */
	next_case();
	mx("d.test", 1, "mx20.unsigned.test", "mx10.d.test");
	answer("mx10.d.test", DNS_T_A, DNS_TIMEOUT, NULL);
	a("mx20.unsigned.test", 0, "192.0.2.1");
	expect("192.0.2.1", DANE_DEFER, "dnssec-invalid");

	/* the lookup was never sent, for want of this host's resources:
	 * local-error, not the domain's to be told of */
	next_case();
	unsigned_owner(1);
	answer("mx20.d.test", DNS_T_A, DNS_LOCAL, NULL);
	d = expect("192.0.2.1", DANE_DEFER, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);

	/* a secure owner decides, whatever another host's failure */
	next_case();
	mx("d.test", 1, "mx20.d.test", "mx10.unsigned.test");
	fail_with("mx10.unsigned.test", DNS_T_A, -1);
	a("mx20.d.test", 1, "192.0.2.1");
	tlsa("mx20.d.test", 1, 3, 1, 1, 32);
	d = expect("192.0.2.1", DANE_USABLE, NULL);
	assert_string_equal(d->mx_host, "mx20.d.test");

	/* an insecure MX RRset: an attacker drops the host from it anyway;
	 * no DANE, as without an owner (test_fail_insecure_mx_no_defer) */
	next_case();
	unsigned_owner(0);
	fail_with("mx20.d.test", DNS_T_A, 6);
	d = expect("192.0.2.1", DANE_NONE, NULL);
	assert_string_equal(d->mx_host, "mx10.unsigned.test");
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

/* d.test's one MX host mx.d.test, secure A 192.0.2.1, and in m its
 * TLSA RRset of n records begun, for the caller to fill and answer */
static void
tlsa_rrset(struct msg *m, int n)
{
	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	begin(m, 0x1234, 1, 0, "_25._tcp.mx.d.test", DNS_T_TLSA, n, 0, 0);
}

static void
test_only_unusable(void **s)
{
	struct dane_info *d;
	struct msg m;

	tlsa_rrset(&m, 3);
	rr_tlsa(&m, "_25._tcp.mx.d.test", 1, 1, 1, 32, 300);	/* PKIX-EE */
	rr_tlsa(&m, "_25._tcp.mx.d.test", 3, 1, 1, 31, 300);	/* bad length */
	rr_tlsa(&m, "_25._tcp.mx.d.test", 3, 1, 9, 32, 300);	/* unknown type */
	answer("_25._tcp.mx.d.test", DNS_T_TLSA, DNS_SECURE, &m);
	d = expect("192.0.2.1", DANE_UNUSABLE, NULL);
	assert_int_equal(d->ntlsa, 3);
	assert_int_equal(d->nusable, 0);
}

/* A usable record that could not be copied for want of memory: the
 * RRset must not pass for one without it (TLS unauthenticated, or no
 * DANE), but defer as this gateway's trouble. */
static void
test_tlsa_record_nomem(void **s)
{
	struct dane_info *d;
	struct msg m;

	tlsa_rrset(&m, 2);
	rr_tlsa(&m, "_25._tcp.mx.d.test", 3, 1, 9, 40, 300);	/* unusable */
	rr_tlsa(&m, "_25._tcp.mx.d.test", 3, 1, 1, 32, 300);
	answer("_25._tcp.mx.d.test", DNS_T_TLSA, DNS_SECURE, &m);
	malloc_fail = 32;	/* the usable record's data */
	d = run("d.test", "192.0.2.1");
	malloc_fail = 0;
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);
	forget();

	/* with memory back: the same RRset is usable */
	d = expect("192.0.2.1", DANE_USABLE, NULL);
	assert_int_equal(d->ntlsa, 2);
	assert_int_equal(d->nusable, 1);
}

/* rdata for tlsa_many(): a short record (2 bytes, 3 1), a usable 3 1 1 */
static int
rd_short_usable(int i, unsigned char *out)
{
	out[0] = 3;
	out[1] = 1;
	if (i == 0)
		return 2;
	out[2] = 1;
	memset(out + 3, 0xab, 32);
	return 35;
}

/* ...and short ones only: 2, 1 and 0 bytes */
static int
rd_short_only(int i, unsigned char *out)
{
	out[0] = 3;
	out[1] = 1;
	return 2 - i;
}

/*
 * A TLSA record too short for usage, selector and matching type is
 * malformed, so unusable (RFC 7672 section 2.2, RFC 7671 section 4.1)
 * like a record of an unknown type: next to a usable record it is
 * ignored, and an RRset of such records alone is "DANE unusable" (TLS
 * mandatory, unauthenticated).  Red before: both dnssec-invalid, the
 * whole answer taken for a failed lookup.
 */
static void
test_tlsa_record_short(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	tlsa_many("mx.d.test", 2, rd_short_usable);
	d = expect("192.0.2.1", DANE_USABLE, NULL);
	assert_int_equal(d->ntlsa, 1);
	assert_int_equal(d->nusable, 1);
	next_case();

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	tlsa_many("mx.d.test", 3, rd_short_only);
	d = expect("192.0.2.1", DANE_UNUSABLE, NULL);
	assert_int_equal(d->nusable, 0);
	assert_int_equal(d->local, 0);
	next_case();

	/* the usable record lost to a failed malloc() next to a short one:
	 * still this gateway's trouble (4505812) */
	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	tlsa_many("mx.d.test", 2, rd_short_usable);
	malloc_fail = 32;
	d = run("d.test", "192.0.2.1");
	malloc_fail = 0;
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);
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

/* d.test's MX host mx.d.test is a secure CNAME for real.hoster.test,
 * whose address is 192.0.2.1 */
static void
cname_mx(void)
{
	struct msg m;

	mx("d.test", 1, "mx.d.test", NULL);
	begin(&m, 0x1234, 1, 0, "mx.d.test", DNS_T_A, 2, 0, 0);
	rr_name(&m, "mx.d.test", DNS_T_CNAME, -1, "real.hoster.test", 300);
	rr_a(&m, "real.hoster.test", "192.0.2.1", 300);
	answer("mx.d.test", DNS_T_A, DNS_SECURE, &m);
}

/* RFC 7672 2.2.2: MX host is a CNAME: the expanded name first, then the
 * original when the expanded name has no TLSA */
static void
test_cname_expanded(void **s)
{
	struct dane_info *d;

	cname_mx();
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

	cname_mx();
	begin(&m, 0x1234, 1, 0, "_25._tcp.real.hoster.test", DNS_T_TLSA, 0, 0, 0);
	answer("_25._tcp.real.hoster.test", DNS_T_TLSA, DNS_NODATA, &m);
	tlsa("mx.d.test", 1, 3, 1, 2, 64);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_USABLE);
	assert_string_equal(d->tlsa_base, "mx.d.test");
	assert_int_equal(d->tlsa[0].mtype, 2);
}

/* The expanded name's TLSA answer is not validated: the original name's
 * signed records still decide (the domain published them). */
static void
test_cname_fallback_insecure(void **s)
{
	struct dane_info *d;

	cname_mx();
	tlsa("real.hoster.test", 0, 3, 1, 1, 32);
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

/*
 * An IPv4-only MX host of a DANE domain, and an IPv6 destination (an
 * attacker sent the MTA there): the host has no AAAA records (a secure
 * NODATA), so it cannot own A, but its TLSA records still say that the
 * domain publishes DANE: deferred, never "no DANE".
 */
static void
test_not_an_mx_address_other_family(void **s)
{
	struct dane_info *d;
	struct msg m;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	begin(&m, 0x1234, 1, 0, "mx.d.test", DNS_T_AAAA, 0, 0, 0);
	answer("mx.d.test", DNS_T_AAAA, DNS_NODATA, &m);
	tlsa("mx.d.test", 1, 3, 1, 1, 32);
	d = run6("d.test", "2001:db8::66");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "validation-failure");
}

/* The MX host is a secure CNAME whose TLSA records are at the name it
 * expands to (RFC 7672 2.2.2), and A is no MX host's address: the
 * expanded name is asked too, so the domain's DANE is seen. */
static void
test_not_an_mx_address_cname(void **s)
{
	struct dane_info *d;

	cname_mx();
	tlsa("real.hoster.test", 1, 3, 1, 1, 32);
	d = run("d.test", "198.51.100.7");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "validation-failure");
}

/*
 * As test_cname_fallback_insecure, with A no MX host's address: the
 * expanded name's TLSA answer has records but is not validated, so the
 * original name is asked too, and its signed records show that D
 * publishes DANE: deferred, never "no DANE" because an unsigned zone
 * (the attacker's word) answered first.  Red with tlsa_cb() taking any
 * answer with records at the expanded name as the host's last word
 * (no_owner()'s walk, `st == DNS_SECURE` dropped): DANE_NONE, 0 != 0x3.
 */
static void
test_not_an_mx_address_cname_insecure(void **s)
{
	cname_mx();
	tlsa("real.hoster.test", 0, 3, 1, 1, 32);
	tlsa("mx.d.test", 1, 3, 1, 2, 64);
	expect("198.51.100.7", DANE_DEFER, "validation-failure");
	assert_int_equal(fake_of("_25._tcp.mx.d.test", DNS_T_TLSA)->asked, 1);
}

/*
 * A is no MX host's address; the secure host's TLSA answer has records
 * but is not validated: they are ignored (RFC 7672 section 2.2), as for
 * the owner (test_tlsa_absent_or_insecure), and say nothing of whether D
 * publishes DANE: no DANE, not a deferral.  Red with tlsa_cb() counting
 * any answer with records in no_owner()'s walk (`st == DNS_SECURE`
 * dropped): DANE_DEFER, validation-failure, 0x3 != 0.
 */
static void
test_not_an_mx_address_tlsa_insecure(void **s)
{
	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	tlsa("mx.d.test", 0, 3, 1, 1, 32);
	expect("198.51.100.7", DANE_NONE, NULL);
	assert_int_equal(fake_of("_25._tcp.mx.d.test", DNS_T_TLSA)->asked, 1);
}

/*
 * A is no MX host's address, and the only host's addresses did not
 * validate: DANE does not apply to that host (RFC 7672 section 2.2), so
 * its TLSA records are never asked and say nothing of the domain: no
 * DANE, not a deferral, as when that host owns A (test_insecure_address).
 * Red before (no_owner() asking hosts with insecure addresses too):
 * DANE_DEFER, validation-failure.
 */
static void
test_not_an_mx_address_insecure_host(void **s)
{
	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 0, "192.0.2.1");
	tlsa("mx.d.test", 1, 3, 1, 1, 32);
	expect("198.51.100.7", DANE_NONE, NULL);
	assert_int_equal(fake_of("_25._tcp.mx.d.test", DNS_T_TLSA)->asked, 0);
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

/*
 * An MX host name of 245 to 253 octets is a DNS name, but _25._tcp. in
 * front of it is not (over 253): no TLSA record can exist there, so the
 * host has none, as an NXDOMAIN would say.  The resolver is never asked
 * (dns_query() fails a name that long, DNS_ERROR, faked here as it
 * answers), and the mail is not deferred for good as for a failed TLSA
 * lookup in a signed zone: DANE does not apply, whether the host owns A
 * or A is no MX host's address.  A secure CNAME host whose expanded name
 * is that long is asked at its own name (RFC 7672 2.2.2).  Red before:
 * DANE_DEFER, dnssec-invalid.
 */
static char longhost[256];

static const char *
long_host(void)
{
	char q[300];

	/* 63 + 1 + 63 + 1 + 63 + 1 + 50 + 7 = 249 octets */
	snprintf(longhost, sizeof(longhost), "%.63s.%.63s.%.63s.%.50s.d.test",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	    "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	    "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	assert_int_equal(strlen(longhost), 249);
	snprintf(q, sizeof(q), "_25._tcp.%s", longhost);
	answer(q, DNS_T_TLSA, DNS_ERROR, NULL);
	return longhost;
}

static void
test_tlsa_name_too_long(void **s)
{
	struct dane_info *d;
	const char *h = long_host();
	struct msg m;

	mx("d.test", 1, h, NULL);
	a(h, 1, "192.0.2.1");
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_NONE);
	assert_string_equal(d->mx_host, h);
	dane_info_free(d);
	got = NULL;
	/* A no MX host's address: the other host asked, no deferral */
	mx("d.test", 1, h, "mx.d.test");
	a("mx.d.test", 1, "192.0.2.2");
	d = run("d.test", "198.51.100.7");
	assert_int_equal(d->state, DANE_NONE);
	dane_info_free(d);
	got = NULL;
	/* a secure CNAME to the long name: TLSA at mx.d.test's own name */
	mx("d.test", 1, "mx.d.test", NULL);
	begin(&m, 0x1234, 1, 0, "mx.d.test", DNS_T_A, 2, 0, 0);
	rr_name(&m, "mx.d.test", DNS_T_CNAME, -1, h, 300);
	rr_a(&m, h, "192.0.2.1", 300);
	answer("mx.d.test", DNS_T_A, DNS_SECURE, &m);
	tlsa("mx.d.test", 1, 3, 1, 1, 32);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_USABLE);
	assert_string_equal(d->tlsa_base, "mx.d.test");
	dane_info_free(d);
	got = NULL;
	d = run("d.test", "198.51.100.7");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "validation-failure");
}

/*
 * The bound of tlsa_name_fits() to the octet: a host name of 244 octets
 * makes _25._tcp.HOST 253, a DNS name, and its TLSA records decide; one of
 * 245 is never asked (its faked answer, the DNS_ERROR dns_query() gives
 * a name that long, would defer).  A secure CNAME of 245 octets expanding
 * to a name without TLSA records is not asked at its own name either: no
 * DANE, not a deferral.  Red before (the bound one octet lower, one
 * higher, the CNAME's own name asked whatever its length): DANE_NONE for
 * the 244-octet host; DANE_DEFER, dnssec-invalid, for the other two.
 */
static const char *
host_of_len(size_t len)
{
	static char h[256];

	/* 63 + 1 + 63 + 1 + 63 + 1 + n + 7 (".d.test") octets */
	snprintf(h, sizeof(h), "%.63s.%.63s.%.63s.%.*s.d.test",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	    "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	    (int)(len - 199),
	    "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	assert_int_equal(strlen(h), len);
	return h;
}

static void
test_tlsa_name_bound(void **s)
{
	struct dane_info *d;
	char q[300], h[256];
	struct msg m;

	snprintf(h, sizeof(h), "%s", host_of_len(244));
	mx("d.test", 1, h, NULL);
	a(h, 1, "192.0.2.1");
	tlsa(h, 1, 3, 1, 1, 32);
	d = expect("192.0.2.1", DANE_USABLE, NULL);
	assert_string_equal(d->tlsa_base, h);
	next_case();
	snprintf(h, sizeof(h), "%s", host_of_len(245));
	mx("d.test", 1, h, NULL);
	a(h, 1, "192.0.2.1");
	snprintf(q, sizeof(q), "_25._tcp.%s", h);
	answer(q, DNS_T_TLSA, DNS_ERROR, NULL);
	d = expect("192.0.2.1", DANE_NONE, NULL);
	assert_string_equal(d->mx_host, h);
	assert_int_equal(fake_of(q, DNS_T_TLSA)->asked, 0);
	next_case();
	mx("d.test", 1, h, NULL);
	begin(&m, 0x1234, 1, 0, h, DNS_T_A, 2, 0, 0);
	rr_name(&m, h, DNS_T_CNAME, -1, "real.hoster.test", 300);
	rr_a(&m, "real.hoster.test", "192.0.2.1", 300);
	answer(h, DNS_T_A, DNS_SECURE, &m);
	answer(q, DNS_T_TLSA, DNS_ERROR, NULL);
	d = expect("192.0.2.1", DANE_NONE, NULL);
	assert_string_equal(d->mx_host, h);
	assert_int_equal(fake_of(q, DNS_T_TLSA)->asked, 0);
}

/*
 * A signed domain with more MX hosts than the walk keeps (MX_MAX_HOSTS),
 * and A the address of one it did not keep, whose TLSA records the
 * attacker wants never asked (it made the best hosts unreachable, so the
 * MTA went on down the list): none of the kept hosts publishes TLSA, yet
 * the domain may through the one that owns A.  Whether it does cannot be
 * told: deferred, never "no DANE".  The same when the answer held more
 * MX records than the DNS layer keeps (DNS_MAX_RR).
 */
/* many_mx(n), with claim mx00's A insecure and the address of mx16, the
 * first host the walk does not keep */
static void
many_mx_claim(int n, int claim)
{
	struct msg m;
	char h[64], ip[32];
	int i, own;

	begin(&m, 0x1234, 1, 0, "d.test", DNS_T_MX, n, 0, 0);
	for (i = 0; i < n; i++) {
		snprintf(h, sizeof(h), "mx%02d.d.test", i);
		rr_name(&m, "d.test", DNS_T_MX, 10 + i, h, 300);
	}
	answer("d.test", DNS_T_MX, DNS_SECURE, &m);
	for (i = 0; i < n && i < MX_MAX_HOSTS + 1; i++) {
		own = !(claim && i == 0);
		snprintf(h, sizeof(h), "mx%02d.d.test", i);
		snprintf(ip, sizeof(ip), "192.0.2.%d",
		    10 + (own ? i : MX_MAX_HOSTS));
		a(h, own, ip);
	}
}

/* n secure MX hosts mx00 (preference 10) on, the first MX_MAX_HOSTS + 1
 * with secure A 192.0.2.(10 + i) */
static void
many_mx(int n)
{
	many_mx_claim(n, 0);
}

/* The address of the host past those kept, 192.0.2.(10 + MX_MAX_HOSTS) */
static const char *
unkept_ip(void)
{
	static char ip[32];

	snprintf(ip, sizeof(ip), "192.0.2.%d", 10 + MX_MAX_HOSTS);
	return ip;
}

static void
test_not_a_kept_mx_address(void **s)
{
	struct dane_info *d;

	many_mx(MX_MAX_HOSTS + 1);
	tlsa("mx16.d.test", 1, 3, 1, 1, 32);
	d = expect(unkept_ip(), DANE_DEFER, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);
	assert_string_equal(d->mx_host, "");
	forget();
	/* a kept host's address still decides as before */
	d = expect("192.0.2.10", DANE_NONE, NULL);
	assert_string_equal(d->mx_host, "mx00.d.test");
}

/* As test_owner_insecure_secure_failed, with the host that may own A
 * one the walk did not keep: an unsigned kept host claims the address of
 * the 17th, signed, host, whose addresses and TLSA records were never
 * asked.  Deferred, never "no DANE". */
static void
test_owner_insecure_unkept(void **s)
{
	struct dane_info *d;

	many_mx_claim(MX_MAX_HOSTS + 1, 1);
	tlsa("mx16.d.test", 1, 3, 1, 1, 32);
	d = expect(unkept_ip(), DANE_DEFER, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);
	assert_non_null(strstr(d->detail, "were not kept"));
	forget();
	/* a kept signed host's own address decides as before */
	d = expect("192.0.2.11", DANE_NONE, NULL);
	assert_string_equal(d->mx_host, "mx01.d.test");
}

static void
test_not_a_kept_mx_record(void **s)
{
	struct dane_info *d;
	struct msg m;
	unsigned char *b;
	int i, j, o, n = DNS_MAX_RR + 1;

	/* DNS_MAX_RR records naming one host, then one naming another: the
	 * walk sees one host, the answer had two (built beyond struct msg's
	 * size; each record's owner is the question's name) */
	b = malloc(65536);
	assert_non_null(b);
	begin(&m, 0x1234, 1, 0, "d.test", DNS_T_MX, 0, 0, 0);
	memcpy(b, m.b, (size_t)m.n);
	b[6] = (unsigned char)(n >> 8);
	b[7] = (unsigned char)n;
	o = m.n;
	for (i = 0; i < n; i++) {
		static const unsigned char hdr[10] = { 0xc0, 12, 0, DNS_T_MX,
		    0, 1, 0, 0, 1, 44 };
		/* rdata: preference 10, then "h00" or "h64" and d.test */
		const unsigned char rd[10] = { 0, 8, 0, 10, 3, 'h',
		    (unsigned char)('0' + (i < DNS_MAX_RR ? 0 : i / 10)),
		    (unsigned char)('0' + (i < DNS_MAX_RR ? 0 : i % 10)),
		    0xc0, 12 };

		for (j = 0; j < 10; j++) {
			b[o + j] = hdr[j];
			b[o + 10 + j] = rd[j];
		}
		o += 20;
	}
	answer_raw("d.test", DNS_T_MX, DNS_SECURE, b, o);
	free(b);
	a("h00.d.test", 1, "192.0.2.10");
	a("h64.d.test", 1, "192.0.2.64");
	tlsa("h64.d.test", 1, 3, 1, 1, 32);
	d = expect("192.0.2.64", DANE_DEFER, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);
	forget();
	d = expect("192.0.2.10", DANE_NONE, NULL);
	assert_string_equal(d->mx_host, "h00.d.test");
}

/*
 * DNS failures in a signed zone defer, in every shape: a lookup that
 * could have produced TLSA records either answered or the verdict defers.
 */
static void
test_fail_addr_then_tlsa(void **s)
{
	struct dane_info *d;

	/* the MTA goes to mx1's address; mx1's A and mx2's TLSA time out */
	mx("d.test", 1, "mx2.d.test", "mx1.d.test");
	answer("mx1.d.test", DNS_T_A, DNS_TIMEOUT, NULL);
	a("mx2.d.test", 1, "192.0.2.2");
	answer("_25._tcp.mx2.d.test", DNS_T_TLSA, DNS_TIMEOUT, NULL);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "dnssec-invalid");
}

static void
test_fail_not_an_mx_tlsa_timeout(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	answer("_25._tcp.mx.d.test", DNS_T_TLSA, DNS_TIMEOUT, NULL);
	d = run("d.test", "198.51.100.7");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "dnssec-invalid");
}

static void
test_fail_single_addr_timeout(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	answer("mx.d.test", DNS_T_A, DNS_TIMEOUT, NULL);
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "dnssec-invalid");
}

/*
 * A is no MX host's address and the secure host's TLSA lookup failed as
 * SERVFAIL (bogus) or with an error (a malformed answer): the domain may
 * publish DANE, deferred, never "no DANE", as for a timeout.  And so when
 * the host is a secure CNAME whose expanded name's lookup failed: its
 * own name, which has no TLSA records, does not make up for it.  Red
 * before (is_failure() without SERVFAIL, or without ERROR; a failure at
 * the expanded name followed by the original's): DANE_NONE.
 */
static void
test_fail_not_an_mx_tlsa_servfail(void **s)
{
	struct dane_info *d;

	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	fail_with("_25._tcp.mx.d.test", DNS_T_TLSA, -1);
	d = expect("198.51.100.7", DANE_DEFER, "dnssec-invalid");
	assert_non_null(strstr(d->detail, "servfail"));
	next_case();
	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	answer("_25._tcp.mx.d.test", DNS_T_TLSA, DNS_ERROR, NULL);
	expect("198.51.100.7", DANE_DEFER, "dnssec-invalid");
	next_case();
	cname_mx();
	fail_with("_25._tcp.real.hoster.test", DNS_T_TLSA, -1);
	expect("198.51.100.7", DANE_DEFER, "dnssec-invalid");
}

/*
 * A lookup this host never sent (DNS_LOCAL: c-ares refused it for want
 * of local resources) shows nothing of the zone, at any step: the MX
 * lookup; the owner's TLSA lookup; with A no MX host's address, another
 * host's address lookup (that host may own A) or, for a secure CNAME
 * host, the TLSA lookup at the expanded name (the original name's answer,
 * none here, does not make up for it).  Each defers as `local-error`
 * (not reported), never "no DANE" for a domain that may publish it.
 * Red with evaluate() or tlsa_cb() finishing DANE_NONE for it, no_owner()
 * not setting any_local, any_done() without its any_local branch, or
 * is_failure() without DNS_LOCAL: DANE_NONE, 0 != 0x3.
 */
static void
test_local_not_sent(void **s)
{
	struct dane_info *d;

	answer("d.test", DNS_T_MX, DNS_LOCAL, NULL);
	d = expect("192.0.2.1", DANE_DEFER, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);

	next_case();
	mx("d.test", 1, "mx.d.test", NULL);
	a("mx.d.test", 1, "192.0.2.1");
	answer("_25._tcp.mx.d.test", DNS_T_TLSA, DNS_LOCAL, NULL);
	d = expect("192.0.2.1", DANE_DEFER, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);
	assert_string_equal(d->mx_host, "mx.d.test");

	/* A no MX host's address; mx2's address lookup not sent */
	next_case();
	mx("d.test", 1, "mx.d.test", "mx2.d.test");
	a("mx.d.test", 1, "192.0.2.1");
	answer("mx2.d.test", DNS_T_A, DNS_LOCAL, NULL);
	d = expect("198.51.100.7", DANE_DEFER, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);

	/* A no MX host's address; the expanded name's TLSA lookup not
	 * sent, the original name has none */
	next_case();
	cname_mx();
	answer("_25._tcp.real.hoster.test", DNS_T_TLSA, DNS_LOCAL, NULL);
	d = expect("198.51.100.7", DANE_DEFER, DANE_LOCAL_ERROR);
	assert_int_equal(d->local, 1);
}

/* An unsigned MX RRset: nothing shows that D is signed, so a failed
 * address lookup of a host that is not the destination changes nothing. */
static void
test_fail_insecure_mx_no_defer(void **s)
{
	struct dane_info *d;

	mx("d.test", 0, "mx2.d.test", "mx1.d.test");
	answer("mx1.d.test", DNS_T_A, DNS_TIMEOUT, NULL);
	a("mx2.d.test", 0, "192.0.2.2");
	d = run("d.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_NONE);
}

/* Equal preferences: the order is (pref, name), whatever the answer's
 * order, the same for every user of the MX walk. */
static void
test_equal_pref_stable(void **s)
{
	struct dane_info *d;
	struct msg m;

	begin(&m, 0x1234, 1, 0, "d.test", DNS_T_MX, 2, 0, 0);
	rr_name(&m, "d.test", DNS_T_MX, 10, "b.d.test", 300);
	rr_name(&m, "d.test", DNS_T_MX, 10, "a.d.test", 300);
	answer("d.test", DNS_T_MX, DNS_SECURE, &m);
	a("a.d.test", 1, "192.0.2.1");
	a("b.d.test", 1, "192.0.2.1");
	tlsa("a.d.test", 1, 3, 1, 1, 32);
	tlsa("b.d.test", 1, 3, 1, 1, 32);
	d = run("d.test", "192.0.2.1");
	assert_string_equal(d->mx_host, "a.d.test");
	assert_string_equal(d->tlsa_base, "a.d.test");
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
	/* a failure without a sign of DNSSEC defers too: an attacker who
	 * drops or breaks the MX query must not turn DANE off */
	fail_with("broken.test", DNS_T_MX, -1);
	d = run("broken.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "dnssec-invalid");
	dane_info_free(d);
	got = NULL;
	answer("slow.test", DNS_T_MX, DNS_TIMEOUT, NULL);
	d = run("slow.test", "192.0.2.1");
	assert_int_equal(d->state, DANE_DEFER);
	assert_string_equal(d->reason, "dnssec-invalid");
	dane_info_free(d);
	got = NULL;
	/* a definite answer is no failure: NXDOMAIN (no fake) makes D its
	 * own MX host, which has no address here: DANE does not apply */
	d = run("nomx.test", "192.0.2.1");
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
	struct mx_result m;
	struct dane_req *r;

	memset(&m, 0, sizeof(m));
	snprintf(m.domain, sizeof(m.domain), "d.test");
	m.status = DNS_SECURE;
	m.secure = 1;
	m.nhost = 1;
	snprintf(m.host[0].name, sizeof(m.host[0].name), "mx.d.test");
	m.host[0].st4 = DNS_SECURE;
	m.host[0].has_dst = 1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	r = dane_lookup(loop, NULL, &m, (struct sockaddr *)&sin, done, NULL);
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
		cmocka_unit_test_setup_teardown(test_owner_secure_over_insecure,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_owner_secure_past_kept_records, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_owner_insecure_secure_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_owner_insecure_unkept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_insecure_address, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_insecure_mx_signed_host,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_implicit_mx, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_only_unusable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_record_nomem, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_record_short, setup,
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
		cmocka_unit_test_setup_teardown(test_cname_fallback_insecure,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cname_fallback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_an_mx_address, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_an_mx_address_other_family,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_an_mx_address_cname,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_kept_mx_address,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_kept_mx_record,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_an_mx_address_no_dane,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_not_an_mx_address_cname_insecure, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_not_an_mx_address_tlsa_insecure, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_not_an_mx_address_insecure_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_name_too_long,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_name_bound,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_addr_then_tlsa,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_fail_not_an_mx_tlsa_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_fail_not_an_mx_tlsa_servfail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_single_addr_timeout,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_not_sent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fail_insecure_mx_no_defer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_equal_pref_stable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mx_failures, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ede_parser, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
