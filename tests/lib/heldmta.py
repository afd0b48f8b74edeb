"""An MTA session held open at a point the test chooses (ns 88, 89, 99).

heldmta.py DST READY GO MARKER [WAIT]: connects to DST:25, reads the
greeting, says EHLO, writes its source port to READY, waits (at most WAIT
seconds, 20 by default) for the file GO, then sends "NOOP MARKER" and prints what came back, or the error.
The test changes the packet path between READY and GO and counts, on the
MX's side, the packets that carry MARKER.
"""
import os
import socket
import sys
import time

dst, ready, go, marker = sys.argv[1:5]
wait = float(sys.argv[5]) if len(sys.argv) > 5 else 20.0
c = socket.create_connection((dst, 25), timeout=20)
print("greeting:", c.recv(300))
c.sendall(b"EHLO mta.sender.test\r\n")
print("ehlo:", c.recv(1000))
with open(ready, "w") as f:
    f.write(str(c.getsockname()[1]))
for _ in range(int(wait * 20)):
    if os.path.exists(go):
        break
    time.sleep(0.05)
try:
    c.sendall(b"NOOP " + marker.encode() + b"\r\n")
    c.settimeout(5)
    print("after:", c.recv(300))
except OSError as e:
    print("after:", repr(e))
