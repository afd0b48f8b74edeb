/*
 * dnsmsg.h - DNS wire messages for the unit tests' fake resolvers
 * (test_dns_client, test_dane_lookup, test_policy_engine,
 * test_redis_engine): a header, the question, and resource records
 * appended to a fixed buffer; and a zone table answered as a server
 * would (zone_question(), zone_answer()).  Test code only; every helper
 * is static inline so a test takes what it uses.
 */
#ifndef MXG_TEST_DNSMSG_H
#define MXG_TEST_DNSMSG_H

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "policy/dns.h"

struct msg {
	unsigned char	 b[2048];
	int		 n;
};

static inline void
put16(struct msg *m, unsigned v)
{
	m->b[m->n++] = (unsigned char)(v >> 8);
	m->b[m->n++] = (unsigned char)v;
}

static inline void
put32(struct msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

static inline void
putname(struct msg *m, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);

		m->b[m->n++] = (unsigned char)l;
		memcpy(m->b + m->n, name, l);
		m->n += (int)l;
		name += l;
		if (*name == '.')
			name++;
	}
	m->b[m->n++] = 0;
}

/* A response header (QR RD RA, AD as asked) and its question. */
static inline void
begin(struct msg *m, unsigned id, int ad, int rcode, const char *qname,
    int qtype, int an, int ns, int ar)
{
	m->n = 0;
	put16(m, id);
	m->b[m->n++] = 0x81;
	m->b[m->n++] = (unsigned char)(0x80 | (ad ? 0x20 : 0) | rcode);
	put16(m, 1);
	put16(m, (unsigned)an);
	put16(m, (unsigned)ns);
	put16(m, (unsigned)ar);
	putname(m, qname);
	put16(m, (unsigned)qtype);
	put16(m, 1);
}

static inline void
rr_hdr(struct msg *m, const char *owner, int type, uint32_t ttl, int rdlen)
{
	putname(m, owner);
	put16(m, (unsigned)type);
	put16(m, 1);
	put32(m, ttl);
	put16(m, (unsigned)rdlen);
}

static inline void
rr_a(struct msg *m, const char *owner, const char *ip, uint32_t ttl)
{
	rr_hdr(m, owner, DNS_T_A, ttl, 4);
	inet_pton(AF_INET, ip, m->b + m->n);
	m->n += 4;
}

/* MX (pref >= 0), CNAME or NS (pref < 0). */
static inline void
rr_name(struct msg *m, const char *owner, int type, int pref,
    const char *target, uint32_t ttl)
{
	struct msg t = { .n = 0 };

	if (pref >= 0)
		put16(&t, (unsigned)pref);
	putname(&t, target);
	rr_hdr(m, owner, type, ttl, t.n);
	memcpy(m->b + m->n, t.b, (size_t)t.n);
	m->n += t.n;
}

/* TXT with one or two strings. */
static inline void
rr_txt(struct msg *m, const char *owner, const char *s1, const char *s2,
    uint32_t ttl)
{
	int l1 = (int)strlen(s1), l2 = s2 ? (int)strlen(s2) : -1;

	rr_hdr(m, owner, DNS_T_TXT, ttl, 1 + l1 + (s2 ? 1 + l2 : 0));
	m->b[m->n++] = (unsigned char)l1;
	memcpy(m->b + m->n, s1, (size_t)l1);
	m->n += l1;
	if (s2) {
		m->b[m->n++] = (unsigned char)l2;
		memcpy(m->b + m->n, s2, (size_t)l2);
		m->n += l2;
	}
}

/* TXT whose owner points at the question's name (offset 12): its
 * rdata rd of n bytes as given, malformed if need be (records past the
 * 64 an answer keeps, packed small). */
static inline void
rr_txt_q(struct msg *m, const char *rd, int n, uint32_t ttl)
{
	static const unsigned char owner[2] = { 0xc0, 12 };

	memcpy(m->b + m->n, owner, sizeof(owner));
	m->n += (int)sizeof(owner);
	put16(m, DNS_T_TXT);
	put16(m, 1);
	put32(m, ttl);
	put16(m, (unsigned)n);
	memcpy(m->b + m->n, rd, (size_t)n);
	m->n += n;
}

/* TLSA with len bytes of association data 0x40, 0x41, ... */
static inline void
rr_tlsa(struct msg *m, const char *owner, int u, int s, int mt, int len,
    uint32_t ttl)
{
	int i;

	rr_hdr(m, owner, DNS_T_TLSA, ttl, 3 + len);
	m->b[m->n++] = (unsigned char)u;
	m->b[m->n++] = (unsigned char)s;
	m->b[m->n++] = (unsigned char)mt;
	for (i = 0; i < len; i++)
		m->b[m->n++] = (unsigned char)(0x40 + i);
}

/* An OPT record (DO set) carrying an Extended DNS Error (RFC 8914). */
static inline void
rr_opt_ede(struct msg *m, int code)
{
	m->b[m->n++] = 0;		/* root */
	put16(m, 41);
	put16(m, 1232);
	put16(m, 0);
	put16(m, 0x8000);		/* DO */
	put16(m, 4 + 2);
	put16(m, 15);
	put16(m, 2);
	put16(m, (unsigned)code);
}

/* ---- a zone table served as answers (test_policy_engine,
 * test_redis_engine) ---- */

/* name, type, value: "pref host" for MX, text for TXT, address for A,
 * "usage selector mtype hexdata" for TLSA.  Names under signed.test are
 * answered with the AD bit (a validating resolver's secure answer). */
