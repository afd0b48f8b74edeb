/*
 * test_dns_client.c - the DNS layer: the bounded response parser on
 * hand-built messages, and the c-ares client on the event loop against a
 * fake UDP server in the same process (AD bit in queries and answers,
 * classification, shared concurrent queries, TTL cache, CNAME chains,
 * timeouts, a resend this host could not make, a TTL that ends across a
 * suspend of the host).
 */
// WRAP: writev clock_gettime
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "policy/dns.h"

/* ---- message builder ---- */

#include "dnsmsg.h"
#include "heapmeter.h"

/* ---- parser tests ---- */

static void
test_parse_mx_secure(void **state)
{
	struct msg m;
	struct dns_answer *a;

	begin(&m, 1, 1, 0, "example.com", DNS_T_MX, 2, 0, 0);
	rr_name(&m, "example.com", DNS_T_MX, 10, "MX1.example.com", 600);
	rr_name(&m, "example.com", DNS_T_MX, 20, "mx2.example.com", 300);
	a = dns_parse(m.b, m.n, "Example.COM.", DNS_T_MX);
	assert_non_null(a);
	assert_int_equal(a->status, DNS_SECURE);
	assert_int_equal(a->nrr, 2);
	assert_int_equal(a->rr[0].u.mx.pref, 10);
	assert_string_equal(a->rr[0].u.mx.host, "mx1.example.com");
	assert_string_equal(a->rr[1].u.mx.host, "mx2.example.com");
	assert_int_equal(a->ttl, 300);
	dns_answer_unref(a);
}

static void
test_parse_classes(void **state)
{
	struct msg m;
	struct dns_answer *a;

	begin(&m, 1, 0, 3, "nx.example", DNS_T_A, 0, 0, 0);
	a = dns_parse(m.b, m.n, "nx.example", DNS_T_A);
	assert_int_equal(a->status, DNS_NXDOMAIN);
	dns_answer_unref(a);
	begin(&m, 1, 0, 0, "nodata.example", DNS_T_A, 0, 0, 0);
	a = dns_parse(m.b, m.n, "nodata.example", DNS_T_A);
	assert_int_equal(a->status, DNS_NODATA);
	assert_int_equal(a->cname_open, 0);
	dns_answer_unref(a);
	begin(&m, 1, 0, 2, "sf.example", DNS_T_A, 0, 0, 0);
	a = dns_parse(m.b, m.n, "sf.example", DNS_T_A);
	assert_int_equal(a->status, DNS_SERVFAIL);
	dns_answer_unref(a);
	/* REFUSED is a server failure too (the lookup is tried again, the
	 * verdict deferred), NOTIMP an error; neither has a TTL to cache */
	begin(&m, 1, 0, 5, "refused.example", DNS_T_A, 0, 0, 0);
	a = dns_parse(m.b, m.n, "refused.example", DNS_T_A);
	assert_int_equal(a->status, DNS_SERVFAIL);
	assert_int_equal(a->ttl, 0);
	dns_answer_unref(a);
	begin(&m, 1, 0, 4, "notimp.example", DNS_T_A, 0, 0, 0);
	a = dns_parse(m.b, m.n, "notimp.example", DNS_T_A);
	assert_int_equal(a->status, DNS_ERROR);
	assert_int_equal(a->ttl, 0);
	dns_answer_unref(a);
	begin(&m, 1, 0, 0, "a.example", DNS_T_A, 1, 0, 0);
	rr_a(&m, "a.example", "192.0.2.1", 60);
	a = dns_parse(m.b, m.n, "a.example", DNS_T_A);
	assert_int_equal(a->status, DNS_INSECURE);
	assert_int_equal(a->nrr, 1);
	assert_int_equal(a->rr[0].u.a.s_addr, inet_addr("192.0.2.1"));
	dns_answer_unref(a);
	/* records for another owner do not count */
	begin(&m, 1, 0, 0, "a.example", DNS_T_A, 1, 0, 0);
	rr_a(&m, "evil.example", "192.0.2.66", 60);
	a = dns_parse(m.b, m.n, "a.example", DNS_T_A);
	assert_int_equal(a->status, DNS_NODATA);
	dns_answer_unref(a);
}

static void
test_parse_cname_txt(void **state)
{
	struct msg m;
	struct dns_answer *a;

	begin(&m, 1, 0, 0, "_mta-sts.example", DNS_T_TXT, 2, 0, 0);
	rr_name(&m, "_mta-sts.example", DNS_T_CNAME, -1, "sts.other.example",
	    100);
	rr_txt(&m, "sts.other.example", "v=STSv1; ", "id=42", 300);
	a = dns_parse(m.b, m.n, "_mta-sts.example", DNS_T_TXT);
	assert_int_equal(a->status, DNS_INSECURE);
	assert_string_equal(a->name, "sts.other.example");
	assert_int_equal(a->nrr, 1);
	assert_string_equal(a->rr[0].u.txt.text, "v=STSv1; id=42");
	assert_int_equal(a->ttl, 100);
	dns_answer_unref(a);
	/* chain that stops at a name without data here */
	begin(&m, 1, 0, 0, "x.example", DNS_T_A, 1, 0, 0);
	rr_name(&m, "x.example", DNS_T_CNAME, -1, "y.example", 100);
	a = dns_parse(m.b, m.n, "x.example", DNS_T_A);
	assert_int_equal(a->status, DNS_NODATA);
	assert_int_equal(a->cname_open, 1);
	assert_string_equal(a->name, "y.example");
	dns_answer_unref(a);
}

/* An SOA record in the authority section: the negative TTL is its
 * minimum (and at most its own TTL). */
static void
rr_soa(struct msg *m, const char *owner, uint32_t minimum, uint32_t ttl)
{
	struct msg t = { .n = 0 };

	putname(&t, "ns.example");
	putname(&t, "hostmaster.example");
	put32(&t, 1);		/* serial */
	put32(&t, 3600);	/* refresh */
	put32(&t, 600);		/* retry */
	put32(&t, 86400);	/* expire */
	put32(&t, minimum);
	rr_hdr(m, owner, DNS_T_SOA, ttl, t.n);
	memcpy(m->b + m->n, t.b, (size_t)t.n);
	m->n += t.n;
}

/*
 * A denial (or an open chain) reached through a CNAME link is cached no
 * longer than that link's TTL: the zone's SOA minimum (up to an hour)
 * must not keep a link that its owner replaced, or whose signature ran
 * out (a validating resolver caps a TTL at the RRSIG's expiry), in use
 * after its TTL.  Old code: the SOA's 3600 s.
 */
