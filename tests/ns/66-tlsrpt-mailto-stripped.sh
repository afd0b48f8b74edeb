#!/bin/bash
# 66: a TLSRPT report by mail whose rua MX strips STARTTLS is still
# delivered, and never becomes a report itself.  enf.test (enforce
# MTA-STS) publishes rua=mailto:reports@rpt.test; rpt.test's MX,
# mx.rpt.test, is a STARTTLS-stripping man in the middle (badsmtp mitm) in
# front of a real Postfix that offers STARTTLS.  rpt.test publishes a
# TLSRPT record too, so a report connection that went through the daemon
# would be counted under rpt.test.  The daemon runs with its divert rules
# installed; `mxguard report send --now` delivers in cleartext (RFC 8460:
# report delivery must not fail on TLS), with the upstream mark, so the
# divert rules let it pass: the daemon sees no session to mx.rpt.test and
# records nothing for rpt.test.  The stored message is a multipart/report
# whose DKIM signature verifies with python3-dkim.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
. "$LIBDIR/tlsrpt.sh"
need_mxguard
ns_setup

make_cert mx1 mx1.enf.test
make_cert mxrpt mx.rpt.test
rcv_listener 10.25.1.10 mx1
rcv_listener 10.25.1.112 mxrpt
rcv_mailbox alice@enf.test reports@rpt.test loop@rpt.test
rcv_setup
bad_start 10.25.1.12 --mode mitm --upstream 10.25.1.112:25
snd_setup
snd_route enf.test 10.25.1.10
dns_records <<Z
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
_mta-sts.enf IN TXT "v=STSv1; id=66"
mta-sts.enf IN A 10.25.1.80
_smtp._tls.enf IN TXT "v=TLSRPTv1; rua=mailto:reports@rpt.test"
rpt IN MX 10 mx.rpt
mx.rpt IN A 10.25.1.12
_smtp._tls.rpt IN TXT "v=TLSRPTv1; rua=mailto:loop@rpt.test"
Z
dns_start
sts_site enf.test
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
tlsrpt_dkim_key
MXG_EXTRA_CONF=$TLSRPT_MXG_CONF
sts_mxguard_start

sts_send alice@enf.test "tlsrpt mailto"
sts_assert_delivered "$QID" alice@enf.test
wait_log "$MXLOG" "event=tlsrpt-recorded domain=enf.test type=sts result=success"

out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report send --now 2>"$T/send.log") ||
	fail "report send --now: $out $(tail -n 20 "$T/send.log")"
log "report send: $out"
assert "one report built and delivered by mail" grep -qE "due=1 built=1 sent=1 failed=0" <<<"$out"
wait_mailbox reports@rpt.test 1
assert "the middlebox stripped STARTTLS" grep -q "stripped STARTTLS" "$BADLOG"
assert "the report went in cleartext through the middlebox" grep -qE "recv clear MAIL FROM:<tlsrpt-noreply@sender.test>" "$BADLOG"
assert "mxguard's report client saw no TLS offered" grep -qE "event=tlsrpt-smtp mx=mx.rpt.test tls=no" "$T/send.log"
assert "the delivery was logged" grep -qE "event=tlsrpt-delivery domain=enf.test .*uri=\"?mailto:reports@rpt.test\"? try=1 result=sent" "$T/send.log"
f=$(mailbox_files reports@rpt.test | head -n 1)
tlsrpt_check_mail "$f" "$T/report.json"
log "report: $(cat "$T/report.json")"
python3 - "$T/report.json" <<'PY' || fail "report content"
import json, sys
r = json.load(open(sys.argv[1]))
p = r["policies"][0]
assert p["policy"]["policy-domain"] == "enf.test", p
assert p["summary"]["total-successful-session-count"] == 1, p
assert p["summary"]["total-failure-session-count"] == 0, p
PY
# no loop: the report's own delivery is no session of the daemon
assert "the daemon saw no session to the rua MX" [ "$(mx_count "dst=10.25.1.12")" = 0 ]
assert "the daemon recorded nothing for rpt.test" [ "$(mx_count "event=tlsrpt-(recorded|discover) domain=rpt.test")" = 0 ]
show=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report show rpt.test --json 2>/dev/null)
assert "report show has no counts for rpt.test" grep -qE '"domains": \[\]\}, \{.*"domains": \[\]\}' <<<"$show"
assert "no report about the report went to rpt.test's rua" [ "$(mailbox_count loop@rpt.test)" = 0 ]
pass "TLSRPT by mail through a STARTTLS-stripping MX: delivered in cleartext, DKIM verifies, nothing recorded about it"
