#!/bin/bash
# 35: MTA-STS testing, the MX's certificate is for another name: the mail
# is delivered (over TLS) and mxguard logs the failure it would have
# enforced (certificate-host-mismatch, report only).
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
make_cert mx1 wrong.name.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@tst.test
rcv_setup
snd_setup
snd_route tst.test 10.25.1.10
dns_records <<'Z'
tst IN MX 10 mx1.tst
mx1.tst IN A 10.25.1.10
_mta-sts.tst IN TXT "v=STSv1; id=t1"
mta-sts.tst IN A 10.25.1.80
Z
dns_start
sts_site tst.test
sts_policy tst.test <<'P'
version: STSv1
mode: testing
mx: mx1.tst.test
max_age: 86400
P
sts_start
sts_mxguard_start

sts_send alice@tst.test "sts testing"
sts_assert_delivered "$QID" alice@tst.test
assert "verdict: may, the testing policy report only" \
	grep -qE "event=policy domain=tst.test .*source=mta-sts level=may .*report_only=yes" "$MXLOG"
assert "mxguard logged certificate-host-mismatch" grep -qE "certificate-host-mismatch" "$MXLOG"
pass "testing + bad certificate: delivered, failure logged"
