/*
 * rules.c - generating, installing, removing and showing the netfilter
 * rule sets (see rules.h and docs/rules.md).
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/cidr.h"
#include "nfq/rules.h"

#define CH_STEER	"MXGUARD_STEER"
#define CH_DIVERT	"MXGUARD_DIVERT"
#define CH_GUARD	"MXGUARD_GUARD"
#define CH_PREFIX	"MXGUARD_"

/* ------------------------------------------------------------ buffers */

void
rbuf_printf(struct rbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t ncap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
			char *p = realloc(b->s, ncap);

			if (p == NULL) {
				b->oom = 1;
				return;
			}
			b->s = p;
			b->cap = ncap;
		}
	}
}

void
rbuf_free(struct rbuf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

static const char *
rbuf_str(const struct rbuf *b)
{
	return b->s ? b->s : "";
}

/* ------------------------------------------------------------ config */

static int
is_local(const struct config *c)
{
	return strcmp(c->rules_mode, "local") == 0;
}

int
rules_tproxy_needed(const struct config *c)
{
	return config_tproxy(c);
}

const char *
rules_warning(const struct config *c)
{
	if (!is_local(c) && c->bypass_interfaces.n == 0)
		return "bypass_interfaces is empty: port-25 flows arriving on "
		    "every interface are intercepted, inbound mail to hosts "
		    "behind this gateway included; name the outside interfaces";
	return NULL;
}

int
rules_route_table(const struct config *c)
{
	return c->tproxy_table;
}

static int
is_nfq(const struct config *c)
{
	return strcmp(c->steering, "nfqueue") == 0;
}

static int
is_closed(const struct config *c)
{
	return strcmp(c->fail_mode, "closed") == 0;
}

/* Checks the bypass lists; fills err on the first bad entry. */
static int
check_cidrs(const struct config *c, char *err, size_t errsz)
{
	const struct strlist *l[2] = { &c->bypass_src, &c->bypass_dst };
	struct cidr x;
	int i, j;

	for (i = 0; i < 2; i++)
		for (j = 0; j < l[i]->n; j++)
			if (cidr_parse(l[i]->v[j], &x) == -1) {
				snprintf(err, errsz, "%s: \"%s\" is not an "
				    "address or prefix", i ? "bypass_dst" :
				    "bypass_src", l[i]->v[j]);
				return -1;
			}
	return 0;
}

/* ------------------------------------------------------------ iptables */

enum { T_MANGLE, T_NAT, T_FILTER, T_N };

static const char *const tnames[T_N] = { "mangle", "nat", "filter" };
static const char *const tchains[T_N] = { CH_STEER, CH_DIVERT, CH_GUARD };

/* What the config wants in one table: the rules of the table's own chain
 * (one "-A CHAIN" argument string a line) and where it is entered. */
struct twant {
	int		 want;
	const char	*hook;
	const char	*hook2;		/* a second built-in chain, or NULL */
	struct rbuf	 rules;
};

/* The closed guard's last rule: what reaches it is refused, a reset sent
 * back (the MTA defers at once instead of timing out); a RST carries no
 * mail and answers nothing, so it may go. */
#define REFUSE_REST	"-p tcp -m tcp ! --tcp-flags RST RST " \
	"-j REJECT --reject-with tcp-reset"

/* The guard: a port-25 packet in the reply direction of its entry began
 * no outbound flow (MTAs do not connect from port 25): conntrack picked
 * the flow up from the far side.  Under TPROXY, when a diverted flow's
 * entry goes (conntrack -F) and mxguard's socket, which speaks with the
 * MX's address and port, sends first, the new entry's reply direction is
 * the MTA's: its segments are ESTABLISHED with connmark 0, neither
 * TPROXYed nor NEW, and with fail_mode = open they went to the MX direct
 * (where early demux is off; with it on, the socket's 4-tuple still
 * catches them).  Likewise a flow the MX spoke first on after its entry
 * went (a bypassed one the reload forgot), and the MTA's SYN on an entry
 * an outside host opened from MX:25.  Dropped, in both fail modes. */
#define REPLY_DIR	"-m conntrack --ctdir REPLY -j DROP"

/* Gateway mode, the guard: a SYN that conntrack does not file as NEW.  An
 * outside host that sends a SYN from MX:25 to MTA:P through the gateway
 * (it comes in on a bypass_interfaces interface, so none of our chains
 * act on it; the MTA host drops it silently) leaves an entry with
 * connmark 0 whose reply direction is the MTA's own SYN from P to MX:25:
 * ESTABLISHED, never queued, never diverted (nat sees a connection's
 * first packet only), and with fail_mode = open nothing refused it.  So
 * too an MTA's SYN on an old entry of its own (a flow the MX reset,
 * which went direct while the daemon was down or saturated, fail-open):
 * it would keep that flow's decision.  Dropped; the MTA resends, and once
 * the entry is gone its SYN is NEW and decided as any other.  (Local mode
 * drops these in mangle, rule 0; a diverted flow never reaches FORWARD.) */
/* Gateway mode, steering and diverting: a destination of this host's
 * own (its addresses, 127.0.0.0/8) is no outbound mail: left alone, and
 * its connection marked BYPASS on the way (GW_OWN_DST_RULES), so that the
 * guard lets it through too.  mangle and nat see the original destination;
 * a rule of the host's own that DNATs such a flow further on (a port
 * forward of the public MX address to the inside mail server, reached
 * from the inside: hairpin NAT) makes it a forwarded flow, and the closed
 * guard in FORWARD refused it as one nothing had decided, every time, the
 * daemon up or down: the inside MTAs' mail to their own domain stayed
 * queued until it bounced.  (NFT_GW_OWN_DST takes the mask's complement
 * and the mark.) */
#define GW_OWN_DST	"-m addrtype --dst-type LOCAL"
#define GW_OWN_DST_RULES GW_OWN_DST " -j CONNMARK --set-xmark 0x%x/0x%x\n" \
	GW_OWN_DST " -j RETURN\n"
#define NFT_GW_OWN_DST	"fib daddr type local ct mark set ct mark & 0x%x | " \
	"0x%x return"
/* After nft's tproxy statements: what they did not take.  xt_TPROXY
 * drops a packet for which it finds no transparent socket; nft's tproxy
 * expression only breaks off its rule (NFT_BREAK) and the chain goes on,
 * so a port-25 flow arriving while mxguard does not listen (stopped with
 * the rules left in, `rules boot`) was forwarded to the MX direct. */
#define NFT_TPROXY_UNHEARD	"meta l4proto tcp drop"

#define GW_STALE_SYN	"-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN " \
	"-m conntrack ! --ctstate NEW -j DROP"

/*
 * NFQUEUE steering under REDIRECT (or DNAT to a listen address): a SYN
 * that conntrack files under an entry a verdict had diverted keeps that
 * entry's nat binding and its connmark INTERCEPT (nat sees a flow's first
 * packet only): a retransmission whose SYN-ACK was lost, or the MTA's next
 * SYN from a port whose session mxguard's side reset (the entry lingers in
 * CLOSE, and a SYN after a reset from the reply side is no reopen).  It
 * went on to divert_port whoever listened there, and the guard never saw
 * it (INPUT, or lo in local mode).  With the daemon down (a crash, a stop,
 * a restart) that port is free and any local user may bind it (above
 * ip_unprivileged_port_start): that process took the MTA's session, its
 * mail with no policy at all (ns 131).  So such a SYN is queued again,
 * without --queue-bypass: a daemon decides it as any SYN (INTERCEPT: the
 * binding takes it to mxguard's listener), and with none the kernel drops
 * it; the MTA resends, and once the entry is gone its SYN is NEW, refused
 * by the closed guard or let through by the open one.  A SYN just decided
 * carries the verdict's mark (the chain's re-run after NF_REPEAT) and is
 * not queued again.  TPROXY needs a transparent socket, which no
 * unprivileged user may open.
 */
#define DIVERTED_SYN	"-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN"
#define NFT_DIVERTED_SYN "tcp flags & (fin|syn|rst|ack) == syn"

/* The DNAT target of family af in gateway mode under REDIRECT, or NULL
 * for REDIRECT: config_divert_to() (core/config.h), where a reload
 * judges a change of listen by it too. */
static const char *
gw_divert_to(const struct config *c, int af, char *buf, size_t sz)
{
	return config_divert_to(c, af, buf, sz);
}

static void
add_bypass_returns(const struct config *c, int family, struct rbuf *r)
{
	const struct strlist *l[2] = { &c->bypass_src, &c->bypass_dst };
	char buf[64];
	struct cidr x;
	int i, j;

	for (i = 0; i < 2; i++)
		for (j = 0; j < l[i]->n; j++) {
			if (cidr_parse(l[i]->v[j], &x) == -1 ||
			    x.family != (family == 4 ? AF_INET : AF_INET6))
				continue;
			rbuf_printf(r, "%s %s -j RETURN\n", i ? "-d" : "-s",
			    cidr_str(&x, buf, sizeof(buf)));
		}
}

/* local_users: the other users' port-25 packets are refused (a reset:
 * the sender gives up at once) before anything else of the guard, our own
 * marked sockets' aside.  Without it any local user's flow was diverted
 * like the MTA's and left the host from mxguard's sockets, so a host
 * that lets only the MTA's user send to port 25 (an owner match of its
 * own, further down OUTPUT) no longer could: the REDIRECT had made the
 * flow's port 10025 by the time the host's rule saw it.  iptables' owner
 * match takes one uid or range a rule, hence the ranges between the
 * listed uids (each rule: match, the range, then what); a packet without
 * a socket (the kernel's own resets) matches none and goes on through the
 * guard as before. */
static void
add_user_ranges(const uint32_t *uids, int n, const char *match,
    const char *what, struct rbuf *r)
{
	uint64_t lo = 0, hi;
	int i;

	for (i = 0; i <= n; i++) {
		/* (uid_t)-1 is no uid: the last range ends below it */
		hi = i < n ? uids[i] : (uint64_t)UINT32_MAX;
		if (hi > lo + 1)
			rbuf_printf(r, "%s-m owner --uid-owner %llu-%llu %s\n",
			    match, (unsigned long long)lo,
			    (unsigned long long)hi - 1, what);
		else if (hi == lo + 1)
			rbuf_printf(r, "%s-m owner --uid-owner %llu %s\n",
			    match, (unsigned long long)lo, what);
		if (i < n)
			lo = (uint64_t)uids[i] + 1;
	}
}

static void
add_user_refusals(const uint32_t *uids, int n, struct rbuf *r)
{
	add_user_ranges(uids, n, "-p tcp -m tcp ! --tcp-flags RST RST ",
	    "-j REJECT --reject-with tcp-reset", r);
}

/* local_users, the steering chain (before nat): another user's packet on
 * an entry a listed user's flow had DNAT'd to our listener is dropped.
 * Rule 0 lets a SYN on such an entry through (the binding takes it to
 * mxguard), and once nat has made its port divert_port on lo the guard
 * never sees it: after mxguard's side reset a flow (the entry lingers in
 * CLOSE, and a SYN from the reply side's reset is no reopen), any user who
 * read the port in /proc/net/tcp bound it and had a session through
 * mxguard.  Dropped, not refused (no REJECT before filter): the SYN is
 * resent, NEW once the entry has expired, and refused by the guard. */
static void
add_user_dnat_drops(const uint32_t *uids, int n, unsigned up, unsigned m,
    struct rbuf *r)
{
	char match[128];

	snprintf(match, sizeof(match), "-m conntrack --ctstate DNAT "
	    "-m mark ! --mark 0x%x/0x%x ", up, m);
	add_user_ranges(uids, n, match, "-j DROP", r);
}

/* The uid match of the rule that diverts (queues, redirects) one listed
 * user's flows: i of n, or "" for all users. */
static const char *
user_match(const uint32_t *uids, int n, int i, char *buf, size_t sz)
{
	if (n == 0)
		return "";
	snprintf(buf, sz, "-m owner --uid-owner %lu ", (unsigned long)uids[i]);
	return buf;
}

static void
want_ipt(const struct config *c, int family, const uint32_t *uids, int nu,
    struct twant w[T_N])
{
	unsigned up = c->upstream_mark & c->mark_mask;
	unsigned in = c->intercept_mark & c->mark_mask;
	unsigned m = c->mark_mask;
	int local = is_local(c), tp = rules_tproxy_needed(c);
	char tproxy[128], um[64], tb[INET6_ADDRSTRLEN + 16];
	const char *to = gw_divert_to(c, family == 4 ? AF_INET : AF_INET6,
	    tb, sizeof(tb));
	int k;

	memset(w, 0, sizeof(struct twant) * T_N);
	w[T_MANGLE].hook = local ? "OUTPUT" : "PREROUTING";
	w[T_NAT].hook = local ? "OUTPUT" : "PREROUTING";
	w[T_FILTER].hook = local ? "OUTPUT" : "FORWARD";
	snprintf(tproxy, sizeof(tproxy), "-p tcp -j TPROXY --on-port %d "
	    "--tproxy-mark 0x%x/0x%x", c->divert_port, in, m);
	/* gateway: a flow that comes in on an outside interface is inbound
	 * mail to a host behind us, never ours: first out of every chain
	 * (so never queued, diverted nor refused by the guard) */
	if (!local) {
		int t, i;

		for (t = 0; t < T_N; t++)
			for (i = 0; i < c->bypass_interfaces.n; i++)
				rbuf_printf(&w[t].rules, "-i %s -j RETURN\n",
				    c->bypass_interfaces.v[i]);
		/* nor is a flow to one of the gateway's own addresses: we
		 * would relay it from the gateway itself, so what listens
		 * there would take an inside host for a local client, and
		 * REDIRECT rewrites 127.0.0.1 before the martian check */
		for (t = T_MANGLE; t <= T_NAT; t++)
			rbuf_printf(&w[t].rules, GW_OWN_DST_RULES, up, m);
	}

	if (local) {
		/* A SYN that conntrack files under an old connection of the
		 * same addresses and ports is not NEW, so the nat table and
		 * the queue never see it and it would keep the old flow's
		 * decision: after one of our own upstream connections (mark
		 * BYPASS) is reset by the server, its entry lingers in CLOSE
		 * state (nf_conntrack_tcp_timeout_close, 10 s) while the MTA
		 * may reuse the freed source port, and go direct.  Such a SYN
		 * is dropped; the MTA resends it, and once the old entry has
		 * expired it starts a NEW flow that is decided as any other.
		 * An old entry that was diverted (DNAT: REDIRECT) still takes
		 * the flow to mxguard and is let through.  (A reopen after FIN
		 * is NEW already: conntrack deletes the old entry itself.)
		 * The mirror case: a SYN of our own filed under an MTA entry
		 * that was diverted (we reset it, and our connect drew its
		 * port) would follow the old binding into our own listener;
		 * dropped too, until the entry has expired. */
		w[T_MANGLE].want = 1;
		rbuf_printf(&w[T_MANGLE].rules,
		    "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack "
		    "! --ctstate NEW,DNAT -m mark ! --mark 0x%x/0x%x -j DROP\n"
		    "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack "
		    "--ctstate DNAT -m mark --mark 0x%x/0x%x -j DROP\n",
		    up, m, up, m);
		if (nu > 0)
			add_user_dnat_drops(uids, nu, up, m,
			    &w[T_MANGLE].rules);
	}
	if (!is_nfq(c)) {
		/* steering=none: every port-25 flow but our own is diverted */
		struct rbuf *r = tp ? &w[T_MANGLE].rules : &w[T_NAT].rules;

		w[tp ? T_MANGLE : T_NAT].want = 1;
		rbuf_printf(r, "-m mark --mark 0x%x/0x%x -j RETURN\n", up, m);
		add_bypass_returns(c, family, r);
		if (tp) {
			rbuf_printf(r, "%s\n", tproxy);
			return;
		}
		k = 0;
		if (to != NULL)
			rbuf_printf(r, "-p tcp -j DNAT --to-destination %s\n",
			    to);
		else
			do
				rbuf_printf(r, "-p tcp %s-j REDIRECT "
				    "--to-ports %d\n", user_match(uids, nu, k,
				    um, sizeof(um)), c->divert_port);
			while (++k < nu);
		/* The guard.  nat sees only packets conntrack tracks: one it
		 * cannot (INVALID) or was told not to (UNTRACKED: a raw-table
		 * NOTRACK rule of the host's, for speed) is never redirected
		 * and would go to the MX direct.  Dropped, our own marked
		 * sockets' aside.  (TPROXY takes every packet, tracked or
		 * not; a redirected packet no longer has port 25.) */
		w[T_FILTER].want = 1;
		rbuf_printf(&w[T_FILTER].rules,
		    "-m mark --mark 0x%x/0x%x -j RETURN\n", up, m);
		if (nu > 0)
			add_user_refusals(uids, nu, &w[T_FILTER].rules);
		rbuf_printf(&w[T_FILTER].rules,
		    "-m conntrack --ctstate INVALID,UNTRACKED -j DROP\n");
		rbuf_printf(&w[T_FILTER].rules, "%s\n", REPLY_DIR);
		if (!local)
			rbuf_printf(&w[T_FILTER].rules, "%s\n", GW_STALE_SYN);
		/* fail_mode = closed: a port-25 packet that was neither
		 * redirected (it would carry divert_port by now) nor bypassed
		 * belongs to a flow established before the rules went in
		 * (nat sees a flow's first packet only): refused */
		if (is_closed(c)) {
			/* gateway: a flow to our own address that a rule of
			 * the host's DNATs onwards (GW_OWN_DST) */
			if (!local)
				rbuf_printf(&w[T_FILTER].rules, "-m connmark "
				    "--mark 0x%x/0x%x -j RETURN\n", up, m);
			add_bypass_returns(c, family, &w[T_FILTER].rules);
			rbuf_printf(&w[T_FILTER].rules, "%s\n", REFUSE_REST);
		}
		return;
	}

	/* mangle: the verdict mark (set on the re-run of the chain after
	 * NF_REPEAT, or SO_MARK of our own sockets) is saved to the connmark;
	 * decided flows leave; only the SYN of an undecided new flow is
	 * queued.  --queue-bypass: with nobody listening the packet goes on
	 * to the next table unmarked (fail-open, unless MXGUARD_GUARD). */
	w[T_MANGLE].want = 1;
	rbuf_printf(&w[T_MANGLE].rules,
	    "-m mark --mark 0x%x/0x%x -j CONNMARK --save-mark --nfmask 0x%x --ctmask 0x%x\n"
	    "-m mark --mark 0x%x/0x%x -j CONNMARK --save-mark --nfmask 0x%x --ctmask 0x%x\n"
	    "-m connmark --mark 0x%x/0x%x -j RETURN\n",
	    up, m, m, m, in, m, m, m, up, m);
	if (tp)
		rbuf_printf(&w[T_MANGLE].rules,
		    "-m connmark --mark 0x%x/0x%x %s\n", in, m, tproxy);
	else
		rbuf_printf(&w[T_MANGLE].rules, "%s -m connmark --mark "
		    "0x%x/0x%x -m mark ! --mark 0x%x/0x%x -j NFQUEUE "
		    "--queue-num %d\n", DIVERTED_SYN, in, m, in, m,
		    c->nfqueue_num);
	rbuf_printf(&w[T_MANGLE].rules,
	    "-m connmark --mark 0x%x/0x%x -j RETURN\n", in, m);
	k = 0;
	do
		rbuf_printf(&w[T_MANGLE].rules,
		    "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack "
		    "--ctstate NEW %s-j NFQUEUE --queue-num %d --queue-bypass\n",
		    user_match(uids, nu, k, um, sizeof(um)), c->nfqueue_num);
	while (++k < nu);
	if (!tp && to != NULL) {
		w[T_NAT].want = 1;
		rbuf_printf(&w[T_NAT].rules, "-p tcp -m connmark --mark "
		    "0x%x/0x%x -j DNAT --to-destination %s\n", in, m, to);
	} else if (!tp) {
		w[T_NAT].want = 1;
		rbuf_printf(&w[T_NAT].rules,
		    "-p tcp -m connmark --mark 0x%x/0x%x -j REDIRECT --to-ports %d\n",
		    in, m, c->divert_port);
	}
	/* The guard.  A port-25 packet that is no flow's first SYN and that
	 * conntrack files as NEW (picked up mid-stream: a flow another
	 * gateway carried before a failover, or one whose entry was
	 * flushed), cannot track (INVALID) or was told not to (UNTRACKED)
	 * was never queued nor diverted, and would go direct: dropped, our
	 * own marked sockets' packets aside (the MTA retries with a SYN).
	 * fail_mode = closed: every packet of a flow that no verdict
	 * diverted or let through is refused, whatever else may have set
	 * bits of its connmark: a new flow's SYN (the queue had no listener),
	 * and a flow established before the rules went in (conntrack knows
	 * it, connmark 0: its segments are neither SYNs nor NEW), which
	 * would otherwise go on to the MX direct for as long as the MTA
	 * keeps it. */
	w[T_FILTER].want = 1;
	rbuf_printf(&w[T_FILTER].rules,
	    "-m mark --mark 0x%x/0x%x -j RETURN\n", up, m);
	if (nu > 0)
		add_user_refusals(uids, nu, &w[T_FILTER].rules);
	rbuf_printf(&w[T_FILTER].rules,
	    "-m conntrack --ctstate INVALID,UNTRACKED -j DROP\n"
	    "-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack "
	    "--ctstate NEW -j DROP\n");
	rbuf_printf(&w[T_FILTER].rules, "%s\n", REPLY_DIR);
	if (!local)
		rbuf_printf(&w[T_FILTER].rules, "%s\n", GW_STALE_SYN);
	/* A flow mxguard took (connmark INTERCEPT) whose port-25 packets
	 * reach the guard was not diverted: a diverted packet has left
	 * port 25 (REDIRECT) or the forward path (TPROXY) by now.  Its
	 * first packet passed while the nat chain was gone (a firewall
	 * reload that flushed it, until `rules watch` puts it back: nat
	 * sees a connection's first packet only, so the flow would never
	 * be diverted), and it would go to the MX direct for its whole
	 * life, in either fail mode.  Dropped; the MTA's next connection
	 * is decided afresh. */
	rbuf_printf(&w[T_FILTER].rules, "-m connmark --mark 0x%x/0x%x "
	    "-j DROP\n", in, m);
	if (is_closed(c))
		rbuf_printf(&w[T_FILTER].rules,
		    "-m connmark --mark 0x%x/0x%x -j RETURN\n"
		    "%s\n", up, m, REFUSE_REST);
}

/* What an iptables-save section says about mxguard. */
struct tsaved {
	int		 present;	/* "*table" seen */
	int		 created;	/* a jump carries RULES_COMMENT_NEW */
	int		 chains[T_N];	/* which MXGUARD_* chains exist */
	struct rbuf	 jumps;		/* "-A ... -j MXGUARD_*" lines */
	struct rbuf	 otherchains;	/* MXGUARD_* chains of unknown name */
};

static int
table_index(const char *name, size_t n)
{
	int i;

	for (i = 0; i < T_N; i++)
		if (strlen(tnames[i]) == n && strncmp(tnames[i], name, n) == 0)
			return i;
	return -1;
}

static void
parse_saved(const char *saved, struct tsaved s[T_N])
{
	const char *p = saved, *nl;
	int cur = -1, i;

	memset(s, 0, sizeof(struct tsaved) * T_N);
	for (; p && *p; p = nl ? nl + 1 : NULL) {
		size_t n;

		nl = strchr(p, '\n');
		n = nl ? (size_t)(nl - p) : strlen(p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > 1 && p[0] == '*') {
			cur = table_index(p + 1, n - 1);
			if (cur >= 0)
				s[cur].present = 1;
			continue;
		}
		if (cur < 0)
			continue;
		if (p[0] == ':' && strncmp(p + 1, CH_PREFIX,
		    strlen(CH_PREFIX)) == 0) {
			size_t cn = strcspn(p + 1, " ");
			int known = 0;

			for (i = 0; i < T_N; i++)
				if (strlen(tchains[i]) == cn &&
				    strncmp(p + 1, tchains[i], cn) == 0) {
					s[cur].chains[i] = 1;
					known = 1;
				}
			if (!known)
				rbuf_printf(&s[cur].otherchains, "%.*s\n",
				    (int)cn, p + 1);
			continue;
		}
		if (n > 3 && strncmp(p, "-A ", 3) == 0 &&
		    strncmp(p + 3, CH_PREFIX, strlen(CH_PREFIX)) != 0) {
			/* a jump from another chain into one of ours */
			const char *j = strstr(p, " -j " CH_PREFIX);
			const char *g = strstr(p, " -g " CH_PREFIX);

			if ((j && j < p + n) || (g && g < p + n)) {
				rbuf_printf(&s[cur].jumps, "%.*s\n", (int)n, p);
				{
					const char *c = strstr(p, "\"" RULES_COMMENT_NEW "\"");

					if (c && c < p + n)
						s[cur].created = 1;
				}
			}
		}
	}
}

static void
free_saved(struct tsaved s[T_N])
{
	int i;

	for (i = 0; i < T_N; i++) {
		rbuf_free(&s[i].jumps);
		rbuf_free(&s[i].otherchains);
	}
}

/*
 * The refusal set (RULES_REFUSE): every port-25 packet leaving the host or
 * forwarded through it is refused, lo aside.  It needs nothing from the
 * configuration, so it can stand in for a rule set that could not be
 * installed (at boot, a configuration that does not load): mail stays
 * queued at the MTA instead of going out unprotected.  The next install
 * replaces it (every jump into an MXGUARD_ chain goes) and remove removes
 * it.
 */
static void
want_refuse(struct twant w[T_N])
{
	memset(w, 0, sizeof(struct twant) * T_N);
	w[T_FILTER].want = 1;
	w[T_FILTER].hook = "OUTPUT";
	w[T_FILTER].hook2 = "FORWARD";
	rbuf_printf(&w[T_FILTER].rules,
	    "-p tcp -j REJECT --reject-with tcp-reset\n");
}

int
rules_ipt_script(const struct config *c, int family, int want,
    const char *saved, struct rbuf *out, char *err, size_t errsz)
{
	struct twant w[T_N];
	struct tsaved s[T_N];
	uint32_t uids[CONFIG_LOCAL_USERS_MAX];
	int t, i, nu = 0;

	if (family != 4 && family != 6) {
		snprintf(err, errsz, "internal: family %d", family);
		return -1;
	}
	/* removal takes nothing from the configuration (it takes the
	 * chains whole, by their names): a bypass entry or a local_users
	 * name that no longer checks out does not keep the rules in place */
	if (want == RULES_REFUSE)
		want_refuse(w);
	else if (want == 0)
		memset(w, 0, sizeof(w));
	else if (check_cidrs(c, err, errsz) == -1)
		return -1;
	else {
		if (is_local(c) &&
		    (nu = config_local_uids(c, uids, err, errsz)) == -1)
			return -1;
		want_ipt(c, family, uids, nu, w);
	}
	parse_saved(saved ? saved : "", s);
	for (t = 0; t < T_N; t++) {
		struct rbuf sec = { 0 };
		const char *p, *nl;
		int wanted = want && w[t].want;

		if (wanted)
			rbuf_printf(&sec, ":%s - [0:0]\n", tchains[t]);
		/* every existing jump goes (and the wanted one comes back) */
		for (p = rbuf_str(&s[t].jumps); *p; p = nl + 1) {
			nl = strchr(p, '\n');
			rbuf_printf(&sec, "-D%.*s\n", (int)(nl - p - 2), p + 2);
		}
		for (i = 0; i < T_N; i++)
			if (s[t].chains[i] && !(wanted && i == t))
				rbuf_printf(&sec, "-F %s\n-X %s\n", tchains[i],
				    tchains[i]);
		for (p = rbuf_str(&s[t].otherchains); *p; p = nl + 1) {
			nl = strchr(p, '\n');
			rbuf_printf(&sec, "-F %.*s\n-X %.*s\n", (int)(nl - p), p,
			    (int)(nl - p), p);
		}
		if (wanted) {
			/* a table that did not exist before our first install
			 * is remembered in the jump's comment */
			int created = s[t].present ? s[t].created : 1;

			for (p = rbuf_str(&w[t].rules); *p; p = nl + 1) {
				nl = strchr(p, '\n');
				rbuf_printf(&sec, "-A %s %.*s\n", tchains[t],
				    (int)(nl - p), p);
			}
			const char *hooks[2] = { w[t].hook, w[t].hook2 };

			for (i = 0; i < 2 && hooks[i] != NULL; i++)
				rbuf_printf(&sec, "-I %s 1 %s-p tcp -m tcp "
				    "--dport 25 -m comment --comment \"%s\" "
				    "-j %s\n", hooks[i],
				    strcmp(hooks[i], "OUTPUT") == 0 ?
				    "! -o lo " : "! -i lo ",
				    created ? RULES_COMMENT_NEW : RULES_COMMENT,
				    tchains[t]);
		}
		if (sec.len > 0)
			rbuf_printf(out, "*%s\n%sCOMMIT\n", tnames[t], sec.s);
		if (sec.oom)
			out->oom = 1;
		rbuf_free(&sec);
		rbuf_free(&w[t].rules);
	}
	free_saved(s);
	if (out->oom) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	return 0;
}

void
rules_ipt_created_empty(const char *before, const char *after,
    struct rbuf *out)
{
	struct tsaved s[T_N];
	const char *p, *nl;
	int cur = -1, empty[T_N] = { 1, 1, 1 }, seen[T_N] = { 0 }, t;

	parse_saved(before ? before : "", s);
	for (p = after ? after : ""; *p; p = nl ? nl + 1 : NULL) {
		size_t n;

		nl = strchr(p, '\n');
		n = nl ? (size_t)(nl - p) : strlen(p);
		if (n > 1 && p[0] == '*') {
			cur = table_index(p + 1, n - 1);
			if (cur >= 0)
				seen[cur] = 1;
		} else if (cur >= 0 && p[0] == '-')
			empty[cur] = 0;
		else if (cur >= 0 && p[0] == ':') {
			const char *sp = memchr(p, ' ', n);

			/* user chain ("-") or a policy other than ACCEPT */
			if (sp == NULL || (size_t)(sp - p) + 7 > n ||
			    strncmp(sp + 1, "ACCEPT ", 7) != 0)
				empty[cur] = 0;
		}
		if (nl == NULL)
			break;
	}
	for (t = 0; t < T_N; t++)
		if (s[t].created && seen[t] && empty[t])
			rbuf_printf(out, "%s%s", out->len ? " " : "",
			    tnames[t]);
	free_saved(s);
}

/* ------------------------------------------------------------ complete? */

/*
 * Whether what is in place is the configuration's whole set.  A flush of
 * one table (`iptables -t mangle -F`), an iptables-restore of a file that
 * holds only *filter, or `nft flush table inet mxguard` leaves some of
 * mxguard's rules and takes the rest, and with them the steering or the
 * guard.  Compared: every chain declared, the number of rules in each of
 * mxguard's chains, and every jump from a built-in chain (text, quotes and
 * blanks aside).  The rules themselves are counted, not compared as text:
 * iptables-save spells some of them otherwise than iptables-restore takes
 * them (a mask of 0xffffffff left out, TPROXY's --on-ip added), and a
 * set that never compares equal would be installed again at every check.
 * What the count misses is compared by value: a change of local_users'
 * uids alone (same_values(); nft: nft_chain_uids()), and where the rules
 * send a flow, by which marks (other_target(); nft: nft_chain_targets()).
 * Whether a jump is still first in its built-in chain is not checked: a
 * tool that inserts its own rule at the top too (a container runtime's
 * FORWARD jump) would fight the watch for the place.
 */

/* One iptables-save line as compared, "\n"-terminated onto out: counters
 * "[p:b] " dropped, a chain declaration as ":NAME" alone, "-I CHAIN n" as
 * "-A CHAIN", no quotes, single blanks, and the created-table comment as
 * the plain one (which a jump carries depends on the table's history). */
static void
norm_line(const char *p, size_t n, struct rbuf *out)
{
	static const char created[] = "--comment " RULES_COMMENT_NEW " ";
	struct rbuf t = { 0 };
	const char *e = p + n, *s;
	int blank = 0;

	if (n > 0 && *p == '[' && (s = memchr(p, ']', n)) != NULL) {
		p = s + 1;
		while (p < e && *p == ' ')
			p++;
	}
	if (p < e && *p == ':') {
		rbuf_printf(out, "%.*s\n", (int)strcspn(p, " \n"), p);
		return;
	}
	for (; p < e; p++) {
		if (*p == '"' || *p == '\r')
			continue;
		if (*p == ' ' || *p == '\t') {
			blank = 1;
			continue;
		}
		if (blank && t.len > 0)
			rbuf_printf(&t, " ");
		blank = 0;
		rbuf_printf(&t, "%c", *p);
	}
	rbuf_printf(&t, " ");
	s = rbuf_str(&t);
	if (strncmp(s, "-I ", 3) == 0) {
		size_t cn = strcspn(s + 3, " ");
		const char *num = s + 3 + cn + (s[3 + cn] == ' ');
		size_t nn = strspn(num, "0123456789");

		rbuf_printf(out, "-A %.*s", (int)cn, s + 3);
		s = nn > 0 && num[nn] == ' ' ? num + nn : s + 3 + cn;
	}
	for (; *s; ) {
		if (strncmp(s, created, sizeof(created) - 1) == 0) {
			rbuf_printf(out, "--comment " RULES_COMMENT " ");
			s += sizeof(created) - 1;
			continue;
		}
		rbuf_printf(out, "%c", *s++);
	}
	/* the blank appended above ends the line instead */
	if (out->len > 0 && out->s[out->len - 1] == ' ')
		out->len--;
	rbuf_printf(out, "\n");
	if (t.oom)
		out->oom = 1;
	rbuf_free(&t);
}

/* The lines of iptables-save (or iptables-restore) text that name an
 * MXGUARD_ chain, normalised, by table, each buffer starting with "\n" so
 * that "\nLINE\n" finds a line.  Returns whether there is any. */
static int
norm_tables(const char *text, struct rbuf tl[T_N])
{
	const char *p, *nl;
	int cur = -1, any = 0, t;

	memset(tl, 0, sizeof(struct rbuf) * T_N);
	for (t = 0; t < T_N; t++)
		rbuf_printf(&tl[t], "\n");
	for (p = text ? text : ""; *p; p = nl + 1) {
		size_t n;

		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p) - 1;
		n = (size_t)(nl - p) + (*nl == '\n' ? 0 : 1);
		if (n == 0 || *p == '#')
			continue;
		if (*p == '*') {
			cur = table_index(p + 1, strcspn(p + 1, " \r\n"));
			continue;
		}
		/* only what names one of ours is compared: a host's own
		 * thousands of rules cost a search each, no more */
		if (memmem(p, n, CH_PREFIX, strlen(CH_PREFIX)) == NULL)
			continue;
		any = 1;
		if (cur >= 0 && (*p == ':' || *p == '-' || *p == '['))
			norm_line(p, n, &tl[cur]);
		if (*nl != '\n')
			break;
	}
	return any;
}

