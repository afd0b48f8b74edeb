#!/bin/bash
# Chaos soak: disturbances combined at random, to find the interaction
# bugs no single tests/ns scenario shows.  Not part of `make check` (it
# runs for minutes): `make soak [SOAK_SECONDS=N]`, or by hand, under the
# namespace lock like every scenario:
#
#   flock /tmp/mxg-ns.lock env MXGUARD=$PWD/build/mxguard bash tests/soak/run.sh
#   (MXGUARD=$PWD/build-asan/mxguard: the ASan/UBSan build, `make asan-build`)
#
# World (tests/lib/ns.sh, dns.sh, sts.sh, redis.sh): one real Postfix
# sender, mxguard with workers = 2 and Redis, one real Postfix receiver:
#
#   recipient          MX                      policy               expected
#   alice@enf.test     10.25.1.10 mx1.enf.test MTA-STS enforce      delivered over TLS
#   bob@tls.test       10.25.1.11 mx1.tls.test opportunistic        delivered
#   carol@bad.test     10.25.1.12 cert for     MTA-STS enforce      queued, never arrives
#                      mx.elsewhere.test
#   dave@strip.test    10.25.1.13 no STARTTLS  MTA-STS enforce      queued, never arrives
#   erin@xbad.test     10.25.1.11 (tls.test's  tls_policy secure    queued, never arrives
#                      MX, its certificate)    match=mx.xbad.test
#
# Some messages have two recipients (bob + erin share a next hop, so one
# SMTP transaction carries both; alice + carol are split by the sender).
# The sender's queue manager sorts recipients by domain: bob@tls.test's
# RCPT comes first and erin's gets 450 later in the session.  (The other
# way round, the first RCPT's 421 closes the session and bob waits as long
# as erin does: docs/session.md, by design; hence the name xbad.test.)
# The sender submits a steady stream of messages with unique subjects
# ("soak N") while the chaos loop, at random intervals, does one of:
# SIGHUP (sometimes with upstream_reuse / upstream_reuse_time changed),
# SIGKILL of one worker, SIGSTOP/SIGCONT of the receiving Postfix for 1-4 s,
# an upstream reset (`ss -K` of mxguard's port-25 legs, or an iptables
# tcp-reset REJECT for 1-5 s), a restart of the whole daemon (SIGTERM, then
# start), Redis killed and started again.
# The run has a long-lived phase: until the last of SOAK_LULLS (2) lulls,
# spread evenly over the chaos, no daemon restart and no SIGKILL of one
# "kept" worker, so that the supervisor and that worker live through the
# lulls; after it, every disturbance.  At a lull the chaos and the
# submissions pause, the sender defers everything, the daemon goes idle
# (else a finding) and every mxguard process is sampled; then all resumes.
# A sampler records every SOAK_SAMPLE (3) seconds, through the whole run,
# each mxguard process's fds and VmRSS by pid and start time (a series).
#
# Then: chaos stops, everything is brought back, the sender's queue drains
# of good-domain mail (flushed; waited on, with a bound), the sender is told
# to defer everything (defer_transports) so the daemon goes idle, and:
#   - every good recipient got each of its messages exactly once, an extra
#     copy allowed only for each try the sender logged as RFC 1047's case
#     ("end of data -- message may be sent more than once", or mxguard's
#     451 after the dot, which says so: tests/ns/106), as tests/ns/71
#     does; one after a 451 "(in state DATA_END)" without that warning is
#     counted apart, a finding unless SOAK_ALLOW_DATAEND451=1;
#   - nothing for the bad recipients arrived, they are still queued, nothing
#     was bounced (a 5xx loses mail);
#   - every enf.test message arrived over TLS;
#   - no session left open (mxguard_sessions_active 0), no crash (worker
#     exits other than our SIGKILLs), no sanitizer report in any log, every
#     SIGTERM'd daemon exited 0;
#   - fds and RSS of the supervisor and workers at idle, end against start;
#   - per series with three idle samples or more (start, lulls, end; each
#     the least of three readings 0.5 s apart), its last against its
#     second: fds at most SOAK_FD_SLACK (2) and RSS at most SOAK_RSS_SLACK
#     kB (16384; ASan: not judged) above.
# A final line "soak: ..." gives the counts and the result.
#
# Environment: SOAK_SECONDS (300) chaos duration; SOAK_RATE (0.4) mean
# seconds between submissions; SOAK_SEED (random) for $RANDOM; SOAK_REDIS
# (1) include Redis; SOAK_DRAIN (200) seconds allowed for the drain;
# SOAK_ALLOW_DATAEND451 (0); SOAK_LULLS (2; 0: no lull, no long-lived
# phase, no per-series judgement); SOAK_SAMPLE (3); SOAK_FD_SLACK (2);
# SOAK_RSS_SLACK (16384);
# MXG_KEEP=1 keeps the temp dir.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
. "$LIBDIR/redis.sh"
need_mxguard

