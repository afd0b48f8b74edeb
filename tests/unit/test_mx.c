/*
 * test_mx.c - the one MX walk (policy/mx.c) on canned DNS answers
 * (fakedns.h): the order of the hosts (preference, then name, whatever
 * the answer's order), duplicates, null MX, the implicit MX and its
 * secure denial, more hosts than are kept (the best stay, whatever the
 * answer's order), a failed MX lookup with its Extended DNS Error, address
 * statuses per family, the host owning the destination, the A-before-AAAA
 * order of addresses, the secure CNAME expansion, and cancel.
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
#include "policy/dns.h"
#include "policy/mx.h"

#include "fakedns.h"
#include "testloop.h"

static struct mx_result *got;

static void
done(void *arg, struct mx_result *m)
{
	got = m;
	ev_loop_stop(loop);
}

static struct mx_result *
walk(const char *domain, const char *dst, int families)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (dst != NULL)
		inet_pton(AF_INET, dst, &sin.sin_addr);
	got = NULL;
	assert_non_null(mx_walk(NULL, domain, dst ? (struct sockaddr *)&sin :
	    NULL, families, done, NULL));
	assert_null(got);		/* never synchronous */
	ev_loop_run(loop);
	assert_non_null(got);
	return got;
}

static int
setup(void **state)
{
	loop = ev_loop_new();
	nfakes = 0;
	queries = 0;
	got = NULL;
	return 0;
}

static int
teardown(void **state)
{
	fakes_clear();
	free(got);
	got = NULL;
	ev_loop_free(loop);
	return 0;
}

static void
mx3(const char *d, const char *h1, int p1, const char *h2, int p2,
    const char *h3, int p3)
{
	struct msg m;

	begin(&m, 0x1234, 1, 0, d, DNS_T_MX, 3, 0, 0);
	rr_name(&m, d, DNS_T_MX, p1, h1, 300);
	rr_name(&m, d, DNS_T_MX, p2, h2, 300);
	rr_name(&m, d, DNS_T_MX, p3, h3, 300);
	answer(d, DNS_T_MX, DNS_SECURE, &m);
}

/* Equal preferences sort by name, in whichever order the answer lists
 * them: the engine, DANE, check and policy see one order. */
static void
test_order(void **s)
{
	struct mx_result *m;

	mx3("d.test", "c.d.test", 10, "b.d.test", 10, "a.d.test", 5);
	m = walk("D.test.", NULL, 0);
	assert_string_equal(m->domain, "d.test");
	assert_int_equal(m->status, DNS_SECURE);
	assert_int_equal(m->secure, 1);
	assert_int_equal(m->nhost, 3);
	assert_string_equal(m->host[0].name, "a.d.test");
	assert_string_equal(m->host[1].name, "b.d.test");
	assert_string_equal(m->host[2].name, "c.d.test");
	assert_int_equal(m->host[0].st4, -1);	/* not asked */
	assert_int_equal(queries, 1);
	free(m);
	got = NULL;
	fakes_clear();
	mx3("d.test", "a.d.test", 5, "b.d.test", 10, "c.d.test", 10);
	m = walk("d.test", NULL, 0);
	assert_string_equal(m->host[1].name, "b.d.test");
	assert_string_equal(m->host[2].name, "c.d.test");
}

/* More MX hosts than are kept (16): the best ones, whatever the order
 * of the answer. */
static void
test_many_hosts(void **s)
{
	struct mx_result *m;
	struct msg q;
	char h[32];
	int i, k;

	for (k = 0; k < 2; k++) {
		begin(&q, 0x1234, 1, 0, "many.test", DNS_T_MX, 20, 0, 0);
		for (i = 0; i < 20; i++) {
			int n = k == 0 ? i : 19 - i;

			snprintf(h, sizeof(h), "mx%02d.many.test", n);
			rr_name(&q, "many.test", DNS_T_MX, 100 - 5 * n, h, 300);
		}
		answer("many.test", DNS_T_MX, DNS_SECURE, &q);
		m = walk("many.test", NULL, 0);
		assert_int_equal(m->nhost, MX_MAX_HOSTS);
		/* mx19 has the best preference (5), mx04 the 16th */
		assert_string_equal(m->host[0].name, "mx19.many.test");
		assert_string_equal(m->host[MX_MAX_HOSTS - 1].name,
		    "mx04.many.test");
		free(m);
		got = NULL;
		fakes_clear();
	}
	/* an MX RRset of more records than an answer keeps (DNS_MAX_RR):
	 * those past them are hosts not kept either, counted (the engine
	 * defers the destination none of the kept hosts owns as
	 * local-error, not as a validation failure) */
	{
		int n = DNS_MAX_RR + 2;

		begin(&q, 0x1234, 1, 0, "many.test", DNS_T_MX, n, 0, 0);
		for (i = 0; i < n; i++) {
			unsigned char rr[21] = { 0xc0, 12, 0, DNS_T_MX, 0, 1,
			    0, 0, 1, 44, 0, 9, 0, 10, 4, 'm', 'x',
			    (unsigned char)('0' + i / 10),
			    (unsigned char)('0' + i % 10), 0xc0, 12 };

			memcpy(q.b + q.n, rr, sizeof(rr));
			q.n += (int)sizeof(rr);
		}
		answer("many.test", DNS_T_MX, DNS_SECURE, &q);
		m = walk("many.test", NULL, 0);
		assert_int_equal(m->nhost, MX_MAX_HOSTS);
		assert_string_equal(m->host[0].name, "mx00.many.test");
		assert_int_equal(m->nunkept, n - MX_MAX_HOSTS);
	}
}