static void
test_parse_negative_ttl_cname(void **state)
{
	struct msg m;
	struct dns_answer *a;

	/* NODATA at the target: the chain's TTL, not the SOA's */
	begin(&m, 1, 1, 0, "_25._tcp.mx.example", DNS_T_TLSA, 1, 1, 0);
	rr_name(&m, "_25._tcp.mx.example", DNS_T_CNAME, -1,
	    "_25._tcp.mx.provider.example", 30);
	rr_soa(&m, "provider.example", 3600, 3600);
	a = dns_parse(m.b, m.n, "_25._tcp.mx.example", DNS_T_TLSA);
	assert_int_equal(a->status, DNS_NODATA);
	assert_int_equal(a->ttl, 30);
	dns_answer_unref(a);
	/* NXDOMAIN at the target: the same */
	begin(&m, 1, 1, 3, "mx.example", DNS_T_A, 1, 1, 0);
	rr_name(&m, "mx.example", DNS_T_CNAME, -1, "gone.provider.example",
	    45);
	rr_soa(&m, "provider.example", 3600, 3600);
	a = dns_parse(m.b, m.n, "mx.example", DNS_T_A);
	assert_int_equal(a->status, DNS_NXDOMAIN);
	assert_int_equal(a->ttl, 45);
	dns_answer_unref(a);
	/* without a link the SOA's minimum holds (at most an hour) */
	begin(&m, 1, 1, 0, "nodata.example", DNS_T_A, 0, 1, 0);
	rr_soa(&m, "example", 900, 3600);
	a = dns_parse(m.b, m.n, "nodata.example", DNS_T_A);
	assert_int_equal(a->status, DNS_NODATA);
	assert_int_equal(a->ttl, 900);
	dns_answer_unref(a);
	/* a link with a TTL above the SOA's keeps the SOA's */
	begin(&m, 1, 1, 0, "x.example", DNS_T_A, 1, 1, 0);
	rr_name(&m, "x.example", DNS_T_CNAME, -1, "y.example", 7200);
	rr_soa(&m, "example", 300, 3600);
	a = dns_parse(m.b, m.n, "x.example", DNS_T_A);
	assert_int_equal(a->status, DNS_NODATA);
	assert_int_equal(a->ttl, 300);
	dns_answer_unref(a);
}

/*
 * What an answer's records are: those of the name asked (or the chain's
 * end) and of class IN only, whoever else the answer section names; a
 * TTL with its top bit set is 0 (RFC 2181 section 8: not cached), and a
 * denial's TTL is the SOA's minimum but at most the SOA's own TTL
 * (RFC 2308 section 5).
 */
static void
test_parse_owner_class_ttl(void **state)
{
	struct msg m;
	struct dns_answer *a;
	struct in_addr want;
	int o;

	begin(&m, 1, 1, 0, "mx.example", DNS_T_A, 3, 0, 0);
	rr_a(&m, "other.example", "192.0.2.66", 300);
	o = m.n;
	rr_a(&m, "mx.example", "192.0.2.1", 300);
	m.b[o + 12 + 2 + 1] = 3;	/* class CH, not IN */
	rr_a(&m, "mx.example", "192.0.2.2", 300);
	a = dns_parse(m.b, m.n, "mx.example", DNS_T_A);
	assert_int_equal(a->status, DNS_SECURE);
	assert_int_equal(a->nrr, 1);
	inet_pton(AF_INET, "192.0.2.2", &want);
	assert_memory_equal(&a->rr[0].u.a, &want, 4);
	dns_answer_unref(a);
	/* a TTL of 2^31: 0 */
	begin(&m, 1, 1, 0, "mx.example", DNS_T_A, 1, 0, 0);
	rr_a(&m, "mx.example", "192.0.2.1", 0x80000000u);
	a = dns_parse(m.b, m.n, "mx.example", DNS_T_A);
	assert_int_equal(a->status, DNS_SECURE);
	assert_int_equal(a->ttl, 0);
	dns_answer_unref(a);
	/* a TTL above a day: a day (TTL_MAX) */
	begin(&m, 1, 1, 0, "mx.example", DNS_T_A, 1, 0, 0);
	rr_a(&m, "mx.example", "192.0.2.1", 1000000);
	a = dns_parse(m.b, m.n, "mx.example", DNS_T_A);
	assert_int_equal(a->ttl, 86400);
	dns_answer_unref(a);
	/* an A record of 5 octets: a malformed answer */
	begin(&m, 1, 1, 0, "mx.example", DNS_T_A, 1, 0, 0);
	rr_hdr(&m, "mx.example", DNS_T_A, 300, 5);
	memset(m.b + m.n, 1, 5);
	m.n += 5;
	a = dns_parse(m.b, m.n, "mx.example", DNS_T_A);
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
	/* an AAAA record of 17 octets: the same */
	begin(&m, 1, 1, 0, "mx.example", DNS_T_AAAA, 1, 0, 0);
	rr_hdr(&m, "mx.example", DNS_T_AAAA, 300, 17);
	memset(m.b + m.n, 1, 17);
	m.n += 17;
	a = dns_parse(m.b, m.n, "mx.example", DNS_T_AAAA);
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
	/* an MX record whose host name runs past its rdata */
	begin(&m, 1, 1, 0, "d.example", DNS_T_MX, 1, 0, 0);
	rr_hdr(&m, "d.example", DNS_T_MX, 300, 3);
	put16(&m, 10);
	putname(&m, "mx.d.example");
	a = dns_parse(m.b, m.n, "d.example", DNS_T_MX);
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
	/* a byte no host name has, in an MX target: '?', so the name
	 * never matches one nor forges a log field */
	begin(&m, 1, 1, 0, "d.example", DNS_T_MX, 1, 0, 0);
	rr_name(&m, "d.example", DNS_T_MX, 10, "a=b\"c.d.example", 300);
	a = dns_parse(m.b, m.n, "d.example", DNS_T_MX);
	assert_int_equal(a->status, DNS_SECURE);
	assert_string_equal(a->rr[0].u.mx.host, "a?b?c.d.example");
	dns_answer_unref(a);
	/* a TLSA RRset is kept whole up to DNS_MAX_TLSA_RR records (a
	 * rollover's), past the DNS_MAX_RR other types keep: DANE judges
	 * them all */
	{
		int i, n = DNS_MAX_RR + 36;

		begin(&m, 1, 1, 0, "_25._tcp.mx.example", DNS_T_TLSA, n, 0,
		    0);
		for (i = 0; i < n; i++) {
			static const unsigned char rr[15] = { 0xc0, 12, 0,
			    DNS_T_TLSA, 0, 1, 0, 0, 1, 44, 0, 3, 3, 1, 1 };

			memcpy(m.b + m.n, rr, sizeof(rr));
			m.n += (int)sizeof(rr);
		}
		a = dns_parse(m.b, m.n, "_25._tcp.mx.example", DNS_T_TLSA);
		assert_int_equal(a->status, DNS_SECURE);
		assert_int_equal(a->nrr, n);
		assert_int_equal(a->ndropped, 0);
		dns_answer_unref(a);
	}
	/* a denial is cached at most an hour (NEG_TTL_MAX) */
	begin(&m, 1, 1, 0, "nodata.example", DNS_T_A, 0, 1, 0);
	rr_soa(&m, "example", 7200, 7200);
	a = dns_parse(m.b, m.n, "nodata.example", DNS_T_A);
	assert_int_equal(a->ttl, 3600);
	dns_answer_unref(a);
	/* the SOA's own TTL below its minimum */
	begin(&m, 1, 1, 0, "nodata.example", DNS_T_A, 0, 1, 0);
	rr_soa(&m, "example", 900, 30);
	a = dns_parse(m.b, m.n, "nodata.example", DNS_T_A);
	assert_int_equal(a->status, DNS_NODATA);
	assert_int_equal(a->ttl, 30);
	dns_answer_unref(a);
}

