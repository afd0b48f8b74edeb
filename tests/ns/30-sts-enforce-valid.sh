#!/bin/bash
# 30: MTA-STS enforce, the MX presents a valid certificate for its name:
# mxguard fetches the policy over HTTPS (nginx, test CA), finds the MX host
# owning the destination address, verifies the certificate for it, and the
# message arrives over TLS.  The policy ends up in the persistent cache.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
sts_enf_world mx1.enf.test "" 20260101
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
sts_mxguard_start

new_body "$T/body" 2000
send_mail bob@sender.test alice@enf.test "$T/body" "sts enforce valid"
qid=$(find_qid "$MSGID")
wait_status "$qid" alice@enf.test sent
wait_mailbox alice@enf.test 1
f=$(msg_file_by_id alice@enf.test "$MSGID") || fail "message not in mailbox"
assert "receiver's Received header shows TLS" [ -n "$(received_tls "$f")" ]
assert "mxguard decided verify for mx1.enf.test by MTA-STS" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 mx=mx1.enf.test source=mta-sts level=verify result=ok" "$MXLOG"
assert "mxguard fetched the policy" grep -qE "event=sts-fetch domain=enf.test id=20260101 result=ok mode=enforce" "$MXLOG"
assert "nginx served the policy once" [ "$(sts_fetches enf.test)" = 1 ]
# this world's resolver is in the receiver's namespace, not on loopback
assert "mxguard warns: dns_servers is not a loopback address" \
	grep -qE "event=dns-server-remote server=$DNS_RESOLVER note=" "$MXLOG"
out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" policy enf.test 2>/dev/null) || true
log "mxguard policy enf.test:"; printf '%s\n' "$out" >&2
assert "mxguard policy shows the cached policy" grep -qE "MTA-STS policy \\(cached\\): id=20260101 mode=enforce" <<<"$out"
pass "MTA-STS enforce with a valid certificate: delivered over verified TLS"
