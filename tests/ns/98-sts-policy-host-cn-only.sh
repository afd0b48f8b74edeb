#!/bin/bash
# 98: MTA-STS enforce, but the policy host's certificate (from the test CA)
# names mta-sts.cn.test only in its subject CN, with no subjectAltName.
# RFC 8461 section 3.3 wants it valid for that name per RFC 6125, whose
# successor RFC 9525 no longer falls back to the CN: the fetch fails
# (sts-webpki-invalid, the detail saying why), no policy is cached, and
# the mail goes opportunistically (docs/policy.md: fetch failed, nothing
# cached).  A second domain on the same nginx, with a subjectAltName, has
# its policy taken: the CA and nginx work, only the CN-only name is refused.
. "$(dirname "$0")/../lib/ns.sh"
. "$LIBDIR/dns.sh"
. "$LIBDIR/sts.sh"
need_mxguard
ns_setup
make_cert mx1 mx1.cn.test
rcv_listener 10.25.1.10 mx1
rcv_mailbox alice@cn.test
rcv_setup
snd_setup
snd_route cn.test 10.25.1.10
dns_records <<'Z'
cn IN MX 10 mx1.cn
mx1.cn IN A 10.25.1.10
_mta-sts.cn IN TXT "v=STSv1; id=cn1"
mta-sts.cn IN A 10.25.1.80
san IN MX 10 mx1.cn
_mta-sts.san IN TXT "v=STSv1; id=san1"
mta-sts.san IN A 10.25.1.80
Z
dns_start
sts_site cn.test cn-only
sts_site san.test
for d in cn.test san.test; do
	sts_policy "$d" <<P
version: STSv1
mode: enforce
mx: mx1.cn.test
max_age: 86400
P
done
sts_start
c=$T/pki/sts-cn.test.crt
assert "the policy host's certificate has CN=mta-sts.cn.test" \
	grep -qE "CN ?= ?mta-sts\\.cn\\.test" <(openssl x509 -in "$c" -noout -subject)
assert "and no subjectAltName" \
	lacks "Subject Alternative Name" openssl x509 -in "$c" -noout -text
sts_mxguard_start

sts_send alice@cn.test "sts policy host CN only"
sts_assert_delivered "$QID" alice@cn.test
assert "the fetch failed: sts-webpki-invalid, no subjectAltName DNS name" \
	grep -qE "event=sts-fetch domain=cn.test id=cn1 result=error reason=sts-webpki-invalid detail=.*mta-sts\\.cn\\.test: hostname mismatch \\(it has no subjectAltName DNS name; its subject CN is not used\\)" "$MXLOG"
assert "verdict opportunistic, no MTA-STS" \
	grep -qE "event=policy domain=cn.test dst=10.25.1.10 .*source=default level=may result=ok" "$MXLOG"
lacks "event=sts-fetch domain=cn.test .*result=ok" cat "$MXLOG"
assert "no policy request reached nginx" [ "$(sts_fetches cn.test)" = 0 ]

out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" policy cn.test 2>&1) || true
log "mxguard policy cn.test:"; printf '%s\n' "$out" >&2
assert "mxguard policy: the fetch failed" grep -qF "(MTA-STS: sts-webpki-invalid)" <<<"$out"
assert "mxguard policy: none cached" grep -qE "^MTA-STS policy: none cached" <<<"$out"
out=$(in_snd "$MXGUARD" -c "$T/mxguard.conf" policy san.test 2>&1) || true
log "mxguard policy san.test:"; printf '%s\n' "$out" >&2
assert "the same nginx and CA with a subjectAltName: the policy is taken" \
	grep -qE "^MTA-STS policy \\(cached\\): id=san1 mode=enforce" <<<"$out"
pass "policy host certificate with the name in its CN only: refused, delivered opportunistically"
