/*
 * dns.c - asynchronous DNS on c-ares and the event loop (see dns.h).
 *
 * c-ares tells us which sockets it wants watched through the sock-state
 * callback; we register them with ev_fd_set() and call ares_process_fd()
 * when they fire.  One timer, a tick while queries are under way
 * (TICK_MS), has c-ares process the tries that timed out.  Queries are built
 * with ares_create_query() (EDNS0, 1232-byte payload) and the AD bit set
 * in the header by hand, then sent with ares_send(), which returns the raw
 * response: we parse it ourselves, with bounds checks everywhere, because
 * we need the AD bit, the rcode, CNAME chains and TLSA records, which the
 * ares_parse_*_reply() helpers do not give.
 *
 * Results reach the waiters through a zero-delay timer each, so a waiter
 * callback never runs inside c-ares and may query or cancel freely.
 *
 * c-ares makes its sockets through our functions (sock_funcs), only to
 * count those it could not open or send on for want of this host's
 * descriptors, memory or buffers: it reports such a query as refused, as a server's refusal, and
 * the engine must not take that for the domain's answer
 * (dns_local_failures()).
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ares.h>

#include "core/log.h"
#include "policy/dns.h"

#define CACHE_BUCKETS	1024
#define CACHE_MAX	20000
/* Entries alone do not bound the memory: an answer keeps its message
 * (up to 64 KB over TCP) and up to DNS_MAX_RR parsed records (288 bytes
 * each; DNS_MAX_TLSA_RR for TLSA), so 20,000 of an attacker's answers
 * (the MX, A, AAAA and TLSA of the hosts in MX records it writes) could
 * hold gigabytes.  Answers are
 * counted by their size as well; 20,000 ordinary answers (one record,
 * about 1.2 KB each) fit. */
#define CACHE_MAX_BYTES	(32 * 1024 * 1024)
/* Queries under way, by name and type (the cache's hash): a new query
 * finds the one it shares, and an answer takes its query off, in O(1),
 * not in a walk of every query under way. */
#define PEND_BUCKETS	CACHE_BUCKETS
/* While queries are under way, c-ares processes the tries that timed out
 * this often (ares_process_fd() without a socket: its table of timeouts
 * by second, O(those due)).  Not ares_timeout() after each query sent and
 * each socket event, to arm a timer for the earliest: c-ares 1.18 walks
 * every query under way there.  With n under way each query cost O(n),
 * and whoever writes the names the gateway asks (an MX RRset of fresh
 * host names at each answer) and keeps their answers back held n up:
 * 20,000 under way took 4.3 s of CPU to send, 40,000 29 s.  A try times
 * out at most this late. */
#define TICK_MS		25
#define TTL_MAX		86400
#define NEG_TTL_MAX	3600
#define NEG_TTL_DEF	60

struct pend;

struct dns_req {
	struct dns	*dns;
	dns_cb		*cb;
	void		*arg;
	int		 type;
	int		 hops;
	int		 all_ad;
	char		 cur[256];
	struct pend	*pend;
	struct dns_req	*pnext;
	struct ev_timer	*t;
	struct dns_answer *ans;
	enum dns_status	 fail;		/* when ans is NULL */
};

struct pend {
	struct pend	*next, **prevp;	/* dns.pend[] bucket */
	struct dns	*dns;
	char		 name[256];
	int		 type;
	struct dns_req	*waiters;
	unsigned	 nlocal0;	/* dns.nlocal when it was sent */
};

struct centry {
	struct centry	*next;
	char		 name[256];
	int		 type;
	uint64_t	 expires;	/* ev_boot_now() ms: a suspend
					 * counts towards the TTL */
	size_t		 bytes;		/* counted in dns.cache_bytes */
	struct dns_answer *ans;
};

struct dns {
	struct ev_loop	*loop;
	ares_channel	 ch;
	int		 ch_ok;
	struct ev_timer	*tmo;
	struct pend	*pend[PEND_BUCKETS];
	unsigned	 npend;		/* queries under way (c-ares's) */
	struct centry	*cache[CACHE_BUCKETS];
	int		 ncache;
	size_t		 cache_bytes;	/* memory the entries hold */
	int		 dying;
	/* sockets c-ares could not open, connect or send on for want of
	 * this host's descriptors, memory, buffers or ports, and queries
	 * out of memory (dns_local_failures()): c-ares reports such a
	 * query as refused, a server's answer (DNS_LOCAL) */
	unsigned	 nlocal;
	int		 local_errno;
	int		 tries;		/* c-ares's tries of a query */
};

static const char *status_names[] = {
	"secure", "insecure", "nxdomain", "nodata", "servfail", "timeout",
	"error", "local-error",
};

const char *
dns_status_name(enum dns_status s)
{
	return (unsigned)s < sizeof(status_names) / sizeof(status_names[0]) ?
	    status_names[s] : "?";
}

const char *
dns_type_name(int t)
{
	switch (t) {
	case DNS_T_A:		return "A";
	case DNS_T_AAAA:	return "AAAA";
	case DNS_T_MX:		return "MX";
	case DNS_T_TXT:		return "TXT";
	case DNS_T_TLSA:	return "TLSA";
	case DNS_T_CNAME:	return "CNAME";
	case DNS_T_DNSKEY:	return "DNSKEY";
	default:		return "?";
	}
}

int
dns_name_norm(const char *in, char *out, size_t outsz)
{
	size_t i, n = strlen(in);

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n >= outsz || n > 253)
		return -1;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[n] = '\0';
	return 0;
}

