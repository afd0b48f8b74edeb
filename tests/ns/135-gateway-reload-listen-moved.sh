#!/bin/bash
# 135: gateway mode, NFQUEUE steering under REDIRECT, fail_mode = closed,
# listen = 10.25.2.254:10025 alone (so the rules DNAT to that address).
# The file is edited to listen = 10.25.2.253:10025 (another address of
# the inside interface) and the daemon reloaded; then a firewall flush
# takes mxguard's nat table rules away and `rules ensure` (what `rules
# watch` runs) puts rules back, while an unprivileged process (nobody)
# listens on 10.25.2.253:10025.
#   [SND 10.25.2.1] -- [GW 10.25.2.254, .253 | 10.25.1.254] -- [RCV 10.25.1.2]
# Before, the reload took the change (listen was no rules key; the
# listeners stay those of the start), the daemon ran the file by its
# digest, so ensure installed the file's set: every flow the daemon
# diverted was DNAT'd to 10.25.2.253:10025, to that process, mail and
# all.  Now the reload is refused (the rules depend on listen there), the
# daemon runs another configuration than the file, and ensure puts the
# refusal set in (fail_mode = closed): the MTA's connection is refused,
# and that process sees no one.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
gw_setup
ip -n "$GW" addr add 10.25.2.253/24 dev gw0 || fail "second inside address"

MX_PY='
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.1.2", 25)); s.listen(8)
while True:
    c, a = s.accept()
    c.sendall(b"220 mx.test ESMTP\r\n")'
bg "$RCV" "$T/mx-srv.log" python3 -c "$MX_PY"
wait_port "$RCV" 10.25.1.2 25

gw_start "rules_backend = iptables
listen_mode = redirect
fail_mode = closed
workers = 1
listen = 10.25.2.254:$MXG_PORT"
# the daemon up: a flow reaches mxguard
in_snd python3 "$LIBDIR/mtaprobe.py" 10.25.2.1 40301 10.25.1.2 25 5 >"$T/mta1.out" 2>&1
wait_log "$MXLOG" "event=connect client=10\.25\.2\.1:40301 " 10

# the file edited, the daemon reloaded
echo "listen = 10.25.2.253:$MXG_PORT" >>"$T/gw.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=(reloaded|reload-failed) " 10
log "reload: $(grep -E 'event=(reloaded|reload-failed|reload-note) ' "$MXLOG" | tail -n 2 | tr '\n' ' ')"
bg "$GW" "$T/user.log" python3 "$LIBDIR/portthief.py" 10.25.2.253 "$MXG_PORT"
USER_PID=$BG_PID
wait_for 10 "the local user's listener" grep -q '^bound' "$T/user.log"

# a firewall's reload flushes nat; ensure puts rules back
in_gw iptables -t nat -F || fail "nat flush"
in_gw "$MXGUARD" -c "$T/gw.conf" rules ensure >"$T/ensure.log" 2>&1
log "rules ensure: $(tr '\n' ' ' <"$T/ensure.log")"
in_snd python3 "$LIBDIR/mtaprobe.py" 10.25.2.1 40302 10.25.1.2 25 5 >"$T/mta2.out" 2>&1
log "the MTA read \"$(tr '\n' ' ' <"$T/mta2.out")\", the local user's listener: \"$(tr '\n' ' ' <"$T/user.log")\""
assert "the local user's listener saw no one" \
	[ "$(grep -vc '^bound' "$T/user.log")" = 0 ]
assert "the MTA read nothing of it" lacks "not-mxguard" cat "$T/mta2.out"
assert "the reload was refused: the rules depend on listen" \
	grep -q 'event=reload-failed error="listen changed' "$MXLOG"
kill "$USER_PID"
wait "$USER_PID" 2>/dev/null
kill -TERM "$MXG_PID"
wait_for 15 "mxguard exit" bash -c "! kill -0 $MXG_PID 2>/dev/null"
MXG_PID=
in_gw "$MXGUARD" -c "$T/gw.conf" rules remove >/dev/null 2>&1 ||
	fail "rules remove"
pass "a reload that moves the DNAT target is refused; no flow reaches a local user's listener there"
