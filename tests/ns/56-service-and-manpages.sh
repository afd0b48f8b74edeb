#!/bin/bash
# 56: the deployable pieces.  systemd-analyze verify passes on the units
# (mxguard.service and the early mxguard-rules.service)
# (a copy whose ExecStart paths name the built binary, with the man pages
# of Documentation= on MANPATH); the unit keeps the hardening the issue
# asks for; mxguard(8) and mxguard.conf(5) render with `man -l` without a
# warning; the example configuration is accepted by `mxguard -n`; the
# sysusers and tmpfiles entries parse; the log's warnings and errors are
# documented, and the events the docs name exist; so are the metric
# families, both ways.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/mxg-$$.XXXXXX)
trap 'rm -rf "$T"' EXIT
unit=$ROOT/systemd/mxguard.service

mkdir -p "$T/man/man8" "$T/man/man5" "$T/unit"
cp "$ROOT/docs/mxguard.8" "$T/man/man8/"
cp "$ROOT/docs/mxguard.conf.5" "$T/man/man5/"
sed "s|/usr/local/sbin/mxguard|$MXGUARD|g" "$unit" >"$T/unit/mxguard.service"
sed "s|/usr/local/sbin/mxguard|$MXGUARD|g" "$ROOT/systemd/mxguard-rules.service" \
	>"$T/unit/mxguard-rules.service"
sed "s|/usr/local/sbin/mxguard|$MXGUARD|g" "$ROOT/systemd/mxguard-rules-watch.service" \
	>"$T/unit/mxguard-rules-watch.service"
MANPATH=$T/man systemd-analyze verify "$T/unit/mxguard.service" \
	"$T/unit/mxguard-rules.service" "$T/unit/mxguard-rules-watch.service" \
	>"$T/verify.out" 2>&1
rc=$?
cat "$T/verify.out" >&2
assert "systemd-analyze verify passes" [ $rc = 0 ]
assert "systemd-analyze verify says nothing" [ ! -s "$T/verify.out" ]
for k in "Type=notify" "WatchdogSec=" "ProtectSystem=strict" "PrivateTmp=yes" \
	"NoNewPrivileges=yes" "CapabilityBoundingSet=" "SystemCallFilter=@system-service" \
	"Restart=on-failure" "StartLimitIntervalSec=0" \
	"ExecStartPre=+/usr/local/sbin/mxguard -c /etc/mxguard/mxguard.conf rules install" \
	"ExecStopPost=+/usr/local/sbin/mxguard -c /etc/mxguard/mxguard.conf rules stop"; do
	assert "unit has $k" grep -qF -- "$k" "$unit"
done
# the early unit: before the network, and pulled in by the main one
for k in "DefaultDependencies=no" "Before=network-pre.target mxguard.service" \
	"ExecStart=/usr/local/sbin/mxguard -c /etc/mxguard/mxguard.conf rules boot"; do
	assert "mxguard-rules.service has $k" grep -qF -- "$k" "$ROOT/systemd/mxguard-rules.service"
done
# ... and after the host's firewall units, which run before network-pre
# too and replace the whole ruleset (nftables.conf's `flush ruleset` takes
# the iptables-nft tables as well): unordered, they could take the early
# rules away at boot; a restart or reload of nftables.service installs them
# again
for k in "After=nftables.service netfilter-persistent.service" \
	"PartOf=nftables.service netfilter-persistent.service" \
	"ReloadPropagatedFrom=nftables.service" \
	"ExecReload=/usr/local/sbin/mxguard -c /etc/mxguard/mxguard.conf rules boot"; do
	assert "mxguard-rules.service has $k" grep -qF -- "$k" "$ROOT/systemd/mxguard-rules.service"
done
assert "mxguard.service wants and enables mxguard-rules.service" bash -c \
	"grep -q '^Wants=.*mxguard-rules.service' '$unit' && grep -q '^After=.*mxguard-rules.service' '$unit' && grep -q '^Also=mxguard-rules.service' '$unit'"
# the watch that puts the rules back while the daemon runs: enabled with
# it, started and stopped with it, restarted if it dies (`rules watch`:
# ns 102)
assert "mxguard.service enables mxguard-rules-watch.service" \
	grep -q '^Also=.*mxguard-rules-watch.service' "$unit"
for k in "PartOf=mxguard.service" "WantedBy=mxguard.service" \
	"Requisite=mxguard.service" "Restart=always" \
	"ExecStart=/usr/local/sbin/mxguard -c /etc/mxguard/mxguard.conf rules watch"; do
	assert "mxguard-rules-watch.service has $k" grep -qF -- "$k" "$ROOT/systemd/mxguard-rules-watch.service"
done
assert "RestrictAddressFamilies includes AF_NETLINK AF_UNIX AF_INET AF_INET6" \
	bash -c "grep '^RestrictAddressFamilies=' '$unit' | grep -q AF_NETLINK && grep '^RestrictAddressFamilies=' '$unit' | grep -q AF_UNIX && grep '^RestrictAddressFamilies=' '$unit' | grep -q 'AF_INET ' && grep '^RestrictAddressFamilies=' '$unit' | grep -q AF_INET6"
