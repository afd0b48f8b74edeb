#!/bin/bash
# 39: mxguard is killed (SIGKILL) after caching a policy and started again:
# the next delivery uses the cached policy without fetching it (nginx saw
# exactly one request) and is still enforced (verify for mx1).
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
sts_enf_world mx1.enf.test "" r1
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
sts_mxguard_start

sts_send alice@enf.test "before restart"
sts_assert_delivered "$QID" alice@enf.test
assert "fetched once" [ "$(sts_fetches enf.test)" = 1 ]

# kill -9: the cache must have been written durably
kill -KILL "$MXG_PID"; wait "$MXG_PID" 2>/dev/null
mxg_rules_remove
MXG_PID=""
mv "$MXLOG" "$T/mxguard-first.log"
mxg_start

sts_send alice@enf.test "after restart"
wait_status "$QID" alice@enf.test sent
wait_mailbox alice@enf.test 2
assert "no second fetch" [ "$(sts_fetches enf.test)" = 1 ]
assert "restarted mxguard used the cached policy" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 mx=mx1.enf.test source=mta-sts level=verify result=ok.*id=r1,cached" "$MXLOG"
assert "restarted mxguard did not fetch" [ "$(mx_count 'event=sts-fetch')" = 0 ]
pass "restart: cached policy used without a fetch"
