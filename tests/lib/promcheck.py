#!/usr/bin/env python3
"""promcheck.py - checks for mxguard's metrics and its Grafana dashboard.

Used by tests/ns/78-metrics-dashboard.sh and scripts/dashboard-screenshot.sh.

  promcheck.py parse SCRAPE [--json OUT]
      A strict parser of the Prometheus text exposition format 0.0.4
      (https://prometheus.io/docs/instrumenting/exposition_formats/): the
      line grammar (names, label escapes, values, timestamps), one HELP and
      one TYPE per family, TYPE before the family's first sample, a family's
      samples together, no series twice, counters non-negative, and for
      histograms: only _bucket/_sum/_count samples, an le label on every
      bucket, bounds ascending, counts cumulative, a last bucket le="+Inf"
      equal to _count, and _sum and _count present.  Exit 1 with the line
      number and the reason on the first violation.  --json writes
      {"family": {"type", "help", "samples": [[name, {labels}, value]]}}.

  promcheck.py exprs DASHBOARD
      Every target expression of the dashboard, one per line, with
      Grafana's variables replaced ($instance -> .*, $__rate_interval -> 1m,
      ...), so promtool can judge them.

  promcheck.py rules DASHBOARD OUT
      A Prometheus rules file (OUT) with one recording rule per target
      expression, for `promtool check rules`: that parses every expression
      with Prometheus's own parser, without a server.

  promcheck.py names DASHBOARD|RULES.yml SCRAPE
      Every metric name the dashboard's (or the rules file's) expressions
      use must be a series name of the scrape (a histogram family gives
      NAME_bucket, NAME_sum and NAME_count) or one Prometheus makes itself
      (up, scrape_*); exit 1 naming the panels whose metric is missing.  So
      the dashboard cannot refer to a metric mxguard does not export
      (anymore).
"""
import json
import math
import re
import sys

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


class ParseError(Exception):
    pass


