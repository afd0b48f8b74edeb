#!/bin/bash
# mxguard benchmark (issue 6, docs/performance.md).  Run by `make bench`
# (MXGUARD=/abs/path/to/mxguard), as root.  Needs: postfix (smtp-source),
# stunnel4, openssl, iproute2, iptables, python3, cc + libssl-dev;
# optional: linux-perf (profile), gnuplot-nox (plot).
#
# Topology (names unique per run, removed by the EXIT trap):
#
#   [ $NS_S ] snd0 10.26.1.1/24 ---veth--- rcv0 10.26.1.2/24 [ $NS_R ]
#     smtp-source (legacy MTA)             tlssink  :25, :2526 STARTTLS
#     mxguard 127.0.0.1:10025                       :2525 cleartext only
#     mxguard 127.0.0.1:10027 (reuse off)           :2527 STARTTLS
#     stunnel 127.0.0.1:10026 -> 10.26.1.2:2526
#     nat OUTPUT: dport 25 -> REDIRECT 10025, dport 2527 -> REDIRECT 10027,
#                 unless mark 0x4d58
#
# Paths: (a) smtp-source -> 10.26.1.2:2525 (cleartext, direct)
#        (b) smtp-source -> 10.26.1.2:25, diverted through mxguard, STARTTLS
#        (c) smtp-source -> stunnel 127.0.0.1:10026, STARTTLS to :2526
#        (d) smtp-source -> 10.26.1.2:2527, diverted through a second
#            mxguard with upstream_reuse = no (every session its own leg)
#
# Environment knobs:
#   BENCH_OUT=DIR        results directory (default /tmp/mxguard-bench-DATE)
#   BENCH_QUICK=1        smaller message counts (a smoke run, ~3 minutes)
#   BENCH_SKIP=mem,profile,throughput   skip parts
#   BENCH_ONLY="4KB 1/conn:1,10;1MB 1/conn:10"  a subset of the matrix
#   BENCH_PATHS=ab       only some of the paths a, b, c, d
#   BENCH_REUSE=no       mxguard (b) without upstream leg reuse (default yes,
#                        as shipped); (d) always runs without it
#   BENCH_LOG_LEVEL=info mxguard's log level (default warn, like stunnel's)
#   BENCH_HOLD=5000 BENCH_HOLD_MAX=10000 idle-session counts
#   BENCH_WORKERS="1 2"  the `workers` dimension: path b on a few cells with
#                        each value (default "1 2"; "" skips); the matrix,
#                        memory and capacity run with workers = 1
#   BENCH_UPSTREAM_SOURCE=system  mxguard's upstream_source (default auto:
#                        client, the bind to smtp-source's address)
#   BENCH_PAUSE=FILE     once the daemons are up, write their namespaces,
#                        pids and directories to FILE and wait until FILE
#                        is removed (for perf, strace or smtp-source by hand)
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MXGUARD=${MXGUARD:?set MXGUARD=/path/to/mxguard}
[ -x "$MXGUARD" ] || { echo "bench: $MXGUARD not executable" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces)" >&2; exit 1; }
for t in smtp-source stunnel4 unbound drill openssl ip iptables python3 cc; do
	command -v "$t" >/dev/null || { echo "bench: missing $t" >&2; exit 1; }
done

