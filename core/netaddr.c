/*
 * netaddr.c - global unicast or not (netaddr.h).  A table of prefixes,
 * each with the word a log line uses for it; for IPv6, nothing outside
 * 2000::/3 is global either.  An IPv4 address in IPv6 clothes (mapped, or
 * in one of the NAT64 prefixes nat64_prefix names) is its IPv4 one.  Also
 * netaddr_fmt(), the one way an address and port are written in logs and
 * keys.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/netaddr.h"

struct pfx {
	uint8_t		 a[16];
	int		 len;
	const char	*why;
};

/* The IANA IPv4 Special-Purpose Address Registry, every block: those it
 * calls globally reachable are anycast services (AS112, AMT relays, 6to4
 * relays), which reach the nearest instance, often one in the operator's
 * own network, and never a report receiver. */
static const struct pfx v4[] = {
	{ { 0 }, 8, "this-network" },
	{ { 10 }, 8, "private" },
	{ { 100, 64 }, 10, "shared" },
	{ { 127 }, 8, "loopback" },
	{ { 169, 254 }, 16, "link-local" },
	{ { 172, 16 }, 12, "private" },
	{ { 192, 0, 0 }, 24, "ietf-protocol" },
	{ { 192, 0, 2 }, 24, "documentation" },
	{ { 192, 31, 196 }, 24, "anycast" },	/* AS112-v4 */
	{ { 192, 52, 193 }, 24, "anycast" },	/* AMT */
	{ { 192, 88, 99 }, 24, "6to4-relay" },	/* deprecated anycast */
	{ { 192, 168 }, 16, "private" },
	{ { 192, 175, 48 }, 24, "anycast" },	/* AS112 direct delegation */
	{ { 198, 18 }, 15, "benchmarking" },
	{ { 198, 51, 100 }, 24, "documentation" },
	{ { 203, 0, 113 }, 24, "documentation" },
	{ { 224 }, 3, "multicast-or-reserved" },	/* and broadcast */
};

/* The IANA IPv6 Special-Purpose Address Registry, every block (2001::/23
 * whole: its few globally reachable blocks are anycast services and
 * ORCHID/DRIP identifiers), and the deprecated site-local prefix.  First
 * match wins: the more specific first.  An address outside 2000::/3 that
 * none of these names is "reserved" (ipv6_class()). */
static const struct pfx v6[] = {
	{ { 0 }, 128, "unspecified" },
	{ { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 128, "loopback" },
	{ { 0 }, 96, "ipv4-compatible" },	/* ::a.b.c.d, deprecated */
	/* ::ffff:0:a.b.c.d, SIIT (RFC 6052 section 2.1, RFC 2765) */
	{ { 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff }, 96, "ipv4-translated" },
	{ { 0, 0x64, 0xff, 0x9b, 0, 1 }, 48, "nat64-local" },	/* RFC 8215 */
	{ { 0x01 }, 64, "discard" },	/* 100::/64 */
	{ { 0x20, 0x01 }, 32, "teredo" },
	{ { 0x20, 0x01, 0, 2 }, 48, "benchmarking" },
	{ { 0x20, 0x01 }, 23, "ietf-protocol" },
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32, "documentation" },
	{ { 0x20, 0x02 }, 16, "6to4" },	/* any embedded IPv4: RFC 7526 */
	{ { 0x26, 0x20, 0, 0x4f, 0x80 }, 48, "anycast" },	/* AS112 */
	{ { 0x3f, 0xff }, 20, "documentation" },	/* RFC 9637 */
	{ { 0x5f }, 16, "srv6-sid" },	/* RFC 9602 */
	{ { 0xfc }, 7, "private" },
	{ { 0xfe, 0x80 }, 10, "link-local" },
	{ { 0xfe, 0xc0 }, 10, "site-local" },	/* RFC 3879 */
	{ { 0xff }, 8, "multicast" },
};

static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0xff, 0xff };

/* The NAT64 prefixes (nat64_prefix, netaddr_set_nat64()): until a
 * configuration says otherwise, the well-known one, 64:ff9b::/96. */
static struct pfx nat64[NETADDR_NAT64_MAX] = {
	{ { 0, 0x64, 0xff, 0x9b }, 96, "nat64" },
};
static int nnat64 = 1;

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

