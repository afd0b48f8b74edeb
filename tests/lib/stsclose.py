#!/usr/bin/env python3
"""An MTA-STS policy host that frames its response by closing the
connection (no Content-Length, no chunked encoding), as HTTP/1.1 allows
for "Connection: close".  --mode clean ends with a TLS close_notify (the
body is whole); --mode cut closes the TCP connection without one (what an
attacker on the path who cuts the connection produces): the client must
not take what it got for the whole policy.  Test code only."""
import argparse
import socket
import ssl

ap = argparse.ArgumentParser()
ap.add_argument("--listen", required=True)
ap.add_argument("--cert", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--policy", required=True)
ap.add_argument("--mode", choices=["clean", "cut"], required=True)
ap.add_argument("--log", required=True)
a = ap.parse_args()

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(a.cert, a.key)
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((a.listen, 443))
ls.listen(8)
while True:
    raw, _ = ls.accept()
    try:
        conn = ctx.wrap_socket(raw, server_side=True)
        req = b""
        while b"\r\n\r\n" not in req and len(req) < 16384:
            d = conn.recv(4096)
            if not d:
                break
            req += d
        body = open(a.policy, "rb").read()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Connection: close\r\n\r\n" + body)
        with open(a.log, "a") as f:
            f.write("served %s %s\n" % (a.mode, req.split(b"\r\n")[0].decode()))
        if a.mode == "clean":
            conn.unwrap().close()       # close_notify, then FIN
        else:
            raw2 = socket.socket(fileno=conn.detach())
            raw2.shutdown(socket.SHUT_RDWR)  # FIN, no close_notify
            raw2.close()
    except Exception as e:  # noqa: BLE001 - a test server logs and goes on
        with open(a.log, "a") as f:
            f.write("error %s\n" % e)
        raw.close()