/* Occurrences of needle in s. */
static int
count_of(const char *s, const char *needle)
{
	int n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return n;
}

#define FULL_MASK	"/0xffffffff"

/* The values of option opt (" --uid-owner ") in the rules of one chain
 * (key "\n-A CHAIN "), in order, onto out. */
static void
chain_values(const char *text, const char *key, const char *opt,
    struct rbuf *out)
{
	const char *p, *e, *v;
	size_t ol = strlen(opt);

	for (p = text; (p = strstr(p, key)) != NULL; p = e) {
		p++;
		if ((e = strchr(p, '\n')) == NULL)
			e = p + strlen(p);
		for (v = p; (v = memmem(v, (size_t)(e - v), opt, ol)) != NULL;
		    v += ol) {
			size_t vl = strcspn(v + ol, " \n");

			/* a mark's mask of 0xffffffff: iptables-save leaves
			 * it out of --mark (and keeps it elsewhere) */
			if (vl > sizeof(FULL_MASK) - 1 && memcmp(v + ol + vl -
			    (sizeof(FULL_MASK) - 1), FULL_MASK,
			    sizeof(FULL_MASK) - 1) == 0)
				vl -= sizeof(FULL_MASK) - 1;
			rbuf_printf(out, "%.*s ", (int)vl, v + ol);
		}
	}
}

