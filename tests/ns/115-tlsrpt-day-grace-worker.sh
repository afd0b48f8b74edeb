#!/bin/bash
# 115: no TLSRPT run in the first seconds of a UTC day from a worker
# started again.  A day's counts are written by every worker, each up to
# its _smtp._tls lookup and a flush late (report_day_grace(), 72ffa01);
# the run at a process's start was left out of that grace ("no counts of
# its process are on their way"), but worker 0, which sends the reports,
# starts again on its own (a crash, the hang watchdog, a reload it cannot
# read: every reload with a 0600 file) while the other workers' counts
# of the day before are still on their way.  Under tests/lib/midnight.c
# the wall clock reads 00:00:05 UTC at start; workers = 2, tlsrpt_max_delay
# = 0: worker 0 is killed, and the worker started in its place schedules
# its run past the grace, not at once (before: in_s=0, a run that sent
# the day before's reports and marked them sent without those counts).
# Then `mxguard report send` at 00:01:00 with dns_timeout = 1s (a grace
# of 62 s): it waits the grace out before its run, as the daemon's runs
# do (before: it ran at once, a cron job at 00:00 marking the day before
# sent without the daemon's last counts).
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup

REAL=$MXGUARD
mxg_preload midnight MXG_FAKE_SOD=5
mxg_start "workers = 2
tlsrpt_enable = yes
tlsrpt_max_delay = 0"

wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
# sched PID: the in_s of PID's event=tlsrpt-scheduled line, "" before it
sched() { grep -E "mxguard\[$1\]: .*event=tlsrpt-scheduled in_s=" "$MXLOG" | head -n1 | sed -E 's/.* in_s=([0-9]+).*/\1/'; }
_sched() { [ -n "$(sched "$1")" ]; }

P0=$(wpid 0)
[ -n "$P0" ] || fail "no worker 0"
wait_for 15 "worker 0 (pid $P0) schedules its run" _sched "$P0"
line=$(grep -E "mxguard\[$P0\]: .*event=tlsrpt-scheduled" "$MXLOG" | head -n1)
log "worker 0 at start: $line"
assert "the shim put the clock at the day's start ($line)" grep -qE '^[0-9-]+T00:0[01]:' <<<"$line"

kill -KILL "$P0"
wait_log "$MXLOG" "event=worker-exit worker=0 pid=$P0 status=signal:9" 20
_replaced() { local p; p=$(wpid 0); [ -n "$p" ] && [ "$p" != "$P0" ] && _sched "$p"; }
wait_for 20 "worker 0 started again and its run scheduled" _replaced
N0=$(wpid 0)
line=$(grep -E "mxguard\[$N0\]: .*event=tlsrpt-scheduled" "$MXLOG" | head -n1)
log "worker 0 started again: $line"
assert "still the day's first seconds ($line)" grep -qE '^[0-9-]+T00:0[01]:' <<<"$line"
in_s=$(sched "$N0")
assert "the run of the worker started again waits out the day's grace (in_s=$in_s, want 50 or more)" \
	[ "$in_s" -ge 50 ]
mxg_stop

MXGUARD=$REAL
mxg_preload midnight MXG_FAKE_SOD=60
mkdir -m 0700 "$T/rs"
cat >"$T/rs.conf" <<EOC
listen = 127.0.0.1:$MXG_PORT
user =
state_dir = $T/rs
control_socket = $T/rs.sock
tlsrpt_enable = yes
dns_timeout = 1s
EOC
t0=$(date +%s%N)
in_snd "$MXGUARD" -c "$T/rs.conf" report send >"$T/rs.out" 2>"$T/rs.err"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
log "report send at 00:01:00: exit $rc after $ms ms: $(head -c 600 "$T/rs.err")"
assert "report send ran (exit $rc)" [ "$rc" = 0 ]
assert "report send waited out the day's first 62 s" \
	grep -qE "the first 62 s of a UTC day.*waiting [1-3] s" "$T/rs.err"
assert "and did not run before (took $ms ms)" [ "$ms" -ge 1000 ]
pass "neither a worker started again nor report send runs the TLSRPT reports in the first seconds of a day"
