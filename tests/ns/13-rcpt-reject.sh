#!/bin/bash
# 13: one recipient is rejected with 550 (unknown mailbox), another accepted:
# the sender records the same per-recipient outcomes with mxguard as without
# it (both runs are made here and compared).
. "$(dirname "$0")/../lib/ns.sh"
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox erin@tls.test
rcv_setup
snd_setup
snd_route tls.test 10.25.1.10

outcome() {	# -> "erin=sent nobody=bounced" for message $1
	local qid=$1
	wait_status "$qid" erin@tls.test 'sent|deferred|bounced'
	wait_status "$qid" nobody@tls.test 'sent|deferred|bounced'
	echo "erin=$(snd_status "$qid" erin@tls.test) nobody=$(snd_status "$qid" nobody@tls.test)"
}
dsn() { grep -E " $1: to=<$2>" "$SD/maillog" | tail -n1 | sed -E 's/.* dsn=([0-9.]+).*/\1/'; }

new_body "$T/body" 2000
send_mail bob@sender.test erin@tls.test,nobody@tls.test "$T/body" "direct"
q1=$(find_qid "$MSGID"); id1=$MSGID
direct=$(outcome "$q1")
log "without mxguard: $direct (dsn $(dsn "$q1" erin@tls.test)/$(dsn "$q1" nobody@tls.test))"
assert "baseline outcome is erin=sent nobody=bounced" [ "$direct" = "erin=sent nobody=bounced" ]

if with_mxguard; then
	mxg_start
	send_mail bob@sender.test erin@tls.test,nobody@tls.test "$T/body" "via mxguard"
	q2=$(find_qid "$MSGID"); id2=$MSGID
	via=$(outcome "$q2")
	log "with mxguard:    $via (dsn $(dsn "$q2" erin@tls.test)/$(dsn "$q2" nobody@tls.test))"
	assert "same per-recipient outcome with and without mxguard" [ "$via" = "$direct" ]
	assert "same DSN code for the rejected recipient" [ "$(dsn "$q2" nobody@tls.test)" = "$(dsn "$q1" nobody@tls.test)" ]
	assert "rejection text is the receiver's 550" \
		grep -qE " $q2: to=<nobody@tls.test>.*status=bounced .*550" "$SD/maillog"
	wait_mailbox erin@tls.test 2
	f=$(msg_file_by_id erin@tls.test "$id2") || fail "message via mxguard not stored"
	assert "body identical via mxguard" [ "$(body_hash "$f")" = "$(body_hash "$T/msg.$_MSGN")" ]
	assert "receiver stored exactly two messages (one per run)" [ "$(all_mailbox_count)" = 2 ]
	assert "receiver rejected nobody@ twice (once per run)" \
		[ "$(count_log "$RD/maillog" 'reject: RCPT from .*<nobody@tls.test>')" = 2 ]
fi
pass "per-recipient outcomes match"
