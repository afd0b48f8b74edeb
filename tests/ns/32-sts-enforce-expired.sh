#!/bin/bash
# 32: MTA-STS enforce, the MX presents an expired certificate: the mail stays queued
# at the sender with a 4xx naming certificate-expired (RFC 8460), and mxguard logged it.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
sts_enf_world mx1.enf.test expired
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
sts_mxguard_start

sts_send alice@enf.test "sts expired"
sts_assert_deferred "$QID" alice@enf.test certificate-expired
assert "policy verdict was verify for mx1.enf.test" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 mx=mx1.enf.test source=mta-sts level=verify" "$MXLOG"
assert "no envelope crossed: the receiver saw no MAIL or RCPT" [ "$(rcv_envelopes 10.25.1.10)" = 0 ]
pass "enforce + an expired certificate: deferred (certificate-expired)"
