#!/bin/bash
# 101: a reload that takes a destination out of bypass_dst also ends the
# flows to it that the old list let through.  Local mode, NFQUEUE steering
# (where the lists can be reloaded), mxguard's own rule set.  An MTA
# session to 10.25.1.30, listed in bypass_dst, goes direct (connmark
# BYPASS).  The operator takes the address out of the list and reloads:
# before the fix the session went on direct, unprotected, for as long as
# the MTA kept it (Postfix reuses a cached connection for new mail for up
# to 300 s), since its segments are neither SYNs nor NEW and never meet
# the queue again.  Now the reload deletes such flows' conntrack entries:
# the MTA's next segment is picked up mid-stream and dropped by the guard
# (ns 88), never sent to the MX; the MTA retries on a new connection,
# which mxguard intercepts.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
nfq_start "bypass_dst = 10.25.1.30"
in_rcv iptables -I INPUT -p tcp --dport 25 -m string --algo bm \
	--string BYPASS-RELOAD-MARKER || fail "iptables string match"
marker_at_mx() { in_rcv iptables -L INPUT -v -n -x | awk '/BYPASS-RELOAD-MARKER/ { print $1 }'; }

bg "$SND" "$T/mta.out" python3 "$LIBDIR/heldmta.py" 10.25.1.30 "$T/ready" "$T/go" BYPASS-RELOAD-MARKER 40
MTA_PID=$BG_PID
wait_for 15 "the MTA's session to reach EHLO" test -s "$T/ready"
CPORT=$(cat "$T/ready")
assert "the session went direct (bypass_dst)" grep -qE "event=nfq-verdict .*dst=10\.25\.1\.30 verdict=bypass reason=bypass_dst" "$MXLOG"
assert "mxguard did not take it" lacks "event=connect client=$SND_IP:$CPORT " cat "$MXLOG"

sed -i '/^bypass_dst = 10\.25\.1\.30$/d' "$T/mxguard.conf"
assert "bypass_dst is out of the file" lacks '^bypass_dst' cat "$T/mxguard.conf"
kill -HUP "$MXG_PID"
procs=$(count_log "$MXLOG" "event=worker-start ")
[ "$procs" -ge 1 ] || procs=1
_all_reloaded() { [ "$(count_log "$MXLOG" "event=reloaded")" -ge "$procs" ]; }
wait_for 20 "$procs process(es) reloaded" _all_reloaded
wait_log "$MXLOG" "event=nfq-bypass-forgotten flows=1 deleted=1" 10

touch "$T/go"
_mta_done() { ! kill -0 "$MTA_PID" 2>/dev/null; }
wait_for 30 "the MTA to finish" _mta_done
cat "$T/mta.out" >&2
N=$(marker_at_mx)
log "packets with the marker at the MX: ${N:-?}"
assert "the bypassed session's segment after the reload never reached the MX (saw ${N:-?})" [ "${N:-x}" = 0 ]

# a new connection is intercepted now
in_snd python3 -c 'import socket; c = socket.create_connection(("10.25.1.30", 25), timeout=10); print(c.recv(200)); c.close()' >"$T/new.out" 2>&1
cat "$T/new.out" >&2
wait_log "$MXLOG" "event=connect client=$SND_IP:[0-9]+ dst=10\.25\.1\.30:25" 10
pass "a reload that shrinks bypass_dst ends the flows the old list let through"
