#!/bin/bash
# 43: TLSA records that DNSSEC does not protect are ignored (RFC 7672
# section 2.2): plain.test is an unsigned zone whose TLSA record does not
# match the receiver's certificate; mxguard delivers opportunistically over
# TLS.  nodane.test is signed but publishes no TLSA: also opportunistic.
# Differential: posttls-finger -l dane does not report Verified for either.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert mxplain mx.plain.test
make_cert unrelated mx.plain.test
make_cert mxnodane mx.nodane.test

dnssec_zone plain.test unsigned
dnssec_mx plain.test mx.plain.test 10.25.1.51
dnssec_tlsa plain.test mx.plain.test 3 1 1 "$T/pki/unrelated.crt"
dnssec_zone nodane.test signed
dnssec_mx nodane.test mx.nodane.test 10.25.1.52
dnssec_start
assert "plain.test TLSA is visible" dnssec_check _25._tcp.mx.plain.test TLSA "IN[[:space:]]+TLSA[[:space:]]+3 1 1"
assert "plain.test TLSA is not validated (no AD)" _dnssec_noad _25._tcp.mx.plain.test TLSA

rcv_listener 10.25.1.51 mxplain
rcv_listener 10.25.1.52 mxnodane
rcv_mailbox a@plain.test b@nodane.test
rcv_setup
snd_setup
snd_route plain.test 10.25.1.51
snd_route nodane.test 10.25.1.52

ptf_record plain.test
ptf_record nodane.test

mxg_start "$DNSSEC_MXG_CONF"
new_body "$T/body" 2000
send_mail x@sender.test a@plain.test "$T/body" "unsigned tlsa"
m1=$MSGID; q1=$(find_qid "$MSGID")
send_mail x@sender.test b@nodane.test "$T/body" "signed, no tlsa"
m2=$MSGID; q2=$(find_qid "$MSGID")
wait_status "$q1" a@plain.test sent
wait_status "$q2" b@nodane.test sent
wait_mailbox a@plain.test 1
wait_mailbox b@nodane.test 1

assert "plain.test: opportunistic, not DANE" grep -qE "event=policy domain=plain.test .*source=default level=may result=ok" "$MXLOG"
assert "plain.test: DANE lookup says unvalidated TLSA ignored" grep -qE "event=dane-lookup domain=plain.test .*state=none" "$MXLOG"
assert "nodane.test: opportunistic, not DANE" grep -qE "event=policy domain=nodane.test .*source=default level=may result=ok" "$MXLOG"
f=$(msg_file_by_id a@plain.test "$m1") || fail "message $m1 not stored"
assert "plain.test message went over TLS" [ -n "$(received_tls "$f")" ]
f=$(msg_file_by_id b@nodane.test "$m2") || fail "message $m2 not stored"
assert "nodane.test message went over TLS" [ -n "$(received_tls "$f")" ]

dane_differential plain.test "$(mxg_verdict "$q1" a@plain.test plain.test)"
dane_differential nodane.test "$(mxg_verdict "$q2" b@nodane.test nodane.test)"
pass "unvalidated TLSA ignored; signed zone without TLSA opportunistic"
