#!/bin/bash
# 87: an MTA-STS policy host that frames its response by closing the
# connection (no Content-Length, no chunked encoding: HTTP/1.1 allows it
# after our "Connection: close", and some hosts answer so).
# (a) clean.test: the response ends with the server's TLS close_notify:
#     the policy (enforce) is taken, and its receiver, which offers no
#     STARTTLS, gets nothing: the mail is deferred starttls-not-supported;
# (b) cut.test: the same bytes, but the connection ends with a TCP FIN
#     and no close_notify (what an attacker who cuts the connection
#     produces): that is no end of the body, the fetch fails and no
#     policy is cached from it.
# (Before: every such response was refused, "neither Content-Length nor
# chunked encoding", so such a domain's policy never applied.)
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
rcv_listener 10.25.1.10 none
rcv_mailbox alice@clean.test bob@cut.test
rcv_setup
snd_setup
snd_route clean.test 10.25.1.10
snd_route cut.test 10.25.1.10
dns_records <<'Z'
clean IN MX 10 mx1.clean
mx1.clean IN A 10.25.1.10
_mta-sts.clean IN TXT "v=STSv1; id=1"
mta-sts.clean IN A 10.25.1.81
cut IN MX 10 mx1.cut
mx1.cut IN A 10.25.1.10
_mta-sts.cut IN TXT "v=STSv1; id=1"
mta-sts.cut IN A 10.25.1.82
Z
dns_start
for d in clean cut; do
	make_cert "sts-$d" "mta-sts.$d.test"
	cat >"$T/$d-policy.txt" <<P
version: STSv1
mode: enforce
mx: mx1.$d.test
max_age: 86400
P
done
rcv_addr 10.25.1.81
rcv_addr 10.25.1.82
bg "$RCV" "$T/stsclean.out" python3 "$LIBDIR/stsclose.py" --listen 10.25.1.81 \
	--cert "$T/pki/sts-clean.crt" --key "$T/pki/sts-clean.key" \
	--policy "$T/clean-policy.txt" --mode clean --log "$T/stsclose.log"
bg "$RCV" "$T/stscut.out" python3 "$LIBDIR/stsclose.py" --listen 10.25.1.82 \
	--cert "$T/pki/sts-cut.crt" --key "$T/pki/sts-cut.key" \
	--policy "$T/cut-policy.txt" --mode cut --log "$T/stsclose.log"
wait_port "$RCV" 10.25.1.81 443
wait_port "$RCV" 10.25.1.82 443
sts_mxguard_start

# (a)
sts_send alice@clean.test "close-delimited policy"
sts_assert_deferred "$QID" alice@clean.test starttls-not-supported
assert "the clean host served the policy" grep -q "served clean GET /.well-known/mta-sts.txt" "$T/stsclose.log"
assert "the policy was fetched and taken" grep -qE "event=sts-fetch domain=clean.test id=1 result=ok mode=enforce" "$MXLOG"

# (b)
sts_send bob@cut.test "cut connection"
wait_log "$T/stsclose.log" "served cut GET /.well-known/mta-sts.txt" 30
wait_log "$MXLOG" "event=sts-fetch domain=cut.test .*result=error" 30
assert "no policy taken from a cut connection" [ "$(count_log "$MXLOG" 'event=sts-fetch domain=cut.test .*result=ok')" = 0 ]
pass "a policy framed by the connection's end is taken only when TLS says it ended (close_notify)"
