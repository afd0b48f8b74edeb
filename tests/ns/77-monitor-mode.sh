#!/bin/bash
# 77: enforcement = monitor (the rollout mode).  Global monitor, with one
# destination kept on enforce by enforcement_override.  Four MTA-STS
# enforce domains:
#   mon.test     STARTTLS stripped by a man in the middle: delivered (in
#                cleartext), event=would-defer stage=starttls;
#   cert.test    a certificate for another name: delivered over TLS,
#                would-defer stage=tls reason=certificate-host-mismatch;
#   unl.test     its MX is not in the policy (enforce defers at the
#                decision): delivered, would-defer stage=policy;
#   strict.test  enforcement_override = strict.test enforce, stripped like
#                mon.test: deferred 4.7.10 and still queued, nothing crossed.
# The would-defer counter counts them by stage; `mxguard policy` and
# `mxguard check` answer what enforce mode would do (exit 2) and say the
# destination is monitored.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
make_cert mx1 wrong.example.test
make_cert mx2 mx.mon.test
rcv_listener 10.25.1.10 mx1
rcv_listener 10.25.1.12 mx2
rcv_mailbox carol@mon.test dave@strict.test erin@cert.test fred@unl.test
rcv_setup
snd_setup
snd_route mon.test 10.25.1.11
snd_route strict.test 10.25.1.11
snd_route cert.test 10.25.1.10
snd_route unl.test 10.25.1.10
bad_start 10.25.1.11 --mode mitm --upstream 10.25.1.12:25
dns_records <<'Z'
mon IN MX 10 mx.mon
mx.mon IN A 10.25.1.11
_mta-sts.mon IN TXT "v=STSv1; id=1"
mta-sts.mon IN A 10.25.1.80
strict IN MX 10 mx.strict
mx.strict IN A 10.25.1.11
_mta-sts.strict IN TXT "v=STSv1; id=1"
mta-sts.strict IN A 10.25.1.80
cert IN MX 10 mx1.cert
mx1.cert IN A 10.25.1.10
_mta-sts.cert IN TXT "v=STSv1; id=1"
mta-sts.cert IN A 10.25.1.80
unl IN MX 10 mx1.unl
mx1.unl IN A 10.25.1.10
_mta-sts.unl IN TXT "v=STSv1; id=1"
mta-sts.unl IN A 10.25.1.80
Z
dns_start
for d in mon strict cert unl; do
	sts_site $d.test
done
for d in mon strict; do
	sts_policy $d.test <<P
version: STSv1
mode: enforce
mx: mx.$d.test
max_age: 86400
P
done
sts_policy cert.test <<'P'
version: STSv1
mode: enforce
mx: mx1.cert.test
max_age: 86400
P
sts_policy unl.test <<'P'
version: STSv1
mode: enforce
mx: mx9.unl.test
max_age: 86400
P
sts_start
MXG_EXTRA_CONF="enforcement = monitor
enforcement_override = strict.test enforce
upstream_reuse = no" sts_mxguard_start

# -n shows the keys
mxg_ctl() { ip netns exec "$SND" "$MXGUARD" -c "$T/mxguard.conf" "$@"; }
mxg_ctl -n -v >"$T/n.out" 2>&1 || fail "mxguard -n: $(cat "$T/n.out")"
assert "-n shows enforcement = monitor" grep -qE "^enforcement *= *monitor" "$T/n.out"
assert "-n shows the override" grep -qE "^enforcement_override *= *strict.test enforce" "$T/n.out"

sts_send carol@mon.test "monitored, stripped"
q_mon=$QID
sts_send erin@cert.test "monitored, wrong certificate name"
q_cert=$QID
id_cert=$MSGID
sts_send fred@unl.test "monitored, MX not in the policy"
q_unl=$QID
sts_send dave@strict.test "enforced, stripped"
q_strict=$QID

# enforced destination: deferred, nothing crossed
sts_assert_deferred "$q_strict" dave@strict.test starttls-not-supported
assert "strict.test was not monitored" \
	grep -qE "event=policy domain=strict.test .*level=verify result=ok" "$MXLOG"
assert "no would-defer for strict.test" [ "$(count_log "$MXLOG" 'event=would-defer domain=strict.test')" = 0 ]

# monitored destinations: delivered, each with its would-defer
for q in "$q_mon:carol@mon.test" "$q_cert:erin@cert.test" "$q_unl:fred@unl.test"; do
	wait_status "${q%%:*}" "${q#*:}" sent
	wait_mailbox "${q#*:}" 1
done
assert "mon.test: would-defer at STARTTLS" \
	grep -qE "event=would-defer domain=mon.test .*level=verify stage=starttls reason=starttls-not-supported .*action=delivered" "$MXLOG"
assert "mon.test went in cleartext through the stripping MITM" grep -q "stripped STARTTLS" "$BADLOG"
assert "cert.test: would-defer at the TLS check" \
	grep -qE "event=would-defer domain=cert.test .*stage=tls reason=certificate-host-mismatch" "$MXLOG"
f=$(msg_file_by_id erin@cert.test "$id_cert") || fail "cert.test message not found"
assert "cert.test was delivered over TLS all the same" [ -n "$(received_tls "$f")" ]
assert "unl.test: would-defer at the decision" \
	grep -qE "event=would-defer domain=unl.test .*level=defer stage=policy" "$MXLOG"
assert "unl.test: the policy line says would-defer" \
	grep -qE "event=policy domain=unl.test .*level=may result=would-defer .*enforcement=monitor would_level=defer" "$MXLOG"
assert "delivery lines carry would_defer=yes" \
	[ "$(count_log "$MXLOG" 'event=delivery .*enforcement=monitor would_defer=yes')" -ge 3 ]

mxg_ctl status --metrics >"$T/metrics.out" 2>&1 || fail "status --metrics: $(cat "$T/metrics.out")"
for st in starttls tls policy; do
	assert "would-defer counted for stage $st" \
		grep -qE "^mxguard_would_defer_total\\{stage=\"$st\"\\} [1-9]" "$T/metrics.out"
done

# the CLI answers what enforce mode would do
mxg_ctl policy unl.test >"$T/policy.out" 2>&1; rc=$?
assert "policy unl.test exits 2 (enforce would defer), got $rc" [ "$rc" = 2 ]
assert "policy unl.test says it is monitored" grep -qE "defer .*enforcement=monitor: delivered with may" "$T/policy.out"
mxg_ctl policy unl.test --json >"$T/policy.json" 2>&1
assert "policy --json: enforcement and level" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
vs = d["verdicts"]
assert vs and all(v["enforcement"] == "monitor" and v["level"] == "defer" and v["delivered_level"] == "may" for v in vs), vs
' "$T/policy.json"
mxg_ctl check mon.test >"$T/check.out" 2>&1; rc=$?
assert "check mon.test exits 2 (stripped: enforce would defer), got $rc" [ "$rc" = 2 ]
assert "check mon.test says it is monitored" grep -qF "enforcement=monitor" "$T/check.out"
pass "enforcement = monitor: would-defer logged, counted, delivered; override enforced"
