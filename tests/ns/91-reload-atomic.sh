#!/bin/bash
# 91: a reload is applied whole or not at all.  One process (workers = 1):
# a lookup that never ends (bh.test's MX is black-holed) keeps the
# resolvers of 8 reloads alive; the 9th reload is refused by the policy
# engine ("8 reloads while lookups never stopped running").  That refused
# configuration also sets max_sessions = 1: the proxy must not have taken
# it either, so a second session is still accepted.  (Before: the proxy
# applied its part first, then the engine refused, and the process ran
# half old, half new: the second session met "421 too many sessions".)
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup

dnssec_zone bh.test signed
dnssec_rr bh.test "bh.test. IN MX 10 mx1.bh.test."
dnssec_blackhole bh.test mx1
dnssec_start

rcv_listener 10.25.1.43 none
rcv_mailbox a@bh.test
rcv_setup
snd_setup
snd_route bh.test 10.25.1.43

mxg_start "$DNSSEC_MXG_CONF
dns_timeout = 20s
workers = 1"
new_body "$T/body" 1500
send_mail x@sender.test a@bh.test "$T/body" "its lookup stalls"
q=$(find_qid "$MSGID")
wait_log "$MXLOG" "event=dns-query .*mx1\.bh\.test" 30

reloads=0
_reloaded() { [ "$(count_log "$MXLOG" "event=reloaded")" -ge "$reloads" ]; }
for i in $(seq 1 8); do
	kill -HUP "$MXG_PID"
	reloads=$i
	wait_for 10 "reload $i applied" _reloaded
done
assert "the lookup is still under way" [ "$(count_log "$MXLOG" "event=policy domain=bh.test ")" = 0 ]

echo "max_sessions = 1" >>"$T/mxguard.conf"
kill -HUP "$MXG_PID"
wait_log "$MXLOG" "event=reload-failed error=.*8 reloads while lookups never stopped running" 10
assert "the refused reload is not logged as applied" [ "$(count_log "$MXLOG" "event=reloaded")" = 8 ]

# a second session while the first is still open: max_sessions = 1 was
# refused with the rest of that configuration
banner=$(in_snd python3 - <<'PYEOF'
import socket
s = socket.create_connection(("10.25.1.43", 25), timeout=20)
f = s.makefile("rb")
print(f.readline().decode(errors="replace").strip())
s.sendall(b"QUIT\r\n")
PYEOF
)
log "second session: $banner"
assert "the second session was accepted (the proxy kept max_sessions)" grep -q "^220 " <<<"$banner"
assert "no session refused for max_sessions" [ "$(count_log "$MXLOG" "reason=max_sessions")" = 0 ]

# the stalled lookup ends (deferred, never cleartext); then the same
# configuration applies as a whole
wait_status "$q" a@bh.test deferred 90
kill -HUP "$MXG_PID"
_nine() { [ "$(count_log "$MXLOG" "event=reloaded")" -ge 9 ]; }
wait_for 10 "the next reload applied" _nine
assert "nothing delivered in cleartext" [ "$(all_mailbox_count)" = 0 ]
pass "a reload the engine refuses leaves the proxy on the old configuration too"