/* A response of an answer and authority records (A, 192.0.2.x, each
 * owned by the question's name through a pointer), AD set, parsed. */
static struct dns_answer *
parse_many(int an, int ns)
{
	static unsigned char b[12 + 16 + 16 * 1100];
	static const unsigned char q[] = { 2, 'm', 'x', 7, 'e', 'x', 'a', 'm',
	    'p', 'l', 'e', 0, 0, 1, 0, 1 };
	int n = 0, i;

	assert_true(an + ns <= 1100);
	b[n++] = 0; b[n++] = 1; b[n++] = 0x81; b[n++] = 0xa0;
	b[n++] = 0; b[n++] = 1;
	b[n++] = (unsigned char)(an >> 8); b[n++] = (unsigned char)an;
	b[n++] = (unsigned char)(ns >> 8); b[n++] = (unsigned char)ns;
	b[n++] = 0; b[n++] = 0;
	memcpy(b + n, q, sizeof(q));
	n += (int)sizeof(q);
	for (i = 0; i < an + ns; i++) {
		static const unsigned char rr[] = { 0xc0, 12, 0, 1, 0, 1, 0, 0,
		    1, 0x2c, 0, 4, 192, 0, 2 };

		memcpy(b + n, rr, sizeof(rr));
		n += (int)sizeof(rr);
		b[n++] = (unsigned char)i;
	}
	return dns_parse(b, n, "mx.example", DNS_T_A);
}

/* A response's records are parsed into a table as large as their count
 * says: past 1,024 records in the answer and authority sections together
 * it is refused as malformed, at 1,024 parsed (each kills a mutant of the
 * bound in dns_parse(): without it, a count of 65,535 in each section had
 * the parser allocate for 131,070 records of 256-octet names). */
static void
test_parse_record_count_bound(void **state)
{
	struct dns_answer *a;

	(void)state;
	a = parse_many(1024, 0);
	assert_int_equal(a->status, DNS_SECURE);
	assert_true(a->nrr > 0);
	dns_answer_unref(a);
	a = parse_many(1025, 0);
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
	a = parse_many(1000, 24);
	assert_int_equal(a->status, DNS_SECURE);
	dns_answer_unref(a);
	a = parse_many(1000, 25);		/* the sum counts */
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
}

static void
test_parse_malformed(void **state)
{
	struct msg m;
	struct dns_answer *a;
	unsigned char loop[] = { 0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0,
	    0xc0, 12, 0, 1, 0, 1 };

	/* truncated */
	begin(&m, 1, 0, 0, "a.example", DNS_T_A, 1, 0, 0);
	rr_a(&m, "a.example", "192.0.2.1", 60);
	a = dns_parse(m.b, m.n - 2, "a.example", DNS_T_A);
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
	/* compression loop */
	a = dns_parse(loop, sizeof(loop), "a.example", DNS_T_A);
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
	/* short A rdata */
	begin(&m, 1, 0, 0, "a.example", DNS_T_A, 1, 0, 0);
	rr_hdr(&m, "a.example", DNS_T_A, 60, 3);
	m.n += 3;
	a = dns_parse(m.b, m.n, "a.example", DNS_T_A);
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
	a = dns_parse(m.b, 5, "a.example", DNS_T_A);
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
}

/*
 * The TXT records past the 64 an answer keeps are read on demand
 * (dns_txt_cut()), for a reader that must judge the whole answer: the
 * 65th's strings joined, another owner's record not among them, a
 * malformed one NULL (the answer does not fail for it), out of range
 * NULL.  An answer within the bound has none.
 */
static void
test_txt_cut(void **state)
{
	struct msg m;
	struct dns_answer *a;
	char *t;
	size_t len = 0;
	int i;

	(void)state;
	begin(&m, 1, 0, 0, "_mta-sts.cut.example", DNS_T_TXT, 67, 0, 0);
	for (i = 0; i < 64; i++)
		rr_txt_q(&m, "\001x", 2, 60);
	rr_txt(&m, "other.example", "v=STSv1; id=o", NULL, 60);
	rr_txt_q(&m, "\010v=STSv1;\005 id=z", 15, 60);
	rr_txt_q(&m, "\011v=STSv1;", 9, 60);	/* runs past its rdata */
	a = dns_parse(m.b, m.n, "_mta-sts.cut.example", DNS_T_TXT);
	assert_non_null(a);
	assert_int_equal(a->status, DNS_INSECURE);
	assert_int_equal(a->nrr, 64);
	assert_int_equal(a->ndropped, 2);
	t = dns_txt_cut(a, 0, &len);
	assert_non_null(t);
	assert_int_equal(len, 13);
	assert_string_equal(t, "v=STSv1; id=z");
	free(t);
	assert_null(dns_txt_cut(a, 1, &len));
	assert_null(dns_txt_cut(a, 2, &len));
	assert_null(dns_txt_cut(a, -1, &len));
	dns_answer_unref(a);

	begin(&m, 1, 0, 0, "_mta-sts.cut.example", DNS_T_TXT, 64, 0, 0);
	for (i = 0; i < 64; i++)
		rr_txt_q(&m, "\001x", 2, 60);
	a = dns_parse(m.b, m.n, "_mta-sts.cut.example", DNS_T_TXT);
	assert_non_null(a);
	assert_int_equal(a->nrr, 64);
	assert_int_equal(a->ndropped, 0);
	assert_null(a->cut_off);
	assert_null(dns_txt_cut(a, 0, &len));
	dns_answer_unref(a);
}

