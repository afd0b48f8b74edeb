#!/bin/bash
# 124: 123 over IPv6, with mxguard's own local-mode rules (NFQUEUE
# steering, `mxguard rules install`): the sender has a second IPv6 address
# and its Postfix sends from it (smtp_bind_address6); the receiver sees
# that address, not the first one the kernel would pick.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
SND6=fd25::1 SND6B=fd25::5 RCV6=fd25::10
ip -n "$SND" addr add "$SND6/64" dev snd0 nodad
# deprecated (preferred_lft 0): the kernel's source selection never
# takes it (RFC 6724 rule 3), a bind to it still works; otherwise it
# prefers the address added last, the one Postfix binds to anyway
ip -n "$SND" addr add "$SND6B/64" dev snd0 nodad preferred_lft 0
ip -n "$RCV" addr add "$RCV6/64" dev rcv0 nodad
make_cert mx6 mx6.v6.test
rcv_mailbox erin@v6.test
rcv_listener 10.25.1.10 mx6
RCV_EXTRA_MAIN="inet_protocols = all" rcv_setup
echo "[$RCV6]:smtp inet n - n - - smtpd -o syslog_name=postfix/rcv6 -o smtpd_tls_security_level=may -o smtpd_tls_chain_files=$T/pki/mx6.pem" >>"$RD/etc/master.cf"
pf_reload "$RD"
_v6_listening() { in_rcv ss -Htln "sport = :25" | grep -qF "[$1]:25"; }
wait_for 15 "receiver on [$RCV6]:25" _v6_listening "$RCV6"

SND_EXTRA_MAIN="inet_protocols = all
smtp_address_preference = ipv6
smtp_bind_address6 = $SND6B" snd_setup
printf 'v6.test smtp:[%s]:25\n' "ipv6:$RCV6" >>"$SD/etc/transport"
pf_reload "$SD"
nfq_start "listen = 127.0.0.1:$MXG_PORT [::1]:$MXG_PORT"

new_body "$T/body" 2500
send_mail bob@sender.test erin@v6.test "$T/body" "from the second address"
q=$(find_qid "$MSGID"); m=$MSGID
wait_status "$q" erin@v6.test sent
wait_mailbox erin@v6.test 1
f=$(msg_file_by_id erin@v6.test "$m") || fail "message not stored"
assert "relayed by mxguard: TLS at the receiver" [ -n "$(received_tls "$f")" ]
assert "mxguard took the session from [$SND6B]" \
	grep -qE "event=connect client=\\[$SND6B\\]:[0-9]+ dst=\\[$RCV6\\]:25" "$MXLOG"
assert "the receiver saw a connection from [$SND6B]" \
	grep -qE "postfix/rcv6/smtpd\\[[0-9]+\\]: connect from [^ ]*\\[$SND6B\\]" "$RD/maillog"
assert "and none from [$SND6]" \
	[ "$(count_log "$RD/maillog" "postfix/rcv6/smtpd\\[[0-9]+\\]: connect from [^ ]*\\[$SND6\\]")" = 0 ]
assert "the greeting line names the source" \
	grep -qE "event=greeting dst=\\[$RCV6\\]:25 src=$SND6B code=220 " "$MXLOG"
pass "an IPv6 upstream leg leaves from the MTA's address"
