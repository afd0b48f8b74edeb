#!/bin/bash
# Runs the namespace integration scenarios tests/ns/*.sh (optionally only
# those whose name contains PATTERN), each as a separate bash process with a
# timeout.  Prints "ok|FAIL|skip name (seconds)" per scenario (failures
# with the scenario's output) and a final line "ns: N passed, N failed,
# N skipped"; exits non-zero if any failed, or if PATTERN matched none (a
# mistyped pattern is no pass).  A scenario that cannot apply (MXG_BASELINE
# and it needs mxguard) exits 77 and is counted as skipped, not passed.
#
#   MXGUARD=/path/to/mxguard bash tests/run-ns.sh [PATTERN]
#   (make check-ns [NS=PATTERN] sets MXGUARD)
# Environment:
#   NS_EXCLUDE=RE    leave out the scenarios whose name matches RE (an
#                    extended regex; said on the last line)
#   NS_TIMEOUT=90    seconds per scenario
#   NS_JOBS=1        scenarios run at once (each has its own namespaces, temp
#                    dir and mxguard, so parallel runs do not collide; timing
#                    sensitive scenarios are more reliable with 1)
#   NS_VERBOSE=1     show every scenario's output, not only failures'
#   MXG_KEEP=1       keep the scenarios' temp dirs (/tmp/mxg-PID.*)
#   MXG_BASELINE=1   run without mxguard (plain Postfix-to-Postfix: harness
#                    self-test; scenarios that need mxguard are skipped)
cd "$(dirname "$0")/.." || exit 2
pattern=${1:-}
timeout_s=${NS_TIMEOUT:-180}
jobs_max=${NS_JOBS:-1}

if [ "$(id -u)" != 0 ]; then echo "run-ns: needs root (network namespaces)" >&2; exit 2; fi
if [ "${MXG_BASELINE:-0}" != 1 ]; then
	if [ -z "${MXGUARD:-}" ] || [ ! -x "$MXGUARD" ]; then
		echo "run-ns: MXGUARD must name the mxguard binary (make check-ns sets it)" >&2
		echo "ns: 0 passed, 1 failed"
		exit 2
	fi
	export MXGUARD
fi

outdir=$(mktemp -d /tmp/mxg-run-ns.XXXXXX)
trap 'rm -rf "$outdir"' EXIT

run_one() {	# runs in the background: writes $outdir/NAME.{out,rc,secs}
	local t=$1 name=$2 start rc
	start=$EPOCHREALTIME
	# -k: after the timeout's TERM, the scenario's EXIT trap must get
	# to its end before the KILL: it waits up to 15 s for mxguard, then
	# stops Postfix (a daemon in its own session, which the KILL to the
	# group would not reach) and removes the namespaces.  Cut short,
	# it left all of them behind.
	timeout -k 60 "$timeout_s" bash "$t" >"$outdir/$name.out" 2>&1
	rc=$?
	awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }' >"$outdir/$name.secs"
	echo "$rc" >"$outdir/$name.rc"
}

report() {	# NAME: print the result line (and output) of a finished scenario
	local name=$1 rc secs why=""
	rc=$(cat "$outdir/$name.rc"); secs=$(cat "$outdir/$name.secs")
	if [ "$rc" = 77 ]; then
		skipn=$((skipn + 1))
		echo "skip $name (${secs}s)"
		[ "${NS_VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$outdir/$name.out"
	elif [ "$rc" = 0 ]; then
		pass=$((pass + 1))
		echo "ok   $name (${secs}s)"
		[ "${NS_VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$outdir/$name.out"
	else
		failn=$((failn + 1)); failed+=("$name")
		[ "$rc" = 124 ] && why=" timeout after ${timeout_s}s"
		echo "FAIL $name (${secs}s)$why"
		sed 's/^/    /' "$outdir/$name.out"
	fi
	return 0
}

pass=0; failn=0; skipn=0; failed=(); names=()
for t in tests/ns/*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	# PATTERN is an extended regex on the scenario name ("^1", "dane")
	if [ -n "$pattern" ] && ! [[ "$name" =~ $pattern ]]; then continue; fi
	if [ -n "${NS_EXCLUDE:-}" ] && [[ "$name" =~ $NS_EXCLUDE ]]; then
		excluded+=("$name")
		continue
	fi
	names+=("$name")
	if [ "$jobs_max" -le 1 ]; then
		run_one "$t" "$name"
		report "$name"
	else
		while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
		run_one "$t" "$name" &
	fi
done
if [ "$jobs_max" -gt 1 ]; then
	wait
	for name in "${names[@]}"; do report "$name"; done
fi
if [ "${#names[@]}" = 0 ]; then
	echo "run-ns: no scenario matches '$pattern'" >&2
	failn=1
fi
[ "${#failed[@]}" -gt 0 ] && echo "failed: ${failed[*]}"
[ "${#excluded[@]}" -gt 0 ] && echo "left out by NS_EXCLUDE: ${excluded[*]}"
echo "ns: $pass passed, $failn failed, $skipn skipped"
[ "$failn" -eq 0 ]
