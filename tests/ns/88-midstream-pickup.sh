#!/bin/bash
# 88: a packet that conntrack picks up mid-stream never goes around
# mxguard.  Local mode, NFQUEUE steering, mxguard's own rule set.  An MTA
# session is diverted to mxguard (a REDIRECT entry); then its conntrack
# entry goes (here `conntrack -D`; on a gateway pair, a failover: the
# backup has no entry for a flow the primary carried).  The MTA's next
# segment is no SYN, so it is never queued, and with the entry gone it is
# not redirected either: conntrack files it as a NEW flow (nf_conntrack_
# tcp_loose, on by default), and before the fix nothing stopped it from
# going to the MX direct, in cleartext.  The guard now drops a port-25
# packet that conntrack files as NEW without a SYN (and one it cannot or
# may not track).  The MX must never see the MTA's bytes; the session is
# refused or times out, and the MTA retries (mail stays queued).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
nfq_start
# the MX's side counts every packet that carries the marker
in_rcv iptables -I INPUT -p tcp --dport 25 -m string --algo bm \
	--string MIDSTREAM-MARKER || fail "iptables string match"
marker_at_mx() { in_rcv iptables -L INPUT -v -n -x | awk '/MIDSTREAM-MARKER/ { print $1 }'; }


bg "$SND" "$T/mta.out" python3 "$LIBDIR/heldmta.py" 10.25.1.30 "$T/ready" "$T/go" MIDSTREAM-MARKER
MTA_PID=$BG_PID
wait_for 15 "the MTA's session to reach EHLO" test -s "$T/ready"
CPORT=$(cat "$T/ready")
assert "mxguard took the session" grep -qE "event=connect client=$SND_IP:$CPORT dst=10\.25\.1\.30:25" "$MXLOG"
in_snd conntrack -L -p tcp --sport "$CPORT" --dport 25 >&2 2>/dev/null
in_snd conntrack -D -p tcp --orig-port-src "$CPORT" --orig-port-dst 25 >&2 ||
	fail "could not delete the session's conntrack entry"
touch "$T/go"
_mta_done() { ! kill -0 "$MTA_PID" 2>/dev/null; }
wait_for 30 "the MTA to finish" _mta_done
cat "$T/mta.out" >&2
in_snd conntrack -L -p tcp --sport "$CPORT" --dport 25 >&2 2>/dev/null
N=$(marker_at_mx)
log "packets with the marker at the MX: ${N:-?}"
assert "the MTA's segment picked up mid-stream never reached the MX (saw ${N:-?})" [ "${N:-x}" = 0 ]
assert "the guard is in place" bash -c "ip netns exec '$SND' iptables -S MXGUARD_GUARD | grep -q -- '! --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j DROP'"
pass "a packet picked up mid-stream is dropped, never sent to the MX"
