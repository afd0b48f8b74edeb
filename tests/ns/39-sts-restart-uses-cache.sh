#!/bin/bash
# 39: mxguard is killed (SIGKILL) after caching a policy and started again:
# the next delivery uses the cached policy without fetching it (nginx saw
# exactly one request) and is still enforced (verify for mx1); each
# message is stored once, whole (assert_once).  The kill
# takes the whole daemon, supervisor and workers (mxg_kill_all): with the
# supervisor alone, the workers (which fetch and cache the policy) got
# SIGTERM from its death and drained and exited as after a stop, so a
# cache written only at a clean exit passed.  Then a restart on a kept
# clock anchor a day behind: the policy clock of the boot, not the wall
# clock (core/clock.h).  The cached policy still decides, and it judges
# the MX's certificate, made when the test began, on that clock too: not
# yet valid, deferred.  Removing the anchor and restarting, as the docs
# tell an operator whose clock is right, delivers it.
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
assert_once alice@enf.test "$MSGID" "$MSGFILE"
assert "no second fetch" [ "$(sts_fetches enf.test)" = 1 ]
assert "restarted mxguard used the cached policy" \
	grep -qE "event=policy domain=enf.test dst=10.25.1.10 mx=mx1.enf.test source=mta-sts level=verify result=ok.*id=r1,cached" "$MXLOG"
assert "restarted mxguard did not fetch" [ "$(mx_count 'event=sts-fetch')" = 0 ]
log "restart: cached policy used without a fetch"

# The policy clock this boot's daemon keeps (state_dir/clock.anchor): a
# restart takes it again, not the wall clock as it then is.  An anchor a
# day behind (as if the wall clock had stepped a day forward since the
# daemon took it) leaves the restarted daemon's policy clock a day behind
# the wall clock, which it says; the cached policy still decides, and
# certificate validity goes by the same clock: mx1's certificate, issued
# an instant ago by the wall clock, is not yet valid a day before.
anchor="$T/mxstate/clock.anchor"
assert "the daemon kept its clock anchor for this boot" \
	grep -q "^mxguard-clock 1 $(cat /proc/sys/kernel/random/boot_id) " "$anchor"
mxg_kill_all
mxg_rules_remove
mv "$MXLOG" "$T/mxguard-second.log"
read -r magic version bootid offset at <"$anchor"
echo "$magic $version $bootid $((offset - 86400)) $at" >"$anchor"
mxg_start
sts_send alice@enf.test "after a step of the clock"
# not yet valid is not certificate-expired (RFC 8460 section 4.3.2.2: it
# "has expired"); certificate-not-trusted, the detail saying which
sts_assert_deferred "$QID" alice@enf.test certificate-not-trusted 2
assert "the detail says not yet valid" \
	grep -qE "reason=certificate-not-trusted detail=.?certificate is not yet valid" "$MXLOG"
assert "the restarted daemon took the kept anchor (a day's step not followed)" \
	grep -qE "event=clock-step step_s=8[0-9]{4} " "$MXLOG"
assert "the cached policy decided" \
	grep -qE "event=policy domain=enf.test .*source=mta-sts level=verify" "$MXLOG"
assert "still no second fetch" [ "$(sts_fetches enf.test)" = 1 ]
log "a day behind: the cached policy decided, the certificate not yet valid on its clock"

# the operator accepts the wall clock: no anchor, a restart
mxg_kill_all
mxg_rules_remove
mv "$MXLOG" "$T/mxguard-third.log"
rm -f "$anchor"
mxg_start
snd_flush
wait_status "$QID" alice@enf.test sent
wait_mailbox alice@enf.test 3
# the deferred message, sent again after the restart: once, whole, and
# nothing else came in three restarts
assert_once alice@enf.test "$MSGID" "$MSGFILE"
assert "three messages for alice in all" [ "$(mailbox_count alice@enf.test)" = 3 ]
assert "no clock step on the wall clock" lacks "event=clock-step " cat "$MXLOG"
pass "restart: cached policy used without a fetch; the policy clock's anchor kept for the boot, certificates judged on it"
