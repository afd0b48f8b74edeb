/*
 * nfq.c - NFQUEUE steering (see nfq.h and docs/rules.md).
 *
 * The rules queue only the SYN of a new port-25 flow.  For each one we
 * answer NF_REPEAT with a mark: the mangle chain runs again, sees the mark,
 * saves it to the connmark and lets the flow go (INTERCEPT: the nat or
 * TPROXY rule diverts it to us; BYPASS: direct).  Fail-closed while the
 * proxy is full answers NF_DROP (the client retransmits its SYN).
 *
 * Netlink is spoken on a plain AF_NETLINK socket with libnetfilter_queue's
 * nfq_nlmsg_* message helpers: its nfq_open()/nfq_close() would collide
 * with ours, and one fd in the event loop is all we need.
 *
 * Bursts: the kernel queue holds nfqueue_maxlen packets and the socket
 * buffer nfqueue_bufsize bytes (SO_RCVBUFFORCE as root).  A full queue
 * drops the packet (fail_mode=closed; the client retransmits) or accepts
 * it unmarked, i.e. direct (fail_mode=open: NFQA_CFG_F_FAIL_OPEN).  A full
 * socket buffer makes the kernel's send of a packet message fail: the
 * kernel then never queues that packet but drops it (fail_mode=closed,
 * counted as user_dropped) or accepts it unmarked (fail_mode=open), and
 * our next recv() reports ENOBUFS, which is logged, counted and survived.
 * So no packet waits for a verdict whose message we never got.
 *
 * Verdicts: the kernel keeps a queued packet until it gets a verdict for
 * it; there is no timeout.  So a verdict is dropped only when it has to
 * be: each one decided goes on a pending list (packet id, verdict, mark)
 * that a wakeup sends in a few batched sendto()s, oldest first, and a
 * verdict leaves the list only once the kernel took the datagram that
 * carries it (netlink to the kernel takes a datagram whole or not at all,
 * so none is sent twice).  A failed send (ENOBUFS: the kernel could not
 * allocate the message; anything else, EINTR but a few times) keeps the
 * list and retries on a short timer with backoff, and at every wakeup
 * that has new verdicts.  Not on writability: a netlink socket to the
 * kernel is always writable (the kernel consumes each message inside
 * sendmsg), so waiting for POLLOUT would spin.  The list is bounded by
 * nfqueue_maxlen (the kernel never holds more packets for us), so it is
 * never given up while the queue is open: a late verdict still frees the
 * packet's slot, a forgotten one would hold it until a restart.  Sends
 * failing for longer than NFQ_STALL_MS are logged every NFQ_STALL_LOG_MS.
 *
 * A reload that takes an address or prefix out of bypass_src/bypass_dst
 * also deletes the conntrack entries of the flows those entries let
 * through (ct_forget()): their segments are neither SYNs nor NEW, so they
 * would go on to the MX direct for as long as the MTA keeps them.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libnetfilter_queue's own nfq_open/nfq_close have our names: hide them */
#define nfq_open	nfq_lib_open_unused
#define nfq_close	nfq_lib_close_unused
#include <libnetfilter_queue/libnetfilter_queue.h>
#undef nfq_open
#undef nfq_close

#include "core/log.h"
#include "core/stats.h"
#include "core/cidr.h"
#include "nfq/nfq.h"

#define NFQ_COPY_RANGE	128	/* IPv6 header + TCP header is enough */
#define NFQ_RECV_BATCH	64	/* messages per wakeup before yielding */
#define NFQ_VERDICT_MSG	64	/* room for one verdict message with mark */
#define NFQ_SEND_BUF	(NFQ_RECV_BATCH * NFQ_VERDICT_MSG)
#define NFQ_STATS_MS	2000
#define NFQ_PENDING_MIN	NFQ_RECV_BATCH	/* first size of the pending list */
#define NFQ_EINTR_TRIES	3	/* a send interrupted: again at once */
#define NFQ_RETRY_MIN_MS 1	/* first retry of a failed verdict send */
#define NFQ_RETRY_MAX_MS 200	/* backoff doubles up to this */
#define NFQ_STALL_MS	5000	/* verdicts this old: stalled, logged */
#define NFQ_STALL_LOG_MS 10000	/* and again at most this often */
#define NFQ_ENOBUFS_LOG_MS 1000	/* receive overruns logged as often */
#define NFQ_FAILED_IDS	16	/* packet ids named in one log line */

/* A verdict decided but not yet taken by the kernel. */
struct nfq_pending {
	uint64_t	 since;		/* ev_now() when decided */
	uint32_t	 id;
	uint32_t	 mark;
	int		 verdict;	/* NF_REPEAT or NF_DROP */
	int		 setmark;
};

struct nfq_lists {
	struct cidr	*src, *dst;
	int		 nsrc, ndst;
};

struct nfq {
	struct ev_loop		*loop;
	int			 fd;
	uint32_t		 portid;
	uint16_t		 qnum;
	uint32_t		 mark_mask;
	uint32_t		 intercept_mark, bypass_mark;
	int			 fail_open;
	int			 unheard4, unheard6;	/* config_listen_unheard() */
	struct nfq_lists	 lists;
	nfq_saturated_fn	*saturated;
	void			*arg;
	uint32_t		 seq;
	char			*rbuf;
	size_t			 rbufsz;
	char			 sbuf[NFQ_SEND_BUF];
	/* pending verdicts, oldest first: pend[phead .. phead + pn) */
	struct nfq_pending	*pend;
	size_t			 phead, pn, pcap, pmax;
	struct ev_timer		*retry_timer;
	uint64_t		 retry_ms;	/* backoff; 0: no send failing */
	uint64_t		 burst_errors;	/* failed sends since the first */
	uint64_t		 stall_next;	/* no stall line before (ev_now) */
	int			 last_errno;	/* of the last failed send */
	uint64_t		 enobufs_next;	/* no overrun line before */
	uint64_t		 enobufs_unlogged;
	uint64_t		 foreign_next;	/* no mark-unknown line before */
	uint64_t		 foreign_unlogged;
	struct ev_timer		*stats_timer;
};

static struct stat_ctr *st_pkts, *st_intercept, *st_bypass, *st_drop,
    *st_by_src, *st_by_dst, *st_by_sat, *st_enobufs, *st_errors, *st_qdrop, *st_udrop, *st_qlen, *st_offered,
    *st_verr, *st_vfailed, *st_foreign;

