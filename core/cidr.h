/*
 * cidr.h - IPv4/IPv6 prefixes ("192.0.2.0/24", "2001:db8::/32", or a bare
 * address meaning /32 or /128) for the bypass lists: the configuration's
 * warnings (core/config.c), the rules (nfq/rules.c) and the NFQUEUE
 * verdicts (nfq/nfq.c) read them alike.
 */
#ifndef MXG_CIDR_H
#define MXG_CIDR_H

#include <stdint.h>

struct cidr {
	int	 family;	/* AF_INET or AF_INET6 */
	int	 plen;		/* prefix length */
	uint8_t	 addr[16];	/* network address, host bits cleared */
};

/* Returns 0, or -1 if s is not an address with an optional /length. */
int	cidr_parse(const char *s, struct cidr *);
/* addr: 4 or 16 bytes in network order, of the given family. */
int	cidr_match(const struct cidr *, int family, const void *addr);
/* Canonical text "ADDR/LEN" into buf (at least 50 bytes). */
const char *cidr_str(const struct cidr *, char *buf, size_t bufsz);
/*
 * 1 if s is "ADDR/LEN" with bits of ADDR set past LEN (203.0.113.7/3, a
 * typo of /32, which means all of 192.0.0.0/3), the prefix it means in
 * *net; 0 for an exact prefix, a bare address, or no prefix at all.
 */
int	cidr_host_bits(const char *s, struct cidr *net);

#endif
