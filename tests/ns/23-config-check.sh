#!/bin/bash
# 23: `mxguard -n` checks a configuration and exits: the built-in defaults
# and the shipped example pass; unknown keys and bad values are errors
# with FILE:LINE; bad overrides and unreadable certificates are caught too,
# and what the policy engine refuses as the daemon makes it at start;
# every key is documented in docs/configuration.md and mxguard.conf(5),
# with the binary's default. (No namespace needed: it only runs the
# binary.)
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
T=$(mktemp -d /tmp/mxg-cfg.XXXXXX)
trap 'rm -rf "$T"' EXIT

check() {	# EXPECTED-RC REGEX-OF-STDERR CONFIG-TEXT
	printf '%b' "$3" >"$T/c.conf"
	out=$("$MXGUARD" -n -c "$T/c.conf" 2>&1); rc=$?
	[ "$rc" = "$1" ] || fail "rc $rc (want $1) for: $3 -> $out"
	[[ "$out" =~ $2 ]] || fail "message \"$out\" does not match /$2/"
	log "ok: $(printf '%b' "$3" | tail -1) -> ${out:-accepted}"
}

"$MXGUARD" -n -c /dev/null || fail "empty file (all defaults) refused"
"$MXGUARD" -n -c docs/mxguard.conf.example || fail "shipped example refused"
# -n runs no command: one after it was ignored, and the exit 0 read as
# that command's success ("mxguard -n rules remove")
"$MXGUARD" -n -c /dev/null run || fail "-n run (the default command) refused"
for c in check "rules remove" "policy example.com"; do
	out=$("$MXGUARD" -n -c /dev/null $c 2>&1); rc=$?
	[ "$rc" = 2 ] || fail "-n $c: rc $rc (want 2): $out"
	[[ "$out" =~ "runs no command" ]] || fail "-n $c: \"$out\""
done
log "ok: -n refuses a command after it"
check 1 "c.conf:3: unknown key \"listne\"" "# comment\n\nlistne = 1.2.3.4:25\n"
check 1 "c.conf:1: fail_mode: value is not one of" "fail_mode = sometimes\n"
check 1 "c.conf:2: command_timeout: not a duration" "user =\ncommand_timeout = soon\n"
check 1 "c.conf:1: expected \"key = value\"" "listen 1.2.3.4:25\n"
check 1 "tls_policy.*unknown level" "tls_policy = example.com bogus\n"
check 1 "loading tls_cert_file" "tls_cert_file = $T/none.pem\ntls_key_file = $T/none.key\n"
check 1 "bypass_dst: \"10.0.0.0/33\" is not an address or prefix" "bypass_dst = 192.0.2.0/24 10.0.0.0/33\n"
# what the daemon refuses at start when it makes its policy engine: a
# resolver address c-ares cannot take, a Redis TLS CA file that is not
# there (-n passed both)
check 1 "dns_servers: notanaddress" "user =\ndns_servers = notanaddress\n"
check 1 "redis_tls_ca_file" "user =\nredis_address = 127.0.0.1:6379\nredis_tls = yes\nredis_tls_ca_file = $T/none.pem\n"
check 0 "^$" "tls_policy = example.com secure\ntls_policy = .example.org verify\nlog_level = debug\n"
# a listen or metrics_listen address the listeners cannot read: the
# start failed on it after the rules were in (-n passed both)
check 1 "listen: \"localhost:10025\" is not ADDR:PORT" "listen = localhost:10025\n"
check 1 "metrics_listen: \"localhost:9125\" is not ADDR:PORT" "metrics_listen = localhost:9125\n"
"$MXGUARD" -n -v -c /dev/null | grep -qx "upstream_mark = 0x4d58" || fail "-v does not print the effective configuration"
# gateway mode without bypass_interfaces: -n -v says what the rules take
# (stderr to a file: grep -q would close a pipe early, and pipefail)
printf 'rules_mode = gateway\n' >"$T/gw.conf"
"$MXGUARD" -n -v -c "$T/gw.conf" >/dev/null 2>"$T/gw.err" || fail "-n -v: gateway refused"
grep -q "WARNING: bypass_interfaces is empty" "$T/gw.err" ||
	fail "-n -v: no warning for a gateway without bypass_interfaces"
