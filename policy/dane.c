/*
 * dane.c - DANE for SMTP (see dane.h).
 *
 * The MX hosts and their addresses come resolved from the MX walk
 * (policy/mx.c), as Postfix's tls_dane.c gets them from its caller; the
 * lookup here only asks for TLSA records: of the host owning the
 * destination (expanded name first, then the original) or, when no host
 * owns it, of every secure MX host (to learn whether D publishes DANE at
 * all).  Every step answers through the event loop.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/ev.h"
#include "core/log.h"
#include "policy/dane.h"
#include "policy/dns.h"
#include "policy/mx.h"
#include "policy/verdict.h"

enum stage { ST_START, ST_TLSA, ST_TLSA_ANY, ST_DONE };

struct sub {
	struct dane_req	*r;
	int		 idx;
	struct dns_req	*q;
	char		 expanded[256];	/* secure CNAME target of the host */
	int		 orig_next;	/* ST_TLSA_ANY: the original name's
					 * probe follows the expanded one's */
};

struct dane_req {
	struct dns	*dns;
	struct ev_timer	*start;		/* evaluate() from the event loop */
	dane_cb		*cb;
	void		*arg;
	enum stage	 stage;
	int		 owner;		/* host owning A, -1 none */
	int		 pending;
	int		 any_fail;	/* no owner: a lookup that could have
					 * shown TLSA records failed */
	char		 fail_what[300];
	int		 any_local;	/* one of them failed for want of this
					 * host's resources (DNS_LOCAL) */
	char		 local_what[300];
	int		 any_tlsa;	/* ST_TLSA_ANY: some host has TLSA */
	char		 any_host[256];
	int		 unkept;	/* MX hosts the walk did not keep */
	char		 orig_host[256]; /* TLSA fallback base, "" none */
	struct sub	 sub[DANE_MAX_MX];
	struct dane_info *info;
};

static const char *state_names[] = { "none", "usable", "unusable",
	"defer" };

const char *
dane_state_name(enum dane_state s)
{
	return (unsigned)s < 4 ? state_names[s] : "?";
}

/* ---- records ---------------------------------------------------------- */

int
dane_tlsa_usable(uint8_t usage, uint8_t selector, uint8_t mtype,
    const unsigned char *data, size_t len)
{
	const unsigned char *p = data;

	if (usage != 2 && usage != 3)
		return 0;
	if (selector > 1 || data == NULL || len == 0)
		return 0;
	switch (mtype) {
	case 1:
		return len == 32;
	case 2:
		return len == 64;
	case 0:
		if (len > 65535)
			return 0;
		/* what SSL_dane_tlsa_add() takes: a certificate whose public
		 * key decodes too (d2i_X509 accepts one with a key of an
		 * unknown algorithm or curve, OpenSSL's DANE refuses it) */
		if (selector == 0) {
			X509 *x = d2i_X509(NULL, &p, (long)len);
			int ok = x != NULL && p == data + len &&
			    X509_get0_pubkey(x) != NULL;

			X509_free(x);
			if (!ok)
				ERR_clear_error();
			return ok;
		} else {
			EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);
			int ok = k != NULL && p == data + len;

			EVP_PKEY_free(k);
			if (!ok)
				ERR_clear_error();
			return ok;
		}
	default:
		return 0;
	}
}

int
dane_tlsa_parse(const unsigned char *rdata, size_t rdlen,
    struct dane_tlsa *out)
{
	memset(out, 0, sizeof(*out));
	if (rdata == NULL || rdlen < 4)
		return -1;
	out->usage = rdata[0];
	out->selector = rdata[1];
	out->mtype = rdata[2];
	out->len = rdlen - 3;
	if ((out->data = malloc(out->len)) == NULL) {
		out->len = 0;
		return -2;	/* no memory: not the record's fault */
	}
	memcpy(out->data, rdata + 3, out->len);
	out->usable = dane_tlsa_usable(out->usage, out->selector, out->mtype,
	    out->data, out->len);
	return 0;
}

