#!/bin/bash
# Reproduction (not a tests/ns scenario: it fails on the current code, by
# design of docs/session.md's "421 4.7.x at the first RCPT of a session").
# Found by the chaos soak (tests/soak/run.sh, its first version: a
# "samebad.test" domain that sorted before tls.test).
#
# One message to two recipients whose domains share a next hop (the same
# MX address): aaa.test, whose tls_policy line its MX does not meet, and
# tls.test (opportunistic), whose MX is fine.  The sender's queue manager
# sorts recipients by domain, so aaa.test's RCPT comes first; mxguard
# answers it 421 and closes, and the sender defers tls.test's recipient
# too ("lost connection ... while sending RCPT TO").  Every retry goes the
# same way: bob@tls.test waits as long as aaa.test's policy fails, and when
# the queue lifetime runs out the sender bounces the message for both,
# though tls.test's policy was met all along.  Expected (PASS): bob's copy
# delivered, carol's still queued.
#
#   flock /tmp/mxg-ns.lock env MXGUARD=$PWD/build/mxguard bash tests/soak/repro-first-rcpt-holds.sh
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert tls mx1.tls.test
rcv_listener 10.25.1.11 tls
rcv_mailbox bob@tls.test carol@aaa.test
rcv_setup
snd_setup
snd_postconf "minimal_backoff_time = 2s" "maximal_backoff_time = 4s" "queue_run_delay = 2s"
snd_route tls.test 10.25.1.11
snd_route aaa.test 10.25.1.11
mxg_start "tls_policy = aaa.test secure match=mx.aaa.test"
new_body "$T/body" 2000
send_mail x@sender.test carol@aaa.test,bob@tls.test "$T/body" "two domains, one next hop"
q=$(find_qid "$MSGID")
wait_status "$q" carol@aaa.test deferred
wait_log "$MXLOG" "event=policy-failure domain=aaa.test .*first_rcpt=yes"
# three more tries
_tries() { [ "$(count_log "$SD/maillog" "$q: to=<carol@aaa.test>.*status=deferred")" -ge 4 ]; }
wait_for 60 "four tries" _tries
log "bob@tls.test: $(grep -E "$q: to=<bob@tls.test>" "$SD/maillog" | tail -n 1 | sed -E 's/.*status=//')"
assert "bob@tls.test (policy met) delivered" [ "$(mailbox_count bob@tls.test)" = 1 ]
assert "nothing for carol@aaa.test" [ "$(mailbox_count carol@aaa.test)" = 0 ]
pass "the failing first recipient did not hold the other"
