/*
 * test_nfq_ct.c - which conntrack entries a reload that takes a prefix
 * out of bypass_src/bypass_dst deletes (ct_forget()'s choice, without a
 * kernel): covered() (does the reload take anything out?),
 * was_bypassed() and ct_victim_of() on dumped entries built here.  The
 * deletion itself against the kernel is tests/ns/101-bypass-removed-
 * reload.sh's and 121-bypass-forget-many.sh's.  nfq/nfq.c is included
 * for its static functions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nfq/nfq.c"

#define MASK	0xff
#define BYPASS	0x02

static struct cidr
cidr(const char *s)
{
	struct cidr c;

	assert_int_equal(cidr_parse(s, &c), 0);
	return c;
}

/* An attribute of `len` bytes at buf + *off; returns where it starts. */
static struct nlattr *
put_attr(char *buf, size_t *off, uint16_t type, const void *data,
    size_t len)
{
	struct nlattr *a = (struct nlattr *)(buf + *off);

	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	if (data != NULL)
		memcpy(buf + *off + NLA_HDRLEN, data, len);
	*off += NLA_ALIGN(a->nla_len);
	return a;
}

/* Closes a nested attribute opened at a (its length: up to *off). */
static void
nest_end(char *buf, struct nlattr *a, size_t off)
{
	a->nla_len = (uint16_t)(buf + off - (char *)a);
}

/*
 * A dumped conntrack entry: protocol pn from src to dst:port, connmark
 * mark; salen and dalen the lengths of the address attributes (4 or 16
 * as the family says, or wrong); in conntrack zone zone unless it is -1.
 */
static struct nlmsghdr *
ct_entry_ex(char *buf, int family, const char *src, const char *dst,
    uint16_t port, uint32_t mark, size_t salen, size_t dalen, uint8_t pn,
    int zone)
{
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	struct nfgenmsg *g;
	struct nlattr *tup, *ip, *proto;
	uint8_t s[16] = { 0 }, d[16] = { 0 };
	uint16_t np = htons(port), nz = htons((uint16_t)zone);
	uint32_t nm = htonl(mark);
	size_t off;

	memset(buf, 0, 512);
	assert_int_equal(inet_pton(family, src, s), 1);
	assert_int_equal(inet_pton(family, dst, d), 1);
	h->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
	g = NLMSG_DATA(h);
	g->nfgen_family = (uint8_t)family;
	off = NLMSG_HDRLEN + NLA_ALIGN(sizeof(*g));
	tup = put_attr(buf, &off, CTA_TUPLE_ORIG | NLA_F_NESTED, NULL, 0);
	ip = put_attr(buf, &off, CTA_TUPLE_IP | NLA_F_NESTED, NULL, 0);
	put_attr(buf, &off, family == AF_INET6 ? CTA_IP_V6_SRC :
	    CTA_IP_V4_SRC, s, salen);
	put_attr(buf, &off, family == AF_INET6 ? CTA_IP_V6_DST :
	    CTA_IP_V4_DST, d, dalen);
	nest_end(buf, ip, off);
	proto = put_attr(buf, &off, CTA_TUPLE_PROTO | NLA_F_NESTED, NULL, 0);
	put_attr(buf, &off, CTA_PROTO_NUM, &pn, 1);
	put_attr(buf, &off, CTA_PROTO_DST_PORT, &np, 2);
	nest_end(buf, proto, off);
	nest_end(buf, tup, off);
	put_attr(buf, &off, CTA_MARK, &nm, 4);
	if (zone >= 0)
		put_attr(buf, &off, CTA_ZONE, &nz, 2);
	h->nlmsg_len = (uint32_t)off;
	return h;
}

/* A TCP entry, both address attributes alen long, in no zone. */
static struct nlmsghdr *
ct_entry(char *buf, int family, const char *src, const char *dst,
    uint16_t port, uint32_t mark, size_t alen)
{
	return ct_entry_ex(buf, family, src, dst, port, mark, alen, alen,
	    IPPROTO_TCP, -1);
}

/* A reload takes something out only where a prefix of the old list lies
 * in no prefix of the new one: a wider prefix covers, a narrower one
 * does not. */
static void
test_covered(void **state)
{
	struct cidr a[1], b[2];

	a[0] = cidr("198.51.100.0/24");
	b[0] = cidr("198.51.0.0/16");
	assert_true(covered(a, 1, b, 1));
	b[0] = cidr("198.51.100.0/24");
	assert_true(covered(a, 1, b, 1));
	b[0] = cidr("198.51.100.0/25");
	b[1] = cidr("198.51.100.128/25");
	/* both halves: each narrower, the /24 in neither */
	assert_false(covered(a, 1, b, 2));
	assert_false(covered(a, 1, b, 0));
	assert_true(covered(a, 0, b, 0));
	b[0] = cidr("2001:db8::/32");
	assert_false(covered(a, 1, b, 1));
}

/* ct_victim_of(): a port-25 TCP flow with the BYPASS connmark that the
 * old lists let through and the new ones do not, and nothing else */
