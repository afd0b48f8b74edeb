#!/bin/bash
# 113: local_users, a user not listed never reaches mxguard through a
# diverted flow's stale conntrack entry.  Local mode, NFQUEUE steering,
# local_users = postfix.  postfix's session from port P is diverted (the
# entry is DNAT'd to mxguard's listener) and mxguard's side resets it
# (here `ss -K`): the entry stays in CLOSE state for 10 s, and a SYN from
# P in the original direction is filed under it, not NEW (ns 100).  Rule
# 0 of the steering chain lets a SYN on a DNAT'd entry through (it goes to
# mxguard), and the entry's DNAT binding takes it to port 10025 on lo,
# which the guard's jump (--dport 25 ! -o lo) never sees: `nobody`, who
# can read P in /proc/net/tcp, bound P and had a session through mxguard
# to the MX.  Now an unlisted user's packet on a DNAT'd entry is dropped
# before nat; its SYN is resent, and once the entry has expired it is NEW
# and refused with a reset as any other of its flows.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
stale_dnat() {	# LABEL
	rm -rf "$T/u"
	mkdir -m 1777 "$T/u"
	cp "$LIBDIR/heldmta.py" "$T/u/heldmta.py"
	chmod 644 "$T/u/heldmta.py"
	bg "$SND" "$T/mta.out" setpriv --reuid=postfix --regid="$(id -g postfix)" \
		--clear-groups /usr/bin/python3 "$T/u/heldmta.py" 10.25.1.30 "$T/u/ready" "$T/u/go" STALE-MARKER
	MTA_PID=$BG_PID
	wait_for 15 "$1: postfix's session to reach EHLO" test -s "$T/u/ready"
	P=$(cat "$T/u/ready")
	local n0 b0 out
	n0=$(count_log "$MXLOG" "event=connect client=$SND_IP:$P ")
	b0=$(count_log "$BADLOG" "open peer=$SND_IP:$P\$")
	assert "$1: mxguard took postfix's session from port $P" \
		grep -qE "event=connect client=$SND_IP:$P dst=10\.25\.1\.30:25" "$MXLOG"
	in_snd ss -K src "127.0.0.1:$MXG_PORT" dport = ":$P" >&2 || fail "ss -K"
	touch "$T/u/go"
	_mta_done() { ! kill -0 "$MTA_PID" 2>/dev/null; }
	wait_for 15 "postfix's session to finish" _mta_done
	_entry_close_dnat() {
		in_snd conntrack -L -p tcp --orig-port-src "$P" --orig-port-dst 25 2>/dev/null >"$T/ct.out"
		grep -q "CLOSE " "$T/ct.out"
	}
	wait_for 5 "the diverted entry in CLOSE state" _entry_close_dnat
	cat "$T/ct.out" >&2

	# nobody binds P (the kernel freed it at the reset) and connects to the MX
	out=$(tcp_greet_as nobody 10.25.1.30 25 "$SND_IP" "$P" 2>&1)
	echo "nobody: $out" >&2
	assert "$1: mxguard took no session of nobody's from $P " \
		[ "$(count_log "$MXLOG" "event=connect client=$SND_IP:$P ")" = "$n0" ]
	assert "$1: nobody's flow from $P is refused once the entry is gone (got: $out)" \
		[ "$out" = refused ]
	assert "$1: the MX saw nothing of nobody's" \
		[ "$(count_log "$BADLOG" "open peer=$SND_IP:$P\$")" = "$b0" ]
}

nfq_start "local_users = postfix
fail_mode = open"
stale_dnat "iptables, nfqueue"
mxg_stop_remove
assert "iptables rules gone" [ -z "$(ipt_save "$SND" | grep -i mxguard)" ]
MXG_EXTRA_CONF="rules_mode = local
rules_backend = nftables
steering = none
local_users = postfix
fail_mode = open" mxg_start
stale_dnat "nftables, steering none"
mxg_stop_remove
pass "a user not in local_users never reaches mxguard through a stale diverted entry"
