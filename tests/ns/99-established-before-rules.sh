#!/bin/bash
# 99: with fail_mode = closed, a port-25 connection that was established
# before mxguard's rules went in (a first install on a running mail host,
# an install after `rules remove`, a restart from fail_mode = open) never
# carries more bytes to the MX.  Its SYN was never queued nor diverted, and
# its later segments are no SYN and not NEW (conntrack knows the flow, with
# connmark 0), so neither the queue, nor nat, nor the guard's refusal of new
# SYNs saw them: before the fix the MTA went on talking to the MX direct,
# for as long as it kept the connection (Postfix reuses a cached one for
# new mail for up to 300 s).  The guard now refuses (tcp-reset) every
# port-25 segment of a flow that is neither diverted nor let through, RSTs
# aside.  Part 1: NFQUEUE steering; part 2: steering = none (REDIRECT).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
# the MX's side counts every packet that carries the marker
in_rcv iptables -I INPUT -p tcp --dport 25 -m string --algo bm \
	--string EARLY-MARKER || fail "iptables string match"
# a stateful firewall of the host's (most have one): conntrack follows
# every flow from the start, the early ones too.  (With no rule using
# conntrack, a namespace tracks nothing until mxguard's rules come, and the
# early flow's next segment is a mid-stream pickup, ns 88.)
in_snd iptables -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT &&
	in_snd ip6tables -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT ||
	fail "the host's stateful rule"
marker_at_mx() { in_rcv iptables -L INPUT -v -n -x | awk '/EARLY-MARKER/ { print $1 }'; }
_mta_done() { ! kill -0 "$MTA_PID" 2>/dev/null; }

# early_session TAG: an MTA session to the MX made while no rule is in;
#   it waits for $T/go-TAG before its next segment.
early_session() {
	assert "no mxguard rule in place" lacks MXGUARD_ ipt_save "$SND"
	bg "$SND" "$T/mta-$1.out" python3 "$LIBDIR/heldmta.py" 10.25.1.30 \
		"$T/ready-$1" "$T/go-$1" EARLY-MARKER 60
	MTA_PID=$BG_PID
	wait_for 15 "the MTA's session ($1) to reach EHLO" test -s "$T/ready-$1"
	CPORT=$(cat "$T/ready-$1")
	assert "$1: conntrack follows the early session" bash -c "ip netns exec '$SND' conntrack -L -p tcp --sport $CPORT --dport 25 2>/dev/null | grep -q ESTABLISHED"
	log "session $1 from port $CPORT, direct"
}

# then_segment TAG: after the rules are in, the session's next segment
#   must not reach the MX, and mxguard never had the session.
then_segment() {
	touch "$T/go-$1"
	wait_for 30 "the MTA ($1) to finish" _mta_done
	cat "$T/mta-$1.out" >&2
	N=$(marker_at_mx)
	log "packets with the marker at the MX: ${N:-?}"
	assert "$1: the early session's segment never reached the MX (saw ${N:-?})" [ "${N:-x}" = 0 ]
	assert "$1: the MTA was told (reset)" grep -q "after: ConnectionResetError" "$T/mta-$1.out"
	assert "$1: mxguard never had the early session" lacks "event=connect client=$SND_IP:$CPORT " cat "$MXLOG"
}

early_session nfq
nfq_start "fail_mode = closed"
then_segment nfq

log "part 2: steering = none"
mxg_stop
mxg_ctl rules remove >&2 || fail "mxguard rules remove"
early_session none
mxg_start "rules_mode = local
divert_port = $MXG_PORT
fail_mode = closed"
then_segment none
pass "a connection established before the rules went in carries nothing more to the MX (fail_mode = closed)"