static void
test_duplicates_and_null(void **s)
{
	struct mx_result *m;
	struct msg q;

	mx3("d.test", "b.d.test", 20, "b.d.test", 10, "", 0);
	m = walk("d.test", NULL, 0);
	assert_int_equal(m->nhost, 1);
	assert_int_equal(m->host[0].pref, 10);
	assert_int_equal(m->null_mx, 0);
	free(m);
	got = NULL;
	/* RFC 7505: the null MX alone */
	begin(&q, 0x1234, 1, 0, "null.test", DNS_T_MX, 1, 0, 0);
	rr_name(&q, "null.test", DNS_T_MX, 0, "", 300);
	answer("null.test", DNS_T_MX, DNS_SECURE, &q);
	m = walk("null.test", "192.0.2.1", MX_WALK_A);
	assert_int_equal(m->nhost, 0);
	assert_int_equal(m->null_mx, 1);
	assert_int_equal(m->owner, -1);
}

static void
test_implicit(void **s)
{
	struct mx_result *m;
	struct msg q;

	begin(&q, 0x1234, 1, 0, "d.test", DNS_T_MX, 0, 0, 0);
	answer("d.test", DNS_T_MX, DNS_NODATA, &q);
	a("d.test", 1, "192.0.2.1");
	m = walk("d.test", "192.0.2.1", MX_WALK_A);
	assert_int_equal(m->implicit, 1);
	assert_int_equal(m->secure, 1);		/* secure denial */
	assert_int_equal(m->nhost, 1);
	assert_string_equal(m->host[0].name, "d.test");
	assert_int_equal(m->host[0].pref, 0);
	assert_int_equal(m->owner, 0);
	free(m);
	got = NULL;
	fakes_clear();
	/* a denial without the AD bit: implicit MX, insecure (no DANE
	 * for a domain whose MX anyone on the path may deny) */
	begin(&q, 0x1234, 0, 0, "d.test", DNS_T_MX, 0, 0, 0);
	answer("d.test", DNS_T_MX, DNS_NODATA, &q);
	m = walk("d.test", NULL, MX_WALK_A);
	assert_int_equal(m->implicit, 1);
	assert_int_equal(m->secure, 0);
	free(m);
	got = NULL;
	/* NXDOMAIN, no fake at all: implicit MX, insecure */
	m = walk("none.test", NULL, MX_WALK_A);
	assert_int_equal(m->status, DNS_NXDOMAIN);
	assert_int_equal(m->implicit, 1);
	assert_int_equal(m->secure, 0);
	assert_int_equal(m->host[0].st4, DNS_NXDOMAIN);
}

static void
test_mx_failure(void **s)
{
	struct mx_result *m;

	fail_with("bogus.test", DNS_T_MX, 7);
	m = walk("bogus.test", "192.0.2.1", MX_WALK_A);
	assert_int_equal(m->status, DNS_SERVFAIL);
	assert_int_equal(m->ede, 7);
	assert_int_equal(m->nhost, 0);
	assert_int_equal(m->owner, -1);
	free(m);
	got = NULL;
	answer("slow.test", DNS_T_MX, DNS_TIMEOUT, NULL);
	m = walk("slow.test", NULL, MX_WALK_A);
	assert_int_equal(m->status, DNS_TIMEOUT);
	assert_int_equal(m->ede, -1);
	assert_true(mx_status_failed(m->status));
}

/* The destination's owner is the most preferred host with it among its
 * addresses; failures and statuses are kept per host and family. */