SOAK_SECONDS=${SOAK_SECONDS:-300}
SOAK_RATE=${SOAK_RATE:-0.4}
SOAK_REDIS=${SOAK_REDIS:-1}
SOAK_DRAIN=${SOAK_DRAIN:-200}
SOAK_SAMPLE=${SOAK_SAMPLE:-3}
SOAK_LULLS=${SOAK_LULLS:-2}
SOAK_FD_SLACK=${SOAK_FD_SLACK:-2}
SOAK_RSS_SLACK=${SOAK_RSS_SLACK:-16384}
SOAK_SEED=${SOAK_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
RANDOM=$SOAK_SEED
GOOD="alice@enf.test bob@tls.test"
BAD="carol@bad.test dave@strip.test erin@xbad.test"
T0=$SECONDS

ns_setup
log "soak: seed $SOAK_SEED, ${SOAK_SECONDS}s of chaos, MXGUARD=$MXGUARD"

# ---------------------------------------------------------------- world
make_cert mx1 mx1.enf.test
make_cert tls mx1.tls.test
make_cert wrong mx.elsewhere.test
# enf.test's MX takes 1 s after the dot before its reply (the end-of-data
# restrictions run before the queue file is committed and the 250 sent):
# kills, resets and restarts fall inside RFC 1047's window often
rcv_listener 10.25.1.10 mx1 -o smtpd_end_of_data_restrictions=sleep,1
rcv_listener 10.25.1.11 tls
rcv_listener 10.25.1.12 wrong
rcv_listener 10.25.1.13 none
rcv_mailbox $GOOD $BAD
rcv_setup
snd_setup
# quick retries (the chaos cuts many deliveries), sessions cached
snd_postconf "minimal_backoff_time = 2s" "maximal_backoff_time = 8s" \
	"queue_run_delay = 2s" "smtp_connection_cache_on_demand = yes"
snd_route enf.test 10.25.1.10
snd_route tls.test 10.25.1.11
snd_route bad.test 10.25.1.12
snd_route strip.test 10.25.1.13
snd_route xbad.test 10.25.1.11
dns_records <<'Z'
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
_mta-sts.enf IN TXT "v=STSv1; id=1"
mta-sts.enf IN A 10.25.1.80
tls IN MX 10 mx1.tls
mx1.tls IN A 10.25.1.11
bad IN MX 10 mx1.bad
mx1.bad IN A 10.25.1.12
_mta-sts.bad IN TXT "v=STSv1; id=1"
mta-sts.bad IN A 10.25.1.80
strip IN MX 10 mx1.strip
mx1.strip IN A 10.25.1.13
_mta-sts.strip IN TXT "v=STSv1; id=1"
mta-sts.strip IN A 10.25.1.80
xbad IN MX 10 mx1.tls
Z
dns_start
for d in enf bad strip; do
	sts_site $d.test
	sts_policy $d.test <<P
version: STSv1
mode: enforce
mx: mx1.$d.test
max_age: 86400
P
done
sts_start
REDIS_CONF=""
if [ "$SOAK_REDIS" = 1 ]; then
	redis_start "$SND" 127.0.0.1 6379
	REDIS_CONF="redis_address = 127.0.0.1:6379
redis_timeout = 300ms"
fi

# ---------------------------------------------------------------- daemon
MXG_EXTRA_CONF="$DNS_MXG_CONF
$STS_MXG_CONF
$REDIS_CONF
tls_policy = xbad.test secure match=mx.xbad.test"
mxg_start "workers = 2
upstream_reuse = yes
upstream_reuse_time = 5s"
CONF=$T/mxguard.conf
echo "$MXG_PID" >"$T/mxg.pid"
LOGS=("$MXLOG")
STARTS=1
BAD_EXITS=0
ctl() { ip netns exec "$SND" "$MXGUARD" -c "$CONF" "$@"; }
workers() { ps -o pid= --ppid "$MXG_PID" 2>/dev/null | tr -d ' '; }

# daemon_start: the same configuration again, a new log (the old ones are
# kept for the checks); the divert rules stay installed.
daemon_start() {
	STARTS=$((STARTS + 1))
	MXLOG=$T/mxguard-$STARTS.log
	LOGS+=("$MXLOG")
	bg "$SND" "$MXLOG" "$MXGUARD" -c "$CONF" run
	MXG_PID=$BG_PID
	echo "$MXG_PID" >"$T/mxg.pid"
	wait_for 20 "mxguard event=listening in $MXLOG" _mxg_listening
}
# daemon_stop: SIGTERM, wait (drain_timeout 5 s, then the exit); the exit
# status must be 0.
# With an argument: "hup" also sends SIGHUP while it drains, "kill" also
# SIGKILLs a worker while it drains.
daemon_stop() {
	local rc end=$((SECONDS + 30)) ws
	ws=($(workers))
	kill -TERM "$MXG_PID"
	case ${1:-} in
	hup)	sleep "0.$((RANDOM % 5))"; kill -HUP "$MXG_PID" 2>/dev/null ;;
	kill)	sleep "0.$((RANDOM % 5))"
		if [ "${#ws[@]}" -gt 0 ]; then
			echo "${ws[0]}" >>"$T/killed"
			kill -KILL "${ws[0]}" 2>/dev/null
		fi ;;
	esac
	while kill -0 "$MXG_PID" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
	if kill -0 "$MXG_PID" 2>/dev/null; then
		log "FINDING: mxguard $MXG_PID did not exit 30 s after SIGTERM"
		BAD_EXITS=$((BAD_EXITS + 1))
		kill -KILL "$MXG_PID"
	fi
	wait "$MXG_PID"; rc=$?
	if [ "$rc" != 0 ]; then
		log "FINDING: mxguard $MXG_PID exited $rc after SIGTERM"
		BAD_EXITS=$((BAD_EXITS + 1))
	fi
	MXG_PID=""
}
# both workers up (after a start, a kill): two children, each ready
_two_workers() { [ "$(workers | grep -c .)" = 2 ]; }