struct zrr {
	const char	*name;
	int		 type;
	const char	*value;
};

#define T_SERVFAIL	(-1)	/* zone entry: every query for the name fails */

/* The question of query q (n bytes): its name (dotted, no final dot) and
 * type; -1 when it is too short or the name does not fit. */
static inline int
zone_question(const unsigned char *q, ssize_t n, char *name, size_t sz,
    int *qtype)
{
	int off = 12, o = 0;

	if (n < 17)
		return -1;
	while (off < n && q[off] != 0) {
		int l = q[off];

		if (o + l + 2 >= (int)sz)
			return -1;
		if (o)
			name[o++] = '.';
		memcpy(name + o, q + off + 1, (size_t)l);
		o += l;
		off += l + 1;
	}
	name[o] = '\0';
	if (off + 2 >= n)
		return -1;
	*qtype = q[off + 1] << 8 | q[off + 2];
	return 0;
}

static inline int
zone_signed(const char *name)
{
	size_t l = strlen(name);

	return l >= 11 && strcasecmp(name + l - 11, "signed.test") == 0 &&
	    (l == 11 || name[l - 12] == '.');
}

/* The answer to query q (its id) for name and qtype from zone: NXDOMAIN
 * for a name the zone lacks, SERVFAIL for a T_SERVFAIL name, else every
 * record of that name and type (TTL 60).  A name with a CNAME entry (value:
 * the target) and no record of qtype gets the CNAME alone, as a resolver
 * that does not follow it answers: the client asks for the target. */
static inline void
zone_answer(const struct zrr *zone, const unsigned char *q,
    const char *name, int qtype, struct msg *m)
{
	int i, an = 0, exists = 0, servfail = 0, cname = 0, rtype = qtype;

	for (i = 0; zone[i].name; i++)
		if (strcasecmp(zone[i].name, name) == 0) {
			exists = 1;
			if (zone[i].type == qtype)
				an++;
			if (zone[i].type == DNS_T_CNAME)
				cname++;
			if (zone[i].type == T_SERVFAIL)
				servfail = 1;
		}
	if (servfail)
		an = 0;
	if (an == 0 && cname > 0 && !servfail) {
		rtype = DNS_T_CNAME;
		an = cname;
	}
	m->n = 0;
	put16(m, (unsigned)(q[0] << 8 | q[1]));
	m->b[m->n++] = 0x81;
	m->b[m->n++] = (unsigned char)(0x80 | (zone_signed(name) &&
	    !servfail ? 0x20 : 0) | (servfail ? 2 : exists ? 0 : 3));
	put16(m, 1);
	put16(m, (unsigned)an);
	put16(m, 0);
	put16(m, 0);
	putname(m, name);
	put16(m, (unsigned)qtype);
	put16(m, 1);
	for (i = 0; zone[i].name && !servfail; i++) {
		struct msg rd = { .n = 0 };

		if (strcasecmp(zone[i].name, name) != 0 ||
		    zone[i].type != rtype)
			continue;
		if (rtype == DNS_T_A) {
			inet_pton(AF_INET, zone[i].value, rd.b);
			rd.n = 4;
		} else if (rtype == DNS_T_CNAME) {
			putname(&rd, zone[i].value);
		} else if (rtype == DNS_T_MX) {
			put16(&rd, (unsigned)atoi(zone[i].value));
			putname(&rd, strchr(zone[i].value, ' ') + 1);
		} else if (rtype == DNS_T_TXT) {
			rd.b[0] = (unsigned char)strlen(zone[i].value);
			memcpy(rd.b + 1, zone[i].value, rd.b[0]);
			rd.n = 1 + rd.b[0];
		} else if (rtype == DNS_T_TLSA) {
			const char *h = zone[i].value;
			unsigned u, sl, mt;
			int used = 0;

			if (sscanf(h, "%u %u %u %n", &u, &sl, &mt, &used) < 3)
				continue;
			rd.b[0] = (unsigned char)u;
			rd.b[1] = (unsigned char)sl;
			rd.b[2] = (unsigned char)mt;
			rd.n = 3;
			for (h += used; h[0] && h[1] && rd.n < 200; h += 2) {
				unsigned x;

				sscanf(h, "%2x", &x);
				rd.b[rd.n++] = (unsigned char)x;
			}
		}
		/* the owner as a pointer to the question's name: answers
		 * of many records fit a UDP payload of 1232 bytes */
		if (m->n + 12 + rd.n > (int)sizeof(m->b))
			abort();
		m->b[m->n++] = 0xc0;
		m->b[m->n++] = 12;
		put16(m, (unsigned)rtype);
		put16(m, 1);
		put16(m, 0);
		put16(m, 60);
		put16(m, (unsigned)rd.n);
		memcpy(m->b + m->n, rd.b, (size_t)rd.n);
		m->n += rd.n;
	}
}

/* One query read from the UDP socket fd and answered from zone (a fake
 * resolver's read callback with nothing more to do). */
static inline void
zone_serve(int fd, const struct zrr *zone)
{
	unsigned char q[1500];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from,
	    &fl);
	char name[512];
	int qtype;
	struct msg m;

	if (zone_question(q, n, name, sizeof(name), &qtype) == -1)
		return;
	zone_answer(zone, q, name, qtype, &m);
	(void)!sendto(fd, m.b, (size_t)m.n, 0, (struct sockaddr *)&from, fl);
}

#endif
