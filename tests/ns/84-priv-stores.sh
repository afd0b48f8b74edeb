#!/bin/bash
# 84: the LMDB stores in state_dir are opened by the unprivileged `user`
# only, never by root.  state_dir belongs to `user`, so whatever runs as
# that user (a compromised worker) can plant a symbolic link there, e.g.
# history.mdb-lock -> a root-owned file, for root to open read-write on
# the next start or worker restart.  Started as root with user = nobody:
# (a) workers = 2, tlsrpt_enable: every store file (sts-cache.mdb,
#     history.mdb, tlsrpt.mdb and their -lock files) is nobody's;
# (b) nobody replaces history.mdb-lock and tlsrpt.mdb with links to
#     root-owned files and a worker is killed: the worker started again
#     refuses both links and says so, and the files stay as they were,
#     root's;
# (c) such links planted before a start with user empty (root by
#     configuration): the check before mdb_env_open() alone refuses them;
# (d) `mxguard policy`, `check` and `report show` run as root follow no
#     planted link, and the store files they make are nobody's; run as
#     nobody (not root) they work as before; with the MTA-STS cache
#     refused, a domain without a fetched policy is deferred; policy and
#     check read a Redis client key only root reads (before the drop);
# (e) store files root made before (an upgrade) are given to nobody at
#     the next start, but a root file hard-linked in is left alone.
# In (a), (b) and (c) every worker, the worker started again and the
# single process run under the seccomp filter that denies raw and packet
# sockets (core/sandbox.h: /proc/PID/status "Seccomp: 2", no_new_privs),
# even as root; the supervisor, which stays root to start workers, not.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
command -v setpriv >/dev/null || fail "setpriv not installed (util-linux)"
ns_setup

conf() {	# FILE STATE_DIR USER [more lines]
	cat >"$1" <<EOC
listen = 127.0.0.1:$MXG_PORT
steering = none
user = $3
state_dir = $2
control_socket = $T/run/control.sock
log_level = debug
tlsrpt_enable = yes
tls_policy = cli.test none
${4:-}
EOC
}
STORES="sts-cache.mdb sts-cache.mdb-lock history.mdb history.mdb-lock tlsrpt.mdb tlsrpt.mdb-lock"
_all_there() {	# DIR: every store file exists
	local f
	for f in $STORES; do [ -e "$1/$f" ] || return 1; done
}
# owners DIR: "file:owner" of every store file, for the log
owners() { (cd "$1" && stat -c '%n:%U' $STORES 2>&1 | tr '\n' ' '); }
# not_nobodys DIR: the store files (and DIR) that are not nobody's
not_nobodys() { find "$1" -maxdepth 1 ! -user nobody -printf '%f:%u '; }
# victim NAME: a root-owned file, 0644 (root could write it, nobody not)
victim() { head -c 4096 /dev/urandom >"$T/$1"; chmod 0644 "$T/$1"; sha256sum "$T/$1" >"$T/$1.sum"; }
intact() {	# NAME: content and owner as victim() left them
	sha256sum -c --status "$T/$1.sum" && [ "$(stat -c %u:%g "$T/$1")" = 0:0 ]
}
as_nobody() { setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups "$@"; }
wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
# filtered PID: the process runs under a seccomp filter, no_new_privs set
filtered() {
	grep -qP '^Seccomp:\t2$' "/proc/$1/status" &&
		grep -qP '^NoNewPrivs:\t1$' "/proc/$1/status"
}
seccomp_of() { grep -E '^(Seccomp|NoNewPrivs):' "/proc/$1/status" | tr '\n\t' '  '; }
_up() { kill -0 "$MXG_PID" 2>/dev/null || fail "mxguard exited: $(tail -n 20 "$MXLOG")"; grep -q "event=started" "$MXLOG"; }

