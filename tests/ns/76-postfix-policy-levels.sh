#!/bin/bash
# 76: tls_policy_file with a real Postfix smtp_tls_policy_maps table, the
# levels without DANE (issue 13): encrypt, secure with match=, fingerprint
# with match= SHA-256 digests (Postfix: smtp_tls_fingerprint_digest =
# sha256, the digests as "openssl x509 -fingerprint -sha256" and
# posttls-finger print them, several separated by "|").  The table is
# checked with Postfix's own postmap (texthash).  Each entry gets the
# outcome Postfix documents (postconf(5) smtp_tls_security_level,
# TLS_README), checked at the receiver, in the sending Postfix's log and
# queue, and in mxguard's per-message event=delivery line:
#   encrypt      enc-ok.test     STARTTLS, self-signed certificate:
#                                delivered (no authentication)
#                enc-plain.test  no STARTTLS: deferred 4.7.10, queued
#   secure       sec-ok.test     match=mx.sec-ok.test:.sec-ok.test, a
#                                certificate for mail.sec-ok.test from the
#                                test CA (mxguard's tls_ca_file): delivered
#                sec-bad.test    match=.sec-bad.test, a certificate from
#                                the test CA for mx.elsewhere.test:
#                                deferred 4.7.5, queued
#   fingerprint  fp-ok.test      match=OTHER|DIGEST of the receiver's
#                                self-signed certificate: delivered
#                fp-bad.test     match=DIGEST of another certificate:
#                                deferred 4.7.5, queued
#                nh-ok.test      match=nexthop:dot-nexthop (Postfix's
#                                strategies), a certificate for
#                                mx.nh-ok.test from the test CA: delivered
#   verify       vh-ok.test      match=hostname, a certificate for the MX
#                                host mx.vh-ok.test: delivered
#                vh-bad.test     match=hostname, a certificate for
#                                vh-bad.test (not the MX host): deferred
#                                4.7.5, queued
# mxguard resolves the MX hosts from an unsigned test zone (as in 43).
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert encok mx.enc-ok.test selfsigned
make_cert secok mail.sec-ok.test
make_cert secbad mx.elsewhere.test
make_cert fpok mx.fp-ok.test selfsigned
make_cert fpbad mx.fp-bad.test selfsigned
make_cert fpother mx.fp-bad.test selfsigned
make_cert nhok mx.nh-ok.test
make_cert vhok mx.vh-ok.test
make_cert vhbad vh-bad.test

i=21
for d in enc-ok enc-plain sec-ok sec-bad fp-ok fp-bad nh-ok vh-ok vh-bad; do
	dnssec_zone "$d.test" unsigned
	dnssec_mx "$d.test" "mx.$d.test" "10.25.1.$i"
	i=$((i + 1))
done
dnssec_start

rcv_listener 10.25.1.21 encok
rcv_listener 10.25.1.22 none
rcv_listener 10.25.1.23 secok
rcv_listener 10.25.1.24 secbad
rcv_listener 10.25.1.25 fpok
rcv_listener 10.25.1.26 fpbad
rcv_listener 10.25.1.27 nhok
rcv_listener 10.25.1.28 vhok
rcv_listener 10.25.1.29 vhbad
rcv_mailbox a@enc-ok.test b@enc-plain.test c@sec-ok.test d@sec-bad.test \
	e@fp-ok.test f@fp-bad.test g@nh-ok.test h@vh-ok.test i@vh-bad.test
rcv_setup
snd_setup
i=21
for d in enc-ok enc-plain sec-ok sec-bad fp-ok fp-bad nh-ok vh-ok vh-bad; do
	snd_route "$d.test" "10.25.1.$i"
	i=$((i + 1))
done

fp() { openssl x509 -in "$T/pki/$1.crt" -noout -fingerprint -sha256 | sed 's/.*=//'; }
fp_ok=$(fp fpok); fp_other=$(fp fpother)
assert "fingerprints in Postfix's AA:BB:... form" bash -c "[[ '$fp_ok' =~ ^([0-9A-F]{2}:){31}[0-9A-F]{2}\$ ]]"

PF=$T/tls_policy
cat >"$PF" <<EOF
# /etc/postfix/tls_policy (smtp_tls_policy_maps = texthash:/etc/postfix/tls_policy)
enc-ok.test      encrypt
enc-plain.test   encrypt protocols=>=TLSv1.2
sec-ok.test      secure match=mx.sec-ok.test:.sec-ok.test
sec-bad.test     secure match=.sec-bad.test
fp-ok.test       fingerprint
	match=$fp_other|$fp_ok
