/*
 * test_nfq.c - unit tests for the steering decisions: CIDR parsing and
 * matching (core/cidr.c), the verdict function and packet address
 * extraction (nfq/nfq.c); and the queue's verdict path against a fake
 * kernel: the netlink socket is one end of a socketpair, this file holds
 * the other, acks config messages, hands in packet messages, records the
 * verdicts and makes verdict sends or receives fail on demand.  The
 * monotonic clock can be moved ahead to pass the verdict deadline.
 */
// WRAP: socket bind getsockname sendto recv clock_gettime
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/stats.h"
#include "core/cidr.h"
#include "nfq/nfq.h"

static int
m(const char *cidr, const char *addr)
{
	struct cidr c;
	uint8_t a[16];
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;

	assert_int_equal(cidr_parse(cidr, &c), 0);
	assert_int_equal(inet_pton(fam, addr, a), 1);
	return cidr_match(&c, fam, a);
}

static void
test_cidr_parse(void **state)
{
	struct cidr c;
	char buf[64];
	const char *bad[] = { "", "/", "10.0.0.0/", "10.0.0.0/33", "::/129",
	    "10.0.0/8", "10.0.0.0/8x", "10.0.0.0/-1", "host.example",
	    "10.0.0.0/0008", "10.0.0.0//8", " 10.0.0.1", NULL };
	int i;

	assert_int_equal(cidr_parse("10.1.2.3/8", &c), 0);
	assert_string_equal(cidr_str(&c, buf, sizeof(buf)), "10.0.0.0/8");
	assert_int_equal(cidr_parse("192.0.2.7", &c), 0);
	assert_string_equal(cidr_str(&c, buf, sizeof(buf)), "192.0.2.7/32");
	assert_int_equal(cidr_parse("2001:db8::1/32", &c), 0);
	assert_string_equal(cidr_str(&c, buf, sizeof(buf)), "2001:db8::/32");
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(cidr_parse("fd25::10", &c), 0);
	assert_int_equal(c.plen, 128);
	assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_equal(cidr_parse("10.0.0.0/31", &c), 0);
	for (i = 0; bad[i]; i++)
		if (cidr_parse(bad[i], &c) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void
test_cidr_match(void **state)
{
	assert_true(m("10.0.0.0/8", "10.255.1.2"));
	assert_false(m("10.0.0.0/8", "11.0.0.1"));
	assert_true(m("192.0.2.0/25", "192.0.2.127"));
	assert_false(m("192.0.2.0/25", "192.0.2.128"));
	assert_true(m("192.0.2.7", "192.0.2.7"));
	assert_false(m("192.0.2.7", "192.0.2.6"));
	assert_true(m("0.0.0.0/0", "203.0.113.9"));
	assert_true(m("2001:db8::/32", "2001:db8:ffff::25"));
	assert_false(m("2001:db8::/32", "2001:db9::25"));
	assert_true(m("fd25::/63", "fd25:0:0:1::1"));
	assert_false(m("fd25::/64", "fd25:0:0:1::1"));
	assert_true(m("::/0", "::1"));
	/* families never mix: ::ffff:10.0.0.1 is not in 10.0.0.0/8 */
	assert_false(m("10.0.0.0/8", "::ffff:10.0.0.1"));
	assert_false(m("::/0", "10.0.0.1"));
}

static enum nfq_verdict
decide(const char *srcl, const char *dstl, const char *s, const char *d,
    int sat, int open_, enum nfq_reason *why)
{
	struct cidr src[4], dst[4];
	int ns = 0, nd = 0, fam = strchr(s, ':') ? AF_INET6 : AF_INET;
	uint8_t sa[16], da[16];

	if (srcl)
		assert_int_equal(cidr_parse(srcl, &src[ns++]), 0);
	if (dstl)
		assert_int_equal(cidr_parse(dstl, &dst[nd++]), 0);
	assert_int_equal(inet_pton(fam, s, sa), 1);
	assert_int_equal(inet_pton(fam, d, da), 1);
	return nfq_decide(src, ns, dst, nd, fam, sa, da, sat, open_, why);
}

static void
test_decide(void **state)
{
	enum nfq_reason why;

	assert_int_equal(decide(NULL, NULL, "10.0.0.1", "192.0.2.1", 0, 0, &why),
	    NFQ_INTERCEPT);
	assert_int_equal(why, NFQ_R_NONE);
	assert_int_equal(decide("10.0.0.0/8", NULL, "10.0.0.1", "192.0.2.1", 0,
	    0, &why), NFQ_BYPASS);
	assert_int_equal(why, NFQ_R_BYPASS_SRC);
	assert_int_equal(decide(NULL, "192.0.2.0/24", "10.0.0.1", "192.0.2.1",
	    0, 0, &why), NFQ_BYPASS);
	assert_int_equal(why, NFQ_R_BYPASS_DST);
	/* saturation: the fail mode decides */
	assert_int_equal(decide(NULL, NULL, "10.0.0.1", "192.0.2.1", 1, 1, &why),
	    NFQ_BYPASS);
	assert_int_equal(why, NFQ_R_SATURATED);
	assert_int_equal(decide(NULL, NULL, "10.0.0.1", "192.0.2.1", 1, 0, &why),
	    NFQ_DROP);
	/* an exemption wins over saturation, even fail-closed */
	assert_int_equal(decide(NULL, "192.0.2.0/24", "10.0.0.1", "192.0.2.1",
	    1, 0, &why), NFQ_BYPASS);
	assert_int_equal(why, NFQ_R_BYPASS_DST);
	/* source list does not match destinations and vice versa */
	assert_int_equal(decide("192.0.2.0/24", "10.0.0.0/8", "10.0.0.1",
	    "192.0.2.1", 0, 0, &why), NFQ_INTERCEPT);
	assert_int_equal(decide(NULL, "2001:db8::/32", "fd25::1", "2001:db8::25",
	    0, 0, &why), NFQ_BYPASS);
	assert_int_equal(decide(NULL, "2001:db8::/32", "fd25::1", "2001:db9::25",
	    0, 0, &why), NFQ_INTERCEPT);
}

/*
 * A bypass list of several prefixes: an address in none of them is
 * intercepted, one in any of them (the last too) bypassed.  The lists
 * above hold one prefix each.  Red with in_list() true for any list of
 * more than one entry: NFQ_BYPASS, 0x1 != 0 (a flow bypassed that must
 * be intercepted).
 */
static void
test_decide_lists(void **state)
{
	struct cidr dst[3];
	uint8_t sa[4], da[4];
	enum nfq_reason why;

	assert_int_equal(cidr_parse("198.51.100.0/24", &dst[0]), 0);
	assert_int_equal(cidr_parse("2001:db8::/32", &dst[1]), 0);
	assert_int_equal(cidr_parse("203.0.113.0/25", &dst[2]), 0);
	assert_int_equal(inet_pton(AF_INET, "10.0.0.1", sa), 1);
	assert_int_equal(inet_pton(AF_INET, "192.0.2.1", da), 1);
	assert_int_equal(nfq_decide(dst, 3, dst, 3, AF_INET, sa, da, 0, 0,
	    &why), NFQ_INTERCEPT);
	assert_int_equal(why, NFQ_R_NONE);
	assert_int_equal(inet_pton(AF_INET, "203.0.113.129", da), 1);
	assert_int_equal(nfq_decide(dst, 3, dst, 3, AF_INET, sa, da, 0, 0,
	    &why), NFQ_INTERCEPT);
	assert_int_equal(inet_pton(AF_INET, "203.0.113.127", da), 1);
	assert_int_equal(nfq_decide(NULL, 0, dst, 3, AF_INET, sa, da, 0, 0,
	    &why), NFQ_BYPASS);
	assert_int_equal(why, NFQ_R_BYPASS_DST);
}

static void
test_packet_addrs(void **state)
{
	uint8_t p4[40] = { 0x45 }, p6[60] = { 0x60 };
	const uint8_t *s, *d;
	int fam;

	memcpy(p4 + 12, "\x0a\x19\x01\x01", 4);
	memcpy(p4 + 16, "\x0a\x19\x01\x0a", 4);
	assert_int_equal(nfq_packet_addrs(p4, sizeof(p4), &fam, &s, &d), 0);
	assert_int_equal(fam, AF_INET);
	assert_memory_equal(s, "\x0a\x19\x01\x01", 4);
	assert_memory_equal(d, "\x0a\x19\x01\x0a", 4);
	assert_int_equal(nfq_packet_addrs(p4, 19, &fam, &s, &d), -1);
	p6[8] = 0xfd;
	p6[24] = 0x20;
	assert_int_equal(nfq_packet_addrs(p6, 40, &fam, &s, &d), 0);
	assert_int_equal(fam, AF_INET6);
	assert_int_equal(s[0], 0xfd);
	assert_int_equal(d[0], 0x20);
	assert_int_equal(nfq_packet_addrs(p6, 39, &fam, &s, &d), -1);
	p6[0] = 0x50;
	assert_int_equal(nfq_packet_addrs(p6, 60, &fam, &s, &d), -1);
	assert_int_equal(nfq_packet_addrs(p6, 0, &fam, &s, &d), -1);
}

/* ------------------------------------------------------------ fake kernel */

#define QNUM		7
#define MARK_MASK	0xff
#define MARK_INTERCEPT	0x01
#define MARK_BYPASS	0x02
#define BYPASS_DST	"198.51.100.0/24"

struct rec {
	uint32_t	 id;
	uint32_t	 verdict;
	uint32_t	 mark;
	int		 hasmark;
};

static int	 g_dfd = -1, g_kfd = -1;	/* daemon's end, kernel's end */
static int	 g_send_fail;		/* verdict sends still to fail */
static int	 g_send_errno = ENOBUFS;
static int	 g_send_failed;		/* verdict sends failed so far */
static int	 g_recv_enobufs;	/* recv()s still to fail */
static int	 g_recv_calls;
static int64_t	 g_skew_ms;		/* added to CLOCK_MONOTONIC */
static struct rec g_v[256];		/* verdicts the kernel took */
static int	 g_saturated;		/* the proxy's answer: saturated */
static size_t	 g_plen;		/* IPv4 payload cut to (0: whole) */
static int	 g_nv;

int	__real_socket(int, int, int);
int	__real_bind(int, const struct sockaddr *, socklen_t);
int	__real_getsockname(int, struct sockaddr *, socklen_t *);
ssize_t	__real_sendto(int, const void *, size_t, int,
	    const struct sockaddr *, socklen_t);
ssize_t	__real_recv(int, void *, size_t, int);
int	__real_clock_gettime(clockid_t, struct timespec *);

int
__wrap_socket(int domain, int type, int proto)
{
	int sv[2];

	if (domain != AF_NETLINK)
		return __real_socket(domain, type, proto);
	/* seqpacket keeps message boundaries, like netlink datagrams */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0, sv) == -1)
		return -1;
	g_dfd = sv[0];
	g_kfd = sv[1];
	return g_dfd;
}

