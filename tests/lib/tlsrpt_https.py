#!/usr/bin/env python3
"""A TLSRPT report receiver for mxguard's integration tests (RFC 8460
section 5.2): an HTTPS server that answers every POST with 201 and
stores what it received.

  tlsrpt_https.py --listen ADDR --port 443 --cert C --key K --dir DIR

Each POST becomes DIR/N.body (the raw body) and DIR/N.meta (the request
line and headers), N counting from 1; DIR/N.meta is written last, so a
test that sees it sees a complete request.  Anything else gets 405.
"""
import argparse
import http.server
import os
import ssl
import threading

ARGS = None
LOCK = threading.Lock()
COUNT = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n > 0 else b""
        with LOCK:
            COUNT[0] += 1
            i = COUNT[0]
        with open(os.path.join(ARGS.dir, "%d.body" % i), "wb") as f:
            f.write(body)
        tmp = os.path.join(ARGS.dir, "%d.meta.tmp" % i)
        with open(tmp, "w") as f:
            f.write("%s\n" % self.requestline)
            for k, v in self.headers.items():
                f.write("%s: %s\n" % (k, v))
        os.rename(tmp, os.path.join(ARGS.dir, "%d.meta" % i))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def do_GET(self):
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, default=443)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--dir", required=True)
    ARGS = p.parse_args()
    os.makedirs(ARGS.dir, exist_ok=True)
    srv = http.server.ThreadingHTTPServer((ARGS.listen, ARGS.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
