#!/bin/bash
# 36: the TXT record announces a policy but the policy host does not answer
# and nothing is cached: no policy, delivery is opportunistic (the MX's
# certificate names another host and the mail still goes through, over
# TLS); the fetch failure is logged as sts-policy-fetch-error.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
make_cert mx1 wrong.name.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@down.test
rcv_setup
snd_setup
snd_route down.test 10.25.1.10
dns_records <<'Z'
down IN MX 10 mx1.down
mx1.down IN A 10.25.1.10
_mta-sts.down IN TXT "v=STSv1; id=1"
mta-sts.down IN A 10.25.1.80
Z
dns_start
# nginx never started: 10.25.1.80 exists but nothing listens on 443
rcv_addr 10.25.1.80
sts_mxguard_start

sts_send alice@down.test "policy host down"
sts_assert_delivered "$QID" alice@down.test
assert "fetch failure logged" grep -qE "event=sts-fetch domain=down.test .*result=error reason=sts-policy-fetch-error" "$MXLOG"
assert "verdict opportunistic" grep -qE "event=policy domain=down.test .*source=default level=may result=ok" "$MXLOG"
pass "policy host down, nothing cached: delivered opportunistically"
