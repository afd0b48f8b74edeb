/*
 * test_rules.c - unit tests for the rule set generators (nfq/rules.c):
 * the iptables-restore scripts against given iptables-save texts, the
 * created-table bookkeeping, the nftables ruleset, and the comparison of
 * what is in place with the configuration's set (partial losses).
 */
#include <sys/stat.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/cidr.h"
#include "core/config.h"
#include "nfq/rules.h"

#include "testconf.h"

static struct config *
cfg(const char *text)
{
	char err[256];
	struct config *c = testconf_load(text, err, sizeof(err));

	if (c == NULL)
		fail_msg("config: %s", err);
	return c;
}

static char *
script(const struct config *c, int family, int want, const char *saved)
{
	struct rbuf b = { 0 };
	char err[256];

	if (rules_ipt_script(c, family, want, saved, &b, err, sizeof(err)) != 0)
		fail_msg("script: %s", err);
	return b.s ? b.s : strdup("");
}

static int
has(const char *s, const char *needle)
{
	return strstr(s, needle) != NULL;
}

static void
test_local_closed(void **state)
{
	struct config *c = cfg("fail_mode = closed\n");
	char *s = script(c, 4, 1, "");

	/* first: a SYN that conntrack files under an old connection (not
	 * NEW: the nat table and the queue would never see it) and that is
	 * not from our own sockets is dropped; one of our own on an old
	 * diverted entry too (it would follow the binding into our own
	 * listener) */
	assert_true(has(s, "*mangle\n:MXGUARD_STEER - [0:0]\n"
	    "-A MXGUARD_STEER -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN "
	    "-m conntrack ! --ctstate NEW,DNAT -m mark ! --mark 0x4d58/0xffff "
	    "-j DROP\n"
	    "-A MXGUARD_STEER -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN "
	    "-m conntrack --ctstate DNAT -m mark --mark 0x4d58/0xffff -j DROP\n"
	    "-A MXGUARD_STEER -m mark --mark 0x4d58/0xffff -j CONNMARK"));
	/* own sockets and BYPASS verdicts first, then the queue */
	assert_true(has(s, "-A MXGUARD_STEER -m mark --mark 0x4d58/0xffff -j CONNMARK --save-mark"));
	assert_true(has(s, "-A MXGUARD_STEER -m connmark --mark 0x4d58/0xffff -j RETURN\n"));
	assert_true(has(s, "--ctstate NEW -j NFQUEUE --queue-num 2525 --queue-bypass\n"));
	assert_true(strstr(s, "--mark 0x4d58/0xffff -j RETURN") <
	    strstr(s, "NFQUEUE"));
	assert_true(has(s, "-I OUTPUT 1 ! -o lo -p tcp -m tcp --dport 25 -m comment --comment \"mxguard created-table\" -j MXGUARD_STEER\n"));
	assert_true(has(s, "*nat\n:MXGUARD_DIVERT - [0:0]\n-A MXGUARD_DIVERT -p tcp -m connmark --mark 0x4d49/0xffff -j REDIRECT --to-ports 10025\n"));
	/* the guard: our own packets leave; a packet no SYN began that
	 * conntrack files as NEW (picked up mid-stream), or cannot or may
	 * not track, is dropped; every packet of a flow neither diverted
	 * nor let through (a new one, or one established before the rules)
	 * is refused, whatever other bits its connmark has, RSTs aside */
	assert_true(has(s, "*filter\n:MXGUARD_GUARD - [0:0]\n"
	    "-A MXGUARD_GUARD -m mark --mark 0x4d58/0xffff -j RETURN\n"
	    "-A MXGUARD_GUARD -m conntrack --ctstate INVALID,UNTRACKED -j DROP\n"
	    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN "
	    "-m conntrack --ctstate NEW -j DROP\n"
	    "-A MXGUARD_GUARD -m conntrack --ctdir REPLY -j DROP\n"
	    "-A MXGUARD_GUARD -m connmark --mark 0x4d49/0xffff -j DROP\n"
	    "-A MXGUARD_GUARD -m connmark --mark 0x4d58/0xffff -j RETURN\n"
	    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags RST RST "
	    "-j REJECT --reject-with tcp-reset\n"));
	assert_false(has(s, "--mark 0x0/"));
	assert_false(has(s, "TPROXY"));
	free(s);
	config_free(c);
}

/* fail_mode = open: no refusal, but a packet picked up mid-stream is
 * dropped all the same (it was never decided, and would go direct) */
static void
test_fail_open_guard_drops_only(void **state)
{
	struct config *c = cfg("fail_mode = open\n");
	char *s = script(c, 6, 1, "");

	assert_true(has(s, "*filter"));
	assert_true(has(s, "--ctstate NEW -j DROP\n"));
	assert_false(has(s, "REJECT"));
	assert_true(has(s, "NFQUEUE"));
	free(s);
	config_free(c);
}

/*
 * A flow mxguard took (connmark INTERCEPT) whose port-25 packets reach
 * the guard was not diverted (a diverted one has left port 25 or the
 * forward path by then): its first packet passed while the nat chain was
 * flushed, and it would go to the MX direct for its whole life.  The
 * guard drops it in both fail modes and both backends (before: returned
 * with fail_mode = closed, not looked at with open).
 */
static void
test_guard_drops_undiverted_intercept(void **state)
{
	static const char *const confs[] = { "fail_mode = open\n",
	    "fail_mode = closed\n", "fail_mode = open\nrules_mode = gateway\n"
	    "listen_mode = tproxy\n", "fail_mode = closed\n"
	    "rules_mode = gateway\n" };
	size_t i;

	for (i = 0; i < sizeof(confs) / sizeof(confs[0]); i++) {
		struct config *c = cfg(confs[i]);
		char *s = script(c, 4, 1, "");
		struct rbuf b = { 0 };
		char err[256];
		const char *g = strstr(s, ":MXGUARD_GUARD");

		assert_non_null(g);
		assert_true(has(g, "-A MXGUARD_GUARD -m connmark --mark "
		    "0x4d49/0xffff -j DROP\n"));
		assert_false(has(g, "-m connmark --mark 0x4d49/0xffff "
		    "-j RETURN"));
		assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
		g = strstr(b.s, "chain guard {");
		assert_non_null(g);
		assert_true(has(g, "\t\tct mark & 0xffff == 0x4d49 drop\n"));
		assert_false(has(g, "ct mark & 0xffff == 0x4d49 return"));
		rbuf_free(&b);
		free(s);
		config_free(c);
	}
}

static void
test_gateway_tproxy(void **state)
{
	struct config *c = cfg("rules_mode = gateway\nlisten_mode = tproxy\n"
	    "fail_mode = closed\ndivert_port = 2525\nintercept_mark = 0x100\n"
	    "mark_mask = 0xff00\nupstream_mark = 0x200\n");
	char *s = script(c, 4, 1, "");

	assert_true(has(s, "-I PREROUTING 1 ! -i lo -p tcp -m tcp --dport 25"));
	/* forwarded flows never share a connection entry with ours: no
	 * mangle rule 0 of local mode */
	assert_false(has(s, "! --ctstate NEW,DNAT"));
	/* but a SYN on an entry an outside host opened (its reply
	 * direction), or on an old one, would keep that entry's decision:
	 * the guard drops it (ns 107) */
	assert_true(has(s, "-A MXGUARD_GUARD -p tcp -m tcp --tcp-flags "
	    "FIN,SYN,RST,ACK SYN -m conntrack ! --ctstate NEW -j DROP\n"));
	assert_true(has(s, "-m connmark --mark 0x100/0xff00 -p tcp -j TPROXY --on-port 2525 --tproxy-mark 0x100/0xff00\n"));
	assert_false(has(s, "*nat"));
	assert_true(has(s, "-I FORWARD 1 "));
	assert_int_equal(rules_tproxy_needed(c), 1);
	assert_int_equal(rules_route_table(c), 100);
	free(s);
	config_free(c);
}

/*
 * Gateway mode under REDIRECT, a family whose listen entries name a
 * specific address and no wildcard: REDIRECT sends a flow to the first
 * address of the interface it came in on, not to a listen address, and
 * on an inside interface (or a first address) of another address the
 * flow lands at that address's divert_port, where mxguard does not listen
 * and any local user may (above ip_unprivileged_port_start): the MTA's
 * mail to that user's process.  Such a family is diverted with DNAT to
 * the first listen address of its own, in both backends; a wildcard
 * holds every address, so REDIRECT stays; local mode REDIRECTs to the
 * loopback address, which config_listen_unheard() judges (ns 129).
 */
