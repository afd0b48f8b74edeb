#!/bin/bash
# 86: a worker started again that never gets ready is seen and replaced.
# workers = 2, user = nobody, under an LD_PRELOAD shim
# (tests/lib/blockpw.c) whose getpwnam() hangs while a file exists: NSS
# stuck on a directory server.  Worker 1 is killed while the file is
# there; its successor hangs in its privilege drop, before it is ready,
# while the kernel queues connections on its listeners.  The supervisor
# kills it WORKER_HANG_MS (30 s) after its start (event=worker-hung
# phase=start) and starts another, which, with the file gone, is up and
# relays.  (Before: only the heartbeat of a ready worker was watched; the
# stuck one stayed forever.)
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
tls_world

mxg_preload blockpw MXG_BLOCK_FILE="$T/block"
mxg_start "workers = 2
user = nobody"

wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
P1=$(wpid 1)
[ -n "$P1" ] || fail "two workers expected"

touch "$T/block"
kill -KILL "$P1"
wait_log "$MXLOG" "event=worker-exit worker=1 pid=$P1 status=signal:9" 20
_restarted() { local p; p=$(wpid 1); [ -n "$p" ] && [ "$p" != "$P1" ]; }
wait_for 20 "worker 1 started again" _restarted
S1=$(wpid 1)
log "worker 1 started again as $S1, stuck in getpwnam"
assert "the stuck worker is not ready" [ "$(count_log "$MXLOG" "event=worker-ready worker=1 pid=$S1\$")" = 0 ]
wait_log "$MXLOG" "event=worker-hung worker=1 pid=$S1 phase=start " 50
rm -f "$T/block"
wait_log "$MXLOG" "event=worker-exit worker=1 pid=$S1 status=signal:9" 20
_up() { local p; p=$(wpid 1); [ -n "$p" ] && [ "$p" != "$S1" ] && grep -qE "event=worker-ready worker=1 pid=$p\$" "$MXLOG"; }
wait_for 30 "worker 1 started a third time and up" _up
N1=$(wpid 1)
assert "the supervisor is alive" kill -0 "$MXG_PID"

# mail flows, and the new worker takes sessions
new_body "$T/body" 2000
M=0
while [ "$M" -lt 30 ]; do
	M=$((M + 1))
	send_mail bob@sender.test alice@tls.test "$T/body" "after the hang $M"
	wait_mailbox alice@tls.test $M 60
	grep -qE "mxguard\[$N1\]: .*event=connect " "$MXLOG" && break
done
assert "the replacement worker took sessions" grep -qE "mxguard\[$N1\]: .*event=connect " "$MXLOG"
pass "a worker stuck before it was ready is killed and replaced"
