#!/bin/bash
# 12: the upstream server dies in the middle of DATA: the sender never hears
# a 2xx for the message; it stays in the sender's queue (status=deferred).
# Twice: a server that closes (FIN) after 20000 bytes of a 200 kB body, and
# one that resets (RST) the connection after the first bytes of content.
. "$(dirname "$0")/../lib/ns.sh"
ns_setup
make_cert dies mx.dies.test
snd_setup
bad_start 10.25.1.12 --mode die --after 20000 --cert "$T/pki/dies.pem"
BADLOG1=$BADLOG
bad_start 10.25.1.14 --mode die --rst --after 1 --cert "$T/pki/dies.pem"
BADLOG2=$BADLOG
snd_route dies.test 10.25.1.12
snd_route rst.test 10.25.1.14
with_mxguard && mxg_start

new_body "$T/body" 200000
for rcpt in dave@dies.test rita@rst.test; do
	send_mail bob@sender.test "$rcpt" "$T/body" "dies mid-DATA"
	qid=$(find_qid "$MSGID")
	wait_status "$qid" "$rcpt" deferred
	assert "message to $rcpt still in the sender's queue" queue_has "$qid"
	log "queue: $(queue_reason "$qid")"
	assert "queue entry is deferred" bash -c "postqueue -c '$SD/etc' -j | grep '\"$qid\"' | grep -q '\"queue_name\": *\"deferred\"'"
	assert "nothing says delivered" [ "$(count_log "$SD/maillog" " $qid: .*status=sent")" = 0 ]
done
for BADLOG in "$BADLOG1" "$BADLOG2"; do
	wait_log "$BADLOG" "died after=" 5
	assert "badsmtp died after receiving part of DATA" grep -qE "data-bytes [0-9]+ " "$BADLOG"
	assert "badsmtp never accepted a message" [ "$(count_log "$BADLOG" ' message ')" = 0 ]
done
if with_mxguard; then
	assert "mxguard saw the session" grep -q "event=connect " "$MXLOG"
	assert "mxguard did not log a delivered message" \
		lacks 'event=message .*result=(sent|ok|delivered|accepted)' cat "$MXLOG"
fi
pass "mid-DATA death leaves the message queued"