# (a) a first run: the stores are made by nobody
S=$T/state
conf "$T/a.conf" "$S" nobody "workers = 2"
MXLOG=$T/mxguard.log
bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/a.conf" run
MXG_PID=$BG_PID
wait_for 15 "mxguard to start" _up
wait_for 15 "every store file in $S" _all_there "$S"
log "store files: $(owners "$S")"
assert "state_dir and every store file in it are nobody's (not: $(not_nobodys "$S"))" \
	[ -z "$(not_nobodys "$S")" ]
for w in 0 1; do
	p=$(wpid $w)
	[ -n "$p" ] || fail "no worker $w"
	assert "worker $w (pid $p) runs under the seccomp filter ($(seccomp_of "$p"))" filtered "$p"
	assert "worker $w logged it" grep -qE "mxguard\[$p\]: event=sandbox raw_sockets=denied" "$MXLOG"
done
assert "the supervisor has no filter (it starts workers as root): $(seccomp_of "$MXG_PID")" \
	grep -qP '^Seccomp:\t0$' "/proc/$MXG_PID/status"

# (b) nobody plants links; the worker started again must not follow them
victim victim-b-lock
victim victim-b-tlsrpt
as_nobody ln -sfn "$T/victim-b-lock" "$S/history.mdb-lock" ||
	fail "nobody could not replace history.mdb-lock"
as_nobody ln -sfn "$T/victim-b-tlsrpt" "$S/tlsrpt.mdb" ||
	fail "nobody could not replace tlsrpt.mdb"
P1=$(wpid 1)
[ -n "$P1" ] || fail "no worker 1"
kill -KILL "$P1"
_replaced() { local p; p=$(wpid 1); [ -n "$p" ] && [ "$p" != "$P1" ] &&
	grep -qE "event=worker-ready worker=1 pid=$p\$" "$MXLOG"; }
wait_for 20 "worker 1 started again" _replaced
N1=$(wpid 1)
assert "the new worker refused the history lock file link" \
	grep -qE "mxguard\[$N1\]: event=tls-history-unavailable error=\".*refusing to open $S/history.mdb-lock: it is a symbolic link" "$MXLOG"
assert "the new worker refused the TLSRPT store link" \
	grep -qE "mxguard\[$N1\]: event=tlsrpt-unavailable error=\".*refusing to open $S/tlsrpt.mdb: it is a symbolic link" "$MXLOG"
assert "the new worker runs as nobody" [ "$(stat -c %U "/proc/$N1")" = nobody ]
assert "the new worker runs under the seccomp filter ($(seccomp_of "$N1"))" filtered "$N1"
assert "the lock file link's target is unchanged and root's" intact victim-b-lock
assert "the TLSRPT link's target is unchanged and root's" intact victim-b-tlsrpt
mxg_stop

# (c) root by configuration (user empty): the links are refused all the same
S=$T/state-c
mkdir -m 0750 "$S"
victim victim-c-data
victim victim-c-lock
ln -s "$T/victim-c-data" "$S/history.mdb"
ln -s "$T/victim-c-lock" "$S/sts-cache.mdb-lock"
conf "$T/c.conf" "$S" "" "workers = 1"
MXLOG=$T/mxguard-c.log
bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/c.conf" run
MXG_PID=$BG_PID
wait_for 15 "mxguard to start" _up
assert "the history link was refused" \
	grep -qE "event=tls-history-unavailable error=\".*refusing to open $S/history.mdb: it is a symbolic link" "$MXLOG"
assert "the MTA-STS cache lock file link was refused" \
	grep -qE "event=sts-cache-unavailable error=\".*refusing to open $S/sts-cache.mdb-lock: it is a symbolic link" "$MXLOG"
assert "the single process, root by configuration, runs under the seccomp filter ($(seccomp_of "$MXG_PID"))" \
	filtered "$MXG_PID"