static void
test_gateway_redirect_listen_address(void **state)
{
	struct config *c = cfg("rules_mode = gateway\n"
	    "bypass_interfaces = wan0\n"
	    "listen = 10.25.2.253:10025 [::]:10025 10.25.9.1:10025\n");
	struct rbuf b = { 0 };
	char err[256], *s = script(c, 4, 1, "");

	assert_true(has(s, "-A MXGUARD_DIVERT -p tcp -m connmark --mark "
	    "0x4d49/0xffff -j DNAT --to-destination 10.25.2.253:10025\n"));
	assert_false(has(s, "REDIRECT"));
	free(s);
	s = script(c, 6, 1, "");
	assert_true(has(s, "-A MXGUARD_DIVERT -p tcp -m connmark --mark "
	    "0x4d49/0xffff -j REDIRECT --to-ports 10025\n"));
	assert_false(has(s, "DNAT --to"));
	free(s);
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "\t\ttcp dport 25 ct mark & 0xffff == 0x4d49 "
	    "meta nfproto ipv4 dnat ip to 10.25.2.253:10025\n"
	    "\t\ttcp dport 25 ct mark & 0xffff == 0x4d49 "
	    "meta nfproto ipv6 redirect to :10025\n\t}\n"));
	rbuf_free(&b);
	config_free(c);
	/* steering = none, an IPv6 address alone */
	c = cfg("rules_mode = gateway\nsteering = none\n"
	    "bypass_interfaces = wan0\n"
	    "listen = 0.0.0.0:10025 [2001:db8:25::1]:10025\n");
	s = script(c, 6, 1, "");
	assert_true(has(s, "-A MXGUARD_DIVERT -p tcp -j DNAT "
	    "--to-destination [2001:db8:25::1]:10025\n"));
	free(s);
	s = script(c, 4, 1, "");
	assert_true(has(s, "-A MXGUARD_DIVERT -p tcp -j REDIRECT "
	    "--to-ports 10025\n"));
	free(s);
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "\t\tmeta nfproto ipv4 meta l4proto tcp "
	    "redirect to :10025\n\t\tmeta nfproto ipv6 meta l4proto tcp "
	    "dnat ip6 to [2001:db8:25::1]:10025\n\t}\n"));
	rbuf_free(&b);
	config_free(c);
	/* a wildcard beside the address: REDIRECT, as before */
	c = cfg("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 10.25.2.253:10025 0.0.0.0:10025 [::]:10025\n");
	s = script(c, 4, 1, "");
	assert_true(has(s, "-j REDIRECT --to-ports 10025\n"));
	assert_false(has(s, "DNAT --to"));
	free(s);
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "\t\ttcp dport 25 ct mark & 0xffff == 0x4d49 "
	    "redirect to :10025\n\t}\n"));
	rbuf_free(&b);
	config_free(c);
	/* a loopback address is not taken while another is listed; alone
	 * it is (the kernel drops it as a martian: no one else's listener) */
	c = cfg("rules_mode = gateway\nbypass_interfaces = wan0\n"
	    "listen = 127.0.0.1:10025 [::1]:10025 10.25.2.253:10025\n");
	s = script(c, 4, 1, "");
	assert_true(has(s, "-j DNAT --to-destination 10.25.2.253:10025\n"));
	free(s);
	s = script(c, 6, 1, "");
	assert_true(has(s, "-j DNAT --to-destination [::1]:10025\n"));
	free(s);
	config_free(c);
	/* local mode: REDIRECT (to 127.0.0.1 and [::1]) */
	c = cfg("listen = 127.0.0.1:10025 [::1]:10025\n");
	s = script(c, 4, 1, "");
	assert_true(has(s, "-j REDIRECT --to-ports 10025\n"));
	free(s);
	config_free(c);
}

/* bypass_interfaces: a flow that comes in on the outside is inbound mail
 * (to a host behind the gateway), never ours: first out of every chain,
 * the guard's too, or a stopped daemon would refuse inbound mail. */
static void
test_gateway_interfaces(void **state)
{
	struct config *c = cfg("rules_mode = gateway\nfail_mode = closed\n"
	    "bypass_interfaces = wan0 ppp+\n");
	struct rbuf b = { 0 };
	char err[256], *s = script(c, 4, 1, "");

	/* one jump per table, as without the key */
	assert_true(has(s, "-I PREROUTING 1 ! -i lo -p tcp -m tcp --dport 25 "
	    "-m comment --comment \"mxguard created-table\" -j MXGUARD_STEER\n"));
	assert_true(has(s, ":MXGUARD_STEER - [0:0]\n"
	    "-A MXGUARD_STEER -i wan0 -j RETURN\n"
	    "-A MXGUARD_STEER -i ppp+ -j RETURN\n"
	    "-A MXGUARD_STEER -m addrtype --dst-type LOCAL -j CONNMARK "
	    "--set-xmark 0x4d58/0xffff\n"
	    "-A MXGUARD_STEER -m addrtype --dst-type LOCAL -j RETURN\n"
	    "-A MXGUARD_STEER -m mark --mark 0x4d58/0xffff -j CONNMARK"));
	assert_true(has(s, ":MXGUARD_DIVERT - [0:0]\n"
	    "-A MXGUARD_DIVERT -i wan0 -j RETURN\n"
	    "-A MXGUARD_DIVERT -i ppp+ -j RETURN\n"
	    "-A MXGUARD_DIVERT -m addrtype --dst-type LOCAL -j CONNMARK "
	    "--set-xmark 0x4d58/0xffff\n"
	    "-A MXGUARD_DIVERT -m addrtype --dst-type LOCAL -j RETURN\n"));
	/* the guard (FORWARD) sees our own destinations only DNAT'd
	 * onwards, marked BYPASS (test_gateway_own_dst_let_through) */
	assert_true(has(s, ":MXGUARD_GUARD - [0:0]\n"
	    "-A MXGUARD_GUARD -i wan0 -j RETURN\n"
	    "-A MXGUARD_GUARD -i ppp+ -j RETURN\n"
	    "-A MXGUARD_GUARD -m mark"));
	free(s);
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "type filter hook prerouting priority mangle; "
	    "policy accept;\n\t\ttcp dport != 25 return\n\t\tiifname \"lo\" "
	    "return\n\t\tiifname \"wan0\" return\n\t\tiifname \"ppp*\" "
	    "return\n\t\tfib daddr type local ct mark set ct mark & "
	    "0xffff0000 | 0x4d58 return\n"));
	assert_false(has(b.s, "forward priority filter; policy accept;\n"
	    "\t\tmeta l4proto != tcp return\n\t\ttcp dport != 25 return\n"
	    "\t\tiifname \"lo\" return\n\t\tiifname \"wan0\" return\n"
	    "\t\tiifname \"ppp*\" return\n\t\tfib"));
	assert_true(has(b.s, "type filter hook forward priority filter; "
	    "policy accept;\n\t\tmeta l4proto != tcp return\n"
	    "\t\ttcp dport != 25 return\n\t\tiifname \"lo\" "
	    "return\n\t\tiifname \"wan0\" return\n\t\tiifname \"ppp*\" "
	    "return\n"));
	rbuf_free(&b);
	config_free(c);
	/* steering = none: the diverting chain returns for them too */
	c = cfg("rules_mode = gateway\nsteering = none\n"
	    "bypass_interfaces = wan0\n"
	    "listen = 0.0.0.0:10025 [::]:10025\n");
	s = script(c, 6, 1, "");
	assert_true(has(s, ":MXGUARD_DIVERT - [0:0]\n"
	    "-A MXGUARD_DIVERT -i wan0 -j RETURN\n"
	    "-A MXGUARD_DIVERT -m addrtype --dst-type LOCAL -j CONNMARK "
	    "--set-xmark 0x4d58/0xffff\n"
	    "-A MXGUARD_DIVERT -m addrtype --dst-type LOCAL -j RETURN\n"));
	assert_true(strstr(s, "-i wan0 -j RETURN") < strstr(s, "REDIRECT"));
	/* and its guard drops a SYN that is not NEW (ns 107) */
	assert_true(has(s, "-A MXGUARD_GUARD -m conntrack --ctstate "
	    "INVALID,UNTRACKED -j DROP\n"
	    "-A MXGUARD_GUARD -m conntrack --ctdir REPLY -j DROP\n"
	    "-A MXGUARD_GUARD -p tcp -m tcp "
	    "--tcp-flags FIN,SYN,RST,ACK SYN -m conntrack ! --ctstate NEW "
	    "-j DROP\n"));
	free(s);
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "\t\tct state invalid,untracked drop\n"
	    "\t\tct direction reply drop\n\t\ttcp "
	    "flags & (fin|syn|rst|ack) == syn ct state != new drop\n"));
	assert_true(has(b.s, "priority -100; policy accept;\n\t\ttcp dport "
	    "!= 25 return\n\t\tiifname \"lo\" return\n\t\tiifname "
	    "\"wan0\" return\n\t\tfib daddr type local ct mark set ct "
	    "mark & 0xffff0000 | 0x4d58 return\n"));
	rbuf_free(&b);
	config_free(c);
	/* local mode: mangle's rule 0 does it, the guard has no such rule;
	 * and its jumps skip lo already: no own-destination rule */
	c = cfg("fail_mode = open\n");
	s = script(c, 4, 1, "");
	assert_false(has(s, "addrtype"));
	assert_false(has(s, "-A MXGUARD_GUARD -p tcp -m tcp --tcp-flags "
	    "FIN,SYN,RST,ACK SYN -m conntrack ! --ctstate NEW -j DROP\n"));
	free(s);
	config_free(c);
}

/*
 * A SYN that conntrack files under an entry a verdict had diverted (a
 * retransmission whose SYN-ACK was lost, the MTA's next SYN from a port
 * whose session mxguard's side reset: the entry lingers, and a SYN after
 * a reset from the reply side is no reopen) keeps the entry's REDIRECT
 * binding and connmark INTERCEPT: the steering chain let it go, nat took
 * it to divert_port, and with the daemon down that port is anyone's (a
 * local user's listener read the MTA's session: ns 131).  Such a SYN is
 * queued again, without --queue-bypass, after the verdict marks are saved
 * (a SYN just decided INTERCEPT carries the mark and returns) and before
 * the INTERCEPT return: a daemon decides it, none drops it.  REDIRECT and
 * DNAT sets, gateway and local mode, iptables and nft; TPROXY needs a
 * transparent socket, steering = none has no queue.
 */
static void
test_diverted_syn_requeued(void **state)
{
	static const char *const modes[] = {
		"rules_mode = gateway\nlisten_mode = redirect\n",
		"rules_mode = gateway\nlisten_mode = redirect\n"
		    "listen = 10.0.0.1:10025 [::1]:10025\n",
		"rules_mode = local\n",
		"rules_mode = local\nlocal_users = 100\n",
	};
	static const char ipt[] = "-A MXGUARD_STEER -p tcp -m tcp "
	    "--tcp-flags FIN,SYN,RST,ACK SYN -m connmark --mark "
	    "0x4d49/0xffff -m mark ! --mark 0x4d49/0xffff -j NFQUEUE "
	    "--queue-num 2525\n";
	static const char nft[] = "\t\ttcp flags & (fin|syn|rst|ack) == syn "
	    "ct mark & 0xffff == 0x4d49 meta mark & 0xffff != 0x4d49 "
	    "queue num 2525\n";
	struct rbuf b = { 0 };
	struct rules_inplace ip;
	char err[256], conf[512], *s;
	const char *rq, *save, *ret;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct config *c;

		snprintf(conf, sizeof(conf), "fail_mode = closed\n%s",
		    modes[i]);
		c = cfg(conf);
		s = script(c, 4, 1, "");
		rq = strstr(s, ipt);
		save = strstr(s, "-A MXGUARD_STEER -m mark --mark "
		    "0x4d49/0xffff -j CONNMARK --save-mark");
		ret = strstr(s, "-A MXGUARD_STEER -m connmark --mark "
		    "0x4d49/0xffff -j RETURN\n");
		if (rq == NULL || save == NULL || ret == NULL || rq < save ||
		    rq > ret)
			fail_msg("%sa SYN on a diverted entry is not queued "
			    "again before the INTERCEPT return:\n%s", modes[i],
			    s);
		free(s);
		s = script(c, 6, 1, "");
		assert_true(has(s, ipt));
		free(s);
		assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
		rq = strstr(b.s, nft);
		save = strstr(b.s, "\t\tmeta mark & 0xffff == 0x4d49 ct mark "
		    "set");
		ret = strstr(b.s, "\t\tct mark & 0xffff == 0x4d49 return\n");
		if (rq == NULL || save == NULL || ret == NULL || rq < save ||
		    rq > ret)
			fail_msg("%snft: a SYN on a diverted entry is not "
			    "queued again before the INTERCEPT return:\n%s",
			    modes[i], b.s);
		/* the set as installed: whole, and its state complete */
		rules_inplace_text(NULL, NULL, b.s, &ip);
		assert_int_equal(ip.broken, 0);
		assert_int_equal(rules_nft_state(c, b.s, NULL, err,
		    sizeof(err)), RULES_ST_COMPLETE);
		rbuf_free(&b);
		config_free(c);
	}
	/* TPROXY (a transparent socket only) and steering = none: not */
	for (i = 0; i < 2; i++) {
		struct config *c = cfg(i ? "rules_mode = gateway\n"
		    "listen_mode = tproxy\n" : "steering = none\n");

		s = script(c, 4, 1, "");
		assert_false(has(s, "-m connmark --mark 0x4d49/0xffff -m mark "
		    "! --mark"));
		free(s);
		assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
		assert_false(has(b.s, "meta mark & 0xffff != 0x4d49 queue"));
		rbuf_free(&b);
		config_free(c);
	}
}

