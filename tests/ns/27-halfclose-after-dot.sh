#!/bin/bash
# 27: a client that shuts down its sending side right after its dot (with
# a pipelined QUIT, then without) still gets the server's final reply
# through mxguard, and the 221; the message is stored once.  Before, the
# client's EOF ended the session: the receiver took the message, the
# client never heard of it and would have sent it again.
. "$(dirname "$0")/../lib/ns.sh"
ns_setup
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@tls.test
rcv_setup
snd_setup
snd_route tls.test 10.25.1.10
with_mxguard && mxg_start

bg "$SND" "$T/hc1.log" python3 "$LIBDIR/halfclose.py" 10.25.1.10 25 alice@tls.test "$T/hc1" --quit
wait_for 30 "half-closing client 1 done" test -e "$T/hc1"
log "client 1 (dot, QUIT, half-close) read: $(cat "$T/hc1")"
assert "client 1 got the final 250 and the 221" [ "$(cat "$T/hc1")" = "250 221" ]
wait_mailbox alice@tls.test 1

bg "$SND" "$T/hc2.log" python3 "$LIBDIR/halfclose.py" 10.25.1.10 25 alice@tls.test "$T/hc2"
wait_for 30 "half-closing client 2 done" test -e "$T/hc2"
log "client 2 (dot, half-close) read: $(cat "$T/hc2")"
case $(cat "$T/hc2") in
250*) ;;
*) fail "client 2 did not get the final 250: $(cat "$T/hc2")" ;;
esac
wait_mailbox alice@tls.test 2
assert "each message stored once" [ "$(all_mailbox_count)" = 2 ]
if with_mxguard; then
	assert "mxguard waited for the final reply twice" \
		[ "$(mx_count 'event=client-eof state=DATA_END action=wait-final-reply')" = 2 ]
	assert "both deliveries over TLS" [ "$(mx_count 'event=message .*tls=TLSv1\.[23] result=accepted')" = 2 ]
	wait_log "$MXLOG" 'event=close .*why="client closed after the final reply"'
fi
pass "a client that half-closes after its dot gets the final reply"
