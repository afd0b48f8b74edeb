#!/bin/bash
# 89: with steering = none and REDIRECT, a port-25 packet conntrack does
# not track never goes around mxguard.  Local mode, mxguard's own rule set.
# nat sees only tracked packets.  A raw-table NOTRACK rule for port 25 (one
# an operator adds for speed, here added while a session is under way)
# makes the MTA's next segments skip the REDIRECT: before the fix they went
# to the MX direct, in cleartext (the MX resets them, but the bytes had
# crossed).  The guard now drops a port-25 packet conntrack cannot track
# (INVALID) or was told not to (UNTRACKED), mxguard's own marked sockets
# aside; the MTA's session times out and the mail stays queued.  (A new
# flow's untracked SYN is dropped in local mode by the stale-SYN rule.)
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
mxg_start "rules_mode = local
divert_port = $MXG_PORT"
assert "the guard is in place" bash -c "ip netns exec '$SND' iptables -S MXGUARD_GUARD | grep -q -- '--ctstate INVALID,UNTRACKED -j DROP'"
# the MX's side counts every packet that carries the marker
in_rcv iptables -I INPUT -p tcp --dport 25 -m string --algo bm \
	--string UNTRACKED-MARKER || fail "iptables string match"
marker_at_mx() { in_rcv iptables -L INPUT -v -n -x | awk '/UNTRACKED-MARKER/ { print $1 }'; }
notrack() { in_snd iptables -t raw "$1" OUTPUT -p tcp --dport 25 -j CT --notrack; }


bg "$SND" "$T/mta.out" python3 "$LIBDIR/heldmta.py" 10.25.1.30 "$T/ready" "$T/go" UNTRACKED-MARKER
MTA_PID=$BG_PID
wait_for 15 "the MTA's session to reach EHLO" test -s "$T/ready"
CPORT=$(cat "$T/ready")
assert "mxguard took the session" grep -qE "event=connect client=$SND_IP:$CPORT dst=10\.25\.1\.30:25" "$MXLOG"
notrack -I || fail "iptables NOTRACK"
touch "$T/go"
_mta_done() { ! kill -0 "$MTA_PID" 2>/dev/null; }
wait_for 30 "the MTA to finish" _mta_done
notrack -D
cat "$T/mta.out" >&2
N=$(marker_at_mx)
GD=$(in_snd iptables -L MXGUARD_GUARD -v -n -x | awk '/UNTRACKED/ { print $1 }')
log "packets with the marker at the MX: ${N:-?}; dropped by the guard: ${GD:-?}"
assert "the untracked segment never reached the MX (saw ${N:-?})" [ "${N:-x}" = 0 ]
assert "the guard dropped it" [ "${GD:-0}" -gt 0 ]
pass "an untracked port-25 segment is dropped, never sent to the MX"