/*
 * Gateway mode, a port-25 flow from the inside to one of the gateway's
 * own addresses that a rule of the host's DNATs to a host behind it or
 * beyond (a port forward of the public MX address to the inside mail
 * server, reached from the inside: "hairpin" NAT).  The steering and
 * diverting chains see its original destination (mangle and nat come
 * before the host's DNAT) and leave it alone, but after the DNAT it is
 * forwarded, and the guard in FORWARD saw a flow with no connmark: with
 * fail_mode = closed it refused it, every time, the daemon up or down
 * (the inside MTA's mail to its own domain stayed queued until it
 * bounced).  The chain that leaves such a flow alone now marks its
 * connection BYPASS, and the closed guard lets BYPASS through, in every
 * gateway set that has a guard, iptables and nft (ns 120).
 */
static void
test_gateway_own_dst_let_through(void **state)
{
	static const char *const modes[] = {
		"steering = nfqueue\nlisten_mode = redirect\n",
		"steering = nfqueue\nlisten_mode = tproxy\n",
		"steering = none\nlisten_mode = redirect\n",
	};
	struct rbuf b = { 0 };
	struct rules_inplace ip;
	char err[256], conf[512], *s;
	const char *set, *ret, *keep, *refuse;
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct config *c;

		snprintf(conf, sizeof(conf), "rules_mode = gateway\n"
		    "fail_mode = closed\nbypass_interfaces = wan0\n"
		    "listen = 0.0.0.0:10025 [::]:10025\n%s", modes[i]);
		c = cfg(conf);
		s = script(c, 4, 1, "");
		/* the first chain that sees it: marks it, then returns */
		set = strstr(s, "-m addrtype --dst-type LOCAL -j CONNMARK "
		    "--set-xmark 0x4d58/0xffff\n");
		ret = strstr(s, "-m addrtype --dst-type LOCAL -j RETURN\n");
		if (set == NULL || ret == NULL || set > ret)
			fail_msg("%s: a local destination is not marked "
			    "BYPASS before its return:\n%s", modes[i], s);
		/* the closed guard returns BYPASS before its refusal */
		keep = strstr(s, "-A MXGUARD_GUARD -m connmark --mark "
		    "0x4d58/0xffff -j RETURN\n");
		refuse = strstr(s, "-A MXGUARD_GUARD " "-p tcp -m tcp ! "
		    "--tcp-flags RST RST -j REJECT");
		if (keep == NULL || refuse == NULL || keep > refuse)
			fail_msg("%s: the closed guard refuses a flow marked "
			    "BYPASS:\n%s", modes[i], s);
		free(s);
		/* nftables: steering = none only (ns 105) */
		if (strstr(modes[i], "none") != NULL) {
			assert_int_equal(rules_nft_script(c, &b, err,
			    sizeof(err)), 0);
			assert_true(has(b.s, "\t\tfib daddr type local ct mark "
			    "set ct mark & 0xffff0000 | 0x4d58 return\n"));
			assert_false(has(b.s, "fib daddr type local return"));
			keep = strstr(b.s, "\t\tct mark & 0xffff == 0x4d58 "
			    "return\n");
			refuse = strstr(b.s, "\t\ttcp flags & rst == 0 reject");
			assert_non_null(keep);
			assert_non_null(refuse);
			assert_true(keep < refuse);
			/* the mark set in divert is no connmark match: the
			 * set as installed is whole, not a verdict's divert
			 * without its steering chain */
			rules_inplace_text(NULL, NULL, b.s, &ip);
			assert_int_equal(ip.broken, 0);
			assert_int_equal(ip.refuses, 1);
			rbuf_free(&b);
		} else {
			assert_int_equal(rules_nft_script(c, &b, err,
			    sizeof(err)), 0);
			assert_true(has(b.s, "\t\tfib daddr type local ct mark "
			    "set ct mark & 0xffff0000 | 0x4d58 return\n"));
			rbuf_free(&b);
		}
		config_free(c);
	}
}

static void
test_steering_none(void **state)
{
	struct config *c = cfg("steering = none\nfail_mode = open\n"
	    "bypass_dst = 192.0.2.0/24 2001:db8::/32\nbypass_src = 10.1.2.3\n");
	char *s4 = script(c, 4, 1, ""), *s6 = script(c, 6, 1, "");

	assert_false(has(s4, "NFQUEUE"));
	/* local: the mangle chain holds only the stale-SYN drops */
	assert_true(has(s4, "*mangle\n:MXGUARD_STEER - [0:0]\n"
	    "-A MXGUARD_STEER -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN "
	    "-m conntrack ! --ctstate NEW,DNAT -m mark ! --mark 0x4d58/0xffff "
	    "-j DROP\n"
	    "-A MXGUARD_STEER -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN "
	    "-m conntrack --ctstate DNAT -m mark --mark 0x4d58/0xffff -j DROP\n"
	    "-I OUTPUT 1 "));
	assert_true(has(s4, "-A MXGUARD_DIVERT -m mark --mark 0x4d58/0xffff -j RETURN\n"
	    "-A MXGUARD_DIVERT -s 10.1.2.3/32 -j RETURN\n"
	    "-A MXGUARD_DIVERT -d 192.0.2.0/24 -j RETURN\n"
	    "-A MXGUARD_DIVERT -p tcp -j REDIRECT --to-ports 10025\n"));
	assert_true(has(s6, "-d 2001:db8::/32 -j RETURN"));
	assert_false(has(s6, "192.0.2.0"));
	/* the guard: what nat never sees (untracked, invalid) is dropped */
	assert_true(has(s4, "*filter\n:MXGUARD_GUARD - [0:0]\n"
	    "-A MXGUARD_GUARD -m mark --mark 0x4d58/0xffff -j RETURN\n"
	    "-A MXGUARD_GUARD -m conntrack --ctstate INVALID,UNTRACKED -j DROP\n"
	    "-A MXGUARD_GUARD -m conntrack --ctdir REPLY -j DROP\n"
	    "-I OUTPUT 1 ! -o lo -p tcp -m tcp --dport 25 "));
	assert_false(has(s4, "MXGUARD_GUARD -j REJECT"));
	free(s4);
	free(s6);
	config_free(c);
}

static const char *installed =
    "# Generated by iptables-save v1.8.9 (nf_tables)\n"
    "*mangle\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":MXGUARD_STEER - [0:0]\n"
    "-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment --comment \"mxguard created-table\" -j MXGUARD_STEER\n"
    "-A MXGUARD_STEER -j RETURN\n"
    "COMMIT\n"
    "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":MXGUARD_GUARD - [0:0]\n:MXGUARD_OLD - [0:0]\n"
    "-A OUTPUT -p udp -m udp --dport 53 -j ACCEPT\n"
    "-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment --comment mxguard -j MXGUARD_GUARD\n"
    "COMMIT\n";