/*
 * Whether one chain's rules carry the same values of opt in want and in
 * have.  The number of rules alone misses a change of uids only
 * (local_users names a user deleted and made again, another uid now):
 * the same count, a set that no longer lets the MTA's user through.  The
 * uids are compared, not the rules' whole text (see above): iptables-save
 * prints --uid-owner as given, a uid or a range of numbers.
 */
static int
same_values(const char *want, const char *have, const char *key,
    const char *opt)
{
	struct rbuf a = { 0 }, b = { 0 };
	int same;

	chain_values(want, key, opt, &a);
	chain_values(have, key, opt, &b);
	same = strcmp(rbuf_str(&a), rbuf_str(&b)) == 0 && !a.oom && !b.oom;
	rbuf_free(&a);
	rbuf_free(&b);
	return same;
}

/*
 * Where the rules of one chain send a flow, and by which marks they tell
 * a decided one: the options whose values, as the counts do not, say
 * whether a set of the same shape is the configuration's.  A set left by
 * an older configuration (an iptables-persistent file saved under another
 * divert_port, restored by a firewall's reload), or edited by hand, with
 * "--to-ports 10026", "--to-destination 10.0.0.9:10025" or "--queue-num
 * 7" counted complete: `rules ensure`/`watch` kept it and `rules stop`
 * left it in, and the flows the daemon diverted went to a port where
 * mxguard does not listen, which any local user may bind (above
 * ip_unprivileged_port_start) and so take the MTA's mail with no policy
 * at all, or their SYNs to a queue no one reads (--queue-bypass: past
 * the steering, direct with fail_mode = open).  Other marks than the
 * daemon's: its verdicts and its own sockets' marks not recognised.  And
 * the targets in order: a rule's verdict changed in place (`iptables -R
 * MXGUARD_GUARD 7 -j RETURN`: the closed guard's refusal gone) keeps the
 * count.  iptables-save prints each of these as given (a --mark's mask of
 * 0xffffffff aside: chain_values()).  Returns the option that differs
 * ("--to-ports "), or NULL.
 */
