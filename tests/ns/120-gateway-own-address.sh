#!/bin/bash
# 120: gateway mode, a port-25 flow from the inside to one of the
# gateway's own addresses is not outbound mail: it is left alone, not
# queued, diverted or relayed.
#   [SND 10.25.2.1] -- [GW 10.25.2.254 | 10.25.1.254] -- [RCV 10.25.1.x]
# A listener on the gateway's own inside address (a local MTA, the
# smarthost of the hosts behind it) must see the inside host's address,
# with its own banner, and mxguard no session.  Before, PREROUTING
# diverted the flow like any other: mxguard connected to the gateway's
# own address from the gateway itself, so whatever listens there took an
# inside host for a local client (mynetworks, a host firewall's INPUT
# rules that keep the inside out of the gateway: neither saw the inside
# host), and under REDIRECT a SYN sent to 127.0.0.1:25 through the
# gateway had its destination rewritten before the kernel's martian
# check, and mxguard relayed it to a loopback-only listener.  So for a
# SYN sent to 0.0.0.0:25 (connect() to 0.0.0.0 reaches the loopback),
# which no rule can tell from a broadcast: mxguard refuses that original
# destination in gateway mode (reason=local-destination).  And a port
# forward of the gateway's own address to a server behind it, reached
# from the inside (hairpin NAT): that server answers, with the inside
# host's address; before, the fail-closed guard refused it.  Each backend,
# REDIRECT and TPROXY, with and without steering.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
gw_setup

OWN_PY='
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.2.254", 25)); s.listen(8)
while True:
    c, a = s.accept()
    with open(sys.argv[1], "a") as f: f.write(a[0] + "\n")
    c.sendall(b"220 gw-own.test ESMTP\r\n"); c.close()'
bg "$GW" "$T/own-srv.log" python3 -c "$OWN_PY" "$T/own-peers"
wait_port "$GW" 10.25.2.254 25
own_banner() {	# the first line the inside host reads from 10.25.2.254:25
	in_snd timeout 5 python3 -c '
import socket
c = socket.create_connection(("10.25.2.254", 25), timeout=4)
print(c.makefile("rb").readline().decode().strip())'
}

# A loopback-only listener on the gateway, and an inside host that sends
# its SYN for 127.0.0.1:25 to the gateway: SND connects to 198.51.100.1
# (routed to the gateway) and rewrites that address to 127.0.0.1 on the
# way out and back on the way in (stateless, around its own conntrack).
LO_PY=${OWN_PY//10.25.2.254/127.0.0.1}
bg "$GW" "$T/lo-srv.log" python3 -c "${LO_PY//gw-own/gw-loopback}" "$T/lo-peers"
wait_port "$GW" 127.0.0.1 25
in_snd nft -f - <<'NFT' || fail "nft in the sender"
table ip lospoof {
	chain out { type filter hook postrouting priority 500;
		ip daddr 198.51.100.1 tcp dport 25 ip daddr set 127.0.0.1; }
	chain in { type filter hook prerouting priority -400;
		ip saddr 127.0.0.1 tcp sport 25 ip saddr set 198.51.100.1; }
	chain out0 { type filter hook postrouting priority 500;
		ip daddr 198.51.100.2 tcp dport 25 ip daddr set 0.0.0.0; }
	chain in0 { type filter hook prerouting priority -400;
		ip saddr 0.0.0.0 tcp sport 25 ip saddr set 198.51.100.2; }
}
NFT
# A port forward of the host's own (hairpin NAT): the gateway's outside
# address 10.25.1.254:25 DNAT'd to a mail server behind it (10.25.1.2),
# reached from the inside.  mangle and nat see the gateway's own address
# and leave the flow alone; after the DNAT it is forwarded, and the
# closed guard in FORWARD refused it (a reset, every time, the daemon
# up), so the inside MTAs' mail to that server never went.
FWD_PY=${OWN_PY//10.25.2.254/10.25.1.2}
bg "$RCV" "$T/fwd-srv.log" python3 -c "${FWD_PY//gw-own/rcv-fwd}" "$T/fwd-peers"
wait_port "$RCV" 10.25.1.2 25
in_gw nft -f - <<'NFT' || fail "nft port forward in the gateway"
table ip portfwd {
	chain pre { type nat hook prerouting priority dstnat;
		ip daddr 10.25.1.254 tcp dport 25 dnat to 10.25.1.2:25; }
}
NFT
fwd_banner() {	# the first line the inside host reads from 10.25.1.254:25
	in_snd timeout 5 python3 -c '
import socket
c = socket.create_connection(("10.25.1.254", 25), timeout=4)
print(c.makefile("rb").readline().decode().strip())'
}
lo_banner() {	# ADDR: 198.51.100.1 (127.0.0.1) or .2 (0.0.0.0)
	in_snd timeout 3 python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], 25), timeout=2)
