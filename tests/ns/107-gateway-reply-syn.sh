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
# starts a NEW flow that is decided as any other.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
GW="$NS_PREFIX-gw"
ip netns add "$GW" || fail "ip netns add $GW"
_NS_LIST+=("$GW")
ip -n "$GW" link set lo up
ns_resolver "$GW"
ip -n "$SND" link del snd0
ip link add snd0 netns "$SND" type veth peer name gw0 netns "$GW"
ip link add gw1 netns "$GW" type veth peer name rcv0 netns "$RCV"
ip -n "$SND" addr add 10.25.2.1/24 dev snd0
ip -n "$GW" addr add 10.25.2.254/24 dev gw0
ip -n "$GW" addr add 10.25.1.254/24 dev gw1
ip -n "$RCV" addr add 10.25.1.2/24 dev rcv0
for l in "$SND snd0" "$GW gw0" "$GW gw1" "$RCV rcv0"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$SND" route add default via 10.25.2.254
ip -n "$RCV" route add default via 10.25.1.254
ip netns exec "$GW" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
in_gw() { ip netns exec "$GW" "$@"; }

# the MX: records each peer's address and port, answers a banner
MX_PY='
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.1.2", 25)); s.listen(8)
while True:
    c, a = s.accept()
    with open(sys.argv[1], "a") as f: f.write("%s:%d\n" % a)
    c.sendall(b"220 mx.test ESMTP\r\n"); c.close()'
bg "$RCV" "$T/mx.log" python3 -c "$MX_PY" "$T/mx-peers"
wait_port "$RCV" 10.25.1.2 25

mkdir -p "$T/mxstate"
cat >"$T/gw.conf" <<EOF2
listen = 0.0.0.0:$MXG_PORT
listen_mode = redirect
rules_mode = gateway
steering = nfqueue
fail_mode = open
upstream_mark = $MXG_MARK
user =
state_dir = $T/mxstate
control_socket = $T/gw.sock
log_level = debug
drain_timeout = 2s
bypass_interfaces = gw1
EOF2
in_gw "$MXGUARD" -c "$T/gw.conf" rules install >"$T/gw-rules.log" 2>&1 ||
	fail "rules install: $(cat "$T/gw-rules.log")"
MXLOG=$T/gw-mxguard.log
bg "$GW" "$MXLOG" "$MXGUARD" -c "$T/gw.conf" run
MXG_PID=$BG_PID
wait_for 15 "mxguard (pid $MXG_PID) started in $GW" _mxg_listening
wait_log "$MXLOG" "event=nfq-open" 10

# connect_from PORT: the MTA connects to the MX from PORT (3 s); prints
# the first line it reads, or "failed"
connect_from() {
	in_snd timeout 6 python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.2.1", int(sys.argv[1]))); s.settimeout(3)
try:
    s.connect(("10.25.1.2", 25)); print(s.makefile("rb").readline().decode().strip() or "closed")
except OSError as e:
    print("failed:", e)' "$1"
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
GD=$(in_gw iptables -L MXGUARD_GUARD -v -n -x | awk '/ctstate !NEW|! ctstate NEW/ { print $1 }')
log "non-NEW SYNs dropped by the guard: ${GD:-?}"
assert "the guard dropped the MTA's SYN" [ "${GD:-0}" -gt 0 ]
pass "a SYN filed under an entry an outside host opened is dropped, not sent direct"