static int
tlsa_cmp(const void *a, const void *b)
{
	const struct dane_tlsa *x = *(const struct dane_tlsa *const *)a;
	const struct dane_tlsa *y = *(const struct dane_tlsa *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c;

	if (x->usage != y->usage)
		return x->usage - y->usage;
	if (x->selector != y->selector)
		return x->selector - y->selector;
	if (x->mtype != y->mtype)
		return x->mtype - y->mtype;
	if ((c = memcmp(x->data, y->data, n)) != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

void
dane_tlsa_digest(const struct dane_tlsa *t, int n, unsigned char out[32])
{
	const struct dane_tlsa *sorted[DANE_MAX_TLSA];
	EVP_MD_CTX *md;
	unsigned int olen = 32;
	int i;

	memset(out, 0, 32);
	if (n > DANE_MAX_TLSA)
		n = DANE_MAX_TLSA;
	for (i = 0; i < n; i++)
		sorted[i] = &t[i];
	qsort(sorted, (size_t)n, sizeof(sorted[0]), tlsa_cmp);
	if ((md = EVP_MD_CTX_new()) == NULL)
		return;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
		for (i = 0; i < n; i++) {
			unsigned char h[5] = { sorted[i]->usage,
			    sorted[i]->selector, sorted[i]->mtype,
			    (unsigned char)(sorted[i]->len >> 8),
			    (unsigned char)sorted[i]->len };

			EVP_DigestUpdate(md, h, sizeof(h));
			EVP_DigestUpdate(md, sorted[i]->data, sorted[i]->len);
		}
		EVP_DigestFinal_ex(md, out, &olen);
	}
	EVP_MD_CTX_free(md);
}

void
dane_tlsa_format(const struct dane_tlsa *t, char *buf, size_t sz)
{
	size_t o, i;
	int n;

	n = snprintf(buf, sz, "%u %u %u ", t->usage, t->selector, t->mtype);
	if (n < 0 || (size_t)n >= sz)
		return;
	o = (size_t)n;
	for (i = 0; i < t->len && o + 3 < sz; i++, o += 2)
		snprintf(buf + o, sz - o, "%02x", t->data[i]);
	if (i < t->len && sz > 4)
		memcpy(buf + sz - 4, "...", 4);
}

/* ---- Extended DNS Errors -------------------------------------------- */

static int
skip_name(const unsigned char *b, size_t len, size_t *off)
{
	size_t p = *off;

	for (;;) {
		unsigned c;

		if (p >= len)
			return -1;
		c = b[p];
		if (c == 0) {
			*off = p + 1;
			return 0;
		}
		if ((c & 0xc0) == 0xc0) {
			if (p + 2 > len)
				return -1;
			*off = p + 2;
			return 0;
		}
		if (c & 0xc0)
			return -1;
		p += 1 + c;
	}
}

int
dane_ede(const unsigned char *b, size_t len)
{
	size_t off = 12, i, n;
	unsigned qd, an, ns, ar;

	if (b == NULL || len < 12 || len > 65535)
		return -1;
	qd = (unsigned)b[4] << 8 | b[5];
	an = (unsigned)b[6] << 8 | b[7];
	ns = (unsigned)b[8] << 8 | b[9];
	ar = (unsigned)b[10] << 8 | b[11];
	for (i = 0; i < qd; i++) {
		if (skip_name(b, len, &off) == -1 || off + 4 > len)
			return -1;
		off += 4;
	}
	n = (size_t)an + ns + ar;
	for (i = 0; i < n; i++) {
		unsigned type, rdlen;

		if (skip_name(b, len, &off) == -1 || off + 10 > len)
			return -1;
		type = (unsigned)b[off] << 8 | b[off + 1];
		rdlen = (unsigned)b[off + 8] << 8 | b[off + 9];
		off += 10;
		if (off + rdlen > len)
			return -1;
		if (type == 41 && i >= (size_t)an + ns) {	/* OPT */
			size_t o = off, end = off + rdlen;

			while (o + 4 <= end) {
				unsigned code = (unsigned)b[o] << 8 | b[o + 1];
				unsigned olen = (unsigned)b[o + 2] << 8 |
				    b[o + 3];

				o += 4;
				if (o + olen > end)
					return -1;
				if (code == 15 && olen >= 2)
					return (int)((unsigned)b[o] << 8 |
					    b[o + 1]);
				o += olen;
			}
		}
		off += rdlen;
	}
	return -1;
}

int
dane_ede_dnssec(int code)
{
	return code >= 5 && code <= 12;
}

/* ---- info ------------------------------------------------------------- */

void
dane_info_free(struct dane_info *d)
{
	int i;

	if (d == NULL)
		return;
	for (i = 0; i < d->ntlsa; i++)
		free(d->tlsa[i].data);
	free(d->tlsa);
	free(d);
}

struct dane_info *
dane_info_dup(const struct dane_info *s)
{
	struct dane_info *d;
	int i;

	if ((d = malloc(sizeof(*d))) == NULL)
		return NULL;
	memcpy(d, s, sizeof(*d));
	d->tlsa = NULL;
	d->ntlsa = 0;
	if (s->ntlsa > 0 &&
	    (d->tlsa = calloc((size_t)s->ntlsa, sizeof(*d->tlsa))) == NULL)
		goto fail;
	for (i = 0; i < s->ntlsa; i++) {
		d->tlsa[i] = s->tlsa[i];
		d->tlsa[i].data = malloc(s->tlsa[i].len ? s->tlsa[i].len : 1);
		if (d->tlsa[i].data == NULL)
			goto fail;
		d->ntlsa = i + 1;
		memcpy(d->tlsa[i].data, s->tlsa[i].data, s->tlsa[i].len);
	}
	return d;
fail:
	dane_info_free(d);
	return NULL;
}

static void
add_name(struct dane_info *d, const char *n)
{
	int i;

	if (n[0] == '\0' || d->nnames >= DANE_MAX_NAMES)
		return;
	for (i = 0; i < d->nnames; i++)
		if (strcmp(d->names[i], n) == 0)
			return;
	snprintf(d->names[d->nnames++], sizeof(d->names[0]), "%s", n);
}

/* ---- the lookup ------------------------------------------------------- */

static void
finish(struct dane_req *r, enum dane_state st, const char *reason,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
finish(struct dane_req *r, enum dane_state st, const char *reason,
    const char *fmt, ...)
{
	struct dane_info *d = r->info;
	va_list ap;
	int i;

	for (i = 0; i < DANE_MAX_MX; i++) {
		dns_cancel(r->sub[i].q);
		r->sub[i].q = NULL;
	}
	r->stage = ST_DONE;
	d->state = st;
	snprintf(d->reason, sizeof(d->reason), "%s", reason ? reason : "");
	d->local = reason != NULL && strcmp(reason, DANE_LOCAL_ERROR) == 0;
	va_start(ap, fmt);
	vsnprintf(d->detail, sizeof(d->detail), fmt, ap);
	va_end(ap);
	if (st == DANE_USABLE || st == DANE_UNUSABLE)
		dane_tlsa_digest(d->tlsa, d->ntlsa, d->digest);
	{
		char qd[512], qm[512];

		log_debug("event=dane-lookup domain=%s mx=%s state=%s "
		    "reason=%s tlsa=%d usable=%d",
		    log_q(qd, sizeof(qd), d->domain),
		    log_q(qm, sizeof(qm), d->mx_host[0] ? d->mx_host : "-"),
		    dane_state_name(st), reason ? reason : "-", d->ntlsa,
		    d->nusable);
	}
	r->info = NULL;
	ev_timer_free(r->start);
	r->cb(r->arg, d);
	free(r);
}

static int
is_failure(enum dns_status st)
{
	return st == DNS_SERVFAIL || st == DNS_TIMEOUT || st == DNS_ERROR ||
	    st == DNS_LOCAL;
}

static void tlsa_cb(void *arg, enum dns_status st, const struct dns_answer *a);

/* Is _25._tcp.HOST a DNS name (at most 253 octets)?  Not for a host name
 * longer than 244 octets, which is one: no TLSA record can exist there,
 * and the host has none, as an NXDOMAIN would say.  It is never asked:
 * dns_query() fails a name that long (DNS_ERROR), and a failed TLSA
 * lookup defers in a signed zone, so that host's mail waited for good. */
static int
tlsa_name_fits(const char *host)
{
	return strlen(host) + sizeof("_25._tcp.") - 1 <= 253;
}

static int
start_tlsa(struct dane_req *r, struct sub *s, const char *host)
{
	char q[300];

	snprintf(q, sizeof(q), "_25._tcp.%s", host);
	s->q = dns_query(r->dns, q, DNS_T_TLSA, tlsa_cb, s);
	if (s->q == NULL)
		return -1;
	r->pending++;
	return 0;
}

/* The records of a secure TLSA answer, at most DANE_MAX_TLSA of them (the
 * rest counted in tlsa_dropped, with one warning); -1 out of memory. */
static int
take_tlsa(struct dane_info *d, const struct dns_answer *a)
{
	int i, n;

	if (a == NULL)
		return 0;
	n = a->nrr < DANE_MAX_TLSA ? a->nrr : DANE_MAX_TLSA;
	d->tlsa_dropped = a->ndropped + (a->nrr - n);
	if (n > 0 && (d->tlsa = calloc((size_t)n, sizeof(*d->tlsa))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		struct dane_tlsa *t = &d->tlsa[d->ntlsa];
		int rc = dane_tlsa_parse(a->rr[i].rdata, a->rr[i].rdlen, t);

		/* a record left out for want of memory may be the usable
		 * one: never a weaker verdict for it (the caller defers) */
		if (rc == -2)
			return -1;
		if (rc == -1)
			continue;	/* malformed: unusable, skip */
		d->ntlsa++;
		if (t->usable)
			d->nusable++;
	}
	if (d->tlsa_dropped > 0) {
		char qd[512], qm[512], qb[512], owner[300];

		/* once per lookup: only the first DANE_MAX_TLSA count */
		snprintf(owner, sizeof(owner), "_25._tcp.%s", d->tlsa_base);
		log_warn("event=dane-tlsa-dropped domain=%s mx=%s tlsa=%s "
		    "kept=%d dropped=%d usable=%d max=%d",
		    log_q(qd, sizeof(qd), d->domain),
		    log_q(qm, sizeof(qm), d->mx_host[0] ? d->mx_host : "-"),
		    log_q(qb, sizeof(qb), owner), n, d->tlsa_dropped,
		    d->nusable, DANE_MAX_TLSA);
	}
	return 0;
}

/*
 * A is no MX host's address: every TLSA lookup of the secure hosts has
 * answered.  Some host publishes TLSA records: A must be one of the MX
 * hosts (only an override can name a relay).  A lookup that could have
 * shown TLSA records failed (an address lookup, so that A might belong to
 * that host, or a TLSA lookup): defer too, never fall back.
 */
static void
any_done(struct dane_req *r)
{
	struct dane_info *d = r->info;

	/* a lookup this host's resources failed might have shown that A
	 * is that host's: nothing said is the domain's failure */
	if (r->any_local)
		finish(r, DANE_DEFER, DANE_LOCAL_ERROR, "destination is not "
		    "an address of any MX host of %s found, and %s for want "
		    "of local resources", d->domain, r->local_what);
	else if (r->any_tlsa)
		finish(r, DANE_DEFER, "validation-failure",
		    "destination is not an address of any MX host of %s, "
		    "whose MX host %s publishes TLSA records", d->domain,
		    r->any_host);
	else if (r->any_fail)
		finish(r, DANE_DEFER, "dnssec-invalid", "destination is not "
		    "an address of any MX host of %s, and %s in a signed "
		    "zone", d->domain, r->fail_what);
	else if (r->unkept > 0)
		/* A may be an address of a host not kept, whose TLSA
		 * records were never asked: an attacker who made the best
		 * hosts unreachable sent the MTA down the list to it.  This
		 * gateway's limit, not the domain's failure: local-error,
		 * not reported (as MTA-STS's unkept_owner()) */
		finish(r, DANE_DEFER, DANE_LOCAL_ERROR, "destination is "
		    "not an address of the %d MX hosts of %s that were kept "
		    "(%d not kept): whether its host publishes TLSA records "
		    "cannot be told", d->nmx, d->domain, r->unkept);
	else
		finish(r, DANE_NONE, NULL, "destination is not an address of "
		    "any MX host of %s", d->domain);
}

static void
tlsa_cb(void *arg, enum dns_status st, const struct dns_answer *a)
{
	struct sub *s = arg;
	struct dane_req *r = s->r;
	struct dane_info *d = r->info;

	s->q = NULL;
	r->pending--;
	if (r->stage == ST_TLSA_ANY) {
		if (s->orig_next && !is_failure(st) && !(st == DNS_SECURE &&
		    a != NULL && a->nrr > 0)) {
			/* none at the expanded name: the original's (RFC
			 * 7672 section 2.2.2), if one can exist there */
			s->orig_next = 0;
			if (!tlsa_name_fits(d->mx[s->idx].host))
				st = DNS_NXDOMAIN;
			else if (start_tlsa(r, s, d->mx[s->idx].host) == 0)
				return;
			else
				st = DNS_ERROR;
		}
		if (st == DNS_SECURE && a != NULL && a->nrr > 0) {
			r->any_tlsa = 1;
			snprintf(r->any_host, sizeof(r->any_host), "%s",
			    d->mx[s->idx].host);
		} else if (st == DNS_LOCAL && !r->any_local) {
			r->any_local = 1;
			snprintf(r->local_what, sizeof(r->local_what), "the "
			    "TLSA lookup for _25._tcp.%s was not sent",
			    d->mx[s->idx].host);
		} else if (is_failure(st) && !r->any_fail) {
			r->any_fail = 1;
			snprintf(r->fail_what, sizeof(r->fail_what), "the "
			    "TLSA lookup for _25._tcp.%s failed (%s)",
			    d->mx[s->idx].host, dns_status_name(st));
		}
		if (r->pending == 0)
			any_done(r);
		return;
	}
	d->tlsa_status = st;
	switch (st) {
	case DNS_SECURE:
		if (take_tlsa(d, a) == -1)
			finish(r, DANE_DEFER, DANE_LOCAL_ERROR,
			    "out of memory");
		else if (d->nusable == 0 && d->tlsa_dropped > 0)
			/* a dropped record may be usable: never the weaker
			 * unauthenticated TLS for a truncated RRset */
			finish(r, DANE_DEFER, "tlsa-invalid", "%d TLSA "
			    "records at _25._tcp.%s, more than the %d "
			    "evaluated, and none of those usable",
			    d->ntlsa + d->tlsa_dropped, d->tlsa_base,
			    DANE_MAX_TLSA);
		else if (d->nusable > 0 && d->tlsa_dropped > 0)
			finish(r, DANE_USABLE, NULL, "%d TLSA record(s) at "
			    "_25._tcp.%s, %d usable; %d more over the bound "
			    "not evaluated", d->ntlsa, d->tlsa_base,
			    d->nusable, d->tlsa_dropped);
		else if (d->nusable > 0)
			finish(r, DANE_USABLE, NULL, "%d TLSA record(s) at "
			    "_25._tcp.%s, %d usable", d->ntlsa, d->tlsa_base,
			    d->nusable);
		else
			finish(r, DANE_UNUSABLE, NULL, "%d TLSA record(s) at "
			    "_25._tcp.%s, none usable: TLS mandatory, "
			    "unauthenticated", d->ntlsa, d->tlsa_base);
		return;
	case DNS_INSECURE:
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		if (r->orig_host[0] != '\0' && tlsa_name_fits(r->orig_host)) {
			/* expanded name had none (or none validated): the
			 * original name, whose TLSA records are the domain's
			 * word if it publishes any (RFC 7672 2.2.2) */
			snprintf(d->tlsa_base, sizeof(d->tlsa_base), "%s",
			    r->orig_host);
			r->orig_host[0] = '\0';
			if (start_tlsa(r, s, d->tlsa_base) == -1)
				finish(r, DANE_DEFER, DANE_LOCAL_ERROR,
				    "out of memory");
			return;
		}
		if (st == DNS_INSECURE)
			finish(r, DANE_NONE, NULL, "TLSA records at "
			    "_25._tcp.%s are not DNSSEC-validated: ignored",
			    d->tlsa_base);
		else
			finish(r, DANE_NONE, NULL, "no TLSA records for %s",
			    d->mx_host);
		return;
	case DNS_LOCAL:
		/* c-ares "refused" it: never asked, nothing of the zone */
		finish(r, DANE_DEFER, DANE_LOCAL_ERROR, "TLSA lookup for "
		    "_25._tcp.%s not sent for want of local resources",
		    d->tlsa_base);
		return;
	default:
		d->tlsa_ede = a != NULL ? dane_ede(a->raw, (size_t)a->rawlen) :
		    -1;
		if (d->tlsa_ede >= 0)
			finish(r, DANE_DEFER, "dnssec-invalid", "TLSA lookup "
			    "for _25._tcp.%s failed (%s, extended DNS error "
			    "%d) in a signed zone", d->tlsa_base,
			    dns_status_name(st), d->tlsa_ede);
		else
			finish(r, DANE_DEFER, "dnssec-invalid", "TLSA lookup "
			    "for _25._tcp.%s failed (%s) in a signed zone",
			    d->tlsa_base, dns_status_name(st));
		return;
	}
}

/* No MX host owns A. */
static void
no_owner(struct dane_req *r)
{
	struct dane_info *d = r->info;
	int i;

	if (!d->mx_secure) {
		/* nothing shows that D is signed: an attacker could have
		 * rewritten the MX RRset anyway */
		finish(r, DANE_NONE, NULL, "destination is not an address "
		    "of any MX host of %s", d->domain);
		return;
	}
	/* Does D publish DANE?  Then A must be one of its MX hosts.  A
	 * host whose address lookup failed might own A: that failure
	 * defers, as a failed TLSA lookup does.  Every host with validated
	 * addresses is asked, and so is one with none of A's family (an
	 * IPv4-only host, A an IPv6 address an attacker sent the MTA to):
	 * its TLSA records still say whether D publishes DANE.  A host that is a
	 * secure CNAME is asked at the name it expands to, then at its own
	 * (RFC 7672 section 2.2.2), as for the owner. */
	r->stage = ST_TLSA_ANY;
	for (i = 0; i < d->nmx; i++) {
		struct sub *s = &r->sub[i];

		if (d->mx[i].addr_status == DNS_LOCAL) {
			if (!r->any_local) {
				r->any_local = 1;
				snprintf(r->local_what, sizeof(r->local_what),
				    "the address lookup of MX host %s was not "
				    "sent", d->mx[i].host);
			}
			continue;
		}
		if (mx_status_failed(d->mx[i].addr_status)) {
			if (!r->any_fail) {
				r->any_fail = 1;
				snprintf(r->fail_what, sizeof(r->fail_what),
				    "the address lookup of MX host %s failed "
				    "(%s)", d->mx[i].host,
				    d->mx[i].addr_status < 0 ? "no answer" :
				    dns_status_name(d->mx[i].addr_status));
			}
			continue;
		}
		if (d->mx[i].addr_status == DNS_INSECURE)
			continue;	/* addresses that did not validate: no
					 * DANE for this host (RFC 7672 2.2) */
		s->orig_next = s->expanded[0] != '\0' &&
		    strcasecmp(s->expanded, d->mx[i].host) != 0 &&
		    tlsa_name_fits(s->expanded);
		if (!s->orig_next && !tlsa_name_fits(d->mx[i].host))
			continue;	/* no TLSA records can exist */
		if (start_tlsa(r, s, s->orig_next ? s->expanded :
		    d->mx[i].host) == -1) {
			finish(r, DANE_DEFER, DANE_LOCAL_ERROR,
			    "out of memory");
			return;
		}
	}
	if (r->pending == 0)
		any_done(r);
}

/*
 * H owns A but its addresses are not secure, while the MX RRset is.
 * Another MX host whose address lookup failed may own A too, with secure
 * addresses and TLSA records: it would have been H.  An attacker on the
 * path who fails that host's lookup for this resolver (holds or breaks
 * it) and writes the unsigned host's answer to claim A, the signed host's
 * address the MTA went to for DANE, must not get "no DANE": defer, as
 * no_owner() does for such a failure.  A failure of this host's own
 * resources (DNS_LOCAL) is local-error, first, as in any_done().  So
 * is a host the walk did not keep (more than MX_MAX_HOSTS).  1 when it
 * has finished.
 */
static int
owner_unsure(struct dane_req *r)
{
	struct dane_info *d = r->info;
	int i, fail = -1, local = -1;

	for (i = 0; i < d->nmx; i++) {
		if (i == r->owner)
			continue;
		if (d->mx[i].addr_status == DNS_LOCAL && local < 0)
			local = i;
		else if (mx_status_failed(d->mx[i].addr_status) && fail < 0)
			fail = i;
	}
	if (local >= 0)
		finish(r, DANE_DEFER, DANE_LOCAL_ERROR, "address records of "
		    "%s are not DNSSEC-validated, and the address lookup of "
		    "MX host %s, which may own the destination, was not sent "
		    "for want of local resources", d->mx_host,
		    d->mx[local].host);
	else if (fail >= 0)
		finish(r, DANE_DEFER, "dnssec-invalid", "address records of "
		    "%s are not DNSSEC-validated, and the address lookup of "
		    "MX host %s, which may own the destination, failed (%s) "
		    "in a signed zone", d->mx_host, d->mx[fail].host,
		    d->mx[fail].addr_status < 0 ? "no answer" :
		    dns_status_name(d->mx[fail].addr_status));
	else if (r->unkept > 0)
		/* a host the walk did not keep, never looked up, may own A
		 * with signed addresses, as in no_owner() */
		finish(r, DANE_DEFER, DANE_LOCAL_ERROR, "address records "
		    "of %s are not DNSSEC-validated, and %d MX hosts of %s "
		    "were not kept: one of them may own the destination",
		    d->mx_host, r->unkept, d->domain);
	else
		return 0;
	return 1;
}

/* Runs from the event loop: the MX walk has answered everything. */
static void
evaluate(void *arg)
{
	struct dane_req *r = arg;
	struct dane_info *d = r->info;
	struct sub *h;

	/* A failed MX lookup shows nothing either way: D may be signed and
	 * publish TLSA records, and an attacker who drops or breaks the
	 * query must not turn DANE off (RFC 7672 section 2.1.1: a lookup
	 * error is a temporary failure, as the MTA's own MX lookup is). */
	if (d->mx_status == DNS_LOCAL) {
		/* c-ares "refused" it: never asked, nothing of the zone */
		finish(r, DANE_DEFER, DANE_LOCAL_ERROR, "MX lookup for %s not "
		    "sent for want of local resources: whether it publishes "
		    "DANE cannot be told", d->domain);
		return;
	}
	if (mx_status_failed(d->mx_status)) {
		if (dane_ede_dnssec(d->mx_ede))
			finish(r, DANE_DEFER, "dnssec-invalid", "MX lookup for "
			    "%s failed DNSSEC validation (%s, extended DNS "
			    "error %d)", d->domain,
			    dns_status_name(d->mx_status), d->mx_ede);
		else
			finish(r, DANE_DEFER, "dnssec-invalid", "MX lookup for "
			    "%s failed (%s): whether it publishes DANE cannot "
			    "be told", d->domain, d->mx_status < 0 ?
			    "no answer" : dns_status_name(d->mx_status));
		return;
	}
	if (d->nmx == 0) {
		finish(r, DANE_NONE, NULL, "%s has a null MX", d->domain);
		return;
	}
	if (r->owner < 0) {
		no_owner(r);
		return;
	}
	h = &r->sub[r->owner];
	snprintf(d->mx_host, sizeof(d->mx_host), "%s", d->mx[h->idx].host);
	d->addr_secure = d->mx[h->idx].addr_status == DNS_SECURE;
	if (!d->addr_secure) {
		/* under an insecure MX RRset an attacker drops a signed host
		 * from the list anyway, and no_owner() does not defer */
		if (d->mx_secure && owner_unsure(r))
			return;
		finish(r, DANE_NONE, NULL, "address records of %s are not "
		    "DNSSEC-validated", d->mx_host);
		return;
	}
	/* reference identifiers for DANE-TA (RFC 7672 section 3.2.2) */
	if (h->expanded[0] != '\0') {
		snprintf(d->tlsa_base, sizeof(d->tlsa_base), "%s",
		    h->expanded);
		snprintf(r->orig_host, sizeof(r->orig_host), "%s",
		    d->mx_host);
		add_name(d, h->expanded);
	} else
		snprintf(d->tlsa_base, sizeof(d->tlsa_base), "%s",
		    d->mx_host);
	add_name(d, d->mx_host);
	if (d->mx_secure)
		add_name(d, d->domain);
	r->stage = ST_TLSA;
	if (!tlsa_name_fits(d->tlsa_base) && r->orig_host[0] != '\0') {
		/* none at the expanded name: the original's */
		snprintf(d->tlsa_base, sizeof(d->tlsa_base), "%s",
		    r->orig_host);
		r->orig_host[0] = '\0';
	}
	if (!tlsa_name_fits(d->tlsa_base)) {
		finish(r, DANE_NONE, NULL, "no TLSA records for %s: "
		    "_25._tcp.%s would be longer than a DNS name", d->mx_host,
		    d->tlsa_base);
		return;
	}
	if (start_tlsa(r, h, d->tlsa_base) == -1)
		finish(r, DANE_DEFER, DANE_LOCAL_ERROR, "out of memory");
}

struct dane_req *
dane_lookup(struct ev_loop *loop, struct dns *dns,
    const struct mx_result *mx, const struct sockaddr *dst, dane_cb *cb,
    void *arg)
{
	struct dane_req *r;
	struct dane_info *d;
	int i, family = dst != NULL ? dst->sa_family : AF_UNSPEC;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->info = d = calloc(1, sizeof(*r->info))) == NULL ||
	    (r->start = ev_timer_new(loop, evaluate, r)) == NULL) {
		free(r->info);
		free(r);
		return NULL;
	}
	r->dns = dns;
	r->cb = cb;
	r->arg = arg;
	d->tlsa_status = -1;
	d->tlsa_ede = -1;
	snprintf(d->domain, sizeof(d->domain), "%s", mx->domain);
	d->mx_status = mx->status;
	d->mx_ede = mx->ede;
	d->mx_secure = mx->secure;
	d->implicit_mx = mx->implicit;
	r->unkept = mx->nunkept + (mx->nhost > DANE_MAX_MX ?
	    mx->nhost - DANE_MAX_MX : 0);
	r->owner = -1;
	for (i = 0; i < mx->nhost && i < DANE_MAX_MX; i++) {
		const struct mx_host *h = &mx->host[i];

		d->mx[i].pref = h->pref;
		snprintf(d->mx[i].host, sizeof(d->mx[i].host), "%s", h->name);
		d->mx[i].addr_status = mx_host_status(h, family);
		d->mx[i].has_dst = h->has_dst;
		/* H: the most preferred host owning A whose addresses are
		 * secure, else the most preferred owning A.  A that several
		 * hosts own does not say which one the MTA meant, and a
		 * preferred host in an unsigned zone (whose address records
		 * anyone on the path writes) must not take DANE off the
		 * signed host whose server A is too (RFC 7672 2.2.1) */
		if (h->has_dst && (r->owner < 0 ||
		    (d->mx[r->owner].addr_status != DNS_SECURE &&
		    d->mx[i].addr_status == DNS_SECURE)))
			r->owner = i;
		r->sub[i].r = r;
		r->sub[i].idx = i;
		snprintf(r->sub[i].expanded, sizeof(r->sub[i].expanded),
		    "%s", h->expanded);
	}
	d->nmx = i;
	r->stage = ST_START;
	ev_timer_arm(r->start, 0);
	return r;
}

void
dane_cancel(struct dane_req *r)
{
	int i;

	if (r == NULL)
		return;
	for (i = 0; i < DANE_MAX_MX; i++)
		dns_cancel(r->sub[i].q);
	ev_timer_free(r->start);
	dane_info_free(r->info);
	free(r);
}

/* ---- TLS -------------------------------------------------------------- */

/* What dane_tls_prepare() loaded into an SSL object: a later recipient's
 * DANE verdict is satisfied by this connection only if it is the same
 * TLSA RRset for the same base domain. */
/* What an SSL object was prepared with: the whole identity the DANE check
 * stands for (TLSA RRset, base domain, DANE-TA reference names), compared
 * by value. */
struct loaded {
	unsigned char	 digest[32];
	char		 base[256];
	int		 nnames;
	char		 names[DANE_MAX_NAMES][256];
	int		 nadded;	/* records OpenSSL took */
};

static int
loaded_matches(const struct loaded *l, const struct dane_info *d)
{
	int i;

	if (l == NULL || memcmp(l->digest, d->digest, sizeof(l->digest)) != 0 ||
	    strcmp(l->base, d->tlsa_base) != 0 || l->nnames != d->nnames)
		return 0;
	for (i = 0; i < d->nnames; i++)
		if (strcmp(l->names[i], d->names[i]) != 0)
			return 0;
	return 1;
}

static void
loaded_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	free(ptr);
}

static int
loaded_index(void)
{
	static int idx = -1;

	if (idx == -1)
		idx = SSL_get_ex_new_index(0, "mxguard dane", NULL, NULL,
		    loaded_free);
	return idx;
}

static int
loaded_set(const struct dane_info *d, SSL *ssl, int added)
{
	struct loaded *l = calloc(1, sizeof(*l));
	int i, idx = loaded_index();

	if (l == NULL || idx < 0) {
		free(l);
		return -1;
	}
	memcpy(l->digest, d->digest, sizeof(l->digest));
	snprintf(l->base, sizeof(l->base), "%s", d->tlsa_base);
	l->nnames = d->nnames;
	for (i = 0; i < d->nnames && i < DANE_MAX_NAMES; i++)
		snprintf(l->names[i], sizeof(l->names[i]), "%s", d->names[i]);
	l->nadded = added;
	free(SSL_get_ex_data(ssl, idx));
	if (!SSL_set_ex_data(ssl, idx, l)) {
		free(l);
		return -1;
	}
	return 0;
}

int
dane_tls_prepare(const struct dane_info *d, SSL *ssl)
{
	int i, added = 0;

	if (d->state != DANE_USABLE) {
		if (d->mx_host[0] != '\0' &&
		    !SSL_set_tlsext_host_name(ssl, d->mx_host))
			return -1;
		return 0;
	}
	/* the base domain is the first reference identifier and, with
	 * SSL_set_tlsext_host_name, the SNI name (RFC 7672 section 8.1) */
	if (!SSL_set_tlsext_host_name(ssl, d->tlsa_base) ||
	    SSL_dane_enable(ssl, d->tlsa_base) <= 0)
		return -1;
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	/* a DANE-TA chain's validity on the policy clock (core/clock.h);
	 * OpenSSL ignores a DANE-EE leaf's, as RFC 7672 section 3.1.1 asks */
	X509_VERIFY_PARAM_set_time(SSL_get0_param(ssl), (time_t)clock_now());
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	for (i = 0; i < d->nnames; i++)
		if (strcmp(d->names[i], d->tlsa_base) != 0 &&
		    !SSL_add1_host(ssl, d->names[i]))
			return -1;
	/* a record OpenSSL refuses is unusable, and ignored (RFC 7672
	 * section 2.2); dane_tlsa_usable() refuses what it would */
	for (i = 0; i < d->ntlsa; i++) {
		const struct dane_tlsa *t = &d->tlsa[i];

		if (!t->usable)
			continue;
		if (SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype,
		    t->data, t->len) > 0)
			added++;
		else
			ERR_clear_error();
	}
	/* recorded even when none was taken: dane_tls_check() then says
	 * so, for a monitored verdict that goes on without DANE */
	if (loaded_set(d, ssl, added) == -1 || added == 0)
		return -1;
	return 0;
}