/* ---- the parser ---- */

static uint16_t
get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/*
 * Reads a possibly compressed name at *off; writes it lower case without
 * the final dot ("" for the root) and moves *off past it.  Bytes that
 * cannot be in a host name become '?', so they never match one.
 */
static int
read_name(const unsigned char *buf, int len, int *off, char *out,
    size_t outsz)
{
	int p = *off, jumps = 0, end = -1;
	size_t o = 0;

	for (;;) {
		unsigned c;

		if (p < 0 || p >= len)
			return -1;
		c = buf[p];
		if (c == 0) {
			p++;
			break;
		}
		if ((c & 0xc0) == 0xc0) {
			if (p + 1 >= len || ++jumps > 64)
				return -1;
			if (end == -1)
				end = p + 2;
			p = (int)((c & 0x3f) << 8 | buf[p + 1]);
			continue;
		}
		if (c & 0xc0)
			return -1;
		if (p + 1 + (int)c > len)
			return -1;
		if (o + c + 2 > outsz)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (unsigned i = 0; i < c; i++) {
			unsigned char ch = buf[p + 1 + i];

			/* a name is a log token and a host name here:
			 * anything but letters, digits, '-', '_' and '*'
			 * (quotes, '=', spaces, dots inside a label) is
			 * replaced, so no answer can forge log fields */
			if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '*')
				ch = '?';
			out[o++] = (char)tolower(ch);
		}
		p += 1 + (int)c;
	}
	out[o] = '\0';
	*off = end == -1 ? p : end;
	return 0;
}

struct rawrr {
	char	 name[256];
	uint16_t type;
	uint32_t ttl;
	int	 rdoff;
	uint16_t rdlen;
};

static struct dns_answer *
answer_new(int nrr)
{
	struct dns_answer *a;

	a = calloc(1, sizeof(*a) + (size_t)nrr * sizeof(struct dns_rr));
	if (a != NULL)
		a->refs = 1;
	return a;
}

/* A TXT record's strings joined, NUL-terminated (malloc'd); NULL with
 * errno ENOMEM out of memory, EBADMSG when a string runs past the
 * rdata. */
