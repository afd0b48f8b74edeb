#!/bin/bash
# 20: later connections to the same MX resumes the TLS session mxguard
# cached for it (under the same policy key), and the resumed session still
# goes through the policy check: its event=tls line carries a verify result.
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
# one worker: the TLS session cache is per process
mxg_start "upstream_reuse = no
workers = 1"	# one connection per message, to resume

for i in 1 2 3 4; do
	new_body "$T/body$i" 3000
	send_mail bob@sender.test alice@tls.test "$T/body$i" "resume $i"
	qid=$(find_qid "$MSGID")
	wait_status "$qid" alice@tls.test sent
done
wait_mailbox alice@tls.test 4
# Postfix hands out a new ticket only after a full handshake, and TLS 1.3
# tickets are single use: from the second connection on, at least every
# other one resumes.
assert "four TLS sessions" [ "$(count_log "$MXLOG" 'event=tls ')" = 4 ]
assert "the first was a full handshake" bash -c "grep 'event=tls ' '$MXLOG' | head -1 | grep -q resumed=no"
assert "a later one was resumed, and still checked" grep -qE "event=tls .*resumed=yes .*verify=[a-z-]+" "$MXLOG"
pass "TLS session resumption per MX"