OUT=${BENCH_OUT:-/tmp/mxguard-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
T=$(mktemp -d /tmp/mxbench.XXXXXX)
NS_S="mxb-$$-snd"
NS_R="mxb-$$-rcv"
PIDS=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
	local rc=$? p ns i left
	set +e
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for i in 1 2 3 4 5 6 7 8 9 10; do
		left=""
		for ns in "$NS_S" "$NS_R"; do
			left+=$(ip netns pids "$ns" 2>/dev/null)
		done
		[ -z "$left" ] && break
		for ns in "$NS_S" "$NS_R"; do
			for p in $(ip netns pids "$ns" 2>/dev/null); do
				if [ "$i" -lt 6 ]; then kill -TERM "$p"; else kill -KILL "$p"; fi 2>/dev/null
			done
		done
		sleep 0.5
	done
	ip netns del "$NS_S" 2>/dev/null
	ip netns del "$NS_R" 2>/dev/null
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- tools -----------------------------------------------------------------
log "building tlssink, sesstime.so and hstime into $T"
cc -O2 -Wall -Wextra -o "$T/tlssink" "$HERE/tlssink.c" -lssl -lcrypto || exit 1
cc -O2 -Wall -shared -fPIC -o "$T/sesstime.so" "$HERE/sesstime.c" -ldl || exit 1
cc -O2 -Wall -Wextra -o "$T/hstime" "$HERE/hstime.c" -lssl -lcrypto || exit 1
# the floor under a new upstream connection: OpenSSL's own CPU for one
# TLS 1.3 handshake per side, no network (docs/performance.md)
"$T/hstime" 2000 >"$OUT/hstime.txt" 2>&1 || { cat "$OUT/hstime.txt" >&2; exit 1; }
while read -r line; do log "hstime: $line"; done <"$OUT/hstime.txt"

# --- certificates: a test CA and an ECDSA P-256 server certificate ----------
log "certificates"
(
	cd "$T" &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout sink.key -out sink.csr -subj /CN=sink.test 2>/dev/null &&
	printf 'subjectAltName=DNS:sink.test,IP:10.26.1.2\n' >ext.cnf &&
	openssl x509 -req -in sink.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	    -days 2 -extfile ext.cnf -out sink.pem 2>/dev/null
) || { log "certificate generation failed"; exit 1; }

# --- namespaces --------------------------------------------------------------
log "namespaces $NS_S $NS_R"
ip netns add "$NS_S" && ip netns add "$NS_R" || exit 1
ip link add snd0 netns "$NS_S" type veth peer name rcv0 netns "$NS_R" || exit 1
ip -n "$NS_S" addr add 10.26.1.1/24 dev snd0
ip -n "$NS_R" addr add 10.26.1.2/24 dev rcv0
for ns in "$NS_S" "$NS_R"; do
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" \
	    net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=16384 \
	    net.ipv4.tcp_max_syn_backlog=16384
done
ip -n "$NS_S" link set snd0 up
ip -n "$NS_R" link set rcv0 up

NSX_S="ip netns exec $NS_S"
NSX_R="ip netns exec $NS_R"
$NSX_S iptables -t nat -N MXGUARD_OUT
$NSX_S iptables -t nat -A OUTPUT -p tcp --dport 25 -j MXGUARD_OUT
$NSX_S iptables -t nat -A OUTPUT -p tcp --dport 2527 -j MXGUARD_OUT
$NSX_S iptables -t nat -A MXGUARD_OUT -m mark --mark 0x4d58 -j RETURN
$NSX_S iptables -t nat -A MXGUARD_OUT -p tcp --dport 2527 -j REDIRECT --to-ports 10027
$NSX_S iptables -t nat -A MXGUARD_OUT -p tcp -j REDIRECT --to-ports 10025
# mxguard's rule 0 (docs/rules.md): a SYN that conntrack files under an old
# connection that was not diverted (one of mxguard's own upstream
# connections that the sink reset, its port reused by smtp-source) is not
# NEW, skips nat and would go to the sink directly; dropped, it is resent
# and diverted once the entry expired
$NSX_S iptables -t mangle -A OUTPUT -p tcp -m multiport --dports 25,2527,2528 \
    --syn -m conntrack ! --ctstate NEW,DNAT -m mark ! --mark 0x4d58 -j DROP

wait_port() {	# wait_port NSX HOST PORT
	local i
	for i in $(seq 1 100); do
		$1 python3 -c "import socket,sys; socket.create_connection(('$2',$3),1).close()" \
		    2>/dev/null && return 0
		sleep 0.1
	done
	log "nothing listens on $2:$3"
	return 1
}

# --- daemons -----------------------------------------------------------------
# A resolver, as every gateway has: mxguard evaluates the recipient domain's
# policy for every message (MX, _mta-sts TXT, TLSA) and its DNS cache keeps
# the answers, NXDOMAINs included, for their TTL, as in production.  Without
# one, every message would pay for failed lookups.
log "unbound (resolver for sink.test)"
cat >"$T/unbound.conf" <<EOC
server:
    interface: 10.26.1.2
    port: 53
    access-control: 10.26.0.0/16 allow
    username: ""
    chroot: ""
    directory: "$T"
    pidfile: ""
    do-daemonize: no
    use-syslog: no
    verbosity: 0
    do-ip6: no
    local-zone: "test." static
    local-data: "test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 3600"
    local-data: "sink.test. 3600 IN MX 10 sink.test."
    local-data: "sink.test. 3600 IN A 10.26.1.2"
remote-control:
    control-enable: no
EOC
$NSX_R unbound -d -c "$T/unbound.conf" >"$OUT/unbound.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
	$NSX_S drill -Q @10.26.1.2 sink.test MX 2>/dev/null | grep -q 'sink.test' && break
	sleep 0.1
done
$NSX_S drill -Q @10.26.1.2 sink.test MX 2>/dev/null | grep -q 'sink.test' ||
    { log "unbound does not answer"; cat "$OUT/unbound.log" >&2; exit 1; }

log "tlssink"
$NSX_R "$T/tlssink" -c "$T/sink.pem" -k "$T/sink.key" -t 10.26.1.2:25 \
    -t 10.26.1.2:2526 -t 10.26.1.2:2527 -t 10.26.1.2:2528 \
    -p 10.26.1.2:2525 -s "$T/sink.stats" \
    >"$OUT/tlssink.log" 2>&1 &
SINK_PID=$!
PIDS+=("$SINK_PID")
wait_port "$NSX_R" 10.26.1.2 2525 || exit 1

mxguard_conf() {	# mxguard_conf NAME PORT MAX_SESSIONS REUSE [WORKERS]
	cat >"$T/$1.conf" <<EOF
workers = ${5:-1}
listen = 127.0.0.1:$2
user =
log_level = ${BENCH_LOG_LEVEL:-warn}
max_sessions = $3
tls_ca_file = $T/ca.pem
steering = none
upstream_reuse = $4
upstream_source = ${BENCH_UPSTREAM_SOURCE:-auto}
dns_servers = 10.26.1.2
control_socket = $T/$1.sock
EOF
}
wait_workers() {	# wait_workers CONF N: all N workers of that daemon up
	local i
	for i in $(seq 1 100); do
		"$MXGUARD" -c "$1" status 2>/dev/null |
		    grep -q "^mxguard_workers $2\$" && return 0
		sleep 0.1
	done
	log "mxguard ($1): $2 workers not up"
	return 1
}
start_mxguard() {	# start_mxguard MAX_SESSIONS [WORKERS] -> MXG_PID
	mxguard_conf mxguard 10025 "$1" "${BENCH_REUSE:-yes}" "${2:-1}"
	$NSX_S "$MXGUARD" -c "$T/mxguard.conf" run >>"$OUT/mxguard.log" 2>&1 &
	MXG_PID=$!
	PIDS+=("$MXG_PID")
	wait_port "$NSX_S" 127.0.0.1 10025 || return 1
	# with workers, every one of them up
	[ "${2:-1}" -gt 1 ] || return 0
	wait_workers "$T/mxguard.conf" "$2"
}
# path d: the same binary without upstream leg reuse, beside b in the same
# run (each session does its own connect, STARTTLS and handshake upstream)
start_mxguard_noreuse() {	# -> MXG_NR_PID
	mxguard_conf mxguard-nr 10027 12000 no "${BENCH_D_WORKERS:-1}"
	$NSX_S "$MXGUARD" -c "$T/mxguard-nr.conf" run >>"$OUT/mxguard-nr.log" 2>&1 &
	MXG_NR_PID=$!
	PIDS+=("$MXG_NR_PID")
	wait_port "$NSX_S" 127.0.0.1 10027
}
stop_mxguard() {
	kill -TERM "$MXG_PID" 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$MXG_PID" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$MXG_PID" 2>/dev/null
}

log "mxguard $MXGUARD (and a second one with upstream_reuse = no)"
start_mxguard 12000 || exit 1
start_mxguard_noreuse || exit 1

log "stunnel"
cat >"$T/stunnel.conf" <<EOF
foreground = yes
pid =
output = $OUT/stunnel.log
debug = warning
[smtp]
client = yes
accept = 127.0.0.1:10026
connect = 10.26.1.2:2526
protocol = smtp
verifyChain = yes
CAfile = $T/ca.pem
checkHost = sink.test
EOF
$NSX_S stunnel4 "$T/stunnel.conf" >>"$OUT/stunnel.log" 2>&1 &
STUNNEL_PID=$!
PIDS+=("$STUNNEL_PID")
wait_port "$NSX_S" 127.0.0.1 10026 || exit 1

# quick functional check of each path before measuring
for dst in 10.26.1.2:2525 10.26.1.2:25 127.0.0.1:10026 10.26.1.2:2527; do
	$NSX_S smtp-source -s 1 -m 1 -l 100 -f bench@src.test -t sink@sink.test -M src.test "$dst" >"$T/smoke.out" 2>&1 ||
	    { log "smoke test to $dst failed: $(cat "$T/smoke.out")"; exit 1; }
done
kill -USR1 "$SINK_PID"; sleep 1.2
grep -q '^msgs 4$' "$T/sink.stats" ||
    { log "smoke: sink did not receive 4 messages"; cat "$T/sink.stats" >&2; exit 1; }

# --- measurements ----------------------------------------------------------------
# BENCH_PAUSE=FILE: write the set-up's variables to FILE and wait until it
# is removed (experiments by hand against the running daemons)
if [ -n "${BENCH_PAUSE:-}" ]; then
	printf 'NS_S=%s NS_R=%s T=%s OUT=%s SINK_PID=%s MXG_PID=%s MXG_NR_PID=%s STUNNEL_PID=%s\n' \
	    "$NS_S" "$NS_R" "$T" "$OUT" "$SINK_PID" "$MXG_PID" "$MXG_NR_PID" "$STUNNEL_PID" >"$BENCH_PAUSE"
	log "paused: rm $BENCH_PAUSE to go on"
	while [ -e "$BENCH_PAUSE" ]; do sleep 1; done
fi
MXGUARD_COMMIT=$(git -C "$HERE" describe --always --dirty 2>/dev/null)
export NS_S NS_R T OUT SINK_PID STUNNEL_PID MXG_PID MXG_NR_PID MXGUARD MXGUARD_COMMIT
export BENCH_QUICK=${BENCH_QUICK:-0} BENCH_SKIP=${BENCH_SKIP:-}
export SESSTIME_SO="$T/sesstime.so"
python3 "$HERE/bench.py" throughput profile || exit 1

# the workers dimension: path b again with each `workers` value
case ",$BENCH_SKIP," in *,workers,*) ;; *)
	rm -f "$OUT/workers.jsonl"
	for w in ${BENCH_WORKERS-1 2}; do
		log "workers: fresh mxguard with workers = $w"
		stop_mxguard
		start_mxguard 12000 "$w" || exit 1
		export MXG_PID
		python3 "$HERE/bench.py" workers "$w" || exit 1
	done
	stop_mxguard
	start_mxguard 12000 || exit 1
	export MXG_PID
	;;
