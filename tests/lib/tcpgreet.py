#!/usr/bin/python3
# tcpgreet.py HOST PORT [BIND_IP BIND_PORT]: one TCP connection, as the
# user it runs as (tests/lib/ns.sh tcp_greet_as), from BIND_IP:BIND_PORT
# if given; prints "refused" (a reset), "greeting LINE" (the first line
# the server sent) or "error TYPE TEXT".
import socket
import sys

s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
if len(sys.argv) > 4:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[3], int(sys.argv[4])))
s.settimeout(40)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("greeting", s.recv(200).decode(errors="replace").strip())
except ConnectionRefusedError:
    print("refused")
except Exception as e:
    print("error", type(e).__name__, e)