/* An IPv4 address a NAT64 prefix p holds in a (RFC 6052 section 2.2):
 * the 32 bits after the prefix, bits 64 to 71 (the "u" octet) skipped. */
static void
nat64_extract(const uint8_t *a, const struct pfx *p, uint8_t in[4])
{
	int i, o = p->len / 8;

	for (i = 0; i < 4; i++, o++) {
		if (o == 8)
			o++;
		in[i] = a[o];
	}
}

/* An IPv4 address in IPv6 clothes (mapped, or in one of the NAT64
 * prefixes) goes where its IPv4 one goes: 1 with it in in; 0 for
 * another address; -1 for one in a NAT64 prefix whose u octet is not
 * zero, which RFC 6052 gives no IPv4 address (a translator may still
 * make one of it: never judged global). */
static int
inner4(const uint8_t *a, uint8_t in[4])
{
	int i;

	if (memcmp(a, mapped, 12) == 0) {
		memcpy(in, a + 12, 4);
		return 1;
	}
	for (i = 0; i < nnat64; i++) {
		if (!in_pfx(a, &nat64[i]))
			continue;
		if (nat64[i].len < 96 && a[8] != 0)
			return -1;
		nat64_extract(a, &nat64[i], in);
		return 1;
	}
	return 0;
}

int
netaddr_same_host(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		    &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		    &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
	return 0;
}

int
netaddr_judged(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	const struct sockaddr_in6 *s6 = (const void *)sa;
	struct sockaddr_in *s4 = (void *)out;
	uint8_t in[4];

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		memcpy(out, sa, sizeof(struct sockaddr_in));
		return 0;
	}
	if (sa->sa_family != AF_INET6)
		return -1;
	if (inner4(s6->sin6_addr.s6_addr, in) != 1) {
		memcpy(out, sa, sizeof(*s6));
		return 0;
	}
	s4->sin_family = AF_INET;
	s4->sin_port = s6->sin6_port;
	memcpy(&s4->sin_addr, in, 4);
	return 0;
}

const char *
netaddr_class(const struct sockaddr *sa)
{
	const uint8_t *a;
	uint8_t in[4];
	size_t i;

	if (sa == NULL)
		return "unknown";
	if (sa->sa_family == AF_INET)
		return class4((const uint8_t *)
		    &((const struct sockaddr_in *)sa)->sin_addr);
	if (sa->sa_family != AF_INET6)
		return "unknown";
	a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	switch (inner4(a, in)) {
	case 1:
		return class4(in);
	case -1:
		return "nat64-reserved";
	}
	for (i = 0; i < sizeof(v6) / sizeof(v6[0]); i++)
		if (in_pfx(a, &v6[i]))
			return v6[i].why;
	/* IANA allocates global unicast from 2000::/3 only; the rest is
	 * reserved by the IETF (RFC 4291 section 2.4) */
	if ((a[0] & 0xe0) != 0x20)
		return "reserved";
	return "global";
}

int
netaddr_is_global(const struct sockaddr *sa)
{
	return strcmp(netaddr_class(sa), "global") == 0;
}

/* One nat64_prefix entry, "ADDRESS/LENGTH", into p; -1 with err when it
 * is not a prefix RFC 6052 section 2.2 allows. */
static int
nat64_parse(const char *s, struct pfx *p, char *err, size_t errsz)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strrchr(s, '/'), *why;
	struct in_addr a4;
	size_t n;
	int i;

	why = "not an IPv6 prefix (ADDRESS/LENGTH, e.g. 64:ff9b::/96)";
	if (slash == NULL || (n = (size_t)(slash - s)) >= sizeof(addr) ||
	    slash[1] == '\0' || strlen(slash + 1) > 3 ||
	    strspn(slash + 1, "0123456789") != strlen(slash + 1))
		goto fail;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, &a4) == 1) {
		why = "an IPv4 prefix; a NAT64 prefix is IPv6 (e.g. "
		    "64:ff9b::/96)";
		goto fail;
	}
	if (inet_pton(AF_INET6, addr, p->a) != 1)
		goto fail;
	p->len = atoi(slash + 1);
	p->why = "nat64";
	if (p->len != 32 && p->len != 40 && p->len != 48 && p->len != 56 &&
	    p->len != 64 && p->len != 96) {
		why = "a NAT64 prefix is 32, 40, 48, 56, 64 or 96 bits long "
		    "(RFC 6052 section 2.2)";
		goto fail;
	}
	for (i = p->len / 8; i < 16; i++)
		if (p->a[i] != 0) {
			memset(p->a + p->len / 8, 0, (size_t)(16 - p->len / 8));
			inet_ntop(AF_INET6, p->a, addr, sizeof(addr));
			snprintf(err, errsz, "\"%s\": bits set after the "
			    "first %d (the prefix is %s/%d)", s, p->len, addr,
			    p->len);
			return -1;
		}
	/* a /96 holds the u octet: RFC 6052 wants it zero there too */
	if (p->a[8] != 0) {
		why = "bits 64 to 71 (the \"u\" octet, RFC 6052 section 2.2) "
		    "must be zero";
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errsz, "\"%s\": %s", s, why);
	return -1;
}

