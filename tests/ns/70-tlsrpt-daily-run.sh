#!/bin/bash
# 70: the daemon's own daily TLSRPT run (RFC 8460 section 5: once a day,
# after a random delay).  The state directory holds yesterday's counts for
# enf.test (written by tests/lib/tlsrpt_seed.c: one successful session and
# one certificate-not-trusted failure), and enf.test publishes
#   _smtp._tls.enf.test TXT "v=TLSRPTv1; rua=https://tlsrpt.enf.test/v1/report"
# mxguard runs with tlsrpt_enable and tlsrpt_max_delay = 2s; with no
# command given, the https receiver gets yesterday's report, with
# yesterday's date range and those counts, and the day is marked sent.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup

RPT_IP=10.25.1.81
tlsrpt_seed_build

tlsrpt_enf_world "$RPT_IP"
make_ca
make_cert rpt tlsrpt.enf.test
mkdir -p "$T/rpt" "$T/mxstate"
bg "$RCV" "$T/rpt.out" python3 "$LIBDIR/tlsrpt_https.py" --listen "$RPT_IP" \
	--port 443 --cert "$T/pki/rpt.crt" --key "$T/pki/rpt.key" --dir "$T/rpt"
wait_port "$RCV" "$RPT_IP" 443

"$T/tlsrpt_seed" "$T/mxstate" enf.test 1 mx1.enf.test 10.25.1.10 ||
	fail "seeding yesterday's counts failed"
YDAY=$(date -u -d yesterday +%Y-%m-%d)

MXG_EXTRA_CONF="tlsrpt_enable = yes
tlsrpt_private_destinations = yes
tlsrpt_max_delay = 2s
tlsrpt_org_name = mxguard test
tlsrpt_from = tlsrpt-noreply@sender.test
tlsrpt_contact = postmaster@sender.test"
sts_mxguard_start
wait_log "$MXLOG" "event=tlsrpt-scheduled in_s=[0-2]"
wait_for 30 "the receiver got the daily report" test -f "$T/rpt/1.meta"
assert "Content-Type application/tlsrpt+gzip" grep -qiE "^Content-Type: application/tlsrpt\\+gzip$" "$T/rpt/1.meta"
gzip -dc <"$T/rpt/1.body" >"$T/report.json" || fail "body does not gunzip"
python3 "$LIBDIR/tlsrpt_validate.py" post "$T/rpt/1.meta" "$T/rpt/1.body" \
	--domain enf.test 2>"$T/validate.out" ||
	fail "the report breaks RFC 8460: $(cat "$T/validate.out")"
log "report: $(cat "$T/report.json")"
python3 - "$T/report.json" "$YDAY" <<'PY' || fail "the daily report is not yesterday's counts"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["date-range"]["start-datetime"] == sys.argv[2] + "T00:00:00Z", r
p = r["policies"]
assert len(p) == 1 and p[0]["policy"]["policy-domain"] == "enf.test", p
assert p[0]["summary"] == {"total-successful-session-count": 1,
    "total-failure-session-count": 1}, p
fd = p[0]["failure-details"]
assert fd[0]["result-type"] == "certificate-not-trusted", fd
PY
wait_log "$MXLOG" "event=tlsrpt-delivery domain=enf.test .*result=sent"
wait_log "$MXLOG" "event=tlsrpt-scheduled in_s=[0-9]{4,}"
show=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report show enf.test --json 2>/dev/null)
log "report show: $show"
out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report send 2>/dev/null)
assert "nothing is due any more: the daily run marked the day sent" grep -qE "due=0 " <<<"$out"
assert "the receiver got exactly one report" [ ! -e "$T/rpt/2.meta" ]
pass "TLSRPT: the daemon sent yesterday's report by itself after its random delay, and rescheduled for the next UTC day"
