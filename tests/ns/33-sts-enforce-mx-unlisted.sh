#!/bin/bash
# 33: MTA-STS enforce, the MX host (mx1.enf.test, valid certificate) is not
# matched by any mx pattern of the policy: deferred, validation-failure,
# before any TLS is attempted.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
sts_enf_world mx1.enf.test
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
