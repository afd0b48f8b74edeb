#!/bin/bash
# 57: gateway mode with REDIRECT (58 runs the same with TPROXY: GW_LISTEN_MODE).
# The sending MTA sits behind a gateway namespace that runs mxguard with
# rules_mode = gateway:
#   [SND 10.25.2.1] -- [GW 10.25.2.254 | 10.25.1.254] -- [RCV 10.25.1.x]
# A forwarded port-25 flow is queued in mangle PREROUTING, marked
# INTERCEPT, diverted (nat PREROUTING REDIRECT, or TPROXY with the policy
# routing `rules install` adds) and relayed over TLS from the gateway; a bypass source goes
# direct (forwarded, the receiver sees the sender's address); with the
# daemon stopped and fail_mode = closed, FORWARD refuses new flows and the
# mail stays queued.  bypass_interfaces = gw1 (the outside): a port-25
# flow from outside to a host behind the gateway (inbound mail) is not
# intercepted, and with the daemon stopped the guard does not refuse it.
# `rules remove` restores the gateway's ruleset and ip rules.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
GW_LISTEN_MODE=${GW_LISTEN_MODE:-redirect}
ns_setup
gw_setup	# SND -- GW -- RCV (tests/lib/nfq.sh)
# _table_empty TABLE [-6]: the gateway's routing table TABLE holds no
#   route: ip prints nothing, or says the table does not exist (an emptied
#   table is gone).  Any other failure of ip is no answer, which
#   [ -z "$(... 2>/dev/null)" ] took for an empty table.
_table_empty() {
	local out rc=0
	out=$(in_gw ip ${2:-} route show table "$1" 2>&1) || rc=$?
	if [ "$rc" = 0 ]; then
		[ -z "$out" ]
	else
		grep -q 'FIB table does not exist' <<<"$out"
	fi
}

tls_world
_reach() { in_snd timeout 2 bash -c "exec 3<>/dev/tcp/10.25.1.10/25"; }
wait_for 10 "sender reaches the receiver through the gateway" _reach

make_ca
mkdir -p "$T/mxstate"
cat >"$T/gw.conf" <<EOF2
listen = 0.0.0.0:$MXG_PORT
listen_mode = $GW_LISTEN_MODE
rules_mode = gateway
steering = nfqueue
fail_mode = closed
upstream_mark = $MXG_MARK
user =
state_dir = $T/mxstate
control_socket = $T/gw.sock
tls_ca_file = $T/pki/ca.crt
log_level = debug
drain_timeout = 2s
bypass_interfaces = gw1
EOF2
gwctl() { in_gw "$MXGUARD" -c "$T/gw.conf" "$@"; }
before=$(ipt_save "$GW")
rules_before=$(in_gw ip rule; in_gw ip -6 rule)
gwctl rules install >"$T/gw-rules.log" 2>&1 || fail "rules install: $(cat "$T/gw-rules.log")"
if [ "$GW_LISTEN_MODE" = tproxy ]; then
	assert "TPROXY rule installed" bash -c "ip netns exec $GW iptables-save -t mangle | grep -q -- '-j TPROXY'"
	assert "ip rule for the intercept mark" bash -c "ip netns exec $GW ip rule | grep -q 'fwmark 0x4d49/0xffff lookup 100'"
	assert "local route in table 100" bash -c "ip netns exec $GW ip route show table 100 | grep -q '^local default dev lo'"
else
	assert "REDIRECT in nat PREROUTING" bash -c "ip netns exec $GW iptables-save -t nat | grep -q -- '-A PREROUTING .*-j MXGUARD_DIVERT'"
