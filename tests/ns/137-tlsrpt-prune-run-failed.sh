#!/bin/bash
# 137: the TLSRPT store is pruned after a report run that could not start.
# The state directory holds counts for enf.test from 10 days ago (past the
# default tlsrpt_retention of 7) and from yesterday (tests/lib/
# tlsrpt_seed.c), and a directory where the run's lock file goes
# (tlsrpt.run.lock), so that every run fails before it starts
# (event=tlsrpt-run-failed), as one does when the CA file is gone or the
# store cannot be read.  The daemon must drop the old day's counts all the
# same (event=tlsrpt-pruned) and keep yesterday's.  Before, it pruned only
# after a run that started: a store whose runs never started kept every
# day, whatever tlsrpt_retention said, until newcomers met 3/4 of its map.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup

tlsrpt_seed_build
tlsrpt_enf_world 10.25.1.81
mkdir -p "$T/mxstate"
"$T/tlsrpt_seed" "$T/mxstate" enf.test 10 mx1.enf.test 10.25.1.10 ||
	fail "seeding the counts of 10 days ago failed"
"$T/tlsrpt_seed" "$T/mxstate" enf.test 1 mx1.enf.test 10.25.1.10 ||
	fail "seeding yesterday's counts failed"
mkdir "$T/mxstate/tlsrpt.run.lock"

MXG_EXTRA_CONF="$TLSRPT_RUN_CONF"
sts_mxguard_start
wait_log "$MXLOG" "event=tlsrpt-run-failed .*tlsrpt.run.lock" 90
assert "the run's failure is followed by the prune" \
	grep -qE "event=tlsrpt-pruned records=[1-9]" "$MXLOG"
show=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report show enf.test --json 2>/dev/null) ||
	fail "report show failed"
log "report show: $show"
assert "yesterday's counts are kept" \
	grep -qE '"domain": "enf.test", "successful": 1, "failed": 1,' <<<"$show"
assert "the run failed once, nothing was sent" \
	[ "$(count_log "$MXLOG" "event=tlsrpt-run-done")" = 0 ]
pass "TLSRPT: the counts past tlsrpt_retention are pruned after a run that could not start"
