#!/bin/bash
# 131: gateway mode, NFQUEUE steering under REDIRECT, fail_mode = closed,
# the daemon down (SIGKILL, and a clean stop): a SYN that conntrack files
# under an entry a verdict had diverted never reaches whoever binds
# divert_port after mxguard.
#   [SND 10.25.2.1] -- [GW 10.25.2.254 | 10.25.1.254] -- [RCV 10.25.1.2]
# A diverted flow's entry keeps its REDIRECT binding (nat sees a flow's
# first packet only) and its connmark INTERCEPT, so the steering chain
# lets its packets go and nat takes them to divert_port on the gateway;
# the guard (FORWARD) never sees them (INPUT).  With the daemon down that
# port is free and any local user may listen there (10025 is above
# ip_unprivileged_port_start).  Two such SYNs:
#   reset: mxguard's side reset a session (the entry lingers in CLOSE for
#     10 s, and a SYN after a reset from the reply side is no reopen), the
#     MTA's next SYN from the same port;
#   lost: the MTA's SYN was diverted and answered, but the answer was
#     lost (here a DROP on the MTA host), and the SYN is
#     retransmitted once the daemon is gone (held on the MTA host until
#     the local user listens, as one who binds the port the moment it is
#     free would).
# Before the fix both reached the local user's listener, which read the
# MTA's session (the inside host's mail, no policy at all).  Now such a
# SYN is queued again, without --queue-bypass: a daemon decides it, none
# drops it (the MTA resends; once the entry is gone its SYN is NEW, and
# refused by the guard).  And with the daemon up, a resent SYN is still
# diverted to mxguard.  iptables only: nft's queue statement needs
# CONFIG_NFT_QUEUE, which the test kernel lacks (test_rules checks nft's
# rule, test_diverted_syn_requeued).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
gw_setup

MX_PY='
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.1.2", 25)); s.listen(8)
while True:
    c, a = s.accept()
    c.sendall(b"220 mx.test ESMTP\r\n")'
bg "$RCV" "$T/mx-srv.log" python3 -c "$MX_PY"
wait_port "$RCV" 10.25.1.2 25

port=40100
for run in "iptables KILL reset" "iptables KILL lost" "iptables TERM reset" \
    "iptables TERM lost" "iptables up lost"; do
	set -- $run
	backend=$1 stop=$2 what=$3
	port=$((port + 1))
	case="$backend, $what, daemon up"
	[ "$stop" = up ] || case="$backend, $what, daemon stopped with SIG$stop"
	gw_start "rules_backend = $backend
listen_mode = redirect
fail_mode = closed" "$backend-$stop-$what"
	if [ "$what" = reset ]; then
		bg "$SND" "$T/mta1-$port.out" python3 "$LIBDIR/mtaprobe.py" 10.25.2.1 "$port" 10.25.1.2 25 20 close
		wait_log "$MXLOG" "event=connect client=10\.25\.2\.1:$port " 10
		# mxguard's side resets it (the reply direction)
		in_gw ss -K dst 10.25.2.1 dport = ":$port" >/dev/null ||
			fail "$case: ss -K"
		wait_for 10 "the MTA's session reset" \
			grep -q "^error" "$T/mta1-$port.out"
	else
		in_snd iptables -I INPUT -p tcp --sport 25 --tcp-flags \
			SYN,ACK SYN,ACK -j DROP || fail "$case: SYN-ACK drop"
		bg "$SND" "$T/mta2-$port.out" python3 "$LIBDIR/mtaprobe.py" 10.25.2.1 "$port" 10.25.1.2 25 12 close
		MTA_PID=$BG_PID
		wait_for 10 "the MTA's SYN at mxguard's listener" \
			gw_syn_recv "$port"
		# its next resends wait until the local user listens (who
		# would bind the port the moment it is free)
		in_snd iptables -I OUTPUT -p tcp --dport 25 --syn \
			-j DROP || fail "$case: SYN hold"
	fi
	if [ "$stop" = up ]; then
		# the daemon up: the resent SYN is queued again and diverted
		# to mxguard as before
		echo bound >"$T/user-$port.log"
	else
		kill -"$stop" "$MXG_PID"
		wait_for 15 "mxguard exit" bash -c "! kill -0 $MXG_PID 2>/dev/null"
		MXG_PID=
		bg "$GW" "$T/user-$port.log" python3 "$LIBDIR/portthief.py" 0.0.0.0 "$MXG_PORT"
		USER_PID=$BG_PID
		wait_port "$GW" 0.0.0.0 "$MXG_PORT"
	fi
	if [ "$what" = reset ]; then
		bg "$SND" "$T/mta2-$port.out" python3 "$LIBDIR/mtaprobe.py" 10.25.2.1 "$port" 10.25.1.2 25 4 close
		MTA_PID=$BG_PID
	else
		in_snd iptables -D INPUT -p tcp --sport 25 --tcp-flags \
			SYN,ACK SYN,ACK -j DROP &&
			in_snd iptables -D OUTPUT -p tcp --dport 25 \
			--syn -j DROP || fail "$case: MTA host's drops out"
	fi
	if [ "$stop" = up ]; then
		wait_for 15 "the MTA's session through mxguard" \
			grep -q "^line 220 " "$T/mta2-$port.out"
		assert "$case: mxguard took the resent SYN" \
			[ "$(mx_count "event=connect client=10\.25\.2\.1:$port ")" = 1 ]
		kill -TERM "$MXG_PID"
		wait_for 15 "mxguard exit" bash -c "! kill -0 $MXG_PID 2>/dev/null"
		MXG_PID=
	else
		wait_for 20 "the MTA's connection attempt" \
			bash -c "! kill -0 $MTA_PID 2>/dev/null"
		log "$case: the MTA read \"$(head -c 200 "$T/mta2-$port.out" | tr '\n' ' ')\", the local user's listener saw \"$(tr '\n' ' ' <"$T/user-$port.log")\""
		assert "$case: the local user's listener saw no one" \
			[ "$(grep -vc '^bound' "$T/user-$port.log")" = 0 ]
		assert "$case: the MTA read nothing of it" \
			lacks "not-mxguard" cat "$T/mta2-$port.out"
		kill "$USER_PID"
		wait "$USER_PID" 2>/dev/null
		wait_for 10 "the local user's listener gone" \
			bash -c "! ip netns exec $GW ss -Htln 'sport = :$MXG_PORT' | grep -q ."
	fi
	in_gw "$MXGUARD" -c "$T/gw.conf" rules remove >/dev/null 2>&1 ||
		fail "$case: rules remove"
done
pass "a SYN on a diverted entry reaches no one else's listener with the daemon down"
