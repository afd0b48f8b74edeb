#!/bin/bash
# 60: require_tls = yes and a domain with an MTA-STS *testing* policy whose
# STARTTLS a man in the middle strips.  A testing policy never weakens what
# applies without it: require_tls makes the verdict encrypt (report only
# for the policy's own check), so the mail stays queued in the sender and
# nothing reaches the receiver.  (Before: the report-only verify verdict
# skipped require_tls and the mail went out in cleartext.)
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
make_cert mx2 mx2.tst.test
rcv_listener 10.25.1.12 mx2
rcv_mailbox carol@tst.test
rcv_setup
snd_setup
snd_route tst.test 10.25.1.11
bad_start 10.25.1.11 --mode mitm --upstream 10.25.1.12:25
dns_records <<'Z'
tst IN MX 10 mx2.tst
mx2.tst IN A 10.25.1.11
_mta-sts.tst IN TXT "v=STSv1; id=1"
mta-sts.tst IN A 10.25.1.80
Z
dns_start
sts_site tst.test
sts_policy tst.test <<'P'
version: STSv1
mode: testing
mx: mx2.tst.test
max_age: 86400
P
sts_start
MXG_EXTRA_CONF="require_tls = yes" sts_mxguard_start

sts_send carol@tst.test "testing policy, stripped, require_tls"
sts_assert_deferred "$QID" carol@tst.test starttls-not-supported
assert "verdict: encrypt from require_tls, testing policy report only" \
	grep -qE "event=policy domain=tst.test .*source=require_tls level=encrypt .*report_only=yes" "$MXLOG"
assert "the middlebox did strip STARTTLS" grep -q "stripped STARTTLS" "$BADLOG"
assert "the stripping MITM relayed no RCPT" [ "$(count_log "$BADLOG" 'recv .*RCPT')" = 0 ]
assert "the receiver got nothing (no MAIL or RCPT)" [ "$(rcv_envelopes 10.25.1.12)" = 0 ]
pass "require_tls + MTA-STS testing, STARTTLS stripped: deferred"