# proc_sample: "fds rss_kB" of PID
proc_sample() {
	local fds rss
	fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | grep -c .)
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null)
	echo "$fds ${rss:-0}"
}
# idle_sample: "sup_fds sup_rss w_fds_max w_rss_max"
idle_sample() {
	local s p wf=0 wr=0 f r
	s=$(proc_sample "$MXG_PID")
	for p in $(workers); do
		read -r f r <<<"$(proc_sample "$p")"
		[ "$f" -gt "$wf" ] && wf=$f
		[ "$r" -gt "$wr" ] && wr=$r
	done
	echo "$s $wf $wr"
}
# proc_line TAG: one line per mxguard process (the supervisor in
# $T/mxg.pid and its children) into $T/samples:
#   EPOCHSECONDS PID STARTTIME ROLE FDS RSS_kB TAG
# STARTTIME (/proc/PID/stat field 22) makes a process that replaced another
# of the same pid a new series.  TAG: "run" for the sampler's, "idle:NAME"
# for the samples taken with the daemon idle (start, each lull, end).
proc_line() {
	local sup p st f r role
	sup=$(cat "$T/mxg.pid" 2>/dev/null) || return 0
	[ -n "$sup" ] || return 0
	for p in "$sup" $(ps -o pid= --ppid "$sup" 2>/dev/null); do
		# the comm field may hold spaces: field 22 counted after its ")"
		st=$(sed -E 's/.*\) //' "/proc/$p/stat" 2>/dev/null | awk '{print $20}') || continue
		[ -n "$st" ] || continue
		read -r f r <<<"$(proc_sample "$p")"
		role=worker; [ "$p" = "$sup" ] && role=supervisor
		echo "$EPOCHSECONDS $p $st $role $f $r $1"
	done >>"$T/samples"
}
# proc_idle TAG: three samples 0.5 s apart, taken with the daemon idle; the
# judgement takes each series' least of them (a policy refresh or a
# lookup in flight at one instant does not count as a leak)
proc_idle() {
	local i
	for i in 1 2 3; do
		[ "$i" = 1 ] || sleep 0.5
		proc_line "$1"
	done
}
# the sampler: every SOAK_SAMPLE seconds through the whole run
sampler_loop() {
	while :; do
		proc_line run
		sleep "$SOAK_SAMPLE"
	done
}
metric() { scrape_metric "$1" ctl status --metrics; }
_idle() {
	[ "$(metric mxguard_sessions_active)" = 0 ] && [ "$(metric mxguard_upstream_parked)" = 0 ]
}

wait_for 20 "two workers" _two_workers
[ "$SOAK_REDIS" != 1 ] || wait_log "$MXLOG" "event=redis-up" 10
# warm-up: one message per good domain, so the baseline has its policy
# caches filled and its libraries loaded
new_body "$T/body" 3000
new_body "$T/bigbody" 300000
send_mail x@sender.test alice@enf.test "$T/body" "warmup enf"
send_mail x@sender.test bob@tls.test "$T/body" "warmup tls"
wait_mailbox alice@enf.test 1 60
wait_mailbox bob@tls.test 1 60
wait_for 30 "mxguard idle after the warm-up" _idle
read -r B_SF B_SR B_WF B_WR <<<"$(idle_sample)"
log "baseline: supervisor fds=$B_SF rss=${B_SR}kB; workers max fds=$B_WF rss=${B_WR}kB"
: >"$T/samples"
proc_idle idle:start
sampler_loop &
_PIDS+=("$!")

