#!/bin/bash
# 72: workers = 2 as operators see them.  `mxguard status` and the
# metrics sum over both workers (sessions, messages, the session-time
# histogram) while each worker took some of the sessions; SIGHUP to the
# supervisor reaches both workers (each logs event=reloaded); SIGTERM
# drains both: sessions held open on each worker still finish, then each
# worker exits 0 and so does the supervisor.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@tls.test carol@tls.test
rcv_setup
snd_setup
snd_postconf "smtp_connection_cache_on_demand = no"	# a session per message
snd_route tls.test 10.25.1.10
mxg_start "workers = 2
drain_timeout = 30s"

ctl() { ip netns exec "$SND" "$MXGUARD" -c "$T/mxguard.conf" "$@"; }
metric() { scrape_metric "$1" ctl status --metrics; }
wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
sessions_of() { grep -cE "mxguard\[$1\]: .*event=connect " "$MXLOG"; }
P0=$(wpid 0); P1=$(wpid 1)
[ -n "$P0" ] && [ -n "$P1" ] && [ "$P0" != "$P1" ] || fail "two workers expected"

# messages until both workers had sessions (the kernel's hash decides)
new_body "$T/body" 3000
M=0
while [ "$M" -lt 40 ]; do
	for i in 1 2 3 4 5 6; do
		M=$((M + 1))
		send_mail bob@sender.test alice@tls.test "$T/body" "count $M"
	done
	wait_mailbox alice@tls.test $M 60
	[ "$(sessions_of "$P0")" -ge 1 ] && [ "$(sessions_of "$P1")" -ge 1 ] && break
done
wait_queue_empty 30
s0=$(sessions_of "$P0"); s1=$(sessions_of "$P1")
log "$M messages: worker 0 took $s0 sessions, worker 1 took $s1"
assert "both workers took sessions" [ "$s0" -ge 1 ]
assert "both workers took sessions" [ "$s1" -ge 1 ]
_all_closed() { [ "$(metric mxguard_sessions_active)" = 0 ]; }
wait_for 10 "no session open" _all_closed
ctl status >"$T/status.txt" || fail "mxguard status: $(cat "$T/status.txt")"
ctl status --metrics >"$T/metrics.txt" || fail "mxguard status --metrics"
val() { awk -v n="$2" '$1 == n {print $2}' "$1"; }
assert "status: the supervisor answers" grep -qE "^# mxguard pid $MXG_PID, up " "$T/status.txt"
assert "status: sessions summed over the workers ($(val "$T/status.txt" mxguard_sessions_total) = $M)" [ "$(val "$T/status.txt" mxguard_sessions_total)" = "$M" ]
assert "metrics: sessions summed ($s0 + $s1 = $M)" [ "$(val "$T/metrics.txt" mxguard_sessions_total)" = "$M" ]
assert "metrics: sessions summed ($s0 + $s1 = $M)" [ $((s0 + s1)) = "$M" ]
assert "metrics: accepted messages summed" [ "$(val "$T/metrics.txt" 'mxguard_messages_total{result="accepted"}')" = "$M" ]
assert "metrics: session-time histogram summed" [ "$(val "$T/metrics.txt" mxguard_session_seconds_count)" = "$M" ]
assert "metrics: session-time histogram summed" [ "$(val "$T/metrics.txt" 'mxguard_session_seconds_bucket{le="+Inf"}')" = "$M" ]
assert "metrics: one HELP/TYPE per family" [ "$(grep -c '^# TYPE mxguard_sessions_total ' "$T/metrics.txt")" = 1 ]
assert "metrics: two workers, none restarted" [ "$(val "$T/metrics.txt" mxguard_workers)" = 2 ]
assert "metrics: two workers, none restarted" [ "$(val "$T/metrics.txt" mxguard_worker_exits_total)" = 0 ]
assert "metrics: one build_info line" [ "$(grep -c '^mxguard_build_info{' "$T/metrics.txt")" = 1 ]

# SIGHUP to the supervisor: each worker reloads; the worker count it
# read applies at the next start only, and the supervisor says so
echo "workers = 3" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "mxguard\[$P0\]: event=reloaded" 20
wait_log "$MXLOG" "mxguard\[$P1\]: event=reloaded" 20
assert "the supervisor passed the reload on" grep -qE "mxguard\[$MXG_PID\]: event=reloading workers=2" "$MXLOG"
assert "the supervisor named the key a start applies" grep -qE "mxguard\[$MXG_PID\]: event=reload-note keys=workers note=" "$MXLOG"

# a held session on each worker, then SIGTERM.  The kernel's SO_REUSEPORT
# hash of each connection's addresses and ports picks the worker: 8 tries
# all landed on one worker once in a full run (2^-7 a run); 24 make that
# 2^-23
holders=()
_on_both() { [ -n "${on[$P0]:-}" ] && [ -n "${on[$P1]:-}" ]; }
declare -A on
for k in $(seq 1 24); do
	mkdir -p "$T/h$k"
	bg "$SND" "$T/h$k.log" python3 "$LIBDIR/holdclient.py" 10.25.1.10 25 carol@tls.test "$T/h$k"
	wait_for 20 "held session $k ready" test -e "$T/h$k/ready"
	p=$(grep -E "event=connect " "$MXLOG" | tail -n1 | sed -E 's/.*mxguard\[([0-9]+)\].*/\1/')
	on[$p]=1
	holders+=("$k")
	_on_both && break
done
_on_both || fail "no held session on each worker after ${#holders[@]} tries"
log "${#holders[@]} held sessions, on both workers"
kill -TERM "$MXG_PID"
wait_log "$MXLOG" "mxguard\[$MXG_PID\]: event=draining sessions=${#holders[@]} .*workers=2" 20
wait_log "$MXLOG" "mxguard\[$P0\]: event=draining" 20
wait_log "$MXLOG" "mxguard\[$P1\]: event=draining" 20
for k in "${holders[@]}"; do touch "$T/h$k/go"; done
for k in "${holders[@]}"; do
	wait_for 30 "held session $k result" test -e "$T/h$k/result"
	assert "held session $k finished during the drain (250)" [ "$(cat "$T/h$k/result")" = 250 ]
done
workers_exit_ok "$P0" "$P1"
wait_mailbox carol@tls.test ${#holders[@]} 30
for k in "${holders[@]}"; do
	assert_once carol@tls.test "held-h$k@sender.test" "$T/h$k/sent"
done
assert "nothing else for carol" [ "$(mailbox_count carol@tls.test)" = "${#holders[@]}" ]
pass "status and metrics sum the workers; SIGHUP and SIGTERM reach both"