static char *
txt_join(const unsigned char *p, size_t rdlen, size_t *len)
{
	size_t i = 0, o = 0;
	char *t;

	if ((t = malloc(rdlen + 1)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	while (i < rdlen) {
		size_t l = p[i++];

		if (i + l > rdlen) {
			free(t);
			errno = EBADMSG;
			return NULL;
		}
		memcpy(t + o, p + i, l);
		o += l;
		i += l;
	}
	t[o] = '\0';
	*len = o;
	return t;
}

char *
dns_txt_cut(const struct dns_answer *a, int j, size_t *len)
{
	int off;

	if (a == NULL || a->qtype != DNS_T_TXT || a->cut_off == NULL ||
	    j < 0 || j >= a->ndropped)
		return NULL;
	off = a->cut_off[j];
	return txt_join(a->raw + off, get16(a->raw + off - 2), len);
}

const unsigned char *
dns_rr_cut(const struct dns_answer *a, int j, uint16_t *rdlen)
{
	int off;

	if (a == NULL || a->cut_off == NULL || j < 0 || j >= a->ndropped)
		return NULL;
	off = a->cut_off[j];
	*rdlen = get16(a->raw + off - 2);
	return a->raw + off;
}

int
dns_txt_all(const struct dns_answer *a, struct dns_txt_all *w)
{
	size_t n = (size_t)a->nrr + (size_t)a->ndropped;
	int i, j;

	memset(w, 0, sizeof(*w));
	/* one more than needed: an empty answer allocates all the same */
	if ((w->txt = calloc(n + 1, sizeof(*w->txt))) == NULL ||
	    (w->len = calloc(n + 1, sizeof(*w->len))) == NULL ||
	    (w->cut = calloc((size_t)a->ndropped + 1,
	    sizeof(*w->cut))) == NULL)
		return -1;
	for (i = 0; i < a->nrr; i++) {
		w->txt[i] = a->rr[i].u.txt.text;
		w->len[i] = a->rr[i].u.txt.len;
	}
	for (j = 0; j < a->ndropped; j++) {
		if ((w->cut[j] = dns_txt_cut(a, j, &w->len[i + j])) == NULL)
			return -1;
		w->txt[i + j] = w->cut[j];
		w->ncut++;
	}
	w->n = i + j;
	return 0;
}

void
dns_txt_all_free(struct dns_txt_all *w)
{
	while (w->cut != NULL && w->ncut > 0)
		free(w->cut[--w->ncut]);
	free(w->cut);
	free(w->len);
	free(w->txt);
	memset(w, 0, sizeof(*w));
}

/* 0, or -1 for rdata that is not what its type says, -2 out of memory. */
static int
parse_rdata(struct dns_answer *a, struct dns_rr *rr, int rdoff)
{
	const unsigned char *p = rr->rdata;
	int off;

	switch (rr->type) {
	case DNS_T_A:
		if (rr->rdlen != 4)
			return -1;
		memcpy(&rr->u.a, p, 4);
		break;
	case DNS_T_AAAA:
		if (rr->rdlen != 16)
			return -1;
		memcpy(&rr->u.aaaa, p, 16);
		break;
	case DNS_T_MX:
		if (rr->rdlen < 3)
			return -1;
		rr->u.mx.pref = get16(p);
		off = rdoff + 2;
		if (read_name(a->raw, a->rawlen, &off, rr->u.mx.host,
		    sizeof(rr->u.mx.host)) == -1 || off > rdoff + rr->rdlen)
			return -1;
		break;
	case DNS_T_CNAME:
		off = rdoff;
		if (read_name(a->raw, a->rawlen, &off, rr->u.cname,
		    sizeof(rr->u.cname)) == -1 || off > rdoff + rr->rdlen)
			return -1;
		break;
	case DNS_T_TXT:
		if ((rr->u.txt.text = txt_join(p, rr->rdlen,
		    &rr->u.txt.len)) == NULL)
			return errno == ENOMEM ? -2 : -1;
		break;
	case DNS_T_TLSA:
		/* no room for usage, selector and matching type: a record
		 * of the RRset all the same, unusable (RFC 7672 section
		 * 2.2, RFC 7671 section 4.1), which dane.c skips; failing
		 * the answer would make a signed RRset, usable records and
		 * all, a lookup failure (dnssec-invalid) */
		if (rr->rdlen < 3)
			break;
		rr->u.tlsa.usage = p[0];
		rr->u.tlsa.selector = p[1];
		rr->u.tlsa.mtype = p[2];
		rr->u.tlsa.data = p + 3;
		rr->u.tlsa.len = rr->rdlen - 3u;
		break;
	default:
		break;
	}
	return 0;
}

/* A query name: dns_name_norm(), except that "." (the root, asked for its
 * DNSKEY by policy/dnscheck.c) becomes "", which is how read_name() and
 * ares_create_query() spell the root.  Domains stay refused as ".". */
static int
qname_norm(const char *in, char *out, size_t outsz)
{
	if (strcmp(in, ".") == 0 || (*in == '\0' && outsz > 0)) {
		out[0] = '\0';
		return 0;
	}
	return dns_name_norm(in, out, outsz);
}

/*
 * A denial's cache lifetime: the SOA's negative TTL, at most NEG_TTL_MAX,
 * and never beyond the CNAME links followed to it (chain_ttl, TTL_MAX
 * when none): a link its owner replaced, or whose RRSIG ran out (a
 * validating resolver caps a TTL there), must not stay in use after its
 * TTL because the zone at its end has a long SOA minimum.
 */
static uint32_t
neg_ttl(uint32_t negttl, uint32_t chain_ttl)
{
	uint32_t t = negttl < NEG_TTL_MAX ? negttl : NEG_TTL_MAX;

	return chain_ttl < t ? chain_ttl : t;
}

struct dns_answer *
dns_parse(const unsigned char *buf, int len, const char *qname, int qtype)
{
	struct dns_answer *a = NULL;
	struct rawrr *rrs = NULL;
	int off, i, qd, an, ns, nrrs = 0, nmatch = 0, hops, keep, cut, prc;
	char cur[256], tmp[256];
	uint32_t minttl = TTL_MAX, negttl = NEG_TTL_DEF;
	int have_soa = 0;

	if (len < 12 || len > 65535)
		goto malformed;
	qd = get16(buf + 4);
	an = get16(buf + 6);
	ns = get16(buf + 8);
	if (qd > 1 || an + ns > 1024)
		goto malformed;
	off = 12;
	for (i = 0; i < qd; i++) {
		if (read_name(buf, len, &off, tmp, sizeof(tmp)) == -1 ||
		    off + 4 > len)
			goto malformed;
		off += 4;
	}
	if ((rrs = calloc((size_t)(an + ns) + 1, sizeof(*rrs))) == NULL)
		return NULL;
	for (i = 0; i < an + ns; i++) {
		struct rawrr *r = &rrs[nrrs];

		if (read_name(buf, len, &off, r->name, sizeof(r->name)) == -1 ||
		    off + 10 > len)
			goto malformed;
		r->type = get16(buf + off);
		r->ttl = get32(buf + off + 4);
		if (r->ttl > 0x7fffffff)
			r->ttl = 0;
		r->rdlen = get16(buf + off + 8);
		off += 10;
		if (off + r->rdlen > len)
			goto malformed;
		r->rdoff = off;
		off += r->rdlen;
		if (get16(buf + off - r->rdlen - 8) != 1)	/* class IN */
			continue;
		if (i >= an) {		/* authority: SOA for negative TTL */
			if (r->type == DNS_T_SOA && !have_soa) {
				int o2 = r->rdoff;
				char n1[256];

				if (read_name(buf, len, &o2, n1, sizeof(n1)) ||
				    read_name(buf, len, &o2, n1, sizeof(n1)) ||
				    o2 + 20 > r->rdoff + r->rdlen)
					continue;
				negttl = get32(buf + o2 + 16);
				if (r->ttl < negttl)
					negttl = r->ttl;
				have_soa = 1;
			}
			continue;
		}
		nrrs++;
	}
	if (qname_norm(qname, cur, sizeof(cur)) == -1)
		goto malformed;
	/* follow the CNAME chain inside the answer */
	for (hops = 0; hops <= DNS_MAX_CNAME; hops++) {
		int found = 0, cn = -1;

		for (i = 0; i < nrrs; i++) {
			if (strcmp(rrs[i].name, cur) != 0)
				continue;
			if (rrs[i].type == qtype)
				found++;
			else if (rrs[i].type == DNS_T_CNAME && cn == -1)
				cn = i;
		}
		if (found || cn == -1 || qtype == DNS_T_CNAME) {
			nmatch = found;
			break;
		}
		/* a CNAME link */
		{
			int o2 = rrs[cn].rdoff;

			if (rrs[cn].ttl < minttl)
				minttl = rrs[cn].ttl;
			if (read_name(buf, len, &o2, tmp, sizeof(tmp)) == -1 ||
			    o2 > rrs[cn].rdoff + rrs[cn].rdlen || tmp[0] == 0)
				goto malformed;
			memcpy(cur, tmp, sizeof(cur));
		}
	}
	/* links left when the hops ran out (a loop, or a long chain): the
	 * chain is open, for req_fire() to follow or to fail */
	cut = hops > DNS_MAX_CNAME;
	keep = qtype == DNS_T_TLSA ? DNS_MAX_TLSA_RR : DNS_MAX_RR;
	if ((a = answer_new(nmatch < keep ? nmatch : keep)) == NULL)
		goto oom;
	if (nmatch > keep) {
		a->ndropped = nmatch - keep;
		nmatch = keep;
	}
	if ((a->raw = malloc((size_t)len)) == NULL)
		goto oom;
	memcpy(a->raw, buf, (size_t)len);
	a->rawlen = len;
	a->qtype = (uint16_t)qtype;
	qname_norm(qname, a->qname, sizeof(a->qname));
	memcpy(a->name, cur, sizeof(a->name));
	a->rcode = buf[3] & 0x0f;
	a->ad = (buf[3] & 0x20) != 0;
	for (i = 0; i < nrrs && a->nrr < nmatch; i++) {
		struct dns_rr *rr = &a->rr[a->nrr];

		if (rrs[i].type != qtype || strcmp(rrs[i].name, cur) != 0)
			continue;
		rr->type = rrs[i].type;
		rr->ttl = rrs[i].ttl;
		rr->rdata = a->raw + rrs[i].rdoff;
		rr->rdlen = rrs[i].rdlen;
		a->nrr++;
		if ((prc = parse_rdata(a, rr, rrs[i].rdoff)) != 0) {
			a->nrr--;
			memset(rr, 0, sizeof(*rr));
			/* no memory to read a record says nothing of the
			 * server's answer (ares_done(): DNS_LOCAL) */
			if (prc == -2)
				goto oom;
			goto malformed_a;
		}
		if (rr->ttl < minttl)
			minttl = rr->ttl;
	}
	/* where the records past the kept are: a reader that must judge
	 * the whole answer reads them (dns_txt_cut(), dns_rr_cut(): an
	 * address of a host's RRset past the 64th is its address all the
	 * same, mx.c) */
	if (a->ndropped > 0) {
		int j = 0;

		if ((a->cut_off = calloc((size_t)a->ndropped,
		    sizeof(*a->cut_off))) == NULL)
			goto oom;
		for (; i < nrrs && j < a->ndropped; i++)
			if (rrs[i].type == qtype &&
			    strcmp(rrs[i].name, cur) == 0)
				a->cut_off[j++] = rrs[i].rdoff;
		if (j != a->ndropped)
			goto oom;	/* cannot be: counted alike */
	}
	switch (a->rcode) {
	case 0:
		if (a->nrr > 0) {
			a->status = a->ad ? DNS_SECURE : DNS_INSECURE;
			a->ttl = minttl;
		} else {
			a->status = DNS_NODATA;
			a->cname_open = cut || strcmp(cur, a->qname) != 0;
			a->ttl = neg_ttl(negttl, minttl);
		}
		break;
	case 3:
		a->status = DNS_NXDOMAIN;
		a->ttl = neg_ttl(negttl, minttl);
		break;
	case 2:
	case 5:
		a->status = DNS_SERVFAIL;
		break;
	default:
		a->status = DNS_ERROR;
		break;
	}
	free(rrs);
	return a;
malformed_a:
	a->status = DNS_ERROR;
	a->ttl = 0;
	free(rrs);
	return a;
malformed:
	free(rrs);
	if ((a = answer_new(0)) == NULL)
		return NULL;
	a->status = DNS_ERROR;
	a->qtype = (uint16_t)qtype;
	if (qname_norm(qname, a->qname, sizeof(a->qname)) == -1)
		a->qname[0] = '\0';
	memcpy(a->name, a->qname, sizeof(a->name));
	return a;
oom:
	free(rrs);
	dns_answer_unref(a);
	return NULL;
}

struct dns_answer *
dns_answer_ref(const struct dns_answer *ca)
{
	struct dns_answer *a = (struct dns_answer *)ca;

	if (a != NULL)
		a->refs++;
	return a;
}

void
dns_answer_unref(struct dns_answer *a)
{
	int i;

	if (a == NULL || --a->refs > 0)
		return;
	if (a->qtype == DNS_T_TXT)
		for (i = 0; i < a->nrr; i++)
			free(a->rr[i].u.txt.text);
	free(a->cut_off);
	free(a->raw);
	free(a);
}

/* A negative answer (no records) as a, AD bit off; NULL out of memory. */
static struct dns_answer *
answer_unsigned_copy(const struct dns_answer *a)
{
	struct dns_answer *c;

	if (a->nrr != 0 || (c = answer_new(0)) == NULL)
		return NULL;
	c->status = a->status;
	c->rcode = a->rcode;
	c->qtype = a->qtype;
	memcpy(c->qname, a->qname, sizeof(c->qname));
	memcpy(c->name, a->name, sizeof(c->name));
	c->cname_open = a->cname_open;
	c->ttl = a->ttl;
	c->ndropped = a->ndropped;
	if (a->raw != NULL && a->rawlen > 0) {
		if ((c->raw = malloc((size_t)a->rawlen)) == NULL) {
			free(c);
			return NULL;
		}
		memcpy(c->raw, a->raw, (size_t)a->rawlen);
		c->rawlen = a->rawlen;
	}
	return c;
}

/* ---- cache ---- */

static unsigned
hash(const char *name, int type)
{
	unsigned h = 5381u + (unsigned)type;

	while (*name)
		h = h * 33u ^ (unsigned char)*name++;
	return h % CACHE_BUCKETS;
}

static struct dns_answer *
cache_find(struct dns *d, const char *name, int type)
{
	struct centry **pp = &d->cache[hash(name, type)], *e;
	uint64_t now = ev_boot_now(d->loop);

	while ((e = *pp) != NULL) {
		if (e->expires <= now) {
			*pp = e->next;
			d->cache_bytes -= e->bytes;
			dns_answer_unref(e->ans);
			free(e);
			d->ncache--;
			continue;
		}
		if (e->type == type && strcmp(e->name, name) == 0)
			return e->ans;
		pp = &e->next;
	}
	return NULL;
}

void
dns_cache_flush(struct dns *d)
{
	int i;

	for (i = 0; i < CACHE_BUCKETS; i++) {
		struct centry *e, *n;

		for (e = d->cache[i]; e != NULL; e = n) {
			n = e->next;
			dns_answer_unref(e->ans);
			free(e);
		}
		d->cache[i] = NULL;
	}
	d->ncache = 0;
	d->cache_bytes = 0;
}

/* What an answer holds in memory. */
static size_t
answer_bytes(const struct dns_answer *a)
{
	size_t n = sizeof(struct centry) + sizeof(*a) +
	    (size_t)a->nrr * sizeof(a->rr[0]) + (size_t)a->rawlen;
	int i;

	if (a->qtype == DNS_T_TXT)
		for (i = 0; i < a->nrr; i++)
			n += a->rr[i].u.txt.len + 1;
	if (a->cut_off != NULL)
		n += (size_t)a->ndropped * sizeof(a->cut_off[0]);
	return n;
}

static void
cache_put(struct dns *d, const char *name, int type, struct dns_answer *a)
{
	struct centry *e;
	size_t bytes = answer_bytes(a);
	unsigned h;

	if (a->ttl == 0)
		return;
	if (d->ncache >= CACHE_MAX ||
	    d->cache_bytes + bytes > CACHE_MAX_BYTES)
		dns_cache_flush(d);
	if (cache_find(d, name, type) != NULL)
		return;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return;
	h = hash(name, type);
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->type = type;
	e->expires = ev_boot_now(d->loop) + (uint64_t)a->ttl * 1000;
	e->bytes = bytes;
	e->ans = dns_answer_ref(a);
	e->next = d->cache[h];
	d->cache[h] = e;
	d->ncache++;
	d->cache_bytes += bytes;
}

/* ---- c-ares glue ---- */

/* The tick (TICK_MS) runs while queries are under way. */
static void
update_timer(struct dns *d)
{
	if (!d->ch_ok)
		return;
	if (d->npend == 0)
		ev_timer_stop(d->tmo);
	else if (!ev_timer_pending(d->tmo))
		ev_timer_arm(d->tmo, TICK_MS);
}

static void
fd_cb(int fd, int events, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->ch,
	    events & (EV_READ | EV_ERROR) ? fd : ARES_SOCKET_BAD,
	    events & EV_WRITE ? fd : ARES_SOCKET_BAD);
	update_timer(d);
}

static void
tmo_cb(void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	update_timer(d);
}

static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	int ev = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	if (ev == 0)
		ev_fd_del(d->loop, fd);
	else if (ev_fd_set(d->loop, fd, ev, fd_cb, d) == -1)
		log_warn("event=dns-error what=ev_fd_set fd=%d", fd);
}

