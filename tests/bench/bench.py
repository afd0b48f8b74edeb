#!/usr/bin/env python3
"""mxguard benchmark driver, called by tests/bench/run.sh (which sets up the
namespaces and daemons and exports NS_S, NS_R, T, OUT, SINK_PID, MXG_PID,
STUNNEL_PID, SESSTIME_SO, BENCH_QUICK, BENCH_SKIP).

    bench.py throughput profile   the path matrix (+ perf profile of mxguard)
    bench.py memory N             RSS growth per idle relayed session
    bench.py capacity N           N idle relayed sessions held without error
    bench.py workers W            path b on a few cells with `workers = W`
                                  (appends to workers.jsonl)
    bench.py report               table on stdout, results.json/.tsv, plot
"""
import json
import os
import shutil
import subprocess
import sys
import time

E = os.environ
OUT = E.get("OUT", ".")
T = E.get("T", "/tmp")
NS_S = E.get("NS_S", "")
QUICK = E.get("BENCH_QUICK", "0") == "1"
SKIP = set(x for x in E.get("BENCH_SKIP", "").split(",") if x)
TICK = os.sysconf("SC_CLK_TCK")
RESULTS = os.path.join(OUT, "results.jsonl")

# every smtp-source run names its envelope: its defaults take the machine's
# host name (foo@HOSTNAME), a domain the bench's resolver does not know, so
# mxguard would judge, and defer, that instead of sink.test
ENVELOPE = ["-f", "bench@src.test", "-t", "sink@sink.test", "-M", "src.test"]

PATHS = {
    "a": ("direct cleartext", "10.26.1.2:2525", None),
    "b": ("mxguard STARTTLS", "10.26.1.2:25", "MXG_PID"),
    "c": ("stunnel STARTTLS", "127.0.0.1:10026", "STUNNEL_PID"),
    # a second mxguard, upstream_reuse = no: every session pays for its own
    # connect, STARTTLS and handshake upstream (the handshake path)
    "d": ("mxguard STARTTLS, reuse off", "10.26.1.2:2527", "MXG_NR_PID"),
    # the steering part (run.sh): the daemons of one set-up, port 2528
    "s": ("mxguard steered", "10.26.1.2:2528", "ST_PIDS_S"),
}
# the mxguard paths, reported with their ratios to a (direct) and c (stunnel)
MXG_PATHS = "bd"