static void
stats_init(void)
{
	if (st_pkts)
		return;
	st_pkts = stats_get("mxguard_nfq_packets_total",
	    "SYNs received from NFQUEUE");
	st_intercept = stats_get("mxguard_nfq_verdicts_total{verdict=\"intercept\"}",
	    "NFQUEUE verdicts by type");
	st_bypass = stats_get("mxguard_nfq_verdicts_total{verdict=\"bypass\"}", NULL);
	st_drop = stats_get("mxguard_nfq_verdicts_total{verdict=\"drop\"}", NULL);
	st_by_src = stats_get("mxguard_nfq_bypass_total{reason=\"bypass_src\"}",
	    "Flows sent direct, by reason");
	st_by_dst = stats_get("mxguard_nfq_bypass_total{reason=\"bypass_dst\"}", NULL);
	st_by_sat = stats_get("mxguard_nfq_bypass_total{reason=\"saturated\"}", NULL);
	st_enobufs = stats_get("mxguard_nfq_enobufs_total",
	    "Netlink receive buffer overruns (queued messages lost)");
	st_errors = stats_get("mxguard_nfq_errors_total",
	    "Malformed queue messages and failed verdict sends");
	st_qdrop = stats_get("mxguard_nfq_queue_dropped_total",
	    "Packets the kernel could not queue: queue full (kernel counter)");
	st_udrop = stats_get("mxguard_nfq_user_dropped_total",
	    "Packets the kernel could not send to mxguard (kernel counter)");
	st_offered = stats_get("mxguard_nfq_offered_total",
	    "Packets the kernel tried to queue (kernel id sequence); minus "
	    "mxguard_nfq_packets_total: not delivered (queue or buffer full)");
	st_qlen = stats_get("mxguard_nfq_queue_length",
	    "Packets waiting in the kernel queue");
	st_verr = stats_counter("mxguard_nfq_verdict_errors_total",
	    "Verdict sends the kernel refused (the verdicts are retried)");
	st_vfailed = stats_counter("mxguard_nfq_verdicts_failed_total",
	    "Verdicts unsent when the queue was closed (the kernel drops their packets)");
	st_foreign = stats_counter("mxguard_nfq_marked_dropped_total",
	    "SYNs queued with one of our marks already: the rules in place "
	    "do not know the marks mxguard runs with (dropped)");
}

/* ------------------------------------------------------------ decisions */

static void
lists_free(struct nfq_lists *l)
{
	free(l->src);
	free(l->dst);
	memset(l, 0, sizeof(*l));
}

