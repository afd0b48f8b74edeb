#!/bin/bash
# 110: `rules stop` (the unit's ExecStopPost) with fail_mode = closed in
# the file while the rules in place are another set: the daemon ran with
# fail_mode = open, the operator switched the file to closed (a reload
# refuses that key: it takes a restart), and the service stops.  `rules
# stop` read "closed" and kept the rules in place, saying that new
# port-25 flows were refused until mxguard ran again: but the set in place
# was the open one, whose guard refuses nothing, and with no daemon on the
# queue every flow went direct (before the fix the MX answered the MTA),
# for as long as the daemon stayed down (a start that fails on the edited
# file: forever).  Now stop installs the file's set when the one in place
# is not it (or the refusal set, if that fails): refused, mail queued.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
nfq_start "fail_mode = open"
mxg_kill
echo "fail_mode = closed" >>"$T/mxguard.conf"
mxg_ctl rules stop >"$T/stop.log" 2>&1 || fail "rules stop: $(cat "$T/stop.log")"
cat "$T/stop.log" >&2
r=$(in_snd timeout 6 python3 -c '
import socket
try:
    c = socket.create_connection(("10.25.1.30", 25), timeout=3)
    print(c.makefile("rb").readline().decode().strip() or "closed")
except OSError as e:
    print("failed:", e)')
log "MTA connection after rules stop: $r"
assert "no direct connection to the MX" lacks "badsmtp" echo "$r"
assert "refused" grep -q "refused" <<<"$r"
assert "the MX saw no connection" lacks " open peer=" cat "$BADLOG"
pass "rules stop with fail_mode = closed refuses, whatever set was in place"
