#!/bin/bash
# 139: workers = 2, and the whole daemon is held up longer than
# WORKER_HANG_MS (30 s): SIGSTOP to the supervisor and both workers, as a
# paused or overloaded host holds them all.  The supervisor is resumed
# first and sees that its heartbeat check ran late (event=supervisor-late);
# that silence is not counted against the workers, resumed just after it:
# neither is killed as hung, and a session held across the stop delivers
# its message once.  (Before: the supervisor's first check after the
# resume killed both workers, silent for 32 s, and the held session with
# them.)
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
tls_world
mxg_start "workers = 2"

wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
P0=$(wpid 0); P1=$(wpid 1)
[ -n "$P0" ] && [ -n "$P1" ] && [ "$P0" != "$P1" ] || fail "two workers expected (pids '$P0' '$P1')"

# a session held on one of them: EHLO, MAIL, RCPT, then it waits for "go"
mkdir -p "$T/h1"
bg "$SND" "$T/h1.log" python3 "$LIBDIR/holdclient.py" 10.25.1.10 25 alice@tls.test "$T/h1"
wait_for 20 "held session ready" test -e "$T/h1/ready"

# the stop lasts past WORKER_HANG_MS: the stimulus, not a wait
since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
_past() { [ "$(since "$1")" -gt "$2" ]; }
kill -STOP "$MXG_PID" "$P0" "$P1"
T0=$(date +%s%N)
wait_for 45 "32 s stopped" _past "$T0" 32000
kill -CONT "$MXG_PID"
wait_log "$MXLOG" "event=supervisor-late late_ms=" 10
kill -CONT "$P0" "$P1"
# three of the supervisor's checks (one a second) with the workers running
T1=$(date +%s%N)
wait_for 10 "3 s after the workers' resume" _past "$T1" 3000
assert "no worker killed as hung" lacks "event=worker-hung" cat "$MXLOG"
assert "both workers still run" kill -0 "$P0" "$P1"
assert "no worker started again" [ "$(count_log "$MXLOG" "event=worker-start ")" = 2 ]

touch "$T/h1/go"
wait_for 20 "held session's result" test -e "$T/h1/result"
assert "the held session's message was accepted (250): $(cat "$T/h1/result")" \
	[ "$(cat "$T/h1/result")" = 250 ]
assert_once alice@tls.test held-h1@sender.test "$T/h1/sent"
new_body "$T/body" 2000
send_mail bob@sender.test alice@tls.test "$T/body" "after the stop"
wait_mailbox alice@tls.test 2 30
pass "a daemon stopped whole past WORKER_HANG_MS keeps its workers and their sessions"
