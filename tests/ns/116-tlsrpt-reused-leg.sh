#!/bin/bash
# 116: TLSRPT counts negotiated connections (RFC 8460 section 4.4), not
# the sessions an MTA runs over a reused leg.  The sender opens one
# connection per message (smtp_connection_cache_on_demand = no, as 24),
# and enf.test (MTA-STS enforce) publishes a TLSRPT record.  Three
# messages ride one verified TLS leg: one success.  Then the receiver
# restarts while the leg is parked, and a fourth message makes a new
# connection: a second success.  `mxguard report show` counts 2
# successful sessions (red before: 4, one per MTA session).
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup

enf_receiver
snd_postconf "smtp_connection_cache_on_demand = no"
dns_records <<Z
enf IN MX 10 mx1.enf
mx1.enf IN A 10.25.1.10
_mta-sts.enf IN TXT "v=STSv1; id=114"
mta-sts.enf IN A 10.25.1.80
_smtp._tls.enf IN TXT "v=TLSRPTv1; rua=https://tlsrpt.enf.test/v1/report"
Z
dns_start
sts_site enf.test
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx1.enf.test
max_age: 86400
P
sts_start
# one worker: parked legs belong to the worker that parked them
MXG_EXTRA_CONF="upstream_reuse_time = 120s
workers = 1
tlsrpt_enable = yes
tlsrpt_private_destinations = yes
tlsrpt_org_name = mxguard test
tlsrpt_from = tlsrpt-noreply@sender.test
tlsrpt_contact = postmaster@sender.test"
sts_mxguard_start

for i in 1 2 3; do
	sts_send alice@enf.test "reused $i"
	wait_status "$QID" alice@enf.test sent
	wait_log "$MXLOG" "event=upstream-parked .*uses=$i\$" 15
done
wait_mailbox alice@enf.test 3
assert "two sessions rode the parked leg" [ "$(mx_count 'event=upstream-reused ')" = 2 ]
assert "mxguard did one handshake" [ "$(mx_count 'event=tls ')" = 1 ]

# the receiver stops while the leg is parked: the next message makes a
# connection of its own, which counts
in_rcv postfix -c "$RD/etc" stop >/dev/null 2>&1
wait_log "$MXLOG" "event=upstream-unparked " 20
_postfix_start "$RCV" "$RD"
wait_port "$RCV" 10.25.1.10 25
sts_send alice@enf.test "new connection"
wait_status "$QID" alice@enf.test sent
wait_mailbox alice@enf.test 4
assert "a second handshake" [ "$(mx_count 'event=tls ')" = 2 ]
# one worker records in order: the fourth session's count comes after
# any of the reused sessions'
wait_log "$MXLOG" "event=tlsrpt-recorded domain=enf.test type=sts result=success" 20
wait_for 20 "the new connection's success recorded" \
	test "$(mx_count 'event=tlsrpt-recorded domain=enf.test type=sts result=success')" -ge 2

show=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" report show enf.test --json 2>/dev/null) ||
	fail "report show failed"
log "report show: $show"
assert "one success per connection: 2 for 4 sessions over 2 connections" \
	grep -qE '"domain": "enf.test", "successful": 2, "failed": 0,' <<<"$show"
assert "mxguard recorded 2 successes" \
	[ "$(mx_count 'event=tlsrpt-recorded domain=enf.test type=sts result=success')" = 2 ]
pass "TLSRPT: one success per upstream connection, not per session on a reused leg"