printf 'rules_mode = gateway\nbypass_interfaces = wan0\n' >"$T/gw.conf"
"$MXGUARD" -n -v -c "$T/gw.conf" >/dev/null 2>"$T/gw.err" || fail "-n -v: gateway refused"
! grep -q "bypass_interfaces is empty" "$T/gw.err" ||
	fail "-n -v: the warning with bypass_interfaces set"
# each warning once: the overrides' (loaded once, by the policy engine
# as at start) and a bypass entry's host bits (a load warning, which -v's
# rules line does not repeat)
printf 'user =\ntls_policy = example.org dane\nbypass_dst = 203.0.113.7/3\n' >"$T/once.conf"
"$MXGUARD" -n -v -c "$T/once.conf" >/dev/null 2>"$T/once.err" || fail "-n -v: once.conf refused: $(cat "$T/once.err")"
for w in "tls_policy 'dane' means" "203.0.113.7/3 has host bits set"; do
	n=$(grep -c "$w" "$T/once.err")
	[ "$n" = 1 ] || fail "-n -v says \"$w\" $n times (want 1): $(cat "$T/once.err")"
done
log "ok: each warning said once"
# every key the binary knows is documented, in both places (a -n -v that
# failed gave no key, and the loop checked none)
"$MXGUARD" -n -v -c /dev/null >"$T/keys.out" 2>"$T/keys.err" ||
	fail "-n -v -c /dev/null: $(head -c 300 "$T/keys.err")"
keys=$(awk '{ print $1 }' "$T/keys.out" | sort -u)
[ "$(wc -w <<<"$keys")" -ge 20 ] || fail "-n -v -c /dev/null listed only: $keys"
for k in $keys; do
	grep -q "\`$k\`" docs/configuration.md || fail "key $k missing from docs/configuration.md"
	grep -q "fB$k\\\\fP" docs/mxguard.conf.5 || fail "key $k missing from mxguard.conf(5)"
done
# and with the default the binary has: each document's defaults, written
# as a file, load to what no file loads to (a default changed in
# core/config.c and not in the docs, or the other way round, differs)
python3 - "$T" <<'PY' || fail "could not read the defaults of the docs"
import re, sys
t = sys.argv[1]
def out(name, pairs):
    with open(f"{t}/{name}.conf", "w") as f:
        for k, v in pairs:
            v = v.strip()
            f.write(f"{k} = {'' if v in ('empty', 'none') else v}\n")
md, man = [], []
for line in open("docs/configuration.md"):
    m = re.match(r"^\| ((?:`\w+`(?:, )?)+) \| ([^|]*) \|", line)
    if m:
        for k in re.findall(r"`(\w+)`", m.group(1)):
            md.append((k, m.group(2).replace("`", "")))
for line in open("docs/mxguard.conf.5"):
    m = re.match(r"^((?:\\fB\w+\\fP[^(]*?)+)\(default: ([^)]*)\)", line)
    if m:
        v = re.sub(r"\\f[BIRP]", "", m.group(2)).replace("\\-", "-")
        for k in re.findall(r"\\fB(\w+)\\fP", m.group(1)):
            man.append((k, v))
if len(md) < 20 or len(man) < 20:
    sys.exit(1)
out("md", md)
out("man", man)
PY
"$MXGUARD" -n -v -c /dev/null 2>/dev/null >"$T/def.out" || fail "-n -v -c /dev/null"
for d in md man; do
	"$MXGUARD" -n -v -c "$T/$d.conf" 2>"$T/$d.err" >"$T/$d.out" ||
		fail "the defaults of $d do not load: $(head -c 300 "$T/$d.err")"
	diff "$T/def.out" "$T/$d.out" >&2 ||
		fail "a default in the docs ($d) is not the binary's (diff above: < binary, > docs)"
done
pass "configuration check"
