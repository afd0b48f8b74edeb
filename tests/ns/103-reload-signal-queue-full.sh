#!/bin/bash
# 103: a reload the supervisor cannot queue to a worker.  The supervisor
# passes a reload to each worker as a real-time signal (sigqueue(), with
# the digest it checked).  The kernel refuses one (EAGAIN) once the
# pending signals of the worker's user reach its RLIMIT_SIGPENDING, and
# any process of that user can get there: a compromised worker queueing
# signals to itself.  Here a helper running as the workers' user
# (nobody) does so, then the file is changed (max_sessions) and the
# supervisor gets SIGHUP.  Each worker must not go on with the
# configuration the reload replaced: the supervisor tells it to retire
# (SIGUSR1, a classic signal, delivered whatever the count), and it is
# started again on the new one; `mxguard status` names no worker on
# another digest.  (Before: event=worker-signal-failed, and both workers
# ran the old configuration for good.)
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup

conf() { workers_conf "max_sessions = $1" "control_socket = $T/mxguard.sock"; }
conf 100
MXLOG=$T/mxguard.log
bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/mxguard.conf" run
MXG_PID=$BG_PID
wait_log "$MXLOG" "event=started pid=$MXG_PID " 20
wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
W0=$(wpid 0)
W1=$(wpid 1)

# nobody's signal queue, filled: RTMIN+5 blocked and sent to itself until
# no more is queued (kill() never fails for that, it stops counting)
cat >"$T/fill.py" <<'EOF'
import os, resource, signal, sys, time
sig = signal.SIGRTMIN + 5
signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
n = resource.getrlimit(resource.RLIMIT_SIGPENDING)[0]
for _ in range(n + 16):
    os.kill(os.getpid(), sig)
print("full", n, flush=True)
time.sleep(600)
EOF
bg "$SND" "$T/fill.log" setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 "$T/fill.py"
FILL=$BG_PID
wait_log "$T/fill.log" "^full " 20
log "helper: $(cat "$T/fill.log")"

conf 200
kill -HUP "$MXG_PID"
DB=$(wait_log "$MXLOG" "mxguard\\[$MXG_PID\\]: event=reload-checked" 20;
	grep -E "mxguard\\[$MXG_PID\\]: event=reload-checked" "$MXLOG" | tail -n1 | sed -E 's/.*digest=([0-9a-f]+).*/\1/')
log "the supervisor's digest: $DB"
wait_log "$MXLOG" "event=worker-signal-failed worker=0 pid=$W0 signal=RTMIN\\+1" 20
wait_log "$MXLOG" "event=worker-retired worker=0 pid=$W0 " 20
wait_log "$MXLOG" "event=worker-retired worker=1 pid=$W1 " 20
assert "worker 0 retired for the reload not delivered" grep -qE "mxguard\\[$W0\\]: event=worker-retiring worker=0 reason=reload-not-delivered" "$MXLOG"
_restarted() { [ "$(wpid 0)" != "$W0" ] && [ "$(wpid 1)" != "$W1" ] &&
	[ "$(count_log "$MXLOG" "event=worker-ready worker=[01] pid=($(wpid 0)|$(wpid 1))")" = 2 ]; }
wait_for 20 "both workers started again and ready" _restarted
kill "$FILL" 2>/dev/null
"$MXGUARD" -c "$T/mxguard.conf" status >"$T/status.out" 2>&1 || fail "mxguard status: $(cat "$T/status.out")"
assert "status: the daemon runs the new digest" grep -q "^# config digest $DB," "$T/status.out"
assert "status: no worker on another digest" lacks "^# worker [0-9]+ runs config digest" cat "$T/status.out"
assert "the supervisor is alive" kill -0 "$MXG_PID"
pass "a reload that cannot be queued to a worker retires it onto the new configuration"