# ---------------------------------------------------------------- sender
# A steady stream: message N has Subject "soak N"; $T/sent lists "N RCPTS".
: >"$T/sent"
sender_loop() {
	local i=0 r to body
	while :; do
		# a lull: no submission while $T/pause exists
		while [ -e "$T/pause" ]; do sleep 0.2; done
		# the end: the loop stops here, between two submissions (a
		# SIGTERM could end it after a submission and before its line in
		# $T/sent: a message counted as "never sent" to its recipient)
		[ -e "$T/stop-sender" ] && return 0
		i=$((i + 1))
		r=$((RANDOM % 100))
		if [ $r -lt 35 ]; then to=alice@enf.test
		elif [ $r -lt 63 ]; then to=bob@tls.test
		elif [ $r -lt 73 ]; then to=bob@tls.test,erin@xbad.test
		elif [ $r -lt 82 ]; then to=alice@enf.test,carol@bad.test
		elif [ $r -lt 91 ]; then to=carol@bad.test
		else to=dave@strip.test
		fi
		body=$T/body
		[ $((RANDOM % 20)) = 0 ] && body=$T/bigbody
		{
			printf 'From: <x@sender.test>\nTo: %s\nSubject: soak %d\nMessage-ID: <soak-%d-%d@sender.test>\nDate: %s\n\n' \
				"$to" "$i" "$$" "$i" "$(date -R)"
			cat "$body"
		} | ip netns exec "$SND" sendmail -i -C "$SD/etc" -f x@sender.test -- ${to//,/ } ||
			{ echo "sendmail failed for soak $i" >>"$T/sender.err"; sleep 1; continue; }
		echo "$i ${to//,/ }" >>"$T/sent"
		sleep "$(awk -v m="$SOAK_RATE" -v r="$RANDOM" 'BEGIN { printf "%.2f", m * 2 * r / 32768 }')"
	done
}
sender_loop &
SENDER_PID=$!
_PIDS+=("$SENDER_PID")

# ---------------------------------------------------------------- chaos
declare -A EV=()
rcv_pids() {	# the receiving Postfix's processes (not nginx, DNS, Redis)
	local p
	for p in $(ip netns pids "$RCV"); do
		case $(readlink "/proc/$p/exe" 2>/dev/null) in /usr/lib/postfix/*) echo "$p";; esac
	done
}
RSTOP_JOB=""
REJ_JOB=""
# rcv_stop_for SECS / reject_for SECS: run in the background (jobs of
# this shell: the cleanup's kill of the namespaces' processes, and the
# drain's wait, end them)
rcv_stop_for() {
	local p
	p=$(rcv_pids)
	# (a process of the list may have exited since: not worth a line)
	# shellcheck disable=SC2086
	kill -STOP $p 2>/dev/null
	sleep "$1"
	# shellcheck disable=SC2086
	kill -CONT $p 2>/dev/null
}
reject_for() {
	in_snd iptables -I OUTPUT -p tcp -d 10.25.1.0/24 --dport 25 -j REJECT --reject-with tcp-reset
	sleep "$1"
	in_snd iptables -D OUTPUT -p tcp -d 10.25.1.0/24 --dport 25 -j REJECT --reject-with tcp-reset
}
# KEEP_WORKER: in the long-lived phase (until the last lull), the worker
# that SIGKILLs spare, and no daemon restart: the supervisor and this worker
# live through the lulls, so that their descriptors and RSS are compared at
# matched idle points (a leak in one long-lived process; the restarts and
# kills replace the others).  Empty after the last lull: everything goes.
KEEP_WORKER=""
chaos_one() {
	local r p ws n
	r=$((RANDOM % 100))
	# a restart drawn in the long-lived phase is drawn again; after it, a
	# restart 3 times as often (2/9 + 7/9 of 10%), so that a run has as many
	# as before the phases
	if [ -n "$KEEP_WORKER" ]; then
		while [ $r -ge 78 ] && [ $r -lt 88 ]; do r=$((RANDOM % 100)); done
	elif [ "$SOAK_LULLS" -gt 0 ] && [ $((RANDOM % 9)) -lt 2 ]; then
		r=78
	fi
	if [ $r -lt 22 ]; then
		EV[hup]=$((${EV[hup]:-0} + 1))
		if [ $((RANDOM % 2)) = 0 ]; then
			if grep -q '^upstream_reuse = yes' "$CONF"; then n=no; else n=yes; fi
			sed -i "s/^upstream_reuse = .*/upstream_reuse = $n/" "$CONF"
			sed -i "s/^upstream_reuse_time = .*/upstream_reuse_time = $((RANDOM % 3 * 3))s/" "$CONF"
			log "chaos: SIGHUP, upstream_reuse = $n, $(grep '^upstream_reuse_time' "$CONF")"
		else
			log "chaos: SIGHUP"
		fi
		kill -HUP "$MXG_PID"
	elif [ $r -lt 42 ]; then
		ws=($(workers | grep -vx "${KEEP_WORKER:-none}"))
		[ "${#ws[@]}" -gt 0 ] || return 0
		p=${ws[$((RANDOM % ${#ws[@]}))]}
		EV[killworker]=$((${EV[killworker]:-0} + 1))
		echo "$p" >>"$T/killed"
		log "chaos: SIGKILL worker $p"
		kill -KILL "$p"
	elif [ $r -lt 52 ]; then
		# in the background: the next events fall while it is stopped
		if [ -n "$RSTOP_JOB" ] && kill -0 "$RSTOP_JOB" 2>/dev/null; then return 0; fi
		EV[rcvstop]=$((${EV[rcvstop]:-0} + 1))
		n=$((1 + RANDOM % 4))
		log "chaos: SIGSTOP receiver for ${n}s"
		rcv_stop_for "$n" &
		RSTOP_JOB=$!
		_PIDS+=("$RSTOP_JOB")
	elif [ $r -lt 60 ]; then
		# the receiver stopped, so that sessions wait after their dot,
		# then their upstream legs reset
		if [ -n "$RSTOP_JOB" ] && kill -0 "$RSTOP_JOB" 2>/dev/null; then return 0; fi
		EV[stopreset]=$((${EV[stopreset]:-0} + 1))
		log "chaos: SIGSTOP receiver, ss -K of the upstream legs, SIGCONT"
		rcv_stop_for 2 &
		RSTOP_JOB=$!
		_PIDS+=("$RSTOP_JOB")
		sleep 1
		in_snd ss -K dst 10.25.1.0/24 dport = :25 and fwmark = $MXG_MARK >/dev/null 2>&1
	elif [ $r -lt 70 ]; then
		EV[reset]=$((${EV[reset]:-0} + 1))
		log "chaos: ss -K of the upstream legs"
		in_snd ss -K dst 10.25.1.0/24 dport = :25 and fwmark = $MXG_MARK >/dev/null 2>&1
	elif [ $r -lt 78 ]; then
		if [ -n "$REJ_JOB" ] && kill -0 "$REJ_JOB" 2>/dev/null; then return 0; fi
		EV[reject]=$((${EV[reject]:-0} + 1))
		n=$((1 + RANDOM % 5))
		log "chaos: upstream tcp-reset REJECT for ${n}s"
		reject_for "$n" &
		REJ_JOB=$!
		_PIDS+=("$REJ_JOB")
	elif [ $r -lt 88 ]; then
		EV[restart]=$((${EV[restart]:-0} + 1))
		n=$(( RANDOM % 3 ))
		n=$(case $n in 0) echo "";; 1) echo hup;; 2) echo kill;; esac)
		log "chaos: restart of the daemon (pid $MXG_PID)${n:+, $n while it drains}"
		daemon_stop $n
		sleep "0.$((RANDOM % 10))"
		daemon_start
	elif [ "$SOAK_REDIS" = 1 ]; then
		EV[redis]=$((${EV[redis]:-0} + 1))
		n=$((1 + RANDOM % 5))
		log "chaos: Redis down for ${n}s"
		redis_kill
		sleep "$n"
		redis_start "$SND" 127.0.0.1 6379
	fi
}
# a disturbance left half done by an interrupted run is undone by the
# namespaces' removal; here, after the loop, everything is put back
IDLE_OK=1
wait_for_idle() {
	local e=$((SECONDS + 60))
	until _idle; do
		[ "$SECONDS" -lt "$e" ] || return 1
		sleep 0.5
	done
}
# lull N: the chaos and the submissions pause, the sender defers
# everything (its retries of the bad mail never stop otherwise), the daemon
# goes idle and every process is sampled (idle:lullN); then all resumes.
LULLS_DONE=0
lull() {
	local j t=$SECONDS
	for j in $RSTOP_JOB $REJ_JOB; do wait "$j" 2>/dev/null; done
	touch "$T/pause"
	snd_postconf "defer_transports = smtp"
	if wait_for_idle; then
		wait_for 30 "two workers" _two_workers
		proc_idle "idle:lull$1"
		log "lull $1: idle after $((SECONDS - t))s, sampled"
	else
		IDLE_OK=0
		log "FINDING: not idle 60 s into lull $1: sessions_active=$(metric mxguard_sessions_active) parked=$(metric mxguard_upstream_parked)"
	fi
	snd_postconf "defer_transports ="
	rm -f "$T/pause"
	snd_flush
}
ws=($(workers))
[ "$SOAK_LULLS" = 0 ] || KEEP_WORKER=${ws[0]}
[ "$SOAK_LULLS" = 0 ] || log "long-lived phase: no restart, SIGKILLs spare worker $KEEP_WORKER, $SOAK_LULLS lull(s)"
chaos_start=$SECONDS
chaos_end=$((SECONDS + SOAK_SECONDS))
while [ "$SECONDS" -lt "$chaos_end" ]; do
	sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 1 + 5 * r / 32768 }')"
	chaos_one
	[ -n "$MXG_PID" ] && kill -0 "$MXG_PID" 2>/dev/null ||
		fail "the supervisor is gone: $(tail -n 20 "$MXLOG")"
	# lull k at k/(SOAK_LULLS + 1) of the chaos (its own time not counted)
	if [ "$LULLS_DONE" -lt "$SOAK_LULLS" ] &&
		[ $((SECONDS - chaos_start)) -ge $(((LULLS_DONE + 1) * SOAK_SECONDS / (SOAK_LULLS + 1))) ]; then
		t=$SECONDS
		LULLS_DONE=$((LULLS_DONE + 1))
		lull "$LULLS_DONE"
		chaos_start=$((chaos_start + SECONDS - t))
		chaos_end=$((chaos_end + SECONDS - t))
		if [ "$LULLS_DONE" = "$SOAK_LULLS" ]; then
			KEEP_WORKER=""
			log "long-lived phase over: restarts and any worker's SIGKILL from now on"
		fi
	fi
done
touch "$T/stop-sender"
wait "$SENDER_PID" 2>/dev/null
SENT=$(grep -c . "$T/sent")
log "chaos over: $SENT messages submitted; events: $(for k in "${!EV[@]}"; do printf '%s=%s ' "$k" "${EV[$k]}"; done)"

# ---------------------------------------------------------------- drain
for j in $RSTOP_JOB $REJ_JOB; do wait "$j" 2>/dev/null; done
wait_for 30 "two workers" _two_workers
[ "$(in_snd iptables -S OUTPUT | grep -c REJECT)" = 0 ] || fail "REJECT rule left"
# good recipients still queued at the sender
good_queued() {
	_postqueue "$SD/etc"
	python3 -c '
import json, sys
bad = set(sys.argv[1:])
n = 0
for l in open(0):
    m = json.loads(l)
    n += sum(1 for r in m.get("recipients", []) if r["address"] not in bad)
print(n)' $BAD <"$PQ_OUT"
}
end=$((SECONDS + SOAK_DRAIN))
flushed=0
while [ "$(good_queued)" != 0 ]; do
	if [ "$SECONDS" -ge "$end" ]; then
		log "FINDING: good mail still queued after ${SOAK_DRAIN}s of drain:"
		_postqueue "$SD/etc"; head -c 3000 "$PQ_OUT" >&2
		break
	fi
	if [ $((SECONDS - flushed)) -ge 10 ]; then snd_flush; flushed=$SECONDS; fi
	sleep 1
done
GOOD_QUEUED=$(good_queued)
# the bad mail stays queued: the sender stops trying (no more sessions),
# and the daemon goes idle
snd_postconf "defer_transports = smtp"
wait_rcv_idle 60
if ! wait_for_idle; then
	IDLE_OK=0
	log "FINDING: not idle 60 s after the sender stopped: sessions_active=$(metric mxguard_sessions_active) parked=$(metric mxguard_upstream_parked)"
fi
read -r E_SF E_SR E_WF E_WR <<<"$(idle_sample)"
proc_idle idle:end
log "end: supervisor fds=$E_SF rss=${E_SR}kB; workers max fds=$E_WF rss=${E_WR}kB"

# ---------------------------------------------------------------- checks
FAILS=()
finding() { log "FINDING: $*"; FAILS+=("$*"); }
[ "$GOOD_QUEUED" = 0 ] || finding "$GOOD_QUEUED good recipient(s) still queued after the drain"
[ "$IDLE_OK" = 1 ] || finding "sessions never ended (not idle at a lull or at the end)"
[ "$BAD_EXITS" = 0 ] || finding "$BAD_EXITS daemon stop(s) did not exit 0 in time"
[ -s "$T/sender.err" ] && log "sender: $(grep -c . "$T/sender.err") submission(s) failed (not counted)"

# per mailbox: "N count" of the subjects "soak N" stored
for a in $GOOD $BAD; do
	d=$(mailbox_dir "$a")
	find "$d/new" "$d/cur" -type f -print0 2>/dev/null |
		xargs -0 -r grep -h -m1 '^Subject: soak ' | awk '{print $3}' | sort -n | uniq -c |
		awk '{print $2, $1}' >"$T/got.$a"
done
# announced N: "W D", the sender's tries of message N that it logged as
# RFC 1047's case ("end of data -- message may be sent more than once", or
# mxguard's 451 after the dot that says "may deliver it twice (RFC
# 1047)"), and those mxguard answered 451 "(in state DATA_END)" without
# that warning (counted apart: a finding unless SOAK_ALLOW_DATAEND451=1)
announced() {
	local qid w=0 d=0
	for qid in $(sed -nE "s/.*: ([0-9A-F]+): message-id=<soak-$$-$1@sender.test>.*/\\1/p" "$SD/maillog"); do
		w=$((w + $(count_log "$SD/maillog" "$qid: .*(end of data -- message may be sent more than once|said: 4[0-9][0-9] .*may deliver it twice \(RFC 1047\))")))
		d=$((d + $(grep -E "$qid: .*said: 4[0-9][0-9] .*in state DATA_END" "$SD/maillog" | grep -vcE "may deliver it twice \(RFC 1047\)")))
	done
	echo "$w $d"
}
EXPECT=0 ARRIVED=0 LOST=0 DUPS=0 DUPS_OK=0 DUPS_DE=0
for a in $GOOD; do
	awk -v a="$a" '{for (i = 2; i <= NF; i++) if ($i == a) print $1}' "$T/sent" >"$T/want.$a"
	while read -r n; do
		EXPECT=$((EXPECT + 1))
		c=$(awk -v n="$n" '$1 == n {print $2}' "$T/got.$a")
		c=${c:-0}
		ARRIVED=$((ARRIVED + (c > 0 ? 1 : 0)))
		if [ "$c" = 0 ]; then
			LOST=$((LOST + 1)); log "soak $n to $a: never arrived"
		elif [ "$c" -gt 1 ]; then
			# each announced try may have left one extra copy
			read -r w de <<<"$(announced "$n")"
			x=$((c - 1))
			if [ "$x" -le "$w" ]; then
				DUPS_OK=$((DUPS_OK + x)); log "soak $n to $a: $c copies, RFC 1047's case ($w try(s) the sender logged so)"
			elif [ "$x" -le $((w + de)) ]; then
				DUPS_OK=$((DUPS_OK + w)); DUPS_DE=$((DUPS_DE + x - w))
				log "soak $n to $a: $c copies, $((x - w)) after mxguard's 451 in DATA_END (upstream lost after the dot; $w RFC 1047 warning(s))"
			else
				DUPS=$((DUPS + x)); log "soak $n to $a: $c copies, the sender announced $w (and $de 451 in DATA_END)"
			fi
		fi
	done <"$T/want.$a"
	extra=$(awk 'NR == FNR {w[$1]; next} !($1 in w)' "$T/want.$a" "$T/got.$a" | grep -c .)
	[ "$extra" = 0 ] || finding "$extra message(s) in $a never sent to it"
done
[ "$LOST" = 0 ] || finding "$LOST message(s) to good recipients lost"
[ "$DUPS" = 0 ] || finding "$DUPS duplicate(s) outside RFC 1047's window"
[ "$DUPS_DE" = 0 ] || [ "${SOAK_ALLOW_DATAEND451:-0}" = 1 ] ||
	finding "$DUPS_DE duplicate(s) after mxguard's 451 in DATA_END: the sender's log shows a refusal, not RFC 1047's warning (SOAK_ALLOW_DATAEND451=1 accepts them)"
BAD_ARRIVED=0
for a in $BAD; do
	c=$(mailbox_count "$a")
	BAD_ARRIVED=$((BAD_ARRIVED + c))
	[ "$c" = 0 ] || finding "$c message(s) to $a arrived: its policy was never proven"
done
BAD_SENT=$(awk -v b=" $BAD " '{for (i = 2; i <= NF; i++) if (index(b, " " $i " ")) n++} END {print n + 0}' "$T/sent")
_postqueue "$SD/etc"
BAD_QUEUED=$(python3 -c '
import json, sys
bad = set(sys.argv[1:])
print(sum(1 for l in open(0) for r in json.loads(l).get("recipients", []) if r["address"] in bad))' $BAD <"$PQ_OUT")
[ "$BAD_QUEUED" = "$BAD_SENT" ] || finding "bad recipients: $BAD_SENT sent, $BAD_QUEUED still queued"
bounced=$(count_log "$SD/maillog" "status=bounced")
[ "$bounced" = 0 ] || finding "$bounced recipient(s) bounced (a 5xx loses mail): $(grep -m3 status=bounced "$SD/maillog")"
# every enf.test message over TLS at the receiver
clear=0
for f in $(mailbox_files alice@enf.test); do
	[ -n "$(received_tls "$f")" ] || { clear=$((clear + 1)); log "enf.test in cleartext: $f"; }
done
[ "$clear" = 0 ] || finding "$clear enf.test message(s) arrived without TLS"
clear_tls=0
for f in $(mailbox_files bob@tls.test); do
	[ -n "$(received_tls "$f")" ] || clear_tls=$((clear_tls + 1))
done
[ "$clear_tls" = 0 ] || finding "$clear_tls tls.test message(s) arrived without TLS (its MX always offers it)"
# crashes: worker exits other than by our SIGKILL (or the daemon's own)
killed=" $(tr '\n' ' ' <"$T/killed" 2>/dev/null) "
crash=0
while read -r line; do
	p=$(sed -nE 's/.* pid=([0-9]+) status=.*/\1/p' <<<"$line")
	case $line in
	*status=exit:0*) ;;
	*status=signal:9*) case $killed in *" $p "*) ;; *) crash=$((crash + 1)); log "unexpected: $line";; esac ;;
	*) crash=$((crash + 1)); log "unexpected: $line" ;;
	esac
