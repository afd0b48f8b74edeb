/*
 * dane.h - DANE for SMTP (RFC 7672) on top of the c-ares client (dns.h)
 * and OpenSSL's DANE API.
 *
 * dane_lookup() answers, for recipient domain D and destination address A,
 * whether DANE applies and how.  The MX hosts and their addresses come
 * from the MX walk (policy/mx.h), already resolved; DANE only looks up
 * and evaluates TLSA records, as Postfix's tls_dane.c does:
 *
 *   1. MX RRset of D.  Secure: D may serve as a reference identifier.
 *      Insecure: DANE may still apply to an MX host in a signed zone
 *      (RFC 7672 section 2.2.1), but D is then never a reference
 *      identifier.  No MX (NXDOMAIN/NODATA): D itself is the host.
 *      Lookup failure: DANE_DEFER (dnssec-invalid), whether or not the
 *      resolver says it is a DNSSEC failure (Extended DNS Error 5..12,
 *      named in the detail): nothing shows that D is unsigned, and an
 *      attacker who breaks the query must not turn DANE off.
 *   2. The host H that owns A (of several, the most preferred with
 *      secure addresses).  DANE applies only when H's address
 *      records are secure; with a secure MX RRset, an insecure H while
 *      another host's address lookup failed (it may own A):
 *      DANE_DEFER (dnssec-invalid, local-error for DNS_LOCAL).  If A
 *      belongs to no MX host while the MX RRset
 *      is secure: TLSA of every MX host with secure addresses or none of
 *      A's family (at a CNAME host's expanded name, then its own); some host
 *      publishes TLSA records: DANE_DEFER (validation-failure); else a
 *      lookup that could have shown TLSA records failed (the address
 *      lookup of a host, which might own A, or a TLSA lookup): DANE_DEFER
 *      (dnssec-invalid).  In a signed zone DNS failures never fall back.
 *   3. TLSA at _25._tcp.H.  When H is a secure CNAME alias, the fully
 *      expanded name E is tried first, then H (RFC 7672 section 2.2.2).
 *      CNAMEs of the TLSA owner itself are followed by dns.c; the result
 *      is secure only when every link is.
 *        secure, usable records (usage 2 or 3)  -> DANE_USABLE
 *        secure, only unusable records           -> DANE_UNUSABLE
 *                                                   (TLS mandatory,
 *                                                   unauthenticated)
 *        secure, over DANE_MAX_TLSA records,     -> DANE_DEFER
 *          none of those kept usable                (tlsa-invalid)
 *        insecure records, NXDOMAIN, NODATA      -> DANE_NONE
 *        SERVFAIL (bogus), timeout, error        -> DANE_DEFER
 *                                                   (dnssec-invalid)
 *
 * The result (struct dane_info) is owned by the receiver of the callback
 * and freed with dane_info_free().  Callbacks always come from the event
 * loop, never from inside dane_lookup().
 *
 * dane_tls_prepare() loads the usable records into an SSL object
 * (SSL_dane_enable with the TLSA base domain, SNI, name checks for
 * DANE-TA against H, the expanded name and, with a secure MX RRset, D; no
 * name checks for DANE-EE); dane_tls_check() judges the finished
 * handshake.  OpenSSL does all matching.
 */
#ifndef MXG_DANE_H
#define MXG_DANE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#define DANE_MAX_MX	16
/* TLSA records kept of one RRset: a rollover's whole RRset (current and
 * next keys of many MX hosts sharing it), bounded against a hostile 64 KB
 * answer; the DNS layer keeps as many (DNS_MAX_TLSA_RR).  Records over it
 * are dropped with a warning, never to a weaker verdict: DANE_USABLE on
 * the kept ones, DANE_DEFER when none of them is usable. */
#define DANE_MAX_TLSA	256
#define DANE_MAX_NAMES	3

struct dns;
struct ev_loop;
struct mx_result;

enum dane_state {
	DANE_NONE,	/* DANE does not apply: next policy source decides */
	DANE_USABLE,	/* authenticate with the usable TLSA records */
	DANE_UNUSABLE,	/* TLSA published, none usable: TLS mandatory */
	DANE_DEFER,	/* do not deliver now (reason, detail) */
};

struct dane_tlsa {
	uint8_t		 usage, selector, mtype;
	int		 usable;	/* by dane_tlsa_usable() */
	size_t		 len;
	unsigned char	*data;
};

struct dane_mx {
	uint16_t	 pref;
	char		 host[256];
	int		 addr_status;	/* enum dns_status of A/AAAA, -1 none */
	int		 has_dst;	/* A is among its addresses */
};

