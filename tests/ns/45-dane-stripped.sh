#!/bin/bash
# 45: DANE published, STARTTLS gone: stays queued, reason dane-required.
#   strip.test    a STARTTLS-stripping man in the middle (badsmtp mitm,
#                 STARTTLS -> XXXXXXXA) in front of a receiver whose
#                 certificate matches the TLSA record; the failure detail
#                 names the middlebox signature;
#   notls.test    the receiver itself offers no STARTTLS.
# Differential: posttls-finger -l dane does not report Verified either.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert mxstrip mx.strip.test

dnssec_zone strip.test signed
dnssec_mx strip.test mx.strip.test 10.25.1.41
dnssec_tlsa strip.test mx.strip.test 3 1 1 "$T/pki/mxstrip.crt"
dnssec_zone notls.test signed
dnssec_mx notls.test mx.notls.test 10.25.1.42
dnssec_tlsa notls.test mx.notls.test 3 1 1 "$T/pki/mxstrip.crt"
dnssec_start

# the real MX behind the middlebox
rcv_listener 10.25.1.141 mxstrip
rcv_listener 10.25.1.42 none
rcv_mailbox a@strip.test b@notls.test
rcv_setup
bad_start 10.25.1.41 --mode mitm --upstream 10.25.1.141:25
snd_setup
snd_route strip.test 10.25.1.41
snd_route notls.test 10.25.1.42

ptf_record strip.test
ptf_record notls.test

mxg_start "$DNSSEC_MXG_CONF"
new_body "$T/body" 2000
send_mail x@sender.test a@strip.test "$T/body" "stripped"
q1=$(find_qid "$MSGID")
send_mail x@sender.test b@notls.test "$T/body" "no starttls"
q2=$(find_qid "$MSGID")
wait_status "$q1" a@strip.test deferred
wait_status "$q2" b@notls.test deferred

assert "strip.test: DANE verdict" grep -qE "event=policy domain=strip.test .*source=dane level=dane result=ok" "$MXLOG"
assert "strip.test: dane-required, middlebox named" grep -qE "event=policy-failure domain=strip.test .*reason=dane-required detail=.*XXXXXXXA" "$MXLOG"
assert "the middlebox did strip STARTTLS" grep -q "stripped STARTTLS" "$BADLOG"
assert "notls.test: dane-required" grep -qE "event=policy-failure domain=notls.test .*reason=dane-required" "$MXLOG"
assert "sender queue shows dane-required" bash -c "postqueue -c '$SD/etc' -j | grep -q 'dane-required'"
assert "no MAIL FROM went upstream in cleartext" [ "$(mx_count 'event=command-upstream text="MAIL FROM')" = 0 ]
assert "nothing delivered" [ "$(all_mailbox_count)" = 0 ]

dane_differential strip.test "$(mxg_verdict "$q1" a@strip.test strip.test)"
dane_differential notls.test "$(mxg_verdict "$q2" b@notls.test notls.test)"
pass "DANE with STARTTLS stripped stays queued (dane-required)"