done < <(cat "${LOGS[@]}" | grep -E 'event=worker-exit ')
[ "$crash" = 0 ] || finding "$crash worker exit(s) not of our making"
hung=$(cat "${LOGS[@]}" | grep -c 'event=worker-hung')
[ "$hung" = 0 ] || finding "$hung worker(s) hung (no heartbeat)"
if grep -lsE 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ' "${LOGS[@]}" >"$T/san"; then
	finding "sanitizer report in $(tr '\n' ' ' <"$T/san")"
	grep -hsE -A25 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ' "${LOGS[@]}" | head -n 80 >&2
fi
# fds: at idle, the same as at the start (a leak grows them); RSS: reported,
# a finding past 3x the start plus 64 MB
[ "$E_SF" -le "$((B_SF + 2))" ] || finding "supervisor fds $B_SF -> $E_SF"
[ "$E_WF" -le "$((B_WF + 2))" ] || finding "worker fds $B_WF -> $E_WF"
# (an ASan build's freed memory sits in its quarantine, 256 MB by default:
# its RSS grows to that by design and is only reported)
ASAN=0
ldd "$MXGUARD" 2>/dev/null | grep -q libasan && ASAN=1
if [ "$ASAN" = 1 ]; then
	log "ASan build: RSS not judged (quarantine)"
