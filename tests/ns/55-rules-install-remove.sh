#!/bin/bash
# 55: `mxguard rules install` then `rules remove` leaves iptables-save and
# ip6tables-save output exactly as before (counters aside), in a namespace
# that starts with no tables at all and in one with operator rules in the
# same tables; a second install changes nothing; every mode (local and
# gateway, fail-open and fail-closed, REDIRECT and TPROXY, steering none)
# and a switch between modes; the nftables backend (steering = none, which
# this kernel supports) restores `nft list ruleset`; the nftables set with
# NFQUEUE fails cleanly here (no nft queue expression in this kernel).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
ip -n "$SND" -6 addr add fd25::1/64 dev snd0 nodad

conf() {	# conf NAME lines...: a config file $T/NAME.conf
	local n=$1; shift
	printf '%s\n' "user =" "state_dir = $T/st" "$@" >"$T/$n.conf"
}
mx() { local n=$1; shift; in_snd "$MXGUARD" -c "$T/$n.conf" "$@"; }
nft_snapshot() { in_snd nft list ruleset; }

conf local-closed "fail_mode = closed"
conf local-open "fail_mode = open"
conf gw-redirect "rules_mode = gateway" "fail_mode = closed"
conf gw-tproxy "rules_mode = gateway" "listen_mode = tproxy" "fail_mode = open"
conf none "steering = none" "bypass_dst = 192.0.2.0/24 2001:db8::/32"
conf nft-none "rules_backend = nftables" "steering = none"
conf nft-nfq "rules_backend = nftables"

check_cycle() {	# NAME: install twice, remove twice, compare
	local n=$1 before after i1 i2
	before=$(ipt_snapshot); rb=$(in_snd ip rule; in_snd ip -6 rule)
	mx "$n" rules install || fail "$n: install"
	i1=$(ipt_snapshot)
	assert "$n: install added mxguard chains" grep -q MXGUARD_ <<<"$i1"
	assert "$n: rules show says installed" mx "$n" rules show >/dev/null
	mx "$n" rules install || fail "$n: second install"
	i2=$(ipt_snapshot)
	assert "$n: second install changes nothing" [ "$i1" = "$i2" ]
	mx "$n" rules remove || fail "$n: remove"
	after=$(ipt_snapshot)
	if [ "$before" != "$after" ]; then diff <(echo "$before") <(echo "$after") >&2; fi
	assert "$n: remove restores iptables-save/ip6tables-save" [ "$before" = "$after" ]
	assert "$n: remove restores ip rules" [ "$rb" = "$(in_snd ip rule; in_snd ip -6 rule)" ]
	mx "$n" rules remove || fail "$n: second remove"
	assert "$n: second remove changes nothing" [ "$before" = "$(ipt_snapshot)" ]
	# exit 3 is "not installed"; 1 (an error) was a pass too
	assert "$n: rules show says not installed (exit 3)" \
		bash -c "ip netns exec $SND $MXGUARD -c $T/$n.conf rules show >/dev/null; [ \$? = 3 ]"
}

assert "fresh namespace: no tables" [ -z "$(ipt_snapshot)" ]
for n in local-closed local-open gw-redirect gw-tproxy none; do check_cycle "$n"; done

# the unit's ExecStopPost with fail_mode = closed (the default) keeps the
# rules whatever the steering: with steering = none the divert, nobody
# listening, refuses every flow (before, it was removed: flows went direct)
mx none rules install || fail "none: install"
mx none rules stop 2>"$T/stop.err" || fail "none: rules stop"
assert "steering = none, fail_mode = closed: rules stop keeps the rules" \
	bash -c "ip netns exec $SND $MXGUARD -c $T/none.conf rules show >/dev/null"
mx none rules remove || fail "none: remove"
assert "none: removed after all" [ -z "$(ipt_snapshot)" ]

# a switch of mode replaces the whole set; remove still restores
mx local-closed rules install || fail "install"
mx gw-tproxy rules install || fail "switch"
assert "after a switch: no local-mode jump left" lacks '-A OUTPUT .*MXGUARD' in_snd iptables-save
assert "after a switch: no fail-closed refusal left (fail_mode = open)" lacks '-A MXGUARD_GUARD .*REJECT' in_snd iptables-save
assert "after a switch: the guard is entered from FORWARD" bash -c "ip netns exec $SND iptables-save | grep -q -- '-A FORWARD .*-j MXGUARD_GUARD'"
mx gw-tproxy rules remove || fail "remove after switch"
assert "switch then remove: restored" [ -z "$(ipt_snapshot)" ]

# operator rules in the same tables stay where they are
in_snd iptables -t filter -A OUTPUT -p udp --dport 53 -j ACCEPT
in_snd iptables -t nat -A OUTPUT -p tcp --dport 587 -j RETURN
in_snd iptables -t mangle -N OPERATOR
in_snd iptables -t mangle -A OUTPUT -j OPERATOR
in_snd ip6tables -t filter -P FORWARD DROP
for n in local-closed gw-redirect none; do check_cycle "$n"; done
in_snd iptables -t mangle -A OUTPUT -p tcp --dport 25 -j OPERATOR
mx local-closed rules install || fail "install"
in_snd iptables -t mangle -A OUTPUT -p icmp -j ACCEPT	# added while installed
mx local-closed rules remove || fail "remove"
assert "a rule added while installed survives remove" bash -c "ip netns exec $SND iptables-save -t mangle | grep -q -- '-A OUTPUT -p icmp -j ACCEPT'"

# nftables backend
before=$(nft_snapshot)
mx nft-none rules install || fail "nft install"
assert "nft: table inet mxguard present" bash -c "ip netns exec $SND nft list table inet mxguard >/dev/null"
i1=$(nft_snapshot); mx nft-none rules install; i2=$(nft_snapshot)
assert "nft: second install changes nothing" [ "$i1" = "$i2" ]
mx nft-none rules remove || fail "nft remove"
assert "nft: remove restores nft list ruleset" [ "$before" = "$(nft_snapshot)" ]
if mx nft-nfq rules install 2>"$T/nft-nfq.err"; then
	log "this kernel has nft queue support"
	mx nft-nfq rules remove
else
	assert "nft + NFQUEUE on this kernel: clear error" grep -q "CONFIG_NFT_QUEUE" "$T/nft-nfq.err"
	assert "nft + NFQUEUE failure leaves nothing" [ "$before" = "$(nft_snapshot)" ]
fi
pass "rules install/remove exact and idempotent"
