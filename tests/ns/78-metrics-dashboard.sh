#!/bin/bash
# 78: the metrics endpoint after real traffic, and the Grafana dashboard
# (docs/grafana/mxguard-dashboard.json) against it.  The mixed world
# (tests/lib/mixed.sh): DANE, MTA-STS, TLS 1.2, cleartext, three policy
# deferrals, a message the receiver rejects after DATA, a bypassed flow;
# mxguard with NFQUEUE steering and metrics_listen; a real Prometheus
# (Debian's) in the sender namespace scraping it every second.
#   - the endpoint answers HTTP 200, Content-Type text/plain version 0.0.4;
#   - `promtool check metrics` finds no lint problem in the scrape;
#   - tests/lib/promcheck.py parses it strictly (grammar, families,
#     histogram invariants) and the values match the traffic;
#   - every metric name in the dashboard's expressions is in the scrape,
#     `promtool check rules` parses every expression, and every expression
#     returns data from the Prometheus that scraped mxguard;
#   - the example alerts (docs/grafana/mxguard-alerts.yml) pass promtool
#     check rules and name only exported metrics;
#   - the checks bite: a dashboard naming a missing metric, an expression
#     with a syntax error, a scrape with non-cumulative buckets, a repeated
#     TYPE or a counter without _total are all rejected.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dnssec.sh"
. "$LIBDIR/sts.sh"
. "$LIBDIR/nfq.sh"
. "$LIBDIR/mixed.sh"
need_mxguard
command -v promtool >/dev/null || fail "promtool missing (Debian package prometheus, scripts/deps.sh)"
command -v prometheus >/dev/null || fail "prometheus missing (scripts/deps.sh)"
DASH=$(cd "$(dirname "$0")/../.." && pwd)/docs/grafana/mxguard-dashboard.json
ALERTS=${DASH%/*}/mxguard-alerts.yml
PC="python3 $LIBDIR/promcheck.py"
[ -f "$DASH" ] && [ -f "$ALERTS" ] || fail "no dashboard or alerts in ${DASH%/*}"
ns_setup
mixed_world
mixed_mxguard
mixed_prometheus 1s

for d in $MIXED_DOMAINS; do
	mixed_send "$d"
	eval "q_${d%.test}=\$(find_qid \"\$MSGID\")"
done
mixed_send tls12.test reject-me
q_reject=$(find_qid "$MSGID")
for d in dane sts tls12 plain direct; do
	eval "wait_status \"\$q_$d\" a@$d.test sent"
done
for d in enc strip stsbad; do
	eval "wait_status \"\$q_$d\" a@$d.test deferred"
done
wait_status "$q_reject" a@tls12.test bounced
wait_mailbox a@dane.test 1

# --- the scrape
in_snd curl -sS -D "$T/headers" -o "$T/scrape" "http://127.0.0.1:$MIXED_METRICS_PORT/metrics" ||
	fail "curl metrics_listen"
assert "metrics: HTTP 200" grep -qE '^HTTP/1\.[01] 200 ' "$T/headers"
assert "metrics: Content-Type text/plain; version=0.0.4" \
	grep -qiE '^Content-Type: text/plain; version=0\.0\.4' "$T/headers"
promtool check metrics <"$T/scrape" >"$T/promtool-metrics.log" 2>&1 ||
	fail "promtool check metrics: $(cat "$T/promtool-metrics.log")"
assert "promtool check metrics: no lint problem" [ ! -s "$T/promtool-metrics.log" ]
log "promtool check metrics: ok ($(wc -l <"$T/scrape") lines)"
$PC parse "$T/scrape" --json "$T/scrape.json" >&2 || fail "strict parse of the scrape"

# the values tell the traffic's story
python3 - "$T/scrape.json" >"$T/values.log" 2>&1 <<'EOF' || fail "metric values: $(cat "$T/values.log")"
import json, sys
f = json.load(open(sys.argv[1]))
def v(fam, **labels):
    return sum(s[2] for s in f[fam]["samples"]
               if s[0] == fam and all(s[1].get(k) == x for k, x in labels.items()))
def hist_count(fam):
    return [s[2] for s in f[fam]["samples"] if s[0] == fam + "_count"][0]
# 9 messages, 8 through mxguard (direct.test is bypassed); the sender may
# carry the two to tls12.test over one connection: 7 sessions at least
checks = [
    ("4 messages accepted upstream", v("mxguard_messages_total", result="accepted") == 4),
    ("1 message not accepted (550 after DATA)", v("mxguard_messages_total", result="not-accepted") == 1),
    ("3 recipients deferred by policy", v("mxguard_policy_deferrals_total") == 3),
    ("deferral starttls-not-supported", v("mxguard_policy_failures_total", reason="starttls-not-supported") >= 1),
    ("deferral dane-required", v("mxguard_policy_failures_total", reason="dane-required") >= 1),
    ("deferral certificate-host-mismatch", v("mxguard_policy_failures_total", reason="certificate-host-mismatch") >= 1),
    ("TLSv1.3 proving dane", v("mxguard_upstream_tls_total", protocol="TLSv1.3", level="dane") >= 1),
    ("TLSv1.3 proving verify (MTA-STS)", v("mxguard_upstream_tls_total", protocol="TLSv1.3", level="verify") >= 1),
    ("TLSv1.2 upstream", v("mxguard_upstream_tls_total", protocol="TLSv1.2") >= 1),
    ("a cleartext upstream", v("mxguard_upstream_total", tls="no") >= 1),
    ("decision by dane", v("mxguard_policy_decisions_total", source="dane") >= 1),
    ("decision by mta-sts", v("mxguard_policy_decisions_total", source="mta-sts") >= 1),
    ("NFQUEUE bypass for bypass_dst", v("mxguard_nfq_bypass_total", reason="bypass_dst") >= 1),
    ("NFQUEUE intercepts", v("mxguard_nfq_verdicts_total", verdict="intercept") >= 7),
    ("MTA-STS fetched", v("mxguard_sts_fetches_total", result="ok") >= 2),
    ("the resolver validates", v("mxguard_dns_validating") == 1),
    ("build info is 1", v("mxguard_build_info") == 1),
    ("sessions observed", hist_count("mxguard_session_seconds") >= 7),
    ("policy decisions observed", hist_count("mxguard_policy_decision_seconds") >= 7),
    ("handshakes observed", hist_count("mxguard_tls_handshake_seconds") >= 3),
    ("no session open", v("mxguard_sessions_active") == 0),
    ("TLSRPT successes recorded", v("mxguard_tlsrpt_attempts_total", result="success") >= 2),
    ("TLSRPT failures recorded", v("mxguard_tlsrpt_attempts_total", result="failure") >= 2),
]
bad = [c for c, ok in checks if not ok]
for c, ok in checks:
    print(("ok: " if ok else "WRONG: ") + c)
sys.exit(1 if bad else 0)
EOF
sed 's/^/  /' "$T/values.log" >&2

# --- the dashboard against the scrape and against Prometheus
$PC names "$DASH" "$T/scrape" >&2 || fail "the dashboard uses metrics the scrape lacks"
$PC rules "$DASH" "$T/dash-rules.yml" || fail "promcheck rules"
promtool check rules "$T/dash-rules.yml" >"$T/check-rules.log" 2>&1 ||
	fail "promtool check rules on the dashboard's expressions: $(cat "$T/check-rules.log")"
log "promtool check rules: $(grep -o 'SUCCESS.*' "$T/check-rules.log")"
# the example alerts of docs/monitoring.md, likewise
$PC names "$ALERTS" "$T/scrape" >&2 || fail "the example alerts use metrics the scrape lacks"
promtool check rules "$ALERTS" >"$T/check-alerts.log" 2>&1 ||
	fail "promtool check rules $ALERTS: $(cat "$T/check-alerts.log")"
log "promtool check rules (alerts): $(grep -o 'SUCCESS.*' "$T/check-alerts.log")"

# Prometheus has scraped mxguard at least twice since the traffic ended
# (every series has the two samples rate() needs) and holds its counts
t0=$(date +%s)
wait_for 30 "two Prometheus scrapes after the traffic" \
	_prom_has "timestamp(up{job=\"mxguard\"} == 1) > $t0 + 3"
assert "Prometheus read the same message count" \
	_prom_has 'mxguard_messages_total{result="accepted"} == 4'
n=0
# (a promcheck that failed left no expression, and the loop below checked none)
$PC exprs "$DASH" >"$T/exprs" || fail "promcheck exprs $DASH"
while IFS= read -r e; do
	out=$(in_snd promtool query instant "$PROM_URL" "$e" 2>&1 </dev/null) ||
		fail "promtool query instant '$e': $out"
	[ -n "$out" ] || fail "no data from Prometheus for the dashboard expression: $e"
	n=$((n + 1))
done <"$T/exprs"
assert "the dashboard has expressions to query ($n)" [ "$n" -gt 0 ]
log "every dashboard expression returns data from Prometheus ($n expressions)"

# --- the checks bite
rejects() { ! "$@" >/dev/null 2>&1; }
python3 - "$DASH" "$T/rotted.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["panels"][-1]["targets"].append({"expr": 'sum(rate(mxguard_no_such_metric_total{instance=~"$instance"}[5m]))', "refId": "Z"})
json.dump(d, open(sys.argv[2], "w"))
EOF
assert "a dashboard naming a metric mxguard does not export is rejected" \
	rejects $PC names "$T/rotted.json" "$T/scrape"
printf 'groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: "sum(rate(mxguard_sessions_total[1m])"\n' >"$T/bad-rules.yml"
assert "promtool check rules rejects an unbalanced expression" \
	rejects promtool check rules "$T/bad-rules.yml"
awk '/^mxguard_session_seconds_bucket\{le="0.001"\}/ {sub(/ [0-9]+$/, " 999999")} {print}' \
	"$T/scrape" >"$T/scrape-noncum"
assert "the parser rejects non-cumulative buckets" rejects $PC parse "$T/scrape-noncum"
awk '{print} /^# TYPE mxguard_sessions_total / {print}' "$T/scrape" >"$T/scrape-2type"
assert "the parser rejects a second TYPE line" rejects $PC parse "$T/scrape-2type"
sed 's/^mxguard_sessions_total /mxguard_sessions_total{a="b} /' "$T/scrape" >"$T/scrape-quote"
assert "the parser rejects an unterminated label value" rejects $PC parse "$T/scrape-quote"
sed 's/mxguard_sessions_total/mxguard_sessions/' "$T/scrape" >"$T/scrape-lint"
assert "promtool check metrics rejects a counter without _total" \
	rejects bash -c "promtool check metrics <'$T/scrape-lint'"
pass "metrics: promtool-clean, strictly parsed, values match; the dashboard's $n expressions use exported metrics and return data"
