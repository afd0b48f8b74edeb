#!/bin/bash
# 48: a secure TLSA RRset with only unusable records (RFC 7672 section
# 3.1.3: PKIX usages 0/1 are not for SMTP; unknown parameters, wrong
# lengths): TLS is mandatory but unauthenticated (level encrypt).
#   unus.test        receiver with a self-signed certificate: delivered
#                    over TLS, not verified;
#   unus-plain.test  receiver without STARTTLS: stays queued
#                    (dane-required), never in cleartext.
# Differential: posttls-finger -l dane does not report Verified either.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert mxunus mx.unus.test selfsigned

for d in unus.test unus-plain.test; do
	dnssec_zone $d signed
	dnssec_mx $d mx.$d "$([ $d = unus.test ] && echo 10.25.1.91 || echo 10.25.1.92)"
	dnssec_tlsa $d mx.$d 1 1 1 "$T/pki/mxunus.crt"
	dnssec_rr $d "_25._tcp.mx.$d. IN TLSA 3 1 1 abcdef"
done
dnssec_start

rcv_listener 10.25.1.91 mxunus
rcv_listener 10.25.1.92 none
rcv_mailbox a@unus.test b@unus-plain.test
rcv_setup
snd_setup
snd_route unus.test 10.25.1.91
snd_route unus-plain.test 10.25.1.92

ptf_record unus.test
ptf_record unus-plain.test

mxg_start "$DNSSEC_MXG_CONF"
new_body "$T/body" 2000
send_mail x@sender.test a@unus.test "$T/body" "unusable tlsa"
m1=$MSGID; q1=$(find_qid "$MSGID")
send_mail x@sender.test b@unus-plain.test "$T/body" "unusable tlsa, no tls"
q2=$(find_qid "$MSGID")
wait_status "$q1" a@unus.test sent
wait_mailbox a@unus.test 1
wait_status "$q2" b@unus-plain.test deferred

assert "unus.test: DANE with only unusable records: encrypt" grep -qE "event=policy domain=unus.test .*source=dane level=encrypt result=ok" "$MXLOG"
f=$(msg_file_by_id a@unus.test "$m1") || fail "message $m1 not stored"
assert "unus.test: delivered over TLS" [ -n "$(received_tls "$f")" ]
assert "unus-plain.test: dane-required" grep -qE "event=policy-failure domain=unus-plain.test .*source=dane level=encrypt reason=dane-required" "$MXLOG"
assert "unus-plain.test: nothing delivered" [ "$(mailbox_count b@unus-plain.test)" = 0 ]

dane_differential unus.test "$(mxg_verdict "$q1" a@unus.test unus.test)"
dane_differential unus-plain.test "$(mxg_verdict "$q2" b@unus-plain.test unus-plain.test)"
pass "only unusable TLSA records: TLS mandatory, unauthenticated"