assert "the unit's security score is computed (systemd-analyze security)" \
	bash -c "systemd-analyze security --offline=yes '$T/unit/mxguard.service' >'$T/sec.out' 2>&1 || true; grep -q 'Overall exposure level' '$T/sec.out'"
grep 'Overall exposure' "$T/sec.out" >&2

for p in mxguard.8 mxguard.conf.5; do
	MANWIDTH=80 man --warnings -l "$ROOT/docs/$p" >"$T/$p.txt" 2>"$T/$p.err"
	cat "$T/$p.err" >&2
	assert "man -l $p renders" [ -s "$T/$p.txt" ]
	assert "man -l $p: no warnings" [ ! -s "$T/$p.err" ]
done
missing=""
# (a -n -v that failed gave no key, and the loop checked none)
"$MXGUARD" -n -v >"$T/keys.out" 2>"$T/keys.err" || fail "mxguard -n -v: $(head -c 300 "$T/keys.err")"
keys=$(sed -E 's/ =.*//' "$T/keys.out" | sort -u)
assert "mxguard -n -v lists the keys ($(wc -w <<<"$keys"))" [ "$(wc -w <<<"$keys")" -ge 20 ]
for k in $keys; do
	grep -qF -- "\\fB$k\\fP" "$ROOT/docs/mxguard.conf.5" || missing+=" $k"
done
assert "mxguard.conf(5) documents every key of mxguard -n -v (missing:${missing:- none})" [ -z "$missing" ]
assert "docs/mxguard.conf.example is accepted" "$MXGUARD" -n -c "$ROOT/docs/mxguard.conf.example"
mkdir -p "$T/root/etc"
assert "sysusers entry creates the mxguard user (in a scratch root)" \
	systemd-sysusers --root="$T/root" "$ROOT/systemd/mxguard.sysusers"
assert "tmpfiles entries create the state and runtime directories" \
	systemd-tmpfiles --root="$T/root" --create "$ROOT/systemd/mxguard.tmpfiles"
assert "state directory 0750 owned by mxguard" \
	[ "$(stat -c '%a %u' "$T/root/var/lib/mxguard" 2>/dev/null)" = "750 $(awk -F: '$1 == "mxguard" {print $3}' "$T/root/etc/passwd")" ]
# root's, as cmd/control.c's make_parent() and systemd's RuntimeDirectory=
# make it: a directory `user` owned would let a compromised worker put its
# own listener at control_socket, which then answers `mxguard status` and
# `rules watch` (its digest decides whether the rules go back in)
assert "runtime directory 0755 owned by root" \
	[ "$(stat -c '%a %u' "$T/root/run/mxguard" 2>/dev/null)" = "755 0" ]
# every warning and error the daemon and the commands can log is named in
# the docs (event=NAME, or `NAME` as monitoring.md's table and lists
# write it), and every event=NAME the docs name is one the code logs
assert "log events and docs agree (see above)" python3 - "$ROOT" <<'PY'
import glob, os, re, sys
root = sys.argv[1]
code, warn = "", set()
for f in glob.glob(f"{root}/*/*.c") + glob.glob(f"{root}/*/*.h"):
    if "/tests/" in f:
        continue
    s = open(f).read()
    code += s
    for m in re.finditer(r'log_(err|warn|msg)\((\s*[^"]*?"[^"]*?)event=([a-z0-9-]+)', s):
        warn.add(m.group(3))
docs = ""
for f in glob.glob(f"{root}/docs/*.md") + glob.glob(f"{root}/docs/mxguard*.[58]") + [f"{root}/README.md"]:
    docs += open(f).read().replace("\\-", "-")
named = set(re.findall(r"event=([a-z0-9-]*[a-z0-9])", docs)) | set(re.findall(r"`([a-z0-9-]+)[` ]", docs))
inc = set(re.findall(r"event=([a-z0-9-]*[a-z0-9])", code)) | set(re.findall(r'"([a-z0-9-]+)"', code))
bad = sorted(f"undocumented: {n}" for n in warn - named)
bad += sorted(f"not in the code: {n}" for n in set(re.findall(r"event=([a-z0-9-]*[a-z0-9])", docs)) - inc)
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad or len(warn) < 50 else 0)
PY
# every metric family the code names is in docs/monitoring.md's table, and
# every family the table names is the code's (a name the code builds
# from a prefix, "mxguard_tlsrpt_reports_%s_total", matches that prefix)
assert "metric families and docs/monitoring.md agree (see above)" python3 - "$ROOT" <<'PY'
import glob, re, sys
root = sys.argv[1]
code = ""
for f in glob.glob(f"{root}/*/*.c"):
    code += open(f).read()
names = set(re.findall(r'"(mxguard_[a-z0-9_]*)', code))
full = {n for n in names if not n.endswith("_")}
prefixes = {n for n in names if n.endswith("_")}
table = set()
for line in open(f"{root}/docs/monitoring.md"):
    if line.startswith("| `mxguard_"):
        table |= set(re.findall(r"`(mxguard_[a-z0-9_]+)`", line.split("|")[1]))
bad = sorted(f"not in docs/monitoring.md: {n}" for n in full - table)
bad += sorted(f"not in the code: {n}" for n in table - full
    if not any(n.startswith(p) for p in prefixes))
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad or len(full) < 40 else 0)
PY
pass "unit verifies, man pages render"
