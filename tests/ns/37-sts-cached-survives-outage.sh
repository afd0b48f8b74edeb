#!/bin/bash
# 37: a policy is cached (first delivery), then the policy host goes down
# and the TXT record disappears, and the domain's MX moves to a host the
# policy does not list.  The cached policy stays in force: the second
# message is deferred (validation-failure), not delivered.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
STS_MX2=1 sts_enf_world mx1.enf.test
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
sts_mxguard_start

sts_send alice@enf.test "first, caches the policy"
sts_assert_delivered "$QID" alice@enf.test
assert "policy fetched once" [ "$(sts_fetches enf.test)" = 1 ]

sts_stop
dns_records <<'Z'
enf IN MX 10 mx2.enf
mx2.enf IN A 10.25.1.11
Z
dns_wait enf.test MX "mx2\.enf\.test"
dns_wait_gone _mta-sts.enf.test TXT
sed -i 's/^enf.test .*/enf.test smtp:[10.25.1.11]:25/' "$SD/etc/transport"
pf_reload "$SD"

sts_send alice@enf.test "second, MX moved, policy host gone"
sts_assert_deferred "$QID" alice@enf.test validation-failure 1
assert "decision used the cached policy" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.11 mx=mx2.enf.test .*result=defer .*cached" "$MXLOG"
assert "still one message delivered" [ "$(mailbox_count alice@enf.test)" = 1 ]
pass "cached policy enforced while the policy host and TXT are gone"
