#!/bin/bash
# 106: the upstream leg is reset after the dot, while the receiver sits
# between the message's end and its reply (its end-of-data restrictions
# sleep 2 s; the queue file is committed whatever the client does).
# mxguard cannot know whether the server took the message: it answers the
# sender 451, which keeps the message, and the sender's retry stores it
# again: RFC 1047's duplicate.  An MTA that lost the connection there
# writes "message may be sent more than once" in its log; one that got a
# 451 cannot, so the 451's text must say it (the sender's log keeps the
# reply), and mxguard logs event=final-reply-lost.  Found by the chaos
# soak (tests/soak/run.sh): before the fix the sender's log held a plain
# refusal and the second copy was announced nowhere.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert tls mx1.tls.test
rcv_listener 10.25.1.11 tls -o smtpd_end_of_data_restrictions=sleep,2
rcv_mailbox bob@tls.test
rcv_setup
snd_setup
snd_postconf "minimal_backoff_time = 2s" "maximal_backoff_time = 4s" "queue_run_delay = 2s"
snd_route tls.test 10.25.1.11
mxg_start
new_body "$T/body" 2000
send_mail x@sender.test bob@tls.test "$T/body" "reset after the dot"
q=$(find_qid "$MSGID")
wait_log "$MXLOG" "event=state from=BODY to=DATA_END" 30
# only mxguard's leg (its mark): the sender's own socket has the same
# addresses (REDIRECT), and its reset would make the sender log RFC 1047
in_snd ss -K dst 10.25.1.11 dport = :25 and fwmark = $MXG_MARK
wait_log "$MXLOG" "event=final-reply-lost .*note=client-may-resend" 20
wait_status "$q" bob@tls.test "sent" 60
tries=$(grep -E "$q: to=<bob@tls.test>" "$SD/maillog" | sed -E 's/.*status=//')
log "sender: $(echo "$tries" | tr '\n' '|')"
assert "the sender was told 451 after its dot" grep -qE "said: 451 .*in state DATA_END" <<<"$tries"
assert "the 451 in the sender's log warns of a duplicate" \
	grep -qE "said: 451 .*may deliver it twice \(RFC 1047\)" <<<"$tries"
wait_rcv_idle 20
n=$(mailbox_count bob@tls.test)
log "copies stored: $n"
assert "the message arrived (once, or twice as announced)" [ "$n" -ge 1 -a "$n" -le 2 ]
pass "a duplicate after the dot is announced in the sender's log"