static void
test_parse_tlsa(void **state)
{
	struct msg m;
	struct dns_answer *a;

	begin(&m, 1, 1, 0, "_25._tcp.mx.example", DNS_T_TLSA, 1, 0, 0);
	rr_hdr(&m, "_25._tcp.mx.example", DNS_T_TLSA, 60, 5);
	m.b[m.n++] = 3;
	m.b[m.n++] = 1;
	m.b[m.n++] = 1;
	m.b[m.n++] = 0xab;
	m.b[m.n++] = 0xcd;
	a = dns_parse(m.b, m.n, "_25._tcp.mx.example", DNS_T_TLSA);
	assert_int_equal(a->status, DNS_SECURE);
	assert_int_equal(a->rr[0].u.tlsa.usage, 3);
	assert_int_equal(a->rr[0].u.tlsa.len, 2);
	assert_int_equal(a->rr[0].u.tlsa.data[1], 0xcd);
	dns_answer_unref(a);
	/* records too short for usage, selector and matching type (2 and
	 * 0 bytes) next to a whole one: records of the RRset, unusable for
	 * dane.c, never a failed answer (RFC 7672 section 2.2); red before:
	 * DNS_ERROR */
	begin(&m, 1, 1, 0, "_25._tcp.mx.example", DNS_T_TLSA, 3, 0, 0);
	rr_hdr(&m, "_25._tcp.mx.example", DNS_T_TLSA, 60, 2);
	m.b[m.n++] = 3;
	m.b[m.n++] = 1;
	rr_hdr(&m, "_25._tcp.mx.example", DNS_T_TLSA, 60, 4);
	m.b[m.n++] = 3;
	m.b[m.n++] = 1;
	m.b[m.n++] = 1;
	m.b[m.n++] = 0xab;
	rr_hdr(&m, "_25._tcp.mx.example", DNS_T_TLSA, 60, 0);
	a = dns_parse(m.b, m.n, "_25._tcp.mx.example", DNS_T_TLSA);
	assert_int_equal(a->status, DNS_SECURE);
	assert_int_equal(a->nrr, 3);
	assert_int_equal(a->rr[0].rdlen, 2);
	assert_int_equal(a->rr[0].u.tlsa.len, 0);
	assert_null(a->rr[0].u.tlsa.data);
	assert_int_equal(a->rr[1].u.tlsa.len, 1);
	assert_int_equal(a->rr[2].rdlen, 0);
	dns_answer_unref(a);
	/* the rdata running past the message stays a malformed answer */
	begin(&m, 1, 1, 0, "_25._tcp.mx.example", DNS_T_TLSA, 1, 0, 0);
	rr_hdr(&m, "_25._tcp.mx.example", DNS_T_TLSA, 60, 5);
	m.b[m.n++] = 3;
	m.b[m.n++] = 1;
	a = dns_parse(m.b, m.n, "_25._tcp.mx.example", DNS_T_TLSA);
	assert_int_equal(a->status, DNS_ERROR);
	dns_answer_unref(a);
}

/* ---- client against a fake server ---- */

struct fake {
	int		 fd;
	int		 port;
	int		 queries;
	int		 ad_seen;
	int		 silent;	/* do not answer */
	int		 odd_asked;	/* names of odd.example it denied */
};

static struct fake fk;
static struct ev_loop *loop;

/* writev() (c-ares's sends, dns.c sf_sendv()) fails with ENOBUFS once the
 * fake server has seen fail_after queries, as a send this host had no
 * buffer for */
static int fail_after, fail_now, sends_failed;

ssize_t __real_writev(int, const struct iovec *, int);
ssize_t __wrap_writev(int, const struct iovec *, int);

ssize_t
__wrap_writev(int fd, const struct iovec *iov, int n)
{
	if (fail_now || (fail_after != 0 && fk.queries >= fail_after)) {
		sends_failed++;
		errno = ENOBUFS;
		return -1;
	}
	return __real_writev(fd, iov, n);
}

#include "suspend.h"

static void
fake_read(int fd, int events, void *arg)
{
	unsigned char q[1500];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from,
	    &fl);
	char name[256];
	int qtype;
	struct msg m;
	unsigned id;

	if (zone_question(q, n, name, sizeof(name), &qtype) == -1)
		return;
	if (arg != NULL)	/* a second server: counts, always answers */
		(*(int *)arg)++;
	else {
		fk.queries++;
		if (q[3] & 0x20)
			fk.ad_seen++;
		if (fk.silent)
			return;
	}
	id = (unsigned)(q[0] << 8 | q[1]);
	if (strcmp(name, "secure.example") == 0) {
		begin(&m, id, 1, 0, name, qtype, 1, 0, 0);
		rr_a(&m, name, "192.0.2.10", 300);
	} else if (strcmp(name, "insecure.example") == 0) {
		begin(&m, id, 0, 0, name, qtype, 1, 0, 0);
		rr_a(&m, name, "192.0.2.11", 300);
	} else if (strcmp(name, "alias.example") == 0) {
		/* CNAME only; the target must be asked separately */
		begin(&m, id, 1, 0, name, qtype, 1, 0, 0);
		rr_name(&m, name, DNS_T_CNAME, -1, "insecure.example", 300);
	} else if (strncmp(name, "big-", 4) == 0 ||
	    strncmp(name, "big0-", 5) == 0) {
		/* as many A records as the cache keeps (DNS_MAX_RR), owners
		 * compressed to the question's name: one UDP answer; of
		 * TTL 0 for big0-: never to be cached */
		uint32_t ttl = name[3] == '0' ? 0 : 86400;
		int i;

		begin(&m, id, 0, 0, name, qtype, DNS_MAX_RR, 0, 0);
		for (i = 0; i < DNS_MAX_RR; i++) {
			put16(&m, 0xc00c);
			put16(&m, DNS_T_A);
			put16(&m, 1);
			put32(&m, ttl);
			put16(&m, 4);
			m.b[m.n++] = 192;
			m.b[m.n++] = 0;
			m.b[m.n++] = 2;
			m.b[m.n++] = (unsigned char)i;
		}
	} else if (strcmp(name, "ualias.example") == 0) {
		/* CNAME only, unsigned, to a name whose denial is signed */
		begin(&m, id, 0, 0, name, qtype, 1, 0, 0);
		rr_name(&m, name, DNS_T_CNAME, -1, "snx.example", 300);
	} else if (strcmp(name, "ualias-s.example") == 0) {
		/* CNAME only, unsigned, to a signed name */
		begin(&m, id, 0, 0, name, qtype, 1, 0, 0);
		rr_name(&m, name, DNS_T_CNAME, -1, "secure.example", 300);
	} else if (strcmp(name, "snx.example") == 0) {
		begin(&m, id, 1, 3, name, qtype, 0, 0, 0);
	} else if (strcmp(name, "loop.example") == 0) {
		/* a CNAME to itself, signed */
		begin(&m, id, 1, 0, name, qtype, 1, 0, 0);
		rr_name(&m, name, DNS_T_CNAME, -1, name, 300);
	} else if (strncmp(name, "chain", 5) == 0) {
		/* chainN -> chainN+1 -> ..., a link per answer, signed:
		 * it never ends */
		char next[64];

		snprintf(next, sizeof(next), "chain%d.example",
		    atoi(name + 5) + 1);
		begin(&m, id, 1, 0, name, qtype, 1, 0, 0);
		rr_name(&m, name, DNS_T_CNAME, -1, next, 300);
	} else if (strncmp(name, "hop", 3) == 0) {
		/* hopK-N -> hopK+1-N -> ... -> hopN-N, which has an
		 * address: N links, a link per answer, signed */
		int k = atoi(name + 3), last = atoi(strchr(name, '-') + 1);
		char next[64];

		begin(&m, id, 1, 0, name, qtype, 1, 0, 0);
		if (k >= last)
			rr_a(&m, name, "192.0.2.30", 300);
		else {
			snprintf(next, sizeof(next), "hop%d-%d.example",
			    k + 1, last);
			rr_name(&m, name, DNS_T_CNAME, -1, next, 300);
		}
	} else if (strcmp(name, "odd.example") == 0) {
		/* a signed MX RRset whose target has a byte no host name
		 * has (a space): the host "mx a.odd.example", signed, with
		 * an address and TLSA records of its own */
		begin(&m, id, 1, 0, name, qtype, 1, 0, 0);
		rr_name(&m, name, DNS_T_MX, 10, "mx a.odd.example", 300);
	} else if (strcmp(name, "mx a.odd.example") == 0 ||
	    strcmp(name, "_25._tcp.mx a.odd.example") == 0) {
		begin(&m, id, 1, 0, name, qtype, 1, 0, 0);
		if (qtype == DNS_T_TLSA)
			rr_tlsa(&m, name, 3, 1, 1, 32, 300);
		else
			rr_a(&m, name, "192.0.2.20", 300);
	} else if (strstr(name, ".odd.example") != NULL) {
		/* any other name of the signed zone: a signed denial */
		fk.odd_asked++;
		begin(&m, id, 1, 3, name, qtype, 0, 0, 0);
	} else if (strcmp(name, "servfail.example") == 0) {
		begin(&m, id, 0, 2, name, qtype, 0, 0, 0);
	} else {
		begin(&m, id, 0, 3, name, qtype, 0, 0, 0);
	}
	sendto(fd, m.b, (size_t)m.n, 0, (struct sockaddr *)&from, fl);
}

