#!/bin/bash
# 71: workers = 2, and one worker is SIGKILLed in the middle of a burst.
# A real Postfix sends a burst of messages (one connection each) through
# mxguard while a held session sits on the other worker.  The kill cuts
# the sessions under way on the killed worker (the sender defers those and
# retries); the supervisor logs the exit, restarts the worker and counts
# it; the held session on the other worker is not disturbed and completes;
# every message arrives exactly once (by its unique subject), but for
# SMTP's own duplicate (RFC 1047: the kill fell between the receiver's
# 250 to the end of data and its relay, and the sender says so); the
# supervisor's counters never went backwards across the kill.  Then the
# other worker hangs (SIGSTOP): no heartbeat for 30 s, so the supervisor
# kills it and starts a new one.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.tls.test
# every DATA takes 2 s at the receiver: the burst is under way for a while
rcv_listener 10.25.1.10 mx1 -o smtpd_data_restrictions=sleep,2
rcv_mailbox alice@tls.test carol@tls.test
rcv_setup
snd_setup
# one connection per message, and quick retries of what the kill cut
snd_postconf "smtp_connection_cache_on_demand = no" "minimal_backoff_time = 2s" \
	"maximal_backoff_time = 4s" "queue_run_delay = 2s"
snd_route tls.test 10.25.1.10
mxg_start "workers = 2
max_sessions = 200"

ctl() { ip netns exec "$SND" "$MXGUARD" -c "$T/mxguard.conf" "$@"; }
metric() { scrape_metric "$1" ctl status --metrics; }
wpid() { grep -E "event=worker-start worker=$1 pid=" "$MXLOG" | tail -n1 | sed -E 's/.* pid=([0-9]+).*/\1/'; }
# sessions of worker PID under way, by its log (connects less closes)
open_sessions() {
	local c x
	c=$(grep -cE "mxguard\[$1\]: .*event=connect " "$MXLOG")
	x=$(grep -cE "mxguard\[$1\]: .*event=close " "$MXLOG")
	echo $((c - x))
}
_has_sessions() { [ "$(open_sessions "$1")" -ge 1 ]; }

P0=$(wpid 0); P1=$(wpid 1)
[ -n "$P0" ] && [ -n "$P1" ] && [ "$P0" != "$P1" ] || fail "two workers expected (pids '$P0' '$P1')"
log "workers: 0=$P0 1=$P1"
assert "status counts two workers" [ "$(metric mxguard_workers)" = 2 ]

# the held session: EHLO, MAIL, RCPT, then it waits for "go"
mkdir -p "$T/h1"
bg "$SND" "$T/h1.log" python3 "$LIBDIR/holdclient.py" 10.25.1.10 25 carol@tls.test "$T/h1"
wait_for 20 "held session ready" test -e "$T/h1/ready"
HPID=$(grep -E "event=connect " "$MXLOG" | tail -n1 | sed -E 's/.*mxguard\[([0-9]+)\].*/\1/')
if [ "$HPID" = "$P0" ]; then VW=1; VPID=$P1; else VW=0; VPID=$P0; fi
[ "$HPID" = "$P0" ] || [ "$HPID" = "$P1" ] || fail "held session on no known worker ($HPID)"
log "held session on pid $HPID; the victim is worker $VW (pid $VPID)"

N=60
new_body "$T/body" 60000
for i in $(seq 1 $N); do
	send_mail bob@sender.test alice@tls.test "$T/body" "burst $i"
done
wait_for 60 "a session under way on the victim" _has_sessions "$VPID"
before=$(metric mxguard_sessions_total)
log "killing worker $VW (pid $VPID) with $(open_sessions "$VPID") session(s) under way; sessions_total=$before"
kill -KILL "$VPID"
wait_log "$MXLOG" "event=worker-exit worker=$VW pid=$VPID status=signal:9" 20
_replaced() {	# WORKER OLDPID: a new pid for WORKER, and it is up
	local p
	p=$(wpid "$1")
	[ -n "$p" ] && [ "$p" != "$2" ] && grep -qE "event=worker-ready worker=$1 pid=$p\$" "$MXLOG"
}
wait_for 20 "worker $VW started again and up" _replaced "$VW" "$VPID"
NPID=$(wpid "$VW")
assert "the supervisor started a new worker $VW (pid $NPID)" [ -n "$NPID" ]
assert "the supervisor started a new worker $VW (pid $NPID)" [ "$NPID" != "$VPID" ]
assert "the supervisor is alive" kill -0 "$MXG_PID"
assert "the held session's worker is alive" kill -0 "$HPID"
after=$(metric mxguard_sessions_total)
assert "sessions_total did not go backwards ($before -> $after)" [ "$after" -ge "$before" ]
assert "the exit was counted" [ "$(metric mxguard_worker_exits_total)" = 1 ]

