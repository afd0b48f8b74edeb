/*
 * render.js - draws a Grafana dashboard JSON (schemaVersion 38: row, stat
 * and timeseries panels, Prometheus targets, query variables) from a real
 * Prometheus's HTTP API, for docs/monitoring.md's screenshot.  Not Grafana:
 * no editing, no tooltips, one theme; the layout, titles, legends
 * (legendFormat), units, thresholds, value mappings and the variables
 * $instance, $__interval and $__rate_interval follow Grafana's rules.
 *
 * When every panel is drawn, <body> gets data-done="1" and data-report, a
 * JSON summary {panels, series, empty: [titles], errors: [...]} that
 * scripts/dashboard-screenshot.sh reads with chromium --dump-dom.
 */
"use strict";

const P = new URLSearchParams(location.search);
const NOW = Math.floor(Date.now() / 1000);
const TO = Number(P.get("to") || NOW);
const FROM = Number(P.get("from") || TO - 900);
const SCRAPE = Number(P.get("scrape") || 15);	/* Grafana's default */
const COLS = 24, ROW_H = 30, GAP = 8;
const PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42",
	"#1f78c1", "#ba43a9", "#705da0", "#508642", "#cca300", "#447ebc",
	"#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477"];
const COLORS = { green: "#73bf69", red: "#f2495c", orange: "#ff9830",
	yellow: "#fade2a", blue: "#5794f2", purple: "#b877d9" };
const report = { panels: 0, series: 0, empty: [], errors: [] };
const NS = "http://www.w3.org/2000/svg";

function el(tag, cls, text) {
	const e = document.createElement(tag);
	if (cls) e.className = cls;
	if (text !== undefined) e.textContent = text;
	return e;
}
function svg(tag, attrs, parent) {
	const e = document.createElementNS(NS, tag);
	for (const k in attrs) e.setAttribute(k, attrs[k]);
	if (parent) parent.appendChild(e);
	return e;
}
function color(c) { return COLORS[c] || c; }

/* ---- units (a subset of Grafana's value formats) */
function sig(v, n) {
	if (v === 0) return "0";
	const a = Math.abs(v);
	let d = Math.max(0, n - 1 - Math.floor(Math.log10(a)));
	return v.toFixed(Math.min(d, 6)).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}
function short(v, dec) {
	const a = Math.abs(v);
	const f = (x) => dec !== undefined ? x.toFixed(dec) : sig(x, 3);
	if (a >= 1e9) return f(v / 1e9) + " Bil";
	if (a >= 1e6) return f(v / 1e6) + " Mil";
	if (a >= 1e3) return f(v / 1e3) + " K";
	return f(v);
}
function seconds(v) {
	const a = Math.abs(v);
	if (a === 0) return "0 s";
	if (a < 1e-3) return sig(v * 1e6, 3) + " µs";
	if (a < 1) return sig(v * 1e3, 3) + " ms";
	if (a < 60) return sig(v, 3) + " s";
	if (a < 3600) return sig(v / 60, 3) + " min";
	return sig(v / 3600, 3) + " hour";
}
function dtdurations(v) {
	let s = Math.round(v);
	const parts = [];
	for (const [n, u] of [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]]) {
		const q = Math.floor(s / n);
		if (q > 0) parts.push(q + " " + u + (q > 1 ? "s" : ""));
		s -= q * n;
		if (parts.length === 2) break;
	}
	return parts.join(", ") || "0 seconds";
}
function fmt(unit, v, dec) {
	if (v === null || Number.isNaN(v)) return "NaN";
	switch (unit) {
	case "s": return seconds(v);
	case "ops": return short(v, dec) + " ops/s";
	case "percentunit": return sig(v * 100, 3) + "%";
	case "dtdurations": return dtdurations(v);
	default: return short(v, dec);
	}
}

