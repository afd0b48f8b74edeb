#!/usr/bin/env python3
"""An SMTP client that stops in the middle of a session until told to go on.

    holdclient.py HOST PORT RCPT STATEDIR [--stall | --rcpt-on-go]

Connects, sends EHLO, MAIL FROM, RCPT TO, then writes STATEDIR/ready and
waits until STATEDIR/go exists; then DATA, a small message (Message-ID
<held-NAME@sender.test>, NAME the last part of STATEDIR; the message as
sent, LF line ends, in STATEDIR/sent), QUIT.  The final reply code to the
message (or "closed" / "refused") is written to STATEDIR/result.  With
--stall it never sends DATA: it just holds the session open until killed
or disconnected ("closed" then).  With --rcpt-on-go it holds before
RCPT TO instead, and writes the RCPT's whole reply line as the result,
then QUIT.
Used by the drain and reload scenarios, and the conntrack-full one.
"""
import os
import socket
import sys
import time

host, port, rcpt, state = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
stall = "--stall" in sys.argv[5:]
rcpt_on_go = "--rcpt-on-go" in sys.argv[5:]


def result(text):
    with open(os.path.join(state, "result.tmp"), "w") as f:
        f.write(text + "\n")
    os.rename(os.path.join(state, "result.tmp"), os.path.join(state, "result"))


try:
    s = socket.create_connection((host, port), timeout=60)
except OSError as e:
    result("refused")
    sys.exit(0)
f = s.makefile("rb")


def reply():
    last = b""
    while True:
        line = f.readline()
        if not line:
            raise EOFError
        last = line
        if line[3:4] != b"-":
            return last.decode(errors="replace").strip()


def wait_go():
    while not os.path.exists(os.path.join(state, "go")):
        time.sleep(0.05)


try:
    reply()
    cmds = ["EHLO hold.sender.test", "MAIL FROM:<hold@sender.test>"]
    if rcpt_on_go:
        for c in cmds:
            s.sendall((c + "\r\n").encode())
            r = reply()
            if not r.startswith("2"):
                result("early:" + r)
                sys.exit(0)
        open(os.path.join(state, "ready"), "w").close()
        wait_go()
        s.sendall(("RCPT TO:<%s>\r\n" % rcpt).encode())
        result(reply())
        # the result is written: a server gone by now (a reset for the
        # QUIT it closed on) must not overwrite it with "closed"
        try:
            s.sendall(b"QUIT\r\n")
            reply()
        except (EOFError, OSError):
            pass
        sys.exit(0)
    for c in cmds + ["RCPT TO:<%s>" % rcpt]:
        s.sendall((c + "\r\n").encode())
        r = reply()
        if not r.startswith("2"):
            result("early:" + r)
            sys.exit(0)
    open(os.path.join(state, "ready"), "w").close()
    if stall:
        s.settimeout(None)
        while f.readline():
            pass
        result("closed")
        sys.exit(0)
    wait_go()
    s.sendall(b"DATA\r\n")
    r = reply()
    if not r.startswith("354"):
        result("data:" + r)
        sys.exit(0)
    # the Message-ID names the state dir (unique in a scenario), and the
    # message as sent (LF line ends) is kept in STATEDIR/sent for the
    # harness's assert_once, which counts and compares what arrived
    msg = ("Subject: held session\nMessage-ID: <held-%s@sender.test>\n"
           "\nThis session was held open across a signal.\n"
           % os.path.basename(os.path.abspath(state)))
    with open(os.path.join(state, "sent"), "w") as sf:
        sf.write(msg)
    s.sendall(msg.replace("\n", "\r\n").encode() + b".\r\n")
    r = reply()
    result(r[:3])
    # the result is written: a server gone by now (a reset for the
    # QUIT it closed on) must not overwrite it with "closed"
    try:
        s.sendall(b"QUIT\r\n")
        reply()
    except (EOFError, OSError):
        pass
except (EOFError, OSError) as e:
    print("holdclient: %s" % (repr(e) if str(e) else "end of stream"),
          file=sys.stderr)
    result("closed")
