# shellcheck shell=bash
# Redis for the shared-state scenarios (tests/ns/73-*, 74-*).  Source after
# ns.sh.
#
#   redis_start NS ADDR PORT [PASSWORD]   redis-server in NS on ADDR:PORT, no
#                                          persistence, data and log in
#                                          $T/redis-ADDR-PORT; waits for the port
#   redis_kill                             SIGKILL (Redis going away), waits
#   rcli ARGS...                           redis-cli against the last started
#                                          server (its namespace, password)
# The process is started with bg (ns.sh), so the harness's cleanup ends it.

REDIS_PID=""
REDIS_NS=""
REDIS_ADDR=""
REDIS_PORT=""
REDIS_PASS=""

redis_start() {
	local ns=$1 addr=$2 port=$3 pass=${4:-} d
	d=$T/redis-$addr-$port
	mkdir -p "$d"
	local args=(--bind "$addr" --port "$port" --dir "$d" --save ""
		--appendonly no --protected-mode no --daemonize no
		--logfile "$d/redis.log")
	[ -n "$pass" ] && args+=(--requirepass "$pass")
	REDIS_NS=$ns REDIS_ADDR=$addr REDIS_PORT=$port REDIS_PASS=$pass
	bg "$ns" "$d/out" redis-server "${args[@]}"
	REDIS_PID=$BG_PID
	wait_port "$ns" "$addr" "$port"
	log "redis: $addr:$port in $ns (pid $REDIS_PID)"
}

redis_kill() {
	[ -n "$REDIS_PID" ] || return 0
	kill -KILL "$REDIS_PID" 2>/dev/null
	wait "$REDIS_PID" 2>/dev/null
	REDIS_PID=""
	wait_for 10 "redis port closed" _redis_closed
}
_redis_closed() { ! _port_open "$REDIS_NS" "$REDIS_ADDR" "$REDIS_PORT"; }

rcli() {
	if [ -n "$REDIS_PASS" ]; then
		REDISCLI_AUTH=$REDIS_PASS ip netns exec "$REDIS_NS" redis-cli \
			-h "$REDIS_ADDR" -p "$REDIS_PORT" --no-auth-warning "$@"
	else
		ip netns exec "$REDIS_NS" redis-cli -h "$REDIS_ADDR" -p "$REDIS_PORT" "$@"
	fi
}

# metric FILE NAME{LABELS}: the value of one metric in a scrape (0 if absent).
metric() {
	awk -v n="$2" '$1 == n {print $2; found=1} END {if (!found) print 0}' "$1"
}
