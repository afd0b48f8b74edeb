#!/bin/bash
# 49: MX hosts that are CNAME aliases (RFC 7672 section 2.2.2): the TLSA
# base domain is the fully expanded name first, then the original name.
#   cn-ee.test  mx.cn-ee.test CNAME real.cn-ee.test; TLSA 3 1 1 only at
#               _25._tcp.real.cn-ee.test: delivered, verified for the
#               expanded name;
#   cn-ta.test  mx.cn-ta.test CNAME real.cn-ta.test; TLSA 2 0 1 only at
#               _25._tcp.mx.cn-ta.test (the original name) and a
#               certificate for mx.cn-ta.test: delivered, verified.
# Differential: posttls-finger -l dane agrees with mxguard on both.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert cnee real.cn-ee.test
make_cert cnta mx.cn-ta.test

dnssec_zone cn-ee.test signed
dnssec_rr cn-ee.test "cn-ee.test. IN MX 10 mx.cn-ee.test."
dnssec_rr cn-ee.test "mx.cn-ee.test. IN CNAME real.cn-ee.test."
dnssec_rr cn-ee.test "real.cn-ee.test. IN A 10.25.1.96"
dnssec_tlsa cn-ee.test real.cn-ee.test 3 1 1 "$T/pki/cnee.crt"
dnssec_zone cn-ta.test signed
dnssec_rr cn-ta.test "cn-ta.test. IN MX 10 mx.cn-ta.test."
dnssec_rr cn-ta.test "mx.cn-ta.test. IN CNAME real.cn-ta.test."
dnssec_rr cn-ta.test "real.cn-ta.test. IN A 10.25.1.97"
dnssec_tlsa cn-ta.test mx.cn-ta.test 2 0 1 "$T/pki/ca.crt"
dnssec_start

rcv_listener 10.25.1.96 cnee
rcv_listener 10.25.1.97 cnta
rcv_mailbox a@cn-ee.test b@cn-ta.test
rcv_setup
snd_setup
snd_route cn-ee.test 10.25.1.96
snd_route cn-ta.test 10.25.1.97

ptf_record cn-ee.test
ptf_record cn-ta.test

mxg_start "$DNSSEC_MXG_CONF"
new_body "$T/body" 2000
send_mail x@sender.test a@cn-ee.test "$T/body" "cname ee"
q1=$(find_qid "$MSGID")
send_mail x@sender.test b@cn-ta.test "$T/body" "cname ta"
q2=$(find_qid "$MSGID")
wait_status "$q1" a@cn-ee.test sent
wait_status "$q2" b@cn-ta.test sent

assert "cn-ee.test: TLSA at the expanded name" grep -qE "event=policy domain=cn-ee.test .*source=dane level=dane result=ok .*_25._tcp.real.cn-ee.test" "$MXLOG"
assert "cn-ee.test: DANE-EE matched for the expanded name" grep -qE "event=tls dst=10.25.1.96:25 .*verify=success" "$MXLOG"
assert "cn-ta.test: TLSA at the original name" grep -qE "event=policy domain=cn-ta.test .*source=dane level=dane result=ok .*_25._tcp.mx.cn-ta.test" "$MXLOG"
assert "cn-ta.test: DANE-TA matched" grep -qE "event=tls dst=10.25.1.97:25 .*verify=success" "$MXLOG"

dane_differential cn-ee.test "$(mxg_verdict "$q1" a@cn-ee.test cn-ee.test)"
dane_differential cn-ta.test "$(mxg_verdict "$q2" b@cn-ta.test cn-ta.test)"
pass "CNAME MX hosts: expanded name first, then the original"