static void
ares_done(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct pend *p = arg;
	struct dns *d = p->dns;
	struct dns_answer *a = NULL;
	struct dns_req *w, *wn;
	enum dns_status fail = DNS_ERROR;

	if ((*p->prevp = p->next) != NULL)
		p->next->prevp = p->prevp;
	d->npend--;
	if (status == ARES_SUCCESS && abuf != NULL) {
		/* NULL: no memory to read the server's answer.  This host's
		 * trouble, counted as such (dns_local_failures()), not the
		 * server's DNS_ERROR: the engine defers a lookup that could
		 * not learn the domain's _mta-sts record for want of its own
		 * resources, where a failed lookup with nothing cached is no
		 * policy (docs/policy.md) */
		if ((a = dns_parse(abuf, alen, p->name, p->type)) == NULL) {
			d->nlocal++;
			d->local_errno = ENOMEM;
			fail = DNS_LOCAL;
		}
	} else if (status == ARES_ETIMEOUT && timeouts < d->tries &&
	    d->nlocal != p->nlocal0)
		/* a try that did not time out, while this host could not
		 * open or send on a socket: the resend after a timeout that
		 * c-ares could not make, which it ends with the first try's
		 * status.  A try never sent says nothing of the server */
		fail = DNS_LOCAL;
	else if (status == ARES_ETIMEOUT)
		fail = DNS_TIMEOUT;
	else if (status == ARES_ENOMEM) {
		d->nlocal++;
		d->local_errno = ENOMEM;
		fail = DNS_LOCAL;
	} else if (status == ARES_ECONNREFUSED && d->nlocal != p->nlocal0)
		/* not sent: a socket this host could not open or send on
		 * while the query was out (sf_socket() and the rest), which
		 * c-ares reports as the server's refusal */
		fail = DNS_LOCAL;
	else if (status == ARES_ESERVFAIL || status == ARES_EREFUSED ||
	    status == ARES_ECONNREFUSED)
		fail = DNS_SERVFAIL;
	else if (status == ARES_ENOTFOUND)
		fail = DNS_NXDOMAIN;
	else if (status == ARES_ENODATA)
		fail = DNS_NODATA;
	{
		char qn[512], qe[128];

		log_debug("event=dns-answer name=%s type=%s status=%s ares=%s",
		    log_q(qn, sizeof(qn), p->name), dns_type_name(p->type),
		    a ? dns_status_name(a->status) : dns_status_name(fail),
		    log_q(qe, sizeof(qe), ares_strerror(status)));
	}
	if (a != NULL && !d->dying && (a->status == DNS_SECURE ||
	    a->status == DNS_INSECURE || a->status == DNS_NXDOMAIN ||
	    a->status == DNS_NODATA))
		cache_put(d, p->name, p->type, a);
	for (w = p->waiters; w != NULL; w = wn) {
		wn = w->pnext;
		w->pnext = NULL;
		w->pend = NULL;
		w->ans = dns_answer_ref(a);
		w->fail = fail;
		if (!d->dying)
			ev_timer_arm(w->t, 0);
	}
	dns_answer_unref(a);
	free(p);
}

