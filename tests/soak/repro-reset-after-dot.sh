#!/bin/bash
# Probe (from the chaos soak's stop-then-reset event): the upstream leg is
# reset while the receiver is between the dot and its reply (its
# end-of-data restrictions sleep 2 s, before the queue file is committed).
# mxguard answers the sender 451 "(in state DATA_END)"; the question is
# whether the receiver still stores the message, and so whether the
# sender's retry makes a duplicate that its log does not announce as
# RFC 1047's case (as it does when the connection is just lost after the
# dot: "message may be sent more than once").  Prints what happened;
# exits 1 on a second copy.
#
#   flock /tmp/mxg-ns.lock env MXGUARD=$PWD/build/mxguard bash tests/soak/repro-reset-after-dot.sh
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
wait_status "$q" bob@tls.test "sent" 60
log "sender: $(grep -E "$q: to=<bob@tls.test>" "$SD/maillog" | sed -E 's/.*status=//' | tr '\n' '|')"
wait_rcv_idle 20
n=$(mailbox_count bob@tls.test)
log "copies stored: $n"
[ "$n" = 1 ] || fail "$n copies; the sender's log: $(grep -cE "$q: .*may be sent more than once" "$SD/maillog") RFC 1047 warning(s)"
pass "one copy"