# the held session, on the other worker, goes on
touch "$T/h1/go"
wait_for 30 "held session result" test -e "$T/h1/result"
assert "the held session's message was accepted (250)" [ "$(cat "$T/h1/result")" = 250 ]
wait_mailbox carol@tls.test 1 30

# every burst message, exactly once, after the sender's retries
wait_mailbox alice@tls.test $N 150
wait_queue_empty 60
cut=$(grep -E "to=<alice@tls.test>.* status=deferred" "$SD/maillog" | grep -vc "temporarily suspended")
log "deliveries the kill cut: $cut (and $(grep -c "delivery temporarily suspended" "$SD/maillog") deferred while the sender held the destination dead; all retried)"
assert "the kill cut at least one delivery" [ "$cut" -ge 1 ]
dir="$(mailbox_dir alice@tls.test)/new"
# A second copy is SMTP's own duplicate (RFC 1047) only when the kill
# fell between the receiver's 250 to the end of data and mxguard's relay
# of it: the sender then says so itself ("while sending end of data --
# message may be sent more than once") and retries.  Any other second
# copy, or a missing message, fails.
sender_warned() {	# FILE: the sender flagged its message's first try
	local mid qid
	mid=$(sed -nE 's/^Message-I[Dd]: *<([^>]*)>.*/\1/p' "$1" | head -n 1)
	[ -n "$mid" ] || return 1
	for qid in $(sed -nE "s/.*: ([0-9A-F]+): message-id=<$mid>.*/\1/p" "$SD/maillog"); do
		grep -qE "$qid: .*end of data -- message may be sent more than once" "$SD/maillog" && return 0
	done
	return 1
}
bad=0 dups=0
for i in $(seq 1 $N); do
	files=$(grep -lx "Subject: burst $i" "$dir"/* 2>/dev/null)
	n=$(printf '%s\n' $files | grep -c .)
	if [ "$n" = 2 ] && sender_warned "$(printf '%s\n' $files | head -n 1)"; then
		log "burst $i arrived twice: the kill fell after the receiver's 250 to its end of data, and the sender logged that it may send it twice"
		dups=$((dups + 1))
		continue
	fi
	[ "$n" = 1 ] || { log "burst $i arrived $n times"; bad=$((bad + 1)); }
done
assert "each of the $N messages arrived exactly once (but for $dups duplicate(s) the sender announced)" [ "$bad" = 0 ]
assert "nothing else arrived" [ "$(mailbox_count alice@tls.test)" = "$((N + dups))" ]
assert "still two workers" [ "$(metric mxguard_workers)" = 2 ]
assert "the restarted worker took sessions" grep -qE "mxguard\[$NPID\]: .*event=connect " "$MXLOG"

# a hung worker (stopped: its loop no longer turns) is seen by its silent
# heartbeat, killed and started again; mail still flows
HW=$((1 - VW))
kill -STOP "$HPID"
wait_log "$MXLOG" "event=worker-hung worker=$HW pid=$HPID " 45
wait_log "$MXLOG" "event=worker-exit worker=$HW pid=$HPID status=signal:9" 10
wait_for 20 "worker $HW started again and up" _replaced "$HW" "$HPID"
assert "both exits counted" [ "$(metric mxguard_worker_exits_total)" = 2 ]
send_mail bob@sender.test alice@tls.test "$T/body" "after the hang"
wait_mailbox alice@tls.test $((N + 1)) 60
pass "a worker killed mid-burst: restarted, the other's session intact, every message once; a hung worker replaced"
