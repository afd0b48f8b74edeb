#!/bin/bash
# 68: the resolver self-check (policy/dnscheck.c).  A signed domain with a
# DANE-EE TLSA record (dv.test, knot + ldns-signzone as in 40), and two
# unbound resolvers in the sender namespace reaching the same zones:
#   127.0.0.1  validating with the test trust anchors (tests/lib/dnssec.sh)
#   127.0.0.2  module-config "iterator", no trust anchor: never sets AD
# The check asks for dv.test's DNSKEY (dns_check_signed_name; the test
# world has no root zone) and for bogus.dv.test A, whose RRSIG is broken
# (dns_check_bogus_name).
#   mxguard on 127.0.0.2: mxguard -n -v says the resolver does not validate,
#     the gauge mxguard_dns_validating is 0 in `mxguard status`, the
#     warning event=dns-not-validating is logged, and a message to dv.test
#     goes out without DANE (its TLSA is not secure: opportunistic TLS);
#     its event=policy and event=delivery lines and `mxguard policy dv.test`
#     (text and --json) say dane=not-applicable
#     dane_reason=resolver-not-validating (issue 13).
#   mxguard on 127.0.0.1: -n says it validates, the gauge is 1, the info
#     line event=dns-validating is logged, and the same message is
#     DANE-verified.
#   then reloaded to 127.0.0.2: the self-check follows the engine to the
#     new resolver (the warning, the gauge 0, the verdict's note).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
mxg_ctl() { ip netns exec "$SND" "$MXGUARD" -c "$T/mxguard.conf" "$@"; }
ns_setup
make_cert mxdv mx.dv.test

dnssec_zone dv.test signed
dnssec_mx dv.test mx.dv.test 10.25.1.11
dnssec_tlsa dv.test mx.dv.test 3 1 1 "$T/pki/mxdv.crt"
dnssec_rr dv.test "bogus.dv.test. 300 IN A 192.0.2.7"
dnssec_break_sig dv.test bogus.dv.test. A
dnssec_start
assert "dv.test DNSKEY is secure through the validating unbound" _dnssec_ad dv.test DNSKEY
assert "bogus.dv.test is SERVFAIL through the validating unbound" [ "$(dnssec_rcode bogus.dv.test A)" = SERVFAIL ]

# the non-validating resolver: same stubs, no validator module
{
	cat <<EOF
server:
    interface: 127.0.0.2
    port: 53
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$ZD"
    pidfile: "$ZD/unbound-nv.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    do-ip6: no
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    qname-minimisation: no
    local-zone: "test." nodefault
remote-control:
    control-enable: no
stub-zone:
    name: "."
    stub-addr: $DNSSEC_IP
stub-zone:
    name: "dv.test"
    stub-addr: $DNSSEC_IP
EOF
} >"$ZD/unbound-nv.conf"
unbound-checkconf "$ZD/unbound-nv.conf" >"$ZD/unbound-nv-check.log" 2>&1 ||
	fail "unbound-nv.conf: $(cat "$ZD/unbound-nv-check.log")"
bg "$SND" "$ZD/unbound-nv.log" unbound -d -c "$ZD/unbound-nv.conf"
wait_port "$SND" 127.0.0.2 53
wait_for 15 "dv.test DNSKEY through the non-validating unbound" \
	bash -c "ip netns exec '$SND' drill -D dv.test DNSKEY @127.0.0.2 | grep -qE '^dv\.test\.[[:space:]].*DNSKEY'"
assert "the non-validating unbound answers without AD" lacks '^;; flags: .*\bad\b' in_snd drill -D dv.test DNSKEY @127.0.0.2

rcv_listener 10.25.1.11 mxdv
rcv_mailbox alice@dv.test
rcv_setup
snd_setup
snd_route dv.test 10.25.1.11

CHECK_CONF="dns_timeout = 5s
dns_check_signed_name = dv.test
dns_check_bogus_name = bogus.dv.test"

# --- 1: the resolver does not validate
mxg_start "dns_servers = 127.0.0.2
$CHECK_CONF"
mxg_ctl -n -v >"$T/n1.log" 2>&1 || fail "mxguard -n: $(cat "$T/n1.log")"
assert "mxguard -n: the resolver does not validate" grep -q "dns: WARNING: the resolver does not validate DNSSEC (the signed name's DNSKEY came back without the AD bit): DANE cannot apply" "$T/n1.log"
assert "mxguard -n: a loopback resolver is no remote one" lacks 'is not a loopback address' cat "$T/n1.log"
assert "no event=dns-server-remote for 127.0.0.2" [ "$(mx_count 'event=dns-server-remote')" = 0 ]
wait_log "$MXLOG" "event=dns-not-validating resolver=127.0.0.2 signed=dv.test status=insecure bogus_status=insecure .*note=\"DANE cannot apply\""
mxg_ctl status >"$T/status1.out" 2>&1 || fail "mxguard status: $(cat "$T/status1.out")"
assert "status: mxguard_dns_validating 0" grep -qx "mxguard_dns_validating 0" "$T/status1.out"
mxg_ctl status --metrics >"$T/metrics1.out" 2>&1 || fail "mxguard status --metrics: $(cat "$T/metrics1.out")"
assert "metrics: the gauge has type gauge" grep -qx "# TYPE mxguard_dns_validating gauge" "$T/metrics1.out"

