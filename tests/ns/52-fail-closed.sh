#!/bin/bash
# 52: fail_mode = closed.  With the daemon stopped and its rules installed,
# a new port-25 flow finds no NFQUEUE listener, passes mangle unmarked and
# is refused (tcp-reset) by MXGUARD_GUARD: the sender logs "Connection
# refused", the mail stays in its queue and nothing reaches the receiver.
# Once mxguard is back, a queue flush delivers it through mxguard (TLS).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
tls_world
nfq_start "fail_mode = closed"
mxg_kill
assert "fail-closed chain installed" bash -c "ip netns exec $SND iptables-save | grep -q -- '-j MXGUARD_GUARD'"
assert "fail-closed chain installed (IPv6)" bash -c "ip netns exec $SND ip6tables-save | grep -q -- '-j MXGUARD_GUARD'"

new_body "$T/body" 1500
send_mail bob@sender.test alice@tls.test "$T/body" "while stopped"
qid=$(find_qid "$MSGID"); mid=$MSGID
wait_status "$qid" alice@tls.test deferred
assert "sender: connection refused" grep -qE " $qid: to=<alice@tls.test>.*status=deferred.*Connection refused" "$SD/maillog"
assert "mail stays in the sender's queue" queue_has "$qid"
assert "nothing reached the receiver" [ "$(all_mailbox_count)" = 0 ]
assert "receiver saw no connection" [ "$(count_log "$RD/maillog" '[^s]connect from')" = 0 ]
rej=$(in_snd iptables -t filter -L MXGUARD_GUARD -v -n -x | awk '/REJECT/ {print $1}')
assert "the REJECT rule counted the SYN ($rej)" [ "${rej:-0}" -ge 1 ]

log "starting mxguard again"
wait_deferred "$qid"
nfq_start "fail_mode = closed"
snd_flush
wait_status "$qid" alice@tls.test sent
wait_mailbox alice@tls.test 1
f=$(msg_file_by_id alice@tls.test "$mid") || fail "message not stored"
assert "delivered through mxguard (TLS at the receiver)" [ -n "$(received_tls "$f")" ]
assert "sender queue empty" [ "$(queue_count)" = 0 ]
assert "one intercept verdict" [ "$(metric 'mxguard_nfq_verdicts_total{verdict="intercept"}')" = 1 ]
pass "fail-closed: refused and kept queued while mxguard is down, delivered after"
