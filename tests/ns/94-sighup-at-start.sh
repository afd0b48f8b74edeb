#!/bin/bash
# 94: SIGHUP while the workers are still starting.  workers = 2, user =
# nobody, under tests/lib/blockpw.c (getpwnam() hangs while a file
# exists): the workers are stuck in their privilege drop, not ready, and
# systemd (tests/lib/notifysock.py in its place) must not hear READY=1
# yet.  A SIGHUP now is a reload like any other: the supervisor takes
# it, but it says READY=1 only once every worker is up.  (Before: its
# reload ended with READY=1 whatever the state, so systemd took the
# daemon for started while no worker was; a worker failing then would
# make systemd restart a daemon whose configuration cannot start.)  A
# SIGHUP while the daemon drains is ignored, as each worker ignores it:
# before, the supervisor reloaded and said RELOADING=1 and READY=1 to
# systemd after its STOPPING=1.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup

workers_conf
mxg_preload blockpw MXG_BLOCK_FILE="$T/block"
bg "$SND" "$T/notify.out" python3 "$LIBDIR/notifysock.py" "$T/notify.sock" "$T/notify.log"
wait_for 10 "the notify socket" test -S "$T/notify.sock"
touch "$T/block"
MXLOG=$T/mxguard.log
bg "$SND" "$MXLOG" env NOTIFY_SOCKET="$T/notify.sock" "$MXGUARD" -c "$T/mxguard.conf" run
MXG_PID=$BG_PID
wait_log "$MXLOG" "event=worker-start worker=1 pid=" 15
sleep 0.5
assert "no worker is ready" [ "$(count_log "$MXLOG" "event=worker-ready")" = 0 ]

kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-checked" 15
sleep 1
assert "systemd heard no READY=1 while no worker is ready" \
    [ "$(count_log "$T/notify.log" "READY=1")" = 0 ]

rm -f "$T/block"
wait_log "$MXLOG" "event=started pid=$MXG_PID " 20
wait_log "$T/notify.log" "READY=1" 5
assert "the supervisor is alive" kill -0 "$MXG_PID"

# and while it drains: after STOPPING=1 no reload, no READY=1.  Worker 0
# is stopped (SIGSTOP) so that the drain lasts.
W0=$(grep -E "event=worker-start worker=0 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/')
kill -STOP "$W0"
kill -TERM "$MXG_PID"
wait_log "$T/notify.log" "STOPPING=1" 10
ready=$(count_log "$T/notify.log" "READY=1")
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "mxguard\[$MXG_PID\]: event=(reload-ignored|reloading)" 10
sleep 1
kill -CONT "$W0"
assert "systemd heard no READY=1 after STOPPING=1" \
    [ "$(count_log "$T/notify.log" "READY=1")" = "$ready" ]
assert "no reload while draining" [ "$(count_log "$MXLOG" "event=reload-checked")" = 1 ]
wait_log "$MXLOG" "mxguard\[$MXG_PID\]: event=stopped" 15
pass "a SIGHUP during the start does not announce the daemon early, nor one during the drain"