int
__wrap_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	return fd == g_dfd ? 0 : __real_bind(fd, sa, len);
}

int
__wrap_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK, .nl_pid = 4242 };

	if (fd != g_dfd)
		return __real_getsockname(fd, sa, len);
	memcpy(sa, &nl, sizeof(nl));
	*len = sizeof(nl);
	return 0;
}

static void
kernel_ack(const struct nlmsghdr *req)
{
	struct {
		struct nlmsghdr	h;
		struct nlmsgerr	e;
	} ack;

	memset(&ack, 0, sizeof(ack));
	ack.h.nlmsg_len = NLMSG_LENGTH(sizeof(ack.e));
	ack.h.nlmsg_type = NLMSG_ERROR;
	ack.h.nlmsg_seq = req->nlmsg_seq;
	ack.e.msg = *req;
	assert_int_equal(send(g_kfd, &ack, ack.h.nlmsg_len, 0),
	    (ssize_t)ack.h.nlmsg_len);
}

static void
kernel_record(const struct nlmsghdr *h)
{
	const char *p = (const char *)NLMSG_DATA(h) +
	    NLMSG_ALIGN(sizeof(struct nfgenmsg));
	const char *end = (const char *)h + h->nlmsg_len;
	struct rec *r;

	assert_true(g_nv < (int)(sizeof(g_v) / sizeof(g_v[0])));
	r = &g_v[g_nv++];
	memset(r, 0, sizeof(*r));
	while (p + NLA_HDRLEN <= end) {
		const struct nlattr *a = (const void *)p;
		uint32_t v[2];

		assert_true(a->nla_len >= NLA_HDRLEN && p + a->nla_len <= end);
		if (a->nla_type == NFQA_VERDICT_HDR) {
			memcpy(v, p + NLA_HDRLEN, 8);
			r->verdict = ntohl(v[0]);
			r->id = ntohl(v[1]);
		} else if (a->nla_type == NFQA_MARK) {
			memcpy(v, p + NLA_HDRLEN, 4);
			r->mark = ntohl(v[0]);
			r->hasmark = 1;
		}
		p += NLA_ALIGN(a->nla_len);
	}
}

