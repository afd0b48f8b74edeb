#!/bin/bash
# 33: MTA-STS enforce, the MX host (mx1.enf.test, valid certificate) is not
# matched by any mx pattern of the policy: deferred, validation-failure,
# before any TLS is attempted.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.enf.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@enf.test
rcv_setup
snd_setup
snd_route enf.test 10.25.1.10
dns_records <<'Z'
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
_mta-sts.enf IN TXT "v=STSv1; id=1"
mta-sts.enf IN A 10.25.1.80
Z
dns_start
sts_site enf.test
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: *.mail.enf.test
mx: mx1.enf.test.example
max_age: 86400
P
sts_start
sts_mxguard_start

sts_send alice@enf.test "sts mx unlisted"
sts_assert_deferred "$QID" alice@enf.test validation-failure
assert "mxguard said the MX is not in the policy" \
	grep -qE "event=policy domain=enf.test .*mx=mx1.enf.test .*result=defer reason=validation-failure.*not in the MTA-STS policy" "$MXLOG"
assert "receiver saw no TLS session" [ "$(rcv_tls_sessions)" = 0 ]
pass "enforce, MX not in the policy: deferred (validation-failure)"
