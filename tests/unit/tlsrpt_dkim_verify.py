#!/usr/bin/python3
"""tlsrpt_dkim_verify.py MSG SELECTOR DOMAIN KEYTXT

Verifies the DKIM signature of the message in file MSG with python3-dkim,
an implementation independent of the libopendkim that signed it.  The key
lookup of SELECTOR._domainkey.DOMAIN is answered from the file KEYTXT (the
TXT record's text) instead of DNS; any other name is unknown.  Verification
is python3-dkim's RFC 8460 receiver mode (tlsrpt='strict'): the key record
must carry the service type s=tlsrpt, and an l= body length is not honoured.  Exit 0: the
signature verifies; 1: it does not; 2: usage or the module is missing.

Run by tests/unit/test_tlsrpt_mail.c with /usr/bin/python3, the interpreter
Debian's python3-dkim installs into.
"""
import sys

try:
    import dkim
except ImportError:
    sys.stderr.write("python3-dkim is not installed (scripts/deps.sh)\n")
    sys.exit(2)


def main():
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1], "rb") as f:
        msg = f.read()
    with open(sys.argv[4], "rb") as f:
        txt = f.read().strip()
    name = sys.argv[2].encode() + b"._domainkey." + sys.argv[3].encode() + b"."

    def dnsfunc(q, timeout=5):
        return txt if q.lower() == name.lower() else None

    ok = dkim.verify(msg, dnsfunc=dnsfunc, tlsrpt="strict")
    print("dkim: %s" % ("pass" if ok else "fail"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