esac

# --- steering: one NFQUEUE in the supervisor against --queue-balance --------
# Port 2528 only, so the matrix's rules above are untouched.  Three set-ups,
# each with fresh daemons, the same cells, rounds interleaved:
#   none     workers = 2, no queue: every 2528 flow REDIRECTed (baseline)
#   one      workers = 2, steering = nfqueue: one queue read by the
#            supervisor (as shipped), --queue-num
#   balance  --queue-balance over two queues, each read by its own
#            single-process mxguard with its own intercept mark and port:
#            the queue's reader is also the process that accepts the flow,
#            the best case of that design (with SO_REUSEPORT workers the
#            two would be chosen by two different hashes)
# A guard REJECTs a 2528 SYN that no verdict marked, so a queue without a
# reader fails the run instead of delivering around mxguard; bench.py
# also checks that every connection got a verdict.
ST_PIDS=()
steer_conf() {	# steer_conf NAME PORT WORKERS STEERING QUEUE MARK
	cat >"$T/$1.conf" <<EOF
workers = $3
listen = 127.0.0.1:$2
divert_port = $2
user =
log_level = ${BENCH_LOG_LEVEL:-warn}
max_sessions = 12000
tls_ca_file = $T/ca.pem
steering = $4
nfqueue_num = $5
intercept_mark = $6
fail_mode = closed
upstream_reuse = yes
dns_servers = 10.26.1.2
control_socket = $T/$1.sock
EOF
}
steer_rules() {	# steer_rules off|none|one|balance
	local ipt="$NSX_S iptables" spec m
	$ipt -t mangle -D OUTPUT -p tcp --dport 2528 -j MXB_STEER 2>/dev/null
	$ipt -t mangle -F MXB_STEER 2>/dev/null; $ipt -t mangle -X MXB_STEER 2>/dev/null
	$ipt -t nat -D OUTPUT -p tcp --dport 2528 -j MXB_DIVERT 2>/dev/null
	$ipt -t nat -F MXB_DIVERT 2>/dev/null; $ipt -t nat -X MXB_DIVERT 2>/dev/null
	$ipt -D OUTPUT -p tcp --dport 2528 -j MXB_GUARD 2>/dev/null
	$ipt -F MXB_GUARD 2>/dev/null; $ipt -X MXB_GUARD 2>/dev/null
	[ "$1" = off ] && return 0
	$ipt -t nat -N MXB_DIVERT || return 1
	$ipt -t nat -I OUTPUT 1 -p tcp --dport 2528 -j MXB_DIVERT || return 1
	if [ "$1" = none ]; then
		$ipt -t nat -A MXB_DIVERT -m mark --mark 0x4d58 -j RETURN &&
		$ipt -t nat -A MXB_DIVERT -p tcp -j REDIRECT --to-ports 10030
		return
	fi
	if [ "$1" = one ]; then spec="--queue-num 2530"; else spec="--queue-balance 2531:2532"; fi
	$ipt -t mangle -N MXB_STEER || return 1
	for m in 0x4d58 0x4d49 0x4d4a; do
		$ipt -t mangle -A MXB_STEER -m mark --mark $m/0xffff \
		    -j CONNMARK --save-mark --nfmask 0xffff --ctmask 0xffff || return 1
	done
	$ipt -t mangle -A MXB_STEER -m connmark ! --mark 0x0/0xffff -j RETURN &&
	$ipt -t mangle -A MXB_STEER -p tcp --syn -m conntrack --ctstate NEW \
	    -j NFQUEUE $spec --queue-bypass &&
	$ipt -t mangle -I OUTPUT 1 -p tcp --dport 2528 -j MXB_STEER &&
	$ipt -t nat -A MXB_DIVERT -p tcp -m connmark --mark 0x4d49/0xffff \
	    -j REDIRECT --to-ports 10031 &&
	$ipt -t nat -A MXB_DIVERT -p tcp -m connmark --mark 0x4d4a/0xffff \
	    -j REDIRECT --to-ports 10032 &&
	$ipt -N MXB_GUARD &&
	$ipt -A MXB_GUARD -p tcp --syn -m conntrack --ctstate NEW \
	    -m connmark --mark 0x0/0xffff -j REJECT --reject-with tcp-reset &&
	$ipt -I OUTPUT 1 -p tcp --dport 2528 -j MXB_GUARD
}
steer_run() {	# steer_run NAME: one daemon for the steering part
	$NSX_S "$MXGUARD" -c "$T/$1.conf" run >>"$OUT/mxguard-steer.log" 2>&1 &
	ST_PIDS+=("$!")
	PIDS+=("$!")
	ST_CONFS+="$T/$1.conf "
}
steer_start() {	# steer_start none|one|balance -> ST_PIDS, ST_CONFS, ST_QOWNER
	ST_PIDS=(); ST_CONFS=""; ST_QOWNER=""
	steer_rules "$1" || { log "steering: rules for $1 failed"; return 1; }
	case $1 in
	none)	steer_conf st-none 10030 2 none 2530 0x4d49
		steer_run st-none
		wait_port "$NSX_S" 127.0.0.1 10030 && wait_workers "$T/st-none.conf" 2 || return 1 ;;
	one)	steer_conf st-one 10031 2 nfqueue 2530 0x4d49
		steer_run st-one
		ST_QOWNER=${ST_PIDS[0]}
		wait_port "$NSX_S" 127.0.0.1 10031 && wait_workers "$T/st-one.conf" 2 || return 1 ;;
	balance)
		steer_conf st-bal1 10031 1 nfqueue 2531 0x4d49
		steer_conf st-bal2 10032 1 nfqueue 2532 0x4d4a
		steer_run st-bal1
		steer_run st-bal2
		wait_port "$NSX_S" 127.0.0.1 10031 && wait_port "$NSX_S" 127.0.0.1 10032 || return 1 ;;
	esac
	# a few messages through the set-up prove the queue readers are
	# bound (the guard refuses a flow no verdict marked)
	$NSX_S smtp-source -s 4 -m 8 -l 100 -f bench@src.test -t sink@sink.test -M src.test 10.26.1.2:2528 >"$T/smoke.out" 2>&1 ||
	    { log "steering: smoke test ($1) failed: $(cat "$T/smoke.out")"; return 1; }
}
steer_stop() {
	local p i
	for p in "${ST_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${ST_PIDS[@]}"; do
		for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	ST_PIDS=()
	steer_rules off
}
case ",$BENCH_SKIP," in *,steering,*) ;; *)
	rm -f "$OUT/steering.jsonl"
	for rep in $(seq 1 "${BENCH_REPEAT:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 1 || echo 3)}"); do
		for mode in none one balance; do
			log "steering: $mode (round $rep)"
			steer_start "$mode" || exit 1
			ST_PIDS_S="${ST_PIDS[*]}" ST_CONFS="$ST_CONFS" ST_QOWNER="$ST_QOWNER" \
			    python3 "$HERE/bench.py" steering "$mode" "$rep" || exit 1
			steer_stop
		done
	done
	;;