def parse_value(s):
    """A sample value as Go's strconv.ParseFloat takes it (what Prometheus
    uses): decimal floats, NaN, +Inf, -Inf (any case for the words)."""
    low = s.lower()
    if low in ("nan",):
        return math.nan
    if low in ("+inf", "inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if not FLOAT_RE.match(s):
        raise ParseError("bad value %r" % s)
    return float(s)


def unescape(s, quote):
    """HELP text (quote False: \\\\ and \\n) or a label value (also \\")."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s):
                raise ParseError("backslash at the end of %r" % s)
            n = s[i + 1]
            if n == "\\":
                out.append("\\")
            elif n == "n":
                out.append("\n")
            elif n == '"' and quote:
                out.append('"')
            else:
                raise ParseError("bad escape \\%s" % n)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_labels(s, pos):
    """Labels from s[pos] == '{'; returns (dict, position after '}')."""
    labels = {}
    pos += 1
    while True:
        if pos >= len(s):
            raise ParseError("unterminated label set")
        if s[pos] == "}":
            return labels, pos + 1
        m = LABEL_RE.match(s, pos)
        if not m:
            raise ParseError("bad label name at %r" % s[pos:])
        name = m.group(0)
        if name.startswith("__"):
            raise ParseError("reserved label name %s" % name)
        pos = m.end()
        if s[pos:pos + 2] != '="':
            raise ParseError("expected =\" after label %s" % name)
        pos += 2
        start = pos
        while pos < len(s) and s[pos] != '"':
            pos += 2 if s[pos] == "\\" else 1
        if pos >= len(s):
            raise ParseError("unterminated value of label %s" % name)
        value = unescape(s[start:pos], True)
        pos += 1
        if name in labels:
            raise ParseError("label %s twice" % name)
        labels[name] = value
        if pos < len(s) and s[pos] == ",":
            pos += 1
        elif pos < len(s) and s[pos] != "}":
            raise ParseError("expected , or } after label %s" % name)


def family_of(name, types):
    """The family a sample name belongs to (histogram/summary suffixes)."""
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf):
            base = name[:-len(suf)]
            if types.get(base) == "histogram" or (
                    suf != "_bucket" and types.get(base) == "summary"):
                return base
    return name


def parse(text):
    if not text.endswith("\n"):
        raise ParseError("line %d: the exposition does not end with a newline"
                         % (text.count("\n") + 1))
    fams = {}		# family -> {"type", "help", "samples"}
    types, helps = {}, {}
    order, done = [], set()
    series = set()
    cur = None
    for no, line in enumerate(text[:-1].split("\n"), 1):
        try:
            if "\r" in line or "\0" in line:
                raise ParseError("CR or NUL in the line")
            if line.strip() == "":
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                    if len(parts) < 3 or not NAME_RE.fullmatch(parts[2]):
                        raise ParseError("# %s without a valid metric name" % parts[1])
                    fam = parts[2]
                    if fam in done or (fam in fams and fams[fam]["samples"]):
                        raise ParseError("# %s %s after the family's samples" % (parts[1], fam))
                    if parts[1] == "HELP":
                        if fam in helps:
                            raise ParseError("second HELP for %s" % fam)
                        helps[fam] = unescape(parts[3] if len(parts) > 3 else "", False)
                    else:
                        if fam in types:
                            raise ParseError("second TYPE for %s" % fam)
                        if len(parts) != 4 or parts[3] not in TYPES:
                            raise ParseError("bad TYPE line")
                        types[fam] = parts[3]
                    if cur is not None and cur != fam:
                        done.add(cur)
                    cur = fam
                    fams.setdefault(fam, {"samples": []})
                continue
            m = NAME_RE.match(line)
            if not m:
                raise ParseError("bad metric name")
            name, pos = m.group(0), m.end()
            labels = {}
            if pos < len(line) and line[pos] == "{":
                labels, pos = parse_labels(line, pos)
            rest = line[pos:]
            if not rest.startswith((" ", "\t")):
                raise ParseError("no blank between the series and its value")
            fields = rest.split()
            if len(fields) not in (1, 2):
                raise ParseError("expected a value and an optional timestamp")
            value = parse_value(fields[0])
            if len(fields) == 2 and not re.fullmatch(r"-?[0-9]+", fields[1]):
                raise ParseError("bad timestamp %r" % fields[1])
            fam = family_of(name, types)
            if fam in done:
                raise ParseError("sample of %s apart from its family's other samples" % fam)
            if cur is not None and cur != fam:
                done.add(cur)
            cur = fam
            key = (name, tuple(sorted(labels.items())))
            if key in series:
                raise ParseError("series %s%s twice" % (name, labels))
            series.add(key)
            f = fams.setdefault(fam, {"samples": []})
            t = types.get(fam, "untyped")
            if t == "counter" and (math.isnan(value) or value < 0):
                raise ParseError("counter %s is %r" % (name, value))
            if t == "histogram":
                if name == fam:
                    raise ParseError("histogram %s has a plain sample" % fam)
                if name.endswith("_bucket") and "le" not in labels:
                    raise ParseError("bucket without le")
                if not name.endswith("_bucket") and "le" in labels:
                    raise ParseError("le on %s" % name)
            f["samples"].append([name, labels, value])
            if fam not in order:
                order.append(fam)
        except ParseError as e:
            raise ParseError("line %d: %s: %r" % (no, e, line))
    for fam, f in fams.items():
        f["type"] = types.get(fam, "untyped")
        f["help"] = helps.get(fam)
        if f["type"] == "histogram":
            check_histogram(fam, f["samples"])
    return fams


def check_histogram(fam, samples):
    groups = {}
    for name, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name == fam + "_bucket":
            g["buckets"].append((parse_value(labels["le"]), value))
        elif name == fam + "_sum":
            g["sum"] = value
        else:
            g["count"] = value
    for rest, g in groups.items():
        where = "%s%s" % (fam, dict(rest) if rest else "")
        b = g["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ParseError("%s: the last bucket is not le=\"+Inf\"" % where)
        for (le0, c0), (le1, c1) in zip(b, b[1:]):
            if not le0 < le1:
                raise ParseError("%s: bucket bounds not ascending (%g, %g)" % (where, le0, le1))
            if c1 < c0:
                raise ParseError("%s: bucket counts not cumulative (le=%g: %g, le=%g: %g)"
                                 % (where, le0, c0, le1, c1))
        if g["sum"] is None or g["count"] is None:
            raise ParseError("%s: _sum or _count missing" % where)
        if g["count"] != b[-1][1]:
            raise ParseError("%s: _count %g differs from the +Inf bucket %g"
                             % (where, g["count"], b[-1][1]))


# ------------------------------------------------------------- dashboard

def targets(path):
    """(panel title, expr) of every target, rows' nested panels included;
    for a rules file (.yml), (alert or record name, expr) of every rule
    (one-line expr: values, as in docs/grafana/mxguard-alerts.yml)."""
    if path.endswith((".yml", ".yaml")):
        out, name = [], "?"
        for line in open(path):
            m = re.match(r"\s*-?\s*(alert|record):\s*(\S+)", line)
            if m:
                name = m.group(2)
            m = re.match(r"\s*expr:\s*(.+?)\s*$", line)
            if m:
                e = m.group(1)
                if e[0] in "\"'" or e in ("|", ">", "|-", ">-"):
                    raise SystemExit("%s: quoted or block expr not supported: %s" % (path, e))
                out.append((name, e))
        return out
    d = json.load(open(path))
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
    walk(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        m = re.fullmatch(r"label_values\((.*),\s*[a-zA-Z_]+\)", q or "")
        if m:	# the variable's own query: label_values(SELECTOR, label)
            out.append(("variable " + v["name"], m.group(1)))
    return out


GRAFANA_VARS = {"instance": ".*", "__rate_interval": "1m", "__interval": "30s",
                "__range": "1h"}


def substitute(expr):
    def rep(m):
        v = m.group(1) or m.group(2)
        if v not in GRAFANA_VARS:
            raise SystemExit("unknown dashboard variable $%s in %s" % (v, expr))
        return GRAFANA_VARS[v]
    return re.sub(r"\$\{([a-zA-Z_]+)\}|\$([a-zA-Z_]+)", rep, expr)


KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
            "and", "or", "unless", "offset", "bool", "inf", "nan"}


def metric_names(expr):
    """Metric names in a PromQL expression: identifiers that are not
    functions or aggregations (followed by '('), not keywords, not inside a
    label matcher {...} or a by/without/on/ignoring (...) list, and not in
    a string or a range/duration [...]."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "."):
            continue	# 1e5, 0.5
        if re.match(r"\s*\(", s[m.end():]) or m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def main(argv):
    if len(argv) >= 2 and argv[0] == "parse":
        try:
            fams = parse(open(argv[1], encoding="utf-8", newline="").read())
        except (ParseError, UnicodeDecodeError) as e:
            print("promcheck: %s: %s" % (argv[1], e), file=sys.stderr)
            return 1
        if len(argv) == 4 and argv[2] == "--json":
            json.dump(fams, open(argv[3], "w"), indent=1, default=str)
        n = sum(len(f["samples"]) for f in fams.values())
        print("promcheck: %s: %d families, %d samples, strict text format 0.0.4 ok"
              % (argv[1], len(fams), n))
        return 0
    if len(argv) == 2 and argv[0] == "exprs":
        for _, e in targets(argv[1]):
            print(substitute(e))
        return 0
    if len(argv) == 3 and argv[0] == "rules":
        with open(argv[2], "w") as f:
            f.write("groups:\n  - name: mxguard-dashboard\n    rules:\n")
            for i, (title, e) in enumerate(targets(argv[1])):
                f.write("      - record: dashboard:expr_%d\n        expr: %s\n"
                        % (i, json.dumps(substitute(e))))
        return 0
    if len(argv) == 3 and argv[0] == "names":
        fams = parse(open(argv[2], encoding="utf-8", newline="").read())
        have = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                "scrape_samples_post_metric_relabeling", "scrape_series_added"}
        for f in fams.values():
            for name, _, _ in f["samples"]:
                have.add(name)
        bad, used = [], set()
        for title, e in targets(argv[1]):
            names = metric_names(substitute(e))
            if not names:
                bad.append("%s: no metric in %s" % (title, e))
            used |= names
            for n in sorted(names - have):
                bad.append("%s: %s is not in the scrape" % (title, n))
        for b in bad:
            print("promcheck: " + b, file=sys.stderr)
        if bad:
            return 1
        print("promcheck: %s: all %d metric names are in the scrape: %s"
              % (argv[1], len(used), " ".join(sorted(used))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
