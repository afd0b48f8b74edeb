#!/bin/bash
# 122: the rules in place are another configuration's marks than the
# daemon runs with (a mark edited, `rules install` run, the restart not
# yet), local mode, NFQUEUE steering.  A SYN queued with one of the
# daemon's own marks already came from its verdict (NF_REPEAT) or its own
# socket (SO_MARK), and the chain did not take it: mxguard drops it
# (event=nfq-mark-unknown) instead of marking it again.
#   intercept_mark differs: before, the MTA's SYN came back to the queue
#   after every verdict, for ever (each retransmission one more packet
#   going round; with fail_mode = open a full queue then lets new SYNs go
#   direct).
#   upstream_mark differs: before, mxguard's own upstream SYN was queued,
#   marked INTERCEPT and redirected into its own listener: a session to
#   itself, which connected again, and so on.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
bad_start 10.25.1.30 --mode normal
nfq_start "connect_timeout = 3s"
mxg_ctl rules remove >/dev/null 2>&1 || fail "rules remove"
try_mx() {	# the first line an MTA reads from 10.25.1.30:25, or the error
	in_snd timeout 8 python3 -c '
import socket
try:
    c = socket.create_connection(("10.25.1.30", 25), timeout=6)
    print(c.makefile("rb").readline().decode().strip() or "closed")
except OSError as e:
    print(type(e).__name__)'
}

# intercept_mark differs
sed 's/^upstream_mark = .*/&\nintercept_mark = 0x4d4a/' "$T/mxguard.conf" >"$T/other-in.conf"
in_snd "$MXGUARD" -c "$T/other-in.conf" rules install >"$T/ri.log" 2>&1 || fail "rules install: $(cat "$T/ri.log")"
p0=$(metric mxguard_nfq_packets_total)
b0=$(count_log "$BADLOG" "open peer=")
r=$(try_mx)
p1=$(metric mxguard_nfq_packets_total)
log "intercept_mark differs: the MTA read \"$r\"; SYNs queued $((p1 - p0))"
assert "intercept_mark differs: the SYN did not go round (queued $((p1 - p0)))" [ $((p1 - p0)) -le 20 ]
assert "intercept_mark differs: said" grep -q "event=nfq-mark-unknown " "$MXLOG"
assert "intercept_mark differs: the MX saw no connection" [ "$(count_log "$BADLOG" "open peer=")" = "$b0" ]
in_snd "$MXGUARD" -c "$T/other-in.conf" rules remove >/dev/null 2>&1

# upstream_mark differs
n0=$(mx_count "event=connect ")
u0=$(count_log "$MXLOG" "event=nfq-mark-unknown ")
b0=$(count_log "$BADLOG" "open peer=")
sed 's/^upstream_mark = .*/upstream_mark = 0x4d5a/' "$T/mxguard.conf" >"$T/other-up.conf"
in_snd "$MXGUARD" -c "$T/other-up.conf" rules install >"$T/ru.log" 2>&1 || fail "rules install: $(cat "$T/ru.log")"
r=$(try_mx)
n1=$(mx_count "event=connect ")
log "upstream_mark differs: the MTA read \"$r\"; sessions $((n1 - n0))"
grep -E "event=connect " "$MXLOG" | tail -n 5 >&2
assert "upstream_mark differs: one session, none to itself ($((n1 - n0)))" [ $((n1 - n0)) -le 1 ]
assert "upstream_mark differs: said" [ "$(count_log "$MXLOG" "event=nfq-mark-unknown ")" -gt "$u0" ]
assert "upstream_mark differs: the MX saw no connection" [ "$(count_log "$BADLOG" "open peer=")" = "$b0" ]
in_snd "$MXGUARD" -c "$T/other-up.conf" rules remove >/dev/null 2>&1
pass "rules of other marks: no loop"
