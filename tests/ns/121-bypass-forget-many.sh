#!/bin/bash
# 121: a reload that takes a destination out of bypass_dst forgets every
# flow the old list let through, however many (ns 101 holds one).  The
# reload deleted at most 4,096 conntrack entries (CT_MAX_FORGET) and said
# flows=4096 deleted=4096: the rest went on direct, unprotected, for as
# long as their MTAs kept them, and nothing said so.  A relay's bypassed
# destination leaves that many easily: every flow it closed in the last
# two minutes still has its entry (TIME_WAIT, connmark BYPASS), and the
# dump, in hash order, may fill the 4,096 with those before the live
# ones.  Here 5,000 entries of flows to the bypassed address, connmark
# BYPASS (tests/lib/ctmark.py), stand for them: after the reload none is
# left (red before: 904).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
nfq_start "bypass_dst = 10.25.1.30"
N=5000
got=$(in_snd python3 "$LIBDIR/ctmark.py" "$SND_IP" 10.25.1.30 "$MXG_MARK" $N) ||
	fail "ctmark.py: $got"
left() { in_snd conntrack -L -p tcp -d 10.25.1.30 --orig-port-dst 25 2>/dev/null | grep -c "mark=$((MXG_MARK))" || true; }
assert "$N bypassed entries in place" [ "$(left)" = $N ]

sed -i '/^bypass_dst = 10\.25\.1\.30$/d' "$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=nfq-bypass-forgotten " 30
grep -E "event=nfq-bypass-forg" "$MXLOG" >&2
L=$(left)
log "entries left: $L"
assert "no bypassed entry left after the reload (left $L)" [ "$L" = 0 ]
assert "the log counts them all" grep -q "event=nfq-bypass-forgotten flows=$N deleted=$N " "$MXLOG"
pass "a reload forgets every flow the old bypass let through"
