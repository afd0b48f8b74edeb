/*
 * test_netaddr.c - which addresses a published TLSRPT destination may
 * lead mxguard to (core/netaddr.c): global unicast only, and none of this
 * host's own; an IPv4 address inside IPv6 (mapped, NAT64) is judged as
 * IPv4.  Every special-purpose block is checked at both ends and just
 * outside them.  getifaddrs() is wrapped: a made-up interface list gives
 * this host global addresses, whatever the machine running the test has.
 * And the ports an https rua may name, and the NAT64 prefixes an address
 * is judged through (nat64_prefix, RFC 6052 section 2.2).
 */
// WRAP: getifaddrs freeifaddrs
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/netaddr.h"

static void
mk(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, text, &s6->sin6_addr) != 1)
			fail_msg("bad test address %s", text);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, text, &s4->sin_addr) != 1)
			fail_msg("bad test address %s", text);
	}
}

static const char *
cls(const char *text)
{
	struct sockaddr_storage ss;

	mk(text, &ss);
	assert_int_equal(netaddr_is_global((struct sockaddr *)&ss),
	    strcmp(netaddr_class((struct sockaddr *)&ss), "global") == 0);
	return netaddr_class((struct sockaddr *)&ss);
}

struct row {
	const char	*addr;
	const char	*cls;
};

static void
check(const struct row *t, size_t n)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < n; i++)
		if (strcmp(cls(t[i].addr), t[i].cls) != 0) {
			print_error("%s: \"%s\", expected \"%s\"\n",
			    t[i].addr, cls(t[i].addr), t[i].cls);
			bad++;
		}
	if (bad)
		fail_msg("%d of %zu addresses misclassified", bad, n);
}

#define G	"global"

/* each block: the address before it, its first, its last, the one after */
static const struct row v4rows[] = {
	{ "0.0.0.0", "this-network" }, { "0.255.255.255", "this-network" },
	{ "1.0.0.0", G }, { "8.8.8.8", G },
	{ "9.255.255.255", G }, { "10.0.0.0", "private" },
	{ "10.255.255.255", "private" }, { "11.0.0.0", G },
	{ "100.63.255.255", G }, { "100.64.0.0", "shared" },
	{ "100.127.255.255", "shared" }, { "100.128.0.0", G },
	{ "126.255.255.255", G }, { "127.0.0.0", "loopback" },
	{ "127.255.255.255", "loopback" }, { "128.0.0.0", G },
	{ "169.253.255.255", G }, { "169.254.0.0", "link-local" },
	{ "169.254.169.254", "link-local" },
	{ "169.254.255.255", "link-local" }, { "169.255.0.0", G },
	{ "172.15.255.255", G }, { "172.16.0.0", "private" },
	{ "172.31.255.255", "private" }, { "172.32.0.0", G },
	{ "191.255.255.255", G }, { "192.0.0.0", "ietf-protocol" },
	{ "192.0.0.9", "ietf-protocol" }, { "192.0.0.170", "ietf-protocol" },
	{ "192.0.0.255", "ietf-protocol" }, { "192.0.1.0", G },
	{ "192.0.1.255", G }, { "192.0.2.0", "documentation" },
	{ "192.0.2.255", "documentation" }, { "192.0.3.0", G },
	{ "192.31.195.255", G }, { "192.31.196.0", "anycast" },
	{ "192.31.196.255", "anycast" }, { "192.31.197.0", G },
	{ "192.52.192.255", G }, { "192.52.193.0", "anycast" },
	{ "192.52.193.255", "anycast" }, { "192.52.194.0", G },
	{ "192.88.98.255", G }, { "192.88.99.0", "6to4-relay" },
	{ "192.88.99.255", "6to4-relay" }, { "192.88.100.0", G },
	{ "192.167.255.255", G }, { "192.168.0.0", "private" },
	{ "192.168.255.255", "private" }, { "192.169.0.0", G },
	{ "192.175.47.255", G }, { "192.175.48.0", "anycast" },
	{ "192.175.48.255", "anycast" }, { "192.175.49.0", G },
	{ "198.17.255.255", G }, { "198.18.0.0", "benchmarking" },
	{ "198.19.255.255", "benchmarking" }, { "198.20.0.0", G },
	{ "198.51.99.255", G }, { "198.51.100.0", "documentation" },
	{ "198.51.100.255", "documentation" }, { "198.51.101.0", G },
	{ "203.0.112.255", G }, { "203.0.113.0", "documentation" },
	{ "203.0.113.255", "documentation" }, { "203.0.114.0", G },
	{ "223.255.255.255", G }, { "224.0.0.0", "multicast-or-reserved" },
	{ "239.255.255.255", "multicast-or-reserved" },
	{ "240.0.0.0", "multicast-or-reserved" },
	{ "255.255.255.255", "multicast-or-reserved" },
};