static int
list_parse(const struct strlist *in, struct cidr **out, int *n,
    const char *key, char *err, size_t errsz)
{
	int i;

	*out = NULL;
	*n = 0;
	if (in->n == 0)
		return 0;
	if ((*out = calloc((size_t)in->n, sizeof(**out))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	for (i = 0; i < in->n; i++)
		if (cidr_parse(in->v[i], &(*out)[i]) == -1) {
			snprintf(err, errsz, "%s: \"%s\" is not an address or "
			    "prefix", key, in->v[i]);
			free(*out);
			*out = NULL;
			return -1;
		}
	*n = in->n;
	return 0;
}

static int
lists_parse(const struct config *c, struct nfq_lists *l, char *err,
    size_t errsz)
{
	memset(l, 0, sizeof(*l));
	if (list_parse(&c->bypass_src, &l->src, &l->nsrc, "bypass_src", err,
	    errsz) == -1)
		return -1;
	if (list_parse(&c->bypass_dst, &l->dst, &l->ndst, "bypass_dst", err,
	    errsz) == -1) {
		lists_free(l);
		return -1;
	}
	return 0;
}

int
nfq_config_check(const struct config *c, char *err, size_t errsz)
{
	struct nfq_lists l;

	if (lists_parse(c, &l, err, errsz) == -1)
		return -1;
	lists_free(&l);
	return 0;
}

static int
in_list(const struct cidr *v, int n, int family, const void *addr)
{
	int i;

	for (i = 0; i < n; i++)
		if (cidr_match(&v[i], family, addr))
			return 1;
	return 0;
}

enum nfq_verdict
nfq_decide(const struct cidr *src, int nsrc, const struct cidr *dst,
    int ndst, int family, const void *saddr, const void *daddr,
    int saturated, int fail_open, enum nfq_reason *why)
{
	enum nfq_reason r;

	if (in_list(src, nsrc, family, saddr))
		r = NFQ_R_BYPASS_SRC;
	else if (in_list(dst, ndst, family, daddr))
		r = NFQ_R_BYPASS_DST;
	else if (saturated)
		r = NFQ_R_SATURATED;
	else
		r = NFQ_R_NONE;
	if (why)
		*why = r;
	switch (r) {
	case NFQ_R_NONE:
		return NFQ_INTERCEPT;
	case NFQ_R_SATURATED:
		return fail_open ? NFQ_BYPASS : NFQ_DROP;
	default:
		return NFQ_BYPASS;
	}
}

/* Source and destination of an IPv4/IPv6 packet; -1 if too short. */
int
nfq_packet_addrs(const uint8_t *p, size_t len, int *family,
    const uint8_t **saddr, const uint8_t **daddr)
{
	if (len < 1)
		return -1;
	switch (p[0] >> 4) {
	case 4:
		if (len < 20)
			return -1;
		*family = AF_INET;
		*saddr = p + 12;
		*daddr = p + 16;
		return 0;
	case 6:
		if (len < 40)
			return -1;
		*family = AF_INET6;
		*saddr = p + 8;
		*daddr = p + 24;
		return 0;
	}
	return -1;
}

/* ------------------------------------------------------------ netlink */

static void
attr_put_be32(struct nlmsghdr *nlh, uint16_t type, uint32_t v)
{
	struct nlattr *a = (struct nlattr *)((char *)nlh +
	    NLMSG_ALIGN(nlh->nlmsg_len));

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + sizeof(v);
	v = htonl(v);
	memcpy((char *)a + NLA_HDRLEN, &v, sizeof(v));
	nlh->nlmsg_len = NLMSG_ALIGN(nlh->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static int
nl_send(struct nfq *q, const void *buf, size_t len)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	ssize_t n;

	do
		n = sendto(q->fd, buf, len, 0, (struct sockaddr *)&sa,
		    sizeof(sa));
	while (n == -1 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

static void handle_packet(struct nfq *, const struct nlmsghdr *);
static void flush_verdicts(struct nfq *);
static void recv_enobufs(struct nfq *);

/* Sends one config message and waits for its ack (at open/reconfigure,
 * and at reconfigure: packets read meanwhile are answered as usual). */
static int
nl_config(struct nfq *q, struct nlmsghdr *nlh, char *err, size_t errsz)
{
	char buf[8192];
	uint32_t seq = ++q->seq;
	int tries;

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	if (nl_send(q, nlh, nlh->nlmsg_len) == -1) {
		snprintf(err, errsz, "netlink send: %s", strerror(errno));
		return -1;
	}
	for (tries = 0; tries < 1000; tries++) {
		struct pollfd pfd = { q->fd, POLLIN, 0 };
		struct nlmsghdr *h;
		ssize_t n;

		if (poll(&pfd, 1, 2000) <= 0) {
			snprintf(err, errsz, "no answer from nfnetlink_queue");
			return -1;
		}
		if ((n = recv(q->fd, buf, sizeof(buf), 0)) == -1) {
			int e = errno;	/* the log line may change errno */

			if (e == ENOBUFS)
				recv_enobufs(q);
			if (e == EINTR || e == EAGAIN || e == ENOBUFS)
				continue;
			snprintf(err, errsz, "netlink recv: %s", strerror(e));
			return -1;
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		    h = NLMSG_NEXT(h, n)) {
			if ((h->nlmsg_type & 0xff) == NFQNL_MSG_PACKET &&
			    (h->nlmsg_type >> 8) == NFNL_SUBSYS_QUEUE) {
				/* a packet already: answer it, never lose it */
				handle_packet(q, h);
				continue;
			}
			if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == seq) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				flush_verdicts(q);
				if (e->error == 0)
					return 0;
				snprintf(err, errsz, "%s", strerror(-e->error));
				errno = -e->error;
				return -1;
			}
		}
	}
	snprintf(err, errsz, "no ack from nfnetlink_queue");
	return -1;
}

static int
send_flags(struct nfq *q, char *err, size_t errsz)
{
	char buf[256];
	struct nlmsghdr *nlh;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->qnum);
	attr_put_be32(nlh, NFQA_CFG_FLAGS, q->fail_open ? NFQA_CFG_F_FAIL_OPEN : 0);
	attr_put_be32(nlh, NFQA_CFG_MASK, NFQA_CFG_F_FAIL_OPEN);
	return nl_config(q, nlh, err, errsz);
}

/* ------------------------------------------------------------ verdicts */

static void
pending_shift(struct nfq *q, size_t n)
{
	q->phead += n;
	q->pn -= n;
	if (q->pn == 0)
		q->phead = 0;
}

/*
 * Logs and forgets the n oldest pending verdicts.  The kernel keeps their
 * packets queued, each in one of the nfqueue_maxlen slots, until a verdict
 * comes (it will not: the id is forgotten), the packet's device goes away,
 * or mxguard closes the queue (exit, restart): then the kernel drops every
 * packet still queued, whatever the fail mode.  The client's retransmitted
 * SYN is a new packet with a verdict of its own, so the flow is only late;
 * what is lost is the slot, until the queue is closed.
 */
static void
pending_fail(struct nfq *q, size_t n, const char *reason, int err)
{
	char ids[NFQ_FAILED_IDS * 11 + 8];
	size_t i, len = 0;

	if (n == 0)
		return;
	ids[0] = '\0';
	for (i = 0; i < n && i < NFQ_FAILED_IDS; i++)
		len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%u",
		    i ? "," : "", q->pend[q->phead + i].id);
	if (n > NFQ_FAILED_IDS)
		snprintf(ids + len, sizeof(ids) - len, ",...");
	log_err("event=nfq-verdict-failed reason=%s error=\"%s\" count=%zu "
	    "ids=%s", reason, err ? strerror(err) : "none", n, ids);
	stats_add(st_vfailed, (int64_t)n);
	pending_shift(q, n);
}

static int
pending_grow(struct nfq *q)
{
	struct nfq_pending *p;
	size_t cap;

	if (q->pcap >= q->pmax)
		return -1;
	cap = q->pcap * 2 > q->pmax ? q->pmax : q->pcap * 2;
	if ((p = reallocarray(q->pend, cap, sizeof(*p))) == NULL)
		return -1;
	q->pend = p;
	q->pcap = cap;
	return 0;
}

/* Adds a verdict to the pending list (sent at the end of the wakeup). */
static void
pending_add(struct nfq *q, uint32_t id, int verdict, int setmark,
    uint32_t mark)
{
	struct nfq_pending *p;

	/* more than the kernel can hold for us, or out of memory: this
	 * cannot wait, the oldest goes */
	if (q->pn == q->pcap && pending_grow(q) == -1)
		pending_fail(q, 1, "overflow", q->pcap < q->pmax ? ENOMEM :
		    q->last_errno);
	if (q->phead + q->pn == q->pcap) {
		memmove(q->pend, q->pend + q->phead, q->pn * sizeof(*q->pend));
		q->phead = 0;
	}
	p = &q->pend[q->phead + q->pn++];
	p->since = ev_now(q->loop);
	p->id = id;
	p->verdict = verdict;
	p->setmark = setmark;
	p->mark = mark;
}

/* Verdicts that could not go for NFQ_STALL_MS: said, every
 * NFQ_STALL_LOG_MS while it lasts; they stay on the list (see the top). */
static void
pending_stalled(struct nfq *q)
{
	uint64_t now = ev_now(q->loop), age;

	if (q->pn == 0 || now < q->stall_next)
		return;
	age = now - q->pend[q->phead].since;
	if (age < NFQ_STALL_MS)
		return;
	q->stall_next = now + NFQ_STALL_LOG_MS;
	log_err("event=nfq-verdict-stalled pending=%zu oldest_ms=%llu "
	    "error=\"%s\" note=\"their packets hold queue slots until the "
	    "kernel takes the verdicts; still retrying\"", q->pn,
	    (unsigned long long)age, strerror(q->last_errno));
}

static size_t
verdict_put(struct nfq *q, char *buf, const struct nfq_pending *p)
{
	struct nlmsghdr *nlh;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, q->qnum);
	nfq_nlmsg_verdict_put(nlh, (int)p->id, p->verdict);
	if (p->setmark)
		nfq_nlmsg_verdict_put_mark(nlh, p->mark);
	return NLMSG_ALIGN(nlh->nlmsg_len);
}

