#!/bin/bash
# 104: a worker that was up dies while its sibling is still starting.
# workers = 2, user = nobody, under tests/lib/blockpw.c with
# MXG_BLOCK_PASS: one worker gets through getpwnam() and is ready (it
# accepts and relays), the other is held there, so the daemon as a whole
# is not started yet.  The ready worker is killed (SIGKILL: a crash a
# session could cause).  It must be started again like any worker that
# dies, and the daemon go on; only a worker that never got up means a
# configuration that cannot start.  (Before: "worker N failed while
# starting", the daemon exited 1; under systemd its rules then came out,
# and with fail_mode = open every port-25 flow went direct until the
# restart.)
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup

workers_conf
mxg_preload blockpw MXG_BLOCK_FILE="$T/block" MXG_BLOCK_PASS="$T/pass"
touch "$T/block"
MXLOG=$T/mxguard.log
bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/mxguard.conf" run
MXG_PID=$BG_PID
wait_log "$MXLOG" "event=worker-ready worker=[01] pid=" 15
UP=$(grep -m1 -E "event=worker-ready worker=[01] pid=" "$MXLOG" | sed -E 's/.* worker=([01]) pid=([0-9]+).*/\1 \2/')
set -- $UP
SLOT=$1
PID=$2
log "worker $SLOT ($PID) is up, its sibling held in getpwnam()"
assert "the daemon is not started yet" [ "$(count_log "$MXLOG" "event=started")" = 0 ]

kill -KILL "$PID"
wait_log "$MXLOG" "event=worker-exit worker=$SLOT pid=$PID status=signal:9" 20
wait_log "$MXLOG" "event=worker-restart worker=$SLOT " 10
assert "no fatal stop for a worker that was up" [ "$(count_log "$MXLOG" "event=fatal")" = 0 ]
assert "the supervisor is alive" kill -0 "$MXG_PID"

rm -f "$T/block"
wait_log "$MXLOG" "event=started pid=$MXG_PID " 30
assert "the supervisor is alive once started" kill -0 "$MXG_PID"
pass "a worker that was up and died while its sibling started is started again"