fi
assert "fail-closed guard in FORWARD" bash -c "ip netns exec $GW iptables-save -t filter | grep -q -- '-A FORWARD .*-j MXGUARD_GUARD'"
MXLOG=$T/gw-mxguard.log
gw_start() {	# waits for lines of this process: see _mxg_listening
	bg "$GW" "$MXLOG" "$MXGUARD" -c "$T/gw.conf" run
	MXG_PID=$BG_PID
	wait_for 15 "mxguard (pid $MXG_PID) started in $GW" _mxg_listening
	assert "NFQUEUE open" grep -q "event=nfq-open" "$MXLOG"
}
gw_start

new_body "$T/body" 1500
send_mail bob@sender.test alice@tls.test "$T/body" "through the gateway"
q1=$(find_qid "$MSGID"); m1=$MSGID
wait_status "$q1" alice@tls.test sent
wait_mailbox alice@tls.test 1
f1=$(msg_file_by_id alice@tls.test "$m1") || fail "message not stored"
assert "intercepted on the gateway: TLS at the receiver" [ -n "$(received_tls "$f1")" ]
assert "mxguard ($GW_LISTEN_MODE) relayed to the original destination" grep -qE "event=connect .*dst=10\.25\.1\.10:25" "$MXLOG"
assert "the receiver saw the gateway's address" grep -qE "connect from [^ ]*\[10\.25\.1\.254\]" "$RD/maillog"

# Inbound: an outside host (RCV) connects to port 25 of a host behind the
# gateway (SND).  The listener answers with its own banner and records
# the peer: it must be the outside host itself, and mxguard must not have
# seen the flow.
INB_PY='
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.25.2.1", 25)); s.listen(8)
while True:
    c, a = s.accept()
    with open(sys.argv[1], "a") as f: f.write(a[0] + "\n")
    c.sendall(b"220 inside.test ESMTP\r\n"); c.close()'
bg "$SND" "$T/inbound-srv.log" python3 -c "$INB_PY" "$T/inbound-peers"
wait_port "$SND" 10.25.2.1 25
inbound_banner() {	# prints the first line the outside host reads
	in_rcv timeout 5 python3 -c '
import socket
c = socket.create_connection(("10.25.2.1", 25), timeout=4)
print(c.makefile("rb").readline().decode().strip())'
}
b=$(inbound_banner) || fail "inbound connection through the gateway failed"
assert "inbound: the inside host's own banner" [ "$b" = "220 inside.test ESMTP" ]
assert "inbound: the inside host saw the outside address" grep -qx "10\.25\.1\.[0-9]*" "$T/inbound-peers"
assert "inbound: no verdict from mxguard" [ "$(count_log "$MXLOG" "event=nfq-verdict .*src=10\.25\.1\.")" = 0 ]

# fail-closed on the gateway: daemon stopped, FORWARD refuses
kill -TERM "$MXG_PID"; wait_for 10 "mxguard exit" bash -c "! kill -0 $MXG_PID 2>/dev/null"
send_mail bob@sender.test alice@tls.test "$T/body" "gateway down"
q2=$(find_qid "$MSGID"); m2=$MSGID
wait_status "$q2" alice@tls.test deferred
assert "refused while mxguard is down" grep -qE " $q2: to=<alice@tls.test>.*Connection refused" "$SD/maillog"
b=$(inbound_banner) || fail "inbound refused while mxguard is down (the guard is for the inside only)"
assert "inbound while mxguard is down: the inside host's banner" [ "$b" = "220 inside.test ESMTP" ]
assert "kept in the sender's queue" queue_has "$q2"
wait_deferred "$q2"
gw_start
snd_flush
wait_status "$q2" alice@tls.test sent
wait_mailbox alice@tls.test 2

