/*
 * dns.h - asynchronous DNS on c-ares, driven by the event loop.
 *
 * c-ares (1.18) does not validate DNSSEC: every query goes out with EDNS0
 * and the AD bit set, and the AD bit of the answer tells whether the
 * (trusted, normally loopback) resolver validated it.  Every answer is
 * classified:
 *
 *   DNS_SECURE    records of the type asked, AD set on every link
 *   DNS_INSECURE  records, AD not set
 *   DNS_NXDOMAIN  the name does not exist (ad says if the denial is secure)
 *   DNS_NODATA    the name exists, no records of that type (same)
 *   DNS_SERVFAIL  SERVFAIL / REFUSED / bogus (a validating resolver answers
 *                 SERVFAIL for bogus data)
 *   DNS_TIMEOUT   no answer in time
 *   DNS_ERROR     anything else (malformed answer)
 *   DNS_LOCAL     not asked for want of this host's own resources: c-ares
 *                 could not open, connect or send on its socket (EMFILE,
 *                 ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL; EAGAIN on UDP)
 *                 while the query was out, or out of memory.  c-ares
 *                 reports such a query as refused, a server's answer; it
 *                 says nothing of the name, and callers defer it as
 *                 local-error, never as the domain's failure.  Also a
 *                 query whose resend after a timeout was not sent so
 *                 (c-ares ends it as timed out): the last try wins
 *
 * CNAME chains are followed (within one answer, and by new queries up to
 * DNS_MAX_CNAME links); the answer is secure only when every link is.  A
 * chain that goes on beyond that (a loop) is DNS_ERROR, never NODATA.
 * A name with a byte the parser cannot read back (anything but letters,
 * digits, '-', '_', '*' and dots) is never asked: DNS_ERROR.
 * Concurrent lookups of the same name and type share one query; answers
 * are cached for their TTL (negative answers for the SOA minimum, capped,
 * and no longer than the CNAME links that led to them).
 * Callbacks always run from the event loop, never from inside dns_query().
 */
#ifndef MXG_DNS_H
#define MXG_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "core/config.h"
#include "core/ev.h"

#define DNS_T_A		1
#define DNS_T_CNAME	5
#define DNS_T_SOA	6
#define DNS_T_MX	15
#define DNS_T_TXT	16
#define DNS_T_AAAA	28
#define DNS_T_DNSKEY	48
#define DNS_T_TLSA	52

#define DNS_MAX_CNAME	8
/* Sockets one resolver holds at once: c-ares asks one server (dns_new():
 * PRIMARY), over one UDP socket, and over TCP for a truncated answer. */
#define DNS_SOCKETS_MAX	2
#define DNS_MAX_RR	64	/* records kept per answer */
#define DNS_MAX_TLSA_RR	256	/* TLSA: a whole RRset of a rollover */

enum dns_status {
	DNS_SECURE,
	DNS_INSECURE,
	DNS_NXDOMAIN,
	DNS_NODATA,
	DNS_SERVFAIL,
	DNS_TIMEOUT,
	DNS_ERROR,
	DNS_LOCAL,
};

struct dns_rr {
	uint16_t	 type;
	uint32_t	 ttl;
	const unsigned char *rdata;	/* into dns_answer.raw */
	uint16_t	 rdlen;
	union {
		struct { uint16_t pref; char host[256]; } mx;
		struct in_addr	 a;
		struct in6_addr	 aaaa;
		struct { char *text; size_t len; } txt;	/* strings joined */
		struct { uint8_t usage, selector, mtype;
			 const unsigned char *data; size_t len; } tlsa;
		char		 cname[256];
	} u;
};

struct dns_answer {
	int		 refs;
	enum dns_status	 status;	/* of this one answer */
	int		 rcode;
	int		 ad;		/* AD bit of the response header */
	unsigned char	*raw;		/* the whole response, or NULL */
	int		 rawlen;
	uint16_t	 qtype;
	char		 qname[256];	/* as asked, lower case, no dot */
	char		 name[256];	/* owner of the records (after CNAMEs) */
	int		 cname_open;	/* chain ends without data here */
	uint32_t	 ttl;		/* cache lifetime, seconds */
	int		 nrr;
	int		 ndropped;	/* records of qtype over the bound,
					 * not kept */
	int		*cut_off;	/* the ndropped records' rdata
					 * offsets in raw (dns_txt_cut(),
					 * dns_rr_cut()) */
	struct dns_rr	 rr[];		/* nrr records of qtype */
};