static int
client_setup(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(&fk, 0, sizeof(fk));
	loop = ev_loop_new();
	fk.fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fk.fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		return -1;
	getsockname(fk.fd, (struct sockaddr *)&sin, &sl);
	fk.port = ntohs(sin.sin_port);
	ev_fd_set(loop, fk.fd, EV_READ, fake_read, NULL);
	return 0;
}

static int
client_teardown(void **state)
{
	ev_fd_del(loop, fk.fd);
	close(fk.fd);
	ev_loop_free(loop);
	return 0;
}

struct res {
	int		 done;
	enum dns_status	 st;
	int		 nrr;
	int		 ad;		/* the answer's AD bit, -1 none */
	int		 expect;
	int		*counter;
};

static int outstanding;

static void
got(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct res *r = arg;

	r->done++;
	r->st = st;
	r->nrr = a ? a->nrr : -1;
	r->ad = a ? a->ad : -1;
	if (--outstanding == 0)
		ev_loop_stop(loop);
}

/* the first MX target of the last answer gotmx() saw */
static char mxhost[256];

static void
gotmx(void *arg, enum dns_status st, const struct dns_answer *a)
{
	if (a != NULL && a->nrr > 0 && a->rr[0].type == DNS_T_MX)
		snprintf(mxhost, sizeof(mxhost), "%s", a->rr[0].u.mx.host);
	got(arg, st, a);
}

static struct dns *
mkdns(uint64_t timeout)
{
	char err[256], srv[64];
	struct config *cfg = config_load(NULL, err, sizeof(err));
	struct dns *d;

	assert_non_null(cfg);
	snprintf(srv, sizeof(srv), "127.0.0.1:%d", fk.port);
	free(cfg->dns_servers.v);
	cfg->dns_servers.v = calloc(1, sizeof(char *));
	cfg->dns_servers.v[0] = strdup(srv);
	cfg->dns_servers.n = 1;
	cfg->dns_timeout = timeout;
	d = dns_new(loop, cfg, err, sizeof(err));
	if (d == NULL)
		fail_msg("dns_new: %s", err);
	config_free(cfg);
	return d;
}

static void
run(void)
{
	struct ev_timer *guard = ev_timer_new(loop,
	    (ev_timer_cb *)ev_loop_stop, loop);

	ev_timer_arm(guard, 10000);
	ev_loop_run(loop);
	ev_timer_free(guard);
}

static void
test_client_classify_share_cache(void **state)
{
	struct dns *d = mkdns(3000);
	struct res r1 = { 0 }, r2 = { 0 }, r3 = { 0 }, r4 = { 0 }, r5 = { 0 };

	outstanding = 5;
	assert_non_null(dns_query(d, "secure.example", DNS_T_A, got, &r1));
	assert_non_null(dns_query(d, "SECURE.example.", DNS_T_A, got, &r2));
	assert_non_null(dns_query(d, "insecure.example", DNS_T_A, got, &r3));
	assert_non_null(dns_query(d, "nx.example", DNS_T_A, got, &r4));
	assert_non_null(dns_query(d, "servfail.example", DNS_T_A, got, &r5));
	assert_int_equal(r1.done, 0);		/* never synchronous */
	run();
	assert_int_equal(r1.done, 1);
	assert_int_equal(r1.st, DNS_SECURE);
	assert_int_equal(r2.st, DNS_SECURE);
	assert_int_equal(r1.nrr, 1);
	assert_int_equal(r3.st, DNS_INSECURE);
	assert_int_equal(r4.st, DNS_NXDOMAIN);
	assert_int_equal(r5.st, DNS_SERVFAIL);
	assert_true(fk.ad_seen == fk.queries);
	/* secure.example was asked once for two lookups */
	{
		int before = fk.queries;
		struct res r6 = { 0 };

		outstanding = 1;
		dns_query(d, "secure.example", DNS_T_A, got, &r6);
		run();
		assert_int_equal(r6.st, DNS_SECURE);
		assert_int_equal(fk.queries, before);	/* from the cache */
	}
	dns_free(d);
}

/*
 * A cached answer ends at its TTL on the clock that counts a suspend: the
 * host (a VM paused, a laptop-like suspend) asleep for an hour, an answer
 * of 300 s is asked again.  On CLOCK_MONOTONIC the hour was not seen and
 * the answer served until 300 s of running time had passed, however long
 * ago its owner had changed it (a TLSA rollover, a denial of a TLSA or
 * _mta-sts record that now exists).
 */
static void
test_client_cache_ttl_counts_suspend(void **state)
{
	struct dns *d = mkdns(3000);
	struct res r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	int before;

	suspended_s = 0;
	outstanding = 1;
	dns_query(d, "secure.example", DNS_T_A, got, &r1);
	run();
	assert_int_equal(r1.st, DNS_SECURE);
	before = fk.queries;
	/* within its TTL: from the cache */
	outstanding = 1;
	dns_query(d, "secure.example", DNS_T_A, got, &r2);
	run();
	assert_int_equal(fk.queries, before);
	/* an hour suspended, seconds of running time: asked again */
	suspended_s = 3600;
	ev_now_update(loop);
	outstanding = 1;
	dns_query(d, "secure.example", DNS_T_A, got, &r3);
	run();
	suspended_s = 0;
	assert_int_equal(r3.st, DNS_SECURE);
	assert_int_equal(fk.queries, before + 1);
	dns_free(d);
}