# bypass_src: the same sender, now exempt, goes direct (forwarded)
echo "bypass_src = 10.25.2.1" >>"$T/gw.conf"
kill -HUP "$MXG_PID"
# the process that reads the queue has taken it (the supervisor logs
# reload-checked once the queue has the new bypass_src, the one process
# reloaded): "reloading" comes before, with the old one still in force
wait_log "$MXLOG" "mxguard\\[$MXG_PID\\]: event=(reload-checked|reloaded) " 10
send_mail bob@sender.test alice@tls.test "$T/body" "exempt source"
q3=$(find_qid "$MSGID"); m3=$MSGID
wait_status "$q3" alice@tls.test sent
wait_mailbox alice@tls.test 3
f3=$(msg_file_by_id alice@tls.test "$m3") || fail "message not stored"
assert "exempt source: no TLS (went direct)" [ -z "$(received_tls "$f3")" ]
assert "exempt source: the receiver saw the sender's own address" grep -qE "connect from [^ ]*\[10\.25\.2\.1\]" "$RD/maillog"
assert "bypass_src verdict logged" grep -qE "event=nfq-verdict .*src=10\.25\.2\.1 .*verdict=bypass reason=bypass_src" "$MXLOG"

kill -TERM "$MXG_PID"; wait_for 10 "mxguard exit" bash -c "! kill -0 $MXG_PID 2>/dev/null"
if [ "$GW_LISTEN_MODE" = tproxy ]; then
	# remove finds what install added, not what the configuration says
	# now: the TPROXY ip rules and routes carry a routing protocol tag.
	# An install under other values replaces them (new first).
	sed -i -e 's/^listen_mode = tproxy$/listen_mode = redirect/' "$T/gw.conf"
	printf 'tproxy_table = 120\nintercept_mark = 0x4d4a\n' >>"$T/gw.conf"
	cp "$T/gw.conf" "$T/gw-other.conf"
	sed -i -e 's/^listen_mode = redirect$/listen_mode = tproxy/' "$T/gw-other.conf"
	in_gw "$MXGUARD" -c "$T/gw-other.conf" rules install || fail "install with other marks"
	assert "reinstall: the new ip rule" bash -c "ip netns exec $GW ip rule | grep -q 'fwmark 0x4d4a/0xffff lookup 120 proto 77'"
	assert "reinstall: the old ip rule is gone" lacks 'lookup 100' in_gw ip rule
	assert "reinstall: table 100 emptied" _table_empty 100
	assert "reinstall: the local route in table 120" bash -c "ip netns exec $GW ip -6 route show table 120 | grep -q '^local default dev lo'"
	# ip prints a full mask as none and a named table by its name: an
	# install must still know its own rule (it is found by ip's filter)
	sed -e 's/^intercept_mark = 0x4d4a$/intercept_mark = 0x4d4b/' "$T/gw-other.conf" >"$T/gw-full.conf"
	echo "mark_mask = 0xffffffff" >>"$T/gw-full.conf"
	{ cat /etc/iproute2/rt_tables; echo "120 mxgtest"; } >"$T/rt_tables"
	in_gw unshare -m sh -c 'mount --bind "$1" /etc/iproute2/rt_tables && "$2" -c "$3" rules install' \
		_ "$T/rt_tables" "$MXGUARD" "$T/gw-full.conf" || fail "install with a full mask and a named table"
	assert "full mask, named table: the rule is there" bash -c "ip netns exec $GW ip -N rule | grep -q 'fwmark 0x4d4b lookup 120 proto 77'"
	assert "full mask, named table: the one before is gone" lacks 'fwmark 0x4d4a' in_gw ip -N rule
	for fam in -4 -6; do
		assert "full mask: one tagged rule ($fam)" [ "$(in_gw ip -N $fam rule | grep -c ' proto 77')" = 1 ]
	done
fi
gwctl rules remove || fail "rules remove"
after=$(ipt_save "$GW")
assert "remove restores the gateway's iptables-save/ip6tables-save" [ "$before" = "$after" ]
assert "remove restores the gateway's ip rules" [ "$rules_before" = "$(in_gw ip rule; in_gw ip -6 rule)" ]
assert "table 100 emptied" _table_empty 100
assert "table 120 emptied" _table_empty 120
assert "table 120 emptied (IPv6)" _table_empty 120 -6
pass "gateway mode with $GW_LISTEN_MODE"
