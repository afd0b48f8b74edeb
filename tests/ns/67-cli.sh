#!/bin/bash
# 67: the command line's conventions.  `--help`/`-h` for the binary and for
# every subcommand print usage and exit 0 without reading a configuration;
# -V/--version names mxguard, OpenSSL, c-ares and libnetfilter_queue; the
# exit-status table of the man page holds for check and policy (0 deliver
# as required, 1 warning, 2 would defer, 3 unknown or error, usage
# included; policy 3 when a DNS lookup it depends on failed) and for the
# others (2 usage).  No network: each probe runs in
# a throwaway network namespace (unshare -n) with only loopback up and an
# unreachable resolver (127.0.0.1:9), the domain's fate set by a tls_policy
# override.  Then check --json on a server whose banner is UTF-8 with one
# invalid byte: the UTF-8 comes out as UTF-8, the bad byte as U+FFFD with
# banner_invalid_utf8 true, absent values as null, and a schema number.
# A U-label domain is its A-label for check as for policy.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/mxg-$$.XXXXXX)
busy_pid=
trap '[ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null; rm -rf "$T"' EXIT

# rc EXPECTED "what" CMD...: the exit status of CMD is EXPECTED
rc() {
	local want=$1 what=$2 got; shift 2
	"$@" >"$T/out" 2>"$T/err"; got=$?
	[ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2; fail "$what: exit $got, want $want"; }
	log "ok: $what: exit $want"
}

rc 0 "mxguard --help" "$MXGUARD" --help
assert "--help shows the exit-status table" grep -q "^exit status:" "$T/out"
assert "--help names every command" bash -c 'for c in run rules status policy check report; do grep -qE "^  $c +[^ ]" "$1" || exit 1; done' _ "$T/out"
rc 0 "mxguard -h" "$MXGUARD" -h
rc 0 "mxguard -c missing --help (no configuration read)" "$MXGUARD" -c "$T/missing.conf" --help
for c in run rules status policy check report; do
	for h in --help -h; do
		rc 0 "mxguard $c $h" "$MXGUARD" -c "$T/missing.conf" "$c" "$h"
		assert "$c $h: its usage on stdout" grep -q "^usage: mxguard .*$c" "$T/out"
		assert "$c $h: the exit-status table" grep -q "^exit status:" "$T/out"
	done
done
for v in -V --version; do
	rc 0 "mxguard $v" "$MXGUARD" "$v"
	cat "$T/out" >&2
	assert "$v: mxguard version" grep -qE "^mxguard [0-9]" "$T/out"
	assert "$v: OpenSSL version" grep -qE "^OpenSSL [0-9]+\.[0-9]+" "$T/out"
	assert "$v: c-ares version" grep -qE "^c-ares [0-9]+\.[0-9]+" "$T/out"
	assert "$v: libnetfilter_queue version" grep -qE "^libnetfilter_queue [0-9]+\.[0-9]+" "$T/out"
done

# usage errors: 3 for check and policy, 2 for the others
rc 2 "unknown option" "$MXGUARD" --bogus
rc 2 "unknown command" "$MXGUARD" bogus
rc 2 "rules without a verb" "$MXGUARD" -c /dev/null rules
rc 2 "status with an extra argument" "$MXGUARD" -c /dev/null status extra
# an option after run (-n: a check meant) started the daemon; now refused
# before anything (timeout: the old code ran on, in a namespace of its own)
rc 2 "run with an argument" timeout -k 5 10 unshare -n "$MXGUARD" -c /dev/null run -n
assert "run -n: says options go before the command" grep -q "options go before the command" "$T/err"
# a daemon whose control connections are all taken answers "error busy"
# (cmd/control.c): status says so on stderr and exits 1, not 0
printf 'control_socket = %s\n' "$T/busy.sock" >"$T/busy.conf"
timeout 20 python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); c.recv(64); c.sendall(b"error busy\n"); c.close()' "$T/busy.sock" &
busy_pid=$!
wait_for 10 "the stand-in control socket" test -S "$T/busy.sock"
rc 1 "status answered \"error busy\"" "$MXGUARD" -c "$T/busy.conf" status
assert "status: the refusal on stderr" grep -q "the daemon answered: error busy" "$T/err"
assert "status: nothing on stdout" [ ! -s "$T/out" ]
wait "$busy_pid"
for c in check policy; do
	rc 3 "$c without a domain" "$MXGUARD" -c /dev/null "$c"
	rc 3 "$c with an unknown option" "$MXGUARD" -c /dev/null "$c" --bogus example.test
	rc 3 "$c with a missing configuration file" "$MXGUARD" -c "$T/missing.conf" "$c" example.test
done
rc 3 "policy with two domains" "$MXGUARD" -c /dev/null policy a.test b.test
rc 3 "check with three arguments" "$MXGUARD" -c /dev/null check a.test 127.0.0.1 extra

mkdir -p "$T/state"
conf() {	# conf NAME [tls_policy level]
	{
		echo "state_dir = $T/state"
		echo "user ="
		echo "steering = none"
		echo "dns_servers = 127.0.0.1:9"
		echo "dns_timeout = 2s"
		[ -z "${2:-}" ] || echo "tls_policy = cli.test $2"
	} >"$T/$1.conf"
}
conf none none
conf encrypt encrypt
conf may may
conf plain
# offline CMD...: in a network namespace of its own, loopback only
offline() { unshare -n bash -c 'ip link set lo up && exec "$@"' _ "$@"; }
M=$MXGUARD

