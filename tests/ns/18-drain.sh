#!/bin/bash
# 18: SIGTERM drains.  mxguard stops accepting (a new diverted flow is
# refused, so the MTA keeps its mail queued), a session in the middle of a
# transaction finishes and its message is delivered (exactly once, whole),
# and a session that never finishes is cut at drain_timeout, without a 2xx
# for anything.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@tls.test carol@tls.test
rcv_setup
snd_setup
snd_route tls.test 10.25.1.10
mxg_start "drain_timeout = 8s"

mkdir -p "$T/h1" "$T/h2"
bg "$SND" "$T/h1.log" python3 "$LIBDIR/holdclient.py" 10.25.1.10 25 alice@tls.test "$T/h1"
bg "$SND" "$T/h2.log" python3 "$LIBDIR/holdclient.py" 10.25.1.10 25 carol@tls.test "$T/h2" --stall
wait_for 20 "held session 1 ready" test -e "$T/h1/ready"
wait_for 20 "held session 2 ready" test -e "$T/h2/ready"

kill -TERM "$MXG_PID"
wait_log "$MXLOG" "event=draining sessions=2"

# A new flow meets no listener: refused, and the MTA's mail stays queued.
new_body "$T/body" 2000
send_mail bob@sender.test alice@tls.test "$T/body" "during drain"
qid=$(find_qid "$MSGID")
wait_status "$qid" alice@tls.test deferred
# refused at the connect: a listener still open answered with a 421 of
# its own, deferred just the same
assert "the sender met no listener (Connection refused)" \
	grep -qE " $qid: to=<alice@tls.test>.*status=deferred .*Connection refused" "$SD/maillog"
assert "mail sent during the drain stays queued" queue_has "$qid"

touch "$T/h1/go"
wait_for 20 "held session 1 result" test -e "$T/h1/result"
assert "the held session's message was accepted (250)" [ "$(cat "$T/h1/result")" = 250 ]
wait_mailbox alice@tls.test 1 20
# once, and whole: a drain that sent it again, or twice in one DATA, fails
assert_once alice@tls.test held-h1@sender.test "$T/h1/sent"

wait_log "$MXLOG" "event=drain-timeout sessions=1" 20
wait_for 10 "mxguard exited" bash -c "! [ -e /proc/$MXG_PID ] || grep -q ' Z ' /proc/$MXG_PID/stat"
wait_for 10 "stalled session closed" test -e "$T/h2/result"
assert "the stalled session saw a close, never a 2xx" [ "$(cat "$T/h2/result")" = closed ]
assert "nothing for carol" [ "$(mailbox_count carol@tls.test)" = 0 ]
pass "SIGTERM drains"
