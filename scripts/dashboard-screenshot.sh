#!/bin/bash
# dashboard-screenshot.sh - the screenshot of docs/grafana/mxguard-dashboard.json
# in docs/monitoring.md (docs/img/dashboard.png), on real traffic.  Not part
# of `make check` (it runs for minutes); needs root, the test peers of
# scripts/deps.sh (prometheus among them) and chromium.
#
#   scripts/dashboard-screenshot.sh              # DURATION s of traffic, then the PNG
#   DURATION=120 OUT=/tmp/d.png scripts/dashboard-screenshot.sh
#   scripts/dashboard-screenshot.sh --render TSDB FROM TO
#       draw again from a TSDB kept by an earlier run (MXG_KEEP=1 keeps
#       $T; the TSDB is $T/prom/data; FROM and TO are Unix seconds, printed
#       by the run)
#
# What it does: the namespaces and peers of tests/lib/mixed.sh (DANE,
# MTA-STS, TLS 1.2, cleartext, STARTTLS stripped, a wrong certificate, an
# encrypt override on a server without STARTTLS, a 550 after DATA, an
# NFQUEUE bypass), mxguard built from this tree with NFQUEUE steering and
# metrics_listen, and Debian's Prometheus scraping it every 2 s (TSDB in
# the temp dir).  For DURATION seconds a paced generator submits mail to
# the sending Postfix, at a rate that swells and ebbs, to a weighted mix of
# those domains.  Then docs/grafana/render/ (serve.py + render.js: the
# dashboard JSON laid out as Grafana does, every expression evaluated by
# that Prometheus) is opened in headless Chromium: once with --dump-dom to
# read the renderer's report (no panel may be empty or in error), once for
# the PNG.  Grafana itself is not in Debian 12, hence the renderer.
#
# Environment: DURATION (600), OUT (docs/img/dashboard.png), WIDTH (1600),
# RENDER_INTERVAL (15, below),
# MXGUARD (build/mxguard), MXG_KEEP=1 (keep the temp dir: logs, TSDB).

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-600}
OUT=${OUT:-$ROOT/docs/img/dashboard.png}
WIDTH=${WIDTH:-1600}
SCRAPE=2
# the data source's "Scrape interval" as Grafana knows it: the least step
# of a query and the base of $__rate_interval (4 x it at least).  15 s is
# Grafana's default when the data source does not set it; with 2 s the
# rates of a few messages a second are 8 s windows and mostly noise.
RENDER_INTERVAL=${RENDER_INTERVAL:-15}
export MXGUARD=${MXGUARD:-$ROOT/build/mxguard}
MXG_LOG_LEVEL=${MXG_LOG_LEVEL:-info}
. "$ROOT/tests/lib/ns.sh"
. "$LIBDIR/dnssec.sh"
. "$LIBDIR/sts.sh"
. "$LIBDIR/nfq.sh"
. "$LIBDIR/mixed.sh"

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "chromium is needed: apt-get install chromium" >&2; exit 1; }
command -v prometheus >/dev/null || { echo "prometheus is needed: scripts/deps.sh" >&2; exit 1; }