else
	[ "$E_SR" -le "$((B_SR * 3 + 65536))" ] || finding "supervisor RSS ${B_SR}kB -> ${E_SR}kB"
	[ "$E_WR" -le "$((B_WR * 3 + 65536))" ] || finding "worker RSS ${B_WR}kB -> ${E_WR}kB"
fi
# Per process (series: pid and start time), from $T/samples.  A series
# with three idle samples or more (start, lulls, end: it lived through at
# least one whole stretch between two lulls, a third of the run with the
# default two lulls) is judged from its second idle sample (the first may
# come before it served anything: its libraries, caches and connections
# not set up yet) to its last: fds more than SOAK_FD_SLACK (2) above, or
# RSS more than SOAK_RSS_SLACK kB (16384; not with ASan) above, is a
# finding.  Every series is reported; $T/series has the table.
python3 - "$T/samples" "$SOAK_FD_SLACK" "$SOAK_RSS_SLACK" "$ASAN" >"$T/series" <<'PY'
import sys
from collections import OrderedDict
path, fd_slack, rss_slack, asan = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
series = OrderedDict()
for line in open(path):
    f = line.split()
    if len(f) != 7:
        continue
    t, pid, st, role, fds, rss, tag = int(f[0]), f[1], f[2], f[3], int(f[4]), int(f[5]), f[6]
    if fds == 0 and rss == 0:   # gone between ps and /proc
        continue
    s = series.setdefault((pid, st), {"role": role, "t": [], "fds": [], "rss": [], "idle": []})
    s["t"].append(t); s["fds"].append(fds); s["rss"].append(rss)
    if tag.startswith("idle:"):
        # the least of the readings with the same tag
        if s["idle"] and s["idle"][-1][0] == tag[5:]:
            _, f0, r0 = s["idle"][-1]
            s["idle"][-1] = (tag[5:], min(f0, fds), min(r0, rss))
        else:
            s["idle"].append((tag[5:], fds, rss))
