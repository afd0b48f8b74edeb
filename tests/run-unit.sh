#!/bin/sh
# Runs each cmocka unit test binary given as argument; fails if any fails.
# Prints one summary line "unit: N passed, N failed".
# MXG_TEST (tests/unit/testfilter.c) is for one binary by hand: a whole run
# runs every test.
#
# UNIT_JOBS binaries at a time (default 2: CI has 45 minutes for all of
# `make check`, and most of a binary's time is waits on its own sockets
# and timers, not CPU).  The longest ones start first, so that they do not
# end the run alone; each binary's output is printed whole when it ends.
# UNIT_JOBS=1 runs them one after the other, in the order given.
unset MXG_TEST
jobs=${UNIT_JOBS:-2}
tmp=$(mktemp -d /tmp/mxg-unit.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT

# the longest first (seconds on the 2-core development machine: 77, 32,
# 27, 21, 19, 17, 14), then the others in the order given
long="test_session test_report_run test_policy_engine test_http_throttle
test_check test_redis test_http_post"
order=
for l in $long; do
	for t in "$@"; do
		[ "$(basename "$t")" = "$l" ] && order="$order $t"
	done
done
for t in "$@"; do
	case " $long " in
	*[!a-z_]"$(basename "$t")"[!a-z_]*) ;;
	*) order="$order $t" ;;
	esac
done

# shellcheck disable=SC2016,SC2086
printf '%s\n' $order | xargs -P "$jobs" -n 1 sh -c '
	t=$1; n=$(basename "$t")
	"$t" >"$0/$n.out" 2>&1
	echo $? >"$0/$n.rc"
	flock "$0/print.lock" cat "$0/$n.out"' "$tmp"

pass=0; fail=0
for t in "$@"; do
	n=$(basename "$t")
	if [ "$(cat "$tmp/$n.rc" 2>/dev/null)" = 0 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); echo "FAILED: $t"
	fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
