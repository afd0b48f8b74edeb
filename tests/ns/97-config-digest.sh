#!/bin/bash
# 97: which configuration the daemon runs, and what `policy` and `check`
# answer for.  `mxguard status` has "# config digest X, applied T" (the
# digest event=reloaded logs), the metrics mxguard_config_info{digest}
# and mxguard_config_applied_timestamp_seconds.  policy and check read
# the file on disk: while it matches the daemon's they say nothing more;
# edited and not reloaded, the first line on stderr (JSON:
# config_warning, config_digest, daemon_config_digest) says the answer is
# for the file, with both digests, and the exit status stays the
# verdict's; reloaded, the warning is gone.  A reload refused (a rules
# key changed) leaves the daemon's digest, and the warning, as they were.
# With workers = 2: the supervisor's digest, and a worker sent SIGHUP
# itself after another edit (it runs a file nobody checked) is named in
# status and counted in mxguard_config_workers_other.  With no daemon,
# no word.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup

MXG_EXTRA_CONF="dns_servers = 127.0.0.1:9
dns_timeout = 2s
tls_policy = cli.test none"
C=$T/mxguard.conf
M=$MXGUARD
# offline CMD...: policy and check in a network namespace of their own
# (loopback only, no resolver); the control socket is a file
offline() { unshare -n bash -c 'ip link set lo up && exec "$@"' _ "$@"; }
# rc EXPECTED "what" CMD...: the exit status of CMD is EXPECTED
rc() {
	local want=$1 what=$2 got; shift 2
	"$@" >"$T/out" 2>"$T/err"; got=$?
	[ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2; fail "$what: exit $got, want $want"; }
	log "ok: $what: exit $want"
}
# the daemon's digest, from status
running() { "$M" -c "$C" status | sed -n 's/^# config digest \([0-9a-f]\{8\}\), applied .*/\1/p'; }
json_has() {	# json_has FILE PYTHON-EXPR (j: the object)
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert eval(sys.argv[2]), j' "$1" "$2"
}

# both commands, text and JSON, against the daemon's digest $1 and the
# file's $2 (equal: no warning)
both() {
	local d=$1 f=$2 c want
	# (check probes 127.0.0.1:25 even at level none; nothing listens
	# there: 2, would defer)
	for c in policy check; do
		if [ "$c" = check ]; then set -- check cli.test 127.0.0.1; want=2; else set -- policy cli.test; want=0; fi
		rc $want "$c (daemon $d, file $f)" offline "$M" -c "$C" "$@"
		if [ "$d" = "$f" ]; then
			assert "$c: no warning" [ ! -s "$T/err" ]
		else
			assert "$c: the warning first on stderr, both digests" grep -qx "mxguard: $c: warning: this answer is for the configuration file on disk (digest $f), not for the one the daemon runs (digest $d): it takes the file at a reload, or its log says why it refused it" <(head -n 1 "$T/err")
			assert "$c: stdout as ever" grep -q "cli.test" <(head -n 1 "$T/out")
		fi
		rc $want "$c --json (daemon $d, file $f)" offline "$M" -c "$C" "$@" --json
		assert "$c --json: the digests" json_has "$T/out" "j['config_digest'] == '$f' and j['daemon_config_digest'] == '$d'"
		if [ "$d" = "$f" ]; then
			assert "$c --json: no warning" json_has "$T/out" "j['config_warning'] is None"
		else
			assert "$c --json: the warning" json_has "$T/out" "'configuration file on disk (digest $f)' in j['config_warning']"
			assert "$c --json: nothing on stderr" [ ! -s "$T/err" ]
		fi
	done
}

mxg_start "workers = 1"
d0=$(running)
[[ "$d0" =~ ^[0-9a-f]{8}$ ]] || fail "status: no config digest line"
assert "status: when it was applied, UTC" grep -qE '^# config digest [0-9a-f]{8}, applied [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' <("$M" -c "$C" status)
"$M" -c "$C" status --metrics >"$T/metrics"
assert "metrics: mxguard_config_info" grep -qx "mxguard_config_info{digest=\"$d0\"} 1" "$T/metrics"
assert "metrics: mxguard_config_applied_timestamp_seconds" grep -qE '^mxguard_config_applied_timestamp_seconds [0-9]{10}$' "$T/metrics"
assert "metrics: no workers, no mxguard_config_workers_other" [ "$(grep -c mxguard_config_workers_other "$T/metrics")" = 0 ]
both "$d0" "$d0"