/* A nat64_prefix list into t (n entries): "none" alone or no entry is
 * none.  Two prefixes that overlap would give one address two IPv4
 * addresses: refused. */
static int
nat64_load(const struct strlist *l, struct pfx *t, int *n, char *err,
    size_t errsz)
{
	int i, j;

	*n = 0;
	if (l->n == 1 && strcmp(l->v[0], "none") == 0)
		return 0;
	if (l->n > NETADDR_NAT64_MAX) {
		snprintf(err, errsz, "at most %d prefixes", NETADDR_NAT64_MAX);
		return -1;
	}
	for (i = 0; i < l->n; i++) {
		if (strcmp(l->v[i], "none") == 0) {
			snprintf(err, errsz, "\"none\" (no NAT64 prefix) "
			    "stands alone");
			return -1;
		}
		if (nat64_parse(l->v[i], &t[i], err, errsz) == -1)
			return -1;
		for (j = 0; j < i; j++)
			if (in_pfx(t[i].a, &t[j]) || in_pfx(t[j].a, &t[i])) {
				snprintf(err, errsz, "%s and %s overlap (an "
				    "address in both would have two IPv4 "
				    "addresses)", l->v[j], l->v[i]);
				return -1;
			}
	}
	*n = l->n;
	return 0;
}

int
netaddr_nat64_check(const struct strlist *l, char *err, size_t errsz)
{
	struct pfx t[NETADDR_NAT64_MAX];
	int n;

	return nat64_load(l, t, &n, err, errsz);
}

int
netaddr_set_nat64(const struct strlist *l, char *err, size_t errsz)
{
	struct pfx t[NETADDR_NAT64_MAX];
	int n;

	if (nat64_load(l, t, &n, err, errsz) == -1)
		return -1;
	memcpy(nat64, t, (size_t)n * sizeof(t[0]));
	nnat64 = n;
	return 0;
}

/* sa's address as (family, bytes): an IPv4 address in IPv6 clothes as
 * IPv4.  0, or -1 for another family. */
static int
addr_of(const struct sockaddr *sa, int *fam, uint8_t b[16])
{
	const uint8_t *a;
	uint8_t in[4];

	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		*fam = AF_INET;
		memcpy(b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family != AF_INET6)
		return -1;
	a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	if (inner4(a, in) == 1) {
		*fam = AF_INET;
		memcpy(b, in, 4);
	} else {
		*fam = AF_INET6;
		memcpy(b, a, 16);
	}
	return 0;
}

/* a and b share their first bits bits */
static int
same_prefix(const uint8_t *a, const uint8_t *b, int bits)
{
	struct pfx p;

	memcpy(p.a, b, 16);
	p.len = bits;
	return in_pfx(a, &p);
}

/* The prefix length of a netmask (its leading one bits). */
static int
mask_bits(const uint8_t *m, int nbytes)
{
	int n = 0, i;

	for (i = 0; i < nbytes && m[i] == 0xff; i++)
		n += 8;
	if (i < nbytes)
		for (uint8_t b = m[i]; b & 0x80; b = (uint8_t)(b << 1))
			n++;
	return n;
}

/* Shorter gateway-less routes are a tunnel's catch-all (::/1 or
 * 2000::/3 dev wg0, sit1; 0.0.0.0/1 dev tun0, default dev ppp0), the way
 * out, not a network of this host's. */
#define ONLINK6_MIN_LEN	16
#define ONLINK4_MIN_LEN	8

/* One RTM_NEWROUTE of a dump: 1 when it is an on-link route of family fam
 * (unicast, no gateway, no multipath or nexthop object, a prefix of
 * ONLINK6_MIN_LEN or ONLINK4_MIN_LEN bits or more) whose prefix holds a. */
