#!/bin/bash
# 85: a reload reaches every worker, also when the workers cannot read the
# configuration.  Workers run as `user`; an operator keeps mxguard.conf
# root's and 0600 when it holds redis_password.  workers = 2, user =
# nobody, a receiver without STARTTLS for plain.test:
# (a) before the reload a session for plain.test gets 250 for its RCPT on
#     each worker (opportunistic);
# (b) the file is made 0600 and gains `tls_policy = plain.test encrypt`;
#     SIGHUP: each worker fails to read it, retires (drains, exits 75) and
#     is started again by the supervisor, which read the file as root;
#     from then on every session for plain.test is refused with 4xx at
#     RCPT, whichever worker takes it, and no worker exit is a failure;
#     a session opened before the reload, whose RCPT comes after its
#     worker retired, gets 421 too (its worker no longer decides on the
#     old configuration);
# (c) a broken file: the supervisor refuses it and passes nothing on;
#     both workers keep running, on the encrypt policy.
# Before: each worker logged reload-failed and went on without the new
# policy, while a worker started later (a crash) ran it: which policy a
# flow met depended on the kernel's SO_REUSEPORT hash.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
rcv_listener 10.25.1.10 none
rcv_mailbox alice@plain.test
rcv_setup
snd_setup
mxg_start "workers = 2
user = nobody
drain_timeout = 10s"

wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
# rcpt_code: one session through the divert, its RCPT reply code, and the
# pid of the worker that took it (from its event=connect line)
rcpt_code() {
	local n0 code
	n0=$(count_log "$MXLOG" "event=connect ")
	code=$(in_snd python3 - <<'EOF'
import smtplib
try:
    s = smtplib.SMTP("10.25.1.10", 25, timeout=30)
    s.ehlo("sender.test")
    s.mail("bob@sender.test")
    code, _ = s.rcpt("alice@plain.test")
    print(code)
    try:
        s.quit()
    except Exception:
        pass
except Exception as e:
    print("error:", e)
EOF
)
	_one_more() { [ "$(count_log "$MXLOG" "event=connect ")" -gt "$n0" ]; }
	wait_for 10 "the session's connect line" _one_more
	CODE=$code
	WORKER=$(grep -E "event=connect " "$MXLOG" | tail -n1 | sed -E 's/.*mxguard\[([0-9]+)\].*/\1/')
}
# sessions_until_both P0 P1 REGEX: sessions until each of P0 and P1 took
# one; every RCPT reply must match REGEX
sessions_until_both() {
	local a=$1 b=$2 re=$3 k seen_a=0 seen_b=0
	for k in $(seq 1 40); do
		rcpt_code
		[[ "$CODE" =~ ^($re)$ ]] || fail "session $k (worker $WORKER): RCPT answered '$CODE', expected /$re/"
		[ "$WORKER" = "$a" ] && seen_a=1
		[ "$WORKER" = "$b" ] && seen_b=1
		[ "$seen_a" = 1 ] && [ "$seen_b" = 1 ] && { log "$k sessions, both workers answered /$re/"; return 0; }
	done
	fail "40 sessions did not reach both workers ($a: $seen_a, $b: $seen_b)"
}

P0=$(wpid 0); P1=$(wpid 1)
[ -n "$P0" ] && [ -n "$P1" ] && [ "$P0" != "$P1" ] || fail "two workers expected"
assert "worker 0 runs as nobody" [ "$(stat -c %U "/proc/$P0")" = nobody ]

# (a)
sessions_until_both "$P0" "$P1" 250

# (b)
# a session opened now, held after MAIL until the workers retired
in_snd python3 - "$T/held.go" >"$T/held.out" 2>&1 <<'EOF' &
import os, smtplib, sys, time
go = sys.argv[1]
try:
    s = smtplib.SMTP("10.25.1.10", 25, timeout=60)
    s.ehlo("sender.test")
    s.mail("bob@sender.test")
    open(go + ".ready", "w").close()
    for _ in range(1200):          # the test's signal, within 60 s
        if os.path.exists(go):
            break
        time.sleep(0.05)
    code, _ = s.rcpt("alice@plain.test")
    print(code)
except Exception as e:
    print("error:", e)
EOF
HELD=$!
wait_for 10 "the held session's MAIL" test -e "$T/held.go.ready"
chown root:root "$T/mxguard.conf"
chmod 600 "$T/mxguard.conf"
echo "tls_policy = plain.test encrypt" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "mxguard\[$P0\]: event=reload-failed error=.*Permission denied" 20
wait_log "$MXLOG" "mxguard\[$P0\]: event=worker-retiring worker=0 reason=reload-failed" 20
wait_log "$MXLOG" "mxguard\[$P1\]: event=worker-retiring worker=1 reason=reload-failed" 20
touch "$T/held.go"
wait "$HELD"
log "the held session's RCPT: $(cat "$T/held.out")"
assert "the session opened before the reload got 421 at its RCPT after it" \
	grep -qx 421 "$T/held.out"
wait_log "$MXLOG" "event=worker-retired worker=0 pid=$P0 " 30
wait_log "$MXLOG" "event=worker-retired worker=1 pid=$P1 " 30
_replaced() {	# WORKER OLDPID: a new pid for WORKER, and it is up
	local p
	p=$(wpid "$1")
	[ -n "$p" ] && [ "$p" != "$2" ] && grep -qE "event=worker-ready worker=$1 pid=$p\$" "$MXLOG"
}
wait_for 20 "worker 0 started again and up" _replaced 0 "$P0"
wait_for 20 "worker 1 started again and up" _replaced 1 "$P1"
N0=$(wpid 0); N1=$(wpid 1)
log "workers after the reload: $N0, $N1 (were $P0, $P1)"
assert "no supervisor reload failure" [ "$(count_log "$MXLOG" "mxguard\[$MXG_PID\]: event=reload-failed")" = 0 ]
assert "a retirement is no worker failure" [ "$(count_log "$MXLOG" 'event=worker-exit ')" = 0 ]
sessions_until_both "$N0" "$N1" '4[0-9][0-9]'
assert "every refusal came from the encrypt policy" \
	[ "$(count_log "$MXLOG" 'event=verdict .*domain=plain.test .*level=encrypt')" -ge 2 ]
assert "nothing crossed in clear after the reload" [ "$(mailbox_count alice@plain.test)" = 0 ]

# (c)
echo "no_such_key = 1" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "mxguard\[$MXG_PID\]: event=reload-failed error=.*unknown key" 20
sed -i '/^no_such_key/d' "$T/mxguard.conf"
# one more signal the supervisor accepts, as a marker: the workers handle
# signals in order, so once they answered this one they had the first
_marker() { [ "$(count_log "$MXLOG" "mxguard\[($N0|$N1)\]: event=reloaded")" -ge 2 ]; }
chmod 644 "$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_for 20 "both workers reloaded the good file" _marker
assert "the broken file reached no worker" [ "$(count_log "$MXLOG" "mxguard\[($N0|$N1)\]: event=reload-failed")" = 0 ]
assert "worker 0 kept running" kill -0 "$N0"
assert "worker 1 kept running" kill -0 "$N1"
assert "no worker retired for the broken file" [ "$(count_log "$MXLOG" 'event=worker-retired ')" = 2 ]
sessions_until_both "$N0" "$N1" '4[0-9][0-9]'
pass "a reload reaches every worker: one that cannot read the file is started again on it; a broken file reaches none"
