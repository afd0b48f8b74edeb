#!/bin/bash
# 96: two reloads reach a worker that has not yet read the first.  The
# supervisor passes each reload to the workers with the digest of the
# configuration it checked.  Worker 1 is stopped (SIGSTOP: a worker busy
# or blocked for a moment) while the file goes A -> B, each change with
# a SIGHUP the supervisor takes, and then back to A without one.  When
# worker 1 runs again it must not apply A beside a supervisor and a
# worker 0 on B: the digest it acts on must be the supervisor's last.
# (Before: the reload was passed as SIGHUP with sigqueue(); a standard
# signal is not queued twice, so the second SIGHUP, with B's digest, was
# lost while the first was pending, and worker 1 checked the file, back
# to A, against A's digest, and ran A for good: the split the digest is
# there to prevent.)
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup

conf() { workers_conf "max_sessions = $1"; }
conf 100
MXLOG=$T/mxguard.log
bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/mxguard.conf" run
MXG_PID=$BG_PID
wait_log "$MXLOG" "event=started pid=$MXG_PID " 20
wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
W0=$(wpid 0)
W1=$(wpid 1)

kill -STOP "$W1"
conf 200				# A
kill -HUP "$MXG_PID"
_w0() { [ "$(count_log "$MXLOG" "mxguard\\[$W0\\]: event=reloaded ")" -ge "$1" ]; }
wait_for 10 "worker 0 applied A" _w0 1
conf 300				# B
kill -HUP "$MXG_PID"
wait_for 10 "worker 0 applied B" _w0 2
conf 200				# A again, no SIGHUP
DB=$(grep -E "mxguard\\[$MXG_PID\\]: event=reload-checked" "$MXLOG" | tail -n1 | sed -E 's/.*digest=([0-9a-f]+).*/\1/')
log "the supervisor's last digest (B): $DB"
kill -CONT "$W1"
_settled() { grep -qE "mxguard\\[$W1\\]: event=(reloaded|worker-retiring)" "$MXLOG"; }
wait_for 10 "worker 1's reload" _settled
# Both reloads were pending when worker 1 went on (read in one batch);
# with the file back at A and B the supervisor's last digest, it must
# retire.  Its exit ends what it can log: no later line can change the
# outcome (no sleep for "any later reload").
first=$(grep -m1 -E "mxguard\\[$W1\\]: event=(reloaded|worker-retiring)" "$MXLOG")
log "worker 1's first reload outcome: $first"
if [[ "$first" == *event=worker-retiring* ]]; then
	wait_log "$MXLOG" "event=worker-retired worker=1 pid=$W1 " 20
fi
grep -E "mxguard\\[$W1\\]: event=(reload|worker-retiring)" "$MXLOG" >&2
others=$(grep -E "mxguard\\[$W1\\]: event=reloaded " "$MXLOG" | grep -vc "digest=$DB")
assert "worker 1 applied no configuration but the supervisor's last ($DB)" [ "$others" = 0 ]
assert "worker 1 retired, or applied the supervisor's last" \
	bash -c '[[ "$1" == *event=worker-retiring* || "$1" == *"event=reloaded "*"digest=$2"* ]]' _ "$first" "$DB"
assert "the supervisor is alive" kill -0 "$MXG_PID"
pass "a worker acts on the supervisor's last reload, not on one it coalesced"
