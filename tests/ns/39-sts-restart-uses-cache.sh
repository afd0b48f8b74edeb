#!/bin/bash
# 39: mxguard is killed (SIGKILL) after caching a policy and started again:
# the next delivery uses the cached policy without fetching it (nginx saw
# exactly one request) and is still enforced (verify for mx1).  The kill
# takes the whole daemon, supervisor and workers (mxg_kill_all): with the
# supervisor alone, the workers (which fetch and cache the policy) got
# SIGTERM from its death and drained and exited as after a stop, so a
# cache written only at a clean exit passed.
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
# two workers whatever the number of CPUs: the daemon is more than one process
MXG_EXTRA_CONF="workers = 2"
sts_mxguard_start

sts_send alice@enf.test "before restart"
sts_assert_delivered "$QID" alice@enf.test
assert "fetched once" [ "$(sts_fetches enf.test)" = 1 ]

# kill -9, every process of the daemon: the cache must have been written
# durably when the policy was fetched
mxg_kill_all
mxg_rules_remove
mv "$MXLOG" "$T/mxguard-first.log"
assert "the daemon was more than its supervisor (workers killed too)" \
	[ "$(wc -w <<<"$MXG_KILLED")" -ge 2 ]
for p in $MXG_KILLED; do
	assert "pid $p ran no shutdown (no event=draining/drained/stopped)" \
		lacks "mxguard\\[$p\\]: .*event=(draining|drained|stopped)" cat "$T/mxguard-first.log"
done
mxg_start

sts_send alice@enf.test "after restart"
wait_status "$QID" alice@enf.test sent
wait_mailbox alice@enf.test 2
assert "no second fetch" [ "$(sts_fetches enf.test)" = 1 ]
assert "restarted mxguard used the cached policy" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 mx=mx1.enf.test source=mta-sts level=verify result=ok.*id=r1,cached" "$MXLOG"
assert "restarted mxguard did not fetch" [ "$(mx_count 'event=sts-fetch')" = 0 ]
pass "restart: cached policy used without a fetch"