fp-bad.test      fingerprint match=$fp_other
nh-ok.test       secure match=nexthop:dot-nexthop
vh-ok.test       verify match=hostname
vh-bad.test      verify match=hostname
EOF
for kv in "enc-ok.test|encrypt" "sec-ok.test|secure match=mx.sec-ok.test:.sec-ok.test" \
	"fp-ok.test|fingerprint match=$fp_other|$fp_ok" "fp-bad.test|fingerprint match=$fp_other"; do
	# (Postfix keeps a continuation line's leading whitespace)
	assert "postmap reads ${kv%%|*}" [ "$(postmap -c "$SD/etc" -q "${kv%%|*}" "texthash:$PF" | tr -s ' \t' ' ')" = "${kv#*|}" ]
done

mxg_start "$DNSSEC_MXG_CONF
tls_policy_file = $PF"
# (but steering = none's on an unprivileged divert_port, as every scenario
# runs: test_config's)
assert "no config warning for a Postfix table" [ "$(grep 'event=config-warning' "$MXLOG" | grep -vcF 'any local user may bind')" = 0 ]

new_body "$T/body" 2000
declare -A Q=()
for r in a@enc-ok.test b@enc-plain.test c@sec-ok.test d@sec-bad.test e@fp-ok.test f@fp-bad.test \
	g@nh-ok.test h@vh-ok.test i@vh-bad.test; do
	send_mail x@sender.test "$r" "$T/body" "policy file ${r#*@}"
	Q[$r]=$(find_qid "$MSGID")
done

delivered() {	# RCPT LEVEL VERIFY-REGEX
	local r=$1 d=${1#*@} f
	wait_status "${Q[$r]}" "$r" sent
	wait_mailbox "$r" 1
	f=$(mailbox_files "$r" | head -n1)
	assert "$d: received over TLS" [ -n "$(received_tls "$f")" ]
	assert "$d: event=delivery policy_source=override policy_level=$2 verify=$3" \
		grep -qE "event=delivery domains=$d dst=[0-9.]+:25 mx=[^ ]+ policy_source=override policy_level=$2 tls=TLSv1\.[23] cipher=[^ ]+ verify=$3 reply=\"250 " "$MXLOG"
}
deferred() {	# RCPT ENH REASON
	local r=$1 d=${1#*@} q=${Q[$1]}
	wait_status "$q" "$r" deferred
	assert "$d: sender logged $2 ($3)" grep -qE " $q: to=<$r>.* status=deferred .*$2 mxguard: TLS policy of $d not met \\($3" "$SD/maillog"
	wait_deferred "$q"
	assert "$d: still queued at the sender" queue_has "$q"
	assert "$d: nothing at the receiver" [ "$(mailbox_count "$r")" = 0 ]
	assert "$d: no envelope reached the receiver (no MAIL or RCPT)" [ "$(rcv_envelopes "$(snd_route_addr "$d")")" = 0 ]
	assert "$d: no event=delivery line" [ "$(mx_count "event=delivery domains=$d ")" = 0 ]
}

delivered a@enc-ok.test encrypt '[a-z-]+'
deferred b@enc-plain.test 4.7.10 starttls-not-supported
delivered c@sec-ok.test verify success
assert "sec-ok.test: verified for the match= names" grep -qE "event=tls dst=10.25.1.23:25 .*subject=\"/CN=mail.sec-ok.test\" .*verify=success" "$MXLOG"
deferred d@sec-bad.test 4.7.5 certificate-host-mismatch
delivered e@fp-ok.test verify success
deferred f@fp-bad.test 4.7.5 certificate-not-trusted
assert "fp-bad.test: the digest did not match" grep -qE "event=policy-failure domain=fp-bad.test .*detail=\"certificate fingerprint matches none of the 1 configured\"" "$MXLOG"
delivered g@nh-ok.test verify success
delivered h@vh-ok.test verify success
deferred i@vh-bad.test 4.7.5 certificate-host-mismatch
assert "vh-bad.test: checked for the MX host name" grep -qE "event=policy-failure domain=vh-bad.test .*detail=\"certificate does not match mx.vh-bad.test\"" "$MXLOG"

assert "exactly the five good domains delivered" [ "$(all_mailbox_count)" = 5 ]
assert "four messages still queued at the sender" [ "$(queue_count)" = 4 ]
pass "Postfix table: encrypt, secure match=, fingerprint match=, verify match=hostname as Postfix documents"
