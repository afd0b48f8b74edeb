/*
 * netaddr.c - global unicast or not (netaddr.h).  A table of prefixes,
 * each with the word a log line uses for it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/netaddr.h"

struct pfx {
	uint8_t		 a[16];
	int		 len;
	const char	*why;
};

static const struct pfx v4[] = {
	{ { 0 }, 8, "this-network" },
	{ { 10 }, 8, "private" },
	{ { 100, 64 }, 10, "shared" },
	{ { 127 }, 8, "loopback" },
	{ { 169, 254 }, 16, "link-local" },
	{ { 172, 16 }, 12, "private" },
	{ { 192, 0, 0 }, 24, "ietf-protocol" },
	{ { 192, 0, 2 }, 24, "documentation" },
	{ { 192, 168 }, 16, "private" },
	{ { 198, 18 }, 15, "benchmarking" },
	{ { 198, 51, 100 }, 24, "documentation" },
	{ { 203, 0, 113 }, 24, "documentation" },
	{ { 224 }, 3, "multicast-or-reserved" },
};

static const struct pfx v6[] = {
	{ { 0 }, 128, "unspecified" },
	{ { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 128, "loopback" },
	{ { 0 }, 96, "ipv4-compatible" },	/* ::a.b.c.d, deprecated */
	{ { 0x01 }, 64, "discard" },	/* 100::/64 */
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32, "documentation" },
	{ { 0xfc }, 7, "private" },
	{ { 0xfe, 0x80 }, 10, "link-local" },
	{ { 0xff }, 8, "multicast" },
};

static int
in_pfx(const uint8_t *a, const struct pfx *p)
{
	int full = p->len / 8, rest = p->len % 8;

	if (memcmp(a, p->a, (size_t)full) != 0)
		return 0;
	return rest == 0 || ((a[full] ^ p->a[full]) &
	    (uint8_t)(0xff << (8 - rest))) == 0;
}

static const char *
class4(const uint8_t *a)
{
	size_t i;

	for (i = 0; i < sizeof(v4) / sizeof(v4[0]); i++)
		if (in_pfx(a, &v4[i]))
			return v4[i].why;
	return "global";
}

const char *
netaddr_class(const struct sockaddr *sa)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
	const uint8_t *a;
	size_t i;

	if (sa == NULL)
		return "unknown";
	if (sa->sa_family == AF_INET)
		return class4((const uint8_t *)
		    &((const struct sockaddr_in *)sa)->sin_addr);
	if (sa->sa_family != AF_INET6)
		return "unknown";
	a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	/* an IPv4 address in IPv6 clothes goes where its IPv4 one goes */
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
		return class4(a + 12);
	for (i = 0; i < sizeof(v6) / sizeof(v6[0]); i++)
		if (in_pfx(a, &v6[i]))
			return v6[i].why;
	return "global";
}

int
netaddr_is_global(const struct sockaddr *sa)
{
	return strcmp(netaddr_class(sa), "global") == 0;
}

int
netaddr_refuse(const char *host, const struct sockaddr *sa, int any_address,
    char *err, size_t errsz)
{
	char a[INET6_ADDRSTRLEN] = "?";
	const void *p;
	const char *cls;

	if (any_address || netaddr_is_global(sa))
		return 0;
	cls = netaddr_class(sa);
	if (sa != NULL && (sa->sa_family == AF_INET ||
	    sa->sa_family == AF_INET6)) {
		p = sa->sa_family == AF_INET ?
		    (const void *)&((const struct sockaddr_in *)sa)->sin_addr :
		    (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		(void)inet_ntop(sa->sa_family, p, a, sizeof(a));
	}
	log_warn("event=tlsrpt-destination-refused host=%s address=%s "
	    "class=%s note=\"not a global address; "
	    "tlsrpt_private_destinations = yes allows it\"", host, a, cls);
	snprintf(err, errsz, "%s resolves to %s, a %s address "
	    "(tlsrpt_private_destinations = no)", host, a, cls);
	return 1;
}
