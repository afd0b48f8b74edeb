#!/bin/bash
# 138: the daemon held up past client_timeout (SIGSTOP here; a paused VM
# or a loaded host in life) while the MTA's next command waits in its
# socket.  At SIGCONT the command is answered and the message delivered
# once: the event loop sees the client's data before the timer that it
# re-arms, instead of timing the session out with the command unread.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
tls_world
mxg_start "workers = 1
client_timeout = 2s"

mkdir -p "$T/h1"
bg "$SND" "$T/h1.log" python3 "$LIBDIR/holdclient.py" 10.25.1.10 25 alice@tls.test "$T/h1"
wait_for 20 "held session ready (EHLO, MAIL, RCPT answered)" test -e "$T/h1/ready"

# DATA waits unread in mxguard's socket (its Recv-Q) while it is stopped
_data_waiting() {
	in_snd ss -tnH state established "( sport = :$MXG_PORT )" |
		awk '$1 > 0 { f = 1 } END { exit !f }'
}
# the stop lasts past client_timeout (2 s): the stimulus, not a wait
_stopped_past() { [ $(( $(date +%s%N) - T0 )) -gt 3000000000 ]; }
kill -STOP "$MXG_PID"
T0=$(date +%s%N)
touch "$T/h1/go"
wait_for 10 "the client's DATA waiting in mxguard's socket" _data_waiting
wait_for 10 "3 s stopped" _stopped_past
kill -CONT "$MXG_PID"

wait_for 20 "held session's result" test -e "$T/h1/result"
assert "the message was accepted (250), not timed out: $(cat "$T/h1/result")" \
	[ "$(cat "$T/h1/result")" = 250 ]
wait_mailbox alice@tls.test 1 20
assert_once alice@tls.test held-h1@sender.test "$T/h1/sent"
assert "no timeout given to the client" lacks "421 4.4.2" cat "$MXLOG"
pass "a daemon stopped past client_timeout answers the command waiting"
