#!/bin/bash
# 34: MTA-STS enforce and no STARTTLS: (a) a receiver that does not offer
# it, (b) a man in the middle that strips it from a receiver that does.
# Both stay queued with starttls-not-supported; nothing crosses in clear.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
make_cert mx2 mx2.strip.test
rcv_listener 10.25.1.10 none
rcv_listener 10.25.1.12 mx2
rcv_mailbox alice@plain.test carol@strip.test
rcv_setup
snd_setup
snd_route plain.test 10.25.1.10
snd_route strip.test 10.25.1.11
bad_start 10.25.1.11 --mode mitm --upstream 10.25.1.12:25
dns_records <<'Z'
plain IN MX 10 mx1.plain
mx1.plain IN A 10.25.1.10
_mta-sts.plain IN TXT "v=STSv1; id=1"
mta-sts.plain IN A 10.25.1.80
strip IN MX 10 mx2.strip
mx2.strip IN A 10.25.1.11
_mta-sts.strip IN TXT "v=STSv1; id=1"
mta-sts.strip IN A 10.25.1.80
Z
dns_start
sts_site plain.test
sts_site strip.test
sts_policy plain.test <<'P'
version: STSv1
mode: enforce
mx: mx1.plain.test
max_age: 86400
P
sts_policy strip.test <<'P'
version: STSv1
mode: enforce
mx: mx2.strip.test
max_age: 86400
P
sts_start
sts_mxguard_start

sts_send alice@plain.test "no starttls"
q1=$QID
sts_send carol@strip.test "stripped starttls"
q2=$QID
sts_assert_deferred "$q1" alice@plain.test starttls-not-supported
sts_assert_deferred "$q2" carol@strip.test starttls-not-supported
assert "the stripping MITM relayed no RCPT" [ "$(count_log "$BADLOG" 'recv .*RCPT')" = 0 ]
assert "the plain receiver saw no MAIL or RCPT" [ "$(rcv_envelopes 10.25.1.10)" = 0 ]
assert "the receiver behind the MITM saw no MAIL or RCPT" [ "$(rcv_envelopes 10.25.1.12)" = 0 ]
pass "enforce without STARTTLS (absent or stripped): deferred"
