#!/bin/bash
# 51: fail_mode = open.  While mxguard runs, a port-25 flow is intercepted
# (TLS at the receiver).  With the daemon stopped and its rules still
# installed, NFQUEUE has no listener and --queue-bypass lets new flows go
# direct: the next message is delivered by the sender itself, in cleartext.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
tls_world
nfq_start "fail_mode = open"

new_body "$T/body" 1500
send_mail bob@sender.test alice@tls.test "$T/body" "while running"
q1=$(find_qid "$MSGID"); m1=$MSGID
wait_status "$q1" alice@tls.test sent
wait_mailbox alice@tls.test 1
f1=$(msg_file_by_id alice@tls.test "$m1") || fail "first message not stored"
assert "daemon running: intercepted (TLS at the receiver)" [ -n "$(received_tls "$f1")" ]

mxg_kill
assert "rules still installed after the daemon stopped" rules_installed
assert "no refusal with fail_mode = open (the guard only drops packets picked up mid-stream)" \
	lacks '-A MXGUARD_GUARD .*REJECT' in_snd iptables-save
send_mail bob@sender.test alice@tls.test "$T/body" "while stopped"
q2=$(find_qid "$MSGID"); m2=$MSGID
wait_status "$q2" alice@tls.test sent
wait_mailbox alice@tls.test 2
f2=$(msg_file_by_id alice@tls.test "$m2") || fail "second message not stored"
assert "daemon stopped, fail-open: delivered direct, no TLS" [ -z "$(received_tls "$f2")" ]
assert "receiver saw exactly one TLS session (the first delivery)" [ "$(rcv_tls_sessions)" = 1 ]
assert "sender queue empty" [ "$(queue_count)" = 0 ]
pass "fail-open: direct while mxguard is down"