/*
 * A cached answer ends at its TTL to the millisecond: at the instant its
 * TTL has passed it is asked again, never served once more.  Whoever
 * controls the name's answers (a TLSA rollover, a denial of an _mta-sts
 * record now published) gets the resolver's word as soon as the TTL it
 * gave has run, not a turn later.  The boot clock stands still
 * (suspend.h) so that the instant is hit exactly.
 */
static void
test_client_cache_ttl_expiry_instant(void **state)
{
	struct dns *d = mkdns(3000);
	struct res r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	uint64_t t0 = 5000000;	/* ms of boot time, any */
	int before;

	boot_frozen_ms = t0;
	ev_now_update(loop);
	outstanding = 1;
	dns_query(d, "secure.example", DNS_T_A, got, &r1);
	run();
	assert_int_equal(r1.st, DNS_SECURE);	/* TTL 300 s, cached at t0 */
	before = fk.queries;
	/* a millisecond before its end: from the cache */
	boot_frozen_ms = t0 + 300 * 1000 - 1;
	ev_now_update(loop);
	outstanding = 1;
	dns_query(d, "secure.example", DNS_T_A, got, &r2);
	run();
	assert_int_equal(r2.st, DNS_SECURE);
	print_message("1 ms before the TTL's end: %d queries more\n",
	    fk.queries - before);
	assert_int_equal(fk.queries, before);
	/* at its end: asked again */
	boot_frozen_ms = t0 + 300 * 1000;
	ev_now_update(loop);
	outstanding = 1;
	dns_query(d, "secure.example", DNS_T_A, got, &r3);
	run();
	boot_frozen_ms = 0;
	ev_now_update(loop);
	assert_int_equal(r3.st, DNS_SECURE);
	print_message("at the TTL's end: %d queries more\n",
	    fk.queries - before);
	assert_int_equal(fk.queries, before + 1);
	dns_free(d);
}

static void
test_client_cname_chase(void **state)
{
	struct dns *d = mkdns(3000);
	struct res r = { 0 };

	outstanding = 1;
	dns_query(d, "alias.example", DNS_T_A, got, &r);
	run();
	/* alias answered with AD, target without: insecure overall */
	assert_int_equal(r.st, DNS_INSECURE);
	assert_int_equal(r.nrr, 1);
	/* and the other way round: an unsigned link (anyone on the path
	 * may write it) to a signed name is insecure too, though the
	 * answer passed on, the last link's, has the AD bit */
	memset(&r, 0, sizeof(r));
	outstanding = 1;
	dns_query(d, "ualias-s.example", DNS_T_A, got, &r);
	run();
	assert_int_equal(r.st, DNS_INSECURE);
	assert_int_equal(r.nrr, 1);
	dns_free(d);
}

/*
 * A denial reached through an unsigned CNAME link is not secure, whatever
 * the last link's AD bit: mx.c takes a secure denial of D's MX for a
 * DNSSEC-validated implicit MX.  Before, the answer passed on was the
 * last link's, AD set.  The same denial asked for directly (from the
 * cache) keeps its AD bit.
 */
static void
test_client_cname_insecure_denial(void **state)
{
	struct dns *d = mkdns(3000);
	struct res r1 = { 0 }, r2 = { 0 };

	outstanding = 1;
	dns_query(d, "ualias.example", DNS_T_MX, got, &r1);
	run();
	assert_int_equal(r1.st, DNS_NXDOMAIN);
	assert_int_equal(r1.ad, 0);
	outstanding = 1;
	dns_query(d, "snx.example", DNS_T_MX, got, &r2);
	run();
	assert_int_equal(r2.st, DNS_NXDOMAIN);
	assert_int_equal(r2.ad, 1);
	dns_free(d);
}

/*
 * A CNAME chain that does not end (a loop to the name asked, or more links
 * than are followed) is a failed lookup, never "the name has no such
 * records": a TLSA lookup in a signed zone that got NODATA turned DANE
 * off, where a failure defers.
 */
static void
test_client_cname_unending(void **state)
{
	struct dns *d = mkdns(3000);
	struct res r1 = { 0 }, r2 = { 0 };

	outstanding = 2;
	dns_query(d, "loop.example", DNS_T_TLSA, got, &r1);
	dns_query(d, "chain0.example", DNS_T_TLSA, got, &r2);
	run();
	print_message("loop %s, chain %s\n", dns_status_name(r1.st),
	    dns_status_name(r2.st));
	assert_int_equal(r1.st, DNS_ERROR);
	assert_int_equal(r2.st, DNS_ERROR);
	dns_free(d);
}

/*
 * DNS_MAX_CNAME links followed by new queries, and not one more: a chain
 * of DNS_MAX_CNAME links to an address is that address, one of
 * DNS_MAX_CNAME + 1 links a failed lookup (docs and dns.h promise the
 * bound; whoever writes the chain chooses its length, and each link is a
 * query the gateway sends for it).
 */
static void
test_client_cname_limit_exact(void **state)
{
	struct dns *d = mkdns(3000);
	struct res r1 = { 0 }, r2 = { 0 };
	char n1[64], n2[64];
	int q0;

	snprintf(n1, sizeof(n1), "hop0-%d.example", DNS_MAX_CNAME);
	snprintf(n2, sizeof(n2), "hop0-%d.example", DNS_MAX_CNAME + 1);
	outstanding = 1;
	dns_query(d, n1, DNS_T_A, got, &r1);
	run();
	q0 = fk.queries;
	outstanding = 1;
	dns_query(d, n2, DNS_T_A, got, &r2);
	run();
	print_message("%d links: %s (%d queries), %d links: %s (%d "
	    "queries)\n", DNS_MAX_CNAME, dns_status_name(r1.st), q0,
	    DNS_MAX_CNAME + 1, dns_status_name(r2.st), fk.queries - q0);
	assert_int_equal(r1.st, DNS_SECURE);
	assert_int_equal(r1.nrr, 1);
	assert_int_equal(q0, DNS_MAX_CNAME + 1);
	assert_int_equal(r2.st, DNS_ERROR);
	assert_int_equal(fk.queries - q0, DNS_MAX_CNAME + 1);
	dns_free(d);
}

/*
 * Answers an attacker writes (the A, AAAA, MX and TLSA of the hosts in
 * the MX records of its domains) are as large as it likes: the cache
 * bounds the memory they hold, not only their number.  Each answer here
 * holds some 20 KB (64 parsed records); 20,000 of them (the entry bound)
 * were 400 MB in a worker, and answers over TCP (64 KB each) gigabytes.
 */
