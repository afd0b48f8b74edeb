#!/bin/bash
# 26: issue 11, defect 1, end to end.  A testing-mode and an enforce-mode
# MTA-STS domain share one MX host, whose certificate is for another name
# (an attacker on the path, or a misconfigured host).  Postfix opens one
# connection per message.  The testing-mode mail is delivered over TLS,
# as RFC 8461 says, with the failure reported; the enforce-mode mail, sent
# right after it, within upstream_reuse_time, must not ride that leg: the
# leg that failed a check is never parked, the enforce session makes its
# own connection, its check fails, and the mail is deferred.  The
# receiver never sees the enforce mail's envelope.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
make_cert mx wrong.name.test
rcv_listener 10.25.1.10 mx
rcv_mailbox alice@tst.test alice@enf.test
rcv_setup
snd_setup
snd_postconf "smtp_connection_cache_on_demand = no"
snd_route tst.test 10.25.1.10
snd_route enf.test 10.25.1.10
dns_records <<'Z'
tst IN MX 10 mx.shared
enf IN MX 10 mx.shared
mx.shared IN A 10.25.1.10
_mta-sts.tst IN TXT "v=STSv1; id=t1"
_mta-sts.enf IN TXT "v=STSv1; id=e1"
mta-sts.tst IN A 10.25.1.80
mta-sts.enf IN A 10.25.1.80
Z
dns_start
sts_site tst.test
sts_site enf.test
sts_policy tst.test <<'P'
version: STSv1
mode: testing
mx: mx.shared.test
max_age: 86400
P
sts_policy enf.test <<'P'
version: STSv1
mode: enforce
mx: mx.shared.test
max_age: 86400
P
sts_start
# one worker: the enforce session must be able to meet the parked leg
MXG_EXTRA_CONF="upstream_reuse = yes
upstream_reuse_time = 120s
workers = 1"
sts_mxguard_start

# the testing-mode mail: delivered, the failure reported
sts_send alice@tst.test "testing domain"
tst_qid=$QID
sts_assert_delivered "$tst_qid" alice@tst.test
wait_log "$MXLOG" "event=close .*messages=1" 20
assert "the testing check failed and was reported" \
	grep -qE "event=policy-report domain=tst.test mode=testing reason=certificate-host-mismatch" "$MXLOG"

# right after, well within upstream_reuse_time: the enforce-mode mail
sts_send alice@enf.test "enforce domain"
enf_qid=$QID
wait_log "$SD/maillog" "$enf_qid: to=<alice@enf.test>.* status=" 30
log "enforce mail: $(grep -E "$enf_qid: to=<alice@enf.test>" "$SD/maillog" | tail -n1 | sed -E 's/.*(status=.*)/\1/')"
sts_assert_deferred "$enf_qid" alice@enf.test certificate-host-mismatch
assert "the leg whose check failed was not parked" [ "$(mx_count 'event=upstream-parked ')" = 0 ]
assert "no session rode a parked leg" [ "$(mx_count 'event=upstream-reused ')" = 0 ]
assert "the enforce session made its own TLS connection" [ "$(mx_count 'event=tls ')" = 2 ]
assert "the receiver saw one envelope, the testing-mode mail's, not the enforce mail's" \
	[ "$(rcv_envelopes 10.25.1.10)" = 1 ]
assert "the testing-mode mail is the only one stored" [ "$(all_mailbox_count)" = 1 ]
pass "a leg that failed a testing-mode check never carries an enforce-mode recipient"
