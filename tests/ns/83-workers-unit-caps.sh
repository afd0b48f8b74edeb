#!/bin/bash
# 83: workers = 2 under the capability bounding set of the shipped unit
# (systemd/mxguard.service, CapabilityBoundingSet, read from the file) and
# with user = nobody, as the service runs them.  The supervisor stays root
# with only those capabilities; the workers drop to nobody.  A message
# goes through; SIGHUP reaches both workers (each logs event=reloaded) and
# SIGTERM drains them (each exits 0, then the supervisor): a root without
# CAP_KILL cannot signal processes of another user.  (Before: the unit
# lacked CAP_KILL, every kill() to a worker failed unnoticed, the reload
# applied to nobody and the drain waited for systemd's timeout.)
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
command -v setpriv >/dev/null || fail "setpriv not installed (util-linux)"
ns_setup
tls_world

UNIT=$LIBDIR/../../systemd/mxguard.service
caps=$(sed -nE 's/^CapabilityBoundingSet=//p' "$UNIT")
[ -n "$caps" ] || fail "no CapabilityBoundingSet in $UNIT"
bset=-all
for c in $caps; do
	c=${c#CAP_}
	bset+=",+${c,,}"
done
log "the unit's bounding set: $bset"
REAL=$MXGUARD
MXGUARD=$T/mxguard-unit-caps
printf '#!/bin/sh\nexec setpriv --bounding-set=%s %s "$@"\n' "$bset" "$REAL" >"$MXGUARD"
chmod 755 "$MXGUARD"
mxg_start "workers = 2
user = nobody
drain_timeout = 20s"

wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
P0=$(wpid 0); P1=$(wpid 1)
[ -n "$P0" ] && [ -n "$P1" ] || fail "two workers expected"
assert "the supervisor has the unit's bounding set only" \
	[ "$(grep -E '^CapBnd:' "/proc/$MXG_PID/status" | awk '{print $2}')" = "$(setpriv --bounding-set="$bset" grep -E '^CapBnd:' /proc/self/status | awk '{print $2}')" ]
assert "worker 0 runs as nobody" [ "$(stat -c %U "/proc/$P0")" = nobody ]
assert "worker 1 runs as nobody" [ "$(stat -c %U "/proc/$P1")" = nobody ]
# a worker keeps CAP_NET_RAW alone (SO_MARK): a compromised one cannot
# rewrite the rules that steer the flows (before: CAP_NET_ADMIN)
for p in "$P0" "$P1"; do
	assert "worker $p: only CAP_NET_RAW effective, permitted and bounding" \
		bash -c "grep -qE '^CapEff:\s+0000000000002000$' /proc/$p/status && grep -qE '^CapPrm:\s+0000000000002000$' /proc/$p/status && grep -qE '^CapBnd:\s+0000000000002000$' /proc/$p/status"
done
assert "each worker logged cap_net_raw" [ "$(mx_count 'event=privileges user=nobody .*caps=cap_net_raw')" -ge 2 ]

new_body "$T/body" 2000
send_mail bob@sender.test alice@tls.test "$T/body" "under the unit's capabilities"
wait_mailbox alice@tls.test 1 60

kill -HUP "$MXG_PID"
wait_log "$MXLOG" "mxguard\[$P0\]: event=reloaded" 20
wait_log "$MXLOG" "mxguard\[$P1\]: event=reloaded" 20
assert "no signal failed" [ "$(mx_count 'event=worker-signal-failed')" = 0 ]

kill -TERM "$MXG_PID"
workers_exit_ok "$P0" "$P1"
pass "under the unit's bounding set, SIGHUP and SIGTERM reach workers running as nobody"
