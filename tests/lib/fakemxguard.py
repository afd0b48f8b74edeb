#!/usr/bin/env python3
"""A minimal stand-in for mxguard, to self-test the namespace harness.

NOT mxguard: it only mimics its command line and log lines so that the
scenarios' mxguard path (divert rules, SO_ORIGINAL_DST, SO_MARK loop
avoidance, log parsing) can be checked before the real binary exists:

    MXGUARD=tests/lib/fakemxguard.py bash tests/run-ns.sh

  fakemxguard.py -n -c FILE        check the config (key = value lines)
  fakemxguard.py -c FILE run       serve until SIGTERM

Per session: learn the original destination, connect there with SO_MARK,
relay the greeting, answer the client's EHLO with the upstream's
capabilities after upgrading the upstream with STARTTLS when offered (the
session is dropped if plaintext follows the 220), then pump bytes both ways.
It does not look at DATA at all, so it lets SMTP smuggling through (scenario
16 is expected to fail with it).
"""
import os
import select
import signal
import socket
import ssl
import struct
import sys
import threading

SO_ORIGINAL_DST = 80
PID = os.getpid()
LOCK = threading.Lock()
SID = [0]


def log(msg):
    with LOCK:
        sys.stderr.write("mxguard[%d]: %s\n" % (PID, msg))
        sys.stderr.flush()


def parse(path):
    conf = {}
    for n, line in enumerate(open(path), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise SystemExit("%s:%d: expected key = value" % (path, n))
        k, v = line.split("=", 1)
        conf[k.strip()] = v.strip()
    return conf


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def readline(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                l, self.buf = self.buf, b""
                return l
            self.buf += d
        i = self.buf.index(b"\n") + 1
        l, self.buf = self.buf[:i], self.buf[i:]
        return l


def readreply(f):
    lines = []
    while True:
        l = f.readline()
        if not l:
            return None
        lines.append(l)
        if l[3:4] != b"-":
            return lines


def session(c, conf, sid):
    peer = c.getpeername()
    dst = c.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, ip = struct.unpack("!2xH4s8x", dst)
    ip = socket.inet_ntoa(ip)
    log("sid=%d event=connect client=%s:%d dst=%s:%d" % (sid, peer[0], peer[1], ip, port))
    u = socket.socket()
    u.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, int(conf.get("upstream_mark", "0x4d58"), 0))
    try:
        u.settimeout(10)
        u.connect((ip, port))
        uf = Reader(u)
        g = readreply(uf)
        if g is None:
            raise OSError("no greeting")
        c.sendall(b"".join(g))
        cf = Reader(c)
        line = cf.readline()
        if not line:
            raise OSError("client gone")
        if line[:4].upper() == b"EHLO":
            u.sendall(line)
            caps = readreply(uf)
            if any(l[4:].strip().upper() == b"STARTTLS" for l in caps):
                u.sendall(b"STARTTLS\r\n")
                r = readreply(uf)
                if r is None or not r[-1].startswith(b"220"):
                    raise OSError("STARTTLS refused")
                if uf.buf:
                    log("sid=%d event=error reason=plaintext-after-starttls" % sid)
                    raise OSError("injection")
                ctx = ssl.create_default_context(cafile=conf.get("tls_ca_file") or None)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                u.settimeout(10)
                u = ctx.wrap_socket(u)
                log("sid=%d event=tls protocol=%s cipher=%s verify=none" %
                    (sid, u.version(), u.cipher()[0]))
                uf = Reader(u)
                u.sendall(line)
                caps = readreply(uf)
                caps = [l for l in caps if l[4:].strip().upper() != b"STARTTLS"]
                caps[-1] = caps[-1][:3] + b" " + caps[-1][4:]
            c.sendall(b"".join(caps))
        else:
            u.sendall(line)
        # pump (buffered bytes in the file objects first)
        u.settimeout(None)
        if uf.buf:
            c.sendall(uf.buf)
        if cf.buf:
            u.sendall(cf.buf)
        msgs = 0
        while True:
            if isinstance(u, ssl.SSLSocket) and u.pending():
                r = [u]
            else:
                r, _, _ = select.select([c, u], [], [], 300)
            if not r:
                break
            if u in r:
                d = u.recv(65536)
                if not d:
                    break
                msgs += d.count(b"250 2.0.0 Ok: queued")
                c.sendall(d)
            if c in r:
                d = c.recv(65536)
                if not d:
                    break
                u.sendall(d)
        for _ in range(msgs):
            log("sid=%d event=message result=sent" % sid)
    except (OSError, ssl.SSLError) as e:
        log("sid=%d event=error reason=%s" % (sid, str(e).replace(" ", "_")))
    finally:
        log("sid=%d event=close" % sid)
        for s in (c, u):
            try:
                s.close()
            except OSError:
                pass


def main():
    args = sys.argv[1:]
    check = "-n" in args
    conf = parse(args[args.index("-c") + 1])
    if check:
        return 0
    host, port = conf.get("listen", "127.0.0.1:10025").rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(64)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    log("event=listening addr=%s:%s" % (host, port))
    while True:
        c, _ = s.accept()
        SID[0] += 1
        threading.Thread(target=session, args=(c, conf, SID[0]), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
