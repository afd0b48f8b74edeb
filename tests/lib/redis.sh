# shellcheck shell=bash
# Redis for the shared-state scenarios (tests/ns/73-*, 74-*).  Source after
# ns.sh.
#
#   redis_start NS ADDR PORT [PASSWORD]   redis-server in NS on ADDR:PORT, no
#                                          persistence, data and log in
#                                          $T/redis-ADDR-PORT; waits for the port
#     with REDIS_USER=NAME: PASSWORD is that ACL user's, limited to the
#       mxguard: keys and the commands docs/deployment.md lists; the
#       default user is off
#     with REDIS_TLS=NAME: TLS only (tls-port PORT, port 0), as in
#       docs/deployment.md: a server certificate for NAME from the test
#       CA ($T/pki/redis-server.*), tls-auth-clients yes; a client
#       certificate for the tests' own redis-cli ($T/pki/redis-cli.*)
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
	# a config file: ACL users cannot be given on the command line
	{
		echo "bind $addr"
		echo "dir $d"
		echo 'save ""'
		echo "appendonly no"
		echo "protected-mode no"
		echo "daemonize no"
		echo "logfile $d/redis.log"
		if [ -n "${REDIS_TLS:-}" ]; then
			echo "port 0"
			echo "tls-port $port"
			echo "tls-cert-file $T/pki/redis-server.crt"
			echo "tls-key-file $T/pki/redis-server.key"
			echo "tls-ca-cert-file $T/pki/ca.crt"
			echo "tls-auth-clients yes"
		else
			echo "port $port"
		fi
		if [ -n "${REDIS_USER:-}" ]; then
			[ -n "$pass" ] || fail "redis_start: REDIS_USER needs a password"
			echo "user $REDIS_USER on >$pass ~mxguard:* +get +set +eval +ping"
			echo "user default off"
		elif [ -n "$pass" ]; then
			echo "requirepass $pass"
		fi
	} >"$d/redis.conf"
	if [ -n "${REDIS_TLS:-}" ]; then
		make_cert redis-server "$REDIS_TLS"
		make_cert redis-cli redis-cli.test client
	fi
	REDIS_NS=$ns REDIS_ADDR=$addr REDIS_PORT=$port REDIS_PASS=$pass
	bg "$ns" "$d/out" redis-server "$d/redis.conf"
	REDIS_PID=$BG_PID
	wait_port "$ns" "$addr" "$port"
	log "redis: $addr:$port in $ns (pid $REDIS_PID${REDIS_TLS:+, TLS as $REDIS_TLS}${REDIS_USER:+, ACL user $REDIS_USER})"
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
	local opts=(-h "$REDIS_ADDR" -p "$REDIS_PORT")
	[ -n "${REDIS_TLS:-}" ] && opts+=(--tls --sni "$REDIS_TLS"
		--cacert "$T/pki/ca.crt" --cert "$T/pki/redis-cli.crt"
		--key "$T/pki/redis-cli.key")
	[ -n "${REDIS_USER:-}" ] && opts+=(--user "$REDIS_USER")
	if [ -n "$REDIS_PASS" ]; then
		REDISCLI_AUTH=$REDIS_PASS ip netns exec "$REDIS_NS" redis-cli \
			"${opts[@]}" --no-auth-warning "$@"
	else
		ip netns exec "$REDIS_NS" redis-cli "${opts[@]}" "$@"
	fi
}

# metric FILE NAME{LABELS}: the value of one metric in a scrape (0 if absent).
metric() {
	awk -v n="$2" '$1 == n {print $2; found=1} END {if (!found) print 0}' "$1"
}
