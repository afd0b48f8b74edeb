#!/bin/bash
# 47: `mxguard check DOMAIN [ADDRESS] [--json]` against real peers: a
# DANE-EE domain (usable TLSA, verified handshake, exit 0), a mismatching
# one (handshake fails the DANE check, exit 2), and a bogus TLSA (verdict
# defer dnssec-invalid, no handshake, exit 2); readable and JSON output.
# An unsigned domain behind a middlebox that masks STARTTLS as XXXXXXXX:
# check reads the EHLO reply with the daemon's parser and calls it masked.
# Unprivileged (no CAP_NET_ADMIN, so no SO_MARK on the probe): with
# rules_mode = local, where mxguard's rules would divert the unmarked
# probe to mxguard itself, check refuses with exit 3 and says why rather
# than report on the wrong peer; with rules_mode = gateway (the rules see
# forwarded flows only) it probes unmarked as before.
. "$(dirname "$0")/../lib/ns.sh"
. "$(dirname "$0")/../lib/dnssec.sh"
need_mxguard
ns_setup
make_cert mxok mx.chk-ok.test
make_cert mxbad mx.chk-bad.test
make_cert unrelated mx.chk-bad.test

dnssec_zone chk-ok.test signed
dnssec_mx chk-ok.test mx.chk-ok.test 10.25.1.81
dnssec_tlsa chk-ok.test mx.chk-ok.test 3 1 1 "$T/pki/mxok.crt"
dnssec_zone chk-bad.test signed
dnssec_mx chk-bad.test mx.chk-bad.test 10.25.1.82
dnssec_tlsa chk-bad.test mx.chk-bad.test 3 1 1 "$T/pki/unrelated.crt"
dnssec_zone chk-bogus.test signed
dnssec_mx chk-bogus.test mx.chk-bogus.test 10.25.1.81
dnssec_tlsa chk-bogus.test mx.chk-bogus.test 3 1 1 "$T/pki/mxok.crt"
dnssec_break_sig chk-bogus.test _25._tcp.mx.chk-bogus.test TLSA
dnssec_zone chk-mask.test unsigned
dnssec_mx chk-mask.test mx.chk-mask.test 10.25.1.83
dnssec_start
rcv_listener 10.25.1.81 mxok
rcv_listener 10.25.1.82 mxbad
rcv_mailbox a@chk-ok.test
rcv_setup

mkdir -p "$T/chkstate"
cat >"$T/check.conf" <<EOC
state_dir = $T/chkstate
user =
tls_ca_file = $T/pki/ca.crt
steering = none
$DNSSEC_MXG_CONF
EOC
check() { in_snd "$MXGUARD" -c "$T/check.conf" check "$@"; }

check chk-ok.test >"$T/ok.txt" 2>&1; rc=$?
cat "$T/ok.txt" >&2
assert "chk-ok.test: exit 0" [ "$rc" = 0 ]
assert "chk-ok.test: MX and address secure" grep -qE "DNSSEC: +MX secure, address secure" "$T/ok.txt"
assert "chk-ok.test: TLSA listed" grep -qE "^ +3 1 1 [0-9a-f]{64}" "$T/ok.txt"
assert "chk-ok.test: DANE usable" grep -qE "DANE: +usable" "$T/ok.txt"
assert "chk-ok.test: verdict dane" grep -qE "verdict: +level=dane source=dane" "$T/ok.txt"
assert "chk-ok.test: handshake verified by DANE-EE" grep -qE "check: +success \\(DANE-EE TLSA 3 1 1 matched" "$T/ok.txt"

check chk-bad.test --json >"$T/bad.json" 2>"$T/bad.err"; rc=$?
cat "$T/bad.json" >&2
assert "chk-bad.test: exit 2" [ "$rc" = 2 ]
assert "chk-bad.test: JSON says tlsa-invalid, defer" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
h = j["hosts"][0]
assert h["host"] == "mx.chk-bad.test", h
assert h["dane"]["state"] == "usable", h
assert h["verdict"]["level"] == "dane", h
assert h["probe"]["tls"] and h["probe"]["reason"] == "tlsa-invalid", h
assert h["result"] == "defer", h
' "$T/bad.json"

check chk-bogus.test 10.25.1.81 --json >"$T/bogus.json" 2>&1; rc=$?
cat "$T/bogus.json" >&2
assert "chk-bogus.test: exit 2" [ "$rc" = 2 ]
assert "chk-bogus.test: defer dnssec-invalid without a handshake" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
h = j["hosts"][0]
assert h["address"] == "10.25.1.81", h
assert h["verdict"]["level"] == "defer" and h["verdict"]["reason"] == "dnssec-invalid", h
assert not h["probe"]["connected"], h
' "$T/bogus.json"
bad_start 10.25.1.83 --mode mitm --upstream 10.25.1.81:25 --mask XXXXXXXX
check chk-mask.test --json >"$T/mask.json" 2>&1; rc=$?
cat "$T/mask.json" >&2
assert "chk-mask.test: STARTTLS masked as XXXXXXXX seen as masked" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
h = j["hosts"][0]
assert h["address"] == "10.25.1.83", h
assert h["probe"]["connected"] and not h["probe"]["starttls"], h
assert h["probe"]["starttls_masked"], h
' "$T/mask.json"

# As nobody, with a state_dir of its own (the stores are opened as the
# caller) and the same resolver and CA.
mkdir -p "$T/chkstate-nobody"
chown nobody:nogroup "$T/chkstate-nobody"
sed -e "s,^state_dir = .*,state_dir = $T/chkstate-nobody," "$T/check.conf" >"$T/check-local.conf"
{ cat "$T/check-local.conf"; echo "rules_mode = gateway"; } >"$T/check-gw.conf"
unpriv() { in_snd setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
unpriv "$MXGUARD" -c "$T/check-local.conf" check chk-ok.test >"$T/np.txt" 2>"$T/np.err"; rc=$?
cat "$T/np.txt" "$T/np.err" >&2
assert "non-root, rules_mode = local: exit 3, not a result (got $rc)" [ "$rc" = 3 ]
assert "non-root, rules_mode = local: no report on stdout" [ ! -s "$T/np.txt" ]
assert "non-root, rules_mode = local: says SO_MARK failed and what to do" \
	grep -qE "^mxguard: check: cannot mark the probe to 10\.25\.1\.81 with upstream_mark 0x4d58 \(SO_MARK: Operation not permitted\).*run as root or with CAP_NET_ADMIN" "$T/np.err"
unpriv "$MXGUARD" -c "$T/check-local.conf" check chk-bogus.test 10.25.1.81 >"$T/np-bogus.txt" 2>&1; rc=$?
assert "non-root: a defer verdict needs no probe, so no mark (exit 2, got $rc)" [ "$rc" = 2 ]
unpriv "$MXGUARD" -c "$T/check-gw.conf" check chk-ok.test >"$T/np-gw.txt" 2>&1; rc=$?
cat "$T/np-gw.txt" >&2
assert "non-root, rules_mode = gateway: probes unmarked, exit 0 (got $rc)" [ "$rc" = 0 ]
assert "non-root, rules_mode = gateway: handshake verified" grep -qE "check: +success \(DANE-EE TLSA 3 1 1 matched" "$T/np-gw.txt"
pass "mxguard check: DNSSEC, TLSA, verdict, handshake; text and JSON; no unmarked probe under local rules"
