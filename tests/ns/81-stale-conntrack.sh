#!/bin/bash
# 81: a SYN that conntrack files under an old connection never goes around
# mxguard.  Local mode, NFQUEUE steering, mxguard's own rule set.  The MX
# resets mxguard's upstream connection (source port P): the kernel frees P
# at once, but the connection's conntrack entry, whose connmark is BYPASS
# (mxguard's own socket), stays in CLOSE state for 10 s.  An MTA that
# reuses P for its next connection to the same MX sends a SYN that is not
# NEW: the queue and the nat table never see it, and before the fix it
# went direct with the old entry's BYPASS mark.  Now the rule set drops
# such a SYN (unless it is from mxguard's own sockets); the MTA resends
# it, and once the old entry has expired the flow is NEW, queued and
# intercepted.  The MX must never see a second connection from P.
# Second part: the linger after QUIT (io_linger).  After a normal session with a
# TLS server that closes after its 221 (without close_notify), mxguard's
# upstream entry must end closed by FINs (TIME_WAIT), not by a reset:
# mxguard waits for the server's end instead of writing a close_notify
# into a socket the server has closed.
# Third part: the same for a parked leg that gets QUIT when its idle time
# is over.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
# the MX: takes the envelope in cleartext, resets the connection 100
# bytes into DATA
bad_start 10.25.1.30 --mode die --rst --after 100
# no parked legs: every session ends its upstream connection with QUIT
nfq_start "upstream_reuse = no"

# assert_fin_end PORT WHAT: the upstream entry from PORT ends closed by FINs
# (TIME_WAIT, LAST_ACK), not by a reset (CLOSE)
_ct_ended() {
	in_snd conntrack -L -p tcp --sport "$1" --dport 25 2>/dev/null >"$T/ct-$1.out"
	grep -qE "(TIME_WAIT|LAST_ACK|CLOSE) .*sport=$1 dport=25" "$T/ct-$1.out"
}
assert_fin_end() {
	wait_for 5 "the upstream entry of port $1 to close" _ct_ended "$1"
	cat "$T/ct-$1.out" >&2
	assert "$2 ended with FINs, not a reset (not CLOSE)" \
		grep -qE "(TIME_WAIT|LAST_ACK) .*sport=$1 dport=25" "$T/ct-$1.out"
}

cat >"$T/mta.py" <<'EOF'
import smtplib, socket, sys, time
dst, mode = sys.argv[1], sys.argv[2]
if mode == "first":
    # a session through mxguard whose upstream connection the MX resets
    try:
        s = smtplib.SMTP(dst, 25, local_hostname="mta.sender.test", timeout=20)
        s.sendmail("bob@sender.test", ["x@rst.test"], "Subject: t\r\n\r\n" + "x" * 500 + "\r\n")
        s.quit()
        print("first: accepted")
    except (smtplib.SMTPException, OSError) as e:
        print("first: failed:", repr(e))
    sys.exit(0)
# "again PORT": a new connection from the port mxguard's upstream used
port = int(mode.split(":")[1])
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind((sys.argv[3], port))
c.settimeout(45)
t0 = time.time()
c.connect((dst, 25))
greet = c.recv(200)
c.sendall(b"QUIT\r\n")
c.recv(200)
c.close()
print("again: connected after %.1f s: %r" % (time.time() - t0, greet))
EOF

in_snd python3 "$T/mta.py" 10.25.1.30 first >"$T/first.out" 2>&1
cat "$T/first.out" >&2
wait_log "$BADLOG" "died after=" 10
# P: the source port of mxguard's upstream connection, as the MX saw it
P=$(sed -nE "s/^.* open peer=$SND_IP:([0-9]+)$/\1/p" "$BADLOG" | head -n 1)
[ -n "$P" ] || fail "no upstream connection in $BADLOG"
assert "the MX saw mxguard's upstream connection from port $P" [ "$(count_log "$BADLOG" "open peer=$SND_IP:$P\$")" = 1 ]
assert "mxguard relayed the first session (intercepted)" grep -qE "event=connect client=$SND_IP:[0-9]+ dst=10\.25\.1\.30:25" "$MXLOG"
assert "the first session's client port is not P" [ "$(count_log "$MXLOG" "event=connect client=$SND_IP:$P ")" = 0 ]
# the conditions of the escape: the entry is still there, CLOSE, BYPASS
in_snd conntrack -L -p tcp --sport "$P" --dport 25 2>/dev/null >"$T/ct.out"
cat "$T/ct.out" >&2
assert "conntrack still holds P's old connection, CLOSE, mark BYPASS" \
	grep -qE "CLOSE .*sport=$P dport=25 .*mark=$((MXG_MARK))" "$T/ct.out"

