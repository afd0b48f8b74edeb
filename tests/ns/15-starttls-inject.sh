#!/bin/bash
# 15: the server sends extra plaintext right after its "220 ready to start
# TLS" (same TCP segment; CVE-2011-0411 class).  mxguard must drop the
# session: no envelope command (MAIL/RCPT/DATA) reaches the server, in
# cleartext or otherwise, and the mail stays queued at the sender.
. "$(dirname "$0")/../lib/ns.sh"
ns_setup
make_cert inj mx.inject.test
snd_setup
bad_start 10.25.1.13 --mode inject --cert "$T/pki/inj.pem" --wait 10
snd_route inject.test 10.25.1.13

new_body "$T/body" 2000
if ! with_mxguard; then
	# baseline: the TLS-less sender never says STARTTLS and delivers in
	# cleartext, which shows badsmtp accepts mail.
	send_mail bob@sender.test ivan@inject.test "$T/body" "inject"
	qid=$(find_qid "$MSGID")
	wait_status "$qid" ivan@inject.test sent
	assert "baseline: badsmtp got MAIL in cleartext" grep -q "recv clear MAIL FROM" "$BADLOG"
	pass "baseline (no mxguard) delivers in cleartext"
fi

mxg_start
send_mail bob@sender.test ivan@inject.test "$T/body" "inject"
qid=$(find_qid "$MSGID")
wait_log "$BADLOG" "starttls-reply-sent injected=" 30
wait_status "$qid" ivan@inject.test deferred 40
log "badsmtp saw: $(grep -E 'recv|after-starttls|tls-handshake' "$BADLOG" | cut -d' ' -f3- | tr '\n' '|')"
assert "no MAIL/RCPT/DATA reached the server" \
	[ "$(count_log "$BADLOG" 'recv [a-z-]+ (MAIL|RCPT|DATA|BDAT)')" = 0 ]
assert "nothing sent in cleartext after STARTTLS" \
	[ "$(count_log "$BADLOG" 'after-starttls cleartext|recv clear-after-starttls')" = 0 ]
# the warning itself: a bare "inject" matched every line naming the
# recipient's domain (inject.test), said or not
assert "mxguard logged the injection" \
	grep -qE "event=starttls-injection side=upstream dst=10\.25\.1\.13" "$MXLOG"
n=$(scrape_metric mxguard_starttls_injections_total \
	in_snd "$MXGUARD" -c "$T/mxguard.conf" status --metrics)
assert "the injection counted once (mxguard_starttls_injections_total $n)" [ "$n" = 1 ]
assert "no message accepted by the server" [ "$(count_log "$BADLOG" ' message ')" = 0 ]
assert "mail stays in the sender's queue" queue_has "$qid"
assert "sender never logged status=sent" [ "$(count_log "$SD/maillog" " $qid: .*status=sent")" = 0 ]
pass "injection after STARTTLS drops the session"
