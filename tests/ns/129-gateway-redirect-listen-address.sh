#!/bin/bash
# 129: gateway mode under REDIRECT, listen naming a specific address (no
# wildcard) that is not the first address of the interface a flow comes
# in on: the flow must reach mxguard, never whoever binds divert_port on
# that first address.
#   [SND 10.25.2.1] -- [gw0 10.25.2.254, 10.25.2.253 GW 10.25.1.254] -- [RCV 10.25.1.2]
# mxguard listens on 10.25.2.253:10025 only.  REDIRECT sends a flow to the
# first address of its inbound interface, 10.25.2.254, at divert_port:
# there an unprivileged process (nobody, 10025 is above
# ip_unprivileged_port_start) listens, as it may, for mxguard holds only
# the other address.  Before, the inside host's mail went to that process
# (no warning at load, no drop); now the rules DNAT such a family to the
# listen address, and mxguard takes the flow.  Each backend, with NFQUEUE
# steering and without.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
gw_setup

in_gw ip addr add 10.25.2.253/24 dev gw0 || fail "second inside address"
# the MX: a greeting, and the peers it saw
MX_PY='
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.1.2", 25)); s.listen(8)
while True:
    c, a = s.accept()
    with open(sys.argv[1], "a") as f: f.write(a[0] + "\n")
    c.sendall(b"220 mx.test ESMTP\r\n"); c.close()'
bg "$RCV" "$T/mx-srv.log" python3 -c "$MX_PY" "$T/mx-peers"
wait_port "$RCV" 10.25.1.2 25
# the local user's listener on REDIRECT's target
# (its peers on its stdout, which the harness opened: nobody writes no
# file of $T)
USER_PY='
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(); s.bind(("10.25.2.254", int(sys.argv[1]))); s.listen(8)
while True:
    c, a = s.accept()
    print(a[0], flush=True)
    c.sendall(b"220 not-mxguard ESMTP\r\n"); c.close()'
bg "$GW" "$T/user-srv.log" python3 -c "$USER_PY" "$MXG_PORT"
wait_port "$GW" 10.25.2.254 "$MXG_PORT"
user_peers() { grep -cx "10\.25\.2\.1" "$T/user-srv.log" || true; }

banner() {	# the first line SND reads from the MX's port 25
	in_snd timeout 8 python3 -c '
import socket
c = socket.create_connection(("10.25.1.2", 25), timeout=6)
print(c.makefile("rb").readline().decode().strip())'
}

for mode in "iptables nfqueue" "iptables none" "nftables none"; do
	set -- $mode
	what="$1, steering = $2"
	before=$(user_peers)
	gw_start "rules_backend = $1
listen = 10.25.2.253:$MXG_PORT
listen_mode = redirect
steering = $2
fail_mode = closed" "$1-$2"
	b=$(banner 2>&1 | tail -n 1) || true
	log "$what: banner \"$b\", the local user's listener saw the inside host $(($(user_peers) - before)) time(s)"
	assert "$what: the local user's listener saw no one" [ "$(user_peers)" = "$before" ]
	assert "$what: mxguard took the flow" \
		[ "$(mx_count "event=connect client=10\.25\.2\.1:.* dst=10\.25\.1\.2:25")" -ge 1 ]
	kill -TERM "$MXG_PID"
	wait_for 10 "mxguard exit" bash -c "! kill -0 $MXG_PID 2>/dev/null"
	MXG_PID=
	in_gw "$MXGUARD" -c "$T/gw.conf" rules remove >/dev/null 2>&1 ||
		fail "$what: rules remove"
done
pass "a specific listen address takes the gateway's diverted flows"
