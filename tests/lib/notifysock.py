# notifysock.py PATH OUT: a stand-in for systemd's notify socket (tests/ns/94):
# every datagram received on the unix socket PATH is written to OUT, one
# line per assignment, prefixed by CLOCK_MONOTONIC seconds.  Test code only.
import socket, sys, time, os
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try: os.unlink(path)
except OSError: pass
s.bind(path)
os.chmod(path, 0o666)
with open(out, "a", buffering=1) as f:
    while True:
        m = s.recv(4096).decode(errors="replace")
        for l in m.split("\n"):
            f.write("%.3f %s\n" % (time.monotonic(), l))