/* The kernel's side of sendto(): a datagram of verdicts is taken whole,
 * or refused whole (nothing of it is applied) while g_send_fail lasts. */
ssize_t
__wrap_sendto(int fd, const void *buf, size_t len, int flags,
    const struct sockaddr *sa, socklen_t salen)
{
	const struct nlmsghdr *h;
	size_t n;
	int verdicts = 0;

	if (fd != g_dfd)
		return __real_sendto(fd, buf, len, flags, sa, salen);
	for (h = buf, n = len; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n))
		if ((h->nlmsg_type & 0xff) == NFQNL_MSG_VERDICT)
			verdicts = 1;
	if (verdicts && g_send_fail > 0) {
		g_send_fail--;
		g_send_failed++;
		errno = g_send_errno;
		return -1;
	}
	for (h = buf, n = len; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
		assert_int_equal(h->nlmsg_type >> 8, NFNL_SUBSYS_QUEUE);
		if ((h->nlmsg_type & 0xff) == NFQNL_MSG_VERDICT)
			kernel_record(h);
		else if (h->nlmsg_flags & NLM_F_ACK)
			kernel_ack(h);
	}
	return (ssize_t)len;
}

ssize_t
__wrap_recv(int fd, void *buf, size_t len, int flags)
{
	if (fd == g_dfd) {
		g_recv_calls++;
		if (g_recv_enobufs > 0) {
			g_recv_enobufs--;
			errno = ENOBUFS;
			return -1;
		}
	}
	return __real_recv(fd, buf, len, flags);
}

int
__wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
	int r = __real_clock_gettime(clk, ts);

	if (r == 0 && clk == CLOCK_MONOTONIC)
		ts->tv_sec += g_skew_ms / 1000;
	return r;
}

/* A packet message for a TCP SYN from 10.0.0.1 to dst. */
static void kernel_packet_marked(uint32_t, const char *, int, uint32_t);

static void
kernel_packet(uint32_t id, const char *dst)
{
	kernel_packet_marked(id, dst, 0, 0);
}

