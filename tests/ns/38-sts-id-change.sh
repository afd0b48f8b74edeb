#!/bin/bash
# 38: the TXT id changes: mxguard fetches the new policy and uses it.  The
# first policy lists only mx1; the domain then moves to mx2, publishes a
# policy listing mx2 under a new id, and the second message is delivered
# to mx2 (with the old cached policy it would have been deferred).
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
STS_MX2=1 sts_enf_world mx1.enf.test "" old1
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
sts_mxguard_start

sts_send alice@enf.test "first"
sts_assert_delivered "$QID" alice@enf.test

sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx2.enf.test
max_age: 86400
P
dns_records <<'Z'
enf IN MX 10 mx2.enf
mx2.enf IN A 10.25.1.11
_mta-sts.enf IN TXT "v=STSv1; id=new2"
mta-sts.enf IN A 10.25.1.80
Z
dns_wait _mta-sts.enf.test TXT "id=new2"
sed -i 's/^enf.test .*/enf.test smtp:[10.25.1.11]:25/' "$SD/etc/transport"
pf_reload "$SD"

sts_send alice@enf.test "second, after the id change"
wait_status "$QID" alice@enf.test sent
wait_mailbox alice@enf.test 2
assert "new policy fetched (id new2)" grep -qE "event=sts-fetch domain=enf.test id=new2 result=ok" "$MXLOG"
assert "nginx served the policy twice" [ "$(sts_fetches enf.test)" = 2 ]
assert "decision used the fetched policy" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.11 mx=mx2.enf.test source=mta-sts level=verify result=ok.*id=new2" "$MXLOG"
pass "TXT id change: new policy fetched and used"