judged = bad = 0
short = {"supervisor": 0, "worker": 0}
for (pid, st), s in series.items():
    lived = s["t"][-1] - s["t"][0]
    idle = s["idle"]
    desc = "%s pid=%s lived=%ds samples=%d fds_max=%d rss_max_kB=%d idle=%s" % (
        s["role"], pid, lived, len(s["t"]), max(s["fds"]), max(s["rss"]),
        ",".join("%s:%d/%d" % i for i in idle) or "-")
    if len(idle) < 3:
        short[s["role"]] += 1
        print("short  " + desc)
        continue
    judged += 1
    ref, last = idle[1], idle[-1]
    why = []
    if last[1] > ref[1] + fd_slack:
        why.append("fds %d -> %d" % (ref[1], last[1]))
    if not asan and last[2] > ref[2] + rss_slack:
        why.append("RSS %d -> %d kB" % (ref[2], last[2]))
    if why:
        bad += 1
        print("LEAK   %s (%s, %s to %s)" % (desc, "; ".join(why), ref[0], last[0]))
    else:
        print("ok     %s (fds %+d, RSS %+d kB, %s to %s)" % (desc, last[1] - ref[1], last[2] - ref[2], ref[0], last[0]))
print("TOTAL judged=%d leaking=%d short_supervisors=%d short_workers=%d" % (judged, bad, short["supervisor"], short["worker"]))
PY
grep -v '^short ' "$T/series" | sed 's/^/series: /' >&2
SERIES=$(sed -n 's/^TOTAL //p' "$T/series")
read -r S_JUDGED S_LEAK <<<"$(sed -nE 's/^TOTAL judged=([0-9]+) leaking=([0-9]+).*/\1 \2/p' "$T/series")"
[ "${S_LEAK:-0}" = 0 ] || finding "$S_LEAK long-lived process(es) grew between idle samples: $(grep '^LEAK' "$T/series" | tr '\n' ' ')"
[ "${S_JUDGED:-0}" -gt 0 ] || [ "$SOAK_LULLS" -lt 2 ] || finding "no process lived through two lulls: nothing judged for leaks"