/* One datagram of verdicts: 0 once the kernel took it (all of it: netlink
 * datagrams go whole or not at all), -1 with errno. */
static int
verdict_send(struct nfq *q, size_t len)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	ssize_t n;
	int tries = 0;

	do
		n = sendto(q->fd, q->sbuf, len, 0, (struct sockaddr *)&sa,
		    sizeof(sa));
	while (n == -1 && errno == EINTR && ++tries < NFQ_EINTR_TRIES);
	return n == -1 ? -1 : 0;
}

/* The end of a burst of failed sends: all sent (or the list emptied). */
static void
retry_end(struct nfq *q, int recovered)
{
	if (q->retry_ms == 0)
		return;
	if (recovered)
		log_info("event=nfq-verdict-recovered errors=%llu",
		    (unsigned long long)q->burst_errors);
	q->retry_ms = 0;
	q->burst_errors = 0;
	if (q->retry_timer)
		ev_timer_stop(q->retry_timer);
}

static void
retry_schedule(struct nfq *q, int err)
{
	stats_add(st_verr, 1);
	stats_add(st_errors, 1);
	q->last_errno = err;
	q->burst_errors++;
	if (q->retry_ms == 0) {
		/* once per burst; its end is logged too */
		log_warn("event=nfq-verdict-retry error=\"%s\" pending=%zu",
		    strerror(err), q->pn);
		q->retry_ms = NFQ_RETRY_MIN_MS;
	}
	/* a timer already set stays: a wakeup's failure does not delay it */
	if (q->retry_timer && !ev_timer_pending(q->retry_timer))
		ev_timer_arm(q->retry_timer, q->retry_ms);
}

/* Sends the pending verdicts, oldest first, NFQ_SEND_BUF bytes to a
 * datagram; at the first failure the rest stays for a retry. */
static void
flush_verdicts(struct nfq *q)
{
	while (q->pn > 0) {
		size_t k, len = 0;

		for (k = 0; k < q->pn &&
		    len + NFQ_VERDICT_MSG <= sizeof(q->sbuf); k++)
			len += verdict_put(q, q->sbuf + len,
			    &q->pend[q->phead + k]);
		if (verdict_send(q, len) == -1) {
			retry_schedule(q, errno);
			return;
		}
		pending_shift(q, k);
	}
	retry_end(q, 1);
}

static void
retry_cb(void *arg)
{
	struct nfq *q = arg;

	q->retry_ms = q->retry_ms * 2 > NFQ_RETRY_MAX_MS ? NFQ_RETRY_MAX_MS :
	    q->retry_ms * 2;
	pending_stalled(q);
	if (q->pn == 0) {
		retry_end(q, 0);
		return;
	}
	flush_verdicts(q);
}

static const char *const verdict_names[] = { "intercept", "bypass", "drop" };
static const char *const reason_names[] = { "", "bypass_src", "bypass_dst",
    "saturated", "no-listener" };

static void
handle_packet(struct nfq *q, const struct nlmsghdr *nlh)
{
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	const struct nfqnl_msg_packet_hdr *ph;
	const uint8_t *payload, *sa, *da;
	uint32_t id, mark = 0, newmark;
	size_t plen;
	int family;
	enum nfq_reason why;
	enum nfq_verdict v;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == NULL) {
		stats_add(st_errors, 1);
		return;
	}
	ph = (const void *)((const char *)attr[NFQA_PACKET_HDR] + NLA_HDRLEN);
	id = ntohl(ph->packet_id);
	stats_add(st_pkts, 1);
	if (attr[NFQA_MARK])
		memcpy(&mark, (const char *)attr[NFQA_MARK] + NLA_HDRLEN, 4),
		    mark = ntohl(mark);
	if (attr[NFQA_PAYLOAD] == NULL) {
		stats_add(st_errors, 1);
		/* cannot classify: treat as intercept (the proxy decides) */
		payload = NULL;
		plen = 0;
	} else {
		payload = (const uint8_t *)attr[NFQA_PAYLOAD] + NLA_HDRLEN;
		plen = attr[NFQA_PAYLOAD]->nla_len - NLA_HDRLEN;
	}
	/* A SYN queued with one of our marks already came from our own
	 * sockets (SO_MARK BYPASS) or from our verdict (NF_REPEAT), and the
	 * chain that should have saved the mark and let it go did not know
	 * it: the rules in place are another configuration's (a mark
	 * changed, `rules install` run, the daemon not restarted yet).
	 * Marked again it would come back for ever, and our own connection
	 * would be diverted into our listener: a loop.  Dropped. */
	if ((mark & q->mark_mask) == (q->intercept_mark & q->mark_mask) ||
	    (mark & q->mark_mask) == (q->bypass_mark & q->mark_mask)) {
		uint64_t now = ev_now(q->loop);

		stats_add(st_drop, 1);
		stats_add(st_foreign, 1);
		pending_add(q, id, NF_DROP, 0, 0);
		q->foreign_unlogged++;
		if (now >= q->foreign_next) {
			log_err("event=nfq-mark-unknown dropped=%llu mark=0x%x "
			    "note=\"a SYN came back with our own mark: the "
			    "rules in place are not this configuration's "
			    "(intercept_mark, upstream_mark, mark_mask); "
			    "install the rules of the configuration the "
			    "daemon runs, or restart it on the file's\"",
			    (unsigned long long)q->foreign_unlogged, mark);
			q->foreign_unlogged = 0;
			q->foreign_next = now + NFQ_ENOBUFS_LOG_MS;
		}
		return;
	}
	if (payload == NULL ||
	    nfq_packet_addrs(payload, plen, &family, &sa, &da) == -1) {
		stats_add(st_errors, 1);
		family = AF_UNSPEC;
		sa = da = NULL;
	}
	if (family == AF_UNSPEC)
		v = nfq_decide(NULL, 0, NULL, 0, AF_UNSPEC, NULL, NULL,
		    q->saturated ? q->saturated(q->arg) : 0, q->fail_open, &why);
	else
		v = nfq_decide(q->lists.src, q->lists.nsrc, q->lists.dst,
		    q->lists.ndst, family, sa, da,
		    q->saturated ? q->saturated(q->arg) : 0, q->fail_open, &why);
	/* diverted, it would land where mxguard does not listen and any
	 * local user may (config_listen_unheard()): not diverted, dropped;
	 * so is a packet whose family could not be read while one family
	 * is unheard (the kernel copies the IP header, so only in theory) */
	if (v == NFQ_INTERCEPT && ((family == AF_INET && q->unheard4) ||
	    (family == AF_INET6 && q->unheard6) ||
	    (family == AF_UNSPEC && (q->unheard4 || q->unheard6)))) {
		v = NFQ_DROP;
		why = NFQ_R_NO_LISTENER;
	}
	switch (v) {
	case NFQ_INTERCEPT:
		stats_add(st_intercept, 1);
		newmark = (mark & ~q->mark_mask) | (q->intercept_mark & q->mark_mask);
		pending_add(q, id, NF_REPEAT, 1, newmark);
		break;
	case NFQ_BYPASS:
		stats_add(st_bypass, 1);
		stats_add(why == NFQ_R_BYPASS_SRC ? st_by_src :
		    why == NFQ_R_BYPASS_DST ? st_by_dst : st_by_sat, 1);
		newmark = (mark & ~q->mark_mask) | (q->bypass_mark & q->mark_mask);
		pending_add(q, id, NF_REPEAT, 1, newmark);
		break;
	case NFQ_DROP:
	default:
		stats_add(st_drop, 1);
		pending_add(q, id, NF_DROP, 0, 0);
		break;
	}
	if (log_enabled(LOG_LVL_DEBUG) || v != NFQ_INTERCEPT) {
		char s[INET6_ADDRSTRLEN] = "?", d[INET6_ADDRSTRLEN] = "?";

		if (family != AF_UNSPEC) {
			inet_ntop(family, sa, s, sizeof(s));
			inet_ntop(family, da, d, sizeof(d));
		}
		log_msg(v == NFQ_INTERCEPT ? LOG_LVL_DEBUG : LOG_LVL_INFO,
		    "event=nfq-verdict id=%u src=%s dst=%s verdict=%s%s%s",
		    id, s, d, verdict_names[v], why ? " reason=" : "",
		    reason_names[why]);
	}
}

