#!/bin/bash
# 82: an attacker on the path drops mxguard's MX queries for a DANE domain.
# mxd.test is signed and publishes a usable TLSA record for its MX host;
# the receiver at its address offers no STARTTLS (stripped).  A netfilter
# rule in the sender's namespace drops every query for "mxd.test MX" on its
# way from unbound to the authoritative server, so the MX lookup fails
# (SERVFAIL or timeout, no DNSSEC extended error) while the zone's other
# names still answer.  A failure cannot show that DANE does not apply:
# the delivery is deferred (dnssec-invalid), never made in cleartext.
# (Before: "DANE not known to apply", level may, delivered in cleartext.)
# Then the rule goes: the MX answers, DANE applies, and the missing
# STARTTLS defers the mail again, now as dane-required.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert mxd mx.mxd.test

dnssec_zone mxd.test signed
dnssec_mx mxd.test mx.mxd.test 10.25.1.45
dnssec_tlsa mxd.test mx.mxd.test 3 1 1 "$T/pki/mxd.crt"
dnssec_start			# (no MX query yet: unbound would cache it)
assert "the TLSA record is secure" _dnssec_ad _25._tcp.mx.mxd.test TLSA

rcv_listener 10.25.1.45 none
rcv_mailbox a@mxd.test
rcv_setup
snd_setup
snd_route mxd.test 10.25.1.45

# the question "mxd.test MX" (QNAME 3 mxd 4 test 0, QTYPE 15), whichever
# transport unbound uses
DROP_MX=(-d "$DNSSEC_IP" -m string --algo bm --hex-string '|036d7864047465737400000f|' -j DROP)
in_snd iptables -I OUTPUT -p udp --dport 53 "${DROP_MX[@]}" &&
	in_snd iptables -I OUTPUT -p tcp --dport 53 "${DROP_MX[@]}" ||
	fail "iptables string match"
mxg_start "$DNSSEC_MXG_CONF"
new_body "$T/body" 1500
send_mail x@sender.test a@mxd.test "$T/body" "MX queries dropped"
q=$(find_qid "$MSGID")
wait_status "$q" a@mxd.test 'sent|deferred' 90
assert "deferred, not delivered (in cleartext)" [ "$(snd_status "$q" a@mxd.test)" = deferred ]

assert "the MX query was dropped" [ "$(in_snd iptables -L OUTPUT -v -x -n | awk '/STRING/ { n += $1 } END { print n + 0 }')" -gt 0 ]
assert "verdict: DANE defers, dnssec-invalid" \
	grep -qE "event=policy domain=mxd.test .*source=dane level=defer result=defer reason=dnssec-invalid .*detail=\"MX lookup for mxd.test failed" "$MXLOG"
why=$(queue_reason "$q")
log "queue: $why"
assert "reply was a 4xx, never 5xx" grep -qE "said: 4[0-9][0-9]" <<<"$why"
assert "no MAIL FROM went upstream" [ "$(mx_count 'event=command-upstream text="MAIL FROM')" = 0 ]
assert "nothing delivered" [ "$(all_mailbox_count)" = 0 ]

# the path is clean again: DANE applies, and the missing STARTTLS defers
in_snd iptables -D OUTPUT -p udp --dport 53 "${DROP_MX[@]}"
in_snd iptables -D OUTPUT -p tcp --dport 53 "${DROP_MX[@]}"
wait_for 30 "mxd.test MX secure again" _dnssec_ad mxd.test MX
snd_flush
wait_log "$MXLOG" "event=policy-failure domain=mxd.test .*source=dane level=dane reason=dane-required detail=\"the server did not offer STARTTLS\"" 90
assert "still nothing delivered" [ "$(all_mailbox_count)" = 0 ]
assert "still no MAIL FROM upstream" [ "$(mx_count 'event=command-upstream text="MAIL FROM')" = 0 ]
pass "MX queries dropped: deferred (dnssec-invalid), never cleartext; then DANE applies"