static void req_fire(void *arg);

/*
 * Can name be asked so that its answer is read back as its own?  Only
 * when read_name() would spell the name as it is spelled here: letters,
 * digits, '-', '_' and '*' in dot-separated labels.  Any other byte is
 * '?' in an answer, and an MX or CNAME target (DNS data the domain
 * writes) that had one arrives here with the '?' in it: asked so, it is
 * another name, which a signed zone denies, and the host that publishes
 * addresses and TLSA records would read as a secure "no TLSA" (DANE
 * off).  A '\' would be an escape to ares_create_query(), another name
 * again.  Such a name is a failed lookup, never an answer.
 */
static int
name_askable(const char *name)
{
	const unsigned char *c;

	for (c = (const unsigned char *)name; *c != '\0'; c++)
		if (!isalnum(*c) && *c != '-' && *c != '_' && *c != '*' &&
		    *c != '.')
			return 0;
	return 1;
}

static int
start_link(struct dns_req *r)
{
	struct dns *d = r->dns;
	struct dns_answer *a;
	struct pend *p, **b;
	unsigned char *q;
	int qlen, rc;

	if (!name_askable(r->cur)) {
		char qn[512];

		log_info("event=dns-name-refused name=%s type=%s "
		    "reason=\"not a host name: its answer could not be "
		    "matched\"", log_q(qn, sizeof(qn), r->cur),
		    dns_type_name(r->type));
		r->fail = DNS_ERROR;
		ev_timer_arm(r->t, 0);
		return 0;
	}
	if ((a = cache_find(d, r->cur, r->type)) != NULL) {
		r->ans = dns_answer_ref(a);
		ev_timer_arm(r->t, 0);
		return 0;
	}
	for (p = d->pend[hash(r->cur, r->type)]; p != NULL; p = p->next)
		if (p->type == r->type && strcmp(p->name, r->cur) == 0) {
			r->pnext = p->waiters;
			p->waiters = r;
			r->pend = p;
			return 0;
		}
	if (!d->ch_ok) {
		r->fail = DNS_ERROR;
		ev_timer_arm(r->t, 0);
		return 0;
	}
	if ((rc = ares_create_query(r->cur, 1, r->type, 0, 1, &q, &qlen,
	    1232)) != ARES_SUCCESS) {
		if (rc == ARES_ENOMEM) {
			d->nlocal++;
			d->local_errno = ENOMEM;
		}
		r->fail = rc == ARES_ENOMEM ? DNS_LOCAL : DNS_ERROR;
		ev_timer_arm(r->t, 0);
		return 0;
	}
	q[3] |= 0x20;			/* AD: we want to know */
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		ares_free_string(q);
		return -1;
	}
	p->dns = d;
	p->type = r->type;
	memcpy(p->name, r->cur, sizeof(p->name));
	p->waiters = r;
	r->pend = p;
	b = &d->pend[hash(p->name, p->type)];
	if ((p->next = *b) != NULL)
		p->next->prevp = &p->next;
	*b = p;
	p->prevp = b;
	d->npend++;
	{
		char qn[512];

		log_debug("event=dns-query name=%s type=%s",
		    log_q(qn, sizeof(qn), r->cur), dns_type_name(r->type));
	}
	p->nlocal0 = d->nlocal;
	ares_send(d->ch, q, qlen, ares_done, p);	/* may complete now */
	ares_free_string(q);
	update_timer(d);
	return 0;
}

