#!/bin/bash
# 40: DANE-EE (RFC 7672).  Two DNSSEC-signed domains (knot, ldns-signzone;
# unbound validating with the test trust anchors):
#   ee-ok.test   TLSA 3 1 1 of the receiver's key: delivered, DANE-verified;
#   ee-bad.test  TLSA 3 1 1 of another key, while the receiver's
#                certificate is WebPKI-valid for its name: stays queued,
#                reason tlsa-invalid (DANE does not fall back to WebPKI).
# Differential: posttls-finger -l dane agrees with mxguard on both.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert mxok mx.ee-ok.test
make_cert mxbad mx.ee-bad.test
make_cert unrelated mx.ee-bad.test

dnssec_zone ee-ok.test signed
dnssec_mx ee-ok.test mx.ee-ok.test 10.25.1.11
dnssec_tlsa ee-ok.test mx.ee-ok.test 3 1 1 "$T/pki/mxok.crt"
dnssec_zone ee-bad.test signed
dnssec_mx ee-bad.test mx.ee-bad.test 10.25.1.12
dnssec_tlsa ee-bad.test mx.ee-bad.test 3 1 1 "$T/pki/unrelated.crt"
dnssec_start
assert "TLSA of mx.ee-ok.test is secure" _dnssec_ad _25._tcp.mx.ee-ok.test TLSA

rcv_listener 10.25.1.11 mxok
rcv_listener 10.25.1.12 mxbad
rcv_mailbox alice@ee-ok.test bob@ee-bad.test
rcv_setup
snd_setup
snd_route ee-ok.test 10.25.1.11
snd_route ee-bad.test 10.25.1.12

# differential peer first: no divert rules yet
ptf_record ee-ok.test
ptf_record ee-bad.test

mxg_start "$DNSSEC_MXG_CONF"
new_body "$T/body" 3000
send_mail x@sender.test alice@ee-ok.test "$T/body" "dane-ee ok"
m1=$MSGID; q1=$(find_qid "$MSGID")
send_mail x@sender.test bob@ee-bad.test "$T/body" "dane-ee mismatch"
q2=$(find_qid "$MSGID")
wait_status "$q1" alice@ee-ok.test sent
wait_mailbox alice@ee-ok.test 1
wait_status "$q2" bob@ee-bad.test deferred

assert "mxguard chose DANE for ee-ok.test" grep -qE "event=policy domain=ee-ok.test .*mx=mx.ee-ok.test source=dane level=dane result=ok" "$MXLOG"
assert "DANE-EE matched (event=tls verify=success)" grep -qE "event=tls dst=10.25.1.11:25 mx=mx.ee-ok.test .*verify=success" "$MXLOG"
f=$(msg_file_by_id alice@ee-ok.test "$m1") || fail "message $m1 not stored"
assert "receiver got it over TLS" [ -n "$(received_tls "$f")" ]
assert "ee-bad.test: policy failure tlsa-invalid" grep -qE "event=policy-failure domain=ee-bad.test .*source=dane level=dane reason=tlsa-invalid" "$MXLOG"
assert "ee-bad.test: nothing delivered" [ "$(mailbox_count bob@ee-bad.test)" = 0 ]
assert "ee-bad.test: queued with a 4.7.5 reason" bash -c "postqueue -c '$SD/etc' -j | grep -q 'tlsa-invalid'"
assert "no envelope reached the ee-bad.test receiver (no MAIL or RCPT)" [ "$(rcv_envelopes 10.25.1.12)" = 0 ]

# a second message to the same MX: a session of its own with a fresh DANE
# verdict, which either rides the first session's DANE-verified leg
# (parked for reuse) or makes a new connection (possibly a resumed TLS
# session) verified by DANE again
send_mail x@sender.test alice@ee-ok.test "$T/body" "dane-ee ok, again"
q3=$(find_qid "$MSGID")
wait_status "$q3" alice@ee-ok.test sent
wait_mailbox alice@ee-ok.test 2
n_tls=$(count_log "$MXLOG" "event=tls dst=10.25.1.11:25 mx=mx.ee-ok.test .*verify=success")
n_reused=$(count_log "$MXLOG" "event=upstream-reused dst=10.25.1.11:25 ")
log "second session: $n_tls verified handshake(s), $n_reused reuse(s) of the verified leg"
assert "second delivery verified too (new handshake or the verified leg)" [ $((n_tls + n_reused)) = 2 ]
assert "second delivery had a DANE verdict of its own" [ "$(count_log "$MXLOG" "event=verdict domain=ee-ok.test .*source=dane level=dane")" = 2 ]

dane_differential ee-ok.test "$(mxg_verdict "$q1" alice@ee-ok.test ee-ok.test)"
dane_differential ee-bad.test "$(mxg_verdict "$q2" bob@ee-bad.test ee-bad.test)"
pass "DANE-EE match delivered and verified, mismatch queued"
