#!/bin/bash
# 54: an IPv6 port-25 flow is queued by the ip6tables rules, marked
# INTERCEPT and diverted to mxguard's [::1] listener; mxguard relays it to
# the original IPv6 destination over TLS.  A second IPv6 destination on
# bypass_dst goes direct.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/nfq.sh"
need_mxguard
ns_setup
SND6=fd25::1 RCV6=fd25::10 RCV6B=fd25::20
ip -n "$SND" addr add "$SND6/64" dev snd0 nodad
ip -n "$RCV" addr add "$RCV6/64" dev rcv0 nodad
ip -n "$RCV" addr add "$RCV6B/64" dev rcv0 nodad
make_cert mx6 mx6.v6.test
rcv_mailbox erin@v6.test frank@v6direct.test
rcv_listener 10.25.1.10 mx6
RCV_EXTRA_MAIN="inet_protocols = all" rcv_setup
# IPv6 listeners (the harness's rcv_listener speaks IPv4)
for a in "$RCV6" "$RCV6B"; do
	echo "[$a]:smtp inet n - n - - smtpd -o syslog_name=postfix/rcv6 -o smtpd_tls_security_level=may -o smtpd_tls_chain_files=$T/pki/mx6.pem" >>"$RD/etc/master.cf"
done
pf_reload "$RD"
_v6_listening() { in_rcv ss -Htln "sport = :25" | grep -qF "[$1]:25"; }
wait_for 15 "receiver on [$RCV6]:25" _v6_listening "$RCV6"
wait_for 15 "receiver on [$RCV6B]:25" _v6_listening "$RCV6B"

SND_EXTRA_MAIN="inet_protocols = all
smtp_address_preference = ipv6" snd_setup
printf 'v6.test smtp:[%s]:25\nv6direct.test smtp:[%s]:25\n' "ipv6:$RCV6" "ipv6:$RCV6B" >>"$SD/etc/transport"
pf_reload "$SD"
nfq_start "listen = 127.0.0.1:$MXG_PORT [::1]:$MXG_PORT
bypass_dst = $RCV6B/128"

new_body "$T/body" 2500
send_mail bob@sender.test erin@v6.test "$T/body" "over ipv6"
q1=$(find_qid "$MSGID"); m1=$MSGID
wait_status "$q1" erin@v6.test sent
send_mail bob@sender.test frank@v6direct.test "$T/body" "ipv6 direct"
q2=$(find_qid "$MSGID"); m2=$MSGID
wait_status "$q2" frank@v6direct.test sent
wait_mailbox erin@v6.test 1
wait_mailbox frank@v6direct.test 1
f1=$(msg_file_by_id erin@v6.test "$m1") || fail "message not stored"
f2=$(msg_file_by_id frank@v6direct.test "$m2") || fail "message not stored"
assert "sender delivered to [$RCV6]" grep -qE " $q1: to=<erin@v6.test>, relay=[^ ]*\\[$RCV6\\]:25" "$SD/maillog"
assert "receiver got an IPv6 connection from $SND6" grep -qE "connect from [^ ]*\\[$SND6\\]" "$RD/maillog"
assert "IPv6 flow intercepted: TLS at the receiver" [ -n "$(received_tls "$f1")" ]
assert "mxguard relayed to [$RCV6]:25" grep -qE "event=connect .*dst=\\[?$RCV6\\]?:25" "$MXLOG"
assert "IPv6 SYN got an intercept verdict" grep -qE "event=nfq-verdict .*dst=$RCV6 verdict=intercept" "$MXLOG"
assert "IPv6 bypass destination went direct (no TLS)" [ -z "$(received_tls "$f2")" ]
assert "IPv6 bypass verdict logged" grep -qE "event=nfq-verdict .*dst=$RCV6B verdict=bypass reason=bypass_dst" "$MXLOG"
pass "IPv6 intercept and bypass"
