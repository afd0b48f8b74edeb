#!/bin/bash
# Long fuzzing (`make fuzz-long`, not part of `make check`):
#   long.sh SECONDS JOBS DIR TARGET...
# Runs each libFuzzer target for SECONDS, JOBS targets at a time, under
# nice -n 19.  DIR/<target>/corpus is the target's working corpus: it is
# kept between runs and grows by merging what each run finds (the seeds
# of tests/fuzz/corpus/<target>/ are read too, never written).  Fork mode
# with -ignore_crashes keeps a target running after a crash, so one
# shallow bug does not end the whole run; each crash's input is kept as
# DIR/<target>/crash-*.  Prints per target the executions, the coverage
# (edges, features), the corpus size and the crashes, also written to
# DIR/summary.txt; exits 1 if any target crashed.
set -u
secs=$1 jobs=$2 dir=$3; shift 3
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# the commit is taken now: the tree may move on while the run goes
commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')

one() {	# TARGET
	local t=$1 name w seeds
	name=$(basename "$t")
	w=$dir/$name
	seeds=$PWD/tests/fuzz/corpus/$name
	mkdir -p "$w/corpus"
	rm -f "$w/log"
	[ -d "$seeds" ] || seeds=
	nice -n 19 "$t" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
	    -ignore_ooms=1 -max_total_time="$secs" -max_len=8192 \
	    -artifact_prefix="$w/" "$w/corpus" $seeds >"$w/log" 2>&1
}

report() {	# TARGET
	local name w last execs cov ft corp crashes c
	name=$(basename "$1")
	w=$dir/$name
	# fork mode's status lines: "#EXECS: cov: N ft: N corp: N exec/s ..."
	last=$(grep -a '^#[0-9]*: cov:' "$w/log" | tail -1)
	execs=$(printf '%s' "$last" | sed -n 's/^#\([0-9]*\):.*/\1/p')
	cov=$(printf '%s' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(printf '%s' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(find "$w/corpus" -type f | wc -l)
	crashes=$(find "$w" -maxdepth 1 -name 'crash-*' ! -name '*.txt' | wc -l)
	printf '%-18s execs %-11s cov %-6s ft %-7s corpus %-6s crashes %s\n' \
	    "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$crashes"
	# each crash replayed once, its full report kept next to it
	for c in $(find "$w" -maxdepth 1 -name 'crash-*' ! -name '*.txt'); do
		"$1" "$c" >"$c.txt" 2>&1
		echo "    $c"
		# the first thing the target said after "Running:", and the
		# sanitizer's summary
		{ sed -n '/^Running:/,$p' "$c.txt" | sed 1d | grep -a -v '^=*$' |
		    head -1; grep -a -m1 '^SUMMARY' "$c.txt"; } |
		    sed 's/^/      /'
	done
	[ -n "$execs" ] && [ "$crashes" -eq 0 ]
}

# JOBS targets at a time: start one whenever a slot is free
running=0
for t in "$@"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
	echo "fuzz-long: $(date -u +%FT%TZ) start $(basename "$t") for ${secs}s"
	one "$t" &
	running=$((running + 1))
done
wait

fail=0
{
	echo "fuzz-long: $(date -u +%FT%TZ) ${secs}s per target," \
	    "commit $commit"
	for t in "$@"; do
		report "$t" || fail=1
	done
} | tee "$dir/summary.txt"
grep -q 'crashes [1-9]\|execs ?' "$dir/summary.txt" && fail=1
[ "$fail" -eq 0 ]