# render FROM TO: the renderer in $SND against $PROM_URL, report checked, PNG.
render() {
	local from=$1 to=$2 h url rep
	h=$(python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
print(max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in d["panels"]) * 38 + 110)' \
		"$ROOT/docs/grafana/mxguard-dashboard.json")
	bg "$SND" "$T/serve.log" python3 "$ROOT/docs/grafana/render/serve.py" \
		--listen 127.0.0.1:3000 --prometheus "$PROM_URL"
	wait_port "$SND" 127.0.0.1 3000
	url="http://127.0.0.1:3000/?from=$from&to=$to&scrape=$RENDER_INTERVAL"
	mkdir -p "$T/chrome"
	local chrome=(env HOME="$T/chrome" "$CHROMIUM" --headless=new --no-sandbox
		--disable-gpu --hide-scrollbars --user-data-dir="$T/chrome/profile"
		--no-first-run --window-size="$WIDTH,$h" --virtual-time-budget=30000)
	in_snd "${chrome[@]}" --dump-dom "$url" >"$T/dom.html" 2>"$T/chrome-dom.log" ||
		fail "chromium --dump-dom: $(tail -n 5 "$T/chrome-dom.log")"
	rep=$(python3 -c 'import html,re,sys
t = open(sys.argv[1]).read()
if not re.search(r"<body[^>]*data-done=\"1\"", t): sys.exit("the renderer did not finish")
m = re.search(r"data-report=\"([^\"]*)\"", t)
print(html.unescape(m.group(1)))' "$T/dom.html") || fail "renderer: $rep"
	log "renderer report: $rep"
	python3 -c 'import json,sys
r = json.loads(sys.argv[1])
sys.exit(1 if r["errors"] or r["empty"] or r["series"] == 0 else 0)' "$rep" ||
		fail "the renderer found empty or failing panels: $rep"
	in_snd "${chrome[@]}" --screenshot="$T/dashboard.png" "$url" >"$T/chrome-shot.log" 2>&1 ||
		fail "chromium --screenshot: $(tail -n 5 "$T/chrome-shot.log")"
	[ -s "$T/dashboard.png" ] || fail "no screenshot written"
	mkdir -p "$(dirname "$OUT")"
	cp "$T/dashboard.png" "$OUT"
	log "wrote $OUT ($(stat -c %s "$OUT") bytes, ${WIDTH}x$h)"
}

if [ "${1:-}" = --render ]; then
	[ $# = 4 ] || { echo "usage: $0 --render TSDB FROM TO" >&2; exit 2; }
	ns_setup
	mkdir -p "$T/prom"
	cp -a "$2" "$T/prom/data"
	bg "$SND" "$T/prom/prometheus.log" prometheus --config.file=/dev/null \
		--storage.tsdb.path="$T/prom/data" --storage.tsdb.retention.time=10y \
		--web.listen-address=127.0.0.1:9090
	wait_port "$SND" 127.0.0.1 9090 30
	wait_for 30 "Prometheus ready" in_snd curl -sf "$PROM_URL/-/ready"
	render "$3" "$4"
	exit 0
fi

[ -x "$MXGUARD" ] || (cd "$ROOT" && make -j2 >/dev/null) || fail "build mxguard"
ns_setup
mixed_world
# the sender retries deferred mail every minute or so (ns.sh's default of
# 5 minutes would bring every deferred message back in one wave).  Edited
# in place: a key repeated in main.cf makes every Postfix program warn, and
# postlogd, logging its own warnings through its own full socket during a
# reload, can deadlock.
snd_postconf "queue_run_delay = 60s" "minimal_backoff_time = 60s" \
	"maximal_backoff_time = 180s"
mixed_mxguard
mixed_prometheus "${SCRAPE}s"

# The load: pace P seconds between messages, P swelling and ebbing over
# the run (a sine of period DURATION/2), domains drawn with these weights.
python3 - "$DURATION" >"$T/plan" <<'EOF'
import math, random, sys
dur = float(sys.argv[1])
random.seed(13)
mix = [("dane.test", 30), ("sts.test", 18), ("tls12.test", 14), ("plain.test", 9),
       ("direct.test", 6), ("enc.test", 5), ("strip.test", 4), ("stsbad.test", 4),
       ("tls12.test reject-me", 3)]
doms = [d for d, w in mix for _ in range(w)]
t = 0.0
while t < dur:
    pace = 0.9 - 0.6 * math.sin(2 * math.pi * t / (dur / 2)) ** 2
    if dur * 0.55 < t < dur * 0.6:
        pace = 0.12        # a burst
    print("%.2f %s" % (t, random.choice(doms)))
    t += pace * random.uniform(0.6, 1.4)
EOF
log "load: $(wc -l <"$T/plan") messages over ${DURATION}s"
from=$(date +%s)
start=$(date +%s.%N)
while read -r at dom subj; do
	# pacing the generator, not waiting for a condition
	now=$(date +%s.%N)
	d=$(awk -v a="$at" -v s="$start" -v n="$now" 'BEGIN { x = s + a - n; print (x > 0 ? x : 0) }')
	sleep "$d"
	mixed_send "$dom" "${subj:-load to $dom}"
done <"$T/plan"
log "load done: $(count_log "$MXLOG" 'event=message ') messages relayed, $(queue_count) still queued"
# let Prometheus see the tail, then draw the whole run
wait_for 60 "sessions drained" _prom_has 'sum(mxguard_sessions_active) == 0'
to=$(( $(date +%s) + 2 * SCRAPE ))
wait_for 30 "the last scrapes" _prom_has "timestamp(up{job=\"mxguard\"}) > $to"
log "range: from=$from to=$to (for --render)"
render "$from" "$to"
[ "${MXG_KEEP:-0}" = 1 ] && log "TSDB kept in $T/prom/data"
exit 0