static int
route_holds(const struct nlmsghdr *nh, int fam, const uint8_t *a)
{
	const struct rtmsg *rt = NLMSG_DATA(nh);
	const struct rtattr *at;
	uint8_t dst[16] = { 0 };
	int len, have_dst = 0, alen = fam == AF_INET6 ? 16 : 4;

	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*rt)) ||
	    rt->rtm_family != fam || rt->rtm_type != RTN_UNICAST ||
	    rt->rtm_dst_len < (fam == AF_INET6 ? ONLINK6_MIN_LEN :
	    ONLINK4_MIN_LEN) || rt->rtm_dst_len > alen * 8)
		return 0;
	len = (int)RTM_PAYLOAD(nh);
	for (at = RTM_RTA(rt); RTA_OK(at, len); at = RTA_NEXT(at, len))
		switch (at->rta_type) {
		case RTA_GATEWAY:
		case RTA_VIA:
		case RTA_MULTIPATH:
		case RTA_NH_ID:
			return 0;	/* through a router: not on-link */
		case RTA_DST:
			if (RTA_PAYLOAD(at) != (size_t)alen)
				return 0;
			memcpy(dst, RTA_DATA(at), (size_t)alen);
			have_dst = 1;
			break;
		}
	return have_dst && same_prefix(a, dst, rt->rtm_dst_len);
}

/*
 * 1 when the address a of family fam is on-link by one of the kernel's
 * routes, 0 when not, -1 (errno) when the routes could not be listed.
 * In IPv6 an address's prefix length says nothing of the link (RFC 5942):
 * a DHCPv6 address is a /128, and the network it sits on is the prefix a
 * router advertisement marks on-link, which the kernel holds as a route
 * without a gateway ("2001:db8:1::/64 dev eth0 proto ra"); so is a static
 * route to a network on an interface, in IPv4 too: a subnet routed to a
 * bridge or an unnumbered link ("203.0.113.0/29 dev br0"), whose hosts
 * no address's netmask names.  A netlink dump, as getifaddrs() makes.
 */
static int
onlink(int fam, const uint8_t *a)
{
	struct {
		struct nlmsghdr	 nh;
		struct rtmsg	 rt;
	} req;
	union {
		struct nlmsghdr	 nh;
		char		 b[32768];
	} u;
	struct sockaddr_nl sn = { .nl_family = AF_NETLINK };
	struct nlmsghdr *nh;
	ssize_t n;
	int fd, found = 0, eno;

	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
	    NETLINK_ROUTE)) == -1)
		return -1;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.rt));
	req.nh.nlmsg_type = RTM_GETROUTE;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = 1;
	req.rt.rtm_family = (unsigned char)fam;
	if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sn,
	    sizeof(sn)) == -1)
		goto fail;
	for (;;) {
		if ((n = recv(fd, u.b, sizeof(u.b), 0)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0) {
			errno = EPROTO;
			goto fail;
		}
		for (nh = &u.nh; NLMSG_OK(nh, (size_t)n);
		    nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_seq != 1)
				continue;
			if (nh->nlmsg_type == NLMSG_DONE)
				goto done;
			if (nh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(nh);

				errno = nh->nlmsg_len >=
				    NLMSG_LENGTH(sizeof(*e)) && e->error < 0 ?
				    -e->error : EPROTO;
				goto fail;
			}
			if (nh->nlmsg_type == RTM_NEWROUTE && !found)
				found = route_holds(nh, fam, a);
		}
	}
done:
	close(fd);
	return found;
fail:
	eno = errno;
	close(fd);
	errno = eno;
	return -1;
}