static void
test_owner_and_statuses(void **s)
{
	struct mx_result *m;
	struct msg q;

	mx3("d.test", "mx30.d.test", 30, "mx20.d.test", 20, "mx10.d.test",
	    10);
	answer("mx10.d.test", DNS_T_A, DNS_TIMEOUT, NULL);
	a("mx20.d.test", 0, "192.0.2.1");
	a("mx30.d.test", 1, "192.0.2.1");
	begin(&q, 0x1234, 1, 0, "mx30.d.test", DNS_T_AAAA, 1, 0, 0);
	rr_hdr(&q, "mx30.d.test", DNS_T_AAAA, 300, 16);
	inet_pton(AF_INET6, "2001:db8::30", q.b + q.n);
	q.n += 16;
	answer("mx30.d.test", DNS_T_AAAA, DNS_SECURE, &q);
	m = walk("d.test", "192.0.2.1", MX_WALK_A | MX_WALK_AAAA);
	assert_int_equal(m->owner, 1);
	assert_string_equal(m->host[1].name, "mx20.d.test");
	assert_int_equal(m->host[0].st4, DNS_TIMEOUT);
	assert_int_equal(m->host[0].has_dst, 0);
	assert_int_equal(m->host[1].st4, DNS_INSECURE);
	assert_int_equal(m->host[1].st6, DNS_NXDOMAIN);
	assert_int_equal(m->host[2].st4, DNS_SECURE);
	assert_int_equal(m->host[2].st6, DNS_SECURE);
	assert_int_equal(m->host[2].has_dst, 1);
	/* A before AAAA */
	assert_int_equal(m->host[2].naddr, 2);
	assert_int_equal(m->host[2].addr[0].ss_family, AF_INET);
	assert_int_equal(m->host[2].addr[1].ss_family, AF_INET6);
	assert_int_equal(mx_host_status(&m->host[2], AF_INET6), DNS_SECURE);
	assert_int_equal(m->pending, 0);
	/* another destination, on the same walk (mxguard check) */
	{
		struct sockaddr_in6 s6;

		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		inet_pton(AF_INET6, "2001:db8::30", &s6.sin6_addr);
		assert_int_equal(mx_result_set_dst(m,
		    (struct sockaddr *)&s6), 2);
		assert_int_equal(m->host[1].has_dst, 0);
		/* 192.0.2.1 behind the well-known NAT64 prefix is judged as
		 * 192.0.2.1, as the engine judges it (netaddr_judged()):
		 * check and policy --dst named no MX host for it */
		inet_pton(AF_INET6, "64:ff9b::192.0.2.1", &s6.sin6_addr);
		assert_int_equal(mx_result_set_dst(m,
		    (struct sockaddr *)&s6), 1);
		assert_int_equal(m->host[2].has_dst, 1);
	}
}

static void
test_cname_expanded(void **s)
{
	struct mx_result *m;
	struct msg q;

	mx("d.test", 1, "mx.d.test", NULL);
	begin(&q, 0x1234, 1, 0, "mx.d.test", DNS_T_A, 2, 0, 0);
	rr_name(&q, "mx.d.test", DNS_T_CNAME, -1, "real.hoster.test", 300);
	rr_a(&q, "real.hoster.test", "192.0.2.1", 300);
	answer("mx.d.test", DNS_T_A, DNS_SECURE, &q);
	m = walk("d.test", "192.0.2.1", MX_WALK_A);
	assert_string_equal(m->host[0].expanded, "real.hoster.test");
	assert_int_equal(m->owner, 0);
	free(m);
	got = NULL;
	fakes_clear();
	/* an unsigned chain names no TLSA base (its target is anyone's on
	 * the path), and a host that is no CNAME has no expansion */
	mx("d.test", 1, "mx.d.test", "mx2.d.test");
	begin(&q, 0x1234, 0, 0, "mx.d.test", DNS_T_A, 2, 0, 0);
	rr_name(&q, "mx.d.test", DNS_T_CNAME, -1, "evil.test", 300);
	rr_a(&q, "evil.test", "192.0.2.1", 300);
	answer("mx.d.test", DNS_T_A, DNS_INSECURE, &q);
	a("mx2.d.test", 1, "192.0.2.2");
	m = walk("d.test", "192.0.2.1", MX_WALK_A);
	assert_string_equal(m->host[1].name, "mx.d.test");
	assert_int_equal(m->host[1].st4, DNS_INSECURE);
	assert_int_equal(m->host[1].has_dst, 1);
	assert_string_equal(m->host[1].expanded, "");
	assert_int_equal(m->host[0].st4, DNS_SECURE);
	assert_string_equal(m->host[0].expanded, "");
}

