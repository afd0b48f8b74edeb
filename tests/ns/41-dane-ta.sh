#!/bin/bash
# 41: DANE-TA (RFC 7672 usage 2): TLSA 2 0 1 of the test CA.
#   ta-ok.test    the receiver's certificate (issued by the CA) names the
#                 MX host: delivered, verified;
#   ta-name.test  same CA, but the certificate names another host: name
#                 checks apply under DANE-TA: stays queued
#                 (certificate-host-mismatch);
#   ta-spki.test  TLSA 2 1 1 (CA public key), right name: delivered.
# Differential: posttls-finger -l dane agrees with mxguard on each.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert taok mx.ta-ok.test
make_cert taname somewhere-else.test
make_cert taspki mx.ta-spki.test

dnssec_zone ta-ok.test signed
dnssec_mx ta-ok.test mx.ta-ok.test 10.25.1.21
dnssec_tlsa ta-ok.test mx.ta-ok.test 2 0 1 "$T/pki/ca.crt"
dnssec_zone ta-name.test signed
dnssec_mx ta-name.test mx.ta-name.test 10.25.1.22
dnssec_tlsa ta-name.test mx.ta-name.test 2 0 1 "$T/pki/ca.crt"
dnssec_zone ta-spki.test signed
dnssec_mx ta-spki.test mx.ta-spki.test 10.25.1.23
dnssec_tlsa ta-spki.test mx.ta-spki.test 2 1 1 "$T/pki/ca.crt"
dnssec_start

rcv_listener 10.25.1.21 taok
rcv_listener 10.25.1.22 taname
rcv_listener 10.25.1.23 taspki
rcv_mailbox a@ta-ok.test b@ta-name.test c@ta-spki.test
rcv_setup
snd_setup
snd_route ta-ok.test 10.25.1.21
snd_route ta-name.test 10.25.1.22
snd_route ta-spki.test 10.25.1.23

ptf_record ta-ok.test
ptf_record ta-name.test
ptf_record ta-spki.test

mxg_start "$DNSSEC_MXG_CONF"
new_body "$T/body" 2000
send_mail x@sender.test a@ta-ok.test "$T/body" "dane-ta ok"
q1=$(find_qid "$MSGID")
send_mail x@sender.test b@ta-name.test "$T/body" "dane-ta wrong name"
q2=$(find_qid "$MSGID")
send_mail x@sender.test c@ta-spki.test "$T/body" "dane-ta spki"
q3=$(find_qid "$MSGID")
wait_status "$q1" a@ta-ok.test sent
wait_status "$q3" c@ta-spki.test sent
wait_status "$q2" b@ta-name.test deferred
wait_mailbox a@ta-ok.test 1
wait_mailbox c@ta-spki.test 1

assert "ta-ok.test: DANE-TA matched" grep -qE "event=tls dst=10.25.1.21:25 mx=mx.ta-ok.test .*verify=success" "$MXLOG"
assert "ta-spki.test: DANE-TA matched" grep -qE "event=tls dst=10.25.1.23:25 mx=mx.ta-spki.test .*verify=success" "$MXLOG"
assert "ta-name.test: name check failed" grep -qE "event=policy-failure domain=ta-name.test .*source=dane level=dane reason=certificate-host-mismatch" "$MXLOG"
assert "ta-name.test: nothing delivered" [ "$(mailbox_count b@ta-name.test)" = 0 ]
assert "ta-name.test: still queued" queue_has "$q2"

dane_differential ta-ok.test "$(mxg_verdict "$q1" a@ta-ok.test ta-ok.test)"
dane_differential ta-name.test "$(mxg_verdict "$q2" b@ta-name.test ta-name.test)"
dane_differential ta-spki.test "$(mxg_verdict "$q3" c@ta-spki.test ta-spki.test)"
pass "DANE-TA: right name delivered, wrong name queued"