# edited, not reloaded: the answer is for the file
echo "tls_policy = edit.test encrypt" >>"$C"
rc 0 "policy --json for the edited file's digest" offline "$M" -c "$C" policy cli.test --json
d1=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["config_digest"])' "$T/out")
[ "$d1" != "$d0" ] || fail "the edit did not change the file's digest"
assert "status: the daemon still runs $d0" [ "$(running)" = "$d0" ]
both "$d0" "$d1"

# reloaded: the daemon runs the file, no warning
kill -HUP "$MXG_PID"
wait_for 15 "event=reloaded digest=$d1" grep -q "event=reloaded .*digest=$d1" "$MXLOG"
assert "status: the daemon runs $d1" [ "$(running)" = "$d1" ]
assert "metrics: the new digest only" bash -c '"$1" -c "$2" status --metrics | grep "^mxguard_config_info" | grep -qx "mxguard_config_info{digest=\"$3\"} 1"' _ "$M" "$C" "$d1"
both "$d1" "$d1"

# a reload refused (a rules key changed): the daemon keeps $d1
sed -i 's/^upstream_mark = .*/upstream_mark = 0x7777/' "$C"
n=$(mx_count "event=reload-failed ")
kill -HUP "$MXG_PID"
_refused() { [ "$(mx_count "event=reload-failed ")" -gt "$n" ]; }
wait_for 15 "the refused reload" _refused
assert "status: a refused reload leaves $d1" [ "$(running)" = "$d1" ]
rc 0 "policy after the refused reload" offline "$M" -c "$C" policy cli.test
assert "policy: the warning names the daemon's $d1" grep -q "(digest $d1): it takes the file" "$T/err"
mxg_stop

# no daemon: no word
rc 0 "policy, no daemon" offline "$M" -c "$C" policy cli.test
assert "policy, no daemon: no warning" [ ! -s "$T/err" ]
rc 2 "check --json, no daemon" offline "$M" -c "$C" check cli.test 127.0.0.1 --json
assert "check --json, no daemon: null" json_has "$T/out" "j['daemon_config_digest'] is None and j['config_warning'] is None"

# workers = 2: the supervisor's digest; a worker sent SIGHUP itself
mxg_start "workers = 2"
d2=$(running)
_workers_up() { [ "$(mx_count "event=worker-start ")" -ge 2 ]; }
wait_for 15 "two workers" _workers_up
assert "workers: mxguard_config_workers_other 0" grep -qx "mxguard_config_workers_other 0" <("$M" -c "$C" status --metrics)
both "$d2" "$d2"
echo "tls_policy = edit2.test encrypt" >>"$C"
kill -HUP "$MXG_PID"
wait_for 15 "event=reload-checked" grep -q "event=reload-checked .*digest=" "$MXLOG"
d3=$(sed -n 's/.*event=reload-checked .*digest=\([0-9a-f]\{8\}\).*/\1/p' "$MXLOG" | tail -n 1)
_both_reloaded() { [ "$(mx_count "event=reloaded .*digest=$d3")" = 2 ]; }
wait_for 15 "both workers on $d3" _both_reloaded
assert "workers: status on the supervisor's $d3" [ "$(running)" = "$d3" ]
assert "workers: none on another" grep -qx "mxguard_config_workers_other 0" <("$M" -c "$C" status --metrics)
both "$d3" "$d3"
echo "tls_policy = edit3.test encrypt" >>"$C"
w0=$(sed -n 's/.*event=worker-start worker=0 pid=\([0-9]*\).*/\1/p' "$MXLOG" | tail -n 1)
kill -HUP "$w0"
_w0_reloaded() { [ "$(mx_count "event=reloaded ")" -ge 3 ]; }
wait_for 15 "worker 0's own reload" _w0_reloaded
"$M" -c "$C" status >"$T/status"
assert "status: worker 0 runs another digest, named" grep -qE "^# worker 0 runs config digest [0-9a-f]{8}, not $d3$" "$T/status"
assert "status: the supervisor's still $d3" [ "$(running)" = "$d3" ]
assert "metrics: mxguard_config_workers_other 1" grep -qx "mxguard_config_workers_other 1" <("$M" -c "$C" status --metrics)
pass "status and metrics name the configuration the daemon runs; policy and check warn while the file on disk is another"