/* A secure A RRset of more records than an answer keeps (DNS_MAX_RR):
 * the destination among the records past them is still that host's.
 * Seen only in the kept ones, the signed host did not own A, and an
 * unsigned host whose A records an attacker on the path writes to
 * claim A became H: no DANE for the signed host's server at A. */
static void
test_owner_past_kept_records(void **s)
{
	struct mx_result *m;
	struct msg q;
	int i, n = DNS_MAX_RR + 6;

	mx("d.test", 1, "mx.signed.test", "mx.unsigned.test");
	a("mx.unsigned.test", 0, "192.0.2.200");
	begin(&q, 0x1234, 1, 0, "mx.signed.test", DNS_T_A, n, 0, 0);
	for (i = 0; i < n; i++) {
		static const unsigned char hdr[12] = { 0xc0, 12, 0, DNS_T_A,
		    0, 1, 0, 0, 1, 44, 0, 4 };

		memcpy(q.b + q.n, hdr, sizeof(hdr));
		q.n += (int)sizeof(hdr);
		q.b[q.n++] = 192;
		q.b[q.n++] = 0;
		q.b[q.n++] = 2;
		q.b[q.n++] = (unsigned char)(i + 1 == n ? 200 : i + 1);
	}
	answer("mx.signed.test", DNS_T_A, DNS_SECURE, &q);
	m = walk("d.test", "192.0.2.200", MX_WALK_A);
	assert_int_equal(m->nhost, 2);
	/* mx.unsigned.test (10) first, then mx.signed.test (20) */
	assert_string_equal(m->host[1].name, "mx.signed.test");
	assert_int_equal(m->host[1].st4, DNS_SECURE);
	assert_int_equal(m->host[0].has_dst, 1);
	assert_int_equal(m->host[1].has_dst, 1);
	/* every address past the kept ones counted as not kept */
	assert_int_equal(m->host[1].naddr, MX_MAX_ADDRS);
	assert_int_equal(m->host[1].nmore, n - MX_MAX_ADDRS);
}

static struct mx_result *
walk6(const char *domain, const char *dst)
{
	struct sockaddr_in6 s6;

	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, dst, &s6.sin6_addr);
	got = NULL;
	assert_non_null(mx_walk(NULL, domain, (struct sockaddr *)&s6,
	    MX_WALK_AAAA, done, NULL));
	ev_loop_run(loop);
	assert_non_null(got);
	return got;
}

/*
 * This host's own failure (DNS_LOCAL: out of memory, a socket it could
 * not open) is told apart from the network's: the engine defers such a
 * lookup as `local-error` (mx_result_local()).  The MX lookup's own; an
 * address lookup's of either family when no host owns the destination;
 * never when a host owns it.  A status never asked (-1) counts as failed,
 * and a host's status is the one of the family asked for.
 */
static void
test_result_local(void **s)
{
	struct mx_result *m;

	assert_true(mx_status_failed(-1));
	assert_true(mx_status_failed(DNS_LOCAL));
	assert_false(mx_status_failed(DNS_NODATA));
	assert_int_equal(mx_result_local(NULL), 0);
	/* the MX lookup */
	answer("loc.test", DNS_T_MX, DNS_LOCAL, NULL);
	m = walk("loc.test", "192.0.2.1", MX_WALK_A);
	assert_int_equal(m->status, DNS_LOCAL);
	assert_int_equal(m->nhost, 0);
	assert_int_equal(mx_result_local(m), 1);
	free(m);
	got = NULL;
	fakes_clear();
	/* an A lookup, no host owning the destination */
	mx("d.test", 1, "mx20.d.test", "mx10.d.test");
	answer("mx10.d.test", DNS_T_A, DNS_LOCAL, NULL);
	a("mx20.d.test", 1, "192.0.2.20");
	m = walk("d.test", "192.0.2.99", MX_WALK_A);
	assert_int_equal(m->owner, -1);
	assert_int_equal(m->host[0].st4, DNS_LOCAL);
	assert_int_equal(mx_result_local(m), 1);
	free(m);
	got = NULL;
	fakes_clear();
	/* an AAAA lookup, no host owning the destination */
	mx("d.test", 1, "mx20.d.test", "mx10.d.test");
	answer("mx10.d.test", DNS_T_AAAA, DNS_LOCAL, NULL);
	aaaa("mx20.d.test", 1, "2001:db8::20");
	m = walk6("d.test", "2001:db8::99");
	assert_int_equal(m->owner, -1);
	assert_int_equal(mx_host_status(&m->host[0], AF_INET6), DNS_LOCAL);
	assert_int_equal(mx_host_status(&m->host[0], AF_INET), -1);
	assert_int_equal(mx_host_status(&m->host[1], AF_INET6), DNS_SECURE);
	assert_int_equal(mx_result_local(m), 1);
	/* the same walk, a host owning the destination: not local */
	{
		struct sockaddr_in6 s6;

		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		inet_pton(AF_INET6, "2001:db8::20", &s6.sin6_addr);
		assert_int_equal(mx_result_set_dst(m,
		    (struct sockaddr *)&s6), 1);
		assert_int_equal(mx_result_local(m), 0);
	}
}

