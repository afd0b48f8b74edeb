#!/bin/bash
# 125: a client that sends its paths without angle brackets (MAIL
# FROM:dave@sender.test, RCPT TO:carol@plain.test), as a queueless device
# delivering straight to the MX does, through mxguard in local mode to a
# real Postfix receiver (strict_rfc821_envelopes = no, its default, takes
# the bare form): both messages are accepted and delivered, one
# transaction a command at a time and one pipelined.  mxguard relays the
# paths rebuilt in brackets (the receiver reads the address judged) and
# counts them on the close line.  Before 32382f4 mxguard answered the bare
# MAIL with its own 501 5.5.4 and the device's mail was lost.  Not swaks:
# it brackets whatever it is given.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
rcv_listener 10.25.1.11 none
rcv_mailbox carol@plain.test
rcv_setup
mxg_start

install -m 644 "$LIBDIR/barepath.py" "$T/barepath.py"
id1="bare1-$$@sender.test"
id2="bare2-$$@sender.test"
in_snd /usr/bin/python3 "$T/barepath.py" 10.25.1.11 "$id1" "$id2" \
	>"$T/client.out" 2>&1 || fail "the client's session: $(cat "$T/client.out")"
wait_mailbox carol@plain.test 2
msg_file_by_id carol@plain.test "$id1" >/dev/null || fail "message $id1 not in the mailbox"
msg_file_by_id carol@plain.test "$id2" >/dev/null || fail "message $id2 not in the mailbox"
assert "exactly two messages stored" [ "$(all_mailbox_count)" = 2 ]
wait_rcv_idle
assert "the receiver logged the sender's path both times" \
	[ "$(count_log "$RD/maillog" "qmgr\\[[0-9]+\\]: [0-9A-Za-z]+: from=<dave@sender\\.test>")" = 2 ]
assert "the receiver delivered to carol@plain.test twice" \
	[ "$(count_log "$RD/maillog" "to=<carol@plain\\.test>.* status=sent")" = 2 ]
assert "mxguard took the session from the client" \
	[ "$(mx_count "event=connect client=${SND_IP//./\\.}:[0-9]+ dst=10\\.25\\.1\\.11:25")" = 1 ]
assert "MAIL went upstream in brackets" \
	[ "$(mx_count 'event=command-upstream text="?MAIL FROM:<dave@sender\.test>')" = 2 ]
assert "RCPT went upstream in brackets" \
	[ "$(mx_count 'event=command-upstream text="?RCPT TO:<carol@plain\.test>')" = 2 ]
assert "no bare path went upstream" \
	[ "$(mx_count 'event=command-upstream text="?(MAIL FROM: ?|RCPT TO:)[a-z]')" = 0 ]
wait_log "$MXLOG" "event=close .* bare_paths=4 "
pass "bare MAIL and RCPT paths relayed in brackets and delivered by Postfix"