in_snd python3 "$T/mta.py" 10.25.1.30 "again:$P" "$SND_IP" >"$T/again.out" 2>&1 ||
	fail "the MTA's second connection failed: $(cat "$T/again.out")"
cat "$T/again.out" >&2
assert "the MTA's SYN from P did not go direct: the MX saw P once only" \
	[ "$(count_log "$BADLOG" "open peer=$SND_IP:$P\$")" = 1 ]
assert "the flow from P was queued and intercepted by mxguard" \
	grep -qE "event=connect client=$SND_IP:$P dst=10\.25\.1\.30:25" "$MXLOG"
assert "mxguard reached the MX for it from another port" \
	[ "$(grep -cE "open peer=$SND_IP:[0-9]+\$" "$BADLOG")" -ge 2 ]
assert "the drop rule counted the SYN(s) it held back" \
	bash -c "ip netns exec '$SND' iptables -t mangle -L MXGUARD_STEER -v -n -x | awk '/DROP/ && \$1 > 0 {f=1} END {exit !f}'"

# linger: a normal TLS session; the server closes after its 221 without
# a close_notify
make_cert ok mx.ok.test
bad_start 10.25.1.31 --mode normal --cert "$T/pki/ok.pem"
in_snd python3 "$T/mta.py" 10.25.1.31 first >"$T/ok.out" 2>&1
cat "$T/ok.out" >&2
assert "the message to the TLS server was accepted" grep -q "first: accepted" "$T/ok.out"
wait_log "$BADLOG" " close$" 10
Q=$(sed -nE "s/^.* open peer=$SND_IP:([0-9]+)$/\1/p" "$BADLOG" | head -n 1)
[ -n "$Q" ] || fail "no upstream connection in $BADLOG"
assert "the upstream session was TLS" grep -qE "recv tls .*QUIT|recv tls QUIT" "$BADLOG"
wait_log "$MXLOG" "event=close client=.* dst=10\.25\.1\.31:25" 10
assert_fin_end "$Q" "mxguard's upstream connection"

# Third part: a parked leg's QUIT.  With leg reuse on, the leg of a
# finished session is parked; when its idle time is over it gets QUIT, and
# mxguard must again wait for the server's close instead of closing at
# once (whose close_notify the server would answer with a reset).
echo "upstream_reuse = yes" >>"$T/mxguard.conf"
echo "upstream_reuse_time = 1s" >>"$T/mxguard.conf"
n_reloaded=$(count_log "$MXLOG" "event=reloaded")
procs=$(count_log "$MXLOG" "event=worker-start ")
[ "$procs" -ge 1 ] || procs=1
kill -HUP "$MXG_PID"
_all_reloaded() { [ "$(count_log "$MXLOG" "event=reloaded")" -ge $((n_reloaded + procs)) ]; }
wait_for 20 "$procs process(es) reloaded" _all_reloaded
n_close=$(count_log "$BADLOG" " close$")
in_snd python3 "$T/mta.py" 10.25.1.31 first >"$T/park.out" 2>&1
cat "$T/park.out" >&2
assert "the message to the TLS server was accepted" grep -q "first: accepted" "$T/park.out"
wait_log "$MXLOG" "event=upstream-parked dst=10\.25\.1\.31:25" 10
R=$(sed -nE "s/^.* open peer=$SND_IP:([0-9]+)$/\1/p" "$BADLOG" | sed -n 2p)
[ -n "$R" ] || fail "no second upstream connection in $BADLOG"
_bad_closed_again() { [ "$(count_log "$BADLOG" " close$")" -gt "$n_close" ]; }
wait_for 10 "the parked leg's QUIT and the server's close" _bad_closed_again
assert_fin_end "$R" "the parked leg, after its QUIT,"
pass "a SYN on a stale BYPASS conntrack entry waits for a NEW flow and is intercepted; QUIT legs, parked or not, wait for the server's close"
