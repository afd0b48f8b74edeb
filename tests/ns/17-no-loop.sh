#!/bin/bash
# 17: mxguard's own upstream connection is not diverted back into mxguard:
# exactly one event=connect per delivery, the receiver sees the connection
# from the sender namespace's address, and the RETURN (mark) rule's packet
# counter moved once per upstream connection.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_listener 10.25.1.11 none
rcv_mailbox ken@tls.test lara@plain.test
rcv_setup
snd_setup
snd_route tls.test 10.25.1.10
snd_route plain.test 10.25.1.11
mxg_start

new_body "$T/body" 1000
send_mail bob@sender.test ken@tls.test "$T/body" "loop 1"
q1=$(find_qid "$MSGID")
wait_status "$q1" ken@tls.test sent
send_mail bob@sender.test lara@plain.test "$T/body" "loop 2"
q2=$(find_qid "$MSGID")
wait_status "$q2" lara@plain.test sent
wait_mailbox ken@tls.test 1; wait_mailbox lara@plain.test 1

ret=$(rule_packets 'RETURN'); red=$(rule_packets 'REDIRECT')
log "nat MXGUARD_OUT counters: RETURN=$ret REDIRECT=$red"
in_snd iptables -t nat -L MXGUARD_OUT -v -n -x >&2
grep -E "event=connect " "$MXLOG" >&2
assert "two deliveries, two mxguard sessions" [ "$(mx_count 'event=connect ')" = 2 ]
assert "one session to each destination" \
	bash -c "grep -q 'event=connect .*dst=10.25.1.10:25' '$MXLOG' && grep -q 'event=connect .*dst=10.25.1.11:25' '$MXLOG'"
assert "no session from mxguard itself (dst is never its listener)" \
	[ "$(mx_count "event=connect .*dst=127\\.0\\.0\\.1:$MXG_PORT")" = 0 ]
assert "REDIRECT counter = 2 (the two MTA connections)" [ "$red" = 2 ]
assert "RETURN counter = 2 (mxguard's upstream connections skipped)" [ "$ret" = 2 ]
assert "receiver saw both connections from $SND_IP" \
	[ "$(count_log "$RD/maillog" "[^s]connect from [^ ]*\\[$SND_IP\\]")" = 2 ]
assert "receiver saw no other client" \
	[ "$(grep -E '[^s]connect from' "$RD/maillog" | grep -vc "\\[$SND_IP\\]")" = 0 ]
pass "no loop"