static int verify_result(const struct dane_info *, long, char *, size_t,
    char *, size_t);

/*
 * Did a DANE-TA record authenticate the session (its chain's validity is
 * judged), or a DANE-EE one (not judged, RFC 7672 section 3.1.1)?  Told
 * by the usage of the record that matched, never by the match depth: a
 * DANE-TA 2 1 0 record is a bare trust anchor key, and OpenSSL reports
 * its match at the depth of the certificate it signed, 0 when the server
 * sends only the leaf (RFC 7671 section 5.2.2), the depth a DANE-EE match
 * has.  A match whose record cannot be told is judged as DANE-TA.
 */
static int
matched_ta(SSL *ssl)
{
	uint8_t u = 0;

	return SSL_get0_dane_tlsa(ssl, &u, NULL, NULL, NULL, NULL) < 0 ||
	    u != 3;	/* DANE-EE(3) */
}

/*
 * A resumed session skipped certificate verification, and the session
 * may have been verified against another TLSA RRset: verify the peer
 * chain the session kept again, with OpenSSL's DANE verification and the
 * TLSA records, names and flags this SSL object was prepared with.
 */
static int
resumed_check(const struct dane_info *d, SSL *ssl, char *reason,
    size_t reasonsz, char *detail, size_t detailsz, int64_t *not_after)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	SSL_DANE *dane = SSL_get0_dane(ssl);
	X509_STORE_CTX *xc;
	long vr;

	if (peer == NULL || dane == NULL ||
	    (xc = X509_STORE_CTX_new()) == NULL) {
		snprintf(reason, reasonsz, "validation-failure");
		snprintf(detail, detailsz, "resumed session without the "
		    "server's certificate");
		return -1;
	}
	/* the SSL's parameters carry the reference names and the policy
	 * clock's time (dane_tls_prepare()): without them (not copied) a
	 * DANE-TA chain would pass for any name */
	if (!X509_STORE_CTX_init(xc,
	    SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), peer, chain) ||
	    !X509_STORE_CTX_set_default(xc, "ssl_server") ||
	    !X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(xc),
	    SSL_get0_param(ssl))) {
		X509_STORE_CTX_free(xc);
		ERR_clear_error();
		snprintf(reason, reasonsz, "validation-failure");
		snprintf(detail, detailsz, "cannot verify the resumed session");
		return -1;
	}
	/* the key sizes a full handshake demands (OpenSSL sets them from
	 * the security level in the handshake only) */
	X509_VERIFY_PARAM_set_auth_level(X509_STORE_CTX_get0_param(xc),
	    SSL_get_security_level(ssl));
	/* validity now, on the policy clock: the SSL's parameters carry
	 * the time dane_tls_prepare() set, before the handshake (which a
	 * server, or an attacker on the path, may have held up to
	 * tls_timeout per client flight) */
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(xc),
	    (time_t)clock_now());
	X509_STORE_CTX_set0_dane(xc, dane);
	if (X509_verify_cert(xc) == 1) {
		vr = X509_V_OK;
		/* the match is the SSL's: xc verified with its DANE; only
		 * a DANE-EE match has no validity to lose (matched_ta()) */
		if (not_after != NULL && matched_ta(ssl))
			*not_after = policy_chain_not_after(
			    X509_STORE_CTX_get0_chain(xc));
	} else if ((vr = X509_STORE_CTX_get_error(xc)) == X509_V_OK)
		vr = X509_V_ERR_UNSPECIFIED;
	X509_STORE_CTX_free(xc);
	ERR_clear_error();
	if (vr == X509_V_OK) {
		snprintf(reason, reasonsz, "success");
		snprintf(detail, detailsz, "resumed session, verified again "
		    "by DANE for %s", d->tlsa_base);
		return 0;
	}
	return verify_result(d, vr, reason, reasonsz, detail, detailsz);
}

