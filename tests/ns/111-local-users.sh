#!/bin/bash
# 111: local_users.  In local mode with local_users = postfix only the
# MTA's user's port-25 flows are diverted; any other local user's flow is
# refused with a reset, with fail_mode = open too (the daemon is up: the
# refusal is the rules', not a fail mode's), and it never reaches the MX.
# Without it, a local user the host allowed no port-25 egress (an owner
# match of the host's own, below mxguard's REDIRECT, sees port 10025) sent
# through mxguard's sockets.  Both backends: iptables with NFQUEUE
# steering, nftables with steering = none, and iptables with steering =
# none and fail_mode = closed (this kernel has no nft queue).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@tls.test
rcv_setup
snd_setup
snd_route tls.test 10.25.1.10

connect_as() { tcp_greet_as "$1" 10.25.1.10 25; }

check_users() {	# LABEL
	local out n0
	n0=$(mx_count 'event=connect .*dst=10\.25\.1\.10:25')
	new_body "$T/body" 1500
	send_mail bob@sender.test alice@tls.test "$T/body" "$1"
	local q=$(find_qid "$MSGID") m=$MSGID
	wait_status "$q" alice@tls.test sent
	wait_mailbox alice@tls.test "$2"
	local f
	f=$(msg_file_by_id alice@tls.test "$m") || fail "$1: message not stored"
	assert "$1: postfix's flow went through mxguard (TLS at the receiver)" [ -n "$(received_tls "$f")" ]
	assert "$1: one upstream connection of mxguard's for it" \
		[ "$(mx_count 'event=connect .*dst=10\.25\.1\.10:25')" = $((n0 + 1)) ]
	out=$(connect_as nobody)
	assert "$1: nobody's port-25 flow is refused (got: $out)" [ "$out" = refused ]
	out=$(connect_as root)
	assert "$1: root's (not listed) is refused too (got: $out)" [ "$out" = refused ]
	out=$(connect_as postfix)
	assert "$1: postfix's own socket gets the greeting through mxguard (got: $out)" \
		[ "${out%% *}" = greeting ]
	assert "$1: mxguard saw no other flow" \
		[ "$(mx_count 'event=connect .*dst=10\.25\.1\.10:25')" -le $((n0 + 2)) ]
}

nfq_start "local_users = postfix
fail_mode = open"
assert "the queue rule names postfix's uid" \
	bash -c "ip netns exec '$SND' iptables-save -t mangle | grep -q -- '--uid-owner $(id -u postfix) -j NFQUEUE'"
check_users "iptables, nfqueue" 1

mxg_stop_remove
assert "iptables rules gone" [ -z "$(ipt_save "$SND" | grep -i mxguard)" ]
MXG_EXTRA_CONF="rules_mode = local
rules_backend = nftables
steering = none
local_users = postfix
fail_mode = open" mxg_start
assert "the nft divert names postfix's uid" \
	bash -c "ip netns exec '$SND' nft list table inet mxguard | grep -q 'skuid $(id -u postfix) meta l4proto tcp redirect'"
check_users "nftables, steering none" 2
mxg_stop_remove
MXG_EXTRA_CONF="rules_mode = local
steering = none
local_users = postfix
fail_mode = closed" mxg_start
assert "the REDIRECT names postfix's uid" \
	bash -c "ip netns exec '$SND' iptables-save -t nat | grep -q -- '--uid-owner $(id -u postfix) -j REDIRECT'"
check_users "iptables, steering none, closed" 3
mxg_stop_remove
pass "local_users diverts the listed user's flows only and refuses the rest"
