#!/bin/bash
# 44: DANE and MTA-STS both published: DANE decides (RFC 8461 section 2),
# and mxguard logs that it ignored the MTA-STS policy.
#   both.test     TLSA 3 1 1 matches the receiver's self-signed certificate;
#                 the MTA-STS policy (enforce) lists another MX host and the
#                 certificate is not WebPKI-valid: under MTA-STS it would be
#                 deferred; under DANE it is delivered, verified.
#   both-bad.test TLSA 3 1 1 of another key; the MTA-STS policy (enforce)
#                 matches and the certificate is WebPKI-valid for the test
#                 CA: MTA-STS would deliver, DANE keeps it queued.
# Differential: posttls-finger -l dane agrees with mxguard on both.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
. "$(dirname "$0")/../lib/sts.sh"
need_mxguard
ns_setup
make_cert mxboth mx.both.test selfsigned
make_cert mxbothbad mx.both-bad.test
make_cert unrelated mx.both-bad.test

for d in both.test both-bad.test; do
	dnssec_zone $d signed
	dnssec_rr $d "_mta-sts.$d. IN TXT \"v=STSv1; id=20261129\""
	dnssec_rr $d "mta-sts.$d. IN A $STS_IP"
done
dnssec_mx both.test mx.both.test 10.25.1.71
dnssec_tlsa both.test mx.both.test 3 1 1 "$T/pki/mxboth.crt"
dnssec_mx both-bad.test mx.both-bad.test 10.25.1.72
dnssec_tlsa both-bad.test mx.both-bad.test 3 1 1 "$T/pki/unrelated.crt"
dnssec_start

sts_site both.test
sts_site both-bad.test
printf 'version: STSv1\nmode: enforce\nmx: other.both.test\nmax_age: 86400\n' | sts_policy both.test
printf 'version: STSv1\nmode: enforce\nmx: mx.both-bad.test\nmax_age: 86400\n' | sts_policy both-bad.test
sts_start

rcv_listener 10.25.1.71 mxboth
rcv_listener 10.25.1.72 mxbothbad
rcv_mailbox a@both.test b@both-bad.test
rcv_setup
snd_setup
snd_route both.test 10.25.1.71
snd_route both-bad.test 10.25.1.72

ptf_record both.test
ptf_record both-bad.test

mxg_start "$DNSSEC_MXG_CONF
$STS_MXG_CONF"
new_body "$T/body" 2000
send_mail x@sender.test a@both.test "$T/body" "dane and sts"
q1=$(find_qid "$MSGID")
send_mail x@sender.test b@both-bad.test "$T/body" "dane mismatch, sts ok"
q2=$(find_qid "$MSGID")
wait_status "$q1" a@both.test sent
wait_mailbox a@both.test 1
wait_status "$q2" b@both-bad.test deferred

assert "both.test: DANE decided" grep -qE "event=policy domain=both.test .*source=dane level=dane result=ok" "$MXLOG"
assert "both.test: MTA-STS policy was seen and ignored" grep -qE "event=dane-over-mta-sts domain=both.test .*sts_mode=enforce" "$MXLOG"
assert "both.test: DANE-EE matched" grep -qE "event=tls dst=10.25.1.71:25 .*verify=success" "$MXLOG"
assert "both-bad.test: DANE decided" grep -qE "event=policy domain=both-bad.test .*source=dane level=dane result=ok" "$MXLOG"
assert "both-bad.test: MTA-STS ignored" grep -qE "event=dane-over-mta-sts domain=both-bad.test" "$MXLOG"
assert "both-bad.test: tlsa-invalid, no WebPKI fallback" grep -qE "event=policy-failure domain=both-bad.test .*reason=tlsa-invalid" "$MXLOG"
assert "both-bad.test: nothing delivered" [ "$(mailbox_count b@both-bad.test)" = 0 ]

dane_differential both.test "$(mxg_verdict "$q1" a@both.test both.test)"
dane_differential both-bad.test "$(mxg_verdict "$q2" b@both-bad.test both-bad.test)"
pass "DANE takes precedence over MTA-STS"
