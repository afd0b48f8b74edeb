#!/bin/bash
# 108: with rules_backend = nftables, mxguard's guard leaves packets of
# other protocols alone.  Every packet of the host goes through the nft
# guard chain (there is no jump with "-p tcp --dport 25" as in iptables),
# and its first rule, "tcp dport != 25 return", matches TCP only (nft
# adds "meta l4proto tcp" to a tcp expression): a UDP datagram or an ICMP
# message went on to "ct state invalid,untracked drop".  So a host whose
# DNS traffic is NOTRACKed (common on a busy resolver, for speed) lost it
# all once mxguard's rules were in (before the fix sendto() failed with
# EPERM), and with it mxguard's own MX, MTA-STS and DANE lookups.  Now the
# guard returns for anything but TCP first.  Local mode, steering = none
# (this kernel has no nft queue expression); the guard chain is the same
# with steering.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
mxg_start "rules_backend = nftables
rules_mode = local
fail_mode = closed"
assert "the nftables guard is in" bash -c "ip netns exec '$SND' nft list chain inet mxguard guard | grep -q 'ct state invalid,untracked drop'"

# a raw-table NOTRACK rule of the host's for UDP port 5353
in_snd nft -f - <<'NFT' || fail "nft notrack table"
table inet mxgtest_raw {
	chain out {
		type filter hook output priority raw; policy accept;
		udp dport 5353 notrack
	}
}
NFT
bg "$RCV" "$T/udp.out" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.25.1.2", 5353))
open(sys.argv[1], "w").close()
d, a = s.recvfrom(100)
print("got", d.decode())' "$T/udp-ready"
wait_for 10 "the UDP listener" test -e "$T/udp-ready"
in_snd python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"UNTRACKED-UDP", ("10.25.1.2", 5353))' 2>"$T/udp-send.err"
cat "$T/udp-send.err" >&2
assert "the untracked UDP datagram was sent (no EPERM)" lacks "Operation not permitted" cat "$T/udp-send.err"
wait_for 5 "the datagram at the receiver" grep -q "got UNTRACKED-UDP" "$T/udp.out"
in_snd nft delete table inet mxgtest_raw
pass "the nftables guard drops no untracked packet of another protocol"