int
dane_tls_check(const struct dane_info *d, SSL *ssl, char *reason,
    size_t reasonsz, char *detail, size_t detailsz, int64_t *not_after)
{
	long vr = SSL_get_verify_result(ssl);
	uint8_t u, s, m;
	const unsigned char *data;
	size_t dlen;
	const struct loaded *l;
	int64_t na;
	int depth;

	if (not_after != NULL)
		*not_after = 0;

	if (d->state != DANE_USABLE) {
		/* a DANE verdict is made of usable records only
		 * (dane_apply()); asked to check anything else, nothing
		 * was authenticated: a failure, never "not in use" */
		snprintf(reason, reasonsz, "validation-failure");
		snprintf(detail, detailsz, "no usable TLSA records to check "
		    "the session against (%s)", dane_state_name(d->state));
		return -1;
	}
	l = loaded_index() >= 0 ? SSL_get_ex_data(ssl, loaded_index()) : NULL;
	if (!loaded_matches(l, d)) {
		snprintf(reason, reasonsz, "validation-failure");
		snprintf(detail, detailsz, "this TLS session was not set up "
		    "for the TLSA records of _25._tcp.%s", d->tlsa_base);
		return -1;
	}
	if (l->nadded == 0) {
		snprintf(reason, reasonsz, "tlsa-invalid");
		snprintf(detail, detailsz, "OpenSSL took none of the %d usable "
		    "TLSA records of _25._tcp.%s", d->nusable, d->tlsa_base);
		return -1;
	}
	if (SSL_session_reused(ssl))
		return resumed_check(d, ssl, reason, reasonsz, detail,
		    detailsz, not_after);
	if (SSL_get0_peer_certificate(ssl) == NULL) {
		snprintf(reason, reasonsz, "validation-failure");
		snprintf(detail, detailsz, "no server certificate");
		return -1;
	}
	if (vr == X509_V_OK &&
	    (depth = SSL_get0_dane_authority(ssl, NULL, NULL)) >= 0) {
		/* DANE-TA: OpenSSL judged the chain's validity at the time
		 * dane_tls_prepare() set, up to tls_timeout per client flight
		 * ago (a server, or an attacker on the path, holds its flight
		 * that long); it is judged now, on the policy clock.  DANE-EE:
		 * it did not, and is not (matched_ta(): a bare DANE-TA key
		 * matches at depth 0 too) */
		na = matched_ta(ssl) ? policy_chain_not_after(
		    SSL_get0_verified_chain(ssl)) : 0;
		if (na != 0 && clock_now() >= na)
			return verify_result(d, X509_V_ERR_CERT_HAS_EXPIRED,
			    reason, reasonsz, detail, detailsz);
		if (SSL_get0_dane_tlsa(ssl, &u, &s, &m, &data, &dlen) >= 0)
			snprintf(detail, detailsz, "DANE-%s TLSA %u %u %u "
			    "matched at depth %d for %s", u == 3 ? "EE" : "TA",
			    u, s, m, depth, d->tlsa_base);
		else
			snprintf(detail, detailsz, "DANE matched at depth %d",
			    depth);
		snprintf(reason, reasonsz, "success");
		/* DANE-TA: the chain's validity ends; DANE-EE: not judged */
		if (not_after != NULL)
			*not_after = na;
		return 0;
	}
	return verify_result(d, vr, reason, reasonsz, detail, detailsz);
}

