#!/bin/bash
# 14: two transactions over one connection (Postfix connection caching: both
# messages are released from hold together, destination concurrency 1, so
# the second reuses the first's cached connection), then a 20 MB message.
# The receiver log must show one connection carrying both messages (one
# "connect from", its disconnect line counting mail=2 data=2) and the bodies
# must be byte-identical.
. "$(dirname "$0")/../lib/ns.sh"
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox grace@tls.test heidi@tls.test
rcv_setup
SND_EXTRA_MAIN="smtp_destination_concurrency_limit = 1
smtp_connection_cache_on_demand = yes
smtp_connection_cache_destinations = [10.25.1.10]:25, [10.25.1.10], 10.25.1.10, tls.test
smtp_connection_cache_time_limit = 10s
smtp_connection_reuse_time_limit = 60s"
snd_setup
snd_route tls.test 10.25.1.10
with_mxguard && mxg_start

new_body "$T/b1" 5000; new_body "$T/b2" 7000
send_mail bob@sender.test grace@tls.test "$T/b1" "first" "X-Hold: yes"
q1=$(find_qid "$MSGID"); id1=$MSGID; m1=$T/msg.$_MSGN
send_mail bob@sender.test heidi@tls.test "$T/b2" "second" "X-Hold: yes"
q2=$(find_qid "$MSGID"); id2=$MSGID; m2=$T/msg.$_MSGN
wait_queue_count 2 20
snd_release
wait_status "$q1" grace@tls.test sent
wait_status "$q2" heidi@tls.test sent
wait_mailbox grace@tls.test 1; wait_mailbox heidi@tls.test 1
f1=$(msg_file_by_id grace@tls.test "$id1") || fail "first not stored"
f2=$(msg_file_by_id heidi@tls.test "$id2") || fail "second not stored"
assert "first body identical" [ "$(body_hash "$m1")" = "$(body_hash "$f1")" ]
assert "second body identical" [ "$(body_hash "$m2")" = "$(body_hash "$f2")" ]
assert "sender reused the connection (conn_use=2 logged)" \
	grep -qE " ($q1|$q2): to=<[a-z]+@tls.test>.*conn_use=2.*status=sent" "$SD/maillog"
# the receiver's smtpd logs a disconnect line with per-command counters
wait_log "$RD/maillog" "disconnect from [^ ]*\\[$SND_IP\\]" 15
disc=$(grep -E "disconnect from [^ ]*\\[$SND_IP\\]" "$RD/maillog")
log "receiver: $disc"
assert "receiver saw exactly one connection" [ "$(count_log "$RD/maillog" "connect from [^ ]*\\[$SND_IP\\]" )" = 2 ] # connect + disconnect
assert "that connection carried both transactions (mail=2 data=2)" \
	bash -c "grep -E 'disconnect from ' <<<'$disc' | grep -q 'mail=2 rcpt=2 data=2'"
if with_mxguard; then
	assert "receiver's connection used TLS (starttls=1)" bash -c "grep -q 'starttls=1' <<<'$disc'"
	assert "mxguard: one session" [ "$(mx_count 'event=connect ')" = 1 ]
	assert "mxguard: two messages in it" [ "$(mx_count 'event=message ')" -ge 2 ]
	assert "the first stored message shows TLS" [ -n "$(received_tls "$f1")" ]
	assert "the second stored message shows TLS" [ -n "$(received_tls "$f2")" ]
fi

# ---- 20 MB message
new_body "$T/big" $((20 * 1024 * 1024))
send_mail bob@sender.test grace@tls.test "$T/big" "large"
q3=$(find_qid "$MSGID"); id3=$MSGID; m3=$T/msg.$_MSGN
wait_status "$q3" grace@tls.test sent 60
wait_mailbox grace@tls.test 2
f3=$(msg_file_by_id grace@tls.test "$id3") || fail "large message not stored"
sz=$(stat -c %s "$f3")
assert "large message is > 20 MB as stored ($sz bytes)" [ "$sz" -gt $((20 * 1024 * 1024)) ]
assert "large body identical" [ "$(body_hash "$m3")" = "$(body_hash "$f3")" ]
with_mxguard && assert "large message went over TLS" [ -n "$(received_tls "$f3")" ]
pass "two transactions in one session; 20 MB intact"
