#!/usr/bin/env python3
"""serve.py - serves the dashboard renderer (index.html, render.js, the
dashboard JSON) and passes /api/v1/... through to a Prometheus, so that the
page and the API share one origin.

    python3 docs/grafana/render/serve.py --listen 127.0.0.1:3000 \
        --prometheus http://127.0.0.1:9090
    then open http://127.0.0.1:3000/?from=UNIX&to=UNIX

Grafana is not in Debian 12: this renderer draws the dashboard JSON the way
Grafana lays it out (gridPos, titles, legends, units), with every panel's
PromQL evaluated by the real Prometheus.  Only GET is served; only files of
this directory and the dashboard JSON one level up are readable.
"""
import argparse
import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = {
    "/": (os.path.join(HERE, "index.html"), "text/html; charset=utf-8"),
    "/index.html": (os.path.join(HERE, "index.html"), "text/html; charset=utf-8"),
    "/render.js": (os.path.join(HERE, "render.js"), "text/javascript; charset=utf-8"),
    "/mxguard-dashboard.json": (os.path.join(HERE, "..", "mxguard-dashboard.json"),
                                "application/json"),
}


class Handler(BaseHTTPRequestHandler):
    prometheus = ""

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/api/v1/"):
            try:
                with urllib.request.urlopen(self.prometheus + self.path, timeout=30) as r:
                    body, code, ctype = r.read(), r.status, r.headers.get("Content-Type")
            except urllib.error.HTTPError as e:
                body, code, ctype = e.read(), e.code, e.headers.get("Content-Type")
            except OSError as e:
                body, code, ctype = str(e).encode(), 502, "text/plain"
        elif path in FILES:
            name, ctype = FILES[path]
            with open(name, "rb") as f:
                body, code = f.read(), 200
        else:
            body, code, ctype = b"not found\n", 404, "text/plain"
        self.send_response(code)
        self.send_header("Content-Type", ctype or "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("serve: " + (fmt % args) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:3000")
    p.add_argument("--prometheus", default="http://127.0.0.1:9090")
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)
    Handler.prometheus = a.prometheus.rstrip("/")
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