/* ---- variables and queries */
const vars = {};
function interp(expr, step) {
	const rate = Math.max(step + SCRAPE, 4 * SCRAPE);
	return expr.replace(/\$\{?(\w+)\}?/g, (m, name) => {
		if (name === "__interval") return step + "s";
		if (name === "__rate_interval") return rate + "s";
		if (name === "__range") return (TO - FROM) + "s";
		if (name in vars) return vars[name];
		return m;
	});
}
async function api(path, params) {
	const r = await fetch("/api/v1/" + path + "?" + new URLSearchParams(params));
	const j = await r.json();
	if (j.status !== "success") throw new Error(j.error || ("HTTP " + r.status));
	return j.data;
}
function legend(fmtstr, metric) {
	if (fmtstr) return fmtstr.replace(/\{\{\s*(\w+)\s*\}\}/g, (m, l) => metric[l] || "");
	const ls = Object.entries(metric).filter(([k]) => k !== "__name__")
		.map(([k, v]) => k + '="' + v + '"');
	return (metric.__name__ || "") + "{" + ls.join(", ") + "}";
}
async function rangeQuery(targets, step) {
	const out = [];
	for (const t of targets) {
		const d = await api("query_range", { query: interp(t.expr, step),
			start: FROM, end: TO, step: step });
		for (const s of d.result)
			out.push({ name: legend(t.legendFormat, s.metric),
				points: s.values.map(([ts, v]) => [ts, v === "NaN" ? null : Number(v)]) });
	}
	return out;
}

async function setupVars(dash) {
	const bar = document.getElementById("vars");
	for (const v of (dash.templating && dash.templating.list) || []) {
		if (v.type !== "query") continue;
		const q = typeof v.query === "string" ? v.query : v.query.query;
		const m = /^label_values\((.*),\s*(\w+)\)$/.exec(q);
		let values = [];
		if (m) values = await api("label/" + m[2] + "/values",
			{ "match[]": m[1], start: FROM, end: TO });
		const want = P.get(v.name);
		vars[v.name] = want || (v.includeAll ? (v.allValue ||
			"(" + values.map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|") + ")")
			: values[0] || "");
		bar.appendChild(el("span", "label", v.label || v.name));
		bar.appendChild(el("span", "value", want || (v.includeAll ? "All" : values[0])));
	}
}

/* ---- layout */
function place(node, g, colW) {
	node.style.left = (g.x * colW) + "px";
	node.style.top = (g.y * (ROW_H + GAP)) + "px";
	node.style.width = (g.w * colW - GAP) + "px";
	node.style.height = (g.h * ROW_H + (g.h - 1) * GAP) + "px";
}
function panelBox(grid, p, colW) {
	const box = el("div", "panel");
	place(box, p.gridPos, colW);
	const head = el("div", "head", p.title);
	box.appendChild(head);
	const body = el("div", "body");
	box.appendChild(body);
	grid.appendChild(box);
	return { box, body };
}