/* The same, with NFQA_MARK (the packet's mark) when hasmark. */
static void
kernel_packet_marked(uint32_t id, const char *dst, int hasmark,
    uint32_t mark)
{
	char buf[256];
	struct nlmsghdr *h = (void *)buf;
	struct nfgenmsg *g;
	struct nlattr *a;
	uint8_t ip[20] = { 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6 };
	uint32_t nid = htonl(id);
	size_t off;

	memset(buf, 0, sizeof(buf));
	assert_int_equal(inet_pton(AF_INET, "10.0.0.1", ip + 12), 1);
	assert_int_equal(inet_pton(AF_INET, dst, ip + 16), 1);
	h->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
	g = NLMSG_DATA(h);
	g->nfgen_family = AF_INET;
	g->version = NFNETLINK_V0;
	g->res_id = htons(QNUM);
	off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*g));
	/* struct nfqnl_msg_packet_hdr: packed id, hw_protocol, hook */
	a = (void *)(buf + off);
	a->nla_type = NFQA_PACKET_HDR;
	a->nla_len = NLA_HDRLEN + 7;
	memcpy(buf + off + NLA_HDRLEN, &nid, 4);
	buf[off + NLA_HDRLEN + 4] = 0x08;
	buf[off + NLA_HDRLEN + 6] = NF_INET_LOCAL_OUT;
	off += NLA_ALIGN(a->nla_len);
	if (hasmark) {
		uint32_t nm = htonl(mark);

		a = (void *)(buf + off);
		a->nla_type = NFQA_MARK;
		a->nla_len = NLA_HDRLEN + 4;
		memcpy(buf + off + NLA_HDRLEN, &nm, 4);
		off += NLA_ALIGN(a->nla_len);
	}
	a = (void *)(buf + off);
	a->nla_type = NFQA_PAYLOAD;
	a->nla_len = (uint16_t)(NLA_HDRLEN + (g_plen ? g_plen : sizeof(ip)));
	memcpy(buf + off + NLA_HDRLEN, ip, sizeof(ip));
	off += NLA_ALIGN(a->nla_len);
	h->nlmsg_len = (uint32_t)off;
	assert_int_equal(send(g_kfd, buf, off, 0), (ssize_t)off);
}

/* A packet message for a TCP SYN from fd25::1 to the IPv6 dst. */
static void
kernel_packet6(uint32_t id, const char *dst)
{
	char buf[256];
	struct nlmsghdr *h = (void *)buf;
	struct nfgenmsg *g;
	struct nlattr *a;
	uint8_t ip[40] = { 0x60, 0, 0, 0, 0, 20, 6, 64 };
	uint32_t nid = htonl(id);
	size_t off;

	memset(buf, 0, sizeof(buf));
	assert_int_equal(inet_pton(AF_INET6, "fd25::1", ip + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, dst, ip + 24), 1);
	h->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
	g = NLMSG_DATA(h);
	g->nfgen_family = AF_INET6;
	g->version = NFNETLINK_V0;
	g->res_id = htons(QNUM);
	off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*g));
	a = (void *)(buf + off);
	a->nla_type = NFQA_PACKET_HDR;
	a->nla_len = NLA_HDRLEN + 7;
	memcpy(buf + off + NLA_HDRLEN, &nid, 4);
	buf[off + NLA_HDRLEN + 4] = 0x86;
	buf[off + NLA_HDRLEN + 5] = 0xdd;
	buf[off + NLA_HDRLEN + 6] = NF_INET_LOCAL_OUT;
	off += NLA_ALIGN(a->nla_len);
	a = (void *)(buf + off);
	a->nla_type = NFQA_PAYLOAD;
	a->nla_len = NLA_HDRLEN + sizeof(ip);
	memcpy(buf + off + NLA_HDRLEN, ip, sizeof(ip));
	off += NLA_ALIGN(a->nla_len);
	h->nlmsg_len = (uint32_t)off;
	assert_int_equal(send(g_kfd, buf, off, 0), (ssize_t)off);
}

/* ------------------------------------------------------------ fixture */

struct qt {
	struct ev_loop	*loop;
	struct nfq	*q;
	int		 saved_stderr;
	FILE		*log;
	int		(*until)(struct qt *);
	int		 want;
	struct ev_timer	*poll, *guard;
};

static int64_t
ctr(const char *name)
{
	return stats_value(stats_get(name, NULL));
}

static int
saturated(void *arg)
{
	return g_saturated;
}

/* The fixture's queue; listen, when not NULL, names the listeners of a
 * local-mode REDIRECT daemon on divert_port 10025. */
