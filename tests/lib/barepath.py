#!/usr/bin/python3
# barepath.py HOST MSGID1 MSGID2: one SMTP session as a queueless device
# (a printer's scan-to-mail) speaks it, paths without angle brackets:
# MAIL FROM:dave@sender.test and RCPT TO:carol@plain.test, one command at
# a time, then a second transaction with MAIL, RCPT and DATA in one write
# (PIPELINING).  Prints each reply; exits 1 at the first unexpected one.
import socket
import sys

host, id1, id2 = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.create_connection((host, 25), timeout=40)
f = s.makefile("rb")


def reply(want):
    lines = []
    while True:
        line = f.readline()
        if not line:
            print("closed, wanted", want)
            sys.exit(1)
        lines.append(line.decode(errors="replace").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            break
    print("\n".join(lines))
    if not lines[-1].startswith(want):
        print("unexpected reply, wanted", want)
        sys.exit(1)


def send(b):
    s.sendall(b)


def message(msgid, subj):
    return ("From: <dave@sender.test>\r\nTo: <carol@plain.test>\r\n"
            "Subject: %s\r\nMessage-ID: <%s>\r\n\r\nscanned page\r\n"
            ".\r\n" % (subj, msgid)).encode()


reply("220")
send(b"EHLO scanner.sender.test\r\n")
reply("250")
send(b"MAIL FROM:dave@sender.test\r\n")
reply("250")
send(b"RCPT TO:carol@plain.test\r\n")
reply("250")
send(b"DATA\r\n")
reply("354")
send(message(id1, "bare one"))
reply("250")
send(b"MAIL FROM: dave@sender.test SIZE=200\r\n"
     b"RCPT TO:carol@plain.test\r\nDATA\r\n")
reply("250")
reply("250")
reply("354")
send(message(id2, "bare two"))
reply("250")
send(b"QUIT\r\n")
reply("221")
