#!/bin/bash
# 69: a cached MTA-STS policy is refreshed in the background, with no mail
# sent, before it expires (sts_refresh_interval); a failed background
# refresh leaves the cached policy in force.
#
#   1. one delivery learns enf.test's enforce policy (max_age 20 s,
#      sts_refresh_margin 90 %: due for refresh 2 s after the fetch; the
#      refresh timer runs every 1 s, give or take 10 %).
#   2. no mail is sent: nginx serves the policy a second time, mxguard logs
#      event=sts-refresh-background result=ok, and the cached policy is
#      younger than the time since the delivery (its expiry moved).
#   3. the policy host goes down: the next background refresh fails
#      (result=error) and the cached policy is still there, still enforce.
#   4. the _mta-sts TXT record disappears (an attacker suppressing it) and,
#      with no mail, the policy expires; the host comes back.  The next
#      message's lookup fetches the expired policy again under its id
#      (event=sts-refetch-expired), and the enforce policy decides (verify),
#      not "no policy".
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
sts_enf_world mx1.enf.test
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 20
P
sts_start
MXG_EXTRA_CONF="sts_refresh_margin = 90
sts_refresh_interval = 1s
sts_refresh_max = 10" sts_mxguard_start

_fetches_ge() { [ "$(sts_fetches enf.test)" -ge "$1" ]; }

# 1. learn (the fetch it makes is at t_learn or later)
t_learn=$(date +%s)
sts_send alice@enf.test "the only message"
sts_assert_delivered "$QID" alice@enf.test
assert "policy fetched once by the delivery" [ "$(sts_fetches enf.test)" = 1 ]

# 2. no mail: the timer refreshes it
wait_for 20 "a second fetch of enf.test's policy (background)" _fetches_ge 2
wait_log "$MXLOG" "event=sts-refresh-background domain=enf.test id=1 result=ok max_age=20" 10
assert "the refresh was the timer's, not a lookup's: no decision after the delivery" \
	[ "$(count_log "$MXLOG" "event=policy domain=enf.test")" = 1 ]
assert "no mail was sent meanwhile" [ "$(mailbox_count alice@enf.test)" = 1 ]
assert "the background fetch stored the policy" \
	[ "$(count_log "$MXLOG" "event=sts-fetch domain=enf.test id=1 result=ok")" -ge 2 ]
out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" policy enf.test 2>/dev/null) || true
log "mxguard policy enf.test:"; printf '%s\n' "$out" >&2
age=$(sed -nE 's/^MTA-STS policy \(cached\): id=1 mode=enforce max_age=20 age=([0-9]+)s .*/\1/p' <<<"$out")
assert "mxguard policy shows the cached enforce policy" [ -n "$age" ]
since=$(($(date +%s) - t_learn))
log "cached policy age ${age}s, ${since}s since the delivery began"
# the first fetch was at t_learn or later, a refresh at least 2 s after it
assert "its expiry moved: fetched again since the delivery (age $age < $since)" [ "$age" -lt "$since" ]

# 3. the policy host goes down: a failed refresh keeps the policy
sts_stop
wait_log "$MXLOG" "event=sts-refresh-background domain=enf.test id=1 result=error" 20
out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" policy enf.test 2>/dev/null) || true
log "mxguard policy enf.test:"; printf '%s\n' "$out" >&2
assert "the cached policy stays after a failed refresh" \
	grep -qE "MTA-STS policy \\(cached\\): id=1 mode=enforce max_age=20 " <<<"$out"

# 4. no TXT record; the policy expires while its host is down
dns_records <<'Z'
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
mta-sts.enf IN A 10.25.1.80
Z
dns_wait_gone _mta-sts.enf.test TXT
_expired() {
	local o
	o=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" policy enf.test 2>/dev/null) || true
	grep -qE "MTA-STS policy \(cached\): id=1 mode=enforce max_age=20 .*state=expired" <<<"$o"
}
wait_for 40 "the cached policy expired" _expired
sts_start
sts_send alice@enf.test "after expiry, no TXT record"
sts_assert_delivered "$QID" alice@enf.test
assert "the lookup fetched the expired policy again under its id" \
	grep -qE "event=sts-refetch-expired domain=enf.test id=1 txt=none" "$MXLOG"
assert "nginx served it" [ "$(sts_fetches enf.test)" -ge 1 ]
assert "the refetched enforce policy decided: verify, not no policy" \
	grep -qE "event=policy domain=enf.test .*source=mta-sts level=verify .*id=1,fetched" "$MXLOG"
pass "background refresh with no mail sent; a failed one keeps the policy; an expired one is fetched again when the TXT record is gone"