static const char *
other_target(const char *want, const char *have, const char *key)
{
	static const char *const opts[] = { " -j ", " --to-ports ",
	    " --to-destination ", " --queue-num ", " --on-port ", " --mark ",
	    " --tproxy-mark ", " --set-xmark " };
	size_t i;

	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (!same_values(want, have, key, opts[i]))
			return opts[i] + 1;
	return NULL;
}

/* Compares the saved lines of one table with the wanted ones; what is
 * missing goes to missing ("IPv4 mangle: ..."); returns 1 if complete. */
static int
table_complete(int family, int t, const char *want, const char *have,
    struct rbuf *missing)
{
	struct rbuf what = { 0 }, key = { 0 };
	const char *p, *nl, *o;
	int ok = 1;

	for (p = want + 1; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		rbuf_free(&key);
		if (*p == ':') {
			/* the chain, and as many rules in it as wanted */
			int nw, nh;

			rbuf_printf(&key, "\n%.*s\n", (int)(nl - p), p);
			if (strstr(have, rbuf_str(&key)) == NULL) {
				rbuf_printf(&what, "%schain %.*s gone",
				    what.len ? ", " : "", (int)(nl - p - 1),
				    p + 1);
				ok = 0;
				continue;
			}
			rbuf_free(&key);
			rbuf_printf(&key, "\n-A %.*s ", (int)(nl - p - 1), p + 1);
			nw = count_of(want, rbuf_str(&key));
			nh = count_of(have, rbuf_str(&key));
			if (nw != nh) {
				rbuf_printf(&what, "%s%.*s holds %d of its %d "
				    "rules", what.len ? ", " : "",
				    (int)(nl - p - 1), p + 1, nh, nw);
				ok = 0;
			} else if (!same_values(want, have, rbuf_str(&key),
			    " --uid-owner ")) {
				rbuf_printf(&what, "%s%.*s matches other uids "
				    "than local_users'", what.len ? ", " : "",
				    (int)(nl - p - 1), p + 1);
				ok = 0;
			} else if ((o = other_target(want, have,
			    rbuf_str(&key))) != NULL) {
				rbuf_printf(&what, "%s%.*s has other %.*s "
				    "values than the configuration's",
				    what.len ? ", " : "", (int)(nl - p - 1),
				    p + 1, (int)strcspn(o, " "), o);
				ok = 0;
			}
			continue;
		}
		if (strncmp(p, "-A " CH_PREFIX, 3 + strlen(CH_PREFIX)) == 0)
			continue;
		/* a jump from a built-in chain, as it is written */
		rbuf_printf(&key, "\n%.*s\n", (int)(nl - p), p);
		if (strstr(have, rbuf_str(&key)) == NULL) {
			rbuf_printf(&what, "%sthe jump from %.*s gone",
			    what.len ? ", " : "", (int)strcspn(p + 3, " "),
			    p + 3);
			ok = 0;
		}
	}
	if (!ok)
		rbuf_printf(missing, "%sIPv%d %s table: %s",
		    missing->len ? "; " : "", family, tnames[t], rbuf_str(&what));
	rbuf_free(&what);
	rbuf_free(&key);
	return ok;
}

int
rules_ipt_state(const struct config *c, int family, const char *saved,
    struct rbuf *missing, char *err, size_t errsz)
{
	static const char refuse[] = "\n-A " CH_GUARD
	    " -p tcp -j REJECT --reject-with tcp-reset\n";
	struct rbuf script = { 0 }, want[T_N], have[T_N], miss = { 0 };
	int any, t, complete = 1, rc = -1;

	if (rules_ipt_script(c, family, 1, "", &script, err, errsz) == -1) {
		rbuf_free(&script);
		return -1;
	}
	(void)norm_tables(rbuf_str(&script), want);
	any = norm_tables(saved, have);
	for (t = 0; t < T_N; t++)
		if (!table_complete(family, t, rbuf_str(&want[t]),
		    rbuf_str(&have[t]), &miss))
			complete = 0;
	if (complete)
		rc = RULES_ST_COMPLETE;
	else if (strstr(rbuf_str(&have[T_FILTER]), refuse) != NULL)
		rc = RULES_ST_REFUSAL;
	else if (!any)
		rc = RULES_ST_NONE;
	else {
		rc = RULES_ST_PARTIAL;
		if (missing != NULL)
			rbuf_printf(missing, "%s%s", missing->len ? "; " :
			    "", rbuf_str(&miss));
	}
	for (t = 0; t < T_N; t++)
		if (want[t].oom || have[t].oom)
			miss.oom = 1;
	if (miss.oom || script.oom || (missing != NULL && missing->oom)) {
		snprintf(err, errsz, "out of memory");
		rc = -1;
	}
	for (t = 0; t < T_N; t++) {
		rbuf_free(&want[t]);
		rbuf_free(&have[t]);
	}
	rbuf_free(&script);
	rbuf_free(&miss);
	return rc;
}

/* The rules of each chain of nft text (the script, or `nft list table`),
 * one "NAME COUNT\n" a chain onto out: a chain's rules are the lines of
 * its block but its "type ... policy ...;" line. */
static void
nft_chain_counts(const char *text, struct rbuf *out)
{
	const char *p, *nl;
	char name[64] = "";
	int n = 0, in = 0;

	for (p = text ? text : ""; *p; p = nl + 1) {
		const char *s = p;
		size_t len;

		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p) - 1;
		while (*s == ' ' || *s == '\t')
			s++;
		len = (size_t)(nl - s) + (*nl == '\n' ? 0 : 1);
		if (!in && sscanf(s, "chain %63[^ {\n] {", name) == 1) {
			in = 1;
			n = 0;
		} else if (in && len > 0 && *s == '}') {
			rbuf_printf(out, "%s %d\n", name, n);
			in = 0;
		} else if (in && len > 0 && *s != '#' &&
		    strncmp(s, "type ", 5) != 0 && strncmp(s, "policy ", 7) != 0)
			n++;
		if (*nl != '\n')
			break;
	}
}

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* One skuid match of an nft rule, s just past "skuid ", e the line's end,
 * onto out as compared: "!" for "!=", the uids sorted and comma separated
 * (nft lists a set of one as its element, and a set in its own order).
 * Returns where the match ends. */
static const char *
nft_uid_match(const char *s, const char *e, struct rbuf *out)
{
	uint32_t v[CONFIG_LOCAL_USERS_MAX];
	int n = 0, set = 0, i;
	char *end;

	if (e - s > 3 && strncmp(s, "!= ", 3) == 0) {
		rbuf_printf(out, "!");
		s += 3;
	} else if (e - s > 3 && strncmp(s, "== ", 3) == 0)
		s += 3;
	if (s < e && *s == '{') {
		set = 1;
		s++;
	}
	while (s < e) {
		while (s < e && (*s == ' ' || *s == ','))
			s++;
		if (s >= e || (set && *s == '}')) {
			s += s < e;
			break;
		}
		v[n] = (uint32_t)strtoul(s, &end, 10);
		if (end == s || end > e) {
			/* not a uid (a name?): as it is, compared so */
			size_t k = strcspn(s, " ,}\n");

			rbuf_printf(out, "?%.*s", (int)k, s);
			s += k;
		} else {
			s = end;
			if (n < CONFIG_LOCAL_USERS_MAX)
				n++;
		}
		if (!set)
			break;
	}
	qsort(v, (size_t)n, sizeof(v[0]), u32_cmp);
	for (i = 0; i < n; i++)
		rbuf_printf(out, "%s%lu", i ? "," : "", (unsigned long)v[i]);
	rbuf_printf(out, ";");
	return s;
}

/*
 * Walks the chains of nft text: "\n" first, then "NAME:" and what line()
 * adds for each rule line of the chain (s..nl, leading blanks skipped),
 * "\n" at its end.  One line a chain, for nft_uids_of().
 */
static void
nft_chains_walk(const char *text, struct rbuf *out,
    void (*line)(const char *s, const char *nl, struct rbuf *))
{
	const char *p, *nl, *s;
	char name[64];
	int in = 0;

	rbuf_printf(out, "\n");
	for (p = text ? text : ""; *p; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p);
		for (s = p; *s == ' ' || *s == '\t'; s++)
			;
		if (!in && sscanf(s, "chain %63[^ {\n] {", name) == 1) {
			in = 1;
			rbuf_printf(out, "%s:", name);
		} else if (in && s < nl && *s == '}') {
			rbuf_printf(out, "\n");
			in = 0;
		} else if (in)
			line(s, nl, out);
		if (*nl != '\n')
			break;
	}
}

/* A rule line's skuid matches, " M;" each (nft_chain_uids()). */
static void
uids_line(const char *s, const char *nl, struct rbuf *out)
{
	const char *u;

	for (u = s; (u = memmem(u, (size_t)(nl - u), "skuid ", 6)) != NULL; ) {
		rbuf_printf(out, " ");
		u = nft_uid_match(u + 6, nl, out);
	}
}

/* The skuid matches of each chain of nft text, one "NAME: M; M;\n" a
 * chain after a first "\n", for same_values() of nftables. */
static void
nft_chain_uids(const char *text, struct rbuf *out)
{
	nft_chains_walk(text, out, uids_line);
}

/* A rule line's divert targets and queue number (nft_chain_targets()). */
static void
targets_line(const char *s, const char *nl, struct rbuf *out)
{
	static const char *const divert[] = { "redirect to ", "dnat ip to ",
	    "dnat ip6 to ", "tproxy ip to ", "tproxy ip6 to " };
	const char *u;
	size_t i;

	for (i = 0; i < sizeof(divert) / sizeof(divert[0]); i++)
		for (u = s; (u = memmem(u, (size_t)(nl - u), divert[i],
		    strlen(divert[i]))) != NULL; ) {
			u += strlen(divert[i]);
			rbuf_printf(out, " %.*s%.*s",
			    (int)strlen(divert[i]) - 3, divert[i],
			    (int)strcspn(u, " \n"), u);
		}
	if ((u = memmem(s, (size_t)(nl - s), "queue ", 6)) != NULL &&
	    (u == s || u[-1] == ' ')) {
		const char *n = memmem(u, (size_t)(nl - u), " num ", 5);
		const char *t = memmem(u, (size_t)(nl - u), " to ", 4);

		rbuf_printf(out, " queue %lu", n != NULL ?
		    strtoul(n + 5, NULL, 10) : t != NULL ?
		    strtoul(t + 4, NULL, 10) : 0UL);
	}
}

