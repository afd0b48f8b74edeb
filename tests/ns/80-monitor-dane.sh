#!/bin/bash
# 80: monitor mode with DANE.  Global enforce; enforcement_override puts
# one DNSSEC-signed domain on monitor:
#   mon-dane.test  TLSA 3 1 1 of another key (enforce mode: tlsa-invalid,
#                  deferred): delivered over TLS, event=would-defer
#                  stage=tls reason=tlsa-invalid, twice (a second message
#                  gets its own handshake and check: a failed monitored
#                  check is never parked nor resumed);
#   enf-dane.test  the same mismatch, enforced: stays queued, nothing
#                  crossed.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert mxmon mx.mon-dane.test
make_cert mxenf mx.enf-dane.test
make_cert unrelated unrelated.test

dnssec_zone mon-dane.test signed
dnssec_mx mon-dane.test mx.mon-dane.test 10.25.1.11
dnssec_tlsa mon-dane.test mx.mon-dane.test 3 1 1 "$T/pki/unrelated.crt"
dnssec_zone enf-dane.test signed
dnssec_mx enf-dane.test mx.enf-dane.test 10.25.1.12
dnssec_tlsa enf-dane.test mx.enf-dane.test 3 1 1 "$T/pki/unrelated.crt"
dnssec_start
assert "TLSA of mx.mon-dane.test is secure" _dnssec_ad _25._tcp.mx.mon-dane.test TLSA

rcv_listener 10.25.1.11 mxmon
rcv_listener 10.25.1.12 mxenf
rcv_mailbox alice@mon-dane.test bob@enf-dane.test
rcv_setup
snd_setup
snd_route mon-dane.test 10.25.1.11
snd_route enf-dane.test 10.25.1.12

mxg_start "$DNSSEC_MXG_CONF
enforcement_override = mon-dane.test monitor"
new_body "$T/body" 3000
send_mail x@sender.test alice@mon-dane.test "$T/body" "monitored dane mismatch"
m1=$MSGID; q1=$(find_qid "$MSGID")
send_mail x@sender.test bob@enf-dane.test "$T/body" "enforced dane mismatch"
q2=$(find_qid "$MSGID")
wait_status "$q1" alice@mon-dane.test sent
wait_mailbox alice@mon-dane.test 1
wait_status "$q2" bob@enf-dane.test deferred

assert "mon-dane.test: monitored DANE verdict" \
	grep -qE "event=policy domain=mon-dane.test .*source=dane level=may result=ok .*enforcement=monitor would_level=dane" "$MXLOG"
assert "mon-dane.test: would-defer tlsa-invalid" \
	grep -qE "event=would-defer domain=mon-dane.test .*level=dane stage=tls reason=tlsa-invalid .*action=delivered" "$MXLOG"
f=$(msg_file_by_id alice@mon-dane.test "$m1") || fail "message $m1 not stored"
assert "mon-dane.test: delivered over TLS" [ -n "$(received_tls "$f")" ]
assert "enf-dane.test: policy failure tlsa-invalid" \
	grep -qE "event=policy-failure domain=enf-dane.test .*source=dane level=dane reason=tlsa-invalid" "$MXLOG"
assert "enf-dane.test: nothing delivered" [ "$(mailbox_count bob@enf-dane.test)" = 0 ]
assert "no envelope reached the enf-dane.test receiver (no MAIL or RCPT)" [ "$(rcv_envelopes 10.25.1.12)" = 0 ]

send_mail x@sender.test alice@mon-dane.test "$T/body" "monitored dane mismatch, again"
q3=$(find_qid "$MSGID")
wait_status "$q3" alice@mon-dane.test sent
wait_mailbox alice@mon-dane.test 2
assert "the second message has its own would-defer" \
	[ "$(count_log "$MXLOG" 'event=would-defer domain=mon-dane.test .*stage=tls reason=tlsa-invalid')" = 2 ]
assert "the failed monitored leg was never reused" \
	[ "$(count_log "$MXLOG" 'event=upstream-reused dst=10.25.1.11:25 ')" = 0 ]
assert "nor its TLS session resumed" \
	[ "$(count_log "$MXLOG" 'event=tls dst=10.25.1.11:25 .*resumed=yes')" = 0 ]
pass "monitored DANE mismatch delivered with would-defer; enforced one queued"
