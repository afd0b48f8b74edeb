# shellcheck shell=bash
# Helpers for the SMTP TLS Reporting scenarios (tests/ns/64-66).  Source
# after ns.sh.
#
#   tlsrpt_dkim_key            RSA key $T/dkim/key.pem for d=sender.test,
#                              s=tlsrpt; its key record text in
#                              $T/dkim/record.txt (s=tlsrpt: RFC 8460)
#   TLSRPT_MXG_CONF            the mxguard config lines (after the key)
#   tlsrpt_check_mail FILE OUT the stored message FILE is an RFC 8460
#                              section 5.3 report whose DKIM signature
#                              verifies (python3-dkim, strict tlsrpt mode);
#                              the report JSON goes to OUT; the message
#                              and its report pass tlsrpt_validate.py

tlsrpt_dkim_key() {
	local d=$T/dkim
	mkdir -p "$d"
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$d/key.pem" 2>/dev/null || fail "DKIM key"
	printf 'v=DKIM1; k=rsa; s=tlsrpt; p=%s\n' \
		"$(openssl pkey -in "$d/key.pem" -pubout -outform DER 2>/dev/null | base64 -w0)" \
		>"$d/record.txt"
	TLSRPT_MXG_CONF="tlsrpt_enable = yes
tlsrpt_private_destinations = yes
tlsrpt_org_name = mxguard test
tlsrpt_from = tlsrpt-noreply@sender.test
tlsrpt_contact = postmaster@sender.test
tlsrpt_dkim_key = $d/key.pem
tlsrpt_dkim_selector = tlsrpt
tlsrpt_dkim_domain = sender.test"
}

tlsrpt_check_mail() {	# FILE OUT
	/usr/bin/python3 "$LIBDIR/../unit/tlsrpt_dkim_verify.py" "$1" tlsrpt \
		sender.test "$T/dkim/record.txt" >"$T/dkim/verify.out" 2>&1 ||
		fail "DKIM signature does not verify: $(cat "$T/dkim/verify.out")"
	python3 "$LIBDIR/tlsrpt_validate.py" mail "$1" 2>"$T/validate.out" ||
		fail "the report breaks RFC 8460: $(cat "$T/validate.out")"
	python3 - "$1" "$2" <<'PY' || fail "not an RFC 8460 report message"
import email, gzip, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"),
                                   policy=policy.compat32)
assert m.get_content_type() == "multipart/report", m.get_content_type()
assert m.get_param("report-type") == "tlsrpt", m.get_param("report-type")
assert m["TLS-Report-Domain"] and m["TLS-Report-Submitter"] == "sender.test"
assert "Report-ID: <" in m["Subject"], m["Subject"]
parts = [p for p in m.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
assert len(parts) == 1, [p.get_content_type() for p in m.walk()]
fn = parts[0].get_filename()
assert fn.startswith("sender.test!") and fn.endswith(".json.gz"), fn
open(sys.argv[2], "wb").write(gzip.decompress(parts[0].get_payload(decode=True)))
PY
}
