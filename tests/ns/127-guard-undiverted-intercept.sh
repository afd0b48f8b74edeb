#!/bin/bash
# 127: a flow mxguard took but that the nat chain did not divert never
# goes to the MX direct.  Local mode, NFQUEUE steering, each fail mode:
# with the daemon running, a firewall reload empties the nat chain
# (MXGUARD_DIVERT) before `rules watch` could put it back.  The next
# flow's SYN is queued, gets INTERCEPT (connmark), and finds no REDIRECT:
# nat sees a connection's first packet only, so it would never be
# diverted.  Before, the guard returned such a flow with fail_mode =
# closed and did not look at it with open: the MTA's session went to the
# MX direct, in cleartext, for its whole life.  Now the guard drops it
# (`-m connmark --mark INTERCEPT -j DROP`, both modes); once the chain
# is back, the next connection is diverted as any other.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
# the MX counts the SYNs that reach it (mxguard's upstream, which leaves
# from the MTA's address in local mode, included: compared before/after)
in_rcv iptables -I INPUT -p tcp --dport 25 --syn || fail "iptables count"
syns_at_mx() { in_rcv iptables -L INPUT -v -n -x | awk '/tcp dpt:25 flags:0x17\/0x02/ { print $1; exit }'; }
# greet: one connection from the MTA's namespace, 6 s at most
greet() {
	in_snd timeout 10 python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(6)
try:
    s.connect(("10.25.1.30", 25)); print("greeting", s.recv(200).decode(errors="replace").strip())
except Exception as e:
    print("error", type(e).__name__)'
}

for mode in open closed; do
	nfq_start "fail_mode = $mode"
	out=$(greet)
	assert "$mode: with the chain in place the MTA is answered (got: $out)" [ "${out%% *}" = greeting ]
	wait_log "$MXLOG" "event=connect client=10\.25\.1\.1:[0-9]+ dst=10\.25\.1\.30:25" 10
	n_conn=$(count_log "$MXLOG" "event=connect client=")

	in_snd iptables -t nat -F MXGUARD_DIVERT || fail "$mode: flushing the nat chain"
	before=$(syns_at_mx)
	n_verdict=$(count_log "$MXLOG" "event=nfq-verdict .*verdict=intercept")
	out=$(greet)
	after=$(syns_at_mx)
	log "$mode: nat chain empty: ${out:-no answer}; SYNs at the MX ${before:-?} -> ${after:-?}"
	assert "$mode: the flow was taken (INTERCEPT)" [ "$(count_log "$MXLOG" "event=nfq-verdict .*verdict=intercept")" -gt "$n_verdict" ]
	assert "$mode: its SYN never reached the MX (${before:-?} -> ${after:-?})" [ -n "$before" -a "$before" = "$after" ]
	assert "$mode: the MTA got no greeting (got: $out)" [ "${out%% *}" != greeting ]
	assert "$mode: nor did mxguard relay it" [ "$(count_log "$MXLOG" "event=connect client=")" = "$n_conn" ]

	# the chain back (what `rules watch` does): diverted again
	mxg_rules_install
	out=$(greet)
	assert "$mode: with the chain back the MTA is answered (got: $out)" [ "${out%% *}" = greeting ]
	assert "$mode: through mxguard again" [ "$(count_log "$MXLOG" "event=connect client=")" -gt "$n_conn" ]
	mxg_stop
	mxg_ctl rules remove >/dev/null 2>&1 || fail "$mode: rules remove"
done
pass "a flow taken but not diverted is dropped by the guard, in both fail modes"