/*
 * recv() said ENOBUFS: the socket buffer was full and the kernel could not
 * deliver some packet messages.  It never queued those packets (see the
 * top of this file): it dropped them (fail_mode=closed) or let them go
 * unmarked, i.e. direct (fail_mode=open), so none waits for a verdict.
 * Counted every time; logged at most once per NFQ_ENOBUFS_LOG_MS with the
 * overruns since the last line.  The caller reads on: the error is
 * reported once per overrun, so this cannot spin.
 */
static void
recv_enobufs(struct nfq *q)
{
	uint64_t now = ev_now(q->loop);

	stats_add(st_enobufs, 1);
	q->enobufs_unlogged++;
	if (now < q->enobufs_next)
		return;
	log_warn("event=nfq-recv-enobufs overruns=%llu effect=%s "
	    "note=\"netlink receive buffer full, queue messages lost; "
	    "raise nfqueue_bufsize\"", (unsigned long long)q->enobufs_unlogged,
	    q->fail_open ? "accepted-unmarked" : "dropped");
	q->enobufs_unlogged = 0;
	q->enobufs_next = now + NFQ_ENOBUFS_LOG_MS;
}

static void
nfq_read_cb(int fd, int events, void *arg)
{
	struct nfq *q = arg;
	int i;

	for (i = 0; i < NFQ_RECV_BATCH; i++) {
		struct nlmsghdr *h;
		ssize_t n = recv(fd, q->rbuf, q->rbufsz, MSG_DONTWAIT);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS) {
				recv_enobufs(q);
				continue;
			}
			stats_add(st_errors, 1);
			log_err("event=nfq-recv-failed error=\"%s\"",
			    strerror(errno));
			break;
		}
		for (h = (struct nlmsghdr *)q->rbuf; NLMSG_OK(h, (size_t)n);
		    h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				if (e->error != 0) {
					stats_add(st_errors, 1);
					log_warn("event=nfq-netlink-error "
					    "error=\"%s\"", strerror(-e->error));
				}
				continue;
			}
			if ((h->nlmsg_type & 0xff) == NFQNL_MSG_PACKET &&
			    (h->nlmsg_type >> 8) == NFNL_SUBSYS_QUEUE)
				handle_packet(q, h);
		}
	}
	flush_verdicts(q);
}

/* Kernel counters from /proc/net/netfilter/nfnetlink_queue (per netns):
 * queue_num portid queue_total copy_mode copy_range queue_dropped
 * user_dropped id_sequence 1.  id_sequence counts every packet offered to
 * the queue, also those a full queue or buffer let through (fail-open)
 * without the kernel counting them anywhere else. */
static void
nfq_stats_cb(void *arg)
{
	struct nfq *q = arg;
	FILE *fp;
	char line[256];

	if ((fp = fopen("/proc/net/netfilter/nfnetlink_queue", "re")) != NULL) {
		while (fgets(line, sizeof(line), fp)) {
			unsigned qn, pid, total, mode, range, qd, ud, seq;

			if (sscanf(line, "%u %u %u %u %u %u %u %u", &qn, &pid,
			    &total, &mode, &range, &qd, &ud, &seq) == 8 &&
			    qn == q->qnum && pid == q->portid) {
				stats_set(st_offered, seq);
				stats_set(st_qlen, total);
				stats_set(st_qdrop, qd);
				stats_set(st_udrop, ud);
			}
		}
		fclose(fp);
	}
	ev_timer_arm(q->stats_timer, NFQ_STATS_MS);
}

/* ------------------------------------------------------------ interface */