ev=$(for k in hup killworker rcvstop stopreset reset reject restart redis; do printf '%s=%s,' "$k" "${EV[$k]:-0}"; done)
result=PASS
[ "${#FAILS[@]}" = 0 ] || result=FAIL
summary="soak: seed=$SOAK_SEED chaos=${SOAK_SECONDS}s total=$((SECONDS - T0))s sent=$SENT good_rcpts=$EXPECT arrived=$ARRIVED lost=$LOST dups_rfc1047=$DUPS_OK dups_dataend451=$DUPS_DE dups_other=$DUPS bad_rcpts=$BAD_SENT bad_queued=$BAD_QUEUED bad_arrived=$BAD_ARRIVED events=${ev%,} starts=$STARTS fds_sup=$B_SF->$E_SF fds_worker=$B_WF->$E_WF rss_sup_kB=$B_SR->$E_SR rss_worker_kB=$B_WR->$E_WR series:${SERIES// /,} result=$result"
echo "$summary"
echo "$summary" >>/tmp/mxg-soak-summaries.log
if [ "$result" = FAIL ]; then
	for f in "${FAILS[@]}"; do echo "  finding: $f"; done
	[ "${MXG_KEEP:-0}" = 1 ] || MXG_DUMP=0
	fail "${#FAILS[@]} finding(s)"
fi
pass "chaos soak: nothing lost, nothing duplicated outside RFC 1047, nothing to the bad domains, no crash, no leak"