esac

case ",$BENCH_SKIP," in *,mem,*) ;; *)
	HOLD=${BENCH_HOLD:-5000}
	HOLD_MAX=${BENCH_HOLD_MAX:-10000}
	log "memory: fresh mxguard, $HOLD idle relayed sessions"
	stop_mxguard
	start_mxguard 12000 || exit 1
	export MXG_PID
	python3 "$HERE/bench.py" memory "$HOLD" || exit 1
	# mxguard needs two descriptors per relayed session: a container
	# without CAP_SYS_RESOURCE cannot raise the hard limit, so hold what fits
	NOFILE=$(ulimit -n)
	FIT=$(( (NOFILE - 40) / 2 ))
	REQ=$HOLD_MAX
	if [ "$FIT" -lt "$HOLD_MAX" ]; then
		log "capacity: open-files limit $NOFILE fits only $FIT relayed sessions (asked $HOLD_MAX)"
		HOLD_MAX=$FIT
	fi
	export BENCH_HOLD_REQUESTED=$REQ BENCH_NOFILE=$NOFILE
	log "capacity: fresh mxguard, $HOLD_MAX idle relayed sessions"
	stop_mxguard
	start_mxguard 12000 || exit 1
	export MXG_PID
	python3 "$HERE/bench.py" capacity "$HOLD_MAX" || exit 1
	;;
esac

# how often rule 0 held a SYN back during the run (each costs that session
# ~10-15 s: a visible outlier in its cell)
$NSX_S iptables -t mangle -L OUTPUT -v -n -x | awk '/DROP/ {print $1}' \
    >"$OUT/stale-syn-drops.txt"
log "stale-SYN drops (rule 0): $(cat "$OUT/stale-syn-drops.txt")"
python3 "$HERE/bench.py" report || exit 1
log "results in $OUT"