struct nfq *
nfq_open(struct ev_loop *loop, const struct config *cfg,
    nfq_saturated_fn *fn, void *arg, char *err, size_t errsz)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	socklen_t salen = sizeof(sa);
	struct nfq *q;
	char buf[256];
	struct nlmsghdr *nlh;
	int bufsz;

	stats_init();
	if (cfg->nfqueue_num > 65535) {
		snprintf(err, errsz, "nfqueue_num: must be 0..65535");
		return NULL;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	q->loop = loop;
	q->fd = -1;
	q->qnum = (uint16_t)cfg->nfqueue_num;
	q->mark_mask = cfg->mark_mask;
	q->intercept_mark = cfg->intercept_mark;
	q->bypass_mark = cfg->upstream_mark;
	q->fail_open = strcmp(cfg->fail_mode, "open") == 0;
	q->saturated = fn;
	q->arg = arg;
	q->rbufsz = 65536;
	if (lists_parse(cfg, &q->lists, err, errsz) == -1)
		goto fail;
	/* listen is a key of the start (a reload keeps it): decided once */
	q->unheard4 = config_listen_unheard(cfg, AF_INET);
	q->unheard6 = config_listen_unheard(cfg, AF_INET6);
	/* the kernel holds at most nfqueue_maxlen packets for us: so many
	 * verdicts can be pending, plus a wakeup's batch as slack */
	q->pmax = (size_t)cfg->nfqueue_maxlen + NFQ_RECV_BATCH;
	q->pcap = q->pmax < NFQ_PENDING_MIN ? q->pmax : NFQ_PENDING_MIN;
	if ((q->rbuf = malloc(q->rbufsz)) == NULL ||
	    (q->pend = calloc(q->pcap, sizeof(*q->pend))) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	if ((q->retry_timer = ev_timer_new(loop, retry_cb, q)) == NULL) {
		snprintf(err, errsz, "verdict retry timer: out of memory");
		goto fail;
	}
	if ((q->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    NETLINK_NETFILTER)) == -1) {
		snprintf(err, errsz, "netlink socket: %s", strerror(errno));
		goto fail;
	}
	if (bind(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    getsockname(q->fd, (struct sockaddr *)&sa, &salen) == -1) {
		snprintf(err, errsz, "netlink bind: %s", strerror(errno));
		goto fail;
	}
	q->portid = sa.nl_pid;
	/* room for bursts: FORCE goes past rmem_max (needs CAP_NET_ADMIN) */
	bufsz = cfg->nfqueue_bufsize > 0x7fffffff ? 0x7fffffff :
	    (int)cfg->nfqueue_bufsize;
	if (setsockopt(q->fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz,
	    sizeof(bufsz)) == -1)
		(void)setsockopt(q->fd, SOL_SOCKET, SO_RCVBUF, &bufsz,
		    sizeof(bufsz));

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->qnum);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
	if (nl_config(q, nlh, err, errsz) == -1) {
		size_t n = strlen(err);

		snprintf(err + n, errsz - n, " (binding queue %d%s)",
		    cfg->nfqueue_num, errno == EBUSY ?
		    ": another process holds it" : "");
		goto fail;
	}
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->qnum);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, NFQ_COPY_RANGE);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, (uint32_t)cfg->nfqueue_maxlen);
	if (nl_config(q, nlh, err, errsz) == -1)
		goto fail;
	if (send_flags(q, err, errsz) == -1)
		goto fail;
	if (ev_fd_set(loop, q->fd, EV_READ, nfq_read_cb, q) == -1) {
		snprintf(err, errsz, "event loop: %s", strerror(errno));
		goto fail;
	}
	if ((q->stats_timer = ev_timer_new(loop, nfq_stats_cb, q)) != NULL)
		ev_timer_arm(q->stats_timer, NFQ_STATS_MS);
	log_info("event=nfq-open queue=%u maxlen=%d bufsize=%d fail_mode=%s "
	    "bypass_src=%d bypass_dst=%d", q->qnum, cfg->nfqueue_maxlen, bufsz,
	    q->fail_open ? "open" : "closed", q->lists.nsrc, q->lists.ndst);
	if (q->unheard4 || q->unheard6)
		log_warn("event=nfq-family-unheard family=%s divert_port=%d "
		    "note=\"no listen address holds where REDIRECT sends "
		    "these flows (%s): their SYNs are dropped, never "
		    "diverted to whatever may listen there; add it to "
		    "listen\"", q->unheard4 && q->unheard6 ? "ipv4,ipv6" :
		    q->unheard4 ? "ipv4" : "ipv6", cfg->divert_port,
		    strcmp(cfg->rules_mode, "local") == 0 ? (q->unheard4 &&
		    q->unheard6 ? "127.0.0.1 and [::1]" : q->unheard4 ?
		    "127.0.0.1" : "[::1]") : "an address of the gateway's or the "
		    "wildcard; no forwarded flow reaches a loopback one");
	return q;
fail:
	nfq_close(q);
	return NULL;
}

void
nfq_close(struct nfq *q)
{
	if (q == NULL)
		return;
	if (q->fd != -1) {
		char buf[256];
		struct nlmsghdr *nlh;

		flush_verdicts(q);
		/* closing the queue makes the kernel drop what is left */
		pending_fail(q, q->pn, "close", q->last_errno);
		ev_fd_del(q->loop, q->fd);
		/* closing the socket unbinds; say it for older kernels */
		nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->qnum);
		nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_UNBIND);
		(void)nl_send(q, nlh, nlh->nlmsg_len);
		close(q->fd);
	}
	if (q->stats_timer)
		ev_timer_free(q->stats_timer);
	if (q->retry_timer)
		ev_timer_free(q->retry_timer);
	lists_free(&q->lists);
	free(q->pend);
	free(q->rbuf);
	free(q);
}

/* ------------------------------------------------------------ forgetting */

#define CT_BUF		16384
#define CT_MAX_FORGET	4096	/* entries one dump collects to delete */
#define CT_FORGET_ROUNDS 256	/* dumps at one reload, at most (1 M) */

/* An attribute of type `type` among those in [p, p + len), or NULL. */
static const struct nlattr *
attr_find(const void *p, size_t len, uint16_t type)
{
	const struct nlattr *a = p;

	while (len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&
	    a->nla_len <= len) {
		size_t step = NLA_ALIGN(a->nla_len);

		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
		if (step >= len)
			break;
		len -= step;
		a = (const struct nlattr *)((const char *)a + step);
	}
	return NULL;
}

