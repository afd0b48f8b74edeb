#!/bin/bash
# 107: gateway mode, fail_mode = open, daemon up: an MTA's SYN that
# conntrack files under an entry an outside host opened never goes around
# mxguard.
#   [SND 10.25.2.1] -- [GW 10.25.2.254 | 10.25.1.254] -- [RCV 10.25.1.2]
# An outside host (here the MX itself, or anyone who can send with its
# address) sends a SYN from MX:25 to MTA:P through the gateway; it comes in
# on the outside interface (bypass_interfaces: none of mxguard's chains
# act on it) and the MTA host drops it silently (a host firewall).  The
# gateway's conntrack keeps the entry (SYN_SENT, 2 min) with connmark 0.
# The MTA's own SYN from P to MX:25 is that entry's reply direction:
# ESTABLISHED, not NEW, so never queued and never diverted (nat sees a
# connection's first packet only), and with fail_mode = open nothing
# refused it: before the fix the MX got the MTA's connection directly, in
# cleartext.  The guard (FORWARD) now drops a SYN that is not NEW; the
# MTA's connect fails (the mail stays queued) or, once the entry is gone,
# starts a NEW flow that is decided as any other.  (The reply-direction
# rule, ns 109, drops this SYN too.)
# Part 2, an MTA's SYN on an old entry of its own, in its original
# direction: a connection that went direct while the daemon was down
# (fail_mode = open: the queue had no listener) and that the MX reset
# stays in CLOSE for 10 s; the MTA's next SYN from the same port, the
# daemon up again, is filed under it (conntrack reopens an entry on a SYN
# only after a FIN, or a reset from the same side): not NEW, never queued,
# it kept the old flow's way, direct.  Dropped now until the entry is gone.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
gw_setup

# the MX: records each peer's address and port, answers a banner
MX_PY='
import socket, struct, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.1.2", 25)); s.listen(8)
while True:
    c, a = s.accept()
    with open(sys.argv[1], "a") as f: f.write("%s:%d\n" % a)
    c.sendall(b"220 mx.test ESMTP\r\n")
    if a[1] == 40003:	# part 2: the MX resets this one
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()'
bg "$RCV" "$T/mx.log" python3 -c "$MX_PY" "$T/mx-peers"
wait_port "$RCV" 10.25.1.2 25

gw_start "listen_mode = redirect
fail_mode = open"

# connect_from PORT [until-reset]: the MTA connects to the MX from PORT
# (3 s); prints the first line it reads, or "failed".  With until-reset it
# waits for the MX's reset, and prints "banner, reset" or "reset" (the
# reset came before the banner was read: the kernel then drops it):
# closing first would send a FIN, and after a FIN from the MTA's side
# conntrack reopens the entry on its next SYN as NEW, which part 2 must
# not see (a race the MX's close could lose on a loaded machine)
connect_from() {
	in_snd timeout 6 python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.2.1", int(sys.argv[1]))); s.settimeout(3)
until_reset = len(sys.argv) > 2
try:
    try:
        # with a timeout, connect() polls and then reads SO_ERROR: an
        # MX that resets at once (banner, RST) can have its reset read
        # there, before any byte of ours went: a reset too
        s.connect(("10.25.1.2", 25)); f = s.makefile("rb")
        line = f.readline().decode().strip() or "closed"
    except ConnectionResetError:
        if not until_reset:
            raise
        print("reset"); sys.exit(0)
    if until_reset:
        try:
            while f.read(1): pass
            line += ", then a FIN, not a reset"
        except ConnectionResetError:
            line = "banner, reset"
    print(line)
except OSError as e:
    print("failed:", e)' "$@"
}

# control: a plain connection is intercepted (mxguard takes it)
P1=40001
r=$(connect_from $P1)
log "control connection from port $P1: $r"
wait_log "$MXLOG" "event=connect client=10\.25\.2\.1:$P1 dst=10\.25\.1\.2:25" 10
assert "control: the MX never saw the MTA's own address" lacks "^10\.25\.2\.1:" cat "$T/mx-peers"

# the attack: a SYN from MX:25 to MTA:P2, dropped by the MTA host
P2=40002
in_snd iptables -A INPUT -p tcp --syn --dport $P2 -j DROP || fail "iptables on the MTA"
in_rcv python3 - 10.25.1.2 10.25.2.1 $P2 <<'PY' || fail "raw SYN"
import socket, struct, sys
src, dst, dport = sys.argv[1], sys.argv[2], int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
tcp = struct.pack("!HHIIBBHHH", 25, dport, 12345678, 0, 5 << 4, 0x02, 64240, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.sendto(tcp, (dst, 0))
PY
_dropped_at_mta() { in_snd iptables -L INPUT -v -n -x | awk -v p="dpt:$P2" '$0 ~ p { exit !($1 > 0) }'; }
wait_for 5 "the outside SYN to reach the MTA host" _dropped_at_mta
r=$(connect_from $P2)
log "MTA connection from port $P2 after the outside SYN: $r"
assert "the MX never saw the MTA's own address" lacks "^10\.25\.2\.1:" cat "$T/mx-peers"
assert "the MTA got no banner from the MX direct" [ "$r" != "220 mx.test ESMTP" ]
# either guard rule may take it: the reply direction's comes first
guard_drops() { in_gw iptables -L MXGUARD_GUARD -v -n -x | awk -v re="$1" '$0 ~ re { n += $1 } END { print n + 0 }'; }
GD=$(guard_drops 'ctdir REPLY|!NEW|! ctstate NEW')
log "SYNs dropped by the guard: $GD"
assert "the guard dropped the MTA's SYN" [ "$GD" -gt 0 ]

# part 2: direct while the daemon is down, reset by the MX, the port
# drawn again with the daemon up
kill -TERM "$MXG_PID"; wait_for 10 "mxguard exit" bash -c "! kill -0 $MXG_PID 2>/dev/null"
# the harness checks the last daemon's log; this one's here
assert "no sanitizer report from the first daemon" lacks 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ' cat "$MXLOG"
P3=40003
r=$(connect_from $P3 until-reset)
log "MTA connection from port $P3 with the daemon down (fail-open): $r"
assert "fail-open: the MTA went direct" grep -qx "10\.25\.2\.1:$P3" "$T/mx-peers"
assert "fail-open: the MX reset it, the MTA sent no FIN" [ "$r" = "banner, reset" -o "$r" = "reset" ]
_closed() { in_gw conntrack -L -p tcp --orig-port-src $P3 --orig-port-dst 25 2>/dev/null | grep -q CLOSE; }
wait_for 5 "the MX's reset to close the entry" _closed
bg "$GW" "$MXLOG.2" "$MXGUARD" -c "$T/gw.conf" run
MXG_PID=$BG_PID
MXLOG=$MXLOG.2
wait_for 15 "mxguard (pid $MXG_PID) started again" _mxg_listening
wait_log "$MXLOG" "event=nfq-open" 10
before=$(guard_drops '!NEW|! ctstate NEW')
r=$(connect_from $P3)
log "MTA connection from port $P3 again, the daemon up, the entry in CLOSE: $r"
assert "the MX saw the port once, while the daemon was down" [ "$(grep -cx "10\.25\.2\.1:$P3" "$T/mx-peers")" = 1 ]
assert "the guard dropped the SYN on the old entry" [ "$(guard_drops '!NEW|! ctstate NEW')" -gt "$before" ]
pass "a SYN filed under an existing entry is dropped, not sent direct"
