#!/bin/bash
# 100: mxguard's own upstream connection never comes back to mxguard
# through a diverted MTA connection's stale conntrack entry.  Local mode,
# NFQUEUE steering, mxguard's own rule set.  An MTA session from port P is
# diverted (REDIRECT: the entry is DNAT'd to mxguard's listener), and
# mxguard's side resets it (here `ss -K`): the entry stays in CLOSE state
# for 10 s, and since the reset came from the reply side, a new SYN from P
# in the original direction is filed under it (no reopen).  When mxguard's
# next upstream connection to that MX draws P (the kernel frees it at
# once; here a marked socket binds it, as mxguard's would carry the mark),
# its SYN is exempt from rule 0 (our own mark) and nat is not consulted
# for it (not NEW): the old DNAT binding took it into mxguard's own
# listener, which relayed it as a new session (a loop: mxguard talked to
# itself instead of the MX).  Now a SYN of our own on a DNAT'd entry is
# dropped; the connect resends it, and once the entry has expired it is
# NEW and goes to the MX as our own.  The mirror of ns 81.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
nfq_start

bg "$SND" "$T/mta.out" python3 "$LIBDIR/heldmta.py" 10.25.1.30 "$T/ready" "$T/go" OWN-SYN-MARKER
MTA_PID=$BG_PID
wait_for 15 "the MTA's session to reach EHLO" test -s "$T/ready"
P=$(cat "$T/ready")
assert "mxguard took the MTA's session from port $P" grep -qE "event=connect client=$SND_IP:$P dst=10\.25\.1\.30:25" "$MXLOG"
# mxguard's side of it resets (reply direction)
in_snd ss -K src "127.0.0.1:$MXG_PORT" dport = ":$P" >&2 || fail "ss -K"
touch "$T/go"
_mta_done() { ! kill -0 "$MTA_PID" 2>/dev/null; }
wait_for 15 "the MTA to finish" _mta_done
cat "$T/mta.out" >&2
_entry_close_dnat() {
	in_snd conntrack -L -p tcp --orig-port-src "$P" --orig-port-dst 25 2>/dev/null >"$T/ct.out"
	grep -q "CLOSE " "$T/ct.out"
}
wait_for 5 "the MTA's entry in CLOSE state" _entry_close_dnat
cat "$T/ct.out" >&2

# an upstream connection of mxguard's from P: a socket with the mark
cat >"$T/own.py" <<EOF2
import socket, sys, time
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, $MXG_MARK)
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind(("$SND_IP", $P))
c.settimeout(45)
t0 = time.time()
c.connect(("10.25.1.30", 25))
print("own: connected after %.1f s: %r" % (time.time() - t0, c.recv(200)))
c.sendall(b"QUIT\r\n")
c.recv(200)
c.close()
EOF2
in_snd python3 "$T/own.py" >"$T/own.out" 2>&1
cat "$T/own.out" >&2
assert "the marked connection from $P reached the MX itself" grep -qE "open peer=$SND_IP:$P\$" "$BADLOG"
assert "mxguard never took its own connection (one session from $P only)" \
	[ "$(count_log "$MXLOG" "event=connect client=$SND_IP:$P ")" = 1 ]
pass "a SYN of mxguard's own on a diverted entry waits for it to expire, never loops into mxguard"
