#!/bin/bash
# 114: the rules commands with a configuration file that does not load: a
# local_users user deleted since the install, or a typo after an edit.
# Before, every `rules` command but boot failed on the load: `rules
# remove`, which the documentation gives for taking mxguard out of the
# path, removed nothing; the unit's `rules stop` did nothing (a fail-open
# set stayed); `rules watch` exited at start, and once running stopped
# acting while the file did not load (a flush left every flow direct even
# where the set in place had been fail-closed).  Now remove removes by the
# fixed names (chains MXGUARD_*, table inet mxguard): the ruleset as it
# was before the install, both backends; stop keeps a fail-closed set
# (and says so) and removes a fail-open one; the watch keeps watching,
# says once that the file does not load, and when a flush damages a set
# that refused with no daemon (a chain emptied, or taken whole), puts the
# refusal set in.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup

conf() {	# conf NAME lines...: a config file $T/NAME.conf
	local n=$1; shift
	printf '%s\n' "user =" "state_dir = $T/st" "rules_mode = local" "$@" >"$T/$n.conf"
}
mx() { local n=$1; shift; in_snd "$MXGUARD" -c "$T/$n.conf" "$@"; }
snapshot() { ipt_snapshot; in_snd nft list ruleset; }
fails() { ! "$@" 2>/dev/null; }

for be in iptables nftables; do
	extra=()
	[ "$be" = nftables ] && extra=("rules_backend = nftables" "steering = none")
	conf closed "${extra[@]}" "fail_mode = closed" "local_users = nobody"
	conf open "${extra[@]}" "fail_mode = open" "local_users = nobody"
	conf gone "${extra[@]}" "fail_mode = closed" "local_users = mxg-no-such-user"
	conf typo "${extra[@]}" "fail_mode = closed" "rules_mode = locl"
	assert "$be: the file naming a user that is gone does not load" fails mx gone -n
	assert "$be: nor the one with a typo" fails mx typo -n
	before=$(snapshot)

	mx closed rules install || fail "$be: install"
	mx gone rules stop 2>"$T/stop.log" || fail "$be: rules stop: $(cat "$T/stop.log")"
	assert "$be: stop with a file that does not load keeps a fail-closed set" \
		mx closed rules show
	assert "$be: and says so" grep -q "they stay installed" "$T/stop.log"
	mx gone rules remove 2>"$T/remove.log" || fail "$be: rules remove: $(cat "$T/remove.log")"
	assert "$be: remove with a file that does not load restores the ruleset" \
		[ "$(snapshot)" = "$before" ]

	mx open rules install || fail "$be: install open"
	mx typo rules stop 2>"$T/stop.log" || fail "$be: rules stop: $(cat "$T/stop.log")"
	assert "$be: stop with a file that does not load removes a fail-open set" \
		[ "$(snapshot)" = "$before" ]
	assert "$be: and says so" grep -q "were fail-open: removed" "$T/stop.log"

	mx closed rules install || fail "$be: install again"
	mx typo rules remove 2>"$T/remove.log" || fail "$be: rules remove: $(cat "$T/remove.log")"
	assert "$be: remove with a typo in the file restores the ruleset" \
		[ "$(snapshot)" = "$before" ]
done

# the watch, iptables: a file that does not load from the start
conf closed "fail_mode = closed" "local_users = nobody"
mx closed rules install || fail "install for the watch"
bg "$SND" "$T/watch.log" "$MXGUARD" -c "$T/gone.conf" rules watch
watch_pid=$BG_PID
wait_log "$T/watch.log" "does not load .*kept as they are"
in_snd iptables -F MXGUARD_GUARD
refusal() { ipt_snapshot | grep -q -- "-A MXGUARD_GUARD -p tcp -j REJECT --reject-with tcp-reset"; }
wait_for 10 "the watch to put the refusal set in" refusal
wait_log "$T/watch.log" "were damaged while the set in place refused with no daemon.*installed the refusal set"
assert "the state said once" [ "$(count_log "$T/watch.log" "does not load")" = 2 ]
assert "the watch runs on" kill -0 "$watch_pid"
kill "$watch_pid"; wait "$watch_pid" 2>/dev/null
mx gone rules remove 2>/dev/null || fail "remove after the watch"

# a chain taken whole is damage too: the nat table replaced by one without
# MXGUARD_DIVERT (one atomic restore, never seen emptied first) left a
# queueing set that diverts nothing (its guard now drops each flow the
# daemon took: docs/rules.md 6b, ns 127); the watch kept it as it was
mx closed rules install || fail "install for the second watch"
bg "$SND" "$T/watch2.log" "$MXGUARD" -c "$T/gone.conf" rules watch
watch_pid=$BG_PID
wait_log "$T/watch2.log" "does not load .*kept as they are"
printf '*nat\nCOMMIT\n' | in_snd iptables-restore || fail "nat replaced"
wait_for 10 "the watch to put the refusal set in for a chain gone" refusal
wait_log "$T/watch2.log" "were damaged while the set in place refused with no daemon.*installed the refusal set"
kill "$watch_pid"; wait "$watch_pid" 2>/dev/null
mx gone rules remove 2>/dev/null || fail "remove after the second watch"
pass "rules remove, stop and watch with a configuration that does not load"
