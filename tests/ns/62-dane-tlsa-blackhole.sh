#!/bin/bash
# 62: a DNSSEC-signed domain with two MX hosts whose TLSA lookups time out:
# mx1.bh.test (preference 10) is delegated to a name server that never
# answers, so its address and TLSA lookups time out; the TLSA owner of
# mx2.bh.test (_tcp.mx2.bh.test) is delegated there too.  The MTA routes
# bh.test statically to mx1's address (a transport map), and the receiver
# there offers no STARTTLS.  In a signed zone every lookup that could have
# produced TLSA records must answer or the verdict defers: dnssec-invalid,
# the mail stays queued, never cleartext.  (Before: "no DANE", level may,
# delivered in cleartext.)
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup

dnssec_zone bh.test signed
dnssec_rr bh.test "bh.test. IN MX 10 mx1.bh.test."
dnssec_rr bh.test "bh.test. IN MX 20 mx2.bh.test."
dnssec_blackhole bh.test mx1
dnssec_rr bh.test "mx2.bh.test. IN A 10.25.1.44"
dnssec_blackhole bh.test _tcp.mx2
dnssec_start
assert "bh.test MX is secure" _dnssec_ad bh.test MX
assert "mx2.bh.test A is secure" _dnssec_ad mx2.bh.test A

rcv_listener 10.25.1.43 none
rcv_listener 10.25.1.44 none
rcv_mailbox a@bh.test
rcv_setup
snd_setup
snd_route bh.test 10.25.1.43

mxg_start "$DNSSEC_MXG_CONF"
new_body "$T/body" 1500
send_mail x@sender.test a@bh.test "$T/body" "signed, TLSA lookups black-holed"
q=$(find_qid "$MSGID")
wait_status "$q" a@bh.test deferred 90

assert "verdict: DANE defers, dnssec-invalid" \
	grep -qE "event=policy domain=bh.test .*source=dane level=defer result=defer reason=dnssec-invalid" "$MXLOG"
assert "message still queued" queue_has "$q"
why=$(queue_reason "$q")
log "queue: $why"
assert "reply was a 4xx, never 5xx" grep -qE "said: 4[0-9][0-9]" <<<"$why"
assert "no MAIL FROM went upstream in cleartext" [ "$(mx_count 'event=command-upstream text="MAIL FROM')" = 0 ]
assert "nothing delivered" [ "$(all_mailbox_count)" = 0 ]
pass "signed domain, TLSA lookups time out: deferred (dnssec-invalid), never cleartext"
