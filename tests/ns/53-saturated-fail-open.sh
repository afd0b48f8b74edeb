#!/bin/bash
# 53: mxguard at its session limit (max_sessions = 1) with fail_mode =
# open: a held client session fills the proxy; every new port-25 flow then
# gets the BYPASS verdict (reason=saturated) and goes direct, and every
# message arrives (none lost, the sender's queue empties).  Once the held
# session ends, new flows are intercepted again.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
tls_world
nfq_start "fail_mode = open
max_sessions = 1"

# the held session: a raw client in $SND, intercepted like any flow,
# reads the greeting and then idles until killed
bg "$SND" "$T/hold.out" python3 -c '
import socket, sys, time
s = socket.create_connection(("10.25.1.10", 25))
print(s.recv(512).decode(errors="replace").strip(), flush=True)
time.sleep(600)'
HOLD_PID=$BG_PID
wait_log "$T/hold.out" "^220 " 15
# (a function: wait_for runs its command again each time, an argument
# "$(metric ...)" would be read once, before the first try)
_active_is() { [ "$(metric mxguard_sessions_active)" = "$1" ]; }
wait_for 10 "one active session" _active_is 1

N=5
new_body "$T/body" 1200
for i in $(seq 1 $N); do
	send_mail bob@sender.test alice@tls.test "$T/body" "saturated $i"
done
wait_mailbox alice@tls.test $N 60
wait_queue_empty 60
assert "all $N messages delivered" [ "$(mailbox_count alice@tls.test)" = $N ]
sat=$(metric 'mxguard_nfq_bypass_total{reason="saturated"}')
log "bypass verdicts (saturated): $sat"
assert "new flows got BYPASS because the proxy was full" [ "${sat:-0}" -ge 1 ]
assert "no flow was dropped" [ "$(metric 'mxguard_nfq_verdicts_total{verdict="drop"}')" = 0 ]
assert "the proxy itself never had to refuse" [ "$(metric 'mxguard_refused_total{reason="max_sessions"}')" = 0 ]
direct=0
for f in $(mailbox_files alice@tls.test); do [ -z "$(received_tls "$f")" ] && direct=$((direct + 1)); done
assert "the saturated deliveries were direct ($direct of $N without TLS)" [ "$direct" = $N ]
assert "verdict logged with reason=saturated" grep -qE "event=nfq-verdict .*verdict=bypass reason=saturated" "$MXLOG"

kill "$HOLD_PID"
wait_for 20 "no active session" _active_is 0
send_mail bob@sender.test alice@tls.test "$T/body" "after"
q=$(find_qid "$MSGID"); m=$MSGID
wait_status "$q" alice@tls.test sent
wait_mailbox alice@tls.test $((N + 1))
f=$(msg_file_by_id alice@tls.test "$m") || fail "last message not stored"
assert "with room again, the flow is intercepted (TLS)" [ -n "$(received_tls "$f")" ]
pass "saturated + fail-open: direct, nothing lost"