static void
req_fire(void *arg)
{
	struct dns_req *r = arg;
	struct dns_answer *a = r->ans;
	enum dns_status st;

	r->ans = NULL;
	if (a != NULL) {
		if (!a->ad)
			r->all_ad = 0;
		if (a->cname_open && r->hops >= DNS_MAX_CNAME) {
			/* a chain that does not end is a failed lookup, never
			 * "no records": a TLSA NODATA turns DANE off, where a
			 * failure defers */
			char qn[512];

			log_debug("event=dns-cname-limit name=%s type=%s "
			    "hops=%d", log_q(qn, sizeof(qn), r->cur),
			    dns_type_name(r->type), r->hops);
			ev_timer_free(r->t);
			r->t = NULL;
			r->cb(r->arg, DNS_ERROR, a);
			dns_answer_unref(a);
			free(r);
			return;
		}
		if (a->cname_open && a->name[0] != '\0') {
			r->hops++;
			memcpy(r->cur, a->name, sizeof(r->cur));
			dns_answer_unref(a);
			if (start_link(r) == 0)
				return;
			r->cb(r->arg, DNS_LOCAL, NULL);	/* out of memory */
			ev_timer_free(r->t);
			free(r);
			return;
		}
		st = a->status;
		if (st == DNS_SECURE && !r->all_ad)
			st = DNS_INSECURE;
		if ((st == DNS_NXDOMAIN || st == DNS_NODATA) && a->ad &&
		    !r->all_ad) {
			/* a denial's security is its AD bit (mx.c: the
			 * implicit MX), and this one's is the last link's
			 * alone: the receiver gets a copy without it (the
			 * cached answer stays as it is) */
			struct dns_answer *c = answer_unsigned_copy(a);

			dns_answer_unref(a);
			if ((a = c) == NULL)
				st = DNS_LOCAL;	/* out of memory */
		}
	} else
		st = r->fail;
	ev_timer_free(r->t);
	r->t = NULL;
	r->cb(r->arg, st, a);
	dns_answer_unref(a);
	free(r);
}