static void
test_victim_of(void **state)
{
	static struct nfq q;
	struct cidr olddst[1], newdst[1], oldsrc[1];
	struct nfq_lists old;
	struct ct_victim v;
	char buf[512];

	memset(&q, 0, sizeof(q));
	q.mark_mask = MASK;
	q.bypass_mark = BYPASS;
	olddst[0] = cidr("198.51.100.0/24");
	oldsrc[0] = cidr("2001:db8:5::/48");
	newdst[0] = cidr("198.51.100.128/25");
	memset(&old, 0, sizeof(old));
	old.dst = olddst;
	old.ndst = 1;
	old.src = oldsrc;
	old.nsrc = 1;
	q.lists.dst = newdst;
	q.lists.ndst = 1;

	/* taken out: deleted, its tuple kept whole */
	assert_true(ct_victim_of(&q, &old, ct_entry(buf, AF_INET,
	    "192.0.2.1", "198.51.100.7", 25, 0x500 | BYPASS, 4), &v));
	assert_int_equal(v.family, AF_INET);
	assert_false(v.has_zone);
	/* still let through by the new list: kept */
	assert_false(ct_victim_of(&q, &old, ct_entry(buf, AF_INET,
	    "192.0.2.1", "198.51.100.200", 25, BYPASS, 4), &v));
	/* never bypassed (intercepted, or another mark): not ours */
	assert_false(ct_victim_of(&q, &old, ct_entry(buf, AF_INET,
	    "192.0.2.1", "203.0.113.7", 25, BYPASS, 4), &v));
	assert_false(ct_victim_of(&q, &old, ct_entry(buf, AF_INET,
	    "192.0.2.1", "198.51.100.7", 25, 0x01, 4), &v));
	assert_false(ct_victim_of(&q, &old, ct_entry(buf, AF_INET,
	    "192.0.2.1", "198.51.100.7", 25, 0, 4), &v));
	/* another port */
	assert_false(ct_victim_of(&q, &old, ct_entry(buf, AF_INET,
	    "192.0.2.1", "198.51.100.7", 587, BYPASS, 4), &v));
	/* an address attribute not of its family's length */
	assert_false(ct_victim_of(&q, &old, ct_entry(buf, AF_INET,
	    "192.0.2.1", "198.51.100.7", 25, BYPASS, 16), &v));
	/* IPv6, let through by the old bypass_src only */
	assert_true(ct_victim_of(&q, &old, ct_entry(buf, AF_INET6,
	    "2001:db8:5::9", "2001:db8:25::1", 25, BYPASS, 16), &v));
	assert_int_equal(v.family, AF_INET6);
	assert_false(ct_victim_of(&q, &old, ct_entry(buf, AF_INET6,
	    "2001:db8:6::9", "2001:db8:25::1", 25, BYPASS, 16), &v));
	/* the source list kept by the reload: still let through */
	q.lists.src = oldsrc;
	q.lists.nsrc = 1;
	assert_false(ct_victim_of(&q, &old, ct_entry(buf, AF_INET6,
	    "2001:db8:5::9", "2001:db8:25::1", 25, BYPASS, 16), &v));
	assert_false(ct_victim_of(&q, &old, ct_entry(buf, AF_INET,
	    "192.0.2.1", "198.51.100.200", 25, BYPASS, 4), &v));
	assert_true(ct_victim_of(&q, &old, ct_entry(buf, AF_INET,
	    "192.0.2.1", "198.51.100.7", 25, BYPASS, 4), &v));
}

/*
 * ct_victim_of() on what test_victim_of does not build: a port-25 flow
 * that is not TCP (UDP) is not ours; a destination attribute shorter than
 * the source's (4) is refused, not read past; an entry in a conntrack
 * zone is deleted in that zone (the deletion names it), else the kernel
 * finds nothing to delete in zone 0 and the flow stays let through; a
 * message shorter than its headers is nothing.  Red with the protocol
 * not checked, the two lengths not compared, the zone not kept, or the
 * message's length not checked: ct_victim_of() true, or has_zone 0.
 */
static void
test_victim_of_proto_zone(void **state)
{
	static struct nfq q;
	struct cidr olddst[1];
	struct nfq_lists old;
	struct ct_victim v;
	char buf[512];
	struct nlmsghdr *h;

	memset(&q, 0, sizeof(q));
	q.mark_mask = MASK;
	q.bypass_mark = BYPASS;
	olddst[0] = cidr("198.51.100.0/24");
	memset(&old, 0, sizeof(old));
	old.dst = olddst;
	old.ndst = 1;

	assert_false(ct_victim_of(&q, &old, ct_entry_ex(buf, AF_INET,
	    "192.0.2.1", "198.51.100.7", 25, BYPASS, 4, 4, IPPROTO_UDP, -1),
	    &v));
	assert_false(ct_victim_of(&q, &old, ct_entry_ex(buf, AF_INET,
	    "192.0.2.1", "198.51.100.7", 25, BYPASS, 4, 3, IPPROTO_TCP, -1),
	    &v));
	assert_true(ct_victim_of(&q, &old, ct_entry_ex(buf, AF_INET,
	    "192.0.2.1", "198.51.100.7", 25, BYPASS, 4, 4, IPPROTO_TCP, 7),
	    &v));
	assert_true(v.has_zone);
	assert_int_equal(ntohs(v.zone), 7);
	h = ct_entry(buf, AF_INET, "192.0.2.1", "198.51.100.7", 25, BYPASS,
	    4);
	h->nlmsg_len = NLMSG_HDRLEN + 2;
	assert_false(ct_victim_of(&q, &old, h, &v));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_covered),
		cmocka_unit_test(test_victim_of),
		cmocka_unit_test(test_victim_of_proto_zone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