static int
setup_queue_listen(void **state, char **listen, int nlisten)
{
	static char *bypass_dst[] = { BYPASS_DST };
	struct qt *t = calloc(1, sizeof(*t));
	struct config cfg;
	char err[256];

	assert_non_null(t);
	/* the log goes to a file the tests read */
	assert_non_null(t->log = tmpfile());
	fflush(stderr);
	assert_true((t->saved_stderr = dup(STDERR_FILENO)) != -1);
	assert_int_equal(dup2(fileno(t->log), STDERR_FILENO), STDERR_FILENO);
	log_init("mxguard", 0, LOG_LVL_INFO);

	memset(&cfg, 0, sizeof(cfg));
	cfg.nfqueue_num = QNUM;
	cfg.nfqueue_maxlen = 1024;
	cfg.nfqueue_bufsize = 65536;
	cfg.mark_mask = MARK_MASK;
	cfg.intercept_mark = MARK_INTERCEPT;
	cfg.upstream_mark = MARK_BYPASS;
	cfg.fail_mode = (char *)"closed";
	cfg.bypass_dst.v = bypass_dst;
	cfg.bypass_dst.n = 1;
	if (listen != NULL) {
		cfg.listen.v = listen;
		cfg.listen.n = nlisten;
		cfg.divert_port = 10025;
		cfg.rules_mode = (char *)"local";
		cfg.listen_mode = (char *)"redirect";
		cfg.steering = (char *)"nfqueue";
	}

	g_send_fail = g_send_failed = g_recv_enobufs = g_recv_calls = 0;
	g_send_errno = ENOBUFS;
	g_nv = 0;
	g_saturated = 0;
	g_plen = 0;
	assert_non_null(t->loop = ev_loop_new());
	t->q = nfq_open(t->loop, &cfg, saturated, NULL, err, sizeof(err));
	if (t->q == NULL)
		fail_msg("nfq_open: %s", err);
	assert_non_null(t->poll = ev_timer_new(t->loop, NULL, NULL));
	*state = t;
	return 0;
}

static int
setup_queue(void **state)
{
	return setup_queue_listen(state, NULL, 0);
}

static int
setup_queue_v4only(void **state)
{
	static char *listen[] = { "127.0.0.1:10025" };

	return setup_queue_listen(state, listen, 1);
}

static int
setup_queue_v6only(void **state)
{
	static char *listen[] = { "[::1]:10025" };

	return setup_queue_listen(state, listen, 1);
}

static int
setup_queue_both(void **state)
{
	static char *listen[] = { "127.0.0.1:10025", "[::]:10025" };

	return setup_queue_listen(state, listen, 2);
}

/* The captured log so far (static buffer). */
static const char *
logtext(struct qt *t)
{
	static char buf[65536];
	size_t n;

	fflush(stderr);
	rewind(t->log);
	n = fread(buf, 1, sizeof(buf) - 1, t->log);
	buf[n] = '\0';
	return buf;
}

