#!/bin/bash
# 95: a worker that retires before the daemon was ever ready is started
# again, not taken for a configuration that cannot start.  workers = 2,
# user = nobody, mxguard.conf 0600 (root's only: the documented case of a
# file holding redis_password), under tests/lib/blockpw.c with
# MXG_BLOCK_PASS: one worker gets up, the other hangs in getpwnam().  A
# SIGHUP now: the supervisor takes the reload (it reads the file as
# root), the worker that is up cannot read it as nobody and retires
# (status 75), as it would once the daemon is up.  (Before: the
# supervisor counted that exit as a worker failing at start and stopped
# the daemon with exit 1.)
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup

workers_conf
chmod 0600 "$T/mxguard.conf"
mxg_preload blockpw MXG_BLOCK_FILE="$T/block" MXG_BLOCK_PASS="$T/pass"
touch "$T/block"
MXLOG=$T/mxguard.log
bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/mxguard.conf" run
MXG_PID=$BG_PID
wait_log "$MXLOG" "event=worker-ready worker=" 15
wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
UP=$(grep -m1 -E "event=worker-ready worker=" "$MXLOG" | sed -E 's/.* worker=([0-9]+) .*/\1/')
HELD=$(wpid $((1 - UP)))
# the other worker held in getpwnam() (blockpw.c says so): it cannot be
# ready until the block file goes
wait_for 15 "worker $((1 - UP)) (pid $HELD) held in getpwnam()" test -e "$T/block.held.$HELD"
assert "one worker is ready, not both" [ "$(count_log "$MXLOG" "event=worker-ready")" = 1 ]

kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=worker-retiring" 15
wait_log "$MXLOG" "event=worker-(retired|exit) .*" 15
line=$(grep -m1 -E "event=worker-(retired|exit) " "$MXLOG")
RW=$(sed -E 's/.* worker=([0-9]+) .*/\1/' <<<"$line")
RP=$(sed -E 's/.* pid=([0-9]+).*/\1/' <<<"$line")
log "worker $RW (pid $RP) went: $line"
# (before: the supervisor took it for a failed start and stopped)
_started_again() {
	kill -0 "$MXG_PID" 2>/dev/null || fail "the supervisor exited: $(tail -n 5 "$MXLOG")"
	local p
	p=$(wpid "$RW")
	[ -n "$p" ] && [ "$p" != "$RP" ]
}
wait_for 15 "worker $RW started again" _started_again
assert "the supervisor is alive" kill -0 "$MXG_PID"
assert "no fatal error" [ "$(count_log "$MXLOG" "event=fatal")" = 0 ]

rm -f "$T/block"
wait_log "$MXLOG" "event=started pid=$MXG_PID " 20
assert "the supervisor is alive" kill -0 "$MXG_PID"
pass "a worker retiring during the start is started again"
