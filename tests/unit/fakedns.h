/*
 * fakedns.h - a table of canned DNS answers behind dns_query() and
 * dns_cancel(), for tests that link with "// WRAP: dns_query dns_cancel"
 * (test_dane_lookup, test_mx).  Answers are wire messages (dnsmsg.h)
 * parsed by the real dns_parse(), so the AD bit, CNAME chains and
 * Extended DNS Errors go through the production code.  Every answer comes
 * from the event loop (a zero timer, or the entry's delay_ms: a slow or
 * timing-out server), never from inside dns_query(); a name without an
 * entry answers NXDOMAIN.  The last entry of a name and type answers, so
 * a test changes an answer by adding another.  Test code only.
 */
#ifndef MXG_TEST_FAKEDNS_H
#define MXG_TEST_FAKEDNS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ev.h"
#include "policy/dns.h"

#include "dnsmsg.h"

#define MAXF	32

static struct fake {
	char		 name[300];
	int		 type;
	enum dns_status	 st;
	struct dns_answer *a;
	uint64_t	 delay_ms;	/* before the answer */
	int		 asked;		/* queries it answered */
} fakes[MAXF];
static int nfakes;
static struct ev_loop *loop;
static int queries;

struct dns_req {
	struct ev_timer	*t;
	dns_cb		*cb;
	void		*arg;
	struct fake	*f;
};

static inline void answer_raw(const char *name, int type,
    enum dns_status st, const unsigned char *b, int n);

static inline void
answer(const char *name, int type, enum dns_status st, struct msg *m)
{
	answer_raw(name, type, st, m ? m->b : NULL, m ? m->n : 0);
}

/* A canned answer from a wire message b of n bytes (NULL: none). */
static inline void
answer_raw(const char *name, int type, enum dns_status st,
    const unsigned char *b, int n)
{
	struct fake *f;

	if (nfakes == MAXF)
		abort();	/* more canned answers than the table holds */
	f = &fakes[nfakes++];

	snprintf(f->name, sizeof(f->name), "%s", name);
	f->type = type;
	f->st = st;
	f->delay_ms = 0;
	f->asked = 0;
	f->a = b ? dns_parse(b, n, name, type) : NULL;
	/* the combined status dns.c would give */
	if (f->a != NULL && st == DNS_ERROR)
		f->st = f->a->status;
}

static inline void
fakes_clear(void)
{
	int i;

	for (i = 0; i < nfakes; i++)
		dns_answer_unref(fakes[i].a);
	nfakes = 0;
}

static inline void
fire(void *arg)
{
	struct dns_req *r = arg;
	struct fake *f = r->f;

	ev_timer_free(r->t);
	r->cb(r->arg, f ? f->st : DNS_NXDOMAIN, f ? f->a : NULL);
	free(r);
}

struct dns_req *__wrap_dns_query(struct dns *d, const char *name, int type,
    dns_cb *cb, void *arg);
void __wrap_dns_cancel(struct dns_req *r);

struct dns_req *
__wrap_dns_query(struct dns *d, const char *name, int type, dns_cb *cb,
    void *arg)
{
	struct dns_req *r = calloc(1, sizeof(*r));
	int i;

	queries++;
	r->cb = cb;
	r->arg = arg;
	for (i = 0; i < nfakes; i++)
		if (fakes[i].type == type && strcmp(fakes[i].name, name) == 0)
			r->f = &fakes[i];
	if (r->f != NULL)
		r->f->asked++;
	r->t = ev_timer_new(loop, fire, r);
	ev_timer_arm(r->t, r->f != NULL ? r->f->delay_ms : 0);
	return r;
}

void
__wrap_dns_cancel(struct dns_req *r)
{
	if (r == NULL)
		return;
	ev_timer_free(r->t);
	free(r);
}

/* The last entry of name and type (NULL: none). */
static inline struct fake *
fake_of(const char *name, int type)
{
	int i;

	for (i = nfakes - 1; i >= 0; i--)
		if (fakes[i].type == type && strcmp(fakes[i].name, name) == 0)
			return &fakes[i];
	return NULL;
}

