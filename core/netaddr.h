/*
 * netaddr.h - is an address one that a name an attacker publishes may
 * send mxguard to?  TLSRPT report destinations (rua=https: hosts and the
 * MX hosts of rua=mailto: domains) come from DNS records anyone can
 * write; an address on this host or on a private network there would let
 * such a record make mxguard POST to, or deliver mail to, internal
 * services (server-side request forgery).
 */
#ifndef MXG_NETADDR_H
#define MXG_NETADDR_H

#include <sys/socket.h>

/* 1 when sa (AF_INET or AF_INET6) is a global unicast address; 0 for the
 * special-purpose ranges of the IANA registries that are not: this host
 * (0/8, 127/8, ::, ::1), private and shared (10/8, 172.16/12,
 * 192.168/16, 100.64/10, fc00::/7), link-local (169.254/16, fe80::/10),
 * documentation and benchmarking (192.0.2/24, 198.51.100/24,
 * 203.0.113/24, 198.18/15, 2001:db8::/32), IETF protocol assignments
 * (192.0.0/24), multicast, reserved and broadcast (224/3,
 * ff00::/8), discard-only (100::/64); an IPv4-mapped or NAT64
 * (64:ff9b::/96) address is judged by its IPv4 address.  Another family:
 * 0. */
int		 netaddr_is_global(const struct sockaddr *sa);
/* The reason netaddr_is_global() said 0, for a log line ("loopback",
 * "private", ...); "global" when it said 1. */
const char	*netaddr_class(const struct sockaddr *sa);
/* For a TLSRPT destination: 0 when sa may be connected to (global, or
 * any_address); else 1, logged (event=tlsrpt-destination-refused, with
 * host, the address and its class) and said in err. */
int		 netaddr_refuse(const char *host, const struct sockaddr *sa,
		    int any_address, char *err, size_t errsz);

#endif
