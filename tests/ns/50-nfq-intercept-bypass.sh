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
# the processes that relay: the workers (the supervisor, which keeps root
# to start a worker again, relays nothing), or the one process
# A worker keeps only CAP_NET_RAW (SO_MARK), which cannot change the
# netfilter rules; the one process that also reads the queue keeps
# CAP_NET_ADMIN (nfnetlink's verdicts need it).
relayers=$(cat "/proc/$MXG_PID/task/$MXG_PID/children" 2>/dev/null)
capmask=0000000000002000 capname=CAP_NET_RAW
if [ -z "$relayers" ]; then
	relayers=$MXG_PID capmask=0000000000001000 capname=CAP_NET_ADMIN
fi
for p in $relayers; do
	assert "daemon process $p runs as nobody" grep -qE "^Uid:\s+$(id -u nobody)\s+$(id -u nobody)\s+$(id -u nobody)" "/proc/$p/status"
	assert "process $p: only $capname effective and permitted" \
		bash -c "grep -qE '^CapEff:\s+$capmask$' /proc/$p/status && grep -qE '^CapPrm:\s+$capmask$' /proc/$p/status && grep -qE '^CapBnd:\s+$capmask$' /proc/$p/status"
done
assert "state_dir owned by nobody" [ "$(stat -c %U "$T/mxstate")" = nobody ]

# a second daemon cannot take the queue (it is this one's): it must stop
# and say why, not run without intercepting anything
sed -E -e "s#^listen = .*#listen = 127.0.0.1:10099#" \
    -e "s#^control_socket = .*#control_socket = $T/second.sock#" \
    -e "s#^state_dir = .*#state_dir = $T/second-state#" \
    -e "s#^metrics_listen = .*#metrics_listen = 127.0.0.1:9126#" \
    "$T/mxguard.conf" >"$T/second.conf"
mkdir -p "$T/second-state"
ip netns exec "$SND" timeout 20 "$MXGUARD" -c "$T/second.conf" run >"$T/second.log" 2>&1
rc=$?
assert "a second daemon on the same queue exits with an error (rc=$rc)" [ "$rc" != 0 -a "$rc" != 124 ]
assert "and says the queue is why" grep -qE "event=fatal what=\"opening NFQUEUE [0-9]+ \(steering = nfqueue\)\"" "$T/second.log"

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

# The whole scrape through a strict text-format (0.0.4) parser: every
# sample's family has one # TYPE before its samples, names and label sets
# are well formed, values are numbers, histogram buckets ascend in le,
# are cumulative, and end with le="+Inf" equal to _count.
cat >"$T/promparse.py" <<'EOF'
import math, re, sys
NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LBL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r'^(%s)(?:\{(%s(?:,%s)*)?\})? (\S+)$' % (NAME, LBL, LBL))
types, order, samples = {}, [], []
def die(msg, ln=''):
    sys.exit('promparse: %s: %r' % (msg, ln))
for ln in open(sys.argv[1]).read().split('\n')[:-1]:
    if ln.startswith('# TYPE '):
        f = ln.split(' ')
        if len(f) != 4 or not re.fullmatch(NAME, f[2]) or f[3] not in ('counter', 'gauge', 'histogram', 'summary', 'untyped'):
            die('bad TYPE', ln)
        if f[2] in types:
            die('second TYPE', ln)
        types[f[2]] = f[3]; order.append(f[2])
        continue
    if ln.startswith('# HELP '):
        if not re.fullmatch(r'# HELP %s .*' % NAME, ln):
            die('bad HELP', ln)
        continue
    if ln.startswith('#') or ln == '':
        die('stray line', ln)
    m = SAMPLE.match(ln)
    if not m:
        die('bad sample', ln)
    name, lbls, val = m.group(1), m.group(2) or '', m.group(3)
    try:
        v = float(val)
    except ValueError:
        die('bad value', ln)
    fam = name
    for suf in ('_bucket', '_sum', '_count'):
        if name.endswith(suf) and types.get(name[:-len(suf)]) == 'histogram':
            fam = name[:-len(suf)]
    if fam not in types:
        die('sample without TYPE', ln)
    if fam != order[-1]:
        die('sample away from its family', ln)
    if types[fam] == 'counter' and v < 0:
        die('negative counter', ln)
    samples.append((fam, name, dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', lbls)), v))
for fam, t in types.items():
    if t != 'histogram':
        continue
    b = [(s[2]['le'], s[3]) for s in samples if s[1] == fam + '_bucket']
    cnt = [s[3] for s in samples if s[1] == fam + '_count']
    sm = [s[3] for s in samples if s[1] == fam + '_sum']
    if not b or len(cnt) != 1 or len(sm) != 1:
        die('histogram without buckets, _sum and _count', fam)
    if b[-1][0] != '+Inf' or b[-1][1] != cnt[0]:
        die('last bucket is not le="+Inf" == _count', fam)
    les = [math.inf if le == '+Inf' else float(le) for le, _ in b]
    if les != sorted(les) or len(set(les)) != len(les):
        die('le not ascending', fam)
    if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
        die('buckets not cumulative', fam)
    print('%s count=%d' % (fam, cnt[0]))
EOF
assert "metrics: the scrape parses strictly (TYPEs, histograms)" python3 "$T/promparse.py" "$T/metrics.out"
assert "metrics: explicit types (a gauge, histograms)" \
	bash -c "grep -qx '# TYPE mxguard_sessions_active gauge' '$T/metrics.out' && grep -qx '# TYPE mxguard_policy_decision_seconds histogram' '$T/metrics.out' && grep -qx '# TYPE mxguard_tls_handshake_seconds histogram' '$T/metrics.out' && grep -qx '# TYPE mxguard_session_seconds histogram' '$T/metrics.out'"
assert "metrics: one policy decision timed" grep -qx 'mxguard_policy_decision_seconds_count 1' "$T/metrics.out"
assert "metrics: one upstream handshake timed" grep -qx 'mxguard_tls_handshake_seconds_count 1' "$T/metrics.out"
assert "metrics: one TLSv1.3 upstream, labelled with its level" \
	grep -qE '^mxguard_upstream_tls_total\{protocol="TLSv1\.3",level="[a-z]+"\} 1$' "$T/metrics.out"
assert "metrics: reuse is its own counter, not a tls= value" \
	bash -c "grep -qE '^mxguard_upstream_reused_total [0-9]+$' '$T/metrics.out' && ! grep -q 'tls=\"reused\"' '$T/metrics.out'"
assert "metrics: build_info gauge 1 with version and openssl" \
	grep -qE '^mxguard_build_info\{version="[^"]+",openssl="3\.[0-9.]+"\} 1$' "$T/metrics.out"
assert "metrics: process_start_time_seconds is now-ish" \
	bash -c "v=\$(awk '\$1 == \"process_start_time_seconds\" {print \$2}' '$T/metrics.out'); [ -n \"\$v\" ] && [ \$(( \$(date +%s) - v )) -ge 0 ] && [ \$(( \$(date +%s) - v )) -lt 600 ]"
assert "one event=delivery line: domain, policy, TLS, verify, quoted reply" \
	grep -qE 'event=delivery domains=tls\.test dst=10\.25\.1\.10:25 mx=[^ ]+ policy_source=[a-z-]+ policy_level=[a-z-]+ tls=TLSv1\.3 cipher=[A-Z0-9_-]+ verify=[a-z-]+ reply="250 [^"]*"' "$MXLOG"
pass "NFQUEUE intercept and bypass"
