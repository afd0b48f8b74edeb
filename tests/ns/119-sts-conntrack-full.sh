#!/bin/bash
# 119: a full conntrack table is this host's trouble, not the domain's.
# A session is held after MAIL FROM (its flows tracked); then the sender's
# namespace's table is filled with assured entries (tests/lib/ctfill.py,
# as a flood of established flows relayed for a gateway's clients: nothing
# can be evicted), so the kernel drops the SYN of mxguard's MTA-STS fetch
# and its retransmissions without a word.  The RCPT to the enforce domain,
# whose policy nothing has cached, is deferred 4.7.0 as local-error naming
# the conntrack drops, never relayed as if the domain had no policy.  DNS
# goes untracked here, so that the fetch's TCP is what meets the table (a
# UDP query meets it with EPERM: test_policy_fetchcap).  Before: the fetch
# failed as sts-policy-fetch-error after sts_fetch_timeout, the domain was
# taken to publish no policy and the RCPT was relayed (250).
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
max=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
if [ "$max" -gt 1048576 ]; then
	echo "SKIP: nf_conntrack_max $max, too many entries to fill" >&2
	exit 77
fi
sts_enf_world mx1.enf.test "" 20260101
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
sts_mxguard_start
in_snd nft -f - <<'N'
table inet ctfull {
	chain out { type filter hook output priority raw; udp dport 53 notrack; tcp dport 53 notrack; }
	chain pre { type filter hook prerouting priority raw; udp sport 53 notrack; tcp sport 53 notrack; }
}
N

mkdir -p "$T/h1"
bg "$SND" "$T/h1.log" python3 "$LIBDIR/holdclient.py" 10.25.1.10 25 alice@enf.test "$T/h1" --rcpt-on-go
wait_for 20 "held session ready" test -e "$T/h1/ready"
# what the kernel's gc may evict from a table over 95% full (entries not
# assured, or TCP closing) goes first, so that no slot opens for the fetch
for st in SYN_SENT SYN_RECV FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE; do
	in_snd conntrack -D -p tcp --state "$st" >/dev/null 2>&1 || true
done
in_snd conntrack -D -p udp >/dev/null 2>&1 || true
in_snd conntrack -D -p icmp >/dev/null 2>&1 || true
fill=$(in_snd python3 "$LIBDIR/ctfill.py") || fail "conntrack table not filled: $fill"
log "sender's conntrack table: $fill"
touch "$T/h1/go"
wait_for 30 "RCPT answered" test -e "$T/h1/result"
r=$(cat "$T/h1/result")
log "RCPT: $r"
[ "$r" = closed ] && log "client: $(cat "$T/h1.log")" && in_snd conntrack -S >&2
assert "RCPT deferred with 4.7.0" grep -qE '^4[0-9][0-9] 4\.7\.0' <<<"$r"
assert "mxguard deferred as local-error" \
	grep -qE "event=policy domain=enf.test .*level=defer.*reason=local-error" "$MXLOG"
assert "the deferral names the conntrack drops" \
	grep -qE "reason=local-error.*conntrack table full: [0-9]+ packets dropped during the fetch" "$MXLOG"
assert "no policy decided from the failed fetch" \
	bash -c "! grep -qE 'event=sts-fetch domain=enf.test .*reason=sts-policy-fetch-error' '$MXLOG'"
assert "nothing delivered to alice" [ "$(mailbox_count alice@enf.test)" = 0 ]
pass "a full conntrack table defers an enforce domain's first delivery as local-error"
