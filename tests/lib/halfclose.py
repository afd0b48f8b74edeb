#!/usr/bin/env python3
"""An SMTP client that half-closes its connection right after its dot.

    halfclose.py HOST PORT RCPT RESULTFILE [--quit]

Sends EHLO, MAIL FROM, RCPT TO, DATA and a small message (each reply
read), then the message's dot (with a pipelined QUIT if --quit) and
shuts down its sending side (shutdown(SHUT_WR)), as some MTAs do, and
reads on until the server closes.  RESULTFILE gets the codes of every
reply read after the dot, space-separated ("250 221"), or "closed" when
none came; "early:REPLY" when the session failed before the dot.
"""
import os
import socket
import sys

host, port, rcpt, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
quit_ = "--quit" in sys.argv[5:]


def result(text):
    with open(out + ".tmp", "w") as f:
        f.write(text + "\n")
    os.rename(out + ".tmp", out)


s = socket.create_connection((host, port), timeout=60)
f = s.makefile("rb")


def reply():
    while True:
        line = f.readline()
        if not line:
            raise EOFError
        if line[3:4] != b"-":
            return line.decode(errors="replace").strip()


try:
    reply()
    for c, want in (("EHLO halfclose.sender.test", "2"),
                    ("MAIL FROM:<halfclose@sender.test>", "2"),
                    ("RCPT TO:<%s>" % rcpt, "2"), ("DATA", "354")):
        s.sendall((c + "\r\n").encode())
        r = reply()
        if not r.startswith(want):
            result("early:" + r)
            sys.exit(0)
    s.sendall(b"Subject: half-closed\r\nMessage-ID: <halfclose-%d@sender.test>"
              b"\r\n\r\nThe client shut down its side after the dot.\r\n"
              % (1 if quit_ else 2))
    s.sendall(b".\r\nQUIT\r\n" if quit_ else b".\r\n")
    s.shutdown(socket.SHUT_WR)
except (EOFError, OSError) as e:
    result("early:%s" % e)
    sys.exit(0)
codes = []
try:
    while True:
        codes.append(reply()[:3])
except (EOFError, OSError):
    pass
result(" ".join(codes) if codes else "closed")
