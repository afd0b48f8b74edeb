#!/bin/sh
# Runs each libFuzzer target briefly: run-fuzz.sh SECONDS TARGET...
# Seeds come from tests/fuzz/corpus/<target>/ when present.
secs=$1; shift
pass=0; fail=0
for t in "$@"; do
	name=$(basename "$t")
	seeds=tests/fuzz/corpus/$name
	work=$(mktemp -d)
	[ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null
	if "$t" -max_total_time="$secs" -max_len=8192 -artifact_prefix="$work/" \
	    -print_final_stats=0 "$work" >"$work.log" 2>&1; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); echo "FAILED: $name"; tail -40 "$work.log"
		ls "$work"/crash-* 2>/dev/null
	fi
	rm -rf "$work" "$work.log"
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