/*
 * Where the rules of each chain of nft text send a flow, one "NAME: V V\n"
 * a chain after a first "\n", as other_target() for iptables: a table of
 * the same shape that redirects to another port, DNATs to another address
 * or queues to another queue is not the configuration's.  "queue num N
 * bypass" is listed "queue flags bypass to N": the number after "num" or
 * "to".  (The marks are not compared here: nft lists a mark's match and
 * statement in as many spellings as there are masks, "meta mark & 0xffff
 * == 0x4d58" as such, "meta mark & 0xffffffff == 0x4d58" as "meta mark
 * 0x00004d58", and folds a set's mask into its value.)
 */
static void
nft_chain_targets(const char *text, struct rbuf *out)
{
	nft_chains_walk(text, out, targets_line);
}

/* One chain's line of nft_chain_uids() (or nft_chain_targets()) output
 * ("" if none). */
static void
nft_uids_of(const char *uids, const char *name, struct rbuf *out)
{
	struct rbuf key = { 0 };
	const char *p;

	rbuf_printf(&key, "\n%s:", name);
	if ((p = strstr(uids, rbuf_str(&key))) != NULL)
		rbuf_printf(out, "%.*s", (int)strcspn(p + 1, "\n"), p + 1);
	rbuf_free(&key);
}

int
rules_nft_state(const struct config *c, const char *listed,
    struct rbuf *missing, char *err, size_t errsz)
{
	struct rbuf script = { 0 }, want = { 0 }, have = { 0 }, what = { 0 };
	struct rbuf wu = { 0 }, hu = { 0 }, a = { 0 }, b = { 0 };
	struct rbuf wt = { 0 }, ht = { 0 };
	const char *p, *nl;
	int rc = -1;

	if (listed == NULL)
		return RULES_ST_NONE;
	if (rules_nft_script(c, &script, err, errsz) == -1)
		goto out;
	nft_chain_counts(rbuf_str(&script), &want);
	rbuf_printf(&have, "\n");
	nft_chain_counts(listed, &have);
	/* the uids of the skuid matches too: see same_values() */
	nft_chain_uids(rbuf_str(&script), &wu);
	nft_chain_uids(listed, &hu);
	nft_chain_targets(rbuf_str(&script), &wt);
	nft_chain_targets(listed, &ht);
	for (p = rbuf_str(&want); *p; p = nl + 1) {
		char name[64], key[80];
		const char *h;
		int nw, nh = 0;

		nl = strchr(p, '\n');
		if (sscanf(p, "%63s %d", name, &nw) != 2)
			continue;
		snprintf(key, sizeof(key), "\n%s ", name);
		if ((h = strstr(rbuf_str(&have), key)) == NULL)
			rbuf_printf(&what, "%schain %s gone", what.len ? ", " :
			    "", name);
		else if ((nh = atoi(h + strlen(key))) != nw)
			rbuf_printf(&what, "%schain %s holds %d of its %d "
			    "rules", what.len ? ", " : "", name, nh, nw);
		else {
			rbuf_free(&a);
			rbuf_free(&b);
			nft_uids_of(rbuf_str(&wu), name, &a);
			nft_uids_of(rbuf_str(&hu), name, &b);
			if (strcmp(rbuf_str(&a), rbuf_str(&b)) != 0) {
				rbuf_printf(&what, "%schain %s matches other "
				    "uids than local_users'", what.len ?
				    ", " : "", name);
				continue;
			}
			/* where it diverts or queues: see
			 * nft_chain_targets() */
			rbuf_free(&a);
			rbuf_free(&b);
			nft_uids_of(rbuf_str(&wt), name, &a);
			nft_uids_of(rbuf_str(&ht), name, &b);
			if (strcmp(rbuf_str(&a), rbuf_str(&b)) != 0)
				rbuf_printf(&what, "%schain %s diverts or "
				    "queues elsewhere than the configuration's",
				    what.len ? ", " : "", name);
		}
	}
	if (what.len > 0 && missing != NULL)
		rbuf_printf(missing, "%stable inet mxguard: %s",
		    missing->len ? "; " : "", what.s);
	rc = what.len > 0 ? RULES_ST_PARTIAL : RULES_ST_COMPLETE;
	if (script.oom || want.oom || have.oom || what.oom || wu.oom ||
	    hu.oom || a.oom || b.oom || wt.oom || ht.oom ||
	    (missing != NULL && missing->oom)) {
		snprintf(err, errsz, "out of memory");
		rc = -1;
	}
out:
	rbuf_free(&script);
	rbuf_free(&want);
	rbuf_free(&have);
	rbuf_free(&what);
	rbuf_free(&wu);
	rbuf_free(&hu);
	rbuf_free(&wt);
	rbuf_free(&ht);
	rbuf_free(&a);
	rbuf_free(&b);
	return rc;
}

/* ------------------------------------------------------------ nftables */

/* First in the guard: every packet of the host (local) or forwarded
 * through it (gateway) enters an nft chain, and "tcp dport != 25 return"
 * matches TCP only (nft makes it "meta l4proto tcp" first), so a UDP or
 * ICMP packet went on to "ct state invalid,untracked drop": a NOTRACKed
 * DNS datagram, say, was dropped.  (iptables enters with -p tcp --dport
 * 25.)  The other chains act on TCP only. */
#define NFT_NOT_TCP	"meta l4proto != tcp return"

/* REPLY_DIR in nft */
#define NFT_REPLY_DIR	"ct direction reply drop"

/* GW_STALE_SYN in nft */
#define NFT_GW_STALE_SYN "tcp flags & (fin|syn|rst|ack) == syn " \
	"ct state != new drop"

/* REFUSE_REST in nft */
#define NFT_REFUSE_REST	"tcp flags & rst == 0 reject with tcp reset"

/* The bypass lists as return statements (the lists were checked). */
static void
nft_bypass_returns(const struct config *c, struct rbuf *o)
{
	int i, j;

	for (i = 0; i < 2; i++) {
		const struct strlist *l = i ? &c->bypass_dst : &c->bypass_src;

		for (j = 0; j < l->n; j++) {
			struct cidr x;
			char b[64];

			cidr_parse(l->v[j], &x);
			rbuf_printf(o, "\t\t%s %s %s return\n",
			    x.family == AF_INET ? "ip" : "ip6",
			    i ? "daddr" : "saddr", cidr_str(&x, b, sizeof(b)));
		}
	}
}

/* nft: the statement that diverts, after pre (its matches): one redirect
 * for both families, or a rule per family where gw_divert_to() names an
 * address (mid: matches after the family's) */
static void
nft_divert(const struct config *c, struct rbuf *o, const char *pre,
    const char *mid)
{
	char b4[INET6_ADDRSTRLEN + 16], b6[INET6_ADDRSTRLEN + 16];
	const char *to4 = gw_divert_to(c, AF_INET, b4, sizeof(b4));
	const char *to6 = gw_divert_to(c, AF_INET6, b6, sizeof(b6));

	if (to4 == NULL && to6 == NULL) {
		rbuf_printf(o, "\t\t%s%sredirect to :%d\n", pre, mid,
		    c->divert_port);
		return;
	}
	if (to4 != NULL)
		rbuf_printf(o, "\t\t%smeta nfproto ipv4 %sdnat ip to %s\n",
		    pre, mid, to4);
	else
		rbuf_printf(o, "\t\t%smeta nfproto ipv4 %sredirect to :%d\n",
		    pre, mid, c->divert_port);
	if (to6 != NULL)
		rbuf_printf(o, "\t\t%smeta nfproto ipv6 %sdnat ip6 to %s\n",
		    pre, mid, to6);
	else
		rbuf_printf(o, "\t\t%smeta nfproto ipv6 %sredirect to :%d\n",
		    pre, mid, c->divert_port);
}

