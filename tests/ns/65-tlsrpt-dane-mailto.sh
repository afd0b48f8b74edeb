#!/bin/bash
# 65: SMTP TLS Reporting for a DANE domain, by mail to a real Postfix.
# dane.test is DNSSEC-signed with two MX hosts, both with TLSA 3 1 1 of
# mx.dane.test's key: mx.dane.test presents that key (good), mx2.dane.test
# another one (tlsa-invalid).  dane.test publishes
#   _smtp._tls.dane.test TXT "v=TLSRPTv1; rua=mailto:reports@rpt.test"
# and rpt.test's MX is a Postfix offering STARTTLS.  After one delivery
# (mx) and one deferral (mx2), `mxguard report send --now` mails a
# multipart/report (RFC 8460 section 5.3) that Postfix stores; its DKIM
# signature verifies with python3-dkim (strict tlsrpt mode), and the
# gzipped JSON has tlsa policies with the TLSA record as policy string,
# 1 successful session at mx.dane.test and 1 tlsa-invalid at mx2.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
. "$LIBDIR/tlsrpt.sh"
need_mxguard
ns_setup
make_cert mxok mx.dane.test
make_cert mxother mx2.dane.test
make_cert mxrpt mx.rpt.test

dnssec_zone dane.test signed
dnssec_mx dane.test mx.dane.test 10.25.1.11
dnssec_mx dane.test mx2.dane.test 10.25.1.13
dnssec_tlsa dane.test mx.dane.test 3 1 1 "$T/pki/mxok.crt"
dnssec_tlsa dane.test mx2.dane.test 3 1 1 "$T/pki/mxok.crt"
dnssec_rr dane.test '_smtp._tls.dane.test. IN TXT "v=TLSRPTv1; rua=mailto:reports@rpt.test"'
dnssec_zone rpt.test unsigned
dnssec_mx rpt.test mx.rpt.test 10.25.1.14
dnssec_start

rcv_listener 10.25.1.11 mxok
rcv_listener 10.25.1.13 mxother
rcv_listener 10.25.1.14 mxrpt
rcv_mailbox alice@dane.test bob@dane.test reports@rpt.test
rcv_setup
snd_setup
snd_route dane.test 10.25.1.11
snd_route bob@dane.test 10.25.1.13

tlsrpt_dkim_key
mxg_start "$DNSSEC_MXG_CONF
$TLSRPT_MXG_CONF"
new_body "$T/body" 2000
send_mail x@sender.test alice@dane.test "$T/body" "dane good"
q1=$(find_qid "$MSGID")
wait_status "$q1" alice@dane.test sent
wait_mailbox alice@dane.test 1
send_mail x@sender.test bob@dane.test "$T/body" "dane bad"
q2=$(find_qid "$MSGID")
wait_status "$q2" bob@dane.test deferred
assert "mx2: tlsa-invalid" grep -qE "event=policy-failure domain=dane.test .*mx=mx2.dane.test .*reason=tlsa-invalid" "$MXLOG"
wait_log "$MXLOG" "event=tlsrpt-recorded domain=dane.test type=tlsa result=success"
wait_log "$MXLOG" "event=tlsrpt-recorded domain=dane.test type=tlsa result=tlsa-invalid"

out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report send --now 2>"$T/send.log") ||
	fail "report send --now: $out $(tail -n 20 "$T/send.log")"
log "report send: $out"
assert "one report built and delivered" grep -qE "due=1 built=1 sent=1 failed=0" <<<"$out"
assert "delivered over TLS (STARTTLS offered, level may)" grep -qE "event=tlsrpt-smtp mx=mx.rpt.test tls=TLSv1" "$T/send.log"
wait_mailbox reports@rpt.test 1
f=$(mailbox_files reports@rpt.test | head -n 1)
tlsrpt_check_mail "$f" "$T/report.json"
log "report: $(cat "$T/report.json")"
tlsa=$(_tlsa_data 3 1 1 "$T/pki/mxok.crt" | tr a-f A-F)
python3 - "$T/report.json" "$tlsa" <<'PY' || fail "report content does not match"
import json, sys
r = json.load(open(sys.argv[1]))
ps = r["policies"]
assert all(p["policy"]["policy-type"] == "tlsa" for p in ps), ps
assert all(p["policy"]["policy-domain"] == "dane.test" for p in ps), ps
for p in ps:
    s = p["policy"]["policy-string"]
    assert len(s) == 1 and s[0].upper() == "3 1 1 " + sys.argv[2], (s, sys.argv[2])
by = {p["policy"]["mx-host"][0]: p for p in ps}
assert set(by) == {"mx.dane.test", "mx2.dane.test"}, by.keys()
ok, bad = by["mx.dane.test"], by["mx2.dane.test"]
assert ok["summary"] == {"total-successful-session-count": 1,
    "total-failure-session-count": 0}, ok
assert bad["summary"] == {"total-successful-session-count": 0,
    "total-failure-session-count": 1}, bad
fd = bad["failure-details"]
assert len(fd) == 1 and fd[0]["result-type"] == "tlsa-invalid", fd
assert fd[0]["receiving-mx-hostname"] == "mx2.dane.test", fd
assert fd[0]["receiving-ip"] == "10.25.1.13", fd
PY
assert "the report's delivery is no session of the daemon" [ "$(mx_count "dst=10.25.1.14")" = 0 ]
pass "TLSRPT for DANE by mail: Postfix stored a DKIM-signed multipart/report with matching counts"
