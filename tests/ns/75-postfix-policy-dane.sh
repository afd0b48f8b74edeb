#!/bin/bash
# 75: tls_policy_file with a real Postfix smtp_tls_policy_maps table, the
# DANE levels (issue 13).  The table is checked with Postfix's own
# postmap (texthash) before mxguard reads it.  DNSSEC as in 40-49 (knot,
# ldns-signzone, unbound validating with the test trust anchors).  Each
# entry gets the outcome Postfix documents for it (postconf(5)
# smtp_tls_security_level, TLS_README "Mandatory DANE" / "Opportunistic
# DANE"), checked at the receiver, in the sending Postfix's log and queue,
# and in mxguard's per-message event=delivery line:
#   dane-only  donly-ok.test    signed, TLSA 3 1 1 of the key: delivered,
#                               policy_level=dane verify=success
#              donly-bad.test   signed, TLSA of another key: deferred
#                               (4.7.5 tlsa-invalid), still queued
#              donly-none.test  unsigned zone, no usable TLSA: deferred
#                               (4.7.10 dane-required), still queued
#   dane       dmay-ok.test     signed, TLSA of the key: delivered,
#                               DANE-verified
#              dmay-plain.test  unsigned, no TLSA: delivered
#                               opportunistically (policy_level=may, TLS)
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert donlyok mx.donly-ok.test
make_cert donlybad mx.donly-bad.test
make_cert donlynone mx.donly-none.test
make_cert dmayok mx.dmay-ok.test
make_cert dmayplain mx.dmay-plain.test
make_cert unrelated mx.donly-bad.test

dnssec_zone donly-ok.test signed
dnssec_mx donly-ok.test mx.donly-ok.test 10.25.1.11
dnssec_tlsa donly-ok.test mx.donly-ok.test 3 1 1 "$T/pki/donlyok.crt"
dnssec_zone donly-bad.test signed
dnssec_mx donly-bad.test mx.donly-bad.test 10.25.1.12
dnssec_tlsa donly-bad.test mx.donly-bad.test 3 1 1 "$T/pki/unrelated.crt"
dnssec_zone donly-none.test unsigned
dnssec_mx donly-none.test mx.donly-none.test 10.25.1.13
dnssec_zone dmay-ok.test signed
dnssec_mx dmay-ok.test mx.dmay-ok.test 10.25.1.14
dnssec_tlsa dmay-ok.test mx.dmay-ok.test 3 1 1 "$T/pki/dmayok.crt"
dnssec_zone dmay-plain.test unsigned
dnssec_mx dmay-plain.test mx.dmay-plain.test 10.25.1.15
dnssec_start
assert "TLSA of mx.donly-ok.test is secure" _dnssec_ad _25._tcp.mx.donly-ok.test TLSA
assert "TLSA of mx.dmay-ok.test is secure" _dnssec_ad _25._tcp.mx.dmay-ok.test TLSA
assert "dmay-plain.test is not signed" _dnssec_noad dmay-plain.test MX

rcv_listener 10.25.1.11 donlyok
rcv_listener 10.25.1.12 donlybad
rcv_listener 10.25.1.13 donlynone
rcv_listener 10.25.1.14 dmayok
rcv_listener 10.25.1.15 dmayplain
rcv_mailbox a@donly-ok.test b@donly-bad.test c@donly-none.test \
	d@dmay-ok.test e@dmay-plain.test
rcv_setup
snd_setup
snd_route donly-ok.test 10.25.1.11
snd_route donly-bad.test 10.25.1.12
snd_route donly-none.test 10.25.1.13
snd_route dmay-ok.test 10.25.1.14
snd_route dmay-plain.test 10.25.1.15

# The table as a Postfix site would have it (comments, a continuation line,
# a [host] key); Postfix itself must read every entry the same way.
PF=$T/tls_policy
cat >"$PF" <<'EOF'
# /etc/postfix/tls_policy (smtp_tls_policy_maps = texthash:/etc/postfix/tls_policy)
donly-ok.test     dane-only
donly-bad.test    dane-only

# an unsigned zone: mandatory DANE cannot be met
donly-none.test
	dane-only
dmay-ok.test      dane
[dmay-plain.test] dane
EOF
for kv in "donly-ok.test dane-only" "donly-bad.test dane-only" \
	"donly-none.test dane-only" "dmay-ok.test dane" "[dmay-plain.test] dane"; do
	assert "postmap reads '$kv'" [ "$(postmap -c "$SD/etc" -q "${kv% *}" "texthash:$PF" | tr -d ' \t')" = "${kv##* }" ]