static void
test_reinstall_and_remove(void **state)
{
	/* TPROXY with steering = none: no guard */
	struct config *c = cfg("rules_mode = gateway\nlisten_mode = tproxy\n"
	    "steering = none\n");
	char *s = script(c, 4, 1, installed), *r;

	/* mangle: chain re-declared (flushed), old jump out, new jump in with
	 * the created-table note kept */
	assert_true(has(s, "*mangle\n:MXGUARD_STEER - [0:0]\n"
	    "-D OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment --comment \"mxguard created-table\" -j MXGUARD_STEER\n"));
	assert_true(has(s, "--comment \"mxguard created-table\" -j MXGUARD_STEER\nCOMMIT"));
	/* filter: TPROXY, steering = none wants no guard: jump, chain and a stray
	 * chain go;
	 * the table existed before us, so no created-table note */
	assert_true(has(s, "*filter\n-D OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment --comment mxguard -j MXGUARD_GUARD\n"
	    "-F MXGUARD_GUARD\n-X MXGUARD_GUARD\n-F MXGUARD_OLD\n-X MXGUARD_OLD\nCOMMIT\n"));
	assert_false(has(s, "udp"));
	free(s);

	r = script(c, 4, 0, installed);
	assert_false(has(r, "-A "));
	assert_false(has(r, "-I "));
	assert_false(has(r, ":MXGUARD"));
	assert_true(has(r, "-X MXGUARD_STEER"));
	assert_true(has(r, "-X MXGUARD_GUARD"));
	assert_false(has(r, "*nat"));
	free(r);
	/* nothing installed, nothing to remove: an empty script */
	r = script(c, 4, 0, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n");
	assert_string_equal(r, "");
	free(r);
	config_free(c);
}

/* The refusal set (rules boot when the configured set is out of reach):
 * every outbound and forwarded port-25 packet refused, and the next
 * install takes both of its jumps out */
static void
test_refusal_set(void **state)
{
	struct config *c = cfg("bypass_dst = 192.0.2.0/24\n");
	char *s = script(c, 6, RULES_REFUSE, ""), *r;
	char *saved;

	assert_string_equal(s, "*filter\n:MXGUARD_GUARD - [0:0]\n"
	    "-A MXGUARD_GUARD -p tcp -j REJECT --reject-with tcp-reset\n"
	    "-I OUTPUT 1 ! -o lo -p tcp -m tcp --dport 25 -m comment "
	    "--comment \"mxguard created-table\" -j MXGUARD_GUARD\n"
	    "-I FORWARD 1 ! -i lo -p tcp -m tcp --dport 25 -m comment "
	    "--comment \"mxguard created-table\" -j MXGUARD_GUARD\nCOMMIT\n");
	free(s);
	/* as iptables-save shows it once in */
	saved = strdup("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
	    ":OUTPUT ACCEPT [0:0]\n:MXGUARD_GUARD - [0:0]\n"
	    "-A FORWARD ! -i lo -p tcp -m tcp --dport 25 -m comment "
	    "--comment \"mxguard created-table\" -j MXGUARD_GUARD\n"
	    "-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment "
	    "--comment \"mxguard created-table\" -j MXGUARD_GUARD\n"
	    "-A MXGUARD_GUARD -p tcp -j REJECT --reject-with tcp-reset\n"
	    "COMMIT\n");
	r = script(c, 4, 1, saved);
	assert_true(has(r, "-D FORWARD ! -i lo -p tcp -m tcp --dport 25"));
	assert_true(has(r, "-D OUTPUT ! -o lo -p tcp -m tcp --dport 25"));
	assert_true(has(r, "-I OUTPUT 1 ! -o lo"));
	assert_false(has(r, "-I FORWARD"));
	assert_false(has(r, "-A MXGUARD_GUARD -p tcp -j REJECT"));
	free(r);
	r = script(c, 4, 0, saved);
	assert_true(has(r, "-D FORWARD "));
	assert_true(has(r, "-X MXGUARD_GUARD"));
	free(r);
	free(saved);
	config_free(c);
}

static void
test_created_empty(void **state)
{
	struct rbuf b = { 0 };
	const char *after =
	    "*mangle\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	    "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
	    "-A OUTPUT -p udp -m udp --dport 53 -j ACCEPT\nCOMMIT\n";

	rules_ipt_created_empty(installed, after, &b);
	assert_string_equal(b.s, "mangle");
	rbuf_free(&b);
	/* a policy changed meanwhile keeps the table */
	rules_ipt_created_empty(installed,
	    "*mangle\n:PREROUTING DROP [0:0]\nCOMMIT\n", &b);
	assert_true(b.s == NULL || *b.s == '\0');
	rbuf_free(&b);
}

/*
 * local_users: only the listed users' flows are queued (or, steering =
 * none, redirected); every other user's port-25 packet is refused by the
 * guard right after our own sockets' return, in either fail mode, as
 * ranges of uids between the listed ones (names resolved, sorted, once
 * each).  Gateway mode has no local user: refused at load.
 */
static void
test_local_users(void **state)
{
	struct config *c = cfg("fail_mode = open\nlocal_users = 0, 1000, 0, 42\n");
	struct rbuf b = { 0 };
	char err[256], *s = script(c, 4, 1, "");
	const char *q;
	int n = 0;

	for (q = s; (q = strstr(q, "-j NFQUEUE")) != NULL; q++)
		n++;
	/* the three users' and a SYN on a diverted entry's, for all
	 * (test_diverted_syn_requeued: another user's is dropped before) */
	assert_int_equal(n, 4);
	assert_true(has(s, "--ctstate NEW -m owner --uid-owner 0 -j NFQUEUE "
	    "--queue-num 2525 --queue-bypass\n"));
	assert_true(has(s, "--ctstate NEW -m owner --uid-owner 42 -j NFQUEUE"));
	assert_true(has(s, "--ctstate NEW -m owner --uid-owner 1000 -j NFQUEUE"));
	assert_false(has(s, "--ctstate NEW -j NFQUEUE"));
	assert_true(has(s, "-A MXGUARD_GUARD -m mark --mark 0x4d58/0xffff -j RETURN\n"
	    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags RST RST -m owner "
	    "--uid-owner 1-41 -j REJECT --reject-with tcp-reset\n"
	    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags RST RST -m owner "
	    "--uid-owner 43-999 -j REJECT --reject-with tcp-reset\n"
	    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags RST RST -m owner "
	    "--uid-owner 1001-4294967294 -j REJECT --reject-with tcp-reset\n"
	    "-A MXGUARD_GUARD -m conntrack --ctstate INVALID,UNTRACKED -j DROP\n"));
	/* another user's packet on a listed user's DNAT'd entry never gets
	 * to nat (rule 0 lets its SYN through to the old binding) */
	assert_true(has(s, "-A MXGUARD_STEER -p tcp -m tcp --tcp-flags "
	    "FIN,SYN,RST,ACK SYN -m conntrack --ctstate DNAT -m mark --mark "
	    "0x4d58/0xffff -j DROP\n"
	    "-A MXGUARD_STEER -m conntrack --ctstate DNAT -m mark ! --mark "
	    "0x4d58/0xffff -m owner --uid-owner 1-41 -j DROP\n"
	    "-A MXGUARD_STEER -m conntrack --ctstate DNAT -m mark ! --mark "
	    "0x4d58/0xffff -m owner --uid-owner 43-999 -j DROP\n"
	    "-A MXGUARD_STEER -m conntrack --ctstate DNAT -m mark ! --mark "
	    "0x4d58/0xffff -m owner --uid-owner 1001-4294967294 -j DROP\n"));
	free(s);
	/* removal takes the chains whole */
	s = script(c, 4, 0, "");
	assert_false(has(s, "owner"));
	free(s);
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "ct state new meta skuid { 0, 42, 1000 } queue "
	    "num 2525 bypass\n"));
	assert_true(has(b.s, "\t\tmeta mark & 0xffff == 0x4d58 return\n"
	    "\t\tmeta skuid != { 0, 42, 1000 } tcp flags & rst == 0 reject "
	    "with tcp reset\n\t\tct state invalid,untracked drop\n"));
	assert_true(has(b.s, "ct status & dnat != 0 meta mark & 0xffff == "
	    "0x4d58 drop\n\t\tct status & dnat != 0 meta mark & 0xffff != "
	    "0x4d58 meta skuid != { 0, 42, 1000 } drop\n"));
	rbuf_free(&b);
	config_free(c);

	/* steering = none: one REDIRECT a user; a single uid 5 leaves 0-4
	 * and 6- to refuse */
	c = cfg("steering = none\nfail_mode = closed\nlocal_users = 5\n");
	s = script(c, 6, 1, "");
	assert_true(has(s, "-A MXGUARD_DIVERT -p tcp -m owner --uid-owner 5 "
	    "-j REDIRECT --to-ports 10025\n"));
	assert_false(has(s, "-A MXGUARD_DIVERT -p tcp -j REDIRECT"));
	assert_true(has(s, "--uid-owner 0-4 -j REJECT"));
	assert_true(has(s, "--uid-owner 6-4294967294 -j REJECT"));
	assert_true(has(s, "-A MXGUARD_STEER -m conntrack --ctstate DNAT "
	    "-m mark ! --mark 0x4d58/0xffff -m owner --uid-owner 0-4 -j DROP\n"
	    "-A MXGUARD_STEER -m conntrack --ctstate DNAT -m mark ! --mark "
	    "0x4d58/0xffff -m owner --uid-owner 6-4294967294 -j DROP\n"));
	free(s);
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "meta skuid { 5 } meta l4proto tcp redirect to :10025\n"));
	assert_true(has(b.s, "meta skuid != { 5 } tcp flags & rst == 0 reject"));
	assert_true(has(b.s, "meta mark & 0xffff != 0x4d58 meta skuid != "
	    "{ 5 } drop\n\t}\n\tchain divert {"));
	rbuf_free(&b);
	config_free(c);

	/* a name, through the password database; root is uid 0 */
	c = cfg("local_users = root\n");
	s = script(c, 4, 1, "");
	assert_true(has(s, "--uid-owner 0 -j NFQUEUE"));
	assert_true(has(s, "--uid-owner 1-4294967294 -j REJECT"));
	free(s);
	config_free(c);

	assert_null(testconf_load("local_users = no-such-user-mxg\n", err,
	    sizeof(err)));
	assert_true(has(err, "no user \"no-such-user-mxg\""));
	assert_null(testconf_load("local_users = 4294967295\n", err,
	    sizeof(err)));
	assert_true(has(err, "is not a uid"));
	assert_null(testconf_load("rules_mode = gateway\nlocal_users = 0\n",
	    err, sizeof(err)));
	assert_true(has(err, "local_users: only with rules_mode = local"));
}

