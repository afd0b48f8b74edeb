#!/bin/bash
# 64: SMTP TLS Reporting (RFC 8460) to an https rua.  enf.test has an
# enforce MTA-STS policy and publishes
#   _smtp._tls.enf.test TXT "v=TLSRPTv1; rua=https://tlsrpt.enf.test/v1/report"
# served by a small HTTPS receiver (tests/lib/tlsrpt_https.py) under the
# test CA.  One message is delivered over verified TLS; then mx1's address
# changes in DNS, so the next session's destination is no MX of enf.test
# any more and the message is deferred (validation-failure).  The daemon
# counted both sessions; `mxguard report show` says so, and
# `mxguard report send --now` POSTs a gzip JSON report (Content-Type
# application/tlsrpt+gzip) whose sts policy has 1 successful and 1 failed
# session, the failure a validation-failure.  That report of today is a
# preview: today is not marked sent, and a plain `report send` (days
# before today) finds nothing due.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup

RPT_IP=10.25.1.81
enf_receiver
zone() {	# mx1's address
	dns_records <<Z
enf IN MX 10 mx1.enf
mx1.enf IN A $1
_mta-sts.enf IN TXT "v=STSv1; id=64"
mta-sts.enf IN A 10.25.1.80
_smtp._tls.enf IN TXT "v=TLSRPTv1; rua=https://tlsrpt.enf.test/v1/report"
tlsrpt.enf IN A $RPT_IP
Z
}
zone 10.25.1.10
dns_start
sts_site enf.test
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
make_cert rpt tlsrpt.enf.test
rcv_addr "$RPT_IP"
mkdir -p "$T/rpt"
bg "$RCV" "$T/rpt.out" python3 "$LIBDIR/tlsrpt_https.py" --listen "$RPT_IP" \
	--port 443 --cert "$T/pki/rpt.crt" --key "$T/pki/rpt.key" --dir "$T/rpt"
wait_port "$RCV" "$RPT_IP" 443
MXG_EXTRA_CONF="tlsrpt_enable = yes
tlsrpt_private_destinations = yes
tlsrpt_org_name = mxguard test
tlsrpt_from = tlsrpt-noreply@sender.test
tlsrpt_contact = postmaster@sender.test"
sts_mxguard_start

# 1: delivered over verified TLS
sts_send alice@enf.test "tlsrpt good"
sts_assert_delivered "$QID" alice@enf.test
wait_log "$MXLOG" "event=tlsrpt-recorded domain=enf.test type=sts result=success"
assert "the domain's TLSRPT record was discovered" \
	grep -qE "event=tlsrpt-discover domain=enf.test .*record=valid" "$MXLOG"

# 2: mx1 moved: 10.25.1.10 is no MX address of enf.test any more
zone 10.25.1.99
dns_wait mx1.enf.test A "10\\.25\\.1\\.99"
sts_send alice@enf.test "tlsrpt bad"
sts_assert_deferred "$QID" alice@enf.test validation-failure 1
wait_log "$MXLOG" "event=tlsrpt-recorded domain=enf.test type=sts result=validation-failure"
fails=$(mx_count "event=policy-failure domain=enf.test")
assert "exactly one failed session so far" [ "$fails" = 1 ]

show=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report show enf.test --json 2>/dev/null) ||
	fail "report show failed"
log "report show: $show"
assert "report show counts 1 successful, 1 failed for enf.test" \
	grep -qE '"domain": "enf.test", "successful": 1, "failed": 1, "policies": 1, "detail-overflow": 0, "sent": false' <<<"$show"

out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report send --now 2>"$T/send.log") ||
	fail "report send --now: $out $(cat "$T/send.log")"
log "report send: $out"
assert "one report built and sent" grep -qE "due=1 built=1 sent=1 failed=0" <<<"$out"
wait_for 10 "the receiver stored the POST" test -f "$T/rpt/1.meta"
assert "POST to the rua path" grep -qE "^POST /v1/report HTTP/1.1$" "$T/rpt/1.meta"
assert "Content-Type application/tlsrpt+gzip" grep -qiE "^Content-Type: application/tlsrpt\\+gzip$" "$T/rpt/1.meta"
assert "Host header names the rua host" grep -qiE "^Host: tlsrpt.enf.test$" "$T/rpt/1.meta"
assert "body is gzip (magic 1f 8b)" [ "$(head -c 2 "$T/rpt/1.body" | od -An -tx1 | tr -d ' ')" = 1f8b ]
gzip -dc <"$T/rpt/1.body" >"$T/report.json" || fail "body does not gunzip"
python3 "$LIBDIR/tlsrpt_validate.py" post "$T/rpt/1.meta" "$T/rpt/1.body" \
	--domain enf.test 2>"$T/validate.out" ||
	fail "the report breaks RFC 8460: $(cat "$T/validate.out")"
log "report: $(cat "$T/report.json")"
python3 - "$T/report.json" <<'PY' || fail "report content does not match what was delivered"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["organization-name"] == "mxguard test", r
assert r["contact-info"] == "postmaster@sender.test", r
assert r["date-range"]["start-datetime"].endswith("T00:00:00Z"), r
ps = r["policies"]
assert len(ps) == 1, ps
p = ps[0]
assert p["policy"]["policy-type"] == "sts", p
assert p["policy"]["policy-domain"] == "enf.test", p
assert p["policy"]["policy-string"] == ["version: STSv1", "mode: enforce",
    "mx: mx1.enf.test", "max_age: 86400"], p
assert p["policy"]["mx-host"] == ["mx1.enf.test"], p
assert p["summary"] == {"total-successful-session-count": 1,
    "total-failure-session-count": 1}, p
fd = p["failure-details"]
assert len(fd) == 1 and fd[0]["result-type"] == "validation-failure", fd
assert fd[0]["failed-session-count"] == 1, fd
assert fd[0]["receiving-ip"] == "10.25.1.10", fd
assert fd[0]["sending-mta-ip"] == "10.25.1.1", fd
PY
cp "$T/report.json" "${TLSRPT_EXAMPLE:-/dev/null}" 2>/dev/null || true
show=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report show enf.test --json 2>/dev/null)
# --now sends today's counts so far as a preview: today is not marked
# sent, so the full day still goes out tomorrow, and a plain send (days
# before today) finds nothing due
assert "report show does not mark today sent (a preview)" grep -qE '"domain": "enf.test".*"sent": false' <<<"$show"
out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report send 2>/dev/null)
assert "a send without --now finds nothing due" grep -qE "due=0 built=0 sent=0" <<<"$out"
assert "the receiver got exactly one report" [ ! -e "$T/rpt/2.meta" ]
assert "the delivery was logged" grep -qE "event=tlsrpt-delivery domain=enf.test .*uri=\"?https://tlsrpt.enf.test/v1/report\"? try=1 result=sent" "$T/send.log"
pass "TLSRPT: gzip JSON report POSTed to the https rua, counts match (1 success, 1 validation-failure)"
