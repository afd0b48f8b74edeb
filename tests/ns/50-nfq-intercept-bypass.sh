#!/bin/bash
# 50: NFQUEUE steering.  With mxguard running, a port-25 flow is queued,
# marked INTERCEPT and diverted: the receiver sees a TLS session from
# mxguard.  A destination on bypass_dst is marked BYPASS and goes direct:
# the receiver sees the sender's own cleartext session.  status and the
# metrics endpoint report exactly these verdicts.  The daemon started as
# root runs as "nobody" with CAP_NET_ADMIN only.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.tls.test
make_cert mx2 mx2.direct.test
rcv_listener 10.25.1.10 mx1
rcv_listener 10.25.1.20 mx2
rcv_mailbox alice@tls.test dave@direct.test
rcv_setup
snd_setup
snd_route tls.test 10.25.1.10
snd_route direct.test 10.25.1.20
nfq_start "bypass_dst = 10.25.1.20/32 192.0.2.0/24 2001:db8::/32
metrics_listen = 127.0.0.1:9125
user = nobody"
assert "daemon runs as nobody" grep -qE "^Uid:\s+$(id -u nobody)\s+$(id -u nobody)\s+$(id -u nobody)" "/proc/$MXG_PID/status"
assert "only CAP_NET_ADMIN effective and permitted" \
	bash -c "grep -qE '^CapEff:\s+0000000000001000$' /proc/$MXG_PID/status && grep -qE '^CapPrm:\s+0000000000001000$' /proc/$MXG_PID/status"
assert "state_dir owned by nobody" [ "$(stat -c %U "$T/mxstate")" = nobody ]

new_body "$T/body" 2000
send_mail bob@sender.test alice@tls.test "$T/body" "intercepted"
q1=$(find_qid "$MSGID"); m1=$MSGID
wait_status "$q1" alice@tls.test sent
send_mail bob@sender.test dave@direct.test "$T/body" "bypassed"
q2=$(find_qid "$MSGID"); m2=$MSGID
wait_status "$q2" dave@direct.test sent
wait_mailbox alice@tls.test 1
wait_mailbox dave@direct.test 1

f1=$(msg_file_by_id alice@tls.test "$m1") || fail "intercepted message not stored"
f2=$(msg_file_by_id dave@direct.test "$m2") || fail "bypassed message not stored"
assert "intercepted flow: receiver's Received header shows TLS" [ -n "$(received_tls "$f1")" ]
assert "intercepted flow: mxguard relayed it (one event=connect to 10.25.1.10)" \
	[ "$(mx_count 'event=connect .*dst=10\.25\.1\.10:25')" = 1 ]
assert "bypassed flow: no TLS at the receiver" [ -z "$(received_tls "$f2")" ]
assert "bypassed flow: mxguard never saw it" [ "$(mx_count 'event=connect .*dst=10\.25\.1\.20')" = 0 ]
assert "bypassed flow: verdict logged with reason" grep -qE "event=nfq-verdict .*dst=10\.25\.1\.20 verdict=bypass reason=bypass_dst" "$MXLOG"
assert "sender logged no TLS session" [ "$(count_log "$SD/maillog" 'TLS connection established')" = 0 ]

# status over the control socket and the Prometheus endpoint agree
mxg_ctl status >"$T/status.out" 2>&1 || fail "mxguard status: $(cat "$T/status.out")"
cat "$T/status.out" >&2
assert "status: 1 intercept verdict" grep -qE '^mxguard_nfq_verdicts_total\{verdict="intercept"\} 1$' "$T/status.out"
assert "status: 1 bypass verdict" grep -qE '^mxguard_nfq_verdicts_total\{verdict="bypass"\} 1$' "$T/status.out"
assert "status: bypass reason bypass_dst 1" grep -qE '^mxguard_nfq_bypass_total\{reason="bypass_dst"\} 1$' "$T/status.out"
assert "status: 0 drops" grep -qE '^mxguard_nfq_verdicts_total\{verdict="drop"\} 0$' "$T/status.out"
in_snd curl -sf http://127.0.0.1:9125/metrics >"$T/metrics.out" || fail "metrics endpoint"
assert "metrics: TYPE line for the verdict family" grep -qE '^# TYPE mxguard_nfq_verdicts_total counter$' "$T/metrics.out"
assert "metrics: intercept 1" grep -qE '^mxguard_nfq_verdicts_total\{verdict="intercept"\} 1$' "$T/metrics.out"
assert "metrics: bypass 1" grep -qE '^mxguard_nfq_verdicts_total\{verdict="bypass"\} 1$' "$T/metrics.out"
assert "metrics: one session" grep -qE '^mxguard_sessions_total 1$' "$T/metrics.out"
assert "status --metrics = the endpoint's text (same counters)" \
	[ "$(mxg_ctl status --metrics | grep -c '^mxguard_nfq_verdicts_total')" = 3 ]
pass "NFQUEUE intercept and bypass"