static void
test_nft(void **state)
{
	struct config *c = cfg("fail_mode = closed\n");
	struct rbuf b = { 0 };
	char err[256];

	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "table inet mxguard\ndelete table inet mxguard\n"));
	assert_true(has(b.s, "type route hook output priority mangle;"));
	assert_true(has(b.s, "queue num 2525 bypass"));
	assert_true(has(b.s, "ct mark & 0xffff == 0x4d49 redirect to :10025"));
	assert_true(has(b.s, "\t\tmeta mark & 0xffff == 0x4d58 return\n"
	    "\t\tct state invalid,untracked drop\n"
	    "\t\ttcp flags & (fin|syn|rst|ack) != syn ct state new drop\n"
	    "\t\tct direction reply drop\n"
	    "\t\tct mark & 0xffff == 0x4d49 drop\n"
	    "\t\tct mark & 0xffff == 0x4d58 return\n"
	    "\t\ttcp flags & rst == 0 reject with tcp reset\n"));
	assert_false(has(b.s, "ct mark & 0xffff == 0 "));
	/* every packet enters an nft chain: the guard returns for anything
	 * but TCP before its drops (ns 108) */
	assert_true(has(b.s, "\tchain guard {\n\t\ttype filter hook output "
	    "priority filter; policy accept;\n\t\tmeta l4proto != tcp "
	    "return\n\t\ttcp dport != 25 return\n"));
	assert_true(has(b.s, "tcp flags & (fin|syn|rst|ack) == syn ct state "
	    "!= new ct status & dnat == 0 meta mark & 0xffff != 0x4d58 "
	    "drop\n\t\ttcp flags & (fin|syn|rst|ack) == syn ct status & "
	    "dnat != 0 meta mark & 0xffff == 0x4d58 drop\n"));
	rbuf_free(&b);
	config_free(c);
	c = cfg("steering = none\nfail_mode = open\n"
	    "bypass_dst = 2001:db8::/32\n");
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_false(has(b.s, "queue"));
	assert_true(has(b.s, "ip6 daddr 2001:db8::/32 return"));
	assert_true(has(b.s, "ct state != new ct status & dnat == 0 "
	    "meta mark & 0xffff != 0x4d58 drop\n\t\ttcp flags & "
	    "(fin|syn|rst|ack) == syn ct status & dnat != 0 meta mark & "
	    "0xffff == 0x4d58 drop\n\t}\n\tchain divert {"));
	/* what nat never sees (untracked, invalid) is dropped */
	assert_true(has(b.s, "redirect to :10025\n\t}\n\tchain guard {\n"
	    "\t\ttype filter hook output priority filter; policy accept;\n"
	    "\t\tmeta l4proto != tcp return\n"
	    "\t\ttcp dport != 25 return\n\t\toifname \"lo\" return\n"
	    "\t\tmeta mark & 0xffff == 0x4d58 return\n"
	    "\t\tct state invalid,untracked drop\n"
	    "\t\tct direction reply drop\n\t}\n}\n"));
	rbuf_free(&b);
	config_free(c);
	/* TPROXY takes every packet: no guard */
	c = cfg("rules_mode = gateway\nlisten_mode = tproxy\nsteering = none\n");
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_false(has(b.s, "chain guard"));
	rbuf_free(&b);
	config_free(c);
}

/*
 * nftables TPROXY: the tproxy statement that finds no transparent
 * listener (the daemon stopped, the rules left in with fail_mode =
 * closed, or `rules boot` before it starts) does not drop the packet, as
 * iptables' TPROXY target does: the rule does not match (NFT_BREAK) and
 * the chain goes on.  With steering = none there is no guard after it,
 * and the MTA's flow went to the MX direct; with NFQUEUE steering a
 * packet of a flow decided INTERCEPT went on to the guard, which returns
 * that connmark.  Each tproxy is followed by a drop of the TCP packets
 * it did not take (ns 126).
 */
static void
test_nft_tproxy_unheard_dropped(void **state)
{
	struct config *c;
	struct rbuf b = { 0 };
	char err[256];

	c = cfg("rules_mode = gateway\nlisten_mode = tproxy\n"
	    "steering = none\nrules_backend = nftables\n");
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "meta nfproto ipv6 meta l4proto tcp tproxy ip6 "
	    "to :10025 meta mark set meta mark & 0xffff0000 | 0x4d49 "
	    "accept\n\t\tmeta l4proto tcp drop\n\t}\n}\n"));
	rbuf_free(&b);
	config_free(c);
	c = cfg("rules_mode = gateway\nlisten_mode = tproxy\n"
	    "rules_backend = nftables\nfail_mode = open\n");
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "tproxy ip6 to :10025 meta mark set meta mark & "
	    "0xffff0000 | 0x4d49 accept\n"
	    "\t\tct mark & 0xffff == 0x4d49 meta l4proto tcp drop\n"
	    "\t\tct mark & 0xffff == 0x4d49 return\n"));
	rbuf_free(&b);
	config_free(c);
	/* REDIRECT has no such statement: unchanged */
	c = cfg("rules_mode = gateway\nrules_backend = nftables\n");
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_false(has(b.s, "meta l4proto tcp drop"));
	rbuf_free(&b);
	config_free(c);
}

/*
 * fail_mode = closed: a flow established before the rules went in is
 * known to conntrack (connmark 0), so its segments are neither SYNs nor
 * NEW: the guard refuses every port-25 packet that nothing diverted or
 * let through, RSTs aside, with either steering and either backend; the
 * bypass lists stay open.  fail_mode = open refuses nothing.
 */
static void
test_closed_refuses_established(void **state)
{
	struct config *c = cfg("steering = none\nfail_mode = closed\n"
	    "bypass_dst = 192.0.2.0/24 2001:db8::/32\nbypass_src = 10.1.2.3\n");
	char *s4 = script(c, 4, 1, ""), *s6 = script(c, 6, 1, "");
	struct rbuf b = { 0 };
	char err[256];

	assert_true(has(s4, "*filter\n:MXGUARD_GUARD - [0:0]\n"
	    "-A MXGUARD_GUARD -m mark --mark 0x4d58/0xffff -j RETURN\n"
	    "-A MXGUARD_GUARD -m conntrack --ctstate INVALID,UNTRACKED -j DROP\n"
	    "-A MXGUARD_GUARD -m conntrack --ctdir REPLY -j DROP\n"
	    "-A MXGUARD_GUARD -s 10.1.2.3/32 -j RETURN\n"
	    "-A MXGUARD_GUARD -d 192.0.2.0/24 -j RETURN\n"
	    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags RST RST "
	    "-j REJECT --reject-with tcp-reset\n-I OUTPUT 1 "));
	assert_true(has(s6, "-A MXGUARD_GUARD -d 2001:db8::/32 -j RETURN\n"
	    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags RST RST "
	    "-j REJECT --reject-with tcp-reset\n"));
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), 0);
	assert_true(has(b.s, "\t\tct state invalid,untracked drop\n"
	    "\t\tct direction reply drop\n"
	    "\t\tip saddr 10.1.2.3/32 return\n"
	    "\t\tip daddr 192.0.2.0/24 return\n"
	    "\t\tip6 daddr 2001:db8::/32 return\n"
	    "\t\ttcp flags & rst == 0 reject with tcp reset\n\t}\n}\n"));
	rbuf_free(&b);
	free(s4);
	free(s6);
	config_free(c);
	/* NFQUEUE steering: not only a new flow's SYN */
	c = cfg("fail_mode = closed\n");
	s4 = script(c, 4, 1, "");
	assert_false(has(s4, "--ctstate NEW -j REJECT"));
	assert_true(has(s4, "-A MXGUARD_GUARD -m connmark --mark 0x4d58/0xffff "
	    "-j RETURN\n-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags RST RST "
	    "-j REJECT --reject-with tcp-reset\n"));
	free(s4);
	config_free(c);
	/* gateway: the outside interfaces stay open too */
	c = cfg("rules_mode = gateway\nsteering = none\nfail_mode = closed\n"
	    "bypass_interfaces = wan0\n");
	s4 = script(c, 4, 1, "");
	assert_true(has(s4, ":MXGUARD_GUARD - [0:0]\n"
	    "-A MXGUARD_GUARD -i wan0 -j RETURN\n"));
	assert_true(has(s4, "! --tcp-flags RST RST -j REJECT"));
	assert_true(has(s4, "-I FORWARD 1 ! -i lo "));
	free(s4);
	config_free(c);
	/* open: nothing refused, either steering */
	c = cfg("steering = none\nfail_mode = open\n");
	s4 = script(c, 4, 1, "");
	assert_false(has(s4, "REJECT"));
	free(s4);
	config_free(c);
}

/*
 * A bypass entry with host bits set bypasses its whole prefix: a load
 * warning (test_config test_bypass_host_bits) and what `rules install`
 * says (test_rules_cmd test_install_says_host_bits), from one test of
 * the prefix (cidr_host_bits()); rules_warning() keeps to what only the
 * rules say, so `mxguard -n -v` says the host bits once.
 */
static void
test_cidr_host_bits_warned(void **state)
{
	struct config *c = cfg("bypass_dst = 192.0.2.0/24 203.0.113.7/3\n");
	struct cidr net;
	char buf[64];

	assert_null(rules_warning(c));
	config_free(c);
	assert_int_equal(cidr_host_bits("203.0.113.7/3", &net), 1);
	assert_string_equal(cidr_str(&net, buf, sizeof(buf)), "192.0.0.0/3");
	assert_int_equal(cidr_host_bits("2001:db8::1/64", &net), 1);
	assert_string_equal(cidr_str(&net, buf, sizeof(buf)),
	    "2001:db8::/64");
	assert_int_equal(cidr_host_bits("10.1.2.3/31", &net), 1);
	assert_int_equal(cidr_host_bits("192.0.2.0/24", &net), 0);
	assert_int_equal(cidr_host_bits("2001:db8::1/128", &net), 0);
	assert_int_equal(cidr_host_bits("10.1.2.3", &net), 0);
	assert_int_equal(cidr_host_bits("::/0", &net), 0);
	assert_int_equal(cidr_host_bits("192.0.2.0/33", &net), 0);
	assert_int_equal(cidr_host_bits("10.1/8", &net), 0);
	assert_int_equal(cidr_host_bits("/8", &net), 0);
}

static void
test_bad_cidr(void **state)
{
	struct config *c = cfg("bypass_dst = 192.0.2.0/33\n");
	struct rbuf b = { 0 };
	char err[256] = "";

	assert_int_equal(rules_ipt_script(c, 4, 1, "", &b, err, sizeof(err)), -1);
	assert_true(has(err, "bypass_dst"));
	assert_int_equal(rules_nft_script(c, &b, err, sizeof(err)), -1);
	rbuf_free(&b);
	config_free(c);
}

/* iptables-save (v1.8.9, nf_tables) after `rules install` of the
 * defaults, IPv4; the mangle table existed before (plain comment).  (The
 * guard's INTERCEPT rule is a DROP since the guard drops a flow taken but
 * not diverted: the targets are compared, test_state_targets.) */