int
netaddr_is_own(const struct sockaddr *sa)
{
	struct ifaddrs *ifs, *i;
	uint8_t b[16], ib[16] = { 0 }, mb[16];
	int fam, ifam, mfam, bits, own = 0;

	if (addr_of(sa, &fam, b) == -1)
		return 0;
	/* a netlink dump each time: report destinations are few, and an
	 * address added since a cached list would go unseen */
	if (getifaddrs(&ifs) == -1)
		return -1;
	for (i = ifs; i != NULL && own != NETADDR_OWN; i = i->ifa_next) {
		if (addr_of(i->ifa_addr, &ifam, ib) != 0 || ifam != fam)
			continue;
		if (memcmp(b, ib, fam == AF_INET ? 4 : 16) == 0) {
			own = NETADDR_OWN;
			continue;
		}
		/* a neighbour on one of this host's networks: the hosts a
		 * firewall's inside holds when their addresses are global.
		 * A mask of no bits (some tunnels) names no network. */
		if (i->ifa_netmask == NULL ||
		    addr_of(i->ifa_netmask, &mfam, mb) != 0)
			continue;
		if (i->ifa_netmask->sa_family == AF_INET6 && fam == AF_INET)
			continue;	/* a mapped address's /128 mask */
		bits = mask_bits(mb, fam == AF_INET ? 4 : 16);
		if (bits > 0 && same_prefix(b, ib, bits))
			own = NETADDR_ONLINK;
	}
	freeifaddrs(ifs);
	/* a network is also what the routes say is on-link (onlink()):
	 * in IPv6 whatever prefix lengths the addresses have, in either a
	 * network routed to an interface without an address of it */
	if (own == 0) {
		int r = onlink(fam, b);

		if (r == -1)
			return -1;
		if (r == 1)
			own = NETADDR_ONLINK;
	}
	return own;
}

int
netaddr_refuse(const char *host, const struct sockaddr *sa, int any_address,
    char *err, size_t errsz)
{
	char a[INET6_ADDRSTRLEN] = "?", why[200];
	const void *p;
	const char *cls;
	int own = 0, eno = 0;

	if (any_address)
		return 0;
	cls = netaddr_class(sa);
	if (strcmp(cls, "global") == 0) {
		/* a global address of this host reaches whatever listens
		 * here, the firewall's inside; so does one of its networks */
		if ((own = netaddr_is_own(sa)) == 0)
			return 0;
		eno = errno;
		cls = own == NETADDR_OWN ? "own" : own == NETADDR_ONLINK ?
		    "on-link" : "unknown";
	}
	if (sa != NULL && (sa->sa_family == AF_INET ||
	    sa->sa_family == AF_INET6)) {
		p = sa->sa_family == AF_INET ?
		    (const void *)&((const struct sockaddr_in *)sa)->sin_addr :
		    (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		(void)inet_ntop(sa->sa_family, p, a, sizeof(a));
	}
	if (own == NETADDR_OWN)
		snprintf(why, sizeof(why), "this host's own address");
	else if (own == NETADDR_ONLINK)
		snprintf(why, sizeof(why), "an address on one of this "
		    "host's networks");
	else if (own == -1)
		snprintf(why, sizeof(why), "not checked against this host's "
		    "own addresses and networks (getifaddrs or the routes: "
		    "%s)", strerror(eno));
	else
		snprintf(why, sizeof(why), "a %s address", cls);
	log_warn("event=tlsrpt-destination-refused host=%s address=%s "
	    "class=%s note=\"%s; tlsrpt_private_destinations = yes allows "
	    "it\"", host, a, cls, own != 0 ? why : "not a global address");
	snprintf(err, errsz, "%s resolves to %s, %s "
	    "(tlsrpt_private_destinations = no)", host, a, why);
	return 1;
}

int
netaddr_refuse_port(const char *host, unsigned port, const struct strlist *ok,
    char *err, size_t errsz)
{
	char list[64] = "";
	size_t o = 0;
	int i;

	for (i = 0; i < ok->n; i++)
		if (strtoul(ok->v[i], NULL, 10) == port)
			return 0;
	for (i = 0; i < ok->n && o < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
		    i ? " " : "", ok->v[i]);
	log_warn("event=tlsrpt-destination-refused host=%s port=%u "
	    "note=\"port not in tlsrpt_https_ports (%s)\"", host, port, list);
	snprintf(err, errsz, "https port %u of %s is not in "
	    "tlsrpt_https_ports (%s)", port, host, list);
	return 1;
}

void
netaddr_fmt(const struct sockaddr *sa, char *buf, size_t sz)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(buf, sz, "%s:%u", a, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		char scope[16] = "";

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		if (in6->sin6_scope_id != 0)
			snprintf(scope, sizeof(scope), "%%%u",
			    (unsigned)in6->sin6_scope_id);
		snprintf(buf, sz, "[%s%s]:%u", a, scope,
		    ntohs(in6->sin6_port));
	} else
		snprintf(buf, sz, "?");
}
