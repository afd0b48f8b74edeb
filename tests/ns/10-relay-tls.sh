#!/bin/bash
# 10: through mxguard, a message from a TLS-less legacy Postfix arrives
# byte-identical at a STARTTLS-capable receiver, over TLS: the receiver's
# log and Received header show a TLS session, the sender logged a cleartext
# delivery (it has TLS off and never logs a TLS session).
. "$(dirname "$0")/../lib/ns.sh"
ns_setup
tls_world
with_mxguard && mxg_start

new_body "$T/body" 6000
send_mail bob@sender.test alice@tls.test "$T/body" "relay tls"
qid=$(find_qid "$MSGID")
wait_status "$qid" alice@tls.test sent
wait_mailbox alice@tls.test 1
f=$(msg_file_by_id alice@tls.test "$MSGID") || fail "message $MSGID not in mailbox"

sent=$(body_hash "$T/msg.$_MSGN"); got=$(body_hash "$f")
assert "body byte-identical (sent $sent, received $got)" [ "$sent" = "$got" ]
assert "exactly one message stored" [ "$(all_mailbox_count)" = 1 ]
assert "sender logged no TLS session" [ "$(count_log "$SD/maillog" 'TLS connection established')" = 0 ]
assert "sender's delivery went to 10.25.1.10" grep -qE " $qid: to=<alice@tls.test>, relay=10.25.1.10\\[10.25.1.10\\]:25.*status=sent" "$SD/maillog"
if with_mxguard; then
	tls=$(received_tls "$f")
	log "receiver Received header: using ${tls:-<none>}"
	assert "receiver's Received header shows TLS" [ -n "$tls" ]
	assert "receiver logged a TLS session from $SND_IP" grep -qE "TLS connection established from [^ ]*\\[$SND_IP\\]: TLSv1\\.[23]" "$RD/maillog"
	assert "mxguard logged event=tls" grep -qE "event=tls .*protocol=TLSv1\\.[23]" "$MXLOG"
	assert "mxguard logged event=message" grep -qE "event=message" "$MXLOG"
	sid=$(grep -oE 'sid=[0-9a-f]+ event=connect' "$MXLOG" | head -n1 | cut -d' ' -f1)
	assert "the policy decision names the session ($sid)" grep -qE "$sid event=policy domain=tls.test " "$MXLOG"
else
	assert "baseline: no TLS without mxguard" [ -z "$(received_tls "$f")" ]
fi
pass "relay over TLS, body identical"
