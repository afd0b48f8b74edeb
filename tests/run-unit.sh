#!/bin/sh
# Runs each cmocka unit test binary given as argument; fails if any fails.
# Prints one summary line "unit: N passed, N failed".
# MXG_TEST (tests/unit/testfilter.c) is for one binary by hand: a whole run
# runs every test
unset MXG_TEST
pass=0; fail=0
for t in "$@"; do
	if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $t"; fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