# (label, message size, messages per connection "1" or "many",
#  {concurrency: total messages}).  Sized so that `make bench` stays under
#  ~15 minutes on the 2-core development machine.
MATRIX = [
    ("4KB 1/conn", 4096, "1", {1: 500, 10: 3000, 100: 4000, 1000: 4000}),
    ("4KB many/conn", 4096, "many", {1: 5000, 10: 20000, 100: 20000,
                                     1000: 20000}),
    ("1MB 1/conn", 1 << 20, "1", {1: 100, 10: 300, 100: 500, 1000: 1000}),
]
if QUICK:
    MATRIX = [(l, s, m, {c: max(c, n // 5) for c, n in d.items()})
              for l, s, m, d in MATRIX]
# BENCH_ONLY="4KB 1/conn:1,10;1MB 1/conn:10": a subset of the matrix, for
# iterating on one workload (the report still lists what was run).
if E.get("BENCH_ONLY"):
    _want = {}
    for _item in E["BENCH_ONLY"].split(";"):
        _l, _, _c = _item.partition(":")
        _want[_l.strip()] = set(int(x) for x in _c.split(",") if x.strip())
    MATRIX = [(l, s, m, {c: n for c, n in d.items()
                         if not _want[l] or c in _want[l]})
              for l, s, m, d in MATRIX if l in _want]
# BENCH_PATHS="ab": only some of the four paths.
RUN_PATHS = E.get("BENCH_PATHS", "abcd")
# Every cell runs BENCH_REPEAT times, the paths interleaved (a b c a b c
# ...), and the report takes the median run: the development machine is
# shared and single runs vary by 20% and more.
REPEAT = max(1, int(E.get("BENCH_REPEAT", "1" if QUICK else "3")))


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def cpu_of(pid):
    """utime+stime of a process (all its threads) and of its live children
    (mxguard's workers), seconds."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, ValueError, IndexError):
        return float("nan")
    try:
        with open("/proc/%s/task/%s/children" % (pid, pid)) as f:
            kids = f.read().split()
    except OSError:
        kids = []
    for k in kids:
        try:
            with open("/proc/%s/stat" % k) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, ValueError, IndexError):
            pass
    return cpu


def proxy_cpu(pids):
    """cpu_of() summed over space-separated PIDs (the steering part's
    balance set-up runs two daemons); 0 without a proxy."""
    return sum(cpu_of(p) for p in (pids or "").split())


def own_cpu(pid):
    """utime+stime of one process alone, without its children (the
    supervisor, which reads the queue)."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, ValueError, IndexError):
        return float("nan")


def rss_kib(pid):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def machine_busy():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def sink_stats():
    """Ask tlssink for its counters (SIGUSR1, file rewritten within 1 s)."""
    path = os.path.join(T, "sink.stats")
    try:
        before = os.stat(path).st_mtime_ns
    except OSError:
        before = 0
    os.kill(int(E["SINK_PID"]), 10)
    for _ in range(40):
        time.sleep(0.05)
        try:
            if os.stat(path).st_mtime_ns != before:
                break
        except OSError:
            pass
    d = {}
    with open(path) as f:
        for line in f:
            k, v = line.split()
            d[k] = int(v)
    return d


def pct(vals, p):
    if not vals:
        return None
    vals = sorted(vals)
    k = min(len(vals) - 1, max(0, int(round(p / 100.0 * len(vals) + 0.5)) - 1))
    return vals[k]


def nsx(cmd):
    return ["ip", "netns", "exec", NS_S] + cmd


def one_run(label, size, per, conc, msgs, path):
    name, dst, pidvar = PATHS[path]
    proxy = E.get(pidvar) if pidvar else None
    sess_file = os.path.join(T, "sess-%s-%d-%s.txt" % (
        label.replace(" ", "_").replace("/", ""), conc, path))
    if os.path.exists(sess_file):
        os.unlink(sess_file)
    cmd = ["smtp-source", "-s", str(conc), "-m", str(msgs), "-l", str(size)
           ] + ENVELOPE + [dst]
    if per == "many":
        cmd.insert(1, "-d")
    env = dict(E, LD_PRELOAD=E["SESSTIME_SO"], SESSTIME_FILE=sess_file)
    s0 = sink_stats()
    sink0 = cpu_of(E["SINK_PID"])
    prox0 = proxy_cpu(proxy)
    m0 = machine_busy()
    t0 = time.monotonic()
    p = subprocess.Popen(nsx(cmd), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    _, status, ru = os.wait4(p.pid, 0)
    out = p.stdout.read().decode(errors="replace")
    wall = time.monotonic() - t0
    m1 = machine_busy()
    prox1 = proxy_cpu(proxy)
    sink1 = cpu_of(E["SINK_PID"])
    time.sleep(0.2)
    s1 = sink_stats()
    rc = os.waitstatus_to_exitcode(status)
    got = s1["msgs"] - s0["msgs"]
    try:
        with open(sess_file) as f:
            sess = [float(x) for x in f if x.strip()]
    except OSError:
        sess = []
    src_cpu = ru.ru_utime + ru.ru_stime
    r = {
        "workload": label, "size": size, "per_conn": per,
        "concurrency": conc, "messages": msgs, "path": path,
        "path_name": name, "rc": rc, "received": got,
        "wall_s": round(wall, 4),
        "msgs_per_s": round(got / wall, 1),
        "mb_per_s": round(got * size / wall / 1e6, 2),
        "sessions": len(sess),
        "sess_p50_ms": round(pct(sess, 50) * 1e3, 3) if sess else None,
        "sess_p99_ms": round(pct(sess, 99) * 1e3, 3) if sess else None,
        "proxy_cpu_s": round(prox1 - prox0, 3),
        "sink_cpu_s": round(sink1 - sink0, 3),
        "source_cpu_s": round(src_cpu, 3),
        "proxy_cpu_ms_per_msg": round((prox1 - prox0) / max(got, 1) * 1e3, 4),
        "sink_cpu_ms_per_msg": round((sink1 - sink0) / max(got, 1) * 1e3, 4),
        "source_cpu_ms_per_msg": round(src_cpu / max(got, 1) * 1e3, 4),
        "sink_util": round((sink1 - sink0) / wall, 3),
        "proxy_util": round((prox1 - prox0) / wall, 3),
        "machine_util": round((m1[0] - m0[0]) / max(1, m1[1] - m0[1]), 3),
        # CPU used by processes outside this run (other jobs on the host,
        # ksoftirqd): large values mean a noisy measurement
        "foreign_cpu_s": round((m1[0] - m0[0]) / TICK - (prox1 - prox0) -
                               (sink1 - sink0) - src_cpu, 3),
        "tls_handshakes": s1["handshakes"] - s0["handshakes"],
        "tls_resumed": s1["resumed"] - s0["resumed"],
        "tls_fail": s1["tls_fail"] - s0["tls_fail"],
    }
    if rc != 0 or got != msgs:
        r["error"] = "smtp-source rc=%d, sink got %d of %d: %s" % (
            rc, got, msgs, out.strip()[-300:])
    return r


def throughput():
    log("throughput matrix -> %s" % RESULTS)
    with open(RESULTS, "w") as f:
        for label, size, per, counts in MATRIX:
            for conc, msgs in counts.items():
              for rep in range(REPEAT):
                for path in RUN_PATHS:
                    r = one_run(label, size, per, conc, msgs, path)
                    r["rep"] = rep
                    f.write(json.dumps(r) + "\n")
                    f.flush()
                    log("%-14s c=%-4d %s %8.1f msg/s %8.2f MB/s p50 %s ms "
                        "proxy %.3f ms/msg sink util %.2f%s" % (
                            label, conc, path, r["msgs_per_s"], r["mb_per_s"],
                            r["sess_p50_ms"], r["proxy_cpu_ms_per_msg"],
                            r["sink_util"],
                            "  ERROR " + r["error"] if "error" in r else ""))
                    time.sleep(0.5)


# `workers` dimension: path b with workers = W on these cells (label,
# size, per connection, concurrency, messages); BENCH_WORKERS (run.sh)
# chooses the W values, the report gives each W's rate over W = 1's.
WORKER_CELLS = [("4KB 1/conn", 4096, "1", 10, 3000),
                ("4KB 1/conn", 4096, "1", 100, 4000),
                ("4KB many/conn", 4096, "many", 100, 20000),
                ("1MB 1/conn", 1 << 20, "1", 10, 300)]
WORKERS_RESULTS = os.path.join(OUT, "workers.jsonl")


def workers_run(w):
    log("workers = %d -> %s" % (w, WORKERS_RESULTS))
    with open(WORKERS_RESULTS, "a") as f:
        for label, size, per, conc, msgs in WORKER_CELLS:
            if QUICK:
                msgs = max(conc, msgs // 5)
            for rep in range(REPEAT):
                r = one_run(label, size, per, conc, msgs, "b")
                r["workers"] = w
                r["rep"] = rep
                f.write(json.dumps(r) + "\n")
                f.flush()
                log("workers=%d %-14s c=%-4d %8.1f msg/s proxy %.3f ms/msg "
                    "util %.2f%s" % (w, label, conc, r["msgs_per_s"],
                                     r["proxy_cpu_ms_per_msg"],
                                     r["proxy_util"],
                                     "  ERROR " + r["error"] if "error" in r
                                     else ""))
                time.sleep(0.5)


def workers_report():
    """The median run of each (cell, W), and W's rate over W = 1's."""
    if not os.path.exists(WORKERS_RESULTS):
        return None
    with open(WORKERS_RESULTS) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    cells = {}
    for r in rows:
        cells.setdefault((r["workload"], r["concurrency"], r["workers"]),
                         []).append(r)
    med = {}
    for k, rs in cells.items():
        rs.sort(key=lambda x: x["msgs_per_s"])
        med[k] = rs[len(rs) // 2]
    ws = sorted(set(k[2] for k in med))
    print("\nmxguard (path b) by workers, msg/s (median run), and the "
          "ratio over workers = 1:")
    print("  %-16s %5s  %s" % ("workload", "conc", "  ".join(
        "%10s" % ("w=%d" % w) for w in ws) + "   ratio"))
    out = []
    for label, _, _, conc, _ in WORKER_CELLS:
        rates = {w: med[(label, conc, w)]["msgs_per_s"] for w in ws
                 if (label, conc, w) in med}
        if not rates:
            continue
        base = rates.get(1)
        ratio = {w: round(v / base, 2) if base else None
                 for w, v in rates.items()}
        print("  %-16s %5d  %s   %s" % (label, conc, "  ".join(
            "%10.1f" % rates[w] if w in rates else "%10s" % "-" for w in ws),
            " ".join("%s" % ratio[w] for w in ws if w in ratio and w != 1)))
        out.append({"workload": label, "concurrency": conc,
                    "msgs_per_s": rates, "ratio_over_1": ratio,
                    "proxy_cpu_ms_per_msg": {
                        w: med[(label, conc, w)]["proxy_cpu_ms_per_msg"]
                        for w in rates}})
    return out


# `steering` part: one NFQUEUE read by the supervisor (workers = 2, as
# shipped) against --queue-balance over two queues, each read by its own
# daemon, and a baseline without a queue (run.sh sets each up on port
# 2528).  One message per connection, reuse on: the highest rate of new
# flows, so of SYN verdicts, that the matrix has.
STEER_CELLS = [("4KB 1/conn", 4096, "1", 10, 3000),
               ("4KB 1/conn", 4096, "1", 100, 4000)]
STEER_RESULTS = os.path.join(OUT, "steering.jsonl")
STEER_MODES = ("none", "one", "balance")


def steer_counts(confs):
    """(SYN verdicts, sessions) of the daemons of CONFS so far: the sums
    of mxguard_nfq_packets_total and mxguard_sessions_total over them."""
    v = n = 0
    for c in confs.split():
        r = subprocess.run([E["MXGUARD"], "-c", c, "status", "--metrics"],
                           capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if line.startswith("mxguard_nfq_packets_total "):
                v += int(float(line.split()[1]))
            elif line.startswith("mxguard_sessions_total "):
                n += int(float(line.split()[1]))
    return v, n


def steering_run(mode, rep):
    log("steering = %s -> %s" % (mode, STEER_RESULTS))
    confs = E.get("ST_CONFS", "")
    qowner = E.get("ST_QOWNER") or None
    with open(STEER_RESULTS, "a") as f:
        for label, size, per, conc, msgs in STEER_CELLS:
            if QUICK:
                msgs = max(conc, msgs // 5)
            v0, n0 = steer_counts(confs)
            q0 = own_cpu(qowner) if qowner else 0.0
            r = one_run(label, size, per, conc, msgs, "s")
            q1 = own_cpu(qowner) if qowner else 0.0
            # the last sessions are counted when their upstream QUIT is
            # done, a moment after the client's 221
            for _ in range(30):
                v1, n1 = steer_counts(confs)
                if n1 - n0 >= msgs and (mode == "none" or v1 - v0 >= msgs):
                    break
                time.sleep(0.1)
            r["steering"] = mode
            r["rep"] = rep
            r["nfq_verdicts"] = v1 - v0
            r["mxguard_sessions"] = n1 - n0
            # the supervisor alone (it reads the queue); 0 in the others
            r["queue_owner_cpu_ms_per_msg"] = round(
                (q1 - q0) / max(r["received"], 1) * 1e3, 4)
            # every connection must have had its verdict: otherwise the
            # set-up measured something else than its queue
            if mode != "none" and "error" not in r and r["nfq_verdicts"] < msgs:
                r["error"] = "%d verdicts for %d connections" % (
                    r["nfq_verdicts"], msgs)
            if "error" not in r and r["mxguard_sessions"] < msgs:
                r["error"] = "mxguard relayed %d sessions of %d" % (
                    r["mxguard_sessions"], msgs)
            f.write(json.dumps(r) + "\n")
            f.flush()
            log("steering=%-7s %-14s c=%-4d %8.1f msg/s proxy %.3f ms/msg "
                "queue owner %.3f ms/msg verdicts %d sessions %d%s" % (
                    mode, label, conc, r["msgs_per_s"],
                    r["proxy_cpu_ms_per_msg"],
                    r["queue_owner_cpu_ms_per_msg"], r["nfq_verdicts"],
                    r["mxguard_sessions"],
                    "  ERROR " + r["error"] if "error" in r else ""))
            time.sleep(0.5)


def steering_report():
    """The median run of each (cell, mode), and each mode's rate over the
    baseline without a queue."""
    if not os.path.exists(STEER_RESULTS):
        return None
    with open(STEER_RESULTS) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    cells = {}
    for r in rows:
        cells.setdefault((r["workload"], r["concurrency"], r["steering"]),
                         []).append(r)
    med = {}
    for k, rs in cells.items():
        rs.sort(key=lambda x: x["msgs_per_s"])
        med[k] = dict(rs[(len(rs) - 1) // 2])
        errs = [x["error"] for x in rs if "error" in x]
        if errs:
            med[k]["error"] = errs[0]
    print("\nsteering (workers = 2 / two daemons, reuse on), msg/s (median "
          "run), mxguard's CPU per message (all processes; in brackets the "
          "supervisor's, which reads the one queue), and the rate over "
          "no queue:")
    print("  %-14s %5s  %-24s %-24s %-24s" % ("workload", "conc",
          "none (REDIRECT only)", "one queue (supervisor)",
          "queue-balance (2)"))
    out = []
    for label, _, _, conc, _ in STEER_CELLS:
        base = med.get((label, conc, "none"))
        cols, entry = [], {"workload": label, "concurrency": conc}
        for m in STEER_MODES:
            r = med.get((label, conc, m))
            if not r:
                cols.append("%-24s" % "-")
                continue
            ratio = (round(r["msgs_per_s"] / base["msgs_per_s"], 2)
                     if base and base["msgs_per_s"] else None)
            cpu = "%.3f" % r["proxy_cpu_ms_per_msg"]
            if m == "one":
                cpu += " (%.3f)" % r["queue_owner_cpu_ms_per_msg"]
            cols.append("%-24s" % ("%.0f %s x%s%s" % (
                r["msgs_per_s"], cpu, ratio,
                " ERR" if "error" in r else "")))
            entry[m] = {"msgs_per_s": r["msgs_per_s"], "ratio_none": ratio,
                        "proxy_cpu_ms_per_msg": r["proxy_cpu_ms_per_msg"],
                        "queue_owner_cpu_ms_per_msg":
                            r["queue_owner_cpu_ms_per_msg"],
                        "nfq_verdicts": r["nfq_verdicts"],
                        "runs": len(cells[(label, conc, m)]),
                        "error": r.get("error")}
        print("  %-14s %5d  %s" % (label, conc, " ".join(cols)))
        out.append(entry)
    return out


def have_perf():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o",
                        os.path.join(T, "perf-probe.data"), "true"],
                       capture_output=True)
    return r.returncode == 0


def profile_one(tag, size, conc, msgs, path="b", extra=()):
    data = os.path.join(T, "perf-%s.data" % tag)
    pid = E[PATHS[path][2]]
    perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000",
                             "-g", "-p", pid, "-o", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    cmd = nsx(["smtp-source", "-s", str(conc), "-m", str(msgs), "-l",
               str(size)] + list(extra) + ENVELOPE + [PATHS[path][1]])
    subprocess.run(cmd, capture_output=True)
    perf.send_signal(2)
    perf.wait()
    rep = {}
    for sort in ("dso", "dso,sym"):
        r = subprocess.run(["perf", "report", "-i", data, "--no-children",
                            "--sort", sort, "--stdio", "--percent-limit",
                            "0.3" if sort != "dso" else "0"],
                           capture_output=True, text=True)
        fn = os.path.join(OUT, "profile-%s-%s.txt" % (tag, sort.replace(",", "-")))
        with open(fn, "w") as f:
            f.write(r.stdout)
        rep[sort] = r.stdout
    shares = {}
    for line in rep["dso"].splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "%" not in line:
            continue
        parts = line.split()
        try:
            shares[parts[-1]] = float(parts[0].rstrip("%"))
        except ValueError:
            pass
    groups = {"mxguard": 0.0, "openssl": 0.0, "kernel": 0.0, "libc": 0.0,
              "other": 0.0}
    for dso, v in shares.items():
        if dso.startswith("mxguard"):	# also a copied binary's name
            groups["mxguard"] += v
        elif "libssl" in dso or "libcrypto" in dso:
            groups["openssl"] += v
        elif "kernel" in dso or dso.startswith("[k"):
            groups["kernel"] += v
        elif "libc" in dso or "ld-linux" in dso:
            groups["libc"] += v
        else:
            groups["other"] += v
    return {"tag": tag, "size": size, "concurrency": conc, "messages": msgs,
            "path": path, "extra": list(extra), "dso": shares, "groups": {k: round(v, 2) for k, v in groups.items()}}


ENTRY_POINTS = ["SSL_do_handshake", "SSL_read", "SSL_write", "SSL_new",
                "SSL_free", "SSL_shutdown", "X509_verify_cert",
                "smtp_data_scan", "body_pump", "session_start", "do_read",
                "flush_out", "write_direct", "__libc_malloc", "malloc",
                "free", "cfree", "accept4", "connect", "read", "__send",
                "epoll_wait", "epoll_ctl"]


def profile_inclusive(tag, size, conc, msgs, path="b", extra=()):
    """perf --call-graph dwarf: inclusive share of OpenSSL entry points and
    mxguard functions (libcrypto has no symbols on Debian without dbgsym,
    so the split comes from the libssl entry points that call it)."""
    data = os.path.join(T, "perf-dwarf-%s.data" % tag)
    perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "499",
                             "--call-graph", "dwarf,16384", "-p",
                             E[PATHS[path][2]], "-o", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    subprocess.run(nsx(["smtp-source", "-s", str(conc), "-m", str(msgs), "-l",
                        str(size)] + list(extra) + ENVELOPE +
                       [PATHS[path][1]]),
                   capture_output=True)
    perf.send_signal(2)
    perf.wait()
    r = subprocess.run(["perf", "report", "-i", data, "--children", "--sort",
                        "sym", "--stdio", "-g", "none", "--percent-limit",
                        "0.5"], capture_output=True, text=True)
    with open(os.path.join(OUT, "profile-%s-inclusive.txt" % tag), "w") as f:
        f.write(r.stdout)
    incl = {}
    skip = {"__libc_start_call_main", "__libc_start_main_impl", "_start",
            "main", "cmd_run", "ev_loop_run", "entry_SYSCALL_64_after_hwframe"}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].endswith("%"):
            continue
        if parts[2] not in ("[.]", "[k]"):
            continue
        name = parts[3]
        if name in skip or name.startswith("0x") or name in incl:
            continue
        if parts[2] == "[k]" and name != "do_syscall_64":
            continue
        incl[name] = float(parts[0].rstrip("%"))
        if len(incl) >= 30:
            break
    return incl


def profile():
    if not have_perf():
        log("perf unavailable (apt-get install linux-perf): no profile")
        return
    prof = []
    log("profile: perf record -e cpu-clock on mxguard, 100 sessions, 4KB")
    prof.append(profile_one("4k-c100", 4096, 100, 600 if QUICK else 3000))
    log("profile: 1MB, 100 sessions")
    prof.append(profile_one("1m-c100", 1 << 20, 100, 100 if QUICK else 300))
    log("profile: 4KB, 100 sessions, upstream_reuse = no (path d)")
    prof.append(profile_one("4k-c100-noreuse", 4096, 100,
                            300 if QUICK else 1500, "d"))
    log("profile: 4KB, many per connection (-d), 10 sessions")
    prof.append(profile_one("4k-many-c10", 4096, 10,
                            4000 if QUICK else 20000, "b", ["-d"]))
    log("profile: call graphs (dwarf) of the four")
    prof[0]["inclusive"] = profile_inclusive("4k-c100", 4096, 100,
                                             300 if QUICK else 1500)
    prof[1]["inclusive"] = profile_inclusive("1m-c100", 1 << 20, 100,
                                             50 if QUICK else 150)
    prof[2]["inclusive"] = profile_inclusive("4k-c100-noreuse", 4096, 100,
                                             150 if QUICK else 750, "d")
    prof[3]["inclusive"] = profile_inclusive("4k-many-c10", 4096, 10,
                                             2000 if QUICK else 10000, "b",
                                             ["-d"])
    for p in prof:
        log("profile %s: %s" % (p["tag"], p["groups"]))
        log("  inclusive: %s" % p["inclusive"])
    with open(os.path.join(OUT, "profile.json"), "w") as f:
        json.dump(prof, f, indent=1)


def hold(n):
    """Run holdconns.py with N sessions; returns (proc, ready line)."""
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.Popen(nsx(["python3", os.path.join(here, "holdconns.py"),
                              "10.26.1.2", "25", str(n), "200"]),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    return p, line


def release(p):
    p.stdin.write("\n")
    p.stdin.flush()
    out = p.stdout.read().strip()
    p.wait()
    return out


def parse_kv(line):
    d = {}
    for w in line.split():
        if "=" in w:
            k, v = w.split("=", 1)
            try:
                d[k] = int(v)
            except ValueError:
                d[k] = v
    return d


def warmup():
    subprocess.run(nsx(["smtp-source", "-s", "10", "-m", "50", "-l", "4096"] +
                       ENVELOPE + ["10.26.1.2:25"]), capture_output=True)
    time.sleep(0.5)


def memory(n):
    pid = E["MXG_PID"]
    warmup()
    before = rss_kib(pid)
    t0 = time.monotonic()
    p, line = hold(n)
    setup = time.monotonic() - t0
    time.sleep(1)
    after = rss_kib(pid)
    sink_open = sink_stats()["open"]
    done = release(p)
    time.sleep(1)
    end = rss_kib(pid)
    d = parse_kv(line)
    ok = d.get("ok", 0)
    r = {"sessions": n, "held": ok, "failed": d.get("fail"), "ready": line,
         "rss_before_kib": before, "rss_after_kib": after,
         "rss_after_close_kib": end, "setup_s": round(setup, 2),
         "sink_open": sink_open,
         "kib_per_session": round((after - before) / max(ok, 1), 2),
         "done": done}
    log("memory: %s" % r)
    with open(os.path.join(OUT, "memory.json"), "w") as f:
        json.dump(r, f, indent=1)


def capacity(n):
    pid = E["MXG_PID"]
    logf = os.path.join(OUT, "mxguard.log")
    log0 = os.path.getsize(logf) if os.path.exists(logf) else 0
    warmup()
    before = rss_kib(pid)
    t0 = time.monotonic()
    p, line = hold(n)
    setup = time.monotonic() - t0
    time.sleep(2)
    after = rss_kib(pid)
    nfd = len(os.listdir("/proc/%s/fd" % pid))
    done = release(p)
    d, dd = parse_kv(line), parse_kv(done)
    errs, nerr = [], 0
    if os.path.exists(logf):
        # grep, not Python: a misbehaving daemon can log gigabytes
        g = subprocess.run("tail -c +%d %s | grep -a -i -E 'err|refused' | "
                           "tee >(head -5 >&2) | wc -l" % (log0 + 1, logf),
                           shell=True, executable="/bin/bash",
                           capture_output=True, text=True)
        nerr = int(g.stdout.strip() or 0)
        errs = g.stderr.strip().splitlines()[:5]
    r = {"sessions": n, "held": d.get("ok", 0), "failed": d.get("fail"),
         "alive_at_end": dd.get("alive"), "ready": line, "mxguard_fds": nfd,
         "rss_before_kib": before, "rss_after_kib": after,
         "setup_s": round(setup, 2), "mxguard_log_errors": nerr,
         "first_errors": errs[:5],
         "requested": int(E.get("BENCH_HOLD_REQUESTED", n)),
         "nofile_limit": int(E.get("BENCH_NOFILE", 0)),
         "ok": d.get("ok") == n and dd.get("alive") == n and nerr == 0}
    log("capacity: %s" % r)
    with open(os.path.join(OUT, "capacity.json"), "w") as f:
        json.dump(r, f, indent=1)


# ---------------------------------------------------------------- report


TARGETS = [
    # (description, workload, concurrency, ratio key, minimum)
    ("4KB 1/conn, b >= 3x stunnel at 10 sessions", "4KB 1/conn", 10, "b/c", 3.0),
    ("4KB 1/conn, b >= 3x stunnel at 100 sessions", "4KB 1/conn", 100, "b/c", 3.0),
    ("4KB many/conn, b >= 0.7x direct (10 sessions)", "4KB many/conn", 10, "b/a", 0.7),
    ("4KB many/conn, b >= 0.7x direct (100 sessions)", "4KB many/conn", 100, "b/a", 0.7),
    ("1MB, b >= 0.8x direct (10 sessions)", "1MB 1/conn", 10, "b/a", 0.8),
    ("1MB, b >= 0.8x direct (100 sessions)", "1MB 1/conn", 100, "b/a", 0.8),
    # issue 14: the same without upstream leg reuse (path d)
    ("4KB 1/conn, d >= 2x stunnel at 10 sessions", "4KB 1/conn", 10, "d/c", 2.0),
    ("4KB 1/conn, d >= 2x stunnel at 100 sessions", "4KB 1/conn", 100, "d/c", 2.0),
    ("4KB many/conn, d >= 0.7x direct (10 sessions)", "4KB many/conn", 10, "d/a", 0.7),
    ("4KB many/conn, d >= 0.7x direct (100 sessions)", "4KB many/conn", 100, "d/a", 0.7),
    ("1MB, d >= 0.8x direct (10 sessions)", "1MB 1/conn", 10, "d/a", 0.8),
    ("1MB, d >= 0.8x direct (100 sessions)", "1MB 1/conn", 100, "d/a", 0.8),
]


def other_share(r):
    """The share of the machine (all its CPUs) that processes outside the
    run took during the row's run: the "other" column."""
    return (r.get("foreign_cpu_s", 0) / max(r["wall_s"], 1e-3) /
            (os.cpu_count() or 1))


# A target's cells with more than this share taken by others were
# measured on a busy machine: their ratio is flagged, not trusted.
OTHER_DISTURBED = 0.1


def report():
    rows = []
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            rows = [json.loads(l) for l in f if l.strip()]
    # the median run (by messages per second) of every cell stands for it
    cells = {}
    for r in rows:
        cells.setdefault((r["workload"], r["concurrency"], r["path"]),
                         []).append(r)
    spread = {}
    for k, rs in cells.items():
        rs.sort(key=lambda x: x["msgs_per_s"])
        med = rs[(len(rs) - 1) // 2]
        spread[k] = ((rs[-1]["msgs_per_s"] - rs[0]["msgs_per_s"]) /
                     med["msgs_per_s"] if med["msgs_per_s"] else 0.0)
        med["runs"] = len(rs)
        med["spread"] = round(spread[k], 3)
        errs = [x["error"] for x in rs if "error" in x]
        if errs:	# a failed repetition is never hidden by the median
            med["error"] = errs[0]
    rows = [rs[(len(rs) - 1) // 2] for rs in cells.values()]
    by = {(r["workload"], r["concurrency"], r["path"]): r for r in rows}
    hdr = ("%-14s %5s %1s %9s %8s %9s %9s %9s %9s %7s %7s" % (
        "workload", "conc", "p", "msg/s", "MB/s", "p50 ms", "p99 ms",
        "proxyCPU", "sinkCPU", "x/a", "x/c") + "  other spread")
    print()
    print("mxguard benchmark  (p: a direct cleartext, b mxguard, c stunnel, "
          "d mxguard with upstream_reuse = no;\n  x/a, x/c: the row's msg/s "
          "over direct's and stunnel's; "
          "CPU columns: ms of CPU per message;\n  p50/p99: session time seen "
          "by smtp-source; other: share of the machine used by processes "
          "outside the run;\n  each row is the median of %d runs, spread: "
          "(max-min)/median of their msg/s)" % max(
              [r.get("runs", 1) for r in rows] or [1]))
    print(hdr)
    print("-" * len(hdr))
    ratios = {}
    tsv = ["\t".join(["workload", "concurrency", "path", "msgs_per_s",
                      "mb_per_s", "sess_p50_ms", "sess_p99_ms",
                      "proxy_cpu_ms_per_msg", "sink_cpu_ms_per_msg",
                      "source_cpu_ms_per_msg", "machine_util",
                      "foreign_cpu_s", "tls_handshakes", "tls_resumed",
                      "ratio_a", "ratio_c", "error"])]
    for r in rows:
        k = (r["workload"], r["concurrency"])
        ba = bc = None
        if r["path"] in MXG_PATHS:
            a, c = by.get(k + ("a",)), by.get(k + ("c",))
            if a and a["msgs_per_s"]:
                ba = r["msgs_per_s"] / a["msgs_per_s"]
            if c and c["msgs_per_s"]:
                bc = r["msgs_per_s"] / c["msgs_per_s"]
            ratios.setdefault(k, {}).update({r["path"] + "/a": ba,
                                             r["path"] + "/c": bc})

        def f(v, fmt):
            return fmt % v if v is not None else "-"
        print(("%-14s %5d %1s %9.1f %8.2f %9s %9s %9s %9s %7s %7s%s" % (
            r["workload"], r["concurrency"], r["path"], r["msgs_per_s"],
            r["mb_per_s"], f(r["sess_p50_ms"], "%.2f"),
            f(r["sess_p99_ms"], "%.2f"),
            f(r["proxy_cpu_ms_per_msg"] if r["path"] != "a" else None, "%.3f"),
            f(r["sink_cpu_ms_per_msg"], "%.3f"), f(ba, "%.2f"),
            f(bc, "%.2f"), "  %5.2f" % other_share(r),
            )) + "  %5.0f%%" % (100 * r.get("spread", 0)) +
            ("  ERR" if "error" in r else ""))
        tsv.append("\t".join(str(x) if x is not None else "" for x in [
            r["workload"], r["concurrency"], r["path"], r["msgs_per_s"],
            r["mb_per_s"], r["sess_p50_ms"], r["sess_p99_ms"],
            r["proxy_cpu_ms_per_msg"], r["sink_cpu_ms_per_msg"],
            r["source_cpu_ms_per_msg"], r["machine_util"],
            r.get("foreign_cpu_s"), r["tls_handshakes"], r["tls_resumed"], ba and round(ba, 3), bc and round(bc, 3),
            r.get("error", "")]))
    with open(os.path.join(OUT, "results.tsv"), "w") as f:
        f.write("\n".join(tsv) + "\n")

    summary(by)

    verdicts = []
    print()
    print("targets (issue 6; d: issue 14)")
    for desc, wl, conc, key, minimum in TARGETS:
        v = ratios.get((wl, conc), {}).get(key)
        ok = v is not None and v >= minimum
        # the two cells of the ratio: busy with others' work, flagged
        other = max([other_share(by[(wl, conc, p)]) for p in key.split("/")
                     if (wl, conc, p) in by] or [0.0])
        busy = other > OTHER_DISTURBED
        # a cell this run left out (BENCH_ONLY, BENCH_PATHS) is no miss
        verdicts.append({"target": desc, "value": v, "min": minimum,
                         "met": ok if v is not None else None,
                         "other": round(other, 3)})
        print("  %-50s %6s  %s%s" % (
            desc, "%.2f" % v if v is not None else "-",
            "not run" if v is None else "met" if ok else "MISSED",
            " (disturbed: others took %.2f of the machine)" % other
            if busy and v is not None else ""))
    one = by.get(("4KB 1/conn", 1, "b"))
    if one:
        ms = 1e3 / one["msgs_per_s"] if one["msgs_per_s"] else None
        ok = ms is not None and ms <= 1.0
        verdicts.append({"target": "4KB 1/conn at 1 session <= 1 ms/msg",
                         "value": ms, "max": 1.0, "met": ok})
        print("  %-50s %6s  %s" % ("4KB 1/conn, 1 session: <= 1 ms per message",
                                    "%.2f" % ms if ms else "-",
                                    "met" if ok else "MISSED"))
    mem = cap = prof = None
    if os.path.exists(os.path.join(OUT, "memory.json")):
        mem = json.load(open(os.path.join(OUT, "memory.json")))
        ok = mem["held"] == mem["sessions"] and mem["kib_per_session"] <= 64
        verdicts.append({"target": "<= 64 KiB RSS per idle relayed session",
                         "value": mem["kib_per_session"], "max": 64, "met": ok})
        print("  %-50s %6.1f  %s" % ("RSS per idle relayed session (KiB) <= 64",
                                      mem["kib_per_session"],
                                      "met" if ok else "MISSED"))
    if os.path.exists(os.path.join(OUT, "capacity.json")):
        cap = json.load(open(os.path.join(OUT, "capacity.json")))
        full = cap.get("requested", cap["sessions"]) == cap["sessions"]
        verdicts.append({"target": "10,000 sessions held without error",
                         "value": cap["held"], "met": cap["ok"] and full,
                         "note": "" if full else "open-files hard limit %d "
                         "fits %d sessions" % (cap.get("nofile_limit", 0),
                                               cap["sessions"])})
        print("  %-50s %6d  %s" % ("%d sessions held without error" %
                                    cap["sessions"], cap["held"],
                                    ("met" if cap["ok"] else "MISSED") +
                                    ("" if full else " (asked %d; open-files "
                                     "limit %d)" % (cap["requested"],
                                                    cap["nofile_limit"]))))
    if os.path.exists(os.path.join(OUT, "profile.json")):
        prof = json.load(open(os.path.join(OUT, "profile.json")))
        for p in prof:
            if p["tag"] == "4k-c100":
                v = p["groups"]["mxguard"]
                verdicts.append({"target": "mxguard own code < 20% of cycles "
                                 "at 100 sessions", "value": v, "max": 20,
                                 "met": v < 20})
                print("  %-50s %5.1f%%  %s" % (
                    "mxguard own code < 20% of its cycles (100 sess)", v,
                    "met" if v < 20 else "MISSED"))
        for p in prof:
            print("  profile %-8s %s" % (p["tag"], "  ".join(
                "%s %.1f%%" % kv for kv in p["groups"].items())))
            inc = sorted(p.get("inclusive", {}).items(), key=lambda kv: -kv[1])
            if inc:
                print("    inclusive: %s" % "  ".join(
                    "%s %.1f%%" % kv for kv in inc[:12]))
    wrk = workers_report()
    steer = steering_report()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "mxguard": E.get("MXGUARD"), "commit": E.get("MXGUARD_COMMIT"),
            "kernel": os.uname().release, "ncpu": os.cpu_count(),
            "quick": QUICK}
    print("  run: %s" % json.dumps(meta))
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"meta": meta, "runs": rows, "ratios": {"%s|%d" % k: v for k, v in
                                            ratios.items()},
                   "memory": mem, "capacity": cap, "profile": prof,
                   "workers": wrk, "steering": steer,
                   "targets": verdicts}, f, indent=1)
    plot(rows)


def summary(by):
    """Markdown table: direct, stunnel, mxguard reuse on and off per cell,
    msg/s and ratios (docs/performance.md)."""
    def v(k, p):
        r = by.get(k + (p,))
        return r["msgs_per_s"] if r else None

    def ratio(x, y):
        return "%.2f" % (x / y) if x and y else "-"

    def n(x):
        return "{:,.0f}".format(x) if x is not None else "-"
    cells = sorted(set(k[:2] for k in by), key=lambda k: (
        [m[0] for m in MATRIX].index(k[0]) if k[0] in [m[0] for m in MATRIX]
        else 99, k[1]))
    print()
    print("| workload | sessions | direct (a) | stunnel (c) | mxguard reuse on "
          "(b) | mxguard reuse off (d) | b/a | b/c | d/a | d/c |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k in cells:
        a, b, c, d = (v(k, p) for p in "abcd")
        print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            k[0], k[1], n(a), n(c), n(b), n(d), ratio(b, a), ratio(b, c),
            ratio(d, a), ratio(d, c)))


def plot(rows):
    if not shutil.which("gnuplot") or not rows:
        return
    dat = os.path.join(OUT, "plot.dat")
    wls = []
    with open(dat, "w") as f:
        for wl in dict.fromkeys(r["workload"] for r in rows):
            wls.append(wl)
            f.write("# %s\n" % wl)
            for conc in sorted(set(r["concurrency"] for r in rows
                                   if r["workload"] == wl)):
                v = {r["path"]: r["msgs_per_s"] for r in rows
                     if r["workload"] == wl and r["concurrency"] == conc}
                f.write("%d %s %s %s %s\n" % (conc, v.get("a", 0),
                                               v.get("b", 0), v.get("c", 0),
                                               v.get("d", 0)))
            f.write("\n\n")
    gp = ["set terminal pngcairo size 1500,450" if "pngcairo" in
          subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True,
                         text=True).stderr else "set terminal png size 1500,450",
          "set output '%s'" % os.path.join(OUT, "throughput.png"),
          "set multiplot layout 1,%d" % len(wls), "set logscale x",
          "set xlabel 'concurrent sessions'", "set ylabel 'messages/s'",
          "set key top left", "set yrange [0:*]"]
    for i, wl in enumerate(wls):
        gp.append("set title '%s'" % wl)
        gp.append("plot '%s' index %d using 1:2 w lp t 'a direct', '' index %d "
                  "using 1:3 w lp t 'b mxguard', '' index %d using 1:4 w lp "
                  "t 'c stunnel', '' index %d using 1:5 w lp t 'd mxguard, "
                  "reuse off'" % (dat, i, i, i, i))
    subprocess.run(["gnuplot"], input="\n".join(gp), text=True,
                   capture_output=True)


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    cmd = args[0]
    if cmd in ("throughput", "profile"):
        for c in args:
            if c == "throughput" and "throughput" not in SKIP:
                throughput()
            elif c == "profile" and "profile" not in SKIP:
                profile()
    elif cmd == "memory":
        memory(int(args[1]))
    elif cmd == "capacity":
        capacity(int(args[1]))
    elif cmd == "workers":
        workers_run(int(args[1]))
    elif cmd == "steering":
        steering_run(args[1], int(args[2]))
    elif cmd == "report":
        report()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
