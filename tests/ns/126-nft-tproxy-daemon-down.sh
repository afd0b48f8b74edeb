#!/bin/bash
# 126: gateway mode, TPROXY, rules_backend = nftables, steering = none,
# fail_mode = closed: with mxguard stopped and its rules left in (what
# `rules stop` does with fail_mode = closed, and `rules boot` before the
# daemon starts), an MTA's port-25 flow never reaches the MX.
#   [SND 10.25.2.1] -- [GW 10.25.2.254 | 10.25.1.254] -- [RCV 10.25.1.30]
# iptables' TPROXY target drops a packet for which it finds no
# transparent listener; nft's tproxy statement does not: its rule just
# does not match (NFT_BREAK) and the chain goes on.  This set has no
# guard after it (TPROXY takes every port-25 packet while mxguard
# listens), so before the fix the MTA's SYN was forwarded and the MX
# answered it: the MTA's mail went out direct while fail_mode = closed
# promised that none would.  Now the steering chain drops what its
# tproxy did not take.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
gw_setup
bad_start 10.25.1.30 --mode normal
# the MX counts every packet from the MTA's own address (mxguard's
# upstream leaves from the gateway's, 10.25.1.254)
in_rcv iptables -I INPUT -s 10.25.2.1 -p tcp --dport 25 || fail "iptables count"
from_mta() { in_rcv iptables -L INPUT -v -n -x | awk '/ 10\.25\.2\.1 / { print $1 }'; }
greet() { in_snd timeout 8 /usr/bin/python3 "$LIBDIR/tcpgreet.py" 10.25.1.30 25; }

gw_start "listen_mode = tproxy
rules_backend = nftables
steering = none
fail_mode = closed"
out=$(greet)
assert "with mxguard running the MTA is answered (got: $out)" [ "${out%% *}" = greeting ]
assert "through mxguard" grep -qE "event=connect client=10\.25\.2\.1:[0-9]+ dst=10\.25\.1\.30:25" "$MXLOG"
assert "the MX saw nothing from the MTA's own address" [ "$(from_mta)" = 0 ]

mxg_stop
in_gw "$MXGUARD" -c "$T/gw.conf" rules stop >&2 || fail "rules stop"
assert "rules stop left the set in (fail_mode = closed)" \
	bash -c "ip netns exec '$GW' nft list table inet mxguard | grep -q tproxy"
out=$(greet)
N=$(from_mta)
log "with mxguard stopped: ${out:-no answer}; packets from the MTA at the MX: ${N:-?}"
assert "no packet of the MTA's reached the MX with mxguard down (saw ${N:-?})" [ "${N:-x}" = 0 ]
assert "the MTA got no greeting (got: $out)" [ "${out%% *}" != greeting ]
pass "nft TPROXY with no listener drops the flow, never forwards it to the MX"
