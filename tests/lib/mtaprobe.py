#!/usr/bin/python3
# mtaprobe.py SRC SRC_PORT DST DST_PORT TIMEOUT [close]: one connection as
# an MTA makes it, from SRC:SRC_PORT (a port the scenario chooses, so
# that its SYNs can be told apart); prints "connected", then "line
# FIRST-LINE" (what answered: mxguard's relay of the MX, or someone
# else's listener), with "close" then "closed" once the server closes;
# or "error TYPE TEXT" (refused, a timeout after TIMEOUT seconds).
import socket
import sys

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[5]))
try:
    s.connect((sys.argv[3], int(sys.argv[4])))
    print("connected", flush=True)
    print("line", s.recv(200).decode(errors="replace").strip(), flush=True)
    if len(sys.argv) > 6 and sys.argv[6] == "close":
        while s.recv(200):
            pass
        print("closed", flush=True)
except Exception as e:
    print("error", type(e).__name__, e, flush=True)
