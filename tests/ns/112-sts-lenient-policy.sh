#!/bin/bash
# 112: MTA-STS enforce published with slips RFC 8461's ABNF refuses for
# their layout alone: the TXT record "v=STSv1; ID = 2026-01-11" and a policy
# file with a byte order mark, CRLF and LF mixed, an empty line between
# fields, "Mode: Enforce", an mx with a trailing dot and max_age over the
# maximum (docs/policy.md, "Policy file and TXT record: what is
# accepted").  mxguard takes the policy (before, none: the message went
# out under the default level, open to a downgrade), verifies the MX's
# certificate, and logs what it let pass.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
enf_receiver mx1.enf.test
dns_records <<'Z'
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
_mta-sts.enf IN TXT "v=STSv1; ID = 2026-01-11"
mta-sts.enf IN A 10.25.1.80
Z
dns_start
sts_site enf.test
printf '\357\273\277version: STSv1\r\n\r\nMode: Enforce\nmx: mx1.enf.test.\r\nmax_age: 99999999999\r\n' |
	sts_policy enf.test
sts_start
sts_mxguard_start

new_body "$T/body" 2000
send_mail bob@sender.test alice@enf.test "$T/body" "sts lenient policy"
qid=$(find_qid "$MSGID")
wait_status "$qid" alice@enf.test sent
wait_mailbox alice@enf.test 1
f=$(msg_file_by_id alice@enf.test "$MSGID") || fail "message not in mailbox"
assert "receiver's Received header shows TLS" [ -n "$(received_tls "$f")" ]
assert "mxguard decided verify for mx1.enf.test by MTA-STS" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 mx=mx1.enf.test source=mta-sts level=verify result=ok" "$MXLOG"
assert "mxguard logged the TXT record's slips" \
	grep -qE "event=sts-txt domain=enf.test id=2026-01-11 result=ok lenient=txt-whitespace-around-equals,txt-key-case,txt-id-characters$" "$MXLOG"
assert "mxguard logged the policy file's slips" \
	grep -qE "event=sts-fetch domain=enf.test id=2026-01-11 result=ok mode=enforce max_age=31557600 mx_patterns=1 lenient=bom,blank-line,key-case,value-case,max-age-clamped,mx-trailing-dot$" "$MXLOG"
out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" policy enf.test 2>/dev/null) || true
log "mxguard policy enf.test:"; printf '%s\n' "$out" >&2
assert "the policy is cached under the record's id" grep -qE "MTA-STS policy \\(cached\\): id=2026-01-11 mode=enforce" <<<"$out"
pass "MTA-STS enforce published with layout slips: enforced, the slips logged"
