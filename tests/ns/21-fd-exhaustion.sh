#!/bin/bash
# 21: mxguard out of file descriptors.  accept() fails with EMFILE while the
# listener stays readable: mxguard must pause accepting (a few log lines,
# no busy loop), keep its sessions, and accept again once descriptors are
# free; mail then flows.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
tls_world
# one worker: the descriptor limit is per process
mxg_start "log_level = info
workers = 1"
prlimit --pid "$MXG_PID" --nofile=40:40 || fail "prlimit"

# 30 connections: more than 40 descriptors can serve (2 per session).
cat >"$T/hold.py" <<'PY'
import socket, sys, time, os
socks = []
for i in range(30):
    try:
        s = socket.create_connection(("10.25.1.10", 25), timeout=5)
        socks.append(s)
    except OSError:
        pass
open(sys.argv[1], "w").write("%d\n" % len(socks))
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
PY
bg "$SND" "$T/hold.log" python3 "$T/hold.py" "$T/held" "$T/release"
HOLD_PID=$BG_PID
wait_for 30 "holder connected" test -s "$T/held"
wait_log "$MXLOG" "event=accept-paused error=\"Too many open files\"" 20

# A window of about 2 s, measured (the reads around it take time too on
# a loaded machine, and a pause line comes every 100 ms: a fixed "25 in
# 2 s" failed a window that ran long), and the bounds as rates over it:
# under 30% of a CPU (a busy loop is 100%), at most 12.5 pause lines a
# second (one per 100 ms pause, with room).
ticks() { awk '{ print $14 + $15 }' "/proc/$MXG_PID/stat"; }
now_us() { echo "${EPOCHREALTIME/./}"; }
w0=$(now_us); t0=$(ticks); n0=$(count_log "$MXLOG" "event=accept-paused")
sleep 2	# a measuring window, not synchronisation
t1=$(ticks); n1=$(count_log "$MXLOG" "event=accept-paused"); w1=$(now_us)
win_ms=$(( (w1 - w0) / 1000 ))
log "over $win_ms ms: $((t1 - t0)) CPU ticks, $((n1 - n0)) pause lines"
assert "no busy loop (CPU ticks in $win_ms ms: $((t1 - t0)))" [ $(( (t1 - t0) * 10 * 100 )) -lt $(( 30 * win_ms )) ]
assert "pause lines bounded ($((n1 - n0)) in $win_ms ms)" [ $(( (n1 - n0) * 2000 )) -le $(( 25 * win_ms )) ]
assert "mxguard still running" kill -0 "$MXG_PID"

touch "$T/release"
wait_for 20 "holder gone" bash -c "! [ -e /proc/$HOLD_PID ] || grep -q ' Z ' /proc/$HOLD_PID/stat"
new_body "$T/body" 2000
send_mail bob@sender.test alice@tls.test "$T/body" "after exhaustion"
qid=$(find_qid "$MSGID")
wait_status "$qid" alice@tls.test sent 60
assert "delivered over TLS through mxguard after recovery" grep -qE "event=message .*tls=TLSv1\.[23] result=accepted" "$MXLOG"
pass "file descriptor exhaustion is survived"