static const void *
attr_data(const struct nlattr *a)
{
	return (const char *)a + NLA_HDRLEN;
}

static size_t
attr_len(const struct nlattr *a)
{
	return a->nla_len - NLA_HDRLEN;
}

/* Let through by the old lists, and not by the new ones. */
static int
was_bypassed(const struct nfq_lists *old, const struct nfq_lists *new,
    int family, const void *s, const void *d)
{
	if (!in_list(old->src, old->nsrc, family, s) &&
	    !in_list(old->dst, old->ndst, family, d))
		return 0;
	return !in_list(new->src, new->nsrc, family, s) &&
	    !in_list(new->dst, new->ndst, family, d);
}

/* Every prefix of a (n entries) inside one of b: nothing let through by
 * a is refused by b. */
static int
covered(const struct cidr *a, int n, const struct cidr *b, int nb)
{
	int i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < nb; j++)
			if (b[j].plen <= a[i].plen &&
			    cidr_match(&b[j], a[i].family, a[i].addr))
				break;
		if (j == nb)
			return 0;
	}
	return 1;
}

/* One conntrack entry to delete: its original tuple attribute as the
 * kernel gave it, and its zone. */
struct ct_victim {
	uint8_t		 family;
	uint16_t	 zone;
	int		 has_zone;
	size_t		 len;
	char		 tuple[128];
};

/* From one dumped entry: a port-25 TCP flow with connmark BYPASS that the
 * old lists let through and the new ones do not?  Fills v. */
static int
ct_victim_of(const struct nfq *q, const struct nfq_lists *old,
    const struct nlmsghdr *h, struct ct_victim *v)
{
	const struct nfgenmsg *g = NLMSG_DATA(h);
	const char *p = (const char *)g + NLA_ALIGN(sizeof(*g));
	const struct nlattr *mark, *tup, *ip, *proto, *a, *s, *d, *z;
	size_t len;
	uint32_t m;
	int v6 = g->nfgen_family == AF_INET6;

	if (h->nlmsg_len < NLMSG_LENGTH(NLA_ALIGN(sizeof(*g))))
		return 0;
	len = h->nlmsg_len - NLMSG_LENGTH(NLA_ALIGN(sizeof(*g)));
	if ((mark = attr_find(p, len, CTA_MARK)) == NULL ||
	    attr_len(mark) != 4 ||
	    (tup = attr_find(p, len, CTA_TUPLE_ORIG)) == NULL ||
	    tup->nla_len > sizeof(v->tuple))
		return 0;
	memcpy(&m, attr_data(mark), 4);
	if ((ntohl(m) & q->mark_mask) != (q->bypass_mark & q->mark_mask))
		return 0;
	if ((ip = attr_find(attr_data(tup), attr_len(tup), CTA_TUPLE_IP)) ==
	    NULL || (proto = attr_find(attr_data(tup), attr_len(tup),
	    CTA_TUPLE_PROTO)) == NULL)
		return 0;
	a = attr_find(attr_data(proto), attr_len(proto), CTA_PROTO_NUM);
	if (a == NULL || attr_len(a) < 1 ||
	    *(const uint8_t *)attr_data(a) != IPPROTO_TCP)
		return 0;
	a = attr_find(attr_data(proto), attr_len(proto), CTA_PROTO_DST_PORT);
	if (a == NULL || attr_len(a) < 2 ||
	    *(const uint16_t *)attr_data(a) != htons(25))
		return 0;
	s = attr_find(attr_data(ip), attr_len(ip), v6 ? CTA_IP_V6_SRC :
	    CTA_IP_V4_SRC);
	d = attr_find(attr_data(ip), attr_len(ip), v6 ? CTA_IP_V6_DST :
	    CTA_IP_V4_DST);
	if (s == NULL || d == NULL || attr_len(s) != (v6 ? 16u : 4u) ||
	    attr_len(d) != attr_len(s) || !was_bypassed(old, &q->lists,
	    v6 ? AF_INET6 : AF_INET, attr_data(s), attr_data(d)))
		return 0;
	v->family = g->nfgen_family;
	v->len = tup->nla_len;
	memcpy(v->tuple, tup, tup->nla_len);
	z = attr_find(p, len, CTA_ZONE);
	v->has_zone = z != NULL && attr_len(z) == 2;
	if (v->has_zone)
		memcpy(&v->zone, attr_data(z), 2);
	return 1;
}

static struct nlmsghdr *
ct_msg(char *buf, uint16_t type, uint16_t flags, uint8_t family, uint32_t seq)
{
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	struct nfgenmsg *g = NLMSG_DATA(h);

	memset(buf, 0, NLMSG_LENGTH(NLA_ALIGN(sizeof(*g))));
	h->nlmsg_len = NLMSG_LENGTH(NLA_ALIGN(sizeof(*g)));
	h->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	h->nlmsg_flags = NLM_F_REQUEST | flags;
	h->nlmsg_seq = seq;
	g->nfgen_family = family;
	g->version = NFNETLINK_V0;
	return h;
}

static void
ct_put(struct nlmsghdr *h, const void *attr, size_t len)
{
	memcpy((char *)h + NLMSG_ALIGN(h->nlmsg_len), attr, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLA_ALIGN(len);
}

/* Reads the dump's answers into v (at most max); the number, or -1. */
static int
ct_dump(const struct nfq *q, int fd, const struct nfq_lists *old,
    struct ct_victim *v, int max, char *err, size_t errsz)
{
	char buf[CT_BUF];
	int n = 0;

	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		struct nlmsghdr *h;
		ssize_t r;

		if (poll(&pfd, 1, 2000) <= 0) {
			snprintf(err, errsz, "no answer from ctnetlink");
			return -1;
		}
		if ((r = recv(fd, buf, sizeof(buf), 0)) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errsz, "ctnetlink dump: %s",
			    strerror(errno));
			return -1;
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)r);
		    h = NLMSG_NEXT(h, r)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return n;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				snprintf(err, errsz, "ctnetlink dump: %s",
				    strerror(-e->error));
				return -1;
			}
			if (n < max && ct_victim_of(q, old, h, &v[n]))
				n++;
		}
	}
}

