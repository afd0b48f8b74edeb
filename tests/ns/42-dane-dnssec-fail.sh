#!/bin/bash
# 42: a TLSA lookup that fails in a signed zone defers; it never falls
# back to MTA-STS or cleartext (RFC 7672 section 2.2):
#   bogus.test  the RRSIG of _25._tcp.mx.bogus.test TLSA is corrupted:
#               unbound answers SERVFAIL (DNSSEC bogus, extended error 6):
#               stays queued, reason dnssec-invalid;
#   sf.test     _tcp.mx.sf.test is delegated to a server that answers
#               SERVFAIL to everything: stays queued.
# Both receivers would verify fine otherwise (the TLSA data is right).
# Differential: posttls-finger -l dane does not report Verified either.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert mxbogus mx.bogus.test
make_cert mxsf mx.sf.test

dnssec_zone bogus.test signed
dnssec_mx bogus.test mx.bogus.test 10.25.1.31
dnssec_tlsa bogus.test mx.bogus.test 3 1 1 "$T/pki/mxbogus.crt"
dnssec_break_sig bogus.test _25._tcp.mx.bogus.test TLSA
dnssec_zone sf.test signed
dnssec_mx sf.test mx.sf.test 10.25.1.32
dnssec_servfail sf.test _tcp.mx
dnssec_start
assert "bogus TLSA answered SERVFAIL" [ "$(dnssec_rcode _25._tcp.mx.bogus.test TLSA)" = SERVFAIL ]
assert "delegated TLSA answered SERVFAIL" [ "$(dnssec_rcode _25._tcp.mx.sf.test TLSA)" = SERVFAIL ]
assert "the MX of bogus.test is still secure" _dnssec_ad bogus.test MX

rcv_listener 10.25.1.31 mxbogus
rcv_listener 10.25.1.32 mxsf
rcv_mailbox a@bogus.test b@sf.test
rcv_setup
snd_setup
snd_route bogus.test 10.25.1.31
snd_route sf.test 10.25.1.32

ptf_record bogus.test
ptf_record sf.test

mxg_start "$DNSSEC_MXG_CONF"
new_body "$T/body" 2000
send_mail x@sender.test a@bogus.test "$T/body" "bogus tlsa"
q1=$(find_qid "$MSGID")
send_mail x@sender.test b@sf.test "$T/body" "servfail tlsa"
q2=$(find_qid "$MSGID")
wait_status "$q1" a@bogus.test deferred
wait_status "$q2" b@sf.test deferred

assert "bogus.test: deferred by DANE, reason dnssec-invalid" grep -qE "event=policy domain=bogus.test .*source=dane level=defer result=defer reason=dnssec-invalid" "$MXLOG"
assert "sf.test: deferred by DANE, reason dnssec-invalid" grep -qE "event=policy domain=sf.test .*source=dane level=defer result=defer reason=dnssec-invalid" "$MXLOG"
assert "sender queue shows dnssec-invalid" bash -c "postqueue -c '$SD/etc' -j | grep -q 'dnssec-invalid'"
assert "no envelope towards the bogus.test receiver (no MAIL or RCPT)" [ "$(rcv_envelopes 10.25.1.31)" = 0 ]
assert "no envelope towards the sf.test receiver (no MAIL or RCPT)" [ "$(rcv_envelopes 10.25.1.32)" = 0 ]
assert "nothing delivered" [ "$(all_mailbox_count)" = 0 ]
assert "mxguard sent no MAIL FROM upstream" [ "$(mx_count 'event=command-upstream text="MAIL FROM')" = 0 ]

dane_differential bogus.test "$(mxg_verdict "$q1" a@bogus.test bogus.test)"
dane_differential sf.test "$(mxg_verdict "$q2" b@sf.test sf.test)"
pass "bogus and SERVFAIL TLSA lookups defer"
