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
wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
# both workers held in getpwnam() (blockpw.c says so): neither can be
# ready until the block file goes
wait_for 15 "worker 0 held in getpwnam()" test -e "$T/block.held.$(wpid 0)"
wait_for 15 "worker 1 held in getpwnam()" test -e "$T/block.held.$(wpid 1)"
assert "no worker is ready" [ "$(count_log "$MXLOG" "event=worker-ready")" = 0 ]

# notify_sync: everything the daemon sent to the notify socket before
# this is in notify.log (a datagram socket keeps the order)
notify_sync() {
	local tag="SYNC-$RANDOM$RANDOM"
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(sys.argv[2].encode(), sys.argv[1])' "$T/notify.sock" "$tag" ||
		fail "sending to the notify socket"
	wait_log "$T/notify.log" "$tag" 10
}
# _sup_lines N RE: N supervisor lines "event=RE": with a reload's line
#   there, every reload before it has run to its end (one at a time: the
#   next one's line comes after the previous returned, its READY=1 included)
_sup_lines() { [ "$(count_log "$MXLOG" "mxguard\\[$MXG_PID\\]: event=($2)")" -ge "$1" ]; }

kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-checked" 15
kill -HUP "$MXG_PID"
wait_for 15 "the second reload (the first has returned)" _sup_lines 2 reloading
notify_sync
assert "systemd heard no READY=1 while no worker is ready" \
    [ "$(count_log "$T/notify.log" "READY=1")" = 0 ]

rm -f "$T/block"
wait_log "$MXLOG" "event=started pid=$MXG_PID " 20
wait_log "$T/notify.log" "READY=1" 5
assert "the supervisor is alive" kill -0 "$MXG_PID"

# and while it drains: after STOPPING=1 no reload, no READY=1.  Worker 0
# is stopped (SIGSTOP) so that the drain lasts.
W0=$(wpid 0)
kill -STOP "$W0"
kill -TERM "$MXG_PID"
wait_log "$T/notify.log" "STOPPING=1" 10
ready=$(count_log "$T/notify.log" "READY=1")
n=$(count_log "$MXLOG" "mxguard\[$MXG_PID\]: event=(reload-ignored|reloading)")
kill -HUP "$MXG_PID"
wait_for 10 "the supervisor took the SIGHUP" _sup_lines $((n + 1)) "reload-ignored|reloading"
kill -HUP "$MXG_PID"
wait_for 10 "a second SIGHUP (the first has returned)" _sup_lines $((n + 2)) "reload-ignored|reloading"
notify_sync
kill -CONT "$W0"
assert "systemd heard no READY=1 after STOPPING=1" \
    [ "$(count_log "$T/notify.log" "READY=1")" = "$ready" ]
assert "no reload while draining" [ "$(count_log "$MXLOG" "event=reload-checked")" = 2 ]
wait_log "$MXLOG" "mxguard\[$MXG_PID\]: event=stopped" 15
pass "a SIGHUP during the start does not announce the daemon early, nor one during the drain"