static int
verify_result(const struct dane_info *d, long vr, char *reason,
    size_t reasonsz, char *detail, size_t detailsz)
{
	switch (vr) {
	case X509_V_OK:
		snprintf(reason, reasonsz, "validation-failure");
		snprintf(detail, detailsz, "verified, but not by DANE");
		return -1;
	case X509_V_ERR_DANE_NO_MATCH:
	/* DANE-TA records only: no chain to a matching trust anchor shows
	 * as a chain error */
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		snprintf(reason, reasonsz, "tlsa-invalid");
		snprintf(detail, detailsz, "no TLSA record of _25._tcp.%s "
		    "matches the server's certificate chain (%s)",
		    d->tlsa_base, X509_verify_cert_error_string(vr));
		return -1;
	case X509_V_ERR_HOSTNAME_MISMATCH:
		snprintf(reason, reasonsz, "certificate-host-mismatch");
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		snprintf(reason, reasonsz, "certificate-expired");
		break;
	/* not expired: a certificate failure of the kind RFC 8460's
	 * certificate-not-trusted covers (as policy_tls_check() says) */
	case X509_V_ERR_CERT_NOT_YET_VALID:
		snprintf(reason, reasonsz, "certificate-not-trusted");
		break;
	default:
		snprintf(reason, reasonsz, "validation-failure");
		break;
	}
	snprintf(detail, detailsz, "DANE: %s",
	    X509_verify_cert_error_string(vr));
	return -1;
}

/* ---- the policy engine's view ----------------------------------------- */

int
dane_apply(const struct dane_info *d, struct policy_verdict *v)
{
	if (d->mx_host[0] != '\0')
		snprintf(v->mx_host, sizeof(v->mx_host), "%s", d->mx_host);
	switch (d->state) {
	case DANE_USABLE:
		v->level = TLS_LEVEL_DANE;
		break;
	case DANE_UNUSABLE:
		v->level = TLS_LEVEL_ENCRYPT;
		break;
	case DANE_DEFER:
		v->level = TLS_LEVEL_DEFER;
		snprintf(v->reason, sizeof(v->reason), "%s", d->reason);
		v->local = d->local;	/* not reported by TLSRPT */
		break;
	default:
		return 0;
	}
	v->source = "dane";
	v->report_only = 0;
	snprintf(v->detail, sizeof(v->detail), "%s", d->detail);
	return 1;
}
