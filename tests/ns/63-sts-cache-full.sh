#!/bin/bash
# 63: the MTA-STS policy cache is bounded (sts_cache_max_entries = 4 here)
# and many domains fill it: an enforce policy learned earlier stays in
# force and is refreshed, also while its TXT record is suppressed.
#
#   1. enf.test's enforce policy (max_age 60 s, refresh margin 90 %: due
#      for refresh 6 s after a fetch) is learned with a first delivery.
#   2. seven other domains are looked up with `mxguard policy` (as many
#      domains an attacker controls would be): three testing policies fill
#      the cache, three enforce ones evict them (least recently used
#      first), the fourth enforce one is refused: enf.test is never evicted.
#   3. within the refresh margin a delivery to enf.test is decided by the
#      cached policy and refreshes it in the background (nginx serves it a
#      second time): an update in a full cache.
#   4. the _mta-sts TXT record disappears (an attacker suppressing it) and a
#      man in the middle strips STARTTLS: the delivery is deferred
#      (starttls-not-supported) and, the policy being within the refresh
#      margin again, it is refreshed under the cached id (a third fetch),
#      which extends it.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup

FLOOD="t1 t2 t3 e1 e2 e3 e4"
enf_receiver
bad_start 10.25.1.11 --mode mitm --upstream 10.25.1.10:25
zone() {	# the zone, with or without enf.test's TXT record
	local d
	echo "enf IN MX 10 mx1.enf"
	echo "mx1.enf IN A 10.25.1.10"
	echo "mx1.enf IN A 10.25.1.11"
	echo "mta-sts.enf IN A 10.25.1.80"
	[ "$1" = with-txt ] && echo '_mta-sts.enf IN TXT "v=STSv1; id=1"'
	echo "mx.flood IN A 10.25.1.99"
	for d in $FLOOD; do
		echo "$d.flood IN MX 10 mx.flood"
		echo "_mta-sts.$d.flood IN TXT \"v=STSv1; id=f$d\""
		echo "mta-sts.$d.flood IN A 10.25.1.80"
	done
}
zone with-txt | dns_records
dns_start
sts_site enf.test
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 60
P
for d in $FLOOD; do
	sts_site "$d.flood.test"
	case $d in t*) mode=testing;; *) mode=enforce;; esac
	sts_policy "$d.flood.test" <<P
version: STSv1
mode: $mode
mx: mx.flood.test
max_age: 86400
P
done
sts_start
MXG_EXTRA_CONF="sts_cache_max_entries = 4
sts_refresh_margin = 90" sts_mxguard_start

# seconds since $1 (epoch) are at least $2
_elapsed() { [ $(($(date +%s) - $1)) -ge "$2" ]; }
# the daemon logged N successful fetches of enf.test's policy
_fetched_ok() { [ "$(count_log "$MXLOG" "event=sts-fetch domain=enf.test id=1 result=ok")" -ge "$1" ]; }

# 1. learn
sts_send alice@enf.test "first, learns the enforce policy"
sts_assert_delivered "$QID" alice@enf.test
t_fetch1=$(date +%s)
assert "policy fetched once" [ "$(sts_fetches enf.test)" = 1 ]

# 2. flood
for d in $FLOOD; do
	in_snd "$MXGUARD" -v -c "$T/mxguard.conf" policy "$d.flood.test" \
		>"$T/flood-$d.log" 2>&1
	assert "$d.flood.test: policy fetched" \
		grep -qE "event=sts-fetch domain=$d.flood.test id=f$d result=ok" "$T/flood-$d.log"
done
for d in e1 e2 e3; do
	assert "$d.flood.test evicted a testing policy" \
		grep -qE "event=sts-cache-evict .*mode_testing=1 lru=t[0-9].flood.test" "$T/flood-$d.log"
done
assert "e4.flood.test refused: only live enforce policies left" \
	grep -qE "event=sts-cache-refused domain=e4.flood.test reason=full" "$T/flood-e4.log"
assert "enf.test never evicted" lacks "lru=enf\.test" cat "$T"/flood-*.log
assert "the refused policy still decided its own lookup" \
	grep -qE "MTA-STS: mode=enforce,id=fe4,fetched" "$T/flood-e4.log"

# 3. refresh in a full cache (TXT present)
wait_for 30 "enf.test's policy within its refresh margin" _elapsed "$t_fetch1" 8
sts_send alice@enf.test "second, refreshes the cached policy"
sts_assert_delivered "$QID" alice@enf.test
assert "decided by the cached policy" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 mx=mx1.enf.test source=mta-sts level=verify result=ok .*cached" "$MXLOG"
wait_for 20 "background refresh of enf.test" _fetched_ok 2
t_fetch2=$(date +%s)
assert "nginx served enf.test's policy a second time" [ "$(sts_fetches enf.test)" = 2 ]
assert "the refresh was not refused" lacks "event=sts-cache-refused domain=enf\.test" cat "$MXLOG"

# 4. TXT suppressed, STARTTLS stripped
zone without-txt | dns_records
dns_wait_gone _mta-sts.enf.test TXT
sed -i 's/^enf.test .*/enf.test smtp:[10.25.1.11]:25/' "$SD/etc/transport"
pf_reload "$SD"
wait_for 30 "enf.test's policy within its refresh margin again" _elapsed "$t_fetch2" 8
sts_send alice@enf.test "third, TXT suppressed and STARTTLS stripped"
sts_assert_deferred "$QID" alice@enf.test starttls-not-supported 2
assert "the stripping MITM relayed no RCPT" [ "$(count_log "$BADLOG" 'recv .*RCPT')" = 0 ]
assert "decided by the cached enforce policy" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.11 mx=mx1.enf.test source=mta-sts level=verify result=ok .*mode=enforce,id=1,cached" "$MXLOG"
wait_for 20 "refresh of enf.test without its TXT record" _fetched_ok 3
assert "refreshed under the cached id, TXT missing" \
	grep -qE "event=sts-refresh domain=enf.test id=1 txt=none" "$MXLOG"
assert "nginx served enf.test's policy a third time" [ "$(sts_fetches enf.test)" = 3 ]
age=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" policy enf.test 2>/dev/null |
	sed -nE 's/^MTA-STS policy \(cached\): .* age=([0-9]+)s .*/\1/p')
log "cached policy age after the refresh: ${age:-none}s"
assert "the refresh extended the cached policy" [ "${age:-99999}" -lt $(($(date +%s) - t_fetch2)) ]
pass "a full MTA-STS cache keeps and refreshes a learned enforce policy, also with its TXT suppressed"