assert "and logged it" grep -qE "mxguard\[$MXG_PID\]: event=sandbox raw_sockets=denied" "$MXLOG"
assert "the data file link's target is unchanged and root's" intact victim-c-data
assert "the lock file link's target is unchanged and root's" intact victim-c-lock
mxg_stop

# (e) an upgrade: store files root made (an older mxguard, or user empty)
# are given to nobody at the next start, through no link: a root file
# hard-linked in as a store file stays root's (and that store is off)
S=$T/state-e
mkdir -m 0750 "$S"
conf "$T/e-root.conf" "$S" "" "workers = 1"
MXLOG=$T/mxguard-e-root.log
bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/e-root.conf" run
MXG_PID=$BG_PID
wait_for 15 "mxguard to start" _up
wait_for 15 "every store file in $S" _all_there "$S"
mxg_stop
assert "user empty: the store files are root's" [ "$(stat -c %U "$S/history.mdb")" = root ]
victim victim-e-lock
rm -f "$S/tlsrpt.mdb-lock"
ln "$T/victim-e-lock" "$S/tlsrpt.mdb-lock"
conf "$T/e.conf" "$S" nobody "workers = 1"
MXLOG=$T/mxguard-e.log
bg "$SND" "$MXLOG" "$MXGUARD" -c "$T/e.conf" run
MXG_PID=$BG_PID
wait_for 15 "mxguard to start" _up
log "store files: $(owners "$S")"
for f in sts-cache.mdb sts-cache.mdb-lock history.mdb history.mdb-lock tlsrpt.mdb; do
	assert "$f given to nobody" [ "$(stat -c %U "$S/$f")" = nobody ]
done
assert "the change is logged" grep -qE "event=state-file-owner file=$S/history.mdb uid=" "$MXLOG"
assert "the MTA-STS cache and the TLS history are open" \
	lacks 'event=(sts-cache|tls-history)-unavailable' cat "$MXLOG"
assert "the hard-linked root file is unchanged and root's" intact victim-e-lock
assert "that store is off, and says so" grep -qE "event=tlsrpt-unavailable .*Permission denied" "$MXLOG"
mxg_stop

# (d) the command line, as root with user = nobody
S=$T/state-d
mkdir -m 0750 "$S"
conf "$T/d.conf" "$S" nobody
cli() {	# NAME CMD...: mxguard -c d.conf CMD... in $SND, output in $T/NAME.*
	local name=$1; shift
	in_snd "$MXGUARD" -c "$T/d.conf" "$@" >"$T/$name.out" 2>"$T/$name.err"
	echo $? >"$T/$name.rc"
	log "$name: exit $(cat "$T/$name.rc"): $(head -c 600 "$T/$name.err")"
}
victim victim-d-hist
victim victim-d-cache
victim victim-d-tlsrpt
ln -s "$T/victim-d-hist" "$S/history.mdb-lock"
ln -s "$T/victim-d-cache" "$S/sts-cache.mdb"
ln -s "$T/victim-d-tlsrpt" "$S/tlsrpt.mdb-lock"
cli policy-links policy cli.test
cli check-links check cli.test 127.0.0.1
cli report-links report show
cli policy-links-other policy other.test
assert "policy said it refused the history lock file link" \
	grep -qE "refusing to open $S/history.mdb-lock: it is a symbolic link" "$T/policy-links.err"
assert "report refused the TLSRPT lock file link, and failed" \
	grep -qE "refusing to open $S/tlsrpt.mdb-lock: it is a symbolic link" "$T/report-links.err"
assert "report exited 1" [ "$(cat "$T/report-links.rc")" = 1 ]
assert "with its MTA-STS cache refused, a domain with no policy fetched is deferred (store-error), not taken for one without a policy" \
	grep -q "defer .*reason=store-error" "$T/policy-links-other.out"
for v in victim-d-hist victim-d-cache victim-d-tlsrpt; do
	assert "$v is unchanged and root's" intact "$v"
