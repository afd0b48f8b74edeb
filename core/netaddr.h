/*
 * netaddr.h - is an address one that a name an attacker publishes may
 * send mxguard to?  TLSRPT report destinations (rua=https: hosts and the
 * MX hosts of rua=mailto: domains) come from DNS records anyone can
 * write; an address on this host or on a private network there would let
 * such a record make mxguard POST to, or deliver mail to, internal
 * services (server-side request forgery).  A global address of this host,
 * or of a neighbour on one of its networks (a DMZ numbered from global
 * space), would reach them too.
 */
#ifndef MXG_NETADDR_H
#define MXG_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* 1 when sa (AF_INET or AF_INET6) is a global unicast address; 0 for
 * every block of the IANA special-purpose registries, whatever their
 * "Globally Reachable" column says (the anycast services there reach the
 * nearest instance, often one inside the network): this host (0/8,
 * 127/8, ::, ::1), private and shared (10/8, 172.16/12, 192.168/16,
 * 100.64/10, fc00::/7), link-local (169.254/16, fe80::/10), documentation
 * and benchmarking (192.0.2/24, 198.51.100/24, 203.0.113/24, 198.18/15,
 * 2001:db8::/32, 3fff::/20, 2001:2::/48), IETF protocol assignments
 * (192.0.0/24, 2001::/23 with Teredo), anycast (AS112 192.31.196/24,
 * 192.175.48/24, 2620:4f:8000::/48; AMT 192.52.193/24; the 6to4 relays
 * 192.88.99/24), multicast, reserved and broadcast (224/3, ff00::/8),
 * discard-only (100::/64), 6to4 (2002::/16, whatever IPv4 address it
 * embeds), SIIT (::ffff:0:0:0/96), local-use NAT64 (64:ff9b:1::/48), SRv6
 * SIDs (5f00::/16), deprecated site-local (fec0::/10), and any other IPv6
 * address outside 2000::/3 ("reserved").  An IPv4-mapped address, or
 * one in a NAT64 prefix (netaddr_set_nat64(); by default the well-known
 * 64:ff9b::/96), is judged by its IPv4 address: a network-specific
 * prefix is global space, and its NSP+10.0.0.1 reaches 10.0.0.1 through
 * the translator.  One in a NAT64 prefix shorter than /96 whose bits 64
 * to 71 (RFC 6052's "u" octet) are not zero embeds no IPv4 address:
 * "nat64-reserved", not global.  Another family: 0. */
int		 netaddr_is_global(const struct sockaddr *sa);
/* The reason netaddr_is_global() said 0, for a log line ("loopback",
 * "private", ...); "global" when it said 1. */
const char	*netaddr_class(const struct sockaddr *sa);
#define NETADDR_OWN	1
#define NETADDR_ONLINK	2
/* NETADDR_OWN when sa is one of this host's interface addresses,
 * NETADDR_ONLINK when it is in the network of one (the interface
 * address's prefix, from its netmask; a mask of no bits names none) or,
 * for IPv6, in the prefix of a route without a gateway of 16 bits or more
 * (the on-link prefix of a router advertisement, when the address is a
 * DHCPv6 /128: RFC 5942), 0 when neither, -1 (errno) when the list or
 * the routes could not be had.  getifaddrs() and the routes are read each
 * time; an IPv4 address in IPv6 clothes counts as its IPv4 one. */
int		 netaddr_is_own(const struct sockaddr *sa);
/* For a TLSRPT destination: 0 when sa may be connected to (global, not
 * this host's own and not on one of its networks; or any_address); else
 * 1, logged (event=tlsrpt-destination-refused, with host, the address and
 * its class: "own" for this host's own address, "on-link" for one on its
 * networks, "unknown" when this host's addresses could not be listed)
 * and said in err. */
int		 netaddr_refuse(const char *host, const struct sockaddr *sa,
		    int any_address, char *err, size_t errsz);
struct strlist;
/* For a TLSRPT https destination: 0 when port is one of ok (port numbers
 * in decimal: tlsrpt_https_ports, checked by config.c); else 1, logged
 * (event=tlsrpt-destination-refused, with host and the port) and said in
 * err.  An https URI may name any port (RFC 8460), and a ClientHello to
 * one probes what listens there. */
int		 netaddr_refuse_port(const char *host, unsigned port,
		    const struct strlist *ok, char *err, size_t errsz);

/* The address a destination is judged as, into out: an IPv4 address in
 * IPv6 clothes is that IPv4 address, mapped (::ffff:a.b.c.d) or behind
 * one of the NAT64 prefixes (netaddr_set_nat64(), RFC 6052 section 2.2:
 * the 32 bits after the prefix, bits 64 to 71 skipped, which must be
 * zero); the port is kept; another address is copied.  0, or -1 for a
 * family other than AF_INET and AF_INET6. */
int		 netaddr_judged(const struct sockaddr *sa,
		    struct sockaddr_storage *out);
/* The same address (family and address; ports and scopes not
 * compared): 1, else 0.  Judge both first where IPv4 in IPv6 clothes
 * must count as IPv4 (netaddr_judged()). */
int		 netaddr_same_host(const struct sockaddr_storage *a,
		    const struct sockaddr_storage *b);

#define NETADDR_NAT64_MAX	16
/* The NAT64 prefixes netaddr_judged() and netaddr_class() know, from
 * nat64_prefix (config.c checks it with netaddr_nat64_check(); the
 * process applies it at start and at each reload, as the log level):
 * IPv6 prefixes of 32, 40, 48, 56, 64 or 96 bits, no bit set after the
 * length nor in bits 64 to 71, none overlapping another, at most
 * NETADDR_NAT64_MAX; "none" alone or an empty list is none.  Until the
 * first call: 64:ff9b::/96.  -1 with err (nothing changed) when the list
 * is refused. */
int		 netaddr_set_nat64(const struct strlist *prefixes, char *err,
		    size_t errsz);
/* netaddr_set_nat64()'s check alone: 0, or -1 with err. */
int		 netaddr_nat64_check(const struct strlist *prefixes, char *err,
		    size_t errsz);

/* sa as "192.0.2.1:25" or "[2001:db8::1]:25"; a scoped IPv6 address
 * (link-local) keeps its scope, "[fe80::1%2]:25": the same address on
 * two links is two hosts, and a leg reuse key or a log line must not
 * make them one.  Another family: "?". */
void		 netaddr_fmt(const struct sockaddr *sa, char *buf, size_t sz);

#endif