/* A walk seen before it ends (mx_walk_peek(): the engine's
 * policy_timeout): a host that owns the destination already answered,
 * while the owner is only set at the end, so a failed lookup of this
 * host's own is no `local-error` there either. */
static void
test_result_local_peek(void **s)
{
	struct mx_walk *w;
	struct sockaddr_in sin;
	const struct mx_result *p;
	int i;

	mx3("d.test", "mx10.d.test", 10, "mx20.d.test", 20, "mx30.d.test",
	    30);
	a("mx10.d.test", 1, "192.0.2.1");
	answer("mx20.d.test", DNS_T_A, DNS_LOCAL, NULL);
	a("mx30.d.test", 1, "192.0.2.30");
	answer_after(3600 * 1000);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	assert_non_null(w = mx_walk(NULL, "d.test", (struct sockaddr *)&sin,
	    MX_WALK_A, done, NULL));
	p = mx_walk_peek(w);
	for (i = 0; i < 1000 && (p->status == -1 || p->pending != 1); i++)
		testloop_run(loop, 1);
	assert_int_equal(p->pending, 1);	/* mx30's A under way */
	assert_int_equal(p->owner, -1);
	assert_int_equal(p->host[0].has_dst, 1);
	assert_int_equal(p->host[1].st4, DNS_LOCAL);
	assert_int_equal(mx_result_local(p), 0);
	mx_walk_cancel(w);
	assert_null(got);
}

/* An address record past those an answer keeps is read as it is sent,
 * unparsed: one whose length is not its type's (a 5-octet A, a 17-octet
 * AAAA) that begins with the destination's octets is no address of the
 * host, and does not make it the owner. */
static void
owner_cut_badlen(int family)
{
	struct mx_result *m;
	struct msg q;
	int i, n = DNS_MAX_RR + 2, type = family == AF_INET ? DNS_T_A :
	    DNS_T_AAAA, len = family == AF_INET ? 4 : 16;
	unsigned char dst[16];

	inet_pton(family, family == AF_INET ? "192.0.2.200" :
	    "2001:db8::200", dst);
	mx("d.test", 1, "mx.d.test", NULL);
	begin(&q, 0x1234, 1, 0, "mx.d.test", type, n, 0, 0);
	for (i = 0; i < n; i++) {
		int rl = i + 1 == n ? len + 1 : len;
		unsigned char hdr[12] = { 0xc0, 12, 0, (unsigned char)type,
		    0, 1, 0, 0, 1, 44, 0, (unsigned char)rl };

		memcpy(q.b + q.n, hdr, sizeof(hdr));
		q.n += (int)sizeof(hdr);
		memcpy(q.b + q.n, dst, (size_t)len);
		if (i + 1 < n)
			q.b[q.n + len - 1] = (unsigned char)(i + 1);
		else
			q.b[q.n + len] = 0;
		q.n += rl;
	}
	answer("mx.d.test", type, DNS_SECURE, &q);
	m = family == AF_INET ? walk("d.test", "192.0.2.200", MX_WALK_A) :
	    walk6("d.test", "2001:db8::200");
	assert_int_equal(mx_host_status(&m->host[0], family), DNS_SECURE);
	assert_int_equal(m->host[0].naddr, MX_MAX_ADDRS);
	assert_int_equal(m->host[0].has_dst, 0);
	assert_int_equal(m->owner, -1);
}

static void
test_owner_cut_badlen(void **s)
{
	owner_cut_badlen(AF_INET);
	free(got);
	got = NULL;
	fakes_clear();
	owner_cut_badlen(AF_INET6);
}

static void
test_cancel(void **s)
{
	struct mx_walk *w;

	mx("d.test", 1, "mx.d.test", NULL);
	w = mx_walk(NULL, "d.test", NULL, MX_WALK_A, done, NULL);
	assert_non_null(w);
	assert_int_equal(mx_walk_peek(w)->status, -1);
	mx_walk_cancel(w);
	assert_null(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_hosts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_and_null,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_implicit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mx_failure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_owner_and_statuses,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cname_expanded, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_owner_past_kept_records,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_result_local, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_result_local_peek, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_owner_cut_badlen, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
