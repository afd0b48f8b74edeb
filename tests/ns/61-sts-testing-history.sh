#!/bin/bash
# 61: TLS history and a domain with an MTA-STS *testing* policy.  A first
# message goes over TLS; then the server stops offering STARTTLS (stripped).
# A testing policy never weakens what applies without it: the history makes
# the verdict encrypt (report only for the policy's own check), so the
# second message stays queued and nothing crosses in cleartext.  (Before:
# the report-only verdict skipped the history and went out in cleartext.)
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
make_cert hist mx1.tsth.test
snd_setup
snd_route tsth.test 10.25.1.61
dns_records <<'Z'
tsth IN MX 10 mx1.tsth
mx1.tsth IN A 10.25.1.61
_mta-sts.tsth IN TXT "v=STSv1; id=1"
mta-sts.tsth IN A 10.25.1.80
Z
dns_start
sts_site tsth.test
sts_policy tsth.test <<'P'
version: STSv1
mode: testing
mx: mx1.tsth.test
max_age: 86400
P
sts_start
MXG_EXTRA_CONF="tls_history = yes
tls_history_window = 1d" sts_mxguard_start

bad_stop() {	# PID ADDR
	kill -TERM "$1" 2>/dev/null
	wait_for 10 "badsmtp on $2 gone" not_port "$2"
	wait "$1" 2>/dev/null
}
not_port() { ! _port_open "$RCV" "$1" 25; }

# 1. over TLS
bad_start 10.25.1.61 --mode normal --cert "$T/pki/hist.pem" --hostname mx1.tsth.test
pid=$BG_PID
tlslog=$BADLOG
sts_send a@tsth.test "first, over TLS"
wait_status "$QID" a@tsth.test sent
assert "first message went over TLS" grep -q "tls-handshake ok" "$tlslog"
bad_stop "$pid" 10.25.1.61

# 2. STARTTLS gone
bad_start 10.25.1.61 --mode nostarttls --hostname mx1.tsth.test
sts_send a@tsth.test "second, stripped"
wait_status "$QID" a@tsth.test deferred
assert "second message still queued" queue_has "$QID"
assert "verdict: encrypt from the TLS history, testing policy report only" \
	grep -qE "event=policy domain=tsth.test .*source=tls-history level=encrypt .*report_only=yes" "$MXLOG"
assert "policy failure starttls-not-supported" \
	grep -qE "event=policy-failure domain=tsth.test .*reason=starttls-not-supported" "$MXLOG"
assert "reply was a 4xx, never 5xx" grep -qE "said: 4[0-9][0-9]" <<<"$(queue_reason "$QID")"
assert "nothing sent in cleartext" [ "$(count_log "$BADLOG" "recv clear MAIL")" = 0 ]
assert "first verdict: may, testing policy report only" \
	grep -qE "event=policy domain=tsth.test .*source=mta-sts level=may .*report_only=yes" "$MXLOG"
pass "TLS history + MTA-STS testing, STARTTLS stripped after TLS: deferred"