done
rm -f "$S"/*.mdb "$S"/*.mdb-lock
cli policy policy cli.test
cli check check cli.test 127.0.0.1
cli report report show
# (check probes 127.0.0.1:25 even at the override's level none, and
# nothing listens there: 2, would defer, is a check that ran)
for c in policy check report; do
	want=0; [ "$c" = check ] && want=2
	assert "$c ran (exit $(cat "$T/$c.rc"), want $want)" [ "$(cat "$T/$c.rc")" = "$want" ]
done
assert "the CLI made every store file" _all_there "$S"
# the capabilities each keeps (-d: the privileges line): the check's
# probe sets SO_MARK with what a worker keeps for it, CAP_NET_RAW (Linux
# 5.17 on; it cannot change netfilter rules), and the worker's seccomp
# filter; policy and report show need none
cli policy-d -d policy cli.test
cli check-d -d check cli.test 127.0.0.1
assert "policy keeps no capability" grep -q "event=privileges user=nobody .*caps=none" "$T/policy-d.err"
assert "report show keeps no capability" grep -q "event=privileges user=nobody .*caps=none" "$T/report.err"
assert "check keeps CAP_NET_RAW, not CAP_NET_ADMIN" grep -q "event=privileges user=nobody .*caps=cap_net_raw" "$T/check-d.err"
assert "check denies itself raw sockets" grep -q "event=sandbox raw_sockets=denied" "$T/check-d.err"
# the Redis client's certificate and key root's alone (0600 in a 0700
# directory, as keys are kept): policy and check make the engine before
# their drop, as the daemon does, and open only the stores as nobody
# (red before: "redis_tls: redis_tls_cert_file: ... Permission denied",
# exit 3); Redis is down here, the local state decides
mkdir -m 0700 "$T/rkey"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/rkey/key.pem" -out "$T/rkey/cert.pem" -days 2 \
	-subj /CN=mxg-test >/dev/null 2>&1 || fail "openssl req failed"
chmod 0600 "$T/rkey/key.pem" "$T/rkey/cert.pem"
conf "$T/r.conf" "$S" nobody "redis_address = 127.0.0.1:1
redis_tls = yes
redis_tls_cert_file = $T/rkey/cert.pem
redis_tls_key_file = $T/rkey/key.pem"
for c in policy check; do
	set -- "$c" cli.test
	[ "$c" = check ] && set -- "$@" 127.0.0.1
	in_snd "$MXGUARD" -c "$T/r.conf" "$@" >"$T/$c-rkey.out" 2>"$T/$c-rkey.err"
	rc=$?
	log "$c-rkey: exit $rc: $(head -c 600 "$T/$c-rkey.err")"
	want=0; [ "$c" = check ] && want=2
	assert "$c with a Redis key only root reads ran (exit $rc, want $want)" [ "$rc" = "$want" ]
	assert "$c read the Redis key before its drop" lacks "redis_tls_(cert|key)_file" cat "$T/$c-rkey.err"
done
log "store files: $(owners "$S")"
assert "state_dir and every store file the CLI made are nobody's (not: $(not_nobodys "$S"))" \
	[ -z "$(not_nobodys "$S")" ]
# not root: nothing to drop, the command works as it did
in_snd setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
	"$MXGUARD" -c "$T/d.conf" policy cli.test >"$T/nobody.out" 2>"$T/nobody.err"
rc=$?
assert "policy run as nobody works (exit $rc: $(head -c 300 "$T/nobody.err"))" [ "$rc" = 0 ]
assert "and opened the MTA-STS cache it shares with the daemon" \
	lacks 'MTA-STS policy cache: unavailable' cat "$T/nobody.out"
# (the harness looks at the last daemon's log only)
assert "no sanitizer report from the daemons or the CLI" bash -c '! grep -sE \
	"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: |LeakSanitizer" "$@"' \
	_ "$T"/mxguard*.log "$T"/*.err
pass "the stores are opened as nobody and through no symbolic link"
