#!/bin/bash
# Runs the namespace integration scenarios tests/ns/*.sh (optionally only
# those whose name contains PATTERN), each as a separate bash process with a
# timeout.  Prints "ok|FAIL name (seconds)" per scenario and a final line
# "ns: N passed, N failed"; exits non-zero if any failed.
#
#   MXGUARD=/path/to/mxguard bash tests/run-ns.sh [PATTERN]
#   (make check-ns [NS=PATTERN] sets MXGUARD)
# Environment: NS_TIMEOUT (seconds per scenario, default 90), NS_VERBOSE=1
# (show every scenario's output, not only failures' output), MXG_KEEP=1
# (keep temp dirs), MXG_BASELINE=1 (run without mxguard: harness self-test).
cd "$(dirname "$0")/.." || exit 2
pattern=${1:-}
timeout_s=${NS_TIMEOUT:-90}

if [ "$(id -u)" != 0 ]; then echo "run-ns: needs root (network namespaces)" >&2; exit 2; fi
if [ "${MXG_BASELINE:-0}" != 1 ]; then
	if [ -z "${MXGUARD:-}" ] || [ ! -x "$MXGUARD" ]; then
		echo "run-ns: MXGUARD must name the mxguard binary (make check-ns sets it)" >&2
		echo "ns: 0 passed, 1 failed"
		exit 2
	fi
	export MXGUARD
fi

pass=0; failn=0; failed=()
outdir=$(mktemp -d /tmp/mxg-run-ns.XXXXXX)
for t in tests/ns/*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	if [ -n "$pattern" ] && [[ "$name" != *"$pattern"* ]]; then continue; fi
	start=$EPOCHREALTIME
	timeout -k 10 "$timeout_s" bash "$t" >"$outdir/$name.out" 2>&1
	rc=$?
	secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	if [ "$rc" = 0 ]; then
		pass=$((pass + 1))
		echo "ok   $name (${secs}s)"
		[ "${NS_VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$outdir/$name.out"
	else
		failn=$((failn + 1)); failed+=("$name")
		[ "$rc" = 124 ] && why=" timeout after ${timeout_s}s" || why=""
		echo "FAIL $name (${secs}s)$why"
		sed 's/^/    /' "$outdir/$name.out"
	fi
done
rm -rf "$outdir"
[ "$failn" -gt 0 ] && echo "failed: ${failed[*]}"
echo "ns: $pass passed, $failn failed"
[ "$failn" -eq 0 ]
