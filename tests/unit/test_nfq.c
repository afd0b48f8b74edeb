/*
 * test_nfq.c - unit tests for the steering decisions: CIDR parsing and
 * matching (nfq/cidr.c), the verdict function and packet address
 * extraction (nfq/nfq.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "nfq/cidr.h"
#include "nfq/nfq.h"

static int
m(const char *cidr, const char *addr)
{
	struct cidr c;
	uint8_t a[16];
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;

	assert_int_equal(cidr_parse(cidr, &c), 0);
	assert_int_equal(inet_pton(fam, addr, a), 1);
	return cidr_match(&c, fam, a);
}

static void
test_cidr_parse(void **state)
{
	struct cidr c;
	char buf[64];
	const char *bad[] = { "", "/", "10.0.0.0/", "10.0.0.0/33", "::/129",
	    "10.0.0/8", "10.0.0.0/8x", "10.0.0.0/-1", "host.example",
	    "10.0.0.0/0008", "10.0.0.0//8", " 10.0.0.1", NULL };
	int i;

	assert_int_equal(cidr_parse("10.1.2.3/8", &c), 0);
	assert_string_equal(cidr_str(&c, buf, sizeof(buf)), "10.0.0.0/8");
	assert_int_equal(cidr_parse("192.0.2.7", &c), 0);
	assert_string_equal(cidr_str(&c, buf, sizeof(buf)), "192.0.2.7/32");
	assert_int_equal(cidr_parse("2001:db8::1/32", &c), 0);
	assert_string_equal(cidr_str(&c, buf, sizeof(buf)), "2001:db8::/32");
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(cidr_parse("fd25::10", &c), 0);
	assert_int_equal(c.plen, 128);
	assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_equal(cidr_parse("10.0.0.0/31", &c), 0);
	for (i = 0; bad[i]; i++)
		if (cidr_parse(bad[i], &c) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void
test_cidr_match(void **state)
{
	assert_true(m("10.0.0.0/8", "10.255.1.2"));
	assert_false(m("10.0.0.0/8", "11.0.0.1"));
	assert_true(m("192.0.2.0/25", "192.0.2.127"));
	assert_false(m("192.0.2.0/25", "192.0.2.128"));
	assert_true(m("192.0.2.7", "192.0.2.7"));
	assert_false(m("192.0.2.7", "192.0.2.6"));
	assert_true(m("0.0.0.0/0", "203.0.113.9"));
	assert_true(m("2001:db8::/32", "2001:db8:ffff::25"));
	assert_false(m("2001:db8::/32", "2001:db9::25"));
	assert_true(m("fd25::/63", "fd25:0:0:1::1"));
	assert_false(m("fd25::/64", "fd25:0:0:1::1"));
	assert_true(m("::/0", "::1"));
	/* families never mix: ::ffff:10.0.0.1 is not in 10.0.0.0/8 */
	assert_false(m("10.0.0.0/8", "::ffff:10.0.0.1"));
	assert_false(m("::/0", "10.0.0.1"));
}

static enum nfq_verdict
decide(const char *srcl, const char *dstl, const char *s, const char *d,
    int sat, int open_, enum nfq_reason *why)
{
	struct cidr src[4], dst[4];
	int ns = 0, nd = 0, fam = strchr(s, ':') ? AF_INET6 : AF_INET;
	uint8_t sa[16], da[16];

	if (srcl)
		assert_int_equal(cidr_parse(srcl, &src[ns++]), 0);
	if (dstl)
		assert_int_equal(cidr_parse(dstl, &dst[nd++]), 0);
	assert_int_equal(inet_pton(fam, s, sa), 1);
	assert_int_equal(inet_pton(fam, d, da), 1);
	return nfq_decide(src, ns, dst, nd, fam, sa, da, sat, open_, why);
}

static void
test_decide(void **state)
{
	enum nfq_reason why;

	assert_int_equal(decide(NULL, NULL, "10.0.0.1", "192.0.2.1", 0, 0, &why),
	    NFQ_INTERCEPT);
	assert_int_equal(why, NFQ_R_NONE);
	assert_int_equal(decide("10.0.0.0/8", NULL, "10.0.0.1", "192.0.2.1", 0,
	    0, &why), NFQ_BYPASS);
	assert_int_equal(why, NFQ_R_BYPASS_SRC);
	assert_int_equal(decide(NULL, "192.0.2.0/24", "10.0.0.1", "192.0.2.1",
	    0, 0, &why), NFQ_BYPASS);
	assert_int_equal(why, NFQ_R_BYPASS_DST);
	/* saturation: the fail mode decides */
	assert_int_equal(decide(NULL, NULL, "10.0.0.1", "192.0.2.1", 1, 1, &why),
	    NFQ_BYPASS);
	assert_int_equal(why, NFQ_R_SATURATED);
	assert_int_equal(decide(NULL, NULL, "10.0.0.1", "192.0.2.1", 1, 0, &why),
	    NFQ_DROP);
	/* an exemption wins over saturation, even fail-closed */
	assert_int_equal(decide(NULL, "192.0.2.0/24", "10.0.0.1", "192.0.2.1",
	    1, 0, &why), NFQ_BYPASS);
	assert_int_equal(why, NFQ_R_BYPASS_DST);
	/* source list does not match destinations and vice versa */
	assert_int_equal(decide("192.0.2.0/24", "10.0.0.0/8", "10.0.0.1",
	    "192.0.2.1", 0, 0, &why), NFQ_INTERCEPT);
	assert_int_equal(decide(NULL, "2001:db8::/32", "fd25::1", "2001:db8::25",
	    0, 0, &why), NFQ_BYPASS);
	assert_int_equal(decide(NULL, "2001:db8::/32", "fd25::1", "2001:db9::25",
	    0, 0, &why), NFQ_INTERCEPT);
}

static void
test_packet_addrs(void **state)
{
	uint8_t p4[40] = { 0x45 }, p6[60] = { 0x60 };
	const uint8_t *s, *d;
	int fam;

	memcpy(p4 + 12, "\x0a\x19\x01\x01", 4);
	memcpy(p4 + 16, "\x0a\x19\x01\x0a", 4);
	assert_int_equal(nfq_packet_addrs(p4, sizeof(p4), &fam, &s, &d), 0);
	assert_int_equal(fam, AF_INET);
	assert_memory_equal(s, "\x0a\x19\x01\x01", 4);
	assert_memory_equal(d, "\x0a\x19\x01\x0a", 4);
	assert_int_equal(nfq_packet_addrs(p4, 19, &fam, &s, &d), -1);
	p6[8] = 0xfd;
	p6[24] = 0x20;
	assert_int_equal(nfq_packet_addrs(p6, 40, &fam, &s, &d), 0);
	assert_int_equal(fam, AF_INET6);
	assert_int_equal(s[0], 0xfd);
	assert_int_equal(d[0], 0x20);
	assert_int_equal(nfq_packet_addrs(p6, 39, &fam, &s, &d), -1);
	p6[0] = 0x50;
	assert_int_equal(nfq_packet_addrs(p6, 60, &fam, &s, &d), -1);
	assert_int_equal(nfq_packet_addrs(p6, 0, &fam, &s, &d), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_packet_addrs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