new_body "$T/body" 2000
send_mail x@sender.test alice@dv.test "$T/body" "resolver does not validate"
q1=$(find_qid "$MSGID")
wait_status "$q1" alice@dv.test sent
wait_mailbox alice@dv.test 1
assert "DANE not applicable: no dane verdict for dv.test" [ "$(mx_count "event=policy domain=dv.test .*source=dane")" = 0 ]
assert "delivered with opportunistic TLS" grep -qE "event=policy domain=dv.test .*level=(may|encrypt|none)" "$MXLOG"
grep -E "event=policy domain=dv.test" "$MXLOG" | head -n1 | sed 's/^/  not validating: /'
# issue 13: the decision and the message say why DANE did not apply
assert "event=policy notes DANE not applicable (resolver not validating)" grep -qE "event=policy domain=dv.test .* dane=not-applicable dane_reason=resolver-not-validating\$" "$MXLOG"
assert "event=delivery notes DANE not applicable (resolver not validating)" grep -qE "event=delivery domains=dv.test .* dane=not-applicable dane_reason=resolver-not-validating\$" "$MXLOG"
mxg_ctl policy dv.test >"$T/policy1.out" 2>&1 || fail "mxguard policy dv.test: $(cat "$T/policy1.out")"
sed 's/^/  mxguard policy: /' "$T/policy1.out"
assert "mxguard policy: the resolver does not validate, DANE not applicable" grep -q "^resolver: does not validate DNSSEC (the signed name's DNSKEY came back without the AD bit): DANE not applicable" "$T/policy1.out"
assert "mxguard policy: the verdict notes it" grep -qE "mx.dv.test \[10.25.1.11\]: (may|encrypt) .* dane=not-applicable dane_reason=resolver-not-validating" "$T/policy1.out"
mxg_ctl policy --json dv.test >"$T/policy1.json" 2>&1 || fail "mxguard policy --json dv.test: $(cat "$T/policy1.json")"
assert "mxguard policy --json: resolver.validating false, verdict dane not-applicable" python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
assert o["resolver"]["validating"] is False, o["resolver"]
assert [v["dane"] for v in o["verdicts"]] == ["not-applicable"], o["verdicts"]
assert o["verdicts"][0]["dane_reason"] == "resolver-not-validating"
' "$T/policy1.json"
mxg_stop

# --- 2: the resolver validates
mxg_start "dns_servers = 127.0.0.1
$CHECK_CONF"
mxg_ctl -n -v >"$T/n2.log" 2>&1 || fail "mxguard -n: $(cat "$T/n2.log")"
assert "mxguard -n: the resolver validates" grep -q "dns: the resolver validates DNSSEC (the signed name validated, the bogus name was rejected)" "$T/n2.log"
wait_log "$MXLOG" "event=dns-validating resolver=127.0.0.1 signed=dv.test bogus=bogus.dv.test"
assert "no dns-not-validating warning with the validating resolver" [ "$(mx_count "event=dns-not-validating")" = 0 ]
mxg_ctl status >"$T/status2.out" 2>&1 || fail "mxguard status: $(cat "$T/status2.out")"
assert "status: mxguard_dns_validating 1" grep -qx "mxguard_dns_validating 1" "$T/status2.out"

send_mail x@sender.test alice@dv.test "$T/body" "resolver validates"
q2=$(find_qid "$MSGID")
wait_status "$q2" alice@dv.test sent
wait_mailbox alice@dv.test 2
assert "DANE applies: dane verdict for dv.test" grep -qE "event=policy domain=dv.test .*source=dane level=dane result=ok" "$MXLOG"
assert "no dane=not-applicable note with the validating resolver" [ "$(mx_count "dane=not-applicable")" = 0 ]
mxg_ctl policy --json dv.test >"$T/policy2.json" 2>&1 || fail "mxguard policy --json dv.test: $(cat "$T/policy2.json")"
assert "mxguard policy --json: resolver.validating true, DANE verdict, no note" python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
assert o["resolver"]["validating"] is True, o["resolver"]
assert [(v["level"], v["dane"]) for v in o["verdicts"]] == [("dane", None)], o["verdicts"]
' "$T/policy2.json"

# --- 3: a reload to the resolver that does not validate.  The engine asks
# the new one from then on, and so must the self-check: one left on the
# old resolver went on saying it validates (gauge 1, no warning, no note
# in the verdicts) while DANE could no longer apply.
sed -i 's/^dns_servers = 127.0.0.1$/dns_servers = 127.0.0.2/' "$T/mxguard.conf"
n_reloaded=$(mx_count "event=reloaded")
kill -HUP "$MXG_PID"
_reloaded() { [ "$(mx_count "event=reloaded")" -gt "$n_reloaded" ]; }
wait_for 20 "the reload applied" _reloaded
wait_log "$MXLOG" "event=dns-not-validating resolver=127.0.0.2 signed=dv.test status=insecure"
mxg_ctl status >"$T/status3.out" 2>&1 || fail "mxguard status: $(cat "$T/status3.out")"
assert "status after the reload: mxguard_dns_validating 0" grep -qx "mxguard_dns_validating 0" "$T/status3.out"
send_mail x@sender.test alice@dv.test "$T/body" "reloaded to a resolver that does not validate"
q3=$(find_qid "$MSGID")
wait_status "$q3" alice@dv.test sent
wait_mailbox alice@dv.test 3
assert "after the reload the verdict notes DANE not applicable" grep -qE "event=policy domain=dv.test .* dane=not-applicable dane_reason=resolver-not-validating\$" "$MXLOG"
mxg_stop
pass "non-validating resolver: gauge 0, warning, DANE not applied; validating: gauge 1, DANE; a reload to the non-validating one: gauge 0, warning"