print(c.makefile("rb").readline().decode().strip())' "$1"
}

for backend in iptables nftables; do
	for mode in "redirect nfqueue" "tproxy nfqueue" "redirect none" "tproxy none"; do
		set -- $mode
		# this kernel has no nft queue expression (ns 105): nftables
		# with steering = none only
		[ "$backend/$2" = nftables/nfqueue ] && continue
		what="$backend, listen_mode = $1, steering = $2"
		: >"$T/own-peers"
		gw_start "rules_backend = $backend
listen_mode = $1
steering = $2
fail_mode = closed" "$backend-$1-$2"
		for a in "198.51.100.1 127.0.0.1" "198.51.100.2 0.0.0.0"; do
			read -r via dst <<<"$a"
			: >"$T/lo-peers"
			b=$(lo_banner "$via" 2>&1 | tail -n 1) || true
			log "$what: $dst:25 through the gateway: \"$b\", peer $(cat "$T/lo-peers")"
			assert "$what, $dst: the loopback-only listener saw no one" [ ! -s "$T/lo-peers" ]
			assert "$what: mxguard relayed nothing to $dst" \
				[ "$(mx_count "event=connect .*dst=${dst//./\\.}:25")" = 0 ]
		done
		# REDIRECT: nat rewrote 0.0.0.0 before the martian check (the
		# rules cannot tell it from a broadcast), and mxguard refused
		# it; TPROXY: the kernel dropped it
		[ "$1" = redirect ] && assert "$what: 0.0.0.0 refused by mxguard" \
			grep -q "event=refused .*reason=local-destination dst=0\.0\.0\.0:25" "$MXLOG"
		b=$(own_banner) || b="(failed: $?)"
		log "$what: banner \"$b\", peer $(cat "$T/own-peers")"
		assert "$what: the gateway's own listener answered" [ "$b" = "220 gw-own.test ESMTP" ]
		assert "$what: it saw the inside host's address" grep -qx "10\.25\.2\.1" "$T/own-peers"
		assert "$what: mxguard relayed nothing to the gateway itself" \
			[ "$(mx_count "event=connect .*dst=10\.25\.2\.254:25")" = 0 ]
		assert "$what: no verdict for it" \
			[ "$(mx_count "event=nfq-verdict .*dst=10\.25\.2\.254 ")" = 0 ]
		: >"$T/fwd-peers"
		b=$(fwd_banner 2>&1 | tail -n 1) || true
		log "$what: port forward: banner \"$b\", peer $(cat "$T/fwd-peers")"
		assert "$what: the forwarded server answered" [ "$b" = "220 rcv-fwd.test ESMTP" ]
		assert "$what: it saw the inside host's address" grep -qx "10\.25\.2\.1" "$T/fwd-peers"
		assert "$what: mxguard relayed nothing to the forward" \
			[ "$(mx_count "event=connect .*dst=10\.25\.1\.(254|2):25")" = 0 ]
		kill -TERM "$MXG_PID"
		wait_for 10 "mxguard exit" bash -c "! kill -0 $MXG_PID 2>/dev/null"
		MXG_PID=
		in_gw "$MXGUARD" -c "$T/gw.conf" rules remove >/dev/null 2>&1 ||
			fail "$what: rules remove"
	done
done
pass "the gateway's own addresses are not intercepted"
