#!/bin/bash
# 11: the receiver offers no STARTTLS: mxguard relays in cleartext (the
# opportunistic default), the message arrives intact and the receiver shows
# no TLS (log and Received header).
. "$(dirname "$0")/../lib/ns.sh"
ns_setup
rcv_listener 10.25.1.11 none
rcv_mailbox carol@plain.test
rcv_setup
snd_setup
snd_route plain.test 10.25.1.11
with_mxguard && mxg_start

new_body "$T/body" 3000
send_mail bob@sender.test carol@plain.test "$T/body" "relay plain"
qid=$(find_qid "$MSGID")
wait_status "$qid" carol@plain.test sent
wait_mailbox carol@plain.test 1
f=$(msg_file_by_id carol@plain.test "$MSGID") || fail "message $MSGID not in mailbox"
sent=$(body_hash "$T/msg.$_MSGN"); got=$(body_hash "$f")
assert "body byte-identical" [ "$sent" = "$got" ]
assert "exactly one message stored" [ "$(all_mailbox_count)" = 1 ]
assert "receiver's Received header shows no TLS" [ -z "$(received_tls "$f")" ]
assert "receiver logged no TLS session" [ "$(rcv_tls_sessions)" = 0 ]
assert "receiver saw a STARTTLS-less session (no starttls= in disconnect)" \
	bash -c "grep -E 'disconnect from .*\\[$SND_IP\\]' '$RD/maillog' | grep -vq starttls="
if with_mxguard; then
	assert "mxguard logged one connect" [ "$(mx_count 'event=connect ')" = 1 ]
	assert "mxguard logged no TLS session" [ "$(mx_count 'event=tls .*protocol=TLS')" = 0 ]
fi
pass "cleartext relay to a server without STARTTLS"
