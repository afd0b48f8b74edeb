#!/bin/bash
# 132: local mode, fail_mode = closed, a rule of the host's that DNATs its
# own address's port 25 onwards in nat OUTPUT (Docker publishing a
# container's port 25: -A OUTPUT -d OWN -p tcp --dport 25 -j DNAT --to
# CONTAINER:25): a connection to the host's own address reaches the
# forwarded server, the daemon up or down, and mxguard neither queues nor
# relays it.  The suspicion was that the guard would see the rerouted
# flow unmarked and refuse it.  It cannot: every chain of ours is entered
# with ! -o lo (oifname "lo" return), and the output device netfilter
# matches is the one of the route the packet had when the OUTPUT hook
# began, lo for one of the host's own addresses; nat's reroute after the
# DNAT changes the packet's route, not the hook's device, for the guard
# (filter, after nat) as for the steering chain.  The control: with the
# daemon down, a connection to the MX's own address is refused (by the
# guard; with steering = none by the REDIRECT to no listener), so the set
# in place would have refused the flow had it seen it.  iptables with
# NFQUEUE steering, nftables with steering = none (nft's queue needs
# CONFIG_NFT_QUEUE).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup

FWD_PY='
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.1.2", 25)); s.listen(8)
while True:
    c, a = s.accept()
    c.sendall(b"220 fwd.test ESMTP\r\n"); c.close()'
bg "$RCV" "$T/fwd-srv.log" python3 -c "$FWD_PY"
wait_port "$RCV" 10.25.1.2 25
in_snd iptables -t nat -A OUTPUT -d 10.25.1.1 -p tcp --dport 25 \
	-j DNAT --to-destination 10.25.1.2:25 || fail "the host's DNAT"

banner() {	# ADDR: the first line the MTA host reads from ADDR:25
	in_snd timeout 8 python3 -c '
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], 25), timeout=5)
    print(c.makefile("rb").readline().decode().strip())
except Exception as e:
    print("error", type(e).__name__, e)' "$1"
}

for conf in "rules_backend = iptables" "rules_backend = nftables
steering = none"; do
	what=${conf//$'\n'/, }
	NFQ_CONF="$conf
fail_mode = closed"
	if [[ "$conf" == *none* ]]; then
		MXG_EXTRA_CONF="$NFQ_CONF
rules_mode = local" mxg_start
	else
		nfq_start
	fi
	b=$(banner 10.25.1.1)
	log "$what, daemon up: own address: \"$b\""
	assert "$what, daemon up: the forwarded server answered" [ "$b" = "220 fwd.test ESMTP" ]
	mxg_kill
	b=$(banner 10.25.1.1)
	log "$what, daemon down: own address: \"$b\""
	assert "$what, daemon down: the forwarded server answered" [ "$b" = "220 fwd.test ESMTP" ]
	b=$(banner 10.25.1.2)
	log "$what, daemon down: the MX's address: \"$b\""
	assert "$what, daemon down: the MX's address refused (the set acts on it)" \
		bash -c "[[ '$b' == 'error ConnectionRefusedError'* ]]"
	assert "$what: mxguard relayed nothing to either" \
		[ "$(mx_count "event=connect ")" = 0 ]
	assert "$what: no verdict for either" \
		[ "$(mx_count "event=nfq-verdict ")" = 0 ]
	mxg_ctl rules remove >"$T/rm.log" 2>&1 || fail "rules remove: $(cat "$T/rm.log")"
done
pass "a DNAT of the host's own port 25 is left alone, the daemon up or down"
