#!/usr/bin/env python3
"""The namespaces' default resolver in the integration tests: NXDOMAIN
for every name, at once, over UDP.

The test domains (tls.test, plain.test, ...) exist nowhere: a resolver
that knows so answers NXDOMAIN, a definite answer.  With nothing
answering at all, every lookup would fail (SERVFAIL, timeout), and a
failed MX lookup defers the delivery in mxguard (docs/dane.md): a
failure cannot show that the domain publishes no DANE records.  Tests
of DNS itself start knot and unbound (tests/lib/dns.sh, dnssec.sh) and
point mxguard at those instead.

Usage: nxdns.py ADDRESS READY_FILE   (port 53; READY_FILE is written once
the socket is bound)
"""
import socket
import sys


def answer(q):
    """NXDOMAIN for query q: its id and question, QR and RA set, RD kept,
    no records (an OPT record in q is not echoed); None if q is no query."""
    if len(q) < 12 or q[2] & 0x80:
        return None
    qd = int.from_bytes(q[4:6], "big")
    off = 12
    if qd != 1:
        return None
    while off < len(q) and q[off] != 0:
        if q[off] & 0xC0:
            return None
        off += q[off] + 1
    off += 5  # the root label, type, class
    if off > len(q):
        return None
    flags = bytes([0x80 | (q[2] & 0x01), 0x80 | 3])
    return q[0:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + q[12:off]


def main():
    addr, ready = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    with open(ready, "w") as f:
        f.write("ready\n")
    while True:
        q, peer = s.recvfrom(4096)
        a = answer(q)
        if a is not None:
            s.sendto(a, peer)


if __name__ == "__main__":
    main()