static void
test_client_cache_bytes_bounded(void **state)
{
	struct dns *d;
	struct res r[100];
	struct mallinfo2 m0, m1;
	char name[64];
	int i, j;

	(void)state;
	if (!heap_measurable())
		skip();
	d = mkdns(3000);
	m0 = mallinfo2();
	for (i = 0; i < 3000; i += 100) {
		memset(r, 0, sizeof(r));
		outstanding = 100;
		for (j = 0; j < 100; j++) {
			snprintf(name, sizeof(name), "big-%d.example", i + j);
			assert_non_null(dns_query(d, name, DNS_T_A, got,
			    &r[j]));
		}
		run();
		for (j = 0; j < 100; j++) {
			assert_int_equal(r[j].st, DNS_INSECURE);
			assert_int_equal(r[j].nrr, DNS_MAX_RR);
		}
	}
	m1 = mallinfo2();
	print_message("cache growth %zu KB\n",
	    (m1.uordblks - m0.uordblks) / 1024);
	assert_true(m1.uordblks - m0.uordblks < 40u * 1024 * 1024);
	dns_free(d);
}

/* n big answers (64 records each, big-N.example or big0-N.example: TTL
 * 0) from first, 100 at a time. */
static void
query_big(struct dns *d, const char *prefix, int first, int n)
{
	struct res r[100];
	char name[64];
	int i, j, k;

	for (i = 0; i < n; i += k) {
		k = n - i < 100 ? n - i : 100;
		memset(r, 0, sizeof(r));
		outstanding = k;
		for (j = 0; j < k; j++) {
			snprintf(name, sizeof(name), "%s-%d.example", prefix,
			    first + i + j);
			assert_non_null(dns_query(d, name, DNS_T_A, got,
			    &r[j]));
		}
		run();
		for (j = 0; j < k; j++)
			assert_int_equal(r[j].nrr, DNS_MAX_RR);
	}
}

/*
 * An answer of TTL 0 is never cached, so takes no room in the cache: a
 * domain whose hosts answer TTL 0 (as many names as it likes) does not
 * push the answers the cache holds out of it.  1,000 answers of some
 * 20 KB each cached (under the 32 MB bound), then 3,000 of TTL 0 asked:
 * the 1,000 still answer from the cache.
 */
static void
test_client_cache_ttl0_no_room(void **state)
{
	struct dns *d = mkdns(3000);
	int q0;

	query_big(d, "big", 0, 1000);
	query_big(d, "big0", 0, 3000);
	q0 = fk.queries;
	query_big(d, "big", 0, 1000);
	print_message("cached answers asked again after 3000 of TTL 0: "
	    "%d\n", fk.queries - q0);
	assert_int_equal(fk.queries, q0);
	/* and a TTL 0 answer is asked each time */
	query_big(d, "big0", 0, 1);
	assert_int_equal(fk.queries, q0 + 1);
	dns_free(d);
}

/*
 * Queries under way cost each new one, answer and timeout O(1), not the
 * number under way: dns.c looked a query up in, and took it off, a list
 * of every query under way, and asked c-ares for its next timeout after
 * every query sent and every socket event (ares_timeout() walks every
 * query in c-ares 1.18).  Whoever writes the names the gateway asks (an
 * MX RRset of fresh host names at every answer) and makes their answers
 * wait (a server that never answers) had the worker spend O(n) per query
 * with n under way: 20,000 took 4.3 s of CPU to send, 40,000 29 s.
 * The CPU of 20,000 silent queries, sent and timed out, against that of
 * 2,500: about 8 times as much when each costs O(1), 64 when O(n); the
 * test wants under 16 (plus 100 ms for the clock's grain), whatever the
 * machine's speed (red before: 4.3 s against 0.15 s).
 */
#define MANY_PENDING	20000

static long
cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	    (long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* CPU (ms) of n silent queries under way at once, sent and timed out. */
static long
pending_cpu(int n)
{
	static struct res r[MANY_PENDING];
	struct dns *d = mkdns(900);
	char name[64];
	long t0;
	int i;

	assert_true(n <= MANY_PENDING);
	memset(r, 0, sizeof(r));
	fk.silent = 1;
	outstanding = n;
	t0 = cpu_ms();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "h%d-%d.slow.example", n, i);
		assert_non_null(dns_query(d, name, DNS_T_A, got, &r[i]));
	}
	run();
	t0 = cpu_ms() - t0;
	assert_int_equal(outstanding, 0);
	for (i = 0; i < n; i++) {
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].st, DNS_TIMEOUT);
	}
	dns_free(d);
	return t0;
}

static void
test_client_many_pending_linear(void **state)
{
	long part = pending_cpu(MANY_PENDING / 8);
	long full = pending_cpu(MANY_PENDING);

	print_message("%d queries under way: %ld ms of CPU; %d: %ld ms\n",
	    MANY_PENDING / 8, part, MANY_PENDING, full);
	if (full > 16 * part + 100)
		fail_msg("%d queries under way cost %ld ms of CPU, %d cost "
		    "%ld ms: more than linear", MANY_PENDING, full,
		    MANY_PENDING / 8, part);
}

static void
test_client_timeout_cancel(void **state)
{
	struct dns *d = mkdns(900);
	struct res r = { 0 }, rc = { 0 };
	struct dns_req *q;

	fk.silent = 1;
	outstanding = 1;
	dns_query(d, "slow.example", DNS_T_A, got, &r);
	q = dns_query(d, "slow.example", DNS_T_A, got, &rc);
	dns_cancel(q);
	run();
	assert_int_equal(r.done, 1);
	assert_int_equal(r.st, DNS_TIMEOUT);
	assert_int_equal(rc.done, 0);
	dns_free(d);
}

/*
 * The first try times out (the server is silent), and c-ares's resend
 * fails for want of this host's buffers: c-ares ends the query with the
 * status its first try left, ARES_ETIMEOUT, and it was a timeout, which
 * the engine takes for the domain's (a TLSA timeout is dnssec-invalid,
 * reported by TLSRPT; a failed fetch's lookups back off).  The last try
 * was never sent: local-error, counted in dns_local_failures().  Red
 * before: timeout.
 */
static void
test_client_resend_local_wins(void **state)
{
	struct dns *d = mkdns(900);
	struct res r = { 0 }, r2;
	unsigned n0 = dns_local_failures(d, NULL);
	int e = 0;

	fk.silent = 1;
	fail_after = 1;
	sends_failed = 0;
	outstanding = 1;
	dns_query(d, "_25._tcp.mx.resend.example", DNS_T_TLSA, got, &r);
	run();
	fail_after = 0;
	assert_int_equal(r.done, 1);
	assert_int_equal(fk.queries, 1);
	assert_true(sends_failed >= 1);
	assert_int_equal(r.st, DNS_LOCAL);
	assert_true(dns_local_failures(d, &e) > n0);
	assert_int_equal(e, ENOBUFS);

	/* every try sent and timed out: still a timeout */
	fk.queries = 0;
	r.done = 0;
	outstanding = 1;
	dns_query(d, "_25._tcp.mx.resend2.example", DNS_T_TLSA, got, &r);
	run();
	assert_int_equal(r.done, 1);
	assert_int_equal(fk.queries, 2);
	assert_int_equal(r.st, DNS_TIMEOUT);

	/* every try sent and timed out while another query's send failed
	 * here: the timeout is the server's, still a timeout */
	fk.queries = 0;
	r.done = 0;
	memset(&r2, 0, sizeof(r2));
	outstanding = 2;
	dns_query(d, "_25._tcp.mx.resend3.example", DNS_T_TLSA, got, &r);
	fail_now = 1;
	sends_failed = 0;
	dns_query(d, "_25._tcp.mx.other.example", DNS_T_TLSA, got, &r2);
	fail_now = 0;
	assert_true(sends_failed >= 1);
	run();
	assert_int_equal(r2.done, 1);
	assert_int_equal(r2.st, DNS_LOCAL);
	assert_int_equal(r.done, 1);
	assert_int_equal(fk.queries, 2);
	assert_int_equal(r.st, DNS_TIMEOUT);
	dns_free(d);
}