static const char saved_default[] =
    "# Generated by iptables-save v1.8.9 (nf_tables)\n"
    "*mangle\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":MXGUARD_STEER - [0:0]\n"
    "-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment --comment mxguard -j MXGUARD_STEER\n"
    "-A MXGUARD_STEER -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack ! --ctstate NEW,DNAT -m mark ! --mark 0x4d58/0xffff -j DROP\n"
    "-A MXGUARD_STEER -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate DNAT -m mark --mark 0x4d58/0xffff -j DROP\n"
    "-A MXGUARD_STEER -m mark --mark 0x4d58/0xffff -j CONNMARK --save-mark --nfmask 0xffff --ctmask 0xffff\n"
    "-A MXGUARD_STEER -m mark --mark 0x4d49/0xffff -j CONNMARK --save-mark --nfmask 0xffff --ctmask 0xffff\n"
    "-A MXGUARD_STEER -m connmark --mark 0x4d58/0xffff -j RETURN\n"
    "-A MXGUARD_STEER -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connmark --mark 0x4d49/0xffff -m mark ! --mark 0x4d49/0xffff -j NFQUEUE --queue-num 2525\n"
    "-A MXGUARD_STEER -m connmark --mark 0x4d49/0xffff -j RETURN\n"
    "-A MXGUARD_STEER -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j NFQUEUE --queue-num 2525 --queue-bypass\n"
    "COMMIT\n"
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":MXGUARD_GUARD - [0:0]\n"
    "-A OUTPUT -p udp -m udp --dport 53 -j ACCEPT\n"
    "-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment --comment \"mxguard created-table\" -j MXGUARD_GUARD\n"
    "-A MXGUARD_GUARD -m mark --mark 0x4d58/0xffff -j RETURN\n"
    "-A MXGUARD_GUARD -m conntrack --ctstate INVALID,UNTRACKED -j DROP\n"
    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j DROP\n"
    "-A MXGUARD_GUARD -m conntrack --ctdir REPLY -j DROP\n"
    "-A MXGUARD_GUARD -m connmark --mark 0x4d49/0xffff -j DROP\n"
    "-A MXGUARD_GUARD -m connmark --mark 0x4d58/0xffff -j RETURN\n"
    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags RST RST -j REJECT --reject-with tcp-reset\n"
    "COMMIT\n"
    "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":MXGUARD_DIVERT - [0:0]\n"
    "-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment --comment \"mxguard created-table\" -j MXGUARD_DIVERT\n"
    "-A MXGUARD_DIVERT -p tcp -m connmark --mark 0x4d49/0xffff -j REDIRECT --to-ports 10025\n"
    "COMMIT\n";

/* saved_default with the lines that contain any of the given strings
 * dropped (NULL-terminated) */
static char *
without(const char *first, ...)
{
	struct rbuf b = { 0 };
	const char *p, *nl, *n;
	va_list ap;
	int drop;

	for (p = saved_default; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		drop = 0;
		va_start(ap, first);
		for (n = first; n != NULL; n = va_arg(ap, const char *))
			if (memmem(p, (size_t)(nl - p), n, strlen(n)) != NULL)
				drop = 1;
		va_end(ap);
		if (!drop)
			rbuf_printf(&b, "%.*s\n", (int)(nl - p), p);
	}
	return b.s;
}

static int
ipt_state(const struct config *c, const char *saved, char **missing)
{
	struct rbuf m = { 0 };
	char err[256];
	int st = rules_ipt_state(c, 4, saved, &m, err, sizeof(err));

	if (st == -1)
		fail_msg("state: %s", err);
	*missing = m.s ? m.s : strdup("");
	return st;
}

/*
 * Partial losses: a table flushed (the chain declared still, its rules
 * and the jump gone), a table replaced by a file without mxguard's lines,
 * one rule deleted.  The whole set, with either comment, quoted or not,
 * is complete; the refusal set is told apart; nothing is nothing.
 */
static void
test_state_partial(void **state)
{
	struct config *c = cfg("fail_mode = closed\n");
	char *saved, *m;

	assert_int_equal(ipt_state(c, saved_default, &m), RULES_ST_COMPLETE);
	assert_string_equal(m, "");
	free(m);
	/* iptables -t mangle -F */
	saved = without("-A MXGUARD_STEER", "-j MXGUARD_STEER", NULL);
	assert_int_equal(ipt_state(c, saved, &m), RULES_ST_PARTIAL);
	assert_string_equal(m, "IPv4 mangle table: MXGUARD_STEER holds 0 of "
	    "its 8 rules, the jump from OUTPUT gone");
	free(m);
	free(saved);
	/* iptables-restore of a file with *filter alone (ours not in it) */
	saved = without("MXGUARD_GUARD", NULL);
	assert_int_equal(ipt_state(c, saved, &m), RULES_ST_PARTIAL);
	assert_string_equal(m, "IPv4 filter table: chain MXGUARD_GUARD gone, "
	    "the jump from OUTPUT gone");
	free(m);
	free(saved);
	/* one rule deleted; the nat jump alone gone */
	saved = without("--queue-bypass", "-j MXGUARD_DIVERT", NULL);
	assert_int_equal(ipt_state(c, saved, &m), RULES_ST_PARTIAL);
	assert_string_equal(m, "IPv4 mangle table: MXGUARD_STEER holds 7 of "
	    "its 8 rules; IPv4 nat table: the jump from OUTPUT gone");
	free(m);
	free(saved);
	/* nothing of ours (a whole wipe) */
	saved = without("MXGUARD", NULL);
	assert_int_equal(ipt_state(c, saved, &m), RULES_ST_NONE);
	assert_string_equal(m, "");
	free(m);
	free(saved);
	/* the refusal set (not the configured one, and no loss of it) */
	assert_int_equal(ipt_state(c, "*filter\n:OUTPUT ACCEPT [0:0]\n"
	    ":MXGUARD_GUARD - [0:0]\n"
	    "-A FORWARD ! -i lo -p tcp -m tcp --dport 25 -m comment "
	    "--comment \"mxguard created-table\" -j MXGUARD_GUARD\n"
	    "-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment "
	    "--comment \"mxguard created-table\" -j MXGUARD_GUARD\n"
	    "-A MXGUARD_GUARD -p tcp -j REJECT --reject-with tcp-reset\n"
	    "COMMIT\n", &m), RULES_ST_REFUSAL);
	free(m);
	config_free(c);
	/* fail_mode = open: the guard has 5 rules, not 7 */
	c = cfg("fail_mode = open\n");
	assert_int_equal(ipt_state(c, saved_default, &m), RULES_ST_PARTIAL);
	assert_true(has(m, "MXGUARD_GUARD holds 7 of its 5 rules"));
	free(m);
	config_free(c);
}

/* nftables: the table listed (nft's spelling differs from the script's:
 * rules are counted per chain), a flushed table or chain is partial */
static void
test_nft_state(void **state)
{
	struct config *c = cfg("steering = none\nfail_mode = closed\n");
	struct rbuf m = { 0 };
	char err[256];
	const char *listed =
	    "table inet mxguard {\n"
	    "\tchain steer {\n"
	    "\t\ttype route hook output priority mangle; policy accept;\n"
	    "\t\ttcp dport != 25 return\n\t\toifname \"lo\" return\n"
	    "\t\ttcp flags syn / fin,syn,rst,ack ct state != new ct status ! dnat meta mark & 0x0000ffff != 0x00004d58 drop\n"
	    "\t\ttcp flags syn / fin,syn,rst,ack ct status dnat meta mark & 0x0000ffff == 0x00004d58 drop\n"
	    "\t}\n\n"
	    "\tchain divert {\n"
	    "\t\ttype nat hook output priority -100; policy accept;\n"
	    "\t\ttcp dport != 25 return\n\t\toifname \"lo\" return\n"
	    "\t\tmeta mark & 0x0000ffff == 0x00004d58 return\n"
	    "\t\tmeta l4proto tcp redirect to :10025\n"
	    "\t}\n\n"
	    "\tchain guard {\n"
	    "\t\ttype filter hook output priority filter; policy accept;\n"
	    "\t\tmeta l4proto != tcp return\n"
	    "\t\ttcp dport != 25 return\n\t\toifname \"lo\" return\n"
	    "\t\tmeta mark & 0x0000ffff == 0x00004d58 return\n"
	    "\t\tct state invalid,untracked drop\n"
	    "\t\tct direction reply drop\n"
	    "\t\ttcp flags ! rst reject with tcp reset\n"
	    "\t}\n}\n";
	const char *flushed =
	    "table inet mxguard {\n\tchain steer {\n"
	    "\t\ttype route hook output priority mangle; policy accept;\n"
	    "\t}\n\n\tchain divert {\n"
	    "\t\ttype nat hook output priority -100; policy accept;\n"
	    "\t}\n\n\tchain guard {\n"
	    "\t\ttype filter hook output priority filter; policy accept;\n"
	    "\t}\n}\n";

	assert_int_equal(rules_nft_state(c, NULL, &m, err, sizeof(err)),
	    RULES_ST_NONE);
	assert_int_equal(rules_nft_state(c, listed, &m, err, sizeof(err)),
	    RULES_ST_COMPLETE);
	assert_null(m.s);
	assert_int_equal(rules_nft_state(c, flushed, &m, err, sizeof(err)),
	    RULES_ST_PARTIAL);
	assert_string_equal(m.s, "table inet mxguard: chain steer holds 0 of "
	    "its 4 rules, chain divert holds 0 of its 4 rules, chain guard "
	    "holds 0 of its 7 rules");
	rbuf_free(&m);
	config_free(c);
}

/*
 * local_users, a change of uids only (the user deleted and made again,
 * another uid; an edit that swaps one user for another): the same number
 * of rules in every chain, but not the file's set.  Compared by the uids
 * of the owner matches, in both backends; nft's listing (a set of one
 * printed as its element, a set in its own order) of the right uids is
 * complete, so the watch does not install again and again.
 */