struct dns_req *
dns_query(struct dns *d, const char *name, int type, dns_cb *cb, void *arg)
{
	struct dns_req *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->t = ev_timer_new(d->loop, req_fire, r)) == NULL) {
		free(r);
		return NULL;
	}
	r->dns = d;
	r->cb = cb;
	r->arg = arg;
	r->type = type;
	r->all_ad = 1;
	if (strcmp(name, ".") == 0)
		r->cur[0] = '\0';
	else if (dns_name_norm(name, r->cur, sizeof(r->cur)) == -1) {
		r->fail = DNS_ERROR;
		ev_timer_arm(r->t, 0);
		return r;
	}
	if (start_link(r) == -1) {
		ev_timer_free(r->t);
		free(r);
		return NULL;
	}
	return r;
}

void
dns_cancel(struct dns_req *r)
{
	struct dns_req **pp;

	if (r == NULL)
		return;
	if (r->pend != NULL)
		for (pp = &r->pend->waiters; *pp != NULL; pp = &(*pp)->pnext)
			if (*pp == r) {
				*pp = r->pnext;
				break;
			}
	ev_timer_free(r->t);
	dns_answer_unref(r->ans);
	free(r);
}

/* dns_servers (the first max of them) as the channel's servers. */
static int
set_servers(ares_channel ch, const struct config *cfg, int max, char *err,
    size_t errsz)
{
	char csv[2048];
	size_t o = 0;
	int i, rc;

	if (cfg->dns_servers.n == 0)
		return 0;
	csv[0] = '\0';
	for (i = 0; i < cfg->dns_servers.n && i < max; i++) {
		int n = snprintf(csv + o, sizeof(csv) - o, "%s%s",
		    i ? "," : "", cfg->dns_servers.v[i]);

		if (n < 0 || (size_t)n >= sizeof(csv) - o) {
			snprintf(err, errsz, "dns_servers: too long");
			return -1;
		}
		o += (size_t)n;
	}
	if ((rc = ares_set_servers_ports_csv(ch, csv)) != ARES_SUCCESS) {
		snprintf(err, errsz, "dns_servers: %s: %s", csv,
		    ares_strerror(rc));
		return -1;
	}
	return 0;
}

/* c-ares's socket calls, as it makes them itself, counting the failures
 * that are this host's (socket(): EMFILE, ENFILE, ENOBUFS, ENOMEM;
 * connect(): EADDRNOTAVAIL; a send: ENOBUFS, ENOMEM, EAGAIN; any: EPERM).
 * EPERM is this host's netfilter refusing the packet: a full conntrack
 * table drops a UDP query so (measured on 6.18: sendto() EPERM at
 * once), as would a rule of the host's own or a seccomp filter; no
 * answer from the path is ever EPERM (an ICMP refusal is ECONNREFUSED,
 * EHOSTUNREACH, EACCES). */
static void
note_local(struct dns *d, int e)
{
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM ||
	    e == EADDRNOTAVAIL || e == EPERM) {
		d->nlocal++;
		d->local_errno = e;
	}
}

static ares_socket_t
sf_socket(int af, int type, int proto, void *arg)
{
	/* c-ares leaves the options of sockets it did not make itself
	 * alone: non-blocking (it reads until EAGAIN) and close-on-exec are
	 * ours to set */
	int fd = socket(af, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);

	if (fd == -1) {
		int e = errno;

		note_local(arg, e);
		errno = e;
		return ARES_SOCKET_BAD;
	}
	return fd;
}

static int
sf_close(ares_socket_t fd, void *arg)
{
	return close(fd);
}

static int
sf_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len,
    void *arg)
{
	int rc = connect(fd, sa, len);

	if (rc == -1) {
		int e = errno;

		note_local(arg, e);
		errno = e;
	}
	return rc;
}

static ares_ssize_t
sf_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
    struct sockaddr *from, ares_socklen_t *fromlen, void *arg)
{
	return recvfrom(fd, buf, len, flags, from, fromlen);
}

