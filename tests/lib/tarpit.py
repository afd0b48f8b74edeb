#!/usr/bin/python3
# tarpit.py ADDR PORT: a host that takes every connection and never says a
# word (a report receiver that holds a TLSRPT run); prints "accepted PEER"
# for each connection and "closed" when its peer closes it.
import selectors
import socket
import sys

sel = selectors.DefaultSelector()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is s:
            c, a = s.accept()
            sel.register(c, selectors.EVENT_READ)
            print("accepted", a, flush=True)
        else:
            try:
                d = key.fileobj.recv(65536)
            except OSError:
                d = b""
            if not d:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                print("closed", flush=True)
