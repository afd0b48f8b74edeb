#!/bin/bash
# 20: a second connection to the same MX resumes the TLS session mxguard
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
mxg_start

for i in 1 2; do
	new_body "$T/body$i" 3000
	send_mail bob@sender.test alice@tls.test "$T/body$i" "resume $i"
	qid=$(find_qid "$MSGID")
	wait_status "$qid" alice@tls.test sent
done
wait_mailbox alice@tls.test 2
assert "two TLS sessions" [ "$(count_log "$MXLOG" 'event=tls ')" = 2 ]
assert "the first was a full handshake" grep -qE "event=tls .*resumed=no" "$MXLOG"
assert "the second was resumed" grep -qE "event=tls .*resumed=yes .*verify=[a-z-]+" "$MXLOG"
pass "TLS session resumption per MX"