/*
 * Two servers, the first silent or its port closed, the second answering
 * with AD: only the first is ever asked.  c-ares would otherwise move to
 * the second, and an attacker who delays the validating resolver's
 * answers would get another resolver's answer taken (one that may not
 * validate: DANE off where it must defer).
 */
static void
test_client_first_server_only(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char err[256], srv[2][64];
	struct config *cfg = config_load(NULL, err, sizeof(err));
	struct dns *d;
	struct res r = { 0 }, r2 = { 0 };
	int fd2, n2 = 0;

	fd2 = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd2, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd2, (struct sockaddr *)&sin, &sl);
	ev_fd_set(loop, fd2, EV_READ, fake_read, &n2);
	assert_non_null(cfg);
	snprintf(srv[0], sizeof(srv[0]), "127.0.0.1:%d", fk.port);
	snprintf(srv[1], sizeof(srv[1]), "127.0.0.1:%d", ntohs(sin.sin_port));
	cfg->dns_servers.v = calloc(2, sizeof(char *));
	cfg->dns_servers.v[0] = strdup(srv[0]);
	cfg->dns_servers.v[1] = strdup(srv[1]);
	cfg->dns_servers.n = 2;
	cfg->dns_timeout = 900;
	assert_non_null(d = dns_new(loop, cfg, err, sizeof(err)));
	config_free(cfg);

	fk.silent = 1;
	outstanding = 1;
	dns_query(d, "secure.example", DNS_T_A, got, &r);
	run();
	print_message("st=%s n2=%d q=%d\n", dns_status_name(r.st), n2, fk.queries);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.st, DNS_TIMEOUT);
	assert_int_equal(n2, 0);
	assert_true(fk.queries >= 1);
	/* the first's port closed: refused, never the second's answer */
	ev_fd_del(loop, fk.fd);
	close(fk.fd);
	fk.fd = socket(AF_INET, SOCK_DGRAM, 0);	/* for the teardown */
	ev_fd_set(loop, fk.fd, EV_READ, fake_read, NULL);
	outstanding = 1;
	dns_query(d, "secure.example", DNS_T_AAAA, got, &r2);
	run();
	assert_int_equal(r2.done, 1);
	assert_int_not_equal(r2.st, DNS_SECURE);
	assert_int_equal(n2, 0);
	dns_free(d);
	ev_fd_del(loop, fd2);
	close(fd2);
}

/*
 * An MX target with a byte no host name has (here a space: DNS allows any
 * octet in a label) is read as "mx?a.odd.example" (read_name() makes such
 * bytes '?', so no answer forges log fields).  Asked as it was read, it
 * is another name, which the signed zone denies: the host that publishes
 * an address and TLSA records read as a signed NXDOMAIN ("no TLSA
 * records": DANE off), where no answer can be had.  A name the parser
 * could not read back is never asked: a failed lookup, which dane.c
 * defers.  Red before: the TLSA lookup came back nxdomain with AD.
 */
static void
test_client_unreadable_name_refused(void **state)
{
	struct dns *d = mkdns(3000);
	struct res rm = { 0 }, ra = { 0 }, rt = { 0 }, rb = { 0 };
	char host[256], tlsa[300];

	outstanding = 1;
	assert_non_null(dns_query(d, "odd.example", DNS_T_MX, gotmx, &rm));
	run();
	assert_int_equal(rm.st, DNS_SECURE);
	snprintf(host, sizeof(host), "%s", mxhost);
	print_message("MX target read as %s\n", host);
	outstanding = 3;
	snprintf(tlsa, sizeof(tlsa), "_25._tcp.%s", host);
	assert_non_null(dns_query(d, host, DNS_T_A, got, &ra));
	assert_non_null(dns_query(d, tlsa, DNS_T_TLSA, got, &rt));
	/* an escape c-ares would read as one (\. is a dot in a label) */
	assert_non_null(dns_query(d, "mx\\.a.odd.example", DNS_T_A, got,
	    &rb));
	run();
	print_message("A %s ad=%d, TLSA %s ad=%d, escaped %s, denied %d\n",
	    dns_status_name(ra.st), ra.ad, dns_status_name(rt.st), rt.ad,
	    dns_status_name(rb.st), fk.odd_asked);
	assert_int_equal(ra.done, 1);
	assert_int_equal(rt.done, 1);
	assert_int_equal(rb.done, 1);
	assert_int_equal(rt.st, DNS_ERROR);
	assert_int_equal(ra.st, DNS_ERROR);
	assert_int_equal(rb.st, DNS_ERROR);
	assert_int_equal(fk.odd_asked, 0);
	dns_free(d);
}

int
main(void)
{
	if (getenv("TEST_DEBUG"))
		log_init("test", 0, LOG_LVL_DEBUG);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_mx_secure),
		cmocka_unit_test(test_parse_classes),
		cmocka_unit_test(test_parse_cname_txt),
		cmocka_unit_test(test_parse_negative_ttl_cname),
		cmocka_unit_test(test_parse_owner_class_ttl),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_record_count_bound),
		cmocka_unit_test(test_parse_tlsa),
		cmocka_unit_test(test_txt_cut),
		cmocka_unit_test_setup_teardown(test_client_cache_bytes_bounded,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(test_client_cache_ttl0_no_room,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(test_client_classify_share_cache,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(
		    test_client_cache_ttl_counts_suspend, client_setup,
		    client_teardown),
		cmocka_unit_test_setup_teardown(
		    test_client_cache_ttl_expiry_instant, client_setup,
		    client_teardown),
		cmocka_unit_test_setup_teardown(test_client_cname_limit_exact,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(test_client_cname_chase,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(test_client_cname_unending,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(test_client_cname_insecure_denial,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(test_client_first_server_only,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(test_client_many_pending_linear,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(test_client_timeout_cancel,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(test_client_resend_local_wins,
		    client_setup, client_teardown),
		cmocka_unit_test_setup_teardown(
		    test_client_unreadable_name_refused, client_setup,
		    client_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