static int
teardown_queue(void **state)
{
	struct qt *t = *state;
	const char *l, *e;

	ev_timer_free(t->poll);
	nfq_close(t->q);
	ev_loop_free(t->loop);
	close(g_kfd);
	g_dfd = g_kfd = -1;
	l = logtext(t);
	dup2(t->saved_stderr, STDERR_FILENO);
	close(t->saved_stderr);
	/* cmocka's messages went to the capture too: pass them on, and our
	 * log lines with TEST_DEBUG set */
	for (; *l; l = *e ? e + 1 : e) {
		if ((e = strchr(l, '\n')) == NULL)
			e = l + strlen(l);
		if (getenv("TEST_DEBUG") || strstr(l, "mxguard[") == NULL ||
		    strstr(l, "mxguard[") > e)
			fprintf(stderr, "%.*s\n", (int)(e - l), l);
	}
	fclose(t->log);
	free(t);
	return 0;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

static void
poll_cb(void *arg)
{
	struct qt *t = arg;

	if (t->until && t->until(t))
		ev_loop_stop(t->loop);
	else
		ev_timer_arm(t->poll, 2);
}

static void
guard_cb(void *arg)
{
	ev_loop_stop(((struct qt *)arg)->loop);
}

/* Runs the loop until the condition holds, at most ms milliseconds (no
 * condition: ms milliseconds); returns whether it holds. */
static int
run(struct qt *t, int (*until)(struct qt *), int want, int ms)
{
	struct ev_timer *guard;

	ev_timer_free(t->poll);
	assert_non_null(t->poll = ev_timer_new(t->loop, poll_cb, t));
	assert_non_null(guard = ev_timer_new(t->loop, guard_cb, t));
	t->until = until;
	t->want = want;
	ev_timer_arm(t->poll, 0);
	ev_timer_arm(guard, (uint64_t)ms);
	ev_loop_run(t->loop);
	ev_timer_free(guard);
	return until ? until(t) : 1;
}

static int
have_verdicts(struct qt *t)
{
	return g_nv >= t->want;
}

static void
assert_verdict(int i, uint32_t id, uint32_t mark)
{
	assert_int_equal(g_v[i].id, id);
	assert_int_equal(g_v[i].verdict, NF_REPEAT);
	assert_true(g_v[i].hasmark);
	assert_int_equal(g_v[i].mark & MARK_MASK, mark);
}

/* A SYN queued with one of our marks already: our own socket's (SO_MARK
 * BYPASS) or one our verdict marked (NF_REPEAT), which the chain in place
 * did not take: the rules are another configuration's.  Dropped, counted
 * and logged; marking it again queued it for ever (INTERCEPT), and our
 * own connection was diverted into our listener (BYPASS made INTERCEPT).
 * A mark of someone else's outside the mask is no such thing. */
static void
test_own_mark_dropped(void **state)
{
	struct qt *t = *state;
	int64_t n = ctr("mxguard_nfq_marked_dropped_total");

	kernel_packet_marked(30, "192.0.2.1", 1, MARK_INTERCEPT);
	kernel_packet_marked(31, "192.0.2.1", 1, 0x50000 | MARK_BYPASS);
	kernel_packet_marked(32, "192.0.2.1", 1, 0x50000);
	assert_true(run(t, have_verdicts, 3, 2000));
	assert_int_equal(g_v[0].id, 30);
	assert_int_equal(g_v[0].verdict, NF_DROP);
	assert_int_equal(g_v[1].id, 31);
	assert_int_equal(g_v[1].verdict, NF_DROP);
	assert_verdict(2, 32, MARK_INTERCEPT);
	assert_int_equal(g_v[2].mark, 0x50000 | MARK_INTERCEPT);
	assert_int_equal(ctr("mxguard_nfq_marked_dropped_total") - n, 2);
	/* one line for the burst */
	assert_int_equal(count(logtext(t), "event=nfq-mark-unknown"), 1);
}

/*
 * Local mode, REDIRECT: nat sends a diverted IPv4 flow to 127.0.0.1 and an
 * IPv6 one to ::1 (the OUTPUT hook's REDIRECT target), on divert_port.
 * With listen = 127.0.0.1:10025 alone, nothing of mxguard's holds
 * [::1]:10025, and any local user may bind it (10025 is above
 * ip_unprivileged_port_start): the rules are installed for both families
 * and an INTERCEPT verdict sent the MTA's IPv6 flow, mail and all, to
 * that user's process, while mxguard ran.  A SYN of a family whose
 * target mxguard does not listen on is dropped (the MTA retries, or
 * takes the MX's other address); the other family is intercepted as
 * before, and a bypass is still a bypass (it is not diverted).
 */
static void
test_unheard_family_dropped(void **state)
{
	struct qt *t = *state;

	kernel_packet6(40, "2001:db8:25::1");
	kernel_packet(41, "192.0.2.1");
	kernel_packet(42, "198.51.100.7");	/* BYPASS_DST */
	assert_true(run(t, have_verdicts, 3, 2000));
	assert_int_equal(g_v[0].id, 40);
	assert_int_equal(g_v[0].verdict, NF_DROP);
	assert_verdict(1, 41, MARK_INTERCEPT);
	assert_verdict(2, 42, MARK_BYPASS);
	assert_int_equal(count(logtext(t), "reason=no-listener"), 1);
}

/* The same with the families the other way round: [::1] held alone, an
 * IPv4 SYN is dropped, not diverted to 127.0.0.1 where any local user may
 * listen; the IPv6 one is intercepted. */
static void
test_unheard_v4_dropped(void **state)
{
	struct qt *t = *state;

	kernel_packet(43, "192.0.2.1");
	kernel_packet6(44, "2001:db8:25::1");
	kernel_packet(45, "198.51.100.7");	/* BYPASS_DST */
	assert_true(run(t, have_verdicts, 3, 2000));
	assert_int_equal(g_v[0].id, 43);
	assert_int_equal(g_v[0].verdict, NF_DROP);
	assert_verdict(1, 44, MARK_INTERCEPT);
	assert_verdict(2, 45, MARK_BYPASS);
	assert_int_equal(count(logtext(t), "reason=no-listener"), 1);
}

/* A packet whose addresses cannot be read (a payload cut short) while
 * one family is unheard: it may be of that family, so it is dropped, not
 * diverted where mxguard may not listen.  Red before: intercepted, the
 * family check made only for a family read from the packet. */
static void
test_unheard_unreadable_dropped(void **state)
{
	struct qt *t = *state;

	g_plen = 10;
	kernel_packet(46, "192.0.2.1");
	g_plen = 0;
	assert_true(run(t, have_verdicts, 1, 2000));
	assert_int_equal(g_v[0].id, 46);
	assert_int_equal(g_v[0].verdict, NF_DROP);
	assert_int_equal(count(logtext(t), "reason=no-listener"), 1);
}

/*
 * The proxy saturated (max_sessions), fail_mode=closed: a SYN is dropped
 * (`reason=saturated`), one to a bypass_dst address still bypassed; and a
 * packet whose addresses cannot be read (a payload cut short) is no
 * exemption: intercepted unsaturated, dropped saturated.  The verdict
 * function alone is test_decide's; this is handle_packet() asking the
 * proxy and passing the fail mode on.  Red with handle_packet() not
 * asking (saturated 0): NF_REPEAT, 0x1 != 0; with fail_mode taken as
 * open: the bypass mark, 0x2 != 0; with an unreadable packet bypassed:
 * 0x2 != 0x1.
 */
static void
test_saturated_closed(void **state)
{
	struct qt *t = *state;

	g_plen = 10;
	kernel_packet(60, "192.0.2.1");
	g_plen = 0;
	assert_true(run(t, have_verdicts, 1, 2000));
	assert_verdict(0, 60, MARK_INTERCEPT);
	g_saturated = 1;
	kernel_packet(61, "192.0.2.1");
	kernel_packet(62, "198.51.100.7");	/* BYPASS_DST */
	g_plen = 10;
	kernel_packet(63, "192.0.2.1");
	assert_true(run(t, have_verdicts, 4, 2000));
	assert_int_equal(g_v[1].id, 61);
	assert_int_equal(g_v[1].verdict, NF_DROP);
	assert_verdict(2, 62, MARK_BYPASS);
	assert_int_equal(g_v[3].id, 63);
	assert_int_equal(g_v[3].verdict, NF_DROP);
	assert_int_equal(count(logtext(t), "reason=saturated"), 2);
}

/* Both families held (a wildcard holds the loopback address too): both
 * intercepted. */
static void
test_both_families_intercepted(void **state)
{
	struct qt *t = *state;

	kernel_packet6(50, "2001:db8:25::1");
	kernel_packet(51, "192.0.2.1");
	assert_true(run(t, have_verdicts, 2, 2000));
	assert_verdict(0, 50, MARK_INTERCEPT);
	assert_verdict(1, 51, MARK_INTERCEPT);
}

/* Where REDIRECT sends a family's flows, held by a listen entry? */
static int
unheard(const char *mode, const char *lmode, int port, const char *l1,
    const char *l2, int family)
{
	char *v[2] = { (char *)l1, (char *)l2 };
	struct config c;

	memset(&c, 0, sizeof(c));
	c.rules_mode = (char *)mode;
	c.listen_mode = (char *)lmode;
	c.divert_port = port;
	c.listen.v = v;
	c.listen.n = l2 ? 2 : 1;
	return config_listen_unheard(&c, family);
}

static void
test_listen_unheard(void **state)
{
	/* the default: both loopback addresses */
	assert_false(unheard("local", "redirect", 10025, "127.0.0.1:10025",
	    "[::1]:10025", AF_INET));
	assert_false(unheard("local", "redirect", 10025, "127.0.0.1:10025",
	    "[::1]:10025", AF_INET6));
	/* one family only: the other's target is anybody's */
	assert_false(unheard("local", "redirect", 10025, "127.0.0.1:10025",
	    NULL, AF_INET));
	assert_true(unheard("local", "redirect", 10025, "127.0.0.1:10025",
	    NULL, AF_INET6));
	assert_true(unheard("local", "redirect", 10025, "[::1]:10025",
	    NULL, AF_INET));
	/* wildcards hold the loopback address too */
	assert_false(unheard("local", "redirect", 10025, "0.0.0.0:10025",
	    "[::]:10025", AF_INET));
	assert_false(unheard("local", "redirect", 10025, "0.0.0.0:10025",
	    "[::]:10025", AF_INET6));
	/* local mode: another address is not where REDIRECT goes */
	assert_true(unheard("local", "redirect", 10025, "10.0.0.1:10025",
	    "[::1]:10025", AF_INET));
	assert_true(unheard("local", "redirect", 10025, "127.0.0.2:10025",
	    "[::1]:10025", AF_INET));
	/* nor another port */
	assert_true(unheard("local", "redirect", 10026, "127.0.0.1:10025",
	    "[::1]:10025", AF_INET));
	/* local mode with listen_mode = tproxy still REDIRECTs */
	assert_true(unheard("local", "tproxy", 10025, "127.0.0.1:10025",
	    NULL, AF_INET6));
	/* gateway, REDIRECT: any address of the family may be the inside
	 * interface's; none at all is not */
	assert_false(unheard("gateway", "redirect", 10025, "10.0.0.1:10025",
	    NULL, AF_INET));
	assert_true(unheard("gateway", "redirect", 10025, "0.0.0.0:10025",
	    NULL, AF_INET6));
	/* but not a loopback address, the default's: a flow from another
	 * interface reaches none (REDIRECT: the inbound interface's address,
	 * where any local user may listen; DNAT to it: a martian) */
	assert_true(unheard("gateway", "redirect", 10025, "127.0.0.1:10025",
	    "[::1]:10025", AF_INET));
	assert_true(unheard("gateway", "redirect", 10025, "127.0.0.1:10025",
	    "[::1]:10025", AF_INET6));
	assert_false(unheard("gateway", "redirect", 10025, "127.0.0.1:10025",
	    "10.0.0.1:10025", AF_INET));
	/* TPROXY: transparent sockets only */
	assert_false(unheard("gateway", "tproxy", 10025, "0.0.0.0:10025",
	    NULL, AF_INET6));
}

/* Verdict sends fail three times, then work: every verdict reaches the
 * kernel exactly once, in order, the failures are counted and the burst
 * is logged once. */
static void
test_verdict_retry(void **state)
{
	struct qt *t = *state;
	int64_t verr = ctr("mxguard_nfq_verdict_errors_total");
	int64_t errs = ctr("mxguard_nfq_errors_total");
	int64_t vfail = ctr("mxguard_nfq_verdicts_failed_total");
	const char *log;
	uint32_t id;

	g_send_fail = 3;
	for (id = 1; id <= 5; id++)
		kernel_packet(id, id == 3 ? "198.51.100.7" : "192.0.2.1");
	if (!run(t, have_verdicts, 5, 3000))
		fail_msg("%d of 5 verdicts reached the kernel", g_nv);
	run(t, NULL, 0, 50);		/* nothing more comes */
	assert_int_equal(g_send_failed, 3);
	assert_int_equal(g_nv, 5);
	for (id = 1; id <= 5; id++)
		assert_verdict((int)id - 1, id, id == 3 ? MARK_BYPASS :
		    MARK_INTERCEPT);
	assert_int_equal(ctr("mxguard_nfq_verdict_errors_total") - verr, 3);
	assert_int_equal(ctr("mxguard_nfq_errors_total") - errs, 3);
	assert_int_equal(ctr("mxguard_nfq_verdicts_failed_total") - vfail, 0);
	log = logtext(t);
	assert_int_equal(count(log, "event=nfq-verdict-retry "), 1);
	assert_non_null(strstr(log, "event=nfq-verdict-retry "
	    "error=\"No buffer space available\" pending=5"));
	assert_int_equal(count(log, "event=nfq-verdict-recovered errors=3"), 1);
	assert_null(strstr(log, "event=nfq-verdict-failed"));

	/* a new verdict while all is well goes at once, alone */
	kernel_packet(6, "192.0.2.1");
	assert_true(run(t, have_verdicts, 6, 3000));
	run(t, NULL, 0, 20);
	assert_int_equal(g_nv, 6);
	assert_verdict(5, 6, MARK_INTERCEPT);
	assert_int_equal(count(logtext(t), "event=nfq-verdict-retry "), 1);
}

/* Sends that keep failing: the verdicts are never given up while the
 * queue is open (a forgotten one would hold its packet's queue slot until
 * a restart); the stall is logged, and once the kernel takes datagrams
 * again every verdict goes, exactly once, in order. */
static void
test_verdict_stalled(void **state)
{
	struct qt *t = *state;
	int64_t vfail = ctr("mxguard_nfq_verdicts_failed_total");
	const char *log;
	int tries;

	g_send_fail = 1000000;
	g_send_errno = EPERM;
	kernel_packet(10, "192.0.2.1");
	kernel_packet(11, "198.51.100.9");
	run(t, NULL, 0, 40);
	assert_int_equal(g_nv, 0);
	assert_true(g_send_failed >= 2);	/* retried */
	assert_int_equal(count(logtext(t), "event=nfq-verdict-retry "
	    "error=\"Operation not permitted\" pending=2"), 1);

	/* a minute on: stalled, said, still pending */
	g_skew_ms += 60000;
	tries = g_send_failed;
	run(t, NULL, 0, 500);
	assert_true(g_send_failed > tries);	/* still retrying */
	log = logtext(t);
	assert_int_equal(count(log, "event=nfq-verdict-stalled pending=2 "
	    "oldest_ms="), 1);
	assert_int_equal(count(log, "event=nfq-verdict-failed"), 0);
	assert_int_equal(ctr("mxguard_nfq_verdicts_failed_total") - vfail, 0);

	/* the kernel works again: the held verdicts go, then the new one */
	g_send_fail = 0;
	kernel_packet(12, "192.0.2.1");
	assert_true(run(t, have_verdicts, 3, 3000));
	run(t, NULL, 0, 20);
	assert_int_equal(g_nv, 3);
	assert_verdict(0, 10, MARK_INTERCEPT);
	assert_verdict(1, 11, MARK_BYPASS);
	assert_verdict(2, 12, MARK_INTERCEPT);
	assert_int_equal(count(logtext(t), "event=nfq-verdict-recovered"), 1);
}

/* ENOBUFS from recv(): messages lost in the kernel.  Counted, logged once
 * for the burst, and the loop reads on without spinning. */
static void
test_recv_enobufs(void **state)
{
	struct qt *t = *state;
	int64_t enobufs = ctr("mxguard_nfq_enobufs_total");
	int calls;

	g_recv_enobufs = 2;
	kernel_packet(20, "192.0.2.1");
	assert_true(run(t, have_verdicts, 1, 3000));
	assert_verdict(0, 20, MARK_INTERCEPT);
	assert_int_equal(ctr("mxguard_nfq_enobufs_total") - enobufs, 2);
	assert_int_equal(count(logtext(t), "event=nfq-recv-enobufs "
	    "overruns=1 effect=dropped "), 1);
	calls = g_recv_calls;
	run(t, NULL, 0, 30);
	assert_int_equal(g_recv_calls, calls);	/* idle: no busy loop */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_decide_lists),
		cmocka_unit_test(test_packet_addrs),
		cmocka_unit_test(test_listen_unheard),
		cmocka_unit_test_setup_teardown(test_unheard_family_dropped,
		    setup_queue_v4only, teardown_queue),
		cmocka_unit_test_setup_teardown(test_unheard_v4_dropped,
		    setup_queue_v6only, teardown_queue),
		cmocka_unit_test_setup_teardown(test_both_families_intercepted,
		    setup_queue_both, teardown_queue),
		cmocka_unit_test_setup_teardown(test_saturated_closed,
		    setup_queue, teardown_queue),
		cmocka_unit_test_setup_teardown(test_unheard_unreadable_dropped,
		    setup_queue_v4only, teardown_queue),
		cmocka_unit_test_setup_teardown(test_own_mark_dropped,
		    setup_queue, teardown_queue),
		cmocka_unit_test_setup_teardown(test_verdict_retry,
		    setup_queue, teardown_queue),
		cmocka_unit_test_setup_teardown(test_verdict_stalled,
		    setup_queue, teardown_queue),
		cmocka_unit_test_setup_teardown(test_recv_enobufs,
		    setup_queue, teardown_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