/* ---- time series */
function niceStep(range, n) {
	const raw = range / Math.max(1, n);
	const mag = Math.pow(10, Math.floor(Math.log10(raw)));
	for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag;
	return 10 * mag;
}
function timeStep(range, n) {
	const steps = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
	for (const s of steps) if (range / s <= n) return s;
	return 86400;
}
function hhmm(ts, secs) {
	const d = new Date(ts * 1000);
	const p = (x) => String(x).padStart(2, "0");
	return p(d.getUTCHours()) + ":" + p(d.getUTCMinutes()) + (secs ? ":" + p(d.getUTCSeconds()) : "");
}
function drawSeries(p, body, series, box) {
	const defaults = (p.fieldConfig && p.fieldConfig.defaults) || {};
	const unit = defaults.unit || "short";
	const custom = defaults.custom || {};
	const lg = el("div", "legend");
	series.forEach((s, i) => {
		const it = el("div", "item");
		const sw = el("span", "sw");
		sw.style.background = PALETTE[i % PALETTE.length];
		it.appendChild(sw);
		it.appendChild(el("span", "", s.name));
		lg.appendChild(it);
	});
	box.appendChild(lg);
	const W = body.clientWidth, H = body.clientHeight;
	let max = -Infinity, min = defaults.min !== undefined ? defaults.min : Infinity;
	for (const s of series) for (const [, v] of s.points) if (v !== null) {
		max = Math.max(max, v); min = Math.min(min, v);
	}
	if (!isFinite(max)) { max = 1; min = 0; }
	if (max <= min) max = min + (unit === "s" ? 0.001 : 1);
	const ystep = niceStep(max - min, Math.max(2, Math.floor(H / 45)));
	max = Math.ceil(max / ystep - 1e-9) * ystep;
	const ticks = [];
	for (let v = min; v <= max + ystep / 2; v += ystep) ticks.push(v);
	const labelW = Math.max(...ticks.map((v) => fmt(unit, v).length)) * 6.2 + 10;
	const L = labelW, R = 8, T = 6, B = 20;
	const pw = W - L - R, ph = H - T - B;
	const X = (ts) => L + (ts - FROM) / (TO - FROM) * pw;
	const Y = (v) => T + ph - (v - min) / (max - min) * ph;
	const root = svg("svg", { width: W, height: H, style: "position:absolute;left:0;top:0" }, body);
	for (const v of ticks) {
		svg("line", { x1: L, x2: L + pw, y1: Y(v), y2: Y(v), stroke: "#2a2d33" }, root);
		const t = svg("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, root);
		t.textContent = fmt(unit, v);
	}
	const tstep = timeStep(TO - FROM, Math.max(2, Math.floor(pw / 65)));
	for (let ts = Math.ceil(FROM / tstep) * tstep; ts <= TO; ts += tstep) {
		svg("line", { x1: X(ts), x2: X(ts), y1: T, y2: T + ph, stroke: "#2a2d33" }, root);
		const t = svg("text", { x: X(ts), y: H - 5, "text-anchor": "middle" }, root);
		t.textContent = hhmm(ts, tstep < 60);
	}
	const fill = (custom.fillOpacity || 0) / 100;
	series.forEach((s, i) => {
		const c = PALETTE[i % PALETTE.length];
		/* split at gaps: a null or a missing step ends a segment */
		const segs = [];
		let cur = [], last = null;
		for (const [ts, v] of s.points) {
			if (v === null || (last !== null && ts - last > s.step * 1.5)) {
				if (cur.length) segs.push(cur);
				cur = [];
			}
			if (v !== null) cur.push([ts, v]);
			last = ts;
		}
		if (cur.length) segs.push(cur);
		for (const seg of segs) {
			const pts = seg.map(([ts, v]) => X(ts).toFixed(1) + "," + Y(v).toFixed(1));
			if (fill > 0 && seg.length > 1) {
				const area = "M" + X(seg[0][0]).toFixed(1) + "," + Y(min).toFixed(1) +
					" L" + pts.join(" L") + " L" + X(seg[seg.length - 1][0]).toFixed(1) +
					"," + Y(min).toFixed(1) + " Z";
				svg("path", { d: area, fill: c, "fill-opacity": fill, stroke: "none" }, root);
			}
			svg("polyline", { points: pts.join(" "), fill: "none", stroke: c,
				"stroke-width": custom.lineWidth || 1, "stroke-linejoin": "round" }, root);
		}
	});
}

/* ---- stat */
function statColor(defaults, v) {
	for (const m of defaults.mappings || [])
		if (m.type === "value" && m.options[String(v)])
			return { text: m.options[String(v)].text, color: color(m.options[String(v)].color) };
	let c = "#73bf69";
	const steps = (defaults.thresholds && defaults.thresholds.steps) || [];
	for (const s of steps) if (s.value === null || v >= s.value) c = color(s.color);
	return { text: null, color: c };
}
async function drawStat(p, body, step) {
	const defaults = (p.fieldConfig && p.fieldConfig.defaults) || {};
	const o = p.options || {};
	const t = p.targets[0];
	const d = await api("query", { query: interp(t.expr, step), time: TO });
	if (!d.result.length) return 0;
	const s = d.result[0];
	const v = Number(s.value[1]);
	const mc = statColor(defaults, v);
	const box = el("div", "stat");
	const text = o.textMode === "name" ? legend(t.legendFormat, s.metric)
		: mc.text || fmt(defaults.unit || "short", v, defaults.decimals);
	const big = el("div", "v", text);
	const size = Math.min(body.clientHeight * 0.42,
		body.clientWidth / Math.max(4, text.length) * 1.7);
	big.style.fontSize = Math.max(14, Math.floor(size)) + "px";
	if (o.colorMode === "background") {
		body.parentNode.style.background = mc.color;
		body.parentNode.style.color = "#fff";
		big.style.color = "#fff";
	} else if (o.colorMode !== "none") big.style.color = mc.color;
	box.appendChild(big);
	body.appendChild(box);
	if (o.graphMode === "area") {
		const r = await api("query_range", { query: interp(t.expr, step),
			start: FROM, end: TO, step: step });
		if (r.result.length) {
			const pts = r.result[0].values.map(([ts, x]) => [ts, Number(x)]);
			const W = body.clientWidth, H = Math.floor(body.clientHeight * 0.45);
			const mx = Math.max(...pts.map((q) => q[1]), 1e-9);
			const sp = svg("svg", { class: "spark", width: W, height: H,
				viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none" }, box);
			const xy = pts.map(([ts, x]) => ((ts - FROM) / (TO - FROM) * W).toFixed(1) +
				"," + (H - x / mx * (H - 2)).toFixed(1));
			svg("path", { d: "M0," + H + " L" + xy.join(" L") + " L" + W + "," + H + " Z",
				fill: mc.color, "fill-opacity": 0.18, stroke: "none" }, sp);
			svg("polyline", { points: xy.join(" "), fill: "none", stroke: mc.color,
				"stroke-width": 1.2 }, sp);
		}
	}
	return 1;
}

async function main() {
	const dash = await (await fetch(P.get("dash") || "mxguard-dashboard.json")).json();
	document.getElementById("title").textContent = dash.title;
	document.getElementById("range").textContent =
		new Date(FROM * 1000).toISOString().slice(0, 16).replace("T", " ") + " to " +
		new Date(TO * 1000).toISOString().slice(11, 16) + " UTC";
	await setupVars(dash);
	const grid = document.getElementById("grid");
	const colW = (grid.clientWidth + GAP) / COLS;
	let bottom = 0;
	const panels = dash.panels.slice().sort((a, b) =>
		a.gridPos.y - b.gridPos.y || a.gridPos.x - b.gridPos.x);
	for (const p of panels) bottom = Math.max(bottom, p.gridPos.y + p.gridPos.h);
	grid.style.height = (bottom * (ROW_H + GAP)) + "px";
	const jobs = [];
	for (const p of panels) {
		if (p.type === "row") {
			const r = el("div", "row", p.title);
			place(r, p.gridPos, colW);
			grid.appendChild(r);
			continue;
		}
		report.panels++;
		const { box, body } = panelBox(grid, p, colW);
		const width = Math.max(100, p.gridPos.w * colW - 60);
		const step = Math.max(SCRAPE, Math.ceil((TO - FROM) / width));
		jobs.push((async () => {
			try {
				let n;
				if (p.type === "stat") n = await drawStat(p, body, step);
				else {
					const series = await rangeQuery(p.targets, step);
					series.forEach((s) => { s.step = step; });
					n = series.length;
					if (n) drawSeries(p, body, series, box);
				}
				report.series += n;
				if (!n) {
					report.empty.push(p.title);
					body.appendChild(el("div", "nodata", "No data"));
				}
			} catch (e) {
				report.errors.push(p.title + ": " + e.message);
				body.appendChild(el("div", "error", e.message));
			}
		})());
	}
	await Promise.all(jobs);
}

main().catch((e) => report.errors.push("dashboard: " + e.message)).finally(() => {
	document.body.dataset.report = JSON.stringify(report);
	document.body.dataset.done = "1";
});
