/*
 * test_netaddr.c - which addresses a published TLSRPT destination may
 * lead mxguard to (core/netaddr.c): global unicast only; an IPv4 address
 * inside IPv6 (mapped, NAT64) is judged as IPv4.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "core/netaddr.h"

static const char *
cls(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	assert_int_equal(netaddr_is_global((struct sockaddr *)&ss),
	    strcmp(netaddr_class((struct sockaddr *)&ss), "global") == 0);
	return netaddr_class((struct sockaddr *)&ss);
}

static void
test_ipv4(void **state)
{
	(void)state;
	assert_string_equal(cls("8.8.8.8"), "global");
	assert_string_equal(cls("1.1.1.1"), "global");
	assert_string_equal(cls("0.1.2.3"), "this-network");
	assert_string_equal(cls("10.25.1.10"), "private");
	assert_string_equal(cls("100.64.0.1"), "shared");
	assert_string_equal(cls("100.127.255.255"), "shared");
	assert_string_equal(cls("100.128.0.1"), "global");
	assert_string_equal(cls("127.0.0.1"), "loopback");
	assert_string_equal(cls("127.255.1.2"), "loopback");
	assert_string_equal(cls("169.254.169.254"), "link-local");
	assert_string_equal(cls("172.15.255.255"), "global");
	assert_string_equal(cls("172.16.0.1"), "private");
	assert_string_equal(cls("172.31.255.255"), "private");
	assert_string_equal(cls("172.32.0.0"), "global");
	assert_string_equal(cls("192.0.0.9"), "ietf-protocol");
	assert_string_equal(cls("192.0.2.1"), "documentation");
	assert_string_equal(cls("192.168.1.1"), "private");
	assert_string_equal(cls("198.18.0.1"), "benchmarking");
	assert_string_equal(cls("198.19.255.255"), "benchmarking");
	assert_string_equal(cls("198.20.0.0"), "global");
	assert_string_equal(cls("198.51.100.7"), "documentation");
	assert_string_equal(cls("203.0.113.7"), "documentation");
	assert_string_equal(cls("223.255.255.255"), "global");
	assert_string_equal(cls("224.0.0.1"), "multicast-or-reserved");
	assert_string_equal(cls("240.0.0.1"), "multicast-or-reserved");
	assert_string_equal(cls("255.255.255.255"), "multicast-or-reserved");
}

static void
test_ipv6(void **state)
{
	(void)state;
	assert_string_equal(cls("2a00:1450:4001::1"), "global");
	assert_string_equal(cls("::"), "unspecified");
	assert_string_equal(cls("::1"), "loopback");
	assert_string_equal(cls("::10.0.0.1"), "ipv4-compatible");
	assert_string_equal(cls("100::1"), "discard");
	assert_string_equal(cls("2001:db8::25"), "documentation");
	assert_string_equal(cls("fd00::1"), "private");
	assert_string_equal(cls("fc12::1"), "private");
	assert_string_equal(cls("fe80::1"), "link-local");
	assert_string_equal(cls("febf::1"), "link-local");
	assert_string_equal(cls("fec0::1"), "global");
	assert_string_equal(cls("ff02::1"), "multicast");
	/* IPv4 inside: judged as IPv4 */
	assert_string_equal(cls("::ffff:127.0.0.1"), "loopback");
	assert_string_equal(cls("::ffff:10.1.2.3"), "private");
	assert_string_equal(cls("::ffff:8.8.8.8"), "global");
	assert_string_equal(cls("64:ff9b::192.168.0.1"), "private");
	assert_string_equal(cls("64:ff9b::8.8.4.4"), "global");
}

static void
test_other_family(void **state)
{
	struct sockaddr sa;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_int_equal(netaddr_is_global(&sa), 0);
	assert_int_equal(netaddr_is_global(NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_other_family),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
