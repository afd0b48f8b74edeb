#!/bin/bash
# 123: the upstream leg leaves from the address the MTA chose.  The sender
# host has two addresses on its uplink, and its Postfix sends from the
# second one (smtp_bind_address: the address in the domain's SPF record,
# with its reverse DNS and HELO name).  Before, mxguard relayed the
# session from the address the kernel picked (the first one): the MX saw
# an address SPF does not list, and would reject the mail with a 5xx.
# With the default upstream_source (auto: client in local mode) the
# receiver sees the second address, in its smtpd log and in the Received
# header; with upstream_source = system it sees the first one again (the
# knob does something).
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
SRC2=10.25.1.5
ip -n "$SND" addr add "$SRC2/24" dev snd0 || fail "second sender address"
make_cert mx1 mx1.tls.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@tls.test
rcv_setup
SND_EXTRA_MAIN="smtp_bind_address = $SRC2" snd_setup
snd_route tls.test 10.25.1.10

# deliver LABEL N: one message, stored as the Nth; prints the address the
# receiver's topmost Received header names
deliver() {
	new_body "$T/body$2" 2000
	send_mail bob@sender.test alice@tls.test "$T/body$2" "$1"
	local q m=$MSGID f
	q=$(find_qid "$m")
	wait_status "$q" alice@tls.test sent
	wait_mailbox alice@tls.test "$2"
	f=$(msg_file_by_id alice@tls.test "$m") || fail "$1: message not stored"
	[ -n "$(received_tls "$f")" ] || fail "$1: not relayed over TLS"
	awk '/^$/ {exit} {print}' "$f" | awk '
		/^Received:/ { if (n++) exit; r = $0; next }
		/^[ \t]/ && n == 1 { r = r $0; next }
		n == 1 { exit }
		END { print r }' | sed -nE 's/^Received: from [^ ]+ \([^[]*\[([0-9.]+)\]\).*/\1/p'
}

mxg_start "workers = 1"
got=$(deliver "auto" 1)
assert "mxguard took the session from the MTA's chosen address" \
	[ "$(mx_count "event=connect client=${SRC2//./\\.}:[0-9]+ dst=10\\.25\\.1\\.10:25")" = 1 ]
assert "the receiver's Received header names $SRC2 (got: $got)" [ "$got" = "$SRC2" ]
assert "the receiver's smtpd saw a connection from $SRC2" \
	[ "$(count_log "$RD/maillog" "rcv-10\\.25\\.1\\.10/smtpd\\[[0-9]+\\]: connect from [^ ]*\\[${SRC2//./\\.}\\]")" -ge 1 ]
assert "nor from $SND_IP" \
	[ "$(count_log "$RD/maillog" "rcv-10\\.25\\.1\\.10/smtpd\\[[0-9]+\\]: connect from [^ ]*\\[${SND_IP//./\\.}\\]")" = 0 ]
assert "the greeting line names the source" \
	[ "$(mx_count "event=greeting dst=10\\.25\\.1\\.10:25 src=${SRC2//./\\.} code=220 ")" = 1 ]
assert "no bind failed" [ "$(mx_count 'event=upstream-bind-failed')" = 0 ]

# upstream_source = system: the kernel's choice, as before the key
mxg_stop
mxg_start "workers = 1
upstream_source = system"
got=$(deliver "system" 2)
assert "system: the MTA still connected from $SRC2" \
	[ "$(mx_count "event=connect client=${SRC2//./\\.}:[0-9]+ ")" = 1 ]
assert "system: the receiver's Received header names $SND_IP (got: $got)" [ "$got" = "$SND_IP" ]
assert "system: the greeting line names no source" \
	[ "$(mx_count "event=greeting dst=10\\.25\\.1\\.10:25 code=220 ")" = 1 ]
pass "the upstream leg leaves from the MTA's address (upstream_source = auto), the system's with system"
