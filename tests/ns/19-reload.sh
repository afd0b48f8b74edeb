#!/bin/bash
# 19: SIGHUP reloads the configuration without dropping sessions: a session
# open across the reload completes (its message stored once, whole); the
# new settings apply (log_level info -> debug); a broken file is refused
# with FILE:LINE and the daemon keeps running on the configuration it has;
# a key only a start applies is named (event=reload-note).
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
tls_world
mxg_start "log_level = info"

mkdir -p "$T/h1"
bg "$SND" "$T/h1.log" python3 "$LIBDIR/holdclient.py" 10.25.1.10 25 alice@tls.test "$T/h1"
wait_for 20 "held session ready" test -e "$T/h1/ready"
assert "no debug lines yet" [ "$(count_log "$MXLOG" ' event=state from=[A-Z_]+ to=')" = 0 ]

echo "log_level = debug" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
# every process that relays: the one, or each worker (the supervisor
# passes SIGHUP on)
procs=$(count_log "$MXLOG" "event=worker-start ")
[ "$procs" -ge 1 ] || procs=1
_all_reloaded() { [ "$(count_log "$MXLOG" "event=reloaded")" -ge "$procs" ]; }
wait_for 20 "$procs process(es) reloaded" _all_reloaded

touch "$T/h1/go"
wait_for 20 "held session result" test -e "$T/h1/result"
assert "the session open across the reload delivered (250)" [ "$(cat "$T/h1/result")" = 250 ]
# the 250 is mxguard's word: the message is at the receiver, once, whole
wait_mailbox alice@tls.test 1 20
assert_once alice@tls.test held-h1@sender.test "$T/h1/sent"
assert "debug tracing after the reload" [ "$(count_log "$MXLOG" ' event=state from=[A-Z_]+ to=')" -gt 0 ]

echo "no_such_key = 1" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-failed error=.*mxguard.conf:[0-9]+: unknown key .{1,2}no_such_key"
assert "still running after a bad reload" kill -0 "$MXG_PID"

# a long-running daemon is reloaded often (configuration management):
# each reload applies, far beyond the 64 configurations a process once
# kept (after which every reload was refused)
sed -i '/^no_such_key/d' "$T/mxguard.conf"
n0=$(count_log "$MXLOG" "event=reloaded")
for i in $(seq 1 70); do
	kill -HUP "$MXG_PID"
	_reloaded_n() { [ "$(count_log "$MXLOG" "event=reloaded")" -ge $((n0 + i * procs)) ]; }
	wait_for 20 "reload $i applied in $procs process(es)" _reloaded_n
done
assert "no reload refused" [ "$(count_log "$MXLOG" "too many reloads")" = 0 ]

# a bypass entry that is no prefix: refused before any part of the
# daemon takes the new configuration (no reload applied in part)
echo "bypass_dst = 192.0.2.0/24 10.0.0.0/33" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-failed error=.*bypass_dst: .{1,2}10.0.0.0/33.{1,2} is not an address or prefix"
sed -i '/^bypass_dst = /d' "$T/mxguard.conf"

# a key the installed rules depend on: a reload cannot apply it (the
# rules would no longer match the daemon), so it is refused, loudly
echo "fail_mode = open" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-failed error=\"fail_mode changed: the installed netfilter rules depend on it; restart mxguard \(its start installs the rules\)\""
sed -i '/^fail_mode = open/d' "$T/mxguard.conf"

# a key only a start applies (the queue is opened as root): the reload
# takes the rest, and says which keys wait for a restart
echo "nfqueue_maxlen = 100" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-note keys=nfqueue_maxlen note="
sed -i '/^nfqueue_maxlen = 100/d' "$T/mxguard.conf"

new_body "$T/body" 3000
send_mail bob@sender.test alice@tls.test "$T/body" "after reloads"
qid=$(find_qid "$MSGID")
wait_status "$qid" alice@tls.test sent
pass "SIGHUP reloads without dropping sessions"