done

mxg_start "$DNSSEC_MXG_CONF
tls_policy_file = $PF"
# one warning: the [host] key is a recipient domain to mxguard, not a
# relay's next hop as in Postfix (logged by each process that loads it)
assert "a config warning for the [host] key" grep -qF "event=config-warning note=\"$PF:9: [dmay-plain.test] is taken as the recipient domain dmay-plain.test" "$MXLOG"
# (steering = none on an unprivileged divert_port, as every scenario runs:
# its warning is test_config's)
assert "no other config warning" [ "$(grep 'event=config-warning' "$MXLOG" | grep -vF 'any local user may bind' | grep -vcF '[dmay-plain.test] is taken as')" = 0 ]

new_body "$T/body" 2000
declare -A Q=()
for r in a@donly-ok.test b@donly-bad.test c@donly-none.test d@dmay-ok.test e@dmay-plain.test; do
	send_mail x@sender.test "$r" "$T/body" "policy file ${r#*@}"
	Q[$r]=$(find_qid "$MSGID")
done

# delivered RCPT LEVEL VERIFY-REGEX: the receiver has it over TLS, the
# sender logged status=sent, mxguard's event=delivery line says the
# override's level and the certificate check's result
delivered() {
	local r=$1 d=${1#*@} f
	wait_status "${Q[$r]}" "$r" sent
	wait_mailbox "$r" 1
	f=$(mailbox_files "$r" | head -n1)
	assert "$d: received over TLS" [ -n "$(received_tls "$f")" ]
	assert "$d: event=delivery policy_source=override policy_level=$2 verify=$3" \
		grep -qE "event=delivery domains=$d dst=[0-9.]+:25 mx=[^ ]+ policy_source=override policy_level=$2 tls=TLSv1\.[23] cipher=[^ ]+ verify=$3 reply=\"250 " "$MXLOG"
}
# deferred RCPT ENH REASON: status=deferred with the enhanced code in the
# sender's log, still in its queue, nothing at the receiver
deferred() {
	local r=$1 d=${1#*@} q=${Q[$1]}
	wait_status "$q" "$r" deferred
	assert "$d: sender logged $2 ($3)" grep -qE " $q: to=<$r>.* status=deferred .*$2 mxguard: TLS policy of $d not met \\($3" "$SD/maillog"
	wait_deferred "$q"
	assert "$d: still queued at the sender" queue_has "$q"
	assert "$d: nothing at the receiver" [ "$(mailbox_count "$r")" = 0 ]
	assert "$d: no envelope reached the receiver (no MAIL or RCPT)" [ "$(rcv_envelopes "$(snd_route_addr "$d")")" = 0 ]
	assert "$d: no event=delivery line" [ "$(mx_count "event=delivery domains=$d ")" = 0 ]
}

# dane-only
delivered a@donly-ok.test dane success
assert "donly-ok.test: DANE decided it under the override" grep -qE "event=policy domain=donly-ok.test .*source=override level=dane result=ok" "$MXLOG"
assert "donly-ok.test: DANE-EE matched" grep -qE "event=tls dst=10.25.1.11:25 .*verify=success" "$MXLOG"
deferred b@donly-bad.test 4.7.5 tlsa-invalid
deferred c@donly-none.test 4.7.10 dane-required
assert "donly-none.test: deferred by the override, dane-required" grep -qE "event=policy domain=donly-none.test .*source=override level=defer result=defer reason=dane-required" "$MXLOG"

# dane (opportunistic)
delivered d@dmay-ok.test dane success
assert "dmay-ok.test: DANE-verified" grep -qE "event=tls dst=10.25.1.14:25 .*verify=success" "$MXLOG"
delivered e@dmay-plain.test may '[a-z-]+'
assert "dmay-plain.test: opportunistic under the override (no TLSA)" grep -qE "event=policy domain=dmay-plain.test .*source=override level=may result=ok" "$MXLOG"
assert "dmay-plain.test: DANE lookup found no usable TLSA" grep -qE "event=dane-lookup domain=dmay-plain.test .*state=none" "$MXLOG"

assert "exactly the three good domains delivered" [ "$(all_mailbox_count)" = 3 ]
assert "two messages still queued at the sender" [ "$(queue_count)" = 2 ]
pass "Postfix table: dane-only verified/deferred/deferred, dane verified/opportunistic"