int
rules_nft_script(const struct config *c, struct rbuf *o, char *err,
    size_t errsz)
{
	unsigned up = c->upstream_mark & c->mark_mask;
	unsigned in = c->intercept_mark & c->mark_mask;
	unsigned m = c->mark_mask, nm = ~c->mark_mask;
	int local = is_local(c), tp = rules_tproxy_needed(c);
	struct rbuf lob = { 0 }, lod = { 0 }, us = { 0 }, ms = { 0 };
	uint32_t uids[CONFIG_LOCAL_USERS_MAX];
	const char *lo, *lodiv, *um, *set;
	int i, nu = 0;

	if (check_cidrs(c, err, errsz) == -1)
		return -1;
	/* local_users: see add_user_refusals() */
	if (local && (nu = config_local_uids(c, uids, err, errsz)) == -1)
		return -1;
	/* set: "{ 0, 103 } "; um: the match of the listed users' flows */
	for (i = 0; i < nu; i++)
		rbuf_printf(&us, "%s%lu", i ? ", " : "{ ",
		    (unsigned long)uids[i]);
	if (nu > 0) {
		rbuf_printf(&us, " } ");
		if (!us.oom)
			rbuf_printf(&ms, "meta skuid %s", us.s);
	}
	if (us.oom || ms.oom) {
		snprintf(err, errsz, "out of memory");
		rbuf_free(&us);
		rbuf_free(&ms);
		return -1;
	}
	set = rbuf_str(&us);
	um = rbuf_str(&ms);
	/* lo never; in gateway mode not the outside interfaces either (see
	 * want_ipt(); '+', iptables' prefix, is nft's '*') */
	rbuf_printf(&lob, "%s", local ? "oifname \"lo\" return" :
	    "iifname \"lo\" return");
	for (i = 0; !local && i < c->bypass_interfaces.n; i++) {
		const char *v = c->bypass_interfaces.v[i];
		size_t n = strlen(v);

		rbuf_printf(&lob, "\n\t\tiifname \"%.*s%s\" return",
		    (int)(v[n - 1] == '+' ? n - 1 : n), v,
		    v[n - 1] == '+' ? "*" : "");
	}
	/* the chains that divert: not to our own addresses either, marked
	 * BYPASS for the guard, which sees one only when a rule of the
	 * host's DNATs it onwards (see GW_OWN_DST) */
	rbuf_printf(&lod, "%s", rbuf_str(&lob));
	if (!local)
		rbuf_printf(&lod, "\n\t\t" NFT_GW_OWN_DST, nm, up);
	if (lob.oom || lod.oom) {
		snprintf(err, errsz, "out of memory");
		rbuf_free(&lob);
		rbuf_free(&lod);
		rbuf_free(&us);
		rbuf_free(&ms);
		return -1;
	}
	lo = lob.s;
	lodiv = lod.s;
	/* declare-delete-define: one atomic transaction, idempotent */
	rbuf_printf(o, "table inet mxguard\ndelete table inet mxguard\n"
	    "table inet mxguard {\n");
	if (is_nfq(c) || tp || local) {
		rbuf_printf(o, "\tchain steer {\n\t\ttype %s hook %s priority "
		    "mangle; policy accept;\n\t\ttcp dport != 25 return\n\t\t%s\n",
		    local ? "route" : "filter", local ? "output" : "prerouting",
		    lodiv);
		/* a SYN filed under an old connection: see want_ipt() */
		if (local)
			rbuf_printf(o, "\t\ttcp flags & (fin|syn|rst|ack) == syn "
			    "ct state != new ct status & dnat == 0 "
			    "meta mark & 0x%x != 0x%x drop\n"
			    "\t\ttcp flags & (fin|syn|rst|ack) == syn "
			    "ct status & dnat != 0 meta mark & 0x%x == 0x%x drop\n",
			    m, up, m, up);
		/* another user's packet on a listed user's diverted entry:
		 * see add_user_dnat_drops() */
		if (local && nu > 0)
			rbuf_printf(o, "\t\tct status & dnat != 0 "
			    "meta mark & 0x%x != 0x%x meta skuid != %sdrop\n",
			    m, up, set);
		if (!is_nfq(c) && !tp)	/* the rest is in the nat chain */
			rbuf_printf(o, "\t}\n");
	}
	if (!is_nfq(c)) {
		/* steering=none */
		const char *ch = tp ? "" : "divert";

		if (!tp)
			rbuf_printf(o, "\tchain %s {\n\t\ttype nat hook %s "
			    "priority -100; policy accept;\n\t\ttcp dport != 25 "
			    "return\n\t\t%s\n", ch, local ? "output" : "prerouting",
			    lodiv);
		rbuf_printf(o, "\t\tmeta mark & 0x%x == 0x%x return\n", m, up);
		nft_bypass_returns(c, o);
		/* nft's tproxy that finds no transparent listener (the
		 * daemon down, the rules left in: fail_mode = closed, `rules
		 * boot`) does not drop, as iptables' TPROXY target does: the
		 * rule just does not match (NFT_BREAK), and with no guard
		 * after it the flow went to the MX direct.  Dropped here. */
		if (tp)
			rbuf_printf(o, "\t\tmeta nfproto ipv4 meta l4proto tcp tproxy ip to :%d "
			    "meta mark set meta mark & 0x%x | 0x%x accept\n"
			    "\t\tmeta nfproto ipv6 meta l4proto tcp tproxy ip6 to :%d "
			    "meta mark set meta mark & 0x%x | 0x%x accept\n"
			    "\t\t" NFT_TPROXY_UNHEARD "\n",
			    c->divert_port, nm, in, c->divert_port, nm, in);
		else
			nft_divert(c, o, um, "meta l4proto tcp ");
		rbuf_printf(o, "\t}\n");
		/* the guard of what nat never sees: see want_ipt() */
		if (!tp) {
			rbuf_printf(o, "\tchain guard {\n\t\ttype filter hook %s "
			    "priority filter; policy accept;\n\t\t" NFT_NOT_TCP
			    "\n\t\ttcp dport != 25 return\n\t\t%s\n"
			    "\t\tmeta mark & 0x%x == 0x%x return\n",
			    local ? "output" : "forward", lo, m, up);
			if (nu > 0)
				rbuf_printf(o, "\t\tmeta skuid != %s%s\n",
				    set, NFT_REFUSE_REST);
			rbuf_printf(o, "\t\tct state invalid,untracked drop\n");
			rbuf_printf(o, "\t\t%s\n", NFT_REPLY_DIR);
			if (!local)
				rbuf_printf(o, "\t\t%s\n", NFT_GW_STALE_SYN);
			if (is_closed(c)) {
				/* see GW_OWN_DST */
				if (!local)
					rbuf_printf(o, "\t\tct mark & 0x%x == "
					    "0x%x return\n", m, up);
				nft_bypass_returns(c, o);
				rbuf_printf(o, "\t\t%s\n", NFT_REFUSE_REST);
			}
			rbuf_printf(o, "\t}\n");
		}
		rbuf_printf(o, "}\n");
		goto done;
	}
	rbuf_printf(o,
	    "\t\tmeta mark & 0x%x == 0x%x ct mark set ct mark & 0x%x | 0x%x\n"
	    "\t\tmeta mark & 0x%x == 0x%x ct mark set ct mark & 0x%x | 0x%x\n"
	    "\t\tct mark & 0x%x == 0x%x return\n",
	    m, up, nm, up, m, in, nm, in, m, up);
	if (tp)
		rbuf_printf(o,
		    "\t\tct mark & 0x%x == 0x%x meta nfproto ipv4 meta l4proto tcp tproxy ip to :%d "
		    "meta mark set meta mark & 0x%x | 0x%x accept\n"
		    "\t\tct mark & 0x%x == 0x%x meta nfproto ipv6 meta l4proto tcp tproxy ip6 to :%d "
		    "meta mark set meta mark & 0x%x | 0x%x accept\n"
		    /* not taken (no listener): dropped, as by iptables'
		     * TPROXY, not returned to go on to the guard, which
		     * lets a diverted connmark through */
		    "\t\tct mark & 0x%x == 0x%x " NFT_TPROXY_UNHEARD "\n",
		    m, in, c->divert_port, nm, in, m, in, c->divert_port, nm, in,
		    m, in);
	/* see DIVERTED_SYN */
	if (!tp)
		rbuf_printf(o, "\t\t" NFT_DIVERTED_SYN " ct mark & 0x%x == "
		    "0x%x meta mark & 0x%x != 0x%x queue num %d\n", m, in, m,
		    in, c->nfqueue_num);
	rbuf_printf(o, "\t\tct mark & 0x%x == 0x%x return\n"
	    "\t\ttcp flags & (fin|syn|rst|ack) == syn ct state new "
	    "%squeue num %d bypass\n\t}\n", m, in, um, c->nfqueue_num);
	if (!tp) {
		char pre[80];

		rbuf_printf(o, "\tchain divert {\n\t\ttype nat hook %s priority "
		    "-100; policy accept;\n", local ? "output" : "prerouting");
		snprintf(pre, sizeof(pre), "tcp dport 25 ct mark & 0x%x == "
		    "0x%x ", m, in);
		nft_divert(c, o, pre, "");
		rbuf_printf(o, "\t}\n");
	}
	/* the guard: see want_ipt() */
	rbuf_printf(o, "\tchain guard {\n\t\ttype filter hook %s "
	    "priority filter; policy accept;\n\t\t" NFT_NOT_TCP
	    "\n\t\ttcp dport != 25 return\n\t\t%s\n"
	    "\t\tmeta mark & 0x%x == 0x%x return\n",
	    local ? "output" : "forward", lo, m, up);
	if (nu > 0)
		rbuf_printf(o, "\t\tmeta skuid != %s%s\n",
		    set, NFT_REFUSE_REST);
	rbuf_printf(o, "\t\tct state invalid,untracked drop\n"
	    "\t\ttcp flags & (fin|syn|rst|ack) != syn ct state new drop\n");
	rbuf_printf(o, "\t\t%s\n", NFT_REPLY_DIR);
	if (!local)
		rbuf_printf(o, "\t\t%s\n", NFT_GW_STALE_SYN);
	/* taken but not diverted: see want_ipt() */
	rbuf_printf(o, "\t\tct mark & 0x%x == 0x%x drop\n", m, in);
	if (is_closed(c))
		rbuf_printf(o, "\t\tct mark & 0x%x == 0x%x return\n"
		    "\t\t%s\n", m, up, NFT_REFUSE_REST);
	rbuf_printf(o, "\t}\n");
	rbuf_printf(o, "}\n");
done:
	rbuf_free(&lob);
	rbuf_free(&lod);
	rbuf_free(&us);
	rbuf_free(&ms);
	if (o->oom) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ running */

/*
 * Runs argv (PATH search) with `in` on stdin; stdout into *out (if not
 * NULL), stderr into errbuf.  Returns the exit status, or -1.
 */
static int
run(char *const argv[], const char *in, struct rbuf *out, struct rbuf *errout)
{
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	pid_t pid;
	int status;
	size_t off = 0, inlen = in ? strlen(in) : 0;
	void (*old)(int);

	if (pipe2(pin, O_CLOEXEC) == -1 || pipe2(pout, O_CLOEXEC) == -1 ||
	    pipe2(perr, O_CLOEXEC) == -1)
		goto fail;
	old = signal(SIGPIPE, SIG_IGN);
	if ((pid = fork()) == -1) {
		signal(SIGPIPE, old);
		goto fail;
	}
	if (pid == 0) {
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	/* the inputs are small; the tools read all input before writing */
	while (off < inlen) {
		ssize_t n = write(pin[1], in + off, inlen - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(pin[1]);
	pin[1] = -1;
	{
		struct pollfd_like { int fd; struct rbuf *b; } fds[2] = {
			{ pout[0], out }, { perr[0], errout } };
		int k;

		for (k = 0; k < 2; k++) {
			char buf[4096];
			ssize_t n;

			while ((n = read(fds[k].fd, buf, sizeof(buf))) != 0) {
				if (n == -1) {
					if (errno == EINTR)
						continue;
					break;
				}
				if (fds[k].b)
					rbuf_printf(fds[k].b, "%.*s", (int)n, buf);
			}
		}
	}
	close(pout[0]);
	close(perr[0]);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			signal(SIGPIPE, old);
			return -1;
		}
	signal(SIGPIPE, old);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
fail:
	{
		int *fds[3] = { pin, pout, perr }, k;

		for (k = 0; k < 3; k++) {
			if (fds[k][0] != -1)
				close(fds[k][0]);
			if (fds[k][1] != -1)
				close(fds[k][1]);
		}
	}
	return -1;
}

/* Runs argv; on failure fills err with its stderr (first line). */
static int
run_ok(char *const argv[], const char *in, struct rbuf *out, char *err,
    size_t errsz)
{
	struct rbuf e = { 0 };
	int rc = run(argv, in, out, &e);

	if (rc != 0) {
		const char *s = rbuf_str(&e);
		size_t n = strcspn(s, "\n");

		snprintf(err, errsz, "%s failed (%d): %.*s", argv[0], rc,
		    (int)(n > 300 ? 300 : n), s);
		rbuf_free(&e);
		return -1;
	}
	rbuf_free(&e);
	return 0;
}

/*
 * One family's iptables-save output.  A tool that is not installed (run()'s
 * child could not exec it: 127, "NAME: No such file or directory") is no
 * rule of that family, and its output empty: with rules_backend =
 * nftables iptables is not needed (docs/deployment.md, "Requirements"),
 * but its sets were read to remove an iptables set left over, to compare
 * and to show, and on a host without the package `rules install` failed
 * after the table had gone in (mxguard.service's ExecStartPre: the daemon
 * never started), `rules ensure`/`watch` never put a flushed table back,
 * and `rules stop` failed.  Installing an iptables set still fails where
 * the tool is missing: iptables-restore is missing too.
 */
static int
ipt_save(int family, struct rbuf *out, char *err, size_t errsz)
{
	char *argv[] = { family == 4 ? "iptables-save" : "ip6tables-save",
	    NULL };
	struct rbuf e = { 0 }, missing = { 0 };
	int rc = run(argv, NULL, out, &e);

	rbuf_printf(&missing, "%s: %s\n", argv[0], strerror(ENOENT));
	if (rc == 127 && strcmp(rbuf_str(&e), rbuf_str(&missing)) == 0) {
		rbuf_free(out);
		rc = 0;
	} else if (rc != 0) {
		const char *s = rbuf_str(&e);
		size_t n = strcspn(s, "\n");

		snprintf(err, errsz, "%s failed (%d): %.*s", argv[0], rc,
		    (int)(n > 300 ? 300 : n), s);
		rc = -1;
	}
	rbuf_free(&e);
	rbuf_free(&missing);
	return rc;
}

static int
ipt_restore(int family, const char *script, char *err, size_t errsz)
{
	char *argv[] = { family == 4 ? "iptables-restore" : "ip6tables-restore",
	    "--noflush", "--wait", NULL };

	if (*script == '\0')
		return 0;
	return run_ok(argv, script, NULL, err, errsz);
}

/* iptables over nf_tables leaves tables behind: delete the ones we made. */
static void
ipt_drop_created(int family, const char *before, char *err, size_t errsz)
{
	struct rbuf after = { 0 }, names = { 0 }, e = { 0 };
	char *p, *tok, *save = NULL;

	if (ipt_save(family, &after, err, errsz) == -1)
		goto out;
	rules_ipt_created_empty(before, rbuf_str(&after), &names);
	if (names.len == 0)
		goto out;
	p = names.s;
	for (tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *argv[] = { "nft", "delete", "table",
		    family == 4 ? "ip" : "ip6", tok, NULL };

		rbuf_free(&e);
		if (run(argv, NULL, NULL, &e) != 0)
			fprintf(stderr, "mxguard: could not delete table %s "
			    "%s that mxguard created: %s", argv[3], tok,
			    rbuf_str(&e));
	}
out:
	rbuf_free(&after);
	rbuf_free(&names);
	rbuf_free(&e);
}

static int
ipt_apply(const struct config *c, int want, char *err, size_t errsz)
{
	int family;

	for (family = 4; family <= 6; family += 2) {
		struct rbuf saved = { 0 }, script = { 0 };
		int rc = -1;

		if (ipt_save(family, &saved, err, errsz) == -1)
			goto next;
		if (rules_ipt_script(c, family, want, rbuf_str(&saved),
		    &script, err, errsz) == -1)
			goto next;
		if (ipt_restore(family, rbuf_str(&script), err, errsz) == -1)
			goto next;
		/* tables we created and no longer use (remove, or a switch
		 * of mode) are deleted again */
		ipt_drop_created(family, rbuf_str(&saved), err, errsz);
		rc = 0;
next:
		rbuf_free(&saved);
		rbuf_free(&script);
		if (rc == -1) {
			size_t n = strlen(err);

			snprintf(err + n, errsz - n, " (IPv%d)", family);
			return -1;
		}
	}
	return 0;
}

/* The "N:" preferences at the start of `ip rule show` lines, at most max;
 * with tagged, only of lines that end in " proto TAG" (-N output). */
static int
rule_prefs(char *text, const char *tagged, unsigned long *v, int max)
{
	char *line, *save = NULL, *end;
	size_t tl = tagged ? strlen(tagged) : 0;
	int n = 0;

	for (line = text ? strtok_r(text, "\n", &save) : NULL; line != NULL &&
	    n < max; line = strtok_r(NULL, "\n", &save)) {
		size_t ll;

		while ((ll = strlen(line)) > 0 && line[ll - 1] == ' ')
			line[--ll] = '\0';
		if (tagged && (ll < tl || strcmp(line + ll - tl, tagged) != 0))
			continue;
		v[n] = strtoul(line, &end, 10);
		if (end != line && *end == ':')
			n++;
	}
	return n;
}

/*
 * After an install: the tagged rules and routes (tproxy_routes) that are
 * not the configuration's own, left by an install under other values.
 * Ours are found by ip's own filter (fwmark and table compared as
 * numbers), never by the text it prints, which changes with the mask
 * (0xffffffff prints none) and with names in rt_tables; the tagged ones
 * are listed with -N, numbers only.
 */
static int
drop_stale_tagged(char *fam, char *mark, char *table, char *proto,
    char *err, size_t errsz)
{
	char *ours[] = { "ip", fam, "rule", "show", "fwmark", mark, "table",
	    table, NULL };
	char *rules[] = { "ip", "-N", fam, "rule", "show", NULL };
	char *routes[] = { "ip", "-N", fam, "route", "show", "table", "all",
	    "proto", proto, NULL };
	unsigned long keep[16], tagged[64];
	struct rbuf out = { 0 };
	char tag[32], tbl[32], pref[24];
	const char *p;
	int nkeep, ntag, i, j;

	snprintf(tag, sizeof(tag), " proto %s", proto);
	if (run_ok(ours, NULL, &out, err, errsz) == -1)
		return -1;
	nkeep = rule_prefs(out.s, NULL, keep, 16);
	rbuf_free(&out);
	if (run_ok(rules, NULL, &out, err, errsz) == -1)
		return -1;
	ntag = rule_prefs(out.s, tag, tagged, 64);
	rbuf_free(&out);
	for (i = 0; i < ntag; i++) {
		char *del[] = { "ip", fam, "rule", "del", "pref", pref,
		    "protocol", proto, NULL };

		for (j = 0; j < nkeep && keep[j] != tagged[i]; j++)
			;
		if (j < nkeep)
			continue;
		snprintf(pref, sizeof(pref), "%lu", tagged[i]);
		(void)run(del, NULL, NULL, NULL);
	}
	if (run_ok(routes, NULL, &out, err, errsz) == -1)
		return -1;
	for (p = rbuf_str(&out); (p = strstr(p, " table ")) != NULL; ) {
		p += 7;
		if (sscanf(p, "%31[0-9]", tbl) != 1 || strcmp(tbl, table) == 0)
			continue;
		{
			char *flush[] = { "ip", fam, "route", "flush", "table",
			    tbl, "proto", proto, NULL };

			(void)run(flush, NULL, NULL, NULL);
		}
	}
	rbuf_free(&out);
	return 0;
}

/*
 * ip rule + local route for TPROXY, both families.  Both carry the routing
 * protocol RULES_RT_PROTO, so that removing them needs no configuration:
 * `rules remove` after the marks, the table or listen_mode changed (or
 * with another config file) still finds what an earlier install added.
 * Removing also takes the rule and route the configuration names, for
 * what a version before the tag installed.
 */
static int
tproxy_routes(const struct config *c, int add, char *err, size_t errsz)
{
	char mark[48], table[16], proto[8];
	int fam, i;

	snprintf(mark, sizeof(mark), "0x%x/0x%x",
	    c->intercept_mark & c->mark_mask, c->mark_mask);
	snprintf(table, sizeof(table), "%d", c->tproxy_table);
	snprintf(proto, sizeof(proto), "%d", RULES_RT_PROTO);
	for (fam = 4; fam <= 6; fam += 2) {
		char *f = fam == 4 ? "-4" : "-6";
		char *dst = fam == 4 ? "0.0.0.0/0" : "::/0";
		char *show[] = { "ip", f, "rule", "show", "fwmark", mark,
		    "table", table, NULL };
		char *rule[] = { "ip", f, "rule", "add", "fwmark", mark,
		    "lookup", table, "protocol", proto, NULL };
		char *route[] = { "ip", f, "route", "replace", "local", dst,
		    "dev", "lo", "table", table, "proto", proto, NULL };
		char *tagged_rule[] = { "ip", f, "rule", "del", "protocol",
		    proto, NULL };
		char *tagged_routes[] = { "ip", f, "route", "flush", "table",
		    "all", "proto", proto, NULL };
		char *legacy_rule[] = { "ip", f, "rule", "del", "fwmark", mark,
		    "lookup", table, NULL };
		char *legacy_route[] = { "ip", f, "route", "del", "local", dst,
		    "dev", "lo", "table", table, NULL };
		struct rbuf out = { 0 };
		int present;

		if (!add) {
			/* one rule per del; a bound, in case of a loop */
			for (i = 0; i < 64; i++)
				if (run(tagged_rule, NULL, NULL, NULL) != 0)
					break;
			(void)run(tagged_routes, NULL, NULL, NULL);
			/* untagged, as the configuration names them; absent
			 * ones fail harmlessly */
			if (rules_tproxy_needed(c)) {
				(void)run(legacy_rule, NULL, NULL, NULL);
				(void)run(legacy_route, NULL, NULL, NULL);
			}
			continue;
		}
		if (run_ok(show, NULL, &out, err, errsz) == -1)
			return -1;
		present = out.len > 0;
		rbuf_free(&out);
		if (!present && run_ok(rule, NULL, NULL, err, errsz) == -1)
			return -1;
		if (run_ok(route, NULL, NULL, err, errsz) == -1)
			return -1;
		/* then, never before (a diverted SYN between the two would
		 * find no local route and be dropped), what an install under
		 * other marks or another table left */
		if (drop_stale_tagged(f, mark, table, proto, err, errsz) == -1)
			return -1;
	}
	return 0;
}

static int
is_nft(const struct config *c)
{
	return strcmp(c->rules_backend, "nftables") == 0;
}

static int
nft_table_present(void)
{
	char *argv[] = { "nft", "list", "table", "inet", "mxguard", NULL };

	return run(argv, NULL, NULL, NULL) == 0;
}

int
rules_install(const struct config *c, char *err, size_t errsz)
{
	if (check_cidrs(c, err, errsz) == -1)
		return -1;
	if (is_nft(c)) {
		struct rbuf s = { 0 };
		char *argv[] = { "nft", "-f", "-", NULL };
		int rc;

		if (rules_nft_script(c, &s, err, errsz) == -1) {
			rbuf_free(&s);
			return -1;
		}
		rc = run_ok(argv, rbuf_str(&s), NULL, err, errsz);
		rbuf_free(&s);
		if (rc == -1) {
			if (is_nfq(c)) {
				size_t n = strlen(err);

				snprintf(err + n, errsz - n, " (nft queue needs "
				    "CONFIG_NFT_QUEUE; use rules_backend = "
				    "iptables, which queues through nft_compat)");
			}
			return -1;
		}
		/* one backend at a time: drop an iptables set left over */
		if (ipt_apply(c, 0, err, errsz) == -1)
			return -1;
	} else {
		if (ipt_apply(c, 1, err, errsz) == -1)
			return -1;
		if (nft_table_present()) {
			char *argv[] = { "nft", "delete", "table", "inet",
			    "mxguard", NULL };

			(void)run_ok(argv, NULL, NULL, err, errsz);
		}
	}
	/* without TPROXY now: what an install with it tagged goes (after
	 * the new rules are in) */
	return tproxy_routes(c, rules_tproxy_needed(c), err, errsz);
}

int
rules_refuse_install(const struct config *c, char *err, size_t errsz)
{
	if (ipt_apply(c, RULES_REFUSE, err, errsz) == -1)
		return -1;
	if (nft_table_present()) {
		char *argv[] = { "nft", "delete", "table", "inet", "mxguard",
		    NULL };

		if (run_ok(argv, NULL, NULL, err, errsz) == -1)
			return -1;
	}
	return 0;
}

int
rules_remove(const struct config *c, char *err, size_t errsz)
{
	int rc = 0;

	if (ipt_apply(c, 0, err, errsz) == -1)
		rc = -1;
	if (nft_table_present()) {
		char *argv[] = { "nft", "delete", "table", "inet", "mxguard",
		    NULL };

		if (run_ok(argv, NULL, NULL, err, errsz) == -1)
			rc = -1;
	}
	/* tagged: whatever the configuration says now (tproxy_routes) */
	if (tproxy_routes(c, 0, err, errsz) == -1)
		rc = -1;
	return rc;
}

int
rules_show(const struct config *c, FILE *o, char *err, size_t errsz)
{
	int family, found = 0;

	for (family = 4; family <= 6; family += 2) {
		struct rbuf saved = { 0 };
		const char *p, *nl, *table = NULL;
		size_t tlen = 0;
		int printed_table = 0;

		if (ipt_save(family, &saved, err, errsz) == -1) {
			rbuf_free(&saved);
			return -1;
		}
		fprintf(o, "# %s\n", family == 4 ? "iptables" : "ip6tables");
		for (p = rbuf_str(&saved); *p; p = nl + 1) {
			size_t n;

			if ((nl = strchr(p, '\n')) == NULL)
				nl = p + strlen(p) - 1;
			n = (size_t)(nl - p) + (*nl == '\n' ? 0 : 1);
			if (p[0] == '*') {
				table = p;
				tlen = n;
				printed_table = 0;
				continue;
			}
			if (strstr(p, CH_PREFIX) == NULL ||
			    strstr(p, CH_PREFIX) >= p + n)
				continue;
			if (!printed_table && table) {
				fprintf(o, "%.*s\n", (int)tlen, table);
				printed_table = 1;
			}
			fprintf(o, "%.*s\n", (int)n, p);
			found = 1;
			if (*nl != '\n')
				break;
		}
		rbuf_free(&saved);
	}
	if (nft_table_present()) {
		char *argv[] = { "nft", "list", "table", "inet", "mxguard",
		    NULL };
		struct rbuf out = { 0 };

		fprintf(o, "# nftables\n");
		if (run(argv, NULL, &out, NULL) == 0)
			fputs(rbuf_str(&out), o);
		rbuf_free(&out);
		found = 1;
	}
	if (rules_tproxy_needed(c)) {
		char table[16];
		int fam;

		snprintf(table, sizeof(table), "%d", c->tproxy_table);
		for (fam = 4; fam <= 6; fam += 2) {
			char *r[] = { "ip", fam == 4 ? "-4" : "-6", "rule", "show",
			    "table", table, NULL };
			char *t[] = { "ip", fam == 4 ? "-4" : "-6", "route",
			    "show", "table", table, NULL };
			struct rbuf out = { 0 };

			fprintf(o, "# ip -%d rule / route, table %s\n", fam, table);
			(void)run(r, NULL, &out, NULL);
			(void)run(t, NULL, &out, NULL);
			fputs(rbuf_str(&out), o);
			rbuf_free(&out);
		}
	}
	fprintf(o, "# mxguard rules %s\n", found ? "installed" : "not installed");
	return found;
}

/* Whether some MXGUARD_ chain in one family's iptables-save text has no
 * rule or no jump into it: damage whatever configuration installed it
 * (every set mxguard installs fills each of its chains and enters it). */
static int
ipt_broken(const char *saved)
{
	struct rbuf have[T_N], key = { 0 };
	const char *p;
	int t, broken = 0;

	(void)norm_tables(saved, have);
	for (t = 0; t < T_N; t++)
		for (p = rbuf_str(&have[t]); (p = strstr(p, "\n:" CH_PREFIX))
		    != NULL; p += 2) {
			int cn = (int)strcspn(p + 2, "\n");

			rbuf_free(&key);
			rbuf_printf(&key, "\n-A %.*s ", cn, p + 2);
			if (strstr(rbuf_str(&have[t]), key.s) == NULL)
				broken = 1;
			rbuf_free(&key);
			rbuf_printf(&key, " -j %.*s\n", cn, p + 2);
			if (strstr(rbuf_str(&have[t]), key.s) == NULL)
				broken = 1;
		}
	rbuf_free(&key);
	for (t = 0; t < T_N; t++)
		rbuf_free(&have[t]);
	return broken;
}

/* A chain of table inet mxguard without a rule (nft flush table/chain). */
static int
nft_broken(const char *listed)
{
	struct rbuf counts = { 0 };
	int broken;

	nft_chain_counts(listed, &counts);
	broken = strstr(rbuf_str(&counts), " 0\n") != NULL;
	rbuf_free(&counts);
	return broken;
}

int
rules_state(const struct config *c, struct rbuf *missing, int *broken,
    char *err, size_t errsz)
{
	struct rbuf saved[2] = { { 0 }, { 0 } }, listed = { 0 };
	struct rules_inplace ip;
	char *argv[] = { "nft", "list", "table", "inet", "mxguard", NULL };
	int family, st[2], nft, rc = -1;

	*broken = 0;
	for (family = 4; family <= 6; family += 2) {
		if (ipt_save(family, &saved[family / 6], err, errsz) == -1)
			goto out;
		/* the nftables backend wants no iptables rules at all: only
		 * the refusal set is looked for there */
		st[family / 6] = rules_ipt_state(c, family,
		    rbuf_str(&saved[family / 6]), is_nft(c) ? NULL : missing,
		    err, errsz);
		if (st[family / 6] == -1)
			goto out;
	}
	nft = run(argv, NULL, &listed, NULL) == 0;
	/* damage whatever configuration installed the set: a chain emptied,
	 * no longer entered, or taken whole (rules_inplace_text()) */
	rules_inplace_text(rbuf_str(&saved[0]), rbuf_str(&saved[1]),
	    nft ? rbuf_str(&listed) : NULL, &ip);
	*broken = ip.broken;
	if (st[0] == RULES_ST_REFUSAL || st[1] == RULES_ST_REFUSAL)
		rc = RULES_ST_REFUSAL;
	else if (is_nft(c)) {
		rc = rules_nft_state(c, nft ? rbuf_str(&listed) : NULL,
		    missing, err, errsz);
		/* an iptables set in place of the table */
		if (rc == RULES_ST_NONE && (st[0] != RULES_ST_NONE ||
		    st[1] != RULES_ST_NONE)) {
			rbuf_printf(missing, "%stable inet mxguard gone",
			    missing->len ? "; " : "");
			rc = RULES_ST_PARTIAL;
		}
	} else if (st[0] == RULES_ST_COMPLETE && st[1] == RULES_ST_COMPLETE)
		rc = RULES_ST_COMPLETE;
	else if (st[0] == RULES_ST_NONE && st[1] == RULES_ST_NONE && !nft)
		rc = RULES_ST_NONE;
	else {
		/* a family with nothing at all says nothing in missing yet */
		for (family = 4; family <= 6; family += 2)
			if (st[family / 6] == RULES_ST_NONE)
				rbuf_printf(missing, "%severy IPv%d rule gone",
				    missing->len ? "; " : "", family);
		rc = RULES_ST_PARTIAL;
	}
out:
	rbuf_free(&saved[0]);
	rbuf_free(&saved[1]);
	rbuf_free(&listed);
	return rc;
}

/*
 * Whether the chains in place make no set mxguard installs (a chain taken
 * whole: `iptables -t nat -F; iptables -t nat -X`, `nft delete chain`),
 * from which chains there are and whether the steering queues (q) or
 * uses TPROXY (tp).  Every set but the refusal set (a guard alone) and
 * steering = none with TPROXY (the steering alone) has a guard; queueing
 * without TPROXY diverts in nat, and so does a steering chain that
 * neither queues nor uses TPROXY (local mode's SYN drops, steering =
 * none); a nat chain that diverts by the verdict's connmark (divert_q)
 * has the steering chain that queues.  A queueing set without its nat chain is the worst of these:
 * the guard lets a flow the daemon diverted through (closed: its connmark
 * says diverted), and it goes to the MX direct.
 */
static int
chains_damaged(int steer, int q, int tp, int divert, int divert_q, int guard,
    int refusal)
{
	if (steer && !tp && !divert)
		return 1;
	if (divert_q && !steer)
		return 1;
	if ((q || divert) && !guard)
		return 1;
	return guard && !refusal && !steer && !divert;
}

/* One family's iptables-save text: mxguard's chains there, the refusal
 * set or a closed guard's last rule, a guard at all, chains missing. */
static void
ipt_inplace(const char *saved, int *any, int *closed, int *guard,
    int *damaged)
{
	static const char refuse[] = "\n-A " CH_GUARD
	    " -p tcp -j REJECT --reject-with tcp-reset\n";
	static const char rest[] = "\n-A " CH_GUARD " " REFUSE_REST "\n";
	struct rbuf have[T_N];
	const char *f, *m;
	int t;

	if (norm_tables(saved, have))
		*any = 1;
	f = rbuf_str(&have[T_FILTER]);
	m = rbuf_str(&have[T_MANGLE]);
	if (strstr(f, refuse) != NULL || strstr(f, rest) != NULL)
		*closed = 1;
	if (strstr(f, "\n-A " CH_GUARD " ") != NULL)
		*guard = 1;
	/* (have[] holds only lines naming our chains: a queue or TPROXY
	 * target there is the steering chain's) */
	if (chains_damaged(strstr(m, "\n:" CH_STEER "\n") != NULL,
	    strstr(m, " -j NFQUEUE ") != NULL, strstr(m, " -j TPROXY ") != NULL,
	    strstr(rbuf_str(&have[T_NAT]), "\n:" CH_DIVERT "\n") != NULL,
	    strstr(rbuf_str(&have[T_NAT]), " -m connmark ") != NULL,
	    strstr(f, "\n:" CH_GUARD "\n") != NULL, strstr(f, refuse) != NULL))
		*damaged = 1;
	for (t = 0; t < T_N; t++)
		rbuf_free(&have[t]);
}

/* nft's listing: the guard chain's rules, and whether one of them is
 * NFT_REFUSE_REST (listed "tcp flags ! rst reject with tcp reset"; a
 * local_users refusal carries a skuid match, and refuses only others);
 * chains missing (chains_damaged()). */
static void
nft_inplace(const char *listed, int *closed, int *guard, int *damaged)
{
	const char *p, *nl, *s;
	char name[64] = "";
	int in = 0, steer = 0, q = 0, tp = 0, divert = 0, dq = 0, gchain = 0;

	for (p = listed; *p; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p);
		for (s = p; *s == ' ' || *s == '\t'; s++)
			;
		if (!in && sscanf(s, "chain %63[^ {\n] {", name) == 1) {
			in = 1;
			steer |= strcmp(name, "steer") == 0;
			divert |= strcmp(name, "divert") == 0;
			gchain |= strcmp(name, "guard") == 0;
		} else if (in && s < nl && *s == '}')
			in = 0;
		else if (in && s < nl && strncmp(s, "type ", 5) != 0 &&
		    strncmp(s, "policy ", 7) != 0 &&
		    strcmp(name, "steer") == 0) {
			q |= memmem(s, (size_t)(nl - s), "queue ", 6) != NULL;
			tp |= memmem(s, (size_t)(nl - s), "tproxy ", 7) != NULL;
		} else if (in && s < nl && strcmp(name, "divert") == 0)
			/* a connmark match, not GW_OWN_DST's "ct mark set" */
			dq |= memmem(s, (size_t)(nl - s), "ct mark ", 8) !=
			    NULL && memmem(s, (size_t)(nl - s), "ct mark set",
			    11) == NULL;
		else if (in && s < nl && strncmp(s, "type ", 5) != 0 &&
		    strncmp(s, "policy ", 7) != 0 &&
		    strcmp(name, "guard") == 0) {
			*guard = 1;
			if (memmem(s, (size_t)(nl - s), "reject with tcp reset",
			    21) != NULL && memmem(s, (size_t)(nl - s),
			    "skuid", 5) == NULL)
				*closed = 1;
		}
		if (*nl != '\n')
			break;
	}
	/* (no refusal set in nft: a guard alone is damage, and so is a
	 * table without a chain) */
	if (chains_damaged(steer, q, tp, divert, dq, gchain, 0) ||
	    (!steer && !divert && !gchain))
		*damaged = 1;
}

void
rules_inplace_text(const char *saved4, const char *saved6,
    const char *listed, struct rules_inplace *ip)
{
	int closed = 0, guard = 0;

	memset(ip, 0, sizeof(*ip));
	if (saved4 != NULL) {
		ipt_inplace(saved4, &ip->any, &closed, &guard, &ip->broken);
		ip->broken |= ipt_broken(saved4);
	}
	if (saved6 != NULL) {
		ipt_inplace(saved6, &ip->any, &closed, &guard, &ip->broken);
		ip->broken |= ipt_broken(saved6);
	}
	if (listed != NULL) {
		ip->any = 1;
		nft_inplace(listed, &closed, &guard, &ip->broken);
		ip->broken |= nft_broken(listed);
	}
	/* no guard to tell by: kept rather than sent direct */
	ip->refuses = ip->any && (closed || !guard);
}

int
rules_inplace(struct rules_inplace *ip, char *err, size_t errsz)
{
	struct rbuf s4 = { 0 }, s6 = { 0 }, listed = { 0 };
	char *argv[] = { "nft", "list", "table", "inet", "mxguard", NULL };
	int rc = -1;

	if (ipt_save(4, &s4, err, errsz) == -1 ||
	    ipt_save(6, &s6, err, errsz) == -1)
		goto out;
	rules_inplace_text(rbuf_str(&s4), rbuf_str(&s6),
	    run(argv, NULL, &listed, NULL) == 0 ? rbuf_str(&listed) : NULL, ip);
	rc = 0;
out:
	rbuf_free(&s4);
	rbuf_free(&s6);
	rbuf_free(&listed);
	return rc;
}

int
rules_generate(const struct config *c, FILE *o, char *err, size_t errsz)
{
	struct rbuf s = { 0 };
	int family;

	if (is_nft(c)) {
		if (rules_nft_script(c, &s, err, errsz) == -1) {
			rbuf_free(&s);
			return -1;
		}
		fprintf(o, "# nft -f -\n%s", rbuf_str(&s));
		rbuf_free(&s);
	} else {
		for (family = 4; family <= 6; family += 2) {
			if (rules_ipt_script(c, family, 1, "", &s, err,
			    errsz) == -1) {
				rbuf_free(&s);
				return -1;
			}
			fprintf(o, "# %s-restore --noflush\n%s",
			    family == 4 ? "iptables" : "ip6tables", rbuf_str(&s));
			rbuf_free(&s);
		}
	}
	if (rules_tproxy_needed(c)) {
		unsigned in = c->intercept_mark & c->mark_mask;

		int fam;

		/* as tproxy_routes() installs them, tag included */
		fprintf(o, "# policy routing\n");
		for (fam = 4; fam <= 6; fam += 2)
			fprintf(o, "ip -%d rule add fwmark 0x%x/0x%x lookup %d "
			    "protocol %d\nip -%d route replace local %s dev lo "
			    "table %d proto %d\n", fam, in, c->mark_mask,
			    c->tproxy_table, RULES_RT_PROTO, fam, fam == 4 ?
			    "0.0.0.0/0" : "::/0", c->tproxy_table,
			    RULES_RT_PROTO);
	}
	return 0;
}
