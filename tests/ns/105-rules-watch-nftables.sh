#!/bin/bash
# 105: `mxguard rules watch` with the nftables backend.  `nft flush
# ruleset` (what Debian's /etc/nftables.conf starts with, and what a
# `systemctl reload nftables` runs) deletes mxguard's own table inet
# mxguard while the daemon runs: nf_tables tells the watch of the change,
# which installs the set again at once (not at its 30 s round), and a mail
# then goes through mxguard (TLS at the receiver).  A flush of the table
# or of one chain (the table stays, emptied) is put back alike.  ns 102
# does the same with the iptables backend.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
tls_world
# steering = none (mxg_start's): this kernel has no nft queue expression
mxg_start "rules_backend = nftables
rules_mode = local
fail_mode = closed"

present() { in_snd nft list table inet mxguard >/dev/null 2>&1; }
assert "the nftables set is in" present

bg "$SND" "$T/watch.log" "$MXGUARD" -c "$T/mxguard.conf" rules watch
watch_pid=$BG_PID
wait_log "$T/watch.log" "checking mxguard's netfilter rules at every ruleset change"
in_snd nft flush ruleset
wait_for 10 "the watch to put table inet mxguard back" present
wait_log "$T/watch.log" "were gone.*installed again"
assert "one line for one flush" [ "$(count_log "$T/watch.log" "installed again")" = 1 ]
# a partial loss: the table stays, its chains emptied (`nft flush table
# inet mxguard`, or one chain flushed): put back alike
guard_in() { in_snd nft list chain inet mxguard guard 2>/dev/null | grep -q 'reject with tcp reset'; }
in_snd nft flush table inet mxguard
wait_for 10 "the watch to refill table inet mxguard" guard_in
wait_log "$T/watch.log" "were incomplete \(table inet mxguard: chain steer holds 0 of its .* rules.*installed again"
in_snd nft flush chain inet mxguard guard
wait_for 10 "the watch to refill chain guard" guard_in
wait_for 10 "three 'installed again' lines" bash -c "[ \$(grep -c 'installed again' '$T/watch.log') = 3 ]"
assert "the chain flush named" grep -q "were incomplete (table inet mxguard: chain guard holds 0 of its" "$T/watch.log"

new_body "$T/body" 1500
send_mail bob@sender.test alice@tls.test "$T/body" "after nft flush ruleset"
qid=$(find_qid "$MSGID"); mid=$MSGID
wait_status "$qid" alice@tls.test sent
wait_mailbox alice@tls.test 1
f=$(msg_file_by_id alice@tls.test "$mid") || fail "message not stored"
assert "delivered through mxguard (TLS at the receiver)" [ -n "$(received_tls "$f")" ]
assert "mxguard took the session" grep -q "event=connect " "$MXLOG"
kill "$watch_pid"; wait "$watch_pid" 2>/dev/null
mxg_ctl rules remove >/dev/null 2>&1
pass "rules watch: table inet mxguard put back after nft flush ruleset"
