#!/bin/bash
# 24: a legacy MTA that opens one connection per message (Postfix with
# smtp_connection_cache_on_demand = no): mxguard parks the verified TLS leg
# after a session's QUIT, and the next session from the same client to the
# same MX rides it.  Three messages: one TLS handshake at the receiver, all
# three byte-identical and stored, each session with its own policy verdict.
# Then the receiver goes away while the leg is parked: mxguard drops the
# leg, and the next message makes a new connection with a new handshake.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@tls.test
rcv_setup
snd_setup
snd_postconf "smtp_connection_cache_on_demand = no"
snd_route tls.test 10.25.1.10
# one worker: parked legs belong to the worker that parked them
mxg_start "upstream_reuse_time = 120s
workers = 1"

ids=()
for i in 1 2 3; do
	new_body "$T/body$i" 5000
	send_mail bob@sender.test alice@tls.test "$T/body$i" "reuse $i"
	ids+=("$MSGID")
	cp "$T/msg.$_MSGN" "$T/sent$i"
	qid=$(find_qid "$MSGID")
	wait_status "$qid" alice@tls.test sent
	wait_log "$MXLOG" "event=upstream-parked .*uses=$i\$" 15
done
wait_mailbox alice@tls.test 3
for i in 1 2 3; do
	f=$(msg_file_by_id alice@tls.test "${ids[$((i - 1))]}") || fail "message $i not in the mailbox"
	assert "message $i byte-identical" [ "$(body_hash "$T/sent$i")" = "$(body_hash "$f")" ]
	assert "message $i arrived over TLS" [ -n "$(received_tls "$f")" ]
done
assert "the receiver saw one TLS handshake for three messages" [ "$(rcv_tls_sessions)" = 1 ]
assert "mxguard did one handshake" [ "$(count_log "$MXLOG" 'event=tls ')" = 1 ]
assert "two sessions rode the parked leg" [ "$(count_log "$MXLOG" 'event=upstream-reused ')" = 2 ]
assert "each session got its own verdict" [ "$(count_log "$MXLOG" 'event=verdict domain=tls.test ')" = 3 ]
assert "the sender made three connections" [ "$(count_log "$SD/maillog" "$(printf ' to=<alice@tls.test>, relay=10.25.1.10.*status=sent')")" = 3 ]

# the receiver stops (its smtpd processes with it) while the leg is parked
in_rcv postfix -c "$RD/etc" stop >/dev/null 2>&1
wait_log "$MXLOG" "event=upstream-unparked " 20
_postfix_start "$RCV" "$RD"
wait_port "$RCV" 10.25.1.10 25
new_body "$T/body4" 5000
send_mail bob@sender.test alice@tls.test "$T/body4" "reuse 4"
qid=$(find_qid "$MSGID")
wait_status "$qid" alice@tls.test sent
wait_mailbox alice@tls.test 4
assert "after the receiver restarted: a new connection and handshake" [ "$(count_log "$MXLOG" 'event=tls ')" = 2 ]
assert "no session rode the dropped leg" [ "$(count_log "$MXLOG" 'event=upstream-reused ')" = 2 ]
pass "upstream TLS legs are reused across sessions, and dropped when the server goes"
