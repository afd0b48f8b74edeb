#!/usr/bin/python3
# portthief.py ADDR PORT [wait]: an unprivileged local user (nobody) who
# listens where mxguard's rules divert flows (divert_port, a port above
# ip_unprivileged_port_start); with "wait", binds the moment the port is
# free.  Prints "bound", then the peer of each connection it gets, which
# it greets as "220 not-mxguard": a scenario asserts that it saw no one.
# (Its output goes to a file the scenario opened: nobody writes none.)
import os
import socket
import sys
import time

os.setgid(65534)
os.setuid(65534)
s = socket.socket()
if len(sys.argv) > 3 and sys.argv[3] == "wait":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
while True:
    try:
        s.bind((sys.argv[1], int(sys.argv[2])))
        break
    except OSError:
        if len(sys.argv) <= 3:
            raise
        time.sleep(0.05)
s.listen(8)
print("bound", flush=True)
while True:
    c, a = s.accept()
    print("%s:%d" % a, flush=True)
    c.sendall(b"220 not-mxguard ESMTP\r\n")
