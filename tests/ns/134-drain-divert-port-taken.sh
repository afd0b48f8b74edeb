#!/bin/bash
# 134: gateway mode, NFQUEUE steering under REDIRECT, fail_mode = closed:
# while the daemon drains (SIGTERM, a session still under way) its
# listeners are closed, and an unprivileged process (nobody) binds
# divert_port beside the session's socket (SO_REUSEADDR: the port holds
# no listener any more).  No port-25 flow of the MTA reaches it:
#   new: a SYN the MTA sends during the drain (a NEW flow);
#   lost: a SYN diverted before the SIGTERM whose SYN-ACK was lost, sent
#     again during the drain (filed under the diverted entry).
#   [SND 10.25.2.1] -- [GW 10.25.2.254 | 10.25.1.254] -- [RCV 10.25.1.2]
# What makes it so: the drain releases the queue at the moment it closes
# the listeners (cmd/run.c and cmd/workers.c start_drain()), so no verdict
# diverts a flow after them; a NEW SYN then meets the guard (refused), a
# SYN on a diverted entry is queued again without --queue-bypass (dropped,
# ns 131).  A daemon that went on giving verdicts through the drain (the
# listeners closed, the queue kept to the exit) fails here: the local
# user's listener reads the MTA's session.  The single process and the
# supervisor with 2 workers (which systemd's SIGTERM reaches too).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
gw_setup

# the MX accepts and says nothing: mxguard's session waits for its 220
# (no client command awaited, so no 421 at the drain): a session under
# way that holds the drain
MX_PY='
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.1.2", 25)); s.listen(8)
conns = []
while True:
    c, a = s.accept()
    conns.append(c)'
bg "$RCV" "$T/mx-srv.log" python3 -c "$MX_PY"
wait_port "$RCV" 10.25.1.2 25


port=40200
for workers in 1 2; do
	case="workers = $workers"
	gw_start "listen_mode = redirect
fail_mode = closed
drain_timeout = 40s
workers = $workers" "w$workers"
	hold=$((port + 1)) lost=$((port + 2)) new=$((port + 3))
	port=$((port + 10))
	# a session under way, which the drain waits for
	bg "$SND" "$T/hold-$hold.out" python3 "$LIBDIR/mtaprobe.py" 10.25.2.1 "$hold" 10.25.1.2 25 60 close
	wait_log "$MXLOG" "event=connect client=10\.25\.2\.1:$hold " 10
	# a SYN diverted to mxguard's listener whose SYN-ACK is lost; its
	# next resends wait on the MTA host until the local user listens
	in_snd iptables -I INPUT -p tcp --sport 25 --tcp-flags SYN,ACK \
		SYN,ACK -j DROP || fail "$case: SYN-ACK drop"
	bg "$SND" "$T/lost-$lost.out" python3 "$LIBDIR/mtaprobe.py" 10.25.2.1 "$lost" 10.25.1.2 25 15 close
	LOST_PID=$BG_PID
	wait_for 10 "$case: the MTA's SYN at mxguard's listener" \
		gw_syn_recv "$lost"
	in_snd iptables -I OUTPUT -p tcp --dport 25 --syn -j DROP ||
		fail "$case: SYN hold"

	kill -TERM "$MXG_PID"
	wait_log "$MXLOG" "event=draining sessions=1 " 10
	# the local user takes the port as soon as no listener holds it
	bg "$GW" "$T/user-$workers.log" python3 "$LIBDIR/portthief.py" 0.0.0.0 "$MXG_PORT" wait
	USER_PID=$BG_PID
	wait_for 15 "$case: the local user's listener bound during the drain" \
		grep -q '^bound' "$T/user-$workers.log"
	assert "$case: mxguard still drains" kill -0 "$MXG_PID"
	in_snd iptables -D INPUT -p tcp --sport 25 --tcp-flags SYN,ACK \
		SYN,ACK -j DROP && in_snd iptables -D OUTPUT -p tcp \
		--dport 25 --syn -j DROP || fail "$case: MTA host's drops out"
	bg "$SND" "$T/new-$new.out" python3 "$LIBDIR/mtaprobe.py" 10.25.2.1 "$new" 10.25.1.2 25 5 close
	NEW_PID=$BG_PID
	wait_for 20 "$case: the MTA's new connection attempt" \
		bash -c "! kill -0 $NEW_PID 2>/dev/null"
	wait_for 20 "$case: the MTA's resent SYN" \
		bash -c "! kill -0 $LOST_PID 2>/dev/null"
	assert "$case: mxguard still drains after both" kill -0 "$MXG_PID"
	log "$case: new: \"$(tr '\n' ' ' <"$T/new-$new.out")\", lost: \"$(tr '\n' ' ' <"$T/lost-$lost.out")\", the local user's listener: \"$(tr '\n' ' ' <"$T/user-$workers.log")\""
	assert "$case: the local user's listener saw no one" \
		[ "$(grep -vc '^bound' "$T/user-$workers.log")" = 0 ]
	assert "$case: the new flow read nothing of it" \
		lacks "not-mxguard" cat "$T/new-$new.out"
	assert "$case: the resent SYN read nothing of it" \
		lacks "not-mxguard" cat "$T/lost-$lost.out"
	assert "$case: the new flow was refused" \
		grep -q '^error' "$T/new-$new.out"

	kill "$USER_PID"
	wait "$USER_PID" 2>/dev/null
	# the workers by their pids, then the supervisor (or the one
	# process): no drain to wait for
	for wpid in $(sed -nE 's/.*event=worker-start worker=[0-9]+ pid=([0-9]+).*/\1/p' "$MXLOG"); do
		kill -KILL "$wpid" 2>/dev/null
	done
	kill -KILL "$MXG_PID" 2>/dev/null
	wait_for 15 "mxguard exit" bash -c "! kill -0 $MXG_PID 2>/dev/null"
	MXG_PID=
	wait_for 10 "$case: nothing on $MXG_PORT" \
		bash -c "! ip netns exec $GW ss -Htan 'sport = :$MXG_PORT' | grep -q LISTEN"
	in_gw "$MXGUARD" -c "$T/gw.conf" rules remove >/dev/null 2>&1 ||
		fail "$case: rules remove"
done
pass "no port-25 flow reaches a local user's listener on divert_port during the drain"
