#!/bin/bash
# 92: the configuration file changes between the supervisor's check and
# a worker's reload.  workers = 2.  On SIGHUP the supervisor loads and
# checks the file as root, then passes the reload (SIGRTMIN+1) to each worker with the
# digest of what it checked; each worker reads the file again.  Here an
# LD_PRELOAD shim (tests/lib/workerconf.c) gives the workers another text
# (B, which adds tls_policy = tls.test none) than the supervisor (A), as a
# file rewritten in between would: the workers must not run B, which
# nobody checked, beside a supervisor on A.  Each logs the digest
# mismatch, retires and is started again on the supervisor's
# configuration; mail still goes out with TLS.  (Before: both workers
# applied B, with no line saying the processes differed.)
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
tls_world

mxg_preload workerconf MXG_SHIM_CONF="$T/mxguard.conf" MXG_SHIM_ALT="$T/conf.B" \
	MXG_SHIM_FLAG="$T/swap"
mxg_start "workers = 2"

starts() { count_log "$MXLOG" "event=worker-start "; }
[ "$(starts)" = 2 ] || fail "two workers expected"

{ cat "$T/mxguard.conf"; echo "tls_policy = tls.test none"; } >"$T/conf.B"
touch "$T/swap"
kill -HUP "$MXG_PID"
_both_answered() { [ "$(count_log "$MXLOG" "event=(reloaded|reload-failed) ")" -ge 2 ]; }
wait_for 20 "both workers' reload outcome" _both_answered
assert "no process applied the file nobody checked" [ "$(count_log "$MXLOG" "event=reloaded ")" = 0 ]
assert "both workers named the digests" [ "$(count_log "$MXLOG" "event=reload-failed error=.*the configuration changed after the supervisor checked it .digest [0-9a-f]{8}, the supervisor.s [0-9a-f]{8}")" = 2 ]
assert "the supervisor logged the digest it checked" grep -qE "event=reload-checked config=.* digest=[0-9a-f]{8}" "$MXLOG"
assert "each worker retired" [ "$(count_log "$MXLOG" "event=worker-retiring .*reason=reload-failed")" = 2 ]
_restarted() { [ "$(starts)" -ge 4 ]; }
wait_for 30 "both workers started again" _restarted
rm -f "$T/swap"

# the workers run the supervisor's configuration (A): tls.test with TLS
new_body "$T/body" 2000
send_mail bob@sender.test alice@tls.test "$T/body" "after the refused reload"
qid=$(find_qid "$MSGID")
wait_status "$qid" alice@tls.test sent
assert "the message went with TLS (no none override in force)" \
	grep -qE "event=verdict domain=tls.test .*level=may" "$MXLOG"
assert "no none override decided" [ "$(count_log "$MXLOG" "event=verdict domain=tls.test .*source=override")" = 0 ]
pass "a worker does not apply a configuration file that changed after the supervisor checked it"
