/*
 * mx.h - the one MX walk: which hosts receive mail for domain D, their
 * addresses with their DNSSEC status, and which of them own the
 * destination address A.  The policy engine, DANE, `mxguard check` and
 * `mxguard policy` all see the same hosts in the same order through it.
 *
 *   1. MX of D.  NXDOMAIN or NODATA: the implicit MX, D itself
 *      (RFC 5321 section 5.1).  A null MX (RFC 7505, target "."): no host.
 *      A failed lookup (SERVFAIL, timeout, error): no host, the status and
 *      its Extended DNS Error are kept for the caller to judge.
 *   2. The hosts, duplicates dropped, sorted by (preference, name): a
 *      total order, so that equal preferences never depend on the order
 *      of the answer.
 *   3. A and/or AAAA of every host, in parallel: status, addresses, the
 *      name a secure CNAME chain expanded to, and whether A is among the
 *      addresses.  `owner` is the most preferred host owning A.
 *
 * The walk reports to its caller once, through its callback, always from
 * the event loop (never from inside mx_walk()), as dane_lookup() does; it
 * knows nothing of the engine.  The result belongs to the receiver of the
 * callback, who frees it with free(): it is one flat allocation.
 * mx_walk_cancel() stops a walk: no callback then.  mx_walk_peek() shows
 * the result so far, for a caller whose own deadline has passed.
 */
#ifndef MXG_MX_H
#define MXG_MX_H

#include <stdint.h>
#include <sys/socket.h>

#define MX_MAX_HOSTS	16
#define MX_MAX_ADDRS	8

/* which address families to look up */
#define MX_WALK_A	0x01
#define MX_WALK_AAAA	0x02

struct dns;

struct mx_host {
	char		 name[256];
	uint16_t	 pref;
	int		 st4, st6;	/* enum dns_status of A and AAAA, -1
					 * not asked or not answered yet */
	char		 expanded[256];	/* owner of the addresses when a
					 * secure CNAME chain led there, "" */
	int		 has_dst;	/* A is among its addresses */
	int		 naddr;
	struct sockaddr_storage addr[MX_MAX_ADDRS];	/* port 25 */
	int		 nmore;		/* addresses in the answers beyond
					 * MX_MAX_ADDRS, not kept (for
					 * mxguard check to say so) */
};

struct mx_result {
	char		 domain[256];	/* D, normalised */
	int		 status;	/* enum dns_status of the MX lookup,
					 * -1 not answered yet */
	int		 secure;	/* MX RRset, or its denial, validated */
	int		 ede;		/* Extended DNS Error of a failed MX
					 * lookup, -1 none */
	int		 implicit;	/* no MX records: D is its own host */
	int		 null_mx;	/* RFC 7505: D accepts no mail */
	int		 nhost;
	struct mx_host	 host[MX_MAX_HOSTS];
	int		 nunkept;	/* MX hosts of the answer not kept
					 * (beyond MX_MAX_HOSTS, or in
					 * records beyond DNS_MAX_RR): one of
					 * them may own A */
	int		 owner;		/* index of the most preferred host
					 * owning A, -1 none or no A (set
					 * when the walk reports) */
	int		 pending;	/* lookups not answered yet */
};

struct mx_walk;
typedef void mx_cb(void *arg, struct mx_result *);

/* domain as given (normalised here); dst = A or NULL; families: MX_WALK_*
 * (0: the MX lookup only).  NULL if the walk cannot start. */
struct mx_walk	*mx_walk(struct dns *, const char *domain,
		    const struct sockaddr *dst, int families, mx_cb *,
		    void *arg);
void		 mx_walk_cancel(struct mx_walk *);
const struct mx_result *mx_walk_peek(const struct mx_walk *);

/* For a walk without A (mxguard check): marks the hosts whose addresses
 * include dst (judged as netaddr_judged() says: 64:ff9b::G is G) and
 * sets owner; returns owner (-1: none). */
int		 mx_result_set_dst(struct mx_result *,
		    const struct sockaddr *dst);

/* The address lookup status of a host for one family (AF_INET,
 * AF_INET6). */
int		 mx_host_status(const struct mx_host *, int family);

/* Is this status a failure (SERVFAIL/bogus, timeout, error, local error,
 * or no answer yet: -1)? */
int		 mx_status_failed(int st);

/* Did this host's own resources fail the walk where it matters: the MX
 * lookup, or, with no host owning A, an address lookup (DNS_LOCAL)?
 * Then nothing it found says which hosts are D's: a caller defers as
 * its own trouble (local-error), not as the domain's failure. */
int		 mx_result_local(const struct mx_result *);

#endif
