#!/bin/bash
# 136: a set of mxguard's shape that diverts elsewhere than the daemon
# listens (an older configuration's: an iptables-persistent file saved
# under another divert_port and restored by a firewall's reload), local
# mode, NFQUEUE steering, the daemon running the file.  An unprivileged
# local user listens on the port that set redirects to (above
# ip_unprivileged_port_start, which anyone may bind).  `rules ensure`
# (what `rules watch` runs at every ruleset change) must not take that
# set for the file's: it installs the file's set again, says what was
# wrong, and the MTA's next connection reaches mxguard, not the user.
# Red before: the rules were counted (as many in each chain), ensure said
# nothing and exited 0, and the MTA read the user's "220 not-mxguard".
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
tls_world
nfq_start "fail_mode = closed"
OTHER=$((MXG_PORT + 1))

# the older configuration's set, as a restore of a saved file puts it in
for v in "" 6; do
	in_snd ip${v}tables-save | sed "s/--to-ports $MXG_PORT\$/--to-ports $OTHER/" |
		in_snd ip${v}tables-restore || fail "ip${v}tables-restore"
done
assert "the set in place redirects to $OTHER" \
	bash -c "ip netns exec $SND iptables-save -t nat | grep -q -- '--to-ports $OTHER'"

bg "$SND" "$T/user.log" python3 "$LIBDIR/portthief.py" 127.0.0.1 "$OTHER"
USER_PID=$BG_PID
wait_for 10 "the local user's listener" grep -q '^bound' "$T/user.log"

mxg_ctl rules ensure 2>"$T/ensure.err"
log "rules ensure: $(tr '\n' ' ' <"$T/ensure.err")"
in_snd python3 "$LIBDIR/mtaprobe.py" "$SND_IP" 40361 10.25.1.10 25 5 >"$T/mta.out" 2>&1
log "the MTA read \"$(tr '\n' ' ' <"$T/mta.out")\", the local user's listener: \"$(tr '\n' ' ' <"$T/user.log")\""
assert "the local user's listener saw no one" \
	[ "$(grep -vc '^bound' "$T/user.log")" = 0 ]
assert "the MTA read nothing of it" lacks "not-mxguard" cat "$T/mta.out"
assert "the MTA reached mxguard (the MX's greeting relayed)" grep -q '^line 220' "$T/mta.out"
assert "ensure said what was wrong and put the file's set back" \
	grep -q "were incomplete (IPv4 nat table: MXGUARD_DIVERT has other --to-ports values than the configuration's.*installed again" "$T/ensure.err"
assert "the file's set is back (IPv4)" \
	bash -c "ip netns exec $SND iptables-save -t nat | grep -q -- '--to-ports $MXG_PORT\$'"
assert "the file's set is back (IPv6)" \
	bash -c "ip netns exec $SND ip6tables-save -t nat | grep -q -- '--to-ports $MXG_PORT\$'"
mxg_ctl rules ensure 2>"$T/ensure2.err" || fail "second ensure"
assert "whole now: a second ensure says nothing" [ ! -s "$T/ensure2.err" ]
kill "$USER_PID"
wait "$USER_PID" 2>/dev/null
pass "a set that redirects elsewhere is not the file's: ensure puts the file's back, no flow reaches a local user's listener"
