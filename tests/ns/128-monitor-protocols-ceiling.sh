#!/bin/bash
# 128: enforcement = monitor, and a tls_policy line whose protocols= range
# has a ceiling (<=TLSv1.2) for a receiver that speaks TLS 1.3 only (a real
# Postfix, smtpd_tls_protocols = >=TLSv1.3).  The monitored leg is set up
# for the check enforce mode would make, ceiling included, so its first
# handshake fails; mxguard then tries TLS again on a new connection without
# the ceiling (event=tls-fallback action=tls-retry-uncapped) and judges the
# version after the handshake: the message is delivered over TLS 1.3, with
# the would-defer enforce mode would give.  Before, may's cleartext retry
# sent it in the clear, where the MTA without mxguard gets TLS 1.3.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert mx1 mx.ceil.test selfsigned
dnssec_zone ceil.test unsigned
dnssec_mx ceil.test mx.ceil.test 10.25.1.21
dnssec_start
rcv_listener 10.25.1.21 mx1 -o smtpd_tls_protocols=\>=TLSv1.3 \
	-o smtpd_tls_mandatory_protocols=\>=TLSv1.3
rcv_mailbox a@ceil.test
rcv_setup
snd_setup
snd_route ceil.test 10.25.1.21
mxg_start "$DNSSEC_MXG_CONF
enforcement = monitor
tls_policy = ceil.test encrypt protocols=<=TLSv1.2
upstream_reuse = no"

new_body "$T/body" 2000
send_mail x@sender.test a@ceil.test "$T/body" "monitored ceiling"
qid=$(find_qid "$MSGID")
wait_status "$qid" a@ceil.test sent
wait_mailbox a@ceil.test 1
f=$(mailbox_files a@ceil.test | head -n1)
assert "delivered over TLS 1.3, not in the clear" bash -c "[[ '$(received_tls "$f")' == TLSv1.3* ]]"
assert "the capped handshake failed and was tried again without the ceiling" \
	grep -qE "event=tls-fallback .*domain=ceil.test .*action=tls-retry-uncapped" "$MXLOG"
assert "no cleartext retry" [ "$(count_log "$MXLOG" 'action=cleartext-retry')" = 0 ]
assert "the would-defer names the version outside the range" \
	grep -qE "event=would-defer domain=ceil.test .*stage=tls reason=validation-failure detail=\"TLSv1.3 is outside the protocols= of the policy\" action=delivered" "$MXLOG"
assert "exactly one message stored" [ "$(mailbox_count a@ceil.test)" = 1 ]
pass "a monitored protocols= ceiling never sends the mail in the clear"