struct dane_info {
	enum dane_state	 state;
	char		 domain[256];	/* D, normalised */
	int		 mx_status;	/* enum dns_status of the MX lookup */
	int		 mx_ede;	/* its Extended DNS Error, -1 none */
	int		 tlsa_ede;	/* the TLSA lookup's, -1 none */
	int		 mx_secure;	/* MX RRset (or its denial) secure */
	int		 implicit_mx;	/* no MX: D is the host */
	int		 nmx;
	struct dane_mx	 mx[DANE_MAX_MX];
	char		 mx_host[256];	/* H owning A, "" if none */
	int		 addr_secure;	/* H's A/AAAA secure */
	char		 tlsa_base[256]; /* name the TLSA records are for */
	int		 tlsa_status;	/* enum dns_status, -1 not asked */
	int		 ntlsa;
	int		 nusable;
	int		 tlsa_dropped;	/* records over DANE_MAX_TLSA */
	struct dane_tlsa *tlsa;		/* ntlsa records, allocated per
					 * RRset (NULL: none) */
	int		 nnames;	/* reference identifiers for DANE-TA */
	char		 names[DANE_MAX_NAMES][256];
	unsigned char	 digest[32];	/* SHA-256 of the TLSA RRset */
	char		 reason[48];	/* RFC 8460 result type (DEFER), or
					 * DANE_LOCAL_ERROR */
	int		 local;		/* DEFER for want of this host's own
					 * resources (a lookup c-ares could
					 * not send: DNS_LOCAL; out of
					 * memory): nothing of the domain */
	char		 detail[256];	/* human words: why this state */
};

#define DANE_LOCAL_ERROR	"local-error"

struct dane_req;
typedef void dane_cb(void *arg, struct dane_info *);

/* mx: the finished MX walk of D for A's address family (dane_lookup
 * copies what it needs); dst = A. */
struct dane_req	*dane_lookup(struct ev_loop *, struct dns *,
		    const struct mx_result *mx, const struct sockaddr *dst,
		    dane_cb *, void *arg);
void		 dane_cancel(struct dane_req *);
void		 dane_info_free(struct dane_info *);
struct dane_info *dane_info_dup(const struct dane_info *);
const char	*dane_state_name(enum dane_state);

/*
 * One TLSA record: 1 usable by RFC 7672 (usage 2 or 3, selector 0 or 1,
 * matching type 0 with a parsable certificate or public key, 1 with 32
 * bytes, 2 with 64 bytes), 0 unusable.
 */
int		 dane_tlsa_usable(uint8_t usage, uint8_t selector,
		    uint8_t mtype, const unsigned char *data, size_t len);
/* Parses TLSA rdata (wire format); 0, -1 if shorter than 4 bytes (a
 * malformed record: unusable), -2 out of memory. */
int		 dane_tlsa_parse(const unsigned char *rdata, size_t rdlen,
		    struct dane_tlsa *out);
/* SHA-256 over the records in canonical (sorted) order. */
void		 dane_tlsa_digest(const struct dane_tlsa *, int n,
		    unsigned char out[32]);
/*
 * The first Extended DNS Error (RFC 8914) INFO-CODE in a DNS response, or
 * -1 when there is none (bounded parser, fuzzed).  dane_ede_dnssec(): is
 * that code a DNSSEC validation failure (5..12: indeterminate, bogus,
 * signature expired / not yet valid, DNSKEY, RRSIGs, zone key bit, NSEC
 * missing)?
 */
int		 dane_ede(const unsigned char *msg, size_t len);
int		 dane_ede_dnssec(int code);
/* "3 1 1 abcd..." (data hex, truncated to fit). */
void		 dane_tlsa_format(const struct dane_tlsa *, char *buf,
		    size_t sz);

/* Before the handshake: 0, or -1 (no usable record could be loaded).
 * Only DANE_USABLE sets up DANE; the other states set SNI to H. */
int		 dane_tls_prepare(const struct dane_info *, SSL *ssl);
/* After it: 0 if DANE authenticated the server (reason "success"), else
 * -1 with an RFC 8460 result type and a human detail (also for
 * information of any state but DANE_USABLE: nothing authenticated).
 * not_after (may be NULL), on success: until when the authentication
 * holds, policy_chain_not_after() of the chain a DANE-TA record
 * verified; 0 for a DANE-EE match, whose validity is not judged. */
int		 dane_tls_check(const struct dane_info *, SSL *ssl,
		    char *reason, size_t reasonsz, char *detail,
		    size_t detailsz, int64_t *not_after);

/*
 * The policy engine's view: fills level, source, mx_host, reason and
 * detail of v for DANE_USABLE (TLS_LEVEL_DANE), DANE_UNUSABLE
 * (TLS_LEVEL_ENCRYPT) and DANE_DEFER (TLS_LEVEL_DEFER) and returns 1;
 * for DANE_NONE fills only mx_host (when known) and returns 0: the next
 * policy source decides.
 */
struct policy_verdict;
int		 dane_apply(const struct dane_info *, struct policy_verdict *v);

#endif