static const struct row v6rows[] = {
	{ "::", "unspecified" }, { "::1", "loopback" },
	{ "::2", "ipv4-compatible" }, { "::10.0.0.1", "ipv4-compatible" },
	{ "::ffff:ffff", "ipv4-compatible" }, { "::1:0:0", "reserved" },
	/* mapped: as IPv4 */
	{ "::fffe:ffff:ffff", "reserved" }, { "::ffff:0.0.0.0", "this-network" },
	{ "::ffff:127.0.0.1", "loopback" }, { "::ffff:10.1.2.3", "private" },
	{ "::ffff:8.8.8.8", G }, { "::ffff:255.255.255.255",
	    "multicast-or-reserved" }, { "::1:0:0:0", "reserved" },
	/* SIIT, IPv4-translated: refused whatever the IPv4 address */
	{ "::fffe:ffff:ffff:ffff", "reserved" },
	{ "::ffff:0:0:0", "ipv4-translated" },
	{ "::ffff:0:8.8.8.8", "ipv4-translated" },
	{ "::ffff:0:ffff:ffff", "ipv4-translated" },
	{ "::ffff:1:0:0", "reserved" },
	/* NAT64, well-known prefix: as IPv4 */
	{ "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "64:ff9b::", "this-network" }, { "64:ff9b::8.8.4.4", G },
	{ "64:ff9b::192.168.0.1", "private" },
	{ "64:ff9b::ffff:ffff", "multicast-or-reserved" },
	{ "64:ff9b::1:0:0", "reserved" },
	/* NAT64, local use (RFC 8215) */
	{ "64:ff9b:0:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "64:ff9b:1::", "nat64-local" }, { "64:ff9b:1::8.8.8.8", "nat64-local" },
	{ "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "nat64-local" },
	{ "64:ff9b:2::", "reserved" },
	{ "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "100::", "discard" }, { "100::ffff:ffff:ffff:ffff", "discard" },
	{ "100:0:0:1::", "reserved" },		/* dummy prefix, RFC 9780 */
	{ "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "2000::", G },
	{ "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", G },
	/* 2001::/23, IETF protocol assignments, Teredo and benchmarking in it */
	{ "2001::", "teredo" }, { "2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo" },
	{ "2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "teredo" },
	{ "2001:1::", "ietf-protocol" }, { "2001:1::1", "ietf-protocol" },
	{ "2001:1::3", "ietf-protocol" },
	{ "2001:1:ffff:ffff:ffff:ffff:ffff:ffff", "ietf-protocol" },
	{ "2001:2::", "benchmarking" },
	{ "2001:2:0:ffff:ffff:ffff:ffff:ffff", "benchmarking" },
	{ "2001:2:1::", "ietf-protocol" }, { "2001:3::1", "ietf-protocol" },
	{ "2001:4:112::1", "ietf-protocol" }, { "2001:10::1", "ietf-protocol" },
	{ "2001:20::1", "ietf-protocol" }, { "2001:30::1", "ietf-protocol" },
	{ "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "ietf-protocol" },
	{ "2001:200::", G }, { "2001:4860:4860::8888", G },
	{ "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", G },
	{ "2001:db8::", "documentation" }, { "2001:db8::25", "documentation" },
	{ "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation" },
	{ "2001:db9::", G },
	/* 6to4: refused whatever the IPv4 address inside */
	{ "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", G },
	{ "2002::", "6to4" }, { "2002:a00:1::1", "6to4" },	/* 10.0.0.1 */
	{ "2002:7f00:1::1", "6to4" }, { "2002:808:808::1", "6to4" },
	{ "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "6to4" },
	{ "2003::", G },
	{ "2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", G },
	{ "2620:4f:8000::", "anycast" },
	{ "2620:4f:8000:ffff:ffff:ffff:ffff:ffff", "anycast" },
	{ "2620:4f:8001::", G }, { "2a00:1450:4001::1", G },
	/* documentation (RFC 9637) */
	{ "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", G },
	{ "3fff::", "documentation" },
	{ "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "documentation" },
	{ "3fff:1000::", G },
	{ "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", G },
	{ "4000::", "reserved" }, { "4000::1", "reserved" },
	/* SRv6 SIDs (RFC 9602) */
	{ "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "5f00::", "srv6-sid" }, { "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	    "srv6-sid" }, { "5f01::", "reserved" },
	{ "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "fc00::", "private" }, { "fc12::1", "private" }, { "fd00::1", "private" },
	{ "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private" },
	{ "fe00::", "reserved" },
	{ "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "fe80::", "link-local" }, { "fe80::1", "link-local" },
	{ "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local" },
	/* deprecated site-local (RFC 3879) */
	{ "fec0::", "site-local" }, { "fec0::1", "site-local" },
	{ "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "site-local" },
	{ "ff00::", "multicast" }, { "ff02::1", "multicast" },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast" },
};

static void
test_ipv4(void **state)
{
	(void)state;
	check(v4rows, sizeof(v4rows) / sizeof(v4rows[0]));
}

static void
test_ipv6(void **state)
{
	(void)state;
	check(v6rows, sizeof(v6rows) / sizeof(v6rows[0]));
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

/* ---- this host's own addresses ------------------------------------------ */

int __real_getifaddrs(struct ifaddrs **);
void __real_freeifaddrs(struct ifaddrs *);

enum { IFS_REAL, IFS_FAKE, IFS_FAIL };
static int ifs_mode = IFS_REAL;
static struct sockaddr_storage fake_sa[4];
static struct ifaddrs fake_if[5];

int
__wrap_getifaddrs(struct ifaddrs **ifap)
{
	if (ifs_mode == IFS_REAL)
		return __real_getifaddrs(ifap);
	if (ifs_mode == IFS_FAIL) {
		errno = EMFILE;
		return -1;
	}
	*ifap = &fake_if[0];
	return 0;
}

void
__wrap_freeifaddrs(struct ifaddrs *ifa)
{
	if (ifa != &fake_if[0])
		__real_freeifaddrs(ifa);
}

/* lo 127.0.0.1; eth0 203.0.114.25 and 2a01:4f8:1:2::25 (global), an
 * entry without an address (as an interface without one has) */
static void
fake_ifs(void)
{
	static const char *addrs[] = { "127.0.0.1", "203.0.114.25",
	    "2a01:4f8:1:2::25", "fe80::25" };
	int i;

	memset(fake_if, 0, sizeof(fake_if));
	for (i = 0; i < 4; i++) {
		mk(addrs[i], &fake_sa[i]);
		fake_if[i].ifa_name = i == 0 ? "lo" : "eth0";
		fake_if[i].ifa_addr = (struct sockaddr *)&fake_sa[i];
		fake_if[i].ifa_next = &fake_if[i + 1];
	}
	fake_if[4].ifa_name = "eth1";	/* no address */
	ifs_mode = IFS_FAKE;
}

/* netaddr_refuse() of text: 1 refused (err says why), 0 allowed */
static int
refused(const char *text, int any, char *err, size_t errsz)
{
	struct sockaddr_storage ss;

	mk(text, &ss);
	err[0] = '\0';
	return netaddr_refuse("rpt.example", (struct sockaddr *)&ss, any,
	    err, errsz);
}

static void
test_own_address(void **state)
{
	static const char *own[] = { "203.0.114.25", "2a01:4f8:1:2::25",
	    "::ffff:203.0.114.25", "64:ff9b::203.0.114.25" };
	char err[300];
	size_t i;

	(void)state;
	fake_ifs();
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		if (refused(own[i], 0, err, sizeof(err)) != 1)
			fail_msg("%s, an address of this host, was not "
			    "refused", own[i]);
		assert_non_null(strstr(err, "this host's own address"));
		assert_non_null(strstr(err, "tlsrpt_private_destinations"));
		/* tlsrpt_private_destinations = yes lets it through */
		assert_int_equal(refused(own[i], 1, err, sizeof(err)), 0);
	}
	/* a global address of no interface here, the neighbours included */
	assert_int_equal(refused("203.0.114.26", 0, err, sizeof(err)), 0);
	assert_int_equal(refused("2a01:4f8:1:2::26", 0, err, sizeof(err)), 0);
	assert_int_equal(refused("8.8.8.8", 0, err, sizeof(err)), 0);
	/* the classes still come first */
	assert_int_equal(refused("127.0.0.1", 0, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "127.0.0.1, a loopback address"));
	ifs_mode = IFS_REAL;
}

/*
 * A global address on one of this host's networks (a DMZ numbered from
 * global space: the neighbours a firewall's inside holds) is refused as
 * "on-link", by the interface's netmask; an address outside them is not,
 * nor is anything when the mask has no bits.  Red on the old code: only
 * the host's own addresses were refused.
 */
static void
test_on_link(void **state)
{
	static struct sockaddr_storage mask[4];
	char err[300];

	(void)state;
	fake_ifs();
	mk("255.0.0.0", &mask[0]);		/* lo */
	mk("255.255.255.0", &mask[1]);		/* 203.0.114.25/24 */
	mk("ffff:ffff:ffff:ffff::", &mask[2]);	/* 2a01:4f8:1:2::25/64 */
	mk("ffff:ffff:ffff:ffff::", &mask[3]);	/* fe80::25/64 */
	for (int i = 0; i < 4; i++)
		fake_if[i].ifa_netmask = (struct sockaddr *)&mask[i];
	assert_int_equal(refused("203.0.114.26", 0, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "one of this host's networks"));
	assert_int_equal(refused("203.0.114.254", 0, err, sizeof(err)), 1);
	assert_int_equal(refused("::ffff:203.0.114.7", 0, err, sizeof(err)),
	    1);
	assert_int_equal(refused("2a01:4f8:1:2:ffff::1", 0, err, sizeof(err)),
	    1);
	assert_int_equal(refused("203.0.114.26", 1, err, sizeof(err)), 0);
	/* next door is not on-link */
	assert_int_equal(refused("203.0.115.26", 0, err, sizeof(err)), 0);
	assert_int_equal(refused("2a01:4f8:1:3::25", 0, err, sizeof(err)), 0);
	assert_int_equal(refused("8.8.8.8", 0, err, sizeof(err)), 0);
	/* the own address still says so */
	assert_int_equal(refused("203.0.114.25", 0, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "this host's own address"));
	/* a /22 takes in the neighbours of its neighbours */
	mk("255.255.252.0", &mask[1]);
	assert_int_equal(refused("203.0.115.26", 0, err, sizeof(err)), 1);
	assert_int_equal(refused("203.0.116.26", 0, err, sizeof(err)), 0);
	/* a mask of no bits names no network; a /32 only the address */
	mk("0.0.0.0", &mask[1]);
	assert_int_equal(refused("8.8.8.8", 0, err, sizeof(err)), 0);
	mk("255.255.255.255", &mask[1]);
	assert_int_equal(refused("203.0.114.26", 0, err, sizeof(err)), 0);
	assert_int_equal(refused("203.0.114.25", 0, err, sizeof(err)), 1);
	ifs_mode = IFS_REAL;
}

/*
 * IPv6 on-link is what the routes say (RFC 5942), not the address's
 * prefix length: a DHCPv6 address is a /128, and the /64 it sits on comes
 * from a router advertisement as a route without a gateway.  In a network
 * namespace of its own: eth0 (a veth) has 2a01:4f8:1:2::25/128 and the
 * RA's route 2a01:4f8:1:2::/64; its neighbours are refused "on-link".  A
 * network through a router is not, nor is anything a tunnel's catch-all
 * (::/1 dev) covers.  Red on the old code: the /128 named no network, and
 * a DMZ neighbour numbered from global space was let through.  Needs
 * root (unshare(CLONE_NEWNET)) and ip(8): skipped without.
 */
static int ns_self = -1;	/* the test's own network namespace */

static int
ns_restore(void **state)
{
	(void)state;
	if (ns_self != -1) {
		assert_int_equal(setns(ns_self, CLONE_NEWNET), 0);
		close(ns_self);
		ns_self = -1;
	}
	return 0;
}

static void
test_on_link_route6(void **state)
{
	char err[300];

	(void)state;
	ifs_mode = IFS_REAL;
	if ((ns_self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) == -1)
		skip();
	if (unshare(CLONE_NEWNET) == -1) {
		close(ns_self);
		ns_self = -1;
		skip();
	}
	if (system("exec >/dev/null 2>&1; "
	    "ip link add eth0 type veth peer name eth1 && "
	    "ip link set eth1 up && ip link set eth0 up && "
	    "ip -6 addr add 2a01:4f8:1:2::25/128 dev eth0 nodad && "
	    "ip -6 route add 2a01:4f8:1:2::/64 dev eth0 proto ra && "
	    "ip -6 route add 2a01:4f8:7::/48 via 2a01:4f8:1:2::1 dev eth0 && "
	    "ip -6 route add ::/1 dev eth0") != 0)
		skip();
	assert_int_equal(refused("2a01:4f8:1:2::26", 0, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "one of this host's networks"));
	assert_int_equal(refused("2a01:4f8:1:2:ffff::1", 0, err,
	    sizeof(err)), 1);
	assert_int_equal(refused("2a01:4f8:1:2::26", 1, err, sizeof(err)), 0);
	/* the own address stays "own" */
	assert_int_equal(refused("2a01:4f8:1:2::25", 0, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "this host's own address"));
	/* through a router, next door, or under the tunnel's catch-all */
	assert_int_equal(refused("2a01:4f8:7::25", 0, err, sizeof(err)), 0);
	assert_int_equal(refused("2a01:4f8:1:3::25", 0, err, sizeof(err)), 0);
	assert_int_equal(refused("2a00:1450::1", 0, err, sizeof(err)), 0);
}

/*
 * IPv4 on-link by a route too: a network routed to an interface without
 * an address of it ("ip route add 88.198.50.0/29 dev eth0": a routed
 * subnet on a host's bridge, an unnumbered link), whose hosts have global
 * addresses, is one of this host's networks as much as an address's
 * netmask names one.  In a network namespace of its own: eth0 has the
 * /32 88.198.1.2 and that route; a host in the subnet is refused
 * "on-link", one through a router, next door or under a catch-all
 * (0.0.0.0/1 dev) is not.  Red before: the netmask alone was read, and
 * the routed subnet's hosts were let through.
 */
static void
test_on_link_route4(void **state)
{
	char err[300];

	(void)state;
	ifs_mode = IFS_REAL;
	if ((ns_self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) == -1)
		skip();
	if (unshare(CLONE_NEWNET) == -1) {
		close(ns_self);
		ns_self = -1;
		skip();
	}
	if (system("exec >/dev/null 2>&1; "
	    "ip link add eth0 type veth peer name eth1 && "
	    "ip link set eth1 up && ip link set eth0 up && "
	    "ip addr add 88.198.1.2/32 dev eth0 && "
	    "ip route add 88.198.50.0/29 dev eth0 && "
	    "ip route add 88.198.60.0/24 via 88.198.50.1 dev eth0 && "
	    "ip route add 0.0.0.0/1 dev eth0") != 0)
		skip();
	assert_int_equal(refused("88.198.50.3", 0, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "one of this host's networks"));
	assert_int_equal(refused("88.198.50.3", 1, err, sizeof(err)), 0);
	/* the own address stays "own" */
	assert_int_equal(refused("88.198.1.2", 0, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "this host's own address"));
	/* through a router, next door, or under the catch-all */
	assert_int_equal(refused("88.198.60.25", 0, err, sizeof(err)), 0);
	assert_int_equal(refused("88.198.50.9", 0, err, sizeof(err)), 0);
	assert_int_equal(refused("8.8.8.8", 0, err, sizeof(err)), 0);
	/* an IPv4 address in IPv6 clothes is judged as itself */
	assert_int_equal(refused("::ffff:88.198.50.3", 0, err, sizeof(err)),
	    1);
}

/* The list cannot be had: refused (fail closed), the reason said. */
static void
test_own_unknown(void **state)
{
	char err[300];

	(void)state;
	ifs_mode = IFS_FAIL;
	assert_int_equal(refused("8.8.8.8", 0, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "getifaddrs"));
	assert_int_equal(refused("8.8.8.8", 1, err, sizeof(err)), 0);
	ifs_mode = IFS_REAL;
}

/* The real list of the machine running the test: each of its addresses
 * is refused, whatever class it has (127.0.0.1 where there is no other). */
static void
test_own_real(void **state)
{
	struct ifaddrs *ifs, *i;
	char a[INET6_ADDRSTRLEN], err[300];
	int n = 0;

	(void)state;
	ifs_mode = IFS_REAL;
	assert_int_equal(getifaddrs(&ifs), 0);
	for (i = ifs; i != NULL; i = i->ifa_next) {
		const void *p;

		if (i->ifa_addr == NULL || (i->ifa_addr->sa_family != AF_INET &&
		    i->ifa_addr->sa_family != AF_INET6))
			continue;
		p = i->ifa_addr->sa_family == AF_INET ?
		    (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr :
		    (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		inet_ntop(i->ifa_addr->sa_family, p, a, sizeof(a));
		if (netaddr_refuse(i->ifa_name, i->ifa_addr, 0, err,
		    sizeof(err)) != 1)
			fail_msg("%s of %s was not refused", a, i->ifa_name);
		n++;
	}
	freeifaddrs(ifs);
	if (n == 0)
		assert_int_equal(refused("127.0.0.1", 0, err, sizeof(err)), 1);
}

/* An https rua's port: only those of tlsrpt_https_ports. */
static void
test_port(void **state)
{
	char *v[] = { "443", "8443" };
	struct strlist ok = { v, 2 };
	char err[300];

	(void)state;
	assert_int_equal(netaddr_refuse_port("r.example", 443, &ok, err,
	    sizeof(err)), 0);
	assert_int_equal(netaddr_refuse_port("r.example", 8443, &ok, err,
	    sizeof(err)), 0);
	assert_int_equal(netaddr_refuse_port("r.example", 6379, &ok, err,
	    sizeof(err)), 1);
	assert_string_equal(err, "https port 6379 of r.example is not in "
	    "tlsrpt_https_ports (443 8443)");
	ok.n = 1;
	assert_int_equal(netaddr_refuse_port("r.example", 8443, &ok, err,
	    sizeof(err)), 1);
	assert_int_equal(netaddr_refuse_port("r.example", 25, &ok, err,
	    sizeof(err)), 1);
}

/* ---- NAT64 prefixes (nat64_prefix) -------------------------------------- */

/* netaddr_set_nat64() of a NULL-terminated list; 0 or -1 */
static int
set64(const char *const *v, char *err, size_t errsz)
{
	struct strlist l = { (char **)v, 0 };

	while (v[l.n] != NULL)
		l.n++;
	err[0] = '\0';
	return netaddr_set_nat64(&l, err, errsz);
}

static int
nat64_default(void **state)
{
	static const char *const wkp[] = { "64:ff9b::/96", NULL };
	char err[256];

	(void)state;
	assert_int_equal(set64(wkp, err, sizeof(err)), 0);
	return 0;
}

/* netaddr_judged() of text (port 25), as text: "192.0.2.1:25" */
static const char *
judged(const char *text, char *buf, size_t sz)
{
	struct sockaddr_storage ss, out;

	mk(text, &ss);
	((struct sockaddr_in6 *)&ss)->sin6_port = htons(25);
	assert_int_equal(netaddr_judged((struct sockaddr *)&ss, &out), 0);
	netaddr_fmt((struct sockaddr *)&out, buf, sz);
	return buf;
}

/*
 * RFC 6052 section 2.2: the IPv4 address follows the prefix, bits 64 to
 * 71 (the "u" octet) skipped, for each of the six lengths; section 2.4's
 * examples of 192.0.2.33.  An address whose u octet is not zero embeds
 * no IPv4 address: copied as it is, and never global (a translator may
 * still make one of it).  The suffix after the IPv4 address is not
 * looked at: a translator ignores it too.
 */
static void
test_nat64_lengths(void **state)
{
	static const struct {
		const char	*pfx, *addr, *u_set;
	} t[] = {
		{ "2001:db8::/32", "2001:db8:c000:221::",
		    "2001:db8:c000:221:ff00::" },
		{ "2001:db8:100::/40", "2001:db8:1c0:2:21::",
		    "2001:db8:1c0:2:ff21::" },
		{ "2001:db8:122::/48", "2001:db8:122:c000:2:2100::",
		    "2001:db8:122:c000:ff02:2100::" },
		{ "2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::",
		    "2001:db8:122:3c0:ff00:221::" },
		{ "2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0",
		    "2001:db8:122:344:ffc0:2:2100:0" },
		{ "2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33",
		    NULL },
	};
	static const char *const p64[] = { "2001:db8:122:344::/64", NULL };
	char err[256], a[80], b[80];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *l[] = { t[i].pfx, NULL };

		if (set64(l, err, sizeof(err)) != 0)
			fail_msg("%s refused: %s", t[i].pfx, err);
		assert_string_equal(judged(t[i].addr, a, sizeof(a)),
		    "192.0.2.33:25");
		assert_string_equal(cls(t[i].addr), "documentation");
		if (t[i].u_set == NULL)
			continue;
		snprintf(b, sizeof(b), "[%s]:25", t[i].u_set);
		assert_string_equal(judged(t[i].u_set, a, sizeof(a)), b);
		assert_string_equal(cls(t[i].u_set), "nat64-reserved");
	}
	/* the /64's suffix */
	assert_int_equal(set64(p64, err, sizeof(err)), 0);
	assert_string_equal(judged("2001:db8:122:344:c0:2:2100:ff", a,
	    sizeof(a)), "192.0.2.33:25");
}

/*
 * A network-specific prefix (2001:db8:64::/96): the MTA reaches an IPv4
 * MX 192.0.2.1 at 2001:db8:64::192.0.2.1, which is 192.0.2.1; and a
 * TLSRPT host whose AAAA is the prefix and 10.0.0.1 leads through the
 * translator to 10.0.0.1, private.  Before, only 64:ff9b::/96 was NAT64:
 * the first was judged as the IPv6 address, and one such address in a
 * global NSP was global, POSTed to.  The well-known prefix, not listed,
 * is then no NAT64 prefix.
 */
static void
test_nat64_network_specific(void **state)
{
	static const char *const nsp[] = { "2001:db8:64::/96",
	    "2a00:64:1::/48", NULL };
	char err[256], a[80];

	(void)state;
	assert_int_equal(set64(nsp, err, sizeof(err)), 0);
	assert_string_equal(judged("2001:db8:64::192.0.2.1", a, sizeof(a)),
	    "192.0.2.1:25");
	assert_string_equal(cls("2001:db8:64::10.0.0.1"), "private");
	assert_string_equal(cls("2001:db8:64::8.8.8.8"), G);
	/* 2a00:64:1::/48 is global space: 10.0.0.1 behind it is not */
	assert_string_equal(judged("2a00:64:1:a00:0:100::", a, sizeof(a)),
	    "10.0.0.1:25");
	assert_string_equal(cls("2a00:64:1:a00:0:100::"), "private");
	assert_int_equal(refused("2a00:64:1:a00:0:100::", 0, err,
	    sizeof(err)), 1);
	assert_non_null(strstr(err, "a private address"));
	assert_string_equal(cls("2a00:64:1:808:0:808::"), G);	/* 8.8.8.8 */
	assert_string_equal(cls("2a00:64:2::10.0.0.1"), G);	/* outside */
	assert_string_equal(judged("64:ff9b::192.0.2.1", a, sizeof(a)),
	    "[64:ff9b::c000:201]:25");
	assert_string_equal(cls("64:ff9b::8.8.8.8"), "reserved");
}

/* nat64_prefix = none (or empty): no NAT64 rule; a refused list changes
 * nothing */
static void
test_nat64_none(void **state)
{
	static const char *const none[] = { "none", NULL };
	static const char *const empty[] = { NULL };
	static const char *const bad[] = { "2001:db8:64::/96",
	    "2001:db8:64::/97", NULL };
	char err[256], a[80];

	(void)state;
	assert_string_equal(cls("64:ff9b::8.8.8.8"), G);
	assert_int_equal(set64(none, err, sizeof(err)), 0);
	assert_string_equal(judged("64:ff9b::192.0.2.1", a, sizeof(a)),
	    "[64:ff9b::c000:201]:25");
	assert_string_equal(cls("64:ff9b::8.8.8.8"), "reserved");
	assert_string_equal(cls("64:ff9b::10.0.0.1"), "reserved");
	/* mapped is no NAT64: still its IPv4 address */
	assert_string_equal(judged("::ffff:192.0.2.1", a, sizeof(a)),
	    "192.0.2.1:25");
	assert_int_equal(nat64_default(NULL), 0);
	assert_int_equal(set64(empty, err, sizeof(err)), 0);
	assert_string_equal(cls("64:ff9b::8.8.8.8"), "reserved");
	assert_int_equal(nat64_default(NULL), 0);
	assert_int_equal(set64(bad, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "2001:db8:64::/97"));
	assert_string_equal(cls("64:ff9b::8.8.8.8"), G);
	assert_string_equal(cls("2001:db8:64::8.8.8.8"), "documentation");
}

/* What netaddr_set_nat64() (and so config.c) refuses, and says why */
static void
test_nat64_refused(void **state)
{
	static const struct {
		const char	*v[3];
		const char	*why;
	} t[] = {
		{ { "10.0.0.0/8" }, "an IPv4 prefix" },
		{ { "64:ff9b::" }, "not an IPv6 prefix" },
		{ { "64:ff9b::/" }, "not an IPv6 prefix" },
		{ { "64:ff9b::/x96" }, "not an IPv6 prefix" },
		{ { "nat64.example/96" }, "not an IPv6 prefix" },
		{ { "64:ff9b::/95" }, "32, 40, 48, 56, 64 or 96 bits" },
		{ { "64:ff9b::/128" }, "32, 40, 48, 56, 64 or 96 bits" },
		{ { "64:ff9b::/0" }, "32, 40, 48, 56, 64 or 96 bits" },
		{ { "64:ff9b::1/96" }, "(the prefix is 64:ff9b::/96)" },
		{ { "2001:db8:64:1::/48" },
		    "(the prefix is 2001:db8:64::/48)" },
		{ { "2001:db8:0:0:100::/96" }, "\"u\" octet" },
		{ { "none", "64:ff9b::/96" }, "stands alone" },
		{ { "64:ff9b::/96", "none" }, "stands alone" },
		{ { "2001:db8::/32", "2001:db8:64::/96" }, "overlap" },
		{ { "2001:db8:64::/96", "2001:db8::/32" }, "overlap" },
		{ { "64:ff9b::/96", "64:ff9b::/96" }, "overlap" },
	};
	const char *many[NETADDR_NAT64_MAX + 2];
	char err[256], buf[NETADDR_NAT64_MAX + 1][32];
	struct strlist l;
	size_t i;
	int n;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (n = 0; n < 3 && t[i].v[n] != NULL; n++)
			;
		l.v = (char **)t[i].v;
		l.n = n;
		err[0] = '\0';
		assert_int_equal(netaddr_nat64_check(&l, err, sizeof(err)), -1);
		if (strstr(err, t[i].why) == NULL)
			fail_msg("%s: \"%s\" lacks \"%s\"", t[i].v[0], err,
			    t[i].why);
		assert_int_equal(netaddr_set_nat64(&l, err, sizeof(err)), -1);
	}
	for (n = 0; n <= NETADDR_NAT64_MAX; n++) {
		snprintf(buf[n], sizeof(buf[n]), "2001:db8:%x::/48", n);
		many[n] = buf[n];
	}
	many[n] = NULL;
	l.v = (char **)many;
	l.n = NETADDR_NAT64_MAX;
	assert_int_equal(netaddr_nat64_check(&l, err, sizeof(err)), 0);
	l.n = NETADDR_NAT64_MAX + 1;
	assert_int_equal(netaddr_nat64_check(&l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at most"));
	/* nothing changed: the well-known prefix still */
	assert_string_equal(cls("64:ff9b::8.8.8.8"), G);
}

/* netaddr_fmt(): the form in logs and in the leg reuse key.  A scoped
 * (link-local) IPv6 address keeps its scope: fe80::1 on two links is two
 * hosts, and a leg proven with one must not be reused for the other. */
static void
test_fmt(void **state)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
	    .sin_port = htons(25) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6,
	    .sin6_port = htons(25) };
	struct sockaddr_in6 other;
	struct sockaddr un = { .sa_family = AF_UNIX };
	char a[80], b[80];

	inet_pton(AF_INET, "192.0.2.1", &in.sin_addr);
	netaddr_fmt((struct sockaddr *)&in, a, sizeof(a));
	assert_string_equal(a, "192.0.2.1:25");
	inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
	netaddr_fmt((struct sockaddr *)&in6, a, sizeof(a));
	assert_string_equal(a, "[2001:db8::1]:25");
	inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
	in6.sin6_scope_id = 2;
	other = in6;
	other.sin6_scope_id = 3;
	netaddr_fmt((struct sockaddr *)&in6, a, sizeof(a));
	netaddr_fmt((struct sockaddr *)&other, b, sizeof(b));
	assert_string_equal(a, "[fe80::1%2]:25");
	assert_string_not_equal(a, b);
	netaddr_fmt(&un, a, sizeof(a));
	assert_string_equal(a, "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_other_family),
		cmocka_unit_test(test_own_address),
		cmocka_unit_test(test_own_unknown),
		cmocka_unit_test(test_on_link),
		cmocka_unit_test_teardown(test_on_link_route6, ns_restore),
		cmocka_unit_test_teardown(test_on_link_route4, ns_restore),
		cmocka_unit_test(test_own_real),
		cmocka_unit_test(test_port),
		cmocka_unit_test(test_fmt),
		cmocka_unit_test_teardown(test_nat64_lengths, nat64_default),
		cmocka_unit_test_teardown(test_nat64_network_specific,
		    nat64_default),
		cmocka_unit_test_teardown(test_nat64_none, nat64_default),
		cmocka_unit_test_teardown(test_nat64_refused, nat64_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