struct dns;
struct dns_req;
/* st: the combined status (all CNAME links); a: the last answer (may be
 * NULL for DNS_TIMEOUT/DNS_ERROR), valid during the callback only unless
 * the receiver takes a reference.  A denial (NXDOMAIN, NODATA) reached
 * through a link without the AD bit comes with a->ad off. */
typedef void dns_cb(void *arg, enum dns_status st,
    const struct dns_answer *a);

struct dns	*dns_new(struct ev_loop *, const struct config *,
		    char *err, size_t errsz);
void		 dns_free(struct dns *);
/* The servers a resolver made from cfg knows, first first: at most max
 * into out, returning how many there are, or -1.  Only the first is ever
 * asked (dns_new()); an empty dns_servers is resolvconf's (NULL:
 * /etc/resolv.conf). */
struct dns_server {
	char		 text[64];	/* "addr", "addr:port", "[v6]:port" */
	int		 loopback;	/* 127/8 or ::1 */
};
int		 dns_servers_of(const struct config *, const char *resolvconf,
		    struct dns_server *out, int max);
struct dns_req	*dns_query(struct dns *, const char *name, int type,
		    dns_cb *, void *arg);
void		 dns_cancel(struct dns_req *);
void		 dns_cache_flush(struct dns *);

struct dns_answer *dns_answer_ref(const struct dns_answer *);
void		 dns_answer_unref(struct dns_answer *);
/* How many sockets the resolver could not open, connect or send on for
 * want of this host's descriptors, memory, buffers or ports, or that its
 * netfilter refused (EPERM), ever (*err: the last one's errno).  c-ares reports a query it could not send so as refused, like
 * a server's refusal: a count that moved while a query ran says its
 * failure may be this host's own. */
unsigned	 dns_local_failures(const struct dns *, int *err);
const char	*dns_status_name(enum dns_status);
const char	*dns_type_name(int type);

/* Bounded parser for one response (exposed for tests and fuzzing).
 * qname is what was asked.  Returns NULL only when out of memory; a
 * malformed message gives status DNS_ERROR. */
struct dns_answer *dns_parse(const unsigned char *buf, int len,
		    const char *qname, int qtype);

/* The text of TXT record j (0 <= j < a->ndropped) past the records a
 * keeps, its strings joined, in a buffer the caller frees, its length
 * in *len: for a reader that must judge the whole answer (an _mta-sts
 * record past the 64th makes the domain's record invalid).  NULL when
 * out of memory or the record is malformed. */
char		*dns_txt_cut(const struct dns_answer *a, int j, size_t *len);

/* The rdata of record j (0 <= j < a->ndropped) past the records a keeps,
 * its length in *rdlen, pointing into a->raw; NULL when there is no such
 * record.  Its length is the message's word: the caller checks it (an A
 * record of another length is no address). */
const unsigned char *dns_rr_cut(const struct dns_answer *a, int j,
		    uint16_t *rdlen);

/* Every TXT record of an answer, the kept ones and those past them
 * (dns_txt_cut()), for a reader that judges the whole answer: txt[i]
 * and len[i], 0 <= i < n, the kept ones first.  dns_txt_all() returns
 * -1 when out of memory or a record past the kept is malformed (the
 * answer cannot be judged: a failed lookup to the caller); either way
 * dns_txt_all_free() releases what it holds. */
struct dns_txt_all {
	const char	**txt;
	size_t		 *len;
	int		  n;
	char		**cut;		/* the texts read past the kept */
	int		  ncut;
};
int		 dns_txt_all(const struct dns_answer *a,
		    struct dns_txt_all *w);
void		 dns_txt_all_free(struct dns_txt_all *w);

/* Lower-cases, strips one trailing dot; -1 if empty or too long. */
int		 dns_name_norm(const char *in, char *out, size_t outsz);

#endif