static void
test_state_uids(void **state)
{
	struct config *a = cfg("fail_mode = closed\nlocal_users = 0, 42\n");
	struct config *b = cfg("fail_mode = closed\nlocal_users = 0, 43\n");
	struct config *n1, *n2;
	struct rbuf m = { 0 }, sa = { 0 };
	char err[256], *saved = script(a, 4, 1, ""), *mm;

	assert_int_equal(ipt_state(a, saved, &mm), RULES_ST_COMPLETE);
	free(mm);
	assert_int_equal(ipt_state(b, saved, &mm), RULES_ST_PARTIAL);
	assert_string_equal(mm, "IPv4 mangle table: MXGUARD_STEER matches "
	    "other uids than local_users'; IPv4 filter table: MXGUARD_GUARD "
	    "matches other uids than local_users'");
	free(mm);
	free(saved);
	config_free(a);
	config_free(b);

	n1 = cfg("rules_backend = nftables\nsteering = none\n"
	    "fail_mode = closed\nlocal_users = 42, 0\n");
	n2 = cfg("rules_backend = nftables\nsteering = none\n"
	    "fail_mode = closed\nlocal_users = 5\n");
	assert_int_equal(rules_nft_script(n1, &sa, err, sizeof(err)), 0);
	assert_int_equal(rules_nft_state(n1, sa.s, &m, err, sizeof(err)),
	    RULES_ST_COMPLETE);
	assert_int_equal(rules_nft_state(n2, sa.s, &m, err, sizeof(err)),
	    RULES_ST_PARTIAL);
	assert_string_equal(m.s, "table inet mxguard: chain steer matches "
	    "other uids than local_users', chain divert matches other uids "
	    "than local_users', chain guard matches other uids than "
	    "local_users'");
	rbuf_free(&m);
	rbuf_free(&sa);
	/* as nft 1.0.6 lists n2's set: { 5 } as 5 */
	rbuf_printf(&sa,
	    "table inet mxguard {\n\tchain steer {\n"
	    "\t\ttype route hook output priority mangle; policy accept;\n"
	    "\t\ttcp dport != 25 return\n\t\toifname \"lo\" return\n"
	    "\t\ttcp flags syn / fin,syn,rst,ack ct state != new ct status ! dnat meta mark & 0x0000ffff != 0x00004d58 drop\n"
	    "\t\ttcp flags syn / fin,syn,rst,ack ct status dnat meta mark & 0x0000ffff == 0x00004d58 drop\n"
	    "\t\tct status dnat meta mark & 0x0000ffff != 0x00004d58 meta skuid != %s drop\n"
	    "\t}\n\n\tchain divert {\n"
	    "\t\ttype nat hook output priority -100; policy accept;\n"
	    "\t\ttcp dport != 25 return\n\t\toifname \"lo\" return\n"
	    "\t\tmeta mark & 0x0000ffff == 0x00004d58 return\n"
	    "\t\tmeta skuid %s meta l4proto tcp redirect to :10025\n"
	    "\t}\n\n\tchain guard {\n"
	    "\t\ttype filter hook output priority filter; policy accept;\n"
	    "\t\tmeta l4proto != tcp return\n"
	    "\t\ttcp dport != 25 return\n\t\toifname \"lo\" return\n"
	    "\t\tmeta mark & 0x0000ffff == 0x00004d58 return\n"
	    "\t\tmeta skuid != %s tcp flags ! rst reject with tcp reset\n"
	    "\t\tct state invalid,untracked drop\n"
	    "\t\tct direction reply drop\n"
	    "\t\ttcp flags ! rst reject with tcp reset\n"
	    "\t}\n}\n", "5", "5", "5");
	assert_int_equal(rules_nft_state(n2, sa.s, &m, err, sizeof(err)),
	    RULES_ST_COMPLETE);
	assert_null(m.s);
	assert_int_equal(rules_nft_state(n1, sa.s, &m, err, sizeof(err)),
	    RULES_ST_PARTIAL);
	rbuf_free(&m);
	rbuf_free(&sa);
	config_free(n1);
	config_free(n2);
}

/* text with every occurrence of from made to */
static char *
subst(const char *text, const char *from, const char *to)
{
	struct rbuf b = { 0 };
	const char *p, *q;

	for (p = text; (q = strstr(p, from)) != NULL; p = q + strlen(from))
		rbuf_printf(&b, "%.*s%s", (int)(q - p), p, to);
	rbuf_printf(&b, "%s", p);
	return b.s;
}

/*
 * A set of the configuration's shape that sends a flow elsewhere (left by
 * an older configuration, a rules file restored, a hand edit): REDIRECT
 * to another port, DNAT to another address, another queue, other marks.
 * Diverted flows would reach a port where mxguard does not listen, which
 * any local user may bind, or a queue nobody reads: not the
 * configuration's set (`rules ensure`/`watch` put it back, `rules stop`
 * replaces it).  iptables-save's spelling of a mark with the mask
 * 0xffffffff (left out) is the same set; nft's listing of the queue
 * statement ("queue flags bypass to N") too.
 */
static void
test_state_targets(void **state)
{
	struct config *c = cfg("fail_mode = closed\n"), *g, *f, *n, *q;
	struct rbuf m = { 0 }, sa = { 0 };
	char err[256], *saved, *s2, *mm;

	/* REDIRECT to another port */
	saved = subst(saved_default, "--to-ports 10025", "--to-ports 10026");
	assert_int_equal(ipt_state(c, saved, &mm), RULES_ST_PARTIAL);
	assert_string_equal(mm, "IPv4 nat table: MXGUARD_DIVERT has other "
	    "--to-ports values than the configuration's");
	free(mm);
	free(saved);
	/* another queue */
	saved = subst(saved_default, "--queue-num 2525", "--queue-num 7");
	assert_int_equal(ipt_state(c, saved, &mm), RULES_ST_PARTIAL);
	assert_string_equal(mm, "IPv4 mangle table: MXGUARD_STEER has other "
	    "--queue-num values than the configuration's");
	free(mm);
	free(saved);
	/* the closed guard's refusal made a RETURN in place (as many
	 * rules) */
	saved = subst(saved_default, "-A MXGUARD_GUARD -p tcp -m tcp ! "
	    "--tcp-flags RST RST -j REJECT --reject-with tcp-reset",
	    "-A MXGUARD_GUARD -p tcp -m tcp ! --tcp-flags RST RST -j RETURN");
	assert_int_equal(ipt_state(c, saved, &mm), RULES_ST_PARTIAL);
	assert_string_equal(mm, "IPv4 filter table: MXGUARD_GUARD has other "
	    "-j values than the configuration's");
	free(mm);
	free(saved);
	/* another intercept mark */
	saved = subst(saved_default, "0x4d49/0xffff", "0x4d4a/0xffff");
	assert_int_equal(ipt_state(c, saved, &mm), RULES_ST_PARTIAL);
	assert_true(has(mm, "MXGUARD_STEER has other --mark values"));
	assert_true(has(mm, "MXGUARD_DIVERT has other --mark values"));
	free(mm);
	free(saved);
	config_free(c);

	/* gateway, DNAT to the listen address: another address */
	g = cfg("fail_mode = closed\nrules_mode = gateway\n"
	    "bypass_interfaces = eth1\nlisten = 192.0.2.1:10025\n");
	saved = script(g, 4, 1, "");
	assert_true(has(saved, "-j DNAT --to-destination 192.0.2.1:10025"));
	assert_int_equal(ipt_state(g, saved, &mm), RULES_ST_COMPLETE);
	free(mm);
	s2 = subst(saved, "192.0.2.1:10025", "10.0.0.9:10025");
	assert_int_equal(ipt_state(g, s2, &mm), RULES_ST_PARTIAL);
	assert_string_equal(mm, "IPv4 nat table: MXGUARD_DIVERT has other "
	    "--to-destination values than the configuration's");
	free(mm);
	free(s2);
	free(saved);
	config_free(g);

	/* mark_mask 0xffffffff: iptables-save leaves the mask out of --mark
	 * (and keeps it in --tproxy-mark, --nfmask): the same set */
	f = cfg("fail_mode = closed\nmark_mask = 0xffffffff\n"
	    "upstream_mark = 0x4d58\nintercept_mark = 0x4d49\n");
	saved = script(f, 4, 1, "");
	s2 = subst(saved, "--mark 0x4d58/0xffffffff", "--mark 0x4d58");
	free(saved);
	saved = subst(s2, "--mark 0x4d49/0xffffffff", "--mark 0x4d49");
	free(s2);
	assert_false(has(saved, "--mark 0x4d49/"));
	assert_int_equal(ipt_state(f, saved, &mm), RULES_ST_COMPLETE);
	free(mm);
	free(saved);
	config_free(f);

	/* nftables: a redirect to another port */
	n = cfg("rules_backend = nftables\nsteering = none\n"
	    "fail_mode = closed\n");
	assert_int_equal(rules_nft_script(n, &sa, err, sizeof(err)), 0);
	assert_int_equal(rules_nft_state(n, sa.s, &m, err, sizeof(err)),
	    RULES_ST_COMPLETE);
	saved = subst(sa.s, "redirect to :10025", "redirect to :10026");
	assert_int_equal(rules_nft_state(n, saved, &m, err, sizeof(err)),
	    RULES_ST_PARTIAL);
	assert_string_equal(m.s, "table inet mxguard: chain divert diverts "
	    "or queues elsewhere than the configuration's");
	rbuf_free(&m);
	rbuf_free(&sa);
	free(saved);
	config_free(n);
	/* nftables, queueing: listed "queue flags bypass to N", "queue to
	 * N"; another queue is not the set */
	q = cfg("rules_backend = nftables\nfail_mode = closed\n");
	assert_int_equal(rules_nft_script(q, &sa, err, sizeof(err)), 0);
	s2 = subst(sa.s, "queue num 2525 bypass", "queue flags bypass to 2525");
	saved = subst(s2, "queue num 2525", "queue to 2525");
	free(s2);
	assert_int_equal(rules_nft_state(q, saved, &m, err, sizeof(err)),
	    RULES_ST_COMPLETE);
	assert_null(m.s);
	s2 = subst(saved, "bypass to 2525", "bypass to 7");
	assert_int_equal(rules_nft_state(q, s2, &m, err, sizeof(err)),
	    RULES_ST_PARTIAL);
	assert_string_equal(m.s, "table inet mxguard: chain steer diverts "
	    "or queues elsewhere than the configuration's");
	rbuf_free(&m);
	rbuf_free(&sa);
	free(saved);
	free(s2);
	config_free(q);
}

/*
 * rules_backend = nftables on a host without the iptables package (the
 * documented alternative: docs/deployment.md, "Requirements").  A fake
 * nft (keeps what `nft -f -` reads, lists it, deletes it) and a failing
 * ip are all there is on PATH.  install, state, remove: the missing
 * iptables-save is no iptables rule, not an error; an iptables set
 * still cannot be installed (iptables-restore missing too).
 */
