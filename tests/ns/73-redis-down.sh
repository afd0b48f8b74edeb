#!/bin/bash
# 73: the shared policy store (Redis) going away never stops or weakens
# delivery.  mxguard runs with redis_address; the first message to an
# MTA-STS enforce domain fetches the policy, which is written through to
# Redis.  Redis is killed: mxguard notices (mxguard_redis_up 0), counts the
# failed operations (mxguard_redis_errors_total, scraped with `mxguard
# status --metrics`), and a second message goes out as before under the
# policy in its own LMDB cache, over verified TLS.  A message to a second
# enforce domain, never seen, asks nothing of the dead Redis: its policy
# is fetched and enforced as without Redis (a mismatching MX: deferred).
# Redis comes back: mxguard reconnects by itself and the write-through
# resumes.  (upstream_reuse = no: every message makes its own TLS leg, so
# every delivery updates the TLS history and writes it through.)
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
. "$LIBDIR/redis.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.enf.test
make_cert mx2 mx1.enf2.test
rcv_listener 10.25.1.10 mx1
rcv_listener 10.25.1.11 mx2
rcv_mailbox alice@enf.test bob@enf2.test
rcv_setup
snd_setup
snd_route enf.test 10.25.1.10
snd_route enf2.test 10.25.1.11
dns_records <<'Z'
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
_mta-sts.enf IN TXT "v=STSv1; id=1"
mta-sts.enf IN A 10.25.1.80
enf2 IN MX 10 mx1.enf2
mx1.enf2 IN A 10.25.1.11
_mta-sts.enf2 IN TXT "v=STSv1; id=1"
mta-sts.enf2 IN A 10.25.1.80
Z
dns_start
sts_site enf.test
sts_site enf2.test
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
# enf2's policy does not list its MX: an enforced policy defers
sts_policy enf2.test <<'P'
version: STSv1
mode: enforce
mx: other.enf2.test
max_age: 86400
P
sts_start
redis_start "$SND" 127.0.0.1 6379
# workers = 1: the scenario follows one connection to Redis (its up/down
# lines, its reconnection); with workers each has its own
MXG_EXTRA_CONF="redis_address = 127.0.0.1:6379
redis_timeout = 300ms
upstream_reuse = no
workers = 1" sts_mxguard_start
wait_log "$MXLOG" "event=redis-up address=127.0.0.1:6379" 10
scrape() { mxg_ctl status --metrics >"$T/metrics.$1" 2>&1 || fail "status --metrics: $(cat "$T/metrics.$1")"; }
mxg_ctl() { ip netns exec "$SND" "$MXGUARD" -c "$T/mxguard.conf" "$@"; }

sts_send alice@enf.test "first, fetches the policy"
sts_assert_delivered "$QID" alice@enf.test
_in_redis() { rcli GET mxguard:sts:enf.test | grep -q "^MXGS2 enf.test .* 1$"; }
wait_for 10 "the policy written through to Redis" _in_redis
scrape up
assert "metrics: redis up" [ "$(metric "$T/metrics.up" mxguard_redis_up)" = 1 ]

redis_kill
wait_log "$MXLOG" "event=redis-down address=127.0.0.1:6379" 10
scrape down
assert "metrics: redis down" [ "$(metric "$T/metrics.down" mxguard_redis_up)" = 0 ]
e0=$(metric "$T/metrics.down" 'mxguard_redis_errors_total{op="connection"}')
assert "the lost connection counted" [ "$e0" -ge 1 ]

sts_send alice@enf.test "second, Redis down"
sts_assert_delivered "$QID" alice@enf.test
wait_mailbox alice@enf.test 2
assert "decided by the local cache" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 .*level=verify result=ok .*cached" "$MXLOG"

sts_send bob@enf2.test "a domain never seen, Redis down"
sts_assert_deferred "$QID" bob@enf2.test validation-failure
assert "enf2's policy fetched by this gateway" [ "$(sts_fetches enf2.test)" = 1 ]
scrape later
g=$(metric "$T/metrics.later" 'mxguard_redis_errors_total{op="sts-get"}')
h=$(metric "$T/metrics.later" 'mxguard_redis_errors_total{op="history-get"}')
log "errors while down: sts-get=$g history-get=$h"
assert "the lookup's policy read from the dead Redis counted" [ "$g" -ge 1 ]
assert "the lookup's history read from the dead Redis counted" [ "$h" -ge 1 ]
assert "the failures logged" grep -qE "event=redis-error op=[a-z-]+ reason=down" "$MXLOG"
assert "reconnection tried" grep -qE "event=redis-error op=connect address=127.0.0.1:6379" "$MXLOG"

# Redis comes back (empty: no persistence): reconnected by itself, and
# the next write goes through again
redis_start "$SND" 127.0.0.1 6379
wait_for 20 "mxguard reconnected" bash -c "[ \$(grep -c 'event=redis-up address=127.0.0.1:6379' '$MXLOG') -ge 2 ]"
sts_send alice@enf.test "third, Redis back"
wait_status "$QID" alice@enf.test sent
wait_mailbox alice@enf.test 3
_hist_in_redis() { rcli GET mxguard:hist:10.25.1.10 | grep -q "^MXGH2 10.25.1.10 "; }
wait_for 10 "TLS history written through again" _hist_in_redis
scrape back
assert "metrics: redis up again" [ "$(metric "$T/metrics.back" mxguard_redis_up)" = 1 ]
assert "exactly three messages for alice" [ "$(mailbox_count alice@enf.test)" = 3 ]
pass "Redis down: delivery continued on local state, errors counted, reconnected"