/* Deletes one entry; a 0 or ENOENT answer (gone meanwhile) is fine. */
static int
ct_delete(int fd, const struct ct_victim *v, uint32_t seq)
{
	char buf[512];
	struct nlmsghdr *h = ct_msg(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK,
	    v->family, seq);
	struct pollfd pfd = { fd, POLLIN, 0 };
	ssize_t r;

	ct_put(h, v->tuple, v->len);
	if (v->has_zone) {
		char za[NLA_HDRLEN + 4] = { 0 };
		struct nlattr *a = (struct nlattr *)za;

		a->nla_type = CTA_ZONE;
		a->nla_len = NLA_HDRLEN + 2;
		memcpy(za + NLA_HDRLEN, &v->zone, 2);
		ct_put(h, za, a->nla_len);
	}
	if (send(fd, buf, h->nlmsg_len, 0) != (ssize_t)h->nlmsg_len ||
	    poll(&pfd, 1, 2000) <= 0 ||
	    (r = recv(fd, buf, sizeof(buf), 0)) < (ssize_t)NLMSG_LENGTH(
	    sizeof(struct nlmsgerr)))
		return -1;
	h = (struct nlmsghdr *)buf;
	if (h->nlmsg_type == NLMSG_ERROR) {
		int e = -((const struct nlmsgerr *)NLMSG_DATA(h))->error;

		return e == 0 || e == ENOENT ? 0 : -1;
	}
	return 0;
}

/*
 * After a reload: the port-25 flows with connmark BYPASS that the old
 * lists let through and the new ones do not are forgotten by conntrack.
 * Their next segment is then a mid-stream pickup, which the guard drops;
 * the MTA's connection fails and its retry is decided anew.  (Our own
 * upstream connections go to destinations that were not bypassed, so
 * never match; if one did, its packets carry our mark and pass.)
 */
static void
ct_forget(struct nfq *q, const struct nfq_lists *old)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct ct_victim *v = NULL;
	char buf[256], err[256] = "", qe[300];
	struct nlmsghdr *h;
	uint32_t mk = htonl(q->bypass_mark & q->mark_mask);
	uint32_t mm = htonl(q->mark_mask);
	uint32_t seq = 1;
	int fd, n = 0, i, gone = 0, round, total, deleted = 0;

	/* a reload that takes nothing out (most) asks the kernel nothing */
	if (covered(old->src, old->nsrc, q->lists.src, q->lists.nsrc) &&
	    covered(old->dst, old->ndst, q->lists.dst, q->lists.ndst))
		return;
	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
	    NETLINK_NETFILTER)) == -1 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		snprintf(err, sizeof(err), "ctnetlink socket: %s",
		    strerror(errno));
		goto fail;
	}
	if ((v = calloc(CT_MAX_FORGET, sizeof(*v))) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	/* A dump collects at most CT_MAX_FORGET; while one comes back full
	 * there may be more (a busy bypass leaves thousands, closed flows'
	 * entries among them, in hash order): dump again, the deleted ones
	 * no longer in it.  A round that deleted nothing would only find
	 * the same again: stop there, and say what stayed. */
	for (round = 0; round < CT_FORGET_ROUNDS; round++) {
		/* the kernel filters by connmark where it can;
		 * ct_victim_of() checks it again */
		h = ct_msg(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, AF_UNSPEC,
		    seq++);
		attr_put_be32(h, CTA_MARK, ntohl(mk));
		attr_put_be32(h, CTA_MARK_MASK, ntohl(mm));
		if (send(fd, buf, h->nlmsg_len, 0) != (ssize_t)h->nlmsg_len) {
			snprintf(err, sizeof(err), "ctnetlink send: %s",
			    strerror(errno));
			goto fail;
		}
		if ((n = ct_dump(q, fd, old, v, CT_MAX_FORGET, err,
		    sizeof(err))) == -1)
			goto fail;
		for (i = gone = 0; i < n; i++)
			if (ct_delete(fd, &v[i], seq++) == 0)
				gone++;
		deleted += gone;
		if (n < CT_MAX_FORGET || gone == 0)
			break;
	}
	/* one that could not be deleted is in every later dump: counted
	 * from the last */
	total = deleted + n - gone;
	if (total > 0)
		log_warn("event=nfq-bypass-forgotten flows=%d deleted=%d "
		    "note=\"flows the old bypass lists let through: their "
		    "next segments are dropped, the MTA retries\"", total,
		    deleted);
	if (n == CT_MAX_FORGET) {
		snprintf(err, sizeof(err), "%d deleted, %d more found that "
		    "could not be, or were not dumped again", deleted, n - gone);
		goto fail;
	}
	close(fd);
	free(v);
	return;
fail:
	log_err("event=nfq-bypass-forget-failed error=%s note=\"flows the "
	    "old bypass lists let through go on direct until they end\"",
	    log_q(qe, sizeof(qe), err));
	if (fd != -1)
		close(fd);
	free(v);
}

int
nfq_reconfigure(struct nfq *q, const struct config *cfg, char *err,
    size_t errsz)
{
	struct nfq_lists l;
	int open_ = strcmp(cfg->fail_mode, "open") == 0;

	if (cfg->nfqueue_num != q->qnum)
		log_warn("event=nfq-reconfigure note=\"nfqueue_num changes "
		    "need a restart\"");
	struct nfq_lists old;

	if (lists_parse(cfg, &l, err, errsz) == -1)
		return -1;
	old = q->lists;
	q->lists = l;
	q->mark_mask = cfg->mark_mask;
	q->intercept_mark = cfg->intercept_mark;
	q->bypass_mark = cfg->upstream_mark;
	/* listen is the start's (config_keep_start_keys()), divert_port
	 * may be new: the rules may now divert where nothing of ours is */
	q->unheard4 = config_listen_unheard(cfg, AF_INET);
	q->unheard6 = config_listen_unheard(cfg, AF_INET6);
	ct_forget(q, &old);
	lists_free(&old);
	if (open_ != q->fail_open) {
		q->fail_open = open_;
		/* packets that arrive meanwhile are read later by the loop */
		ev_fd_del(q->loop, q->fd);
		if (send_flags(q, err, errsz) == -1) {
			char qe[512];

			log_warn("event=nfq-reconfigure error=%s",
			    log_q(qe, sizeof(qe), err));
		}
		ev_fd_set(q->loop, q->fd, EV_READ, nfq_read_cb, q);
	}
	return 0;
}