# policy: the override decides even with no resolver; an encrypt verdict
# would deliver (as required, over TLS); without an override the failed
# MX lookup makes the answer "could not find out": 3, said on stderr
rc 0 "policy, override none" offline "$M" -c "$T/none.conf" policy cli.test --json
assert "policy --json: schema, level none, nulls" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["schema"] == 1, j
assert j["domain"] == "cli.test", j
assert j["mx"]["status"] == "servfail" and j["mx"]["hosts"] == [], j
v = j["verdicts"]
assert len(v) == 1 and v[0]["level"] == "none" and v[0]["source"] == "override", j
assert v[0]["address"] is None and v[0]["reason"] is None, j
assert j["mta_sts_policy"] is None and j["mta_sts_note"] is None, j
assert j["exit_status"] == 0, j
' "$T/out"
rc 0 "policy, override encrypt" offline "$M" -c "$T/encrypt.conf" policy cli.test
assert "policy text: encrypt from the override" grep -qE "encrypt +source=override" "$T/out"
assert "policy: no engine log lines without -d" [ ! -s "$T/err" ]
rc 3 "policy, no override, no resolver" offline "$M" -c "$T/plain.conf" policy cli.test
assert "policy: the failed MX lookup on stderr" grep -q "^mxguard: policy: DNS lookup failed: MX cli.test: " "$T/err"

# check: no MX address known (the resolver is unreachable) is unknown
rc 3 "check, MX lookup failed" offline "$M" -c "$T/plain.conf" check cli.test
# with an address: nothing listens there, so the daemon could deliver
# nothing at any level (none is probed too, without STARTTLS): defer
rc 2 "check, override none, nothing listening" offline "$M" -c "$T/none.conf" check cli.test 127.0.0.1
assert "check, none: the probe says it could not connect" grep -qi "connect" "$T/out"
rc 2 "check, override encrypt, nothing listening" offline "$M" -c "$T/encrypt.conf" check cli.test 127.0.0.1 --json
assert "check --json: defer, starttls-not-supported, nulls" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["schema"] == 1, j
h = j["hosts"][0]
assert h["verdict"]["level"] == "encrypt" and h["result"] == "defer", h
assert h["probe"]["banner"] is None and h["probe"]["protocol"] is None, h
assert h["mta_sts"] is None and h["verdict"]["reason"] is None, h
' "$T/out"
# a U-label domain is its A-label for check as for policy and the
# daemon: the domain the MX walk asks for, the output names and the
# verdict is for (check took it as typed)
{ cat "$T/plain.conf"; echo "tls_policy = xn--bcher-kva.test none"; } >"$T/idn.conf"
idn=$'B\xc3\x9ccher.test.'
rc 0 "policy, U-label domain" offline "$M" -c "$T/idn.conf" policy "$idn" --json
assert "policy --json: the A-label" python3 -c '
import json, sys
assert json.load(open(sys.argv[1]))["domain"] == "xn--bcher-kva.test"' "$T/out"
rc 2 "check, U-label domain (nothing listening)" offline "$M" -c "$T/idn.conf" check "$idn" 127.0.0.1 --json
assert "check --json: the A-label, the override's none" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["domain"] == "xn--bcher-kva.test", j
assert j["hosts"][0]["verdict"]["level"] == "none", j' "$T/out"

# a server without STARTTLS, banner "mx.test ESMTP Grüße 日本" + 0xff,
# on loopback inside the throwaway namespace: with `may` the mail would
# go in cleartext (warning, 1); with `encrypt` it would defer (2)
banner=$(printf 'mx.test ESMTP Gr\xc3\xbc\xc3\x9fe \xe6\x97\xa5\xe6\x9c\xac \xff end')
cat >"$T/probe.sh" <<'EOS'
# probe.sh CONF BADSMTP LOG BANNER MXGUARD: in the throwaway namespace
ip link set lo up || exit 90
python3 "$2" --mode nostarttls --listen 127.0.0.1 --port 25 --log "$3" --banner "$4" &
bad=$!
for _ in $(seq 100); do
	ss -ltn | grep -q '127.0.0.1:25 ' && break
	sleep 0.1
done
ss -ltn | grep -q '127.0.0.1:25 ' || { kill $bad; exit 91; }
"$5" -c "$1" check cli.test 127.0.0.1 --json
rc=$?
kill $bad
wait $bad 2>/dev/null
exit $rc
EOS
rc 1 "check, override may, no STARTTLS: warning" unshare -n bash "$T/probe.sh" "$T/may.conf" "$ROOT/tests/lib/badsmtp.py" "$T/bad.log" "$banner" "$M"
cat "$T/out" >&2
assert "check --json: UTF-8 banner as UTF-8, bad byte as U+FFFD, flagged" python3 -c '
import json, sys
raw = open(sys.argv[1], "rb").read()
assert "Grüße 日本".encode() in raw, raw      # not \u00XX per byte
j = json.loads(raw)
p = j["hosts"][0]["probe"]
assert p["banner"] == "mx.test ESMTP Grüße 日本 \ufffd end", p
assert p["banner_invalid_utf8"] is True, p
assert p["connected"] and not p["starttls"] and not p["tls"], p
assert p["check"] is None and p["protocol"] is None, p
assert "error_invalid_utf8" not in p, p
assert j["hosts"][0]["result"] == "deliver", j
' "$T/out"
rc 2 "check, override encrypt, no STARTTLS: defer" unshare -n bash "$T/probe.sh" "$T/encrypt.conf" "$ROOT/tests/lib/badsmtp.py" "$T/bad.log" "$banner" "$M"
pass "mxguard --help, -V, the exit-status table for check and policy, check --json UTF-8, a U-label domain"