/* Canned answers. */
static inline void
mx(const char *d, int ad, const char *h1, const char *h2)
{
	struct msg m;

	begin(&m, 0x1234, ad, 0, d, DNS_T_MX, h2 ? 2 : 1, 0, 0);
	rr_name(&m, d, DNS_T_MX, 20, h1, 300);
	if (h2)
		rr_name(&m, d, DNS_T_MX, 10, h2, 300);
	answer(d, DNS_T_MX, ad ? DNS_SECURE : DNS_INSECURE, &m);
}

static inline void
a(const char *h, int ad, const char *ip)
{
	struct msg m;

	begin(&m, 0x1234, ad, 0, h, DNS_T_A, 1, 0, 0);
	rr_a(&m, h, ip, 300);
	answer(h, DNS_T_A, ad ? DNS_SECURE : DNS_INSECURE, &m);
}

static inline void
aaaa(const char *h, int ad, const char *ip)
{
	struct msg m;

	begin(&m, 0x1234, ad, 0, h, DNS_T_AAAA, 1, 0, 0);
	rr_hdr(&m, h, DNS_T_AAAA, 300, 16);
	inet_pton(AF_INET6, ip, m.b + m.n);
	m.n += 16;
	answer(h, DNS_T_AAAA, ad ? DNS_SECURE : DNS_INSECURE, &m);
}

/* The last canned answer comes ms after its query. */
static inline void
answer_after(uint64_t ms)
{
	fakes[nfakes - 1].delay_ms = ms;
}

static inline void
tlsa(const char *h, int ad, int u, int s, int mt, int len)
{
	struct msg m;
	char q[300];

	snprintf(q, sizeof(q), "_25._tcp.%s", h);
	begin(&m, 0x1234, ad, 0, q, DNS_T_TLSA, 1, 0, 0);
	rr_tlsa(&m, q, u, s, mt, len, 300);
	answer(q, DNS_T_TLSA, ad ? DNS_SECURE : DNS_INSECURE, &m);
}

/* A secure TLSA RRset of n records at _25._tcp.h, larger than struct
 * msg holds (owner names compressed): rd(i, out) writes record i's rdata
 * (usage, selector, matching type, data: at most TLSA_MANY_RD bytes) and
 * returns its length (any, 0 included). */
#define TLSA_MANY_RD	1024

static inline void
tlsa_many(const char *h, int n, int (*rd)(int i, unsigned char *out))
{
	unsigned char *b = malloc(12 + 300 + (size_t)n * (12 + TLSA_MANY_RD));
	struct msg q;
	char name[300];
	int o, i, len;

	if (b == NULL)
		abort();
	snprintf(name, sizeof(name), "_25._tcp.%s", h);
	begin(&q, 0x1234, 1, 0, name, DNS_T_TLSA, 0, 0, 0);
	memcpy(b, q.b, (size_t)q.n);
	b[6] = (unsigned char)(n >> 8);
	b[7] = (unsigned char)n;
	o = q.n;
	for (i = 0; i < n; i++) {
		static const unsigned char hdr[10] = { 0xc0, 12, 0, DNS_T_TLSA,
		    0, 1, 0, 0, 1, 44 };

		memcpy(b + o, hdr, sizeof(hdr));
		len = rd(i, b + o + sizeof(hdr) + 2);
		if (len < 0 || len > TLSA_MANY_RD || o + len > 65000)
			abort();
		b[o + sizeof(hdr)] = (unsigned char)(len >> 8);
		b[o + sizeof(hdr) + 1] = (unsigned char)len;
		o += (int)sizeof(hdr) + 2 + len;
	}
	/* the status dns_parse() gives it (secure, unless a record does
	 * not parse) */
	answer_raw(name, DNS_T_TLSA, DNS_ERROR, b, o);
	free(b);
}

static inline void
fail_with(const char *name, int type, int ede)
{
	struct msg m;

	begin(&m, 0x1234, 0, 2, name, type, 0, 0, ede >= 0 ? 1 : 0);
	if (ede >= 0)
		rr_opt_ede(&m, ede);
	answer(name, type, DNS_SERVFAIL, &m);
}

#endif