static void
test_nft_without_iptables(void **state)
{
	struct config *n = cfg("rules_backend = nftables\nsteering = none\n"
	    "fail_mode = closed\n");
	struct config *i = cfg("fail_mode = closed\n");
	char dir[] = "/tmp/mxg-nftonly-XXXXXX", path[128], err[512] = "";
	char *oldpath = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
	struct rbuf m = { 0 };
	int broken = -1;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/nft", dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "#!/bin/sh\nt=%s/table\ncase \"$1\" in\n"
	    "-f) /bin/cat >\"$t\" ;;\nlist) /bin/cat \"$t\" 2>/dev/null || exit 1 ;;\n"
	    "delete) /bin/rm \"$t\" 2>/dev/null || exit 1 ;;\nesac\n", dir);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/ip", dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "#!/bin/sh\nexit 1\n");
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
	setenv("PATH", dir, 1);

	if (rules_install(n, err, sizeof(err)) != 0)
		fail_msg("install: %s", err);
	assert_int_equal(rules_state(n, &m, &broken, err, sizeof(err)),
	    RULES_ST_COMPLETE);
	assert_int_equal(broken, 0);
	if (rules_remove(n, err, sizeof(err)) != 0)
		fail_msg("remove: %s", err);
	assert_int_equal(rules_state(n, &m, &broken, err, sizeof(err)),
	    RULES_ST_NONE);
	assert_int_equal(rules_install(i, err, sizeof(err)), -1);
	assert_true(has(err, "iptables-restore"));

	if (oldpath != NULL)
		setenv("PATH", oldpath, 1);
	free(oldpath);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
	rbuf_free(&m);
	config_free(n);
	config_free(i);
}

/*
 * What the set in place does with no daemon, read without a
 * configuration (`rules stop` and `rules watch` on a file that does not
 * load): the closed guard and the refusal set refuse, an open guard
 * (local_users' refusals of other users aside) does not, mxguard's rules
 * with no guard (TPROXY, steering = none) cannot be told and count as
 * refusing; a flushed chain is broken.
 */
static void
test_inplace(void **state)
{
	struct rules_inplace ip;
	char *open_guard = without("connmark --mark 0x4d58/0xffff -j RETURN",
	    "RST RST -j REJECT", NULL);
	char *flushed = without("-A MXGUARD_GUARD", NULL);
	const char *tproxy = "*mangle\n:PREROUTING ACCEPT [0:0]\n"
	    ":MXGUARD_STEER - [0:0]\n"
	    "-A PREROUTING ! -i lo -p tcp -m tcp --dport 25 -m comment "
	    "--comment \"mxguard created-table\" -j MXGUARD_STEER\n"
	    "-A MXGUARD_STEER -p tcp -j TPROXY --on-port 10025 --on-ip 0.0.0.0 "
	    "--tproxy-mark 0x4d49/0xffff\nCOMMIT\n";
	const char *nft_open = "table inet mxguard {\n\tchain guard {\n"
	    "\t\ttype filter hook output priority filter; policy accept;\n"
	    "\t\tmeta skuid != 65534 tcp flags ! rst reject with tcp reset\n"
	    "\t\tct state invalid,untracked drop\n\t}\n}\n";
	const char *nft_closed = "table inet mxguard {\n\tchain guard {\n"
	    "\t\ttype filter hook output priority filter; policy accept;\n"
	    "\t\tct state invalid,untracked drop\n"
	    "\t\ttcp flags ! rst reject with tcp reset\n\t}\n}\n";

	rules_inplace_text("*filter\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", "",
	    NULL, &ip);
	assert_int_equal(ip.any, 0);
	assert_int_equal(ip.refuses, 0);
	rules_inplace_text(saved_default, "", NULL, &ip);
	assert_int_equal(ip.any, 1);
	assert_int_equal(ip.refuses, 1);
	assert_int_equal(ip.broken, 0);
	rules_inplace_text(open_guard, "", NULL, &ip);
	assert_int_equal(ip.any, 1);
	assert_int_equal(ip.refuses, 0);
	rules_inplace_text(flushed, "", NULL, &ip);
	assert_int_equal(ip.broken, 1);
	rules_inplace_text("", "*filter\n:MXGUARD_GUARD - [0:0]\n"
	    "-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment --comment "
	    "mxguard -j MXGUARD_GUARD\n"
	    "-A MXGUARD_GUARD -p tcp -j REJECT --reject-with tcp-reset\n"
	    "COMMIT\n", NULL, &ip);
	assert_int_equal(ip.refuses, 1);
	rules_inplace_text(tproxy, NULL, NULL, &ip);
	assert_int_equal(ip.any, 1);
	assert_int_equal(ip.refuses, 1);
	rules_inplace_text(NULL, NULL, nft_open, &ip);
	assert_int_equal(ip.any, 1);
	assert_int_equal(ip.refuses, 0);
	rules_inplace_text(NULL, NULL, nft_closed, &ip);
	assert_int_equal(ip.refuses, 1);
	free(open_guard);
	free(flushed);
}

/*
 * A chain taken whole (`iptables -t nat -F; iptables -t nat -X`, a
 * firewall's reset of one table; `nft delete chain`) is damage too, not
 * only a chain emptied or no longer entered: with a file that does not
 * load, `rules watch` acts on damage alone (the refusal set after a
 * fail-closed set), and a queueing set without its nat chain lets every
 * flow the daemon diverted go to the MX direct (the closed guard returns
 * it by its connmark).  The sets mxguard installs are no damage.
 */
static void
test_inplace_chain_gone(void **state)
{
	struct rules_inplace ip;
	char *no_nat = without("MXGUARD_DIVERT", NULL);
	char *no_guard = without("MXGUARD_GUARD", NULL);
	char *no_steer = without("MXGUARD_STEER", NULL);
	const char *tproxy = "*mangle\n:PREROUTING ACCEPT [0:0]\n"
	    ":MXGUARD_STEER - [0:0]\n"
	    "-A PREROUTING ! -i lo -p tcp -m tcp --dport 25 -m comment "
	    "--comment \"mxguard created-table\" -j MXGUARD_STEER\n"
	    "-A MXGUARD_STEER -p tcp -j TPROXY --on-port 10025 --on-ip 0.0.0.0 "
	    "--tproxy-mark 0x4d49/0xffff\nCOMMIT\n";
	const char *refusal = "*filter\n:MXGUARD_GUARD - [0:0]\n"
	    "-A OUTPUT ! -o lo -p tcp -m tcp --dport 25 -m comment --comment "
	    "mxguard -j MXGUARD_GUARD\n"
	    "-A FORWARD ! -i lo -p tcp -m tcp --dport 25 -m comment --comment "
	    "mxguard -j MXGUARD_GUARD\n"
	    "-A MXGUARD_GUARD -p tcp -j REJECT --reject-with tcp-reset\n"
	    "COMMIT\n";
	/* nft 1.0.6's listing of local, steering = none, closed */
	static const char steer[] = "\tchain steer {\n"
	    "\t\ttype route hook output priority mangle; policy accept;\n"
	    "\t\ttcp dport != 25 return\n\t\toifname \"lo\" return\n"
	    "\t\ttcp flags syn / fin,syn,rst,ack ct state != new ct status "
	    "! dnat meta mark & 0x0000ffff != 0x00004d58 drop\n\t}\n\n";
	static const char divert[] = "\tchain divert {\n"
	    "\t\ttype nat hook output priority -100; policy accept;\n"
	    "\t\ttcp dport != 25 return\n\t\toifname \"lo\" return\n"
	    "\t\tmeta mark & 0x0000ffff == 0x00004d58 return\n"
	    "\t\tmeta l4proto tcp redirect to :825\n\t}\n\n";
	static const char guard[] = "\tchain guard {\n"
	    "\t\ttype filter hook output priority filter; policy accept;\n"
	    "\t\tmeta l4proto != tcp return\n\t\ttcp dport != 25 return\n"
	    "\t\tct state invalid,untracked drop\n"
	    "\t\ttcp flags ! rst reject with tcp reset\n\t}\n";
	char nft[2048];

	/* the sets as installed: no damage */
	rules_inplace_text(saved_default, saved_default, NULL, &ip);
	assert_int_equal(ip.broken, 0);
	rules_inplace_text(tproxy, tproxy, NULL, &ip);
	assert_int_equal(ip.broken, 0);
	rules_inplace_text(refusal, refusal, NULL, &ip);
	assert_int_equal(ip.broken, 0);
	snprintf(nft, sizeof(nft), "table inet mxguard {\n%s%s%s}\n", steer,
	    divert, guard);
	rules_inplace_text("", "", nft, &ip);
	assert_int_equal(ip.broken, 0);
	assert_int_equal(ip.refuses, 1);

	/* a chain gone, in one family or the table */
	rules_inplace_text(no_nat, saved_default, NULL, &ip);
	assert_int_equal(ip.broken, 1);
	assert_int_equal(ip.refuses, 1);
	rules_inplace_text(saved_default, no_guard, NULL, &ip);
	assert_int_equal(ip.broken, 1);
	rules_inplace_text(no_steer, no_steer, NULL, &ip);
	assert_int_equal(ip.broken, 1);
	snprintf(nft, sizeof(nft), "table inet mxguard {\n%s%s}\n", steer,
	    guard);
	rules_inplace_text("", "", nft, &ip);
	assert_int_equal(ip.broken, 1);
	snprintf(nft, sizeof(nft), "table inet mxguard {\n%s%s}\n", steer,
	    divert);
	rules_inplace_text("", "", nft, &ip);
	assert_int_equal(ip.broken, 1);
	rules_inplace_text("", "", "table inet mxguard {\n}\n", &ip);
	assert_int_equal(ip.broken, 1);
	free(no_nat);
	free(no_guard);
	free(no_steer);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_closed),
		cmocka_unit_test(test_fail_open_guard_drops_only),
		cmocka_unit_test(test_guard_drops_undiverted_intercept),
		cmocka_unit_test(test_gateway_tproxy),
		cmocka_unit_test(test_gateway_interfaces),
		cmocka_unit_test(test_gateway_redirect_listen_address),
		cmocka_unit_test(test_gateway_own_dst_let_through),
		cmocka_unit_test(test_diverted_syn_requeued),
		cmocka_unit_test(test_steering_none),
		cmocka_unit_test(test_closed_refuses_established),
		cmocka_unit_test(test_refusal_set),
		cmocka_unit_test(test_reinstall_and_remove),
		cmocka_unit_test(test_created_empty),
		cmocka_unit_test(test_nft),
		cmocka_unit_test(test_nft_tproxy_unheard_dropped),
		cmocka_unit_test(test_local_users),
		cmocka_unit_test(test_state_partial),
		cmocka_unit_test(test_nft_state),
		cmocka_unit_test(test_state_uids),
		cmocka_unit_test(test_state_targets),
		cmocka_unit_test(test_nft_without_iptables),
		cmocka_unit_test(test_inplace),
		cmocka_unit_test(test_inplace_chain_gone),
		cmocka_unit_test(test_cidr_host_bits_warned),
		cmocka_unit_test(test_bad_cidr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
