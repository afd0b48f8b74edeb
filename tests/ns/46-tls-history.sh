#!/bin/bash
# 46: TLS history (downgrade detection beyond published policy).  No DNS
# policy at all (no DNSSEC, no MTA-STS): the history alone decides.
#   10.25.1.61  delivered with TLS once; then the server stops offering
#               STARTTLS: the next message stays queued (source
#               tls-history) and mxguard logs the stripping;
#   10.25.1.62  delivered with TLS once; then a middlebox masks STARTTLS
#               as XXXXXXXA: stays queued, the detail names the signature;
#   10.25.1.66  the same, but an override (tls_policy = hist-ovr.test may)
#               turns the history off for that destination: delivered in
#               cleartext.
. "$(dirname "$0")/../lib/ns.sh"
need_mxguard
ns_setup
make_cert hist mx.hist.test
snd_setup
snd_route hist.test 10.25.1.61
snd_route hist-mb.test 10.25.1.62
snd_route hist-ovr.test 10.25.1.66
mxg_start "tls_history = yes
tls_history_window = 1d
tls_policy = hist-ovr.test may"

bad_stop() {	# PID ADDR
	kill -TERM "$1" 2>/dev/null
	wait_for 10 "badsmtp on $2 gone" not_port "$2"
	wait "$1" 2>/dev/null
}
not_port() { ! _port_open "$RCV" "$1" 25; }

new_body "$T/body" 1500
deliver_once() {	# DOMAIN ADDR: a first message over TLS
	bad_start "$2" --mode normal --cert "$T/pki/hist.pem" --hostname "mx.$1"
	local pid=$BG_PID log=$BADLOG
	send_mail x@sender.test "a@$1" "$T/body" "first to $1"
	local q
	q=$(find_qid "$MSGID")
	wait_status "$q" "a@$1" sent
	assert "$1: first message went over TLS" grep -q "tls-handshake ok" "$log"
	bad_stop "$pid" "$2"
}

# 1. the server stops offering STARTTLS
deliver_once hist.test 10.25.1.61
bad_start 10.25.1.61 --mode nostarttls --hostname mx.hist.test
send_mail x@sender.test a@hist.test "$T/body" "second to hist.test"
q=$(find_qid "$MSGID")
wait_status "$q" a@hist.test deferred
assert "hist.test: TLS required by the history" grep -qE "event=policy domain=hist.test .*source=tls-history level=encrypt result=ok" "$MXLOG"
assert "hist.test: policy failure starttls-not-supported" grep -qE "event=policy-failure domain=hist.test .*source=tls-history level=encrypt reason=starttls-not-supported" "$MXLOG"
assert "hist.test: logged as stripped" grep -qE "event=starttls-stripped source=tls-history .*dst=10.25.1.61 what=starttls-not-offered" "$MXLOG"
assert "hist.test: nothing sent in cleartext" [ "$(count_log "$BADLOG" "recv clear MAIL")" = 0 ]
assert "hist.test: still queued" queue_has "$q"

# 2. a middlebox masks STARTTLS
deliver_once hist-mb.test 10.25.1.62
bad_start 10.25.1.162 --mode normal --cert "$T/pki/hist.pem" --hostname mx.hist-mb.test
bad_start 10.25.1.62 --mode mitm --upstream 10.25.1.162:25
send_mail x@sender.test a@hist-mb.test "$T/body" "second to hist-mb.test"
q=$(find_qid "$MSGID")
wait_status "$q" a@hist-mb.test deferred
assert "hist-mb.test: middlebox named in the failure" grep -qE "event=policy-failure domain=hist-mb.test .*source=tls-history .*XXXXXXXA" "$MXLOG"
assert "hist-mb.test: logged as stripped" grep -qE "event=starttls-stripped source=tls-history .*dst=10.25.1.62" "$MXLOG"

# 3. an override turns the history off
deliver_once hist-ovr.test 10.25.1.66
bad_start 10.25.1.66 --mode nostarttls --hostname mx.hist-ovr.test
send_mail x@sender.test a@hist-ovr.test "$T/body" "second to hist-ovr.test"
q=$(find_qid "$MSGID")
wait_status "$q" a@hist-ovr.test sent
assert "hist-ovr.test: the override decided" grep -qE "event=policy domain=hist-ovr.test .*source=override level=may" "$MXLOG"
assert "hist-ovr.test: delivered in cleartext" grep -q "recv clear MAIL" "$BADLOG"
pass "TLS history: stripped STARTTLS after TLS stays queued; override turns it off"