static ares_ssize_t
sf_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *arg)
{
	ares_ssize_t rc = writev(fd, iov, n);

	/* a send this host had no buffer or memory for, or that its
	 * netfilter refused (EPERM: note_local()): c-ares takes the server
	 * for failed, and reports the query as refused too.  (On TCP it
	 * waits out EAGAIN: no failure there) */
	if (rc == -1) {
		int e = errno, type = 0;
		socklen_t tl = sizeof(type);

		if (e == ENOBUFS || e == ENOMEM || e == EPERM ||
		    ((e == EAGAIN || e == EWOULDBLOCK) && getsockopt(fd,
		    SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
		    type == SOCK_DGRAM)) {
			struct dns *d = arg;

			d->nlocal++;
			d->local_errno = e;
		}
		errno = e;
	}
	return rc;
}

static const struct ares_socket_functions sock_funcs = {
	sf_socket, sf_close, sf_connect, sf_recvfrom, sf_sendv,
};

struct dns *
dns_new(struct ev_loop *loop, const struct config *cfg, char *err,
    size_t errsz)
{
	static int lib_init;
	struct ares_options o;
	struct dns *d;
	int rc, mask;
	uint64_t per_try;

	if (!lib_init) {
		if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
			snprintf(err, errsz, "c-ares: %s", ares_strerror(rc));
			return NULL;
		}
		lib_init = 1;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	d->loop = loop;
	if ((d->tmo = ev_timer_new(loop, tmo_cb, d)) == NULL) {
		free(d);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = sock_state_cb;
	o.sock_state_cb_data = d;
	/* The first server only (PRIMARY: of resolv.conf's; set_servers():
	 * of dns_servers).  c-ares would otherwise move to the next one
	 * when the first times out or refuses, and an attacker who delays
	 * the validating resolver's answers would get the answer of
	 * another one, which may not validate: DANE off where it must
	 * defer. */
	o.flags = ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH | ARES_FLAG_NOCHECKRESP |
	    ARES_FLAG_PRIMARY;
	o.ednspsz = 1232;
	per_try = cfg->dns_timeout / 3;
	if (per_try < 300)
		per_try = 300;
	o.timeout = (int)(per_try > 60000 ? 60000 : per_try);
	o.tries = d->tries = 2;
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	if ((rc = ares_init_options(&d->ch, &o, mask)) != ARES_SUCCESS) {
		snprintf(err, errsz, "c-ares init: %s", ares_strerror(rc));
		ev_timer_free(d->tmo);
		free(d);
		return NULL;
	}
	d->ch_ok = 1;
	ares_set_socket_functions(d->ch, &sock_funcs, d);
	/* every entry must be an address c-ares takes; the first is used */
	if (set_servers(d->ch, cfg, cfg->dns_servers.n, err, errsz) == -1 ||
	    set_servers(d->ch, cfg, 1, err, errsz) == -1) {
		dns_free(d);
		return NULL;
	}
	return d;
}

unsigned
dns_local_failures(const struct dns *d, int *err)
{
	if (d == NULL)
		return 0;
	if (err != NULL)
		*err = d->local_errno;
	return d->nlocal;
}

void
dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	d->dying = 1;
	if (d->ch_ok)
		ares_destroy(d->ch);	/* ares_done() frees the pends */
	d->ch_ok = 0;
	dns_cache_flush(d);
	ev_timer_free(d->tmo);
	free(d);
}

int
dns_servers_of(const struct config *cfg, const char *resolvconf,
    struct dns_server *out, int max)
{
	struct ares_options o;
	struct ares_addr_port_node *list = NULL, *n;
	ares_channel ch;
	char err[256], a[INET6_ADDRSTRLEN];
	int mask = ARES_OPT_FLAGS, count = 0;

	memset(&o, 0, sizeof(o));
	/* (without PRIMARY, which makes c-ares keep only the first of
	 * resolv.conf's: the others are counted) */
	o.flags = ARES_FLAG_NOSEARCH;
	if (resolvconf != NULL) {
		o.resolvconf_path = (char *)resolvconf;
		mask |= ARES_OPT_RESOLVCONF;
	}
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		return -1;
	if (ares_init_options(&ch, &o, mask) != ARES_SUCCESS) {
		ares_library_cleanup();
		return -1;
	}
	if (set_servers(ch, cfg, cfg->dns_servers.n, err, sizeof(err)) == -1 ||
	    ares_get_servers_ports(ch, &list) != ARES_SUCCESS) {
		ares_destroy(ch);
		ares_library_cleanup();
		return -1;
	}
	for (n = list; n != NULL; n = n->next, count++) {
		if (count >= max)
			continue;
		if (inet_ntop(n->family, &n->addr, a, sizeof(a)) == NULL)
			snprintf(a, sizeof(a), "?");
		if (n->udp_port != 0 && n->udp_port != 53)
			snprintf(out[count].text, sizeof(out[0].text),
			    n->family == AF_INET6 ? "[%s]:%d" : "%s:%d", a,
			    n->udp_port);
		else
			snprintf(out[count].text, sizeof(out[0].text), "%s",
			    a);
		out[count].loopback = n->family == AF_INET6 ?
		    IN6_IS_ADDR_LOOPBACK(&n->addr.addr6) :
		    (ntohl(n->addr.addr4.s_addr) >> 24) == 127;
	}
	ares_free_data(list);
	ares_destroy(ch);
	ares_library_cleanup();
	return count;
}
