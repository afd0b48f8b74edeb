#!/bin/bash
# 109: gateway mode, TPROXY, fail_mode = open: a diverted session whose
# conntrack entry goes (`conntrack -D` here; `conntrack -F` by an
# operator) never continues around mxguard.
#   [SND 10.25.2.1] -- [GW 10.25.2.254 | 10.25.1.254] -- [RCV 10.25.1.x]
# Under TPROXY mxguard's socket speaks to the MTA with the MX's address
# and port.  With the entry gone, when mxguard sends first (here its 421
# at client_timeout), conntrack picks the flow up from mxguard's side
# (nf_conntrack_tcp_loose): a new entry, connmark 0, whose reply
# direction is the MTA's.  The MTA's next segments are ESTABLISHED, not
# NEW: not TPROXYed (connmark 0), not queued (no SYN), not dropped as a
# mid-stream pickup (ns 88: NEW without SYN), and with fail_mode = open
# the guard let them go to the MX direct (before the fix the MX counted
# the MTA's packets: its ACK and FIN, and whatever it sends next, in
# cleartext).  Only where early demux is off on the gateway (net.ipv4.
# ip_early_demux = 0, which the kernel's documentation suggests for pure
# routing workloads, as here): with it on, mxguard's socket still owns the
# MTA's 4-tuple and takes the segments before routing.  A port-25 packet in the reply direction of its entry began
# no outbound flow (MTAs do not connect from port 25): the guard now
# drops it, in both fail modes.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
gw_setup
bad_start 10.25.1.30 --mode normal
in_gw sysctl -qw net.ipv4.ip_early_demux=0 || fail "sysctl ip_early_demux"
gw_start "listen = 0.0.0.0:$MXG_PORT
listen_mode = tproxy
fail_mode = open
client_timeout = 3s"
# the MX counts every packet from the MTA's own address (mxguard's
# upstream leaves from the gateway's, 10.25.1.254)
in_rcv iptables -I INPUT -s 10.25.2.1 -p tcp --dport 25 || fail "iptables count"
from_mta() { in_rcv iptables -L INPUT -v -n -x | awk '/ 10\.25\.2\.1 / { print $1 }'; }

bg "$SND" "$T/mta.out" python3 "$LIBDIR/heldmta.py" 10.25.1.30 "$T/ready" "$T/go" PICKUP-MARKER 8
MTA_PID=$BG_PID
wait_for 15 "the MTA's session to reach EHLO" test -s "$T/ready"
CPORT=$(cat "$T/ready")
assert "mxguard took the session" grep -qE "event=connect client=10\.25\.2\.1:$CPORT dst=10\.25\.1\.30:25" "$MXLOG"
in_gw conntrack -D -p tcp --orig-port-src "$CPORT" --orig-port-dst 25 >&2 ||
	fail "could not delete the session's conntrack entry"
# mxguard's 421 at client_timeout: the MTA's kernel acknowledges it
wait_log "$MXLOG" "event=close .*client=10\.25\.2\.1:$CPORT" 10
_picked_up() { in_gw conntrack -L -p tcp --orig-port-src 25 --orig-port-dst "$CPORT" 2>/dev/null | grep -q .; }
wait_for 5 "the flow picked up from mxguard's side" _picked_up
in_gw conntrack -L -p tcp --orig-port-src 25 --orig-port-dst "$CPORT" >&2 2>/dev/null
touch "$T/go"
_mta_done() { ! kill -0 "$MTA_PID" 2>/dev/null; }
wait_for 15 "the MTA to finish" _mta_done
cat "$T/mta.out" >&2
N=$(from_mta)
log "packets from the MTA's own address at the MX: ${N:-?}"
assert "no packet of the MTA's reached the MX (saw ${N:-?})" [ "${N:-x}" = 0 ]
GD=$(in_gw iptables -L MXGUARD_GUARD -v -n -x | awk '/ctdir REPLY/ { print $1 }')
log "reply-direction packets dropped by the guard: ${GD:-?}"
assert "the guard dropped them" [ "${GD:-0}" -gt 0 ]
pass "a flow picked up from mxguard's side is dropped, never sent to the MX"
