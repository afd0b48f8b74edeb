#!/usr/bin/env python3
"""Misbehaving SMTP peers for mxguard's integration tests.

One process, one listening socket, one mode (--mode):

  normal     a plain SMTP server (STARTTLS offered if --cert is given);
             accepted messages are written to --store DIR if given.
  die        like normal, but closes the TCP connection (FIN, or RST with
             --rst) after --after N bytes of DATA content: the upstream
             "dies in the middle of DATA".
  inject     offers STARTTLS; answers STARTTLS with "220 ..." immediately
             followed, in the same TCP segment, by extra plaintext (--inject,
             the CVE-2011-0411 injection class).  Then records what arrives:
             a TLS ClientHello (handshake is completed and the session goes on
             over TLS) or further cleartext commands.
  nostarttls never offers STARTTLS (and refuses the command).
  badtls     offers STARTTLS, answers 220, then answers the ClientHello
             with bytes that are no TLS and hangs up: the handshake fails.
             Sessions that never send STARTTLS are served normally.
  mitm       a STARTTLS-stripping man in the middle: forwards to --upstream
             HOST:PORT and rewrites STARTTLS in the server's replies to
             XXXXXXXA, so the client thinks TLS is not offered.

--banner and --data-reply give the greeting's and the end-of-data reply's
text as raw bytes (invalid UTF-8, control bytes, quotes allowed).

Everything is logged to --log FILE, one line per event, flushed at once:
  <conn> open peer=IP:PORT
  <conn> recv <phase> <command line>        phase: clear, tls,
                                              clear-after-starttls
  <conn> data-bytes <n> <phase>             content of one DATA
  <conn> message <phase> bytes=<n> file=<path>
  <conn> starttls-reply-sent injected=<n>
  <conn> after-starttls tls-clienthello | cleartext | eof
  <conn> tls-handshake ok <version> <cipher> | fail <reason>
  <conn> died after=<n>
  <conn> close
"""
import argparse
import os
import socket
import socketserver
import ssl
import sys
import threading
import time

ARGS = None
LOCK = threading.Lock()
COUNTER = [0]


def log(conn, msg):
    with LOCK:
        with open(ARGS.log, "a") as f:
            f.write("%s %d %s\n" % (time.strftime("%H:%M:%S"), conn, msg))
            f.flush()


def printable(b):
    return b.decode("latin-1").rstrip("\r\n").encode("unicode_escape").decode()[:300]


class Conn:
    def __init__(self, sock, cid):
        self.sock = sock
        self.raw = sock
        self.buf = b""
        self.cid = cid
        self.phase = "clear"

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self, text):
        self.send(text + "\r\n")

    def readline(self, limit=65536):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                line, self.buf = self.buf, b""
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line
                return None
            self.buf += chunk
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key or ARGS.cert)
    return ctx


def start_tls(c):
    try:
        s = tls_context().wrap_socket(c.raw, server_side=True)
    except (ssl.SSLError, OSError) as e:
        log(c.cid, "tls-handshake fail %s" % e)
        return False
    c.sock = s
    c.phase = "tls"
    log(c.cid, "tls-handshake ok %s %s" % (s.version(), s.cipher()[0]))
    return True


def smtp_session(c):
    mode = ARGS.mode
    if ARGS.banner is not None:
        # the bytes as given on the command line, invalid UTF-8 included
        c.send(b"220 " + os.fsencode(ARGS.banner) + b"\r\n")
    else:
        c.reply("220 %s ESMTP badsmtp (%s)" % (ARGS.hostname, mode))
    in_tls = False
    while True:
        line = c.readline()
        if line is None:
            return
        log(c.cid, "recv %s %s" % (c.phase, printable(line)))
        cmd = line.strip().split(b" ", 1)[0].upper()
        if cmd in (b"EHLO", b"HELO"):
            if cmd == b"HELO":
                c.reply("250 %s" % ARGS.hostname)
                continue
            caps = ["250-%s" % ARGS.hostname, "250-PIPELINING", "250-SIZE 104857600",
                    "250-8BITMIME", "250-ENHANCEDSTATUSCODES"]
            if ARGS.cert and not in_tls and mode not in ("nostarttls",):
                caps.append("250-STARTTLS")
            caps.append("250 SMTPUTF8" if ARGS.smtputf8 else "250 DSN")
            c.send("".join(x + "\r\n" for x in caps))
        elif cmd == b"STARTTLS":
            if not ARGS.cert or in_tls or mode == "nostarttls":
                c.reply("502 5.5.1 not offered")
                continue
            if c.buf:
                log(c.cid, "pipelined-after-starttls %s" % printable(c.buf))
            if mode == "inject":
                inj = ARGS.inject.encode().decode("unicode_escape").encode("latin-1")
                # one send() -> one segment with the 220 and the injection
                c.raw.sendall(b"220 2.0.0 Ready to start TLS\r\n" + inj)
                log(c.cid, "starttls-reply-sent injected=%d" % len(inj))
                c.raw.settimeout(ARGS.wait)
                try:
                    first = c.raw.recv(1, socket.MSG_PEEK)
                except socket.timeout:
                    log(c.cid, "after-starttls timeout")
                    return
                finally:
                    c.raw.settimeout(None)
                if not first:
                    log(c.cid, "after-starttls eof")
                    return
                if first == b"\x16":
                    log(c.cid, "after-starttls tls-clienthello")
                    if not start_tls(c):
                        return
                    in_tls = True
                else:
                    log(c.cid, "after-starttls cleartext")
                    c.phase = "clear-after-starttls"
                continue
            c.reply("220 2.0.0 Ready to start TLS")
            if mode == "badtls":
                # read the ClientHello, answer with bytes that are no TLS
                c.raw.settimeout(ARGS.wait)
                try:
                    hello = c.raw.recv(4096)
                except socket.timeout:
                    hello = b""
                log(c.cid, "badtls clienthello=%d" % len(hello))
                c.raw.sendall(b"this is not a TLS server hello\r\n")
                c.raw.close()
                return
            if not start_tls(c):
                return
            in_tls = True
        elif cmd == b"MAIL":
            c.reply("250 2.1.0 Ok")
        elif cmd == b"RCPT":
            addr = line.strip()[8:].strip(b"<> ").lower()
            if ARGS.reject and addr.decode("latin-1") in ARGS.reject:
                c.reply("550 5.1.1 <%s>: Recipient address rejected" % addr.decode("latin-1"))
            else:
                c.reply("250 2.1.5 Ok")
        elif cmd == b"DATA":
            c.reply("354 End data with <CR><LF>.<CR><LF>")
            n = 0
            body = []
            while True:
                dl = c.readline()
                if dl is None:
                    log(c.cid, "data-bytes %d %s eof" % (n, c.phase))
                    return
                if dl in (b".\r\n", b".\n"):
                    break
                n += len(dl)
                body.append(dl)
                if mode == "die" and n >= ARGS.after:
                    log(c.cid, "data-bytes %d %s" % (n, c.phase))
                    log(c.cid, "died after=%d" % n)
                    if ARGS.rst:
                        c.raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    else:
                        try:
                            c.raw.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    c.raw.close()
                    return
            log(c.cid, "data-bytes %d %s" % (n, c.phase))
            path = ""
            if ARGS.store:
                path = os.path.join(ARGS.store, "msg-%d-%d-%f" % (os.getpid(), c.cid, time.time()))
                with open(path, "wb") as f:
                    f.write(b"".join(body))
            log(c.cid, "message %s bytes=%d file=%s" % (c.phase, n, path))
            if ARGS.data_reply is not None:
                # the bytes as given on the command line, as --banner
                c.send(b"250 " + os.fsencode(ARGS.data_reply) + b"\r\n")
            else:
                c.reply("250 2.0.0 Ok: queued by badsmtp")
        elif cmd == b"RSET" or cmd == b"NOOP":
            c.reply("250 2.0.0 Ok")
        elif cmd == b"QUIT":
            c.reply("221 2.0.0 Bye")
            return
        else:
            c.reply("502 5.5.2 Error: command not recognized")


def mitm_session(c):
    host, port = ARGS.upstream.rsplit(":", 1)
    up = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
    up.settimeout(None)
    log(c.cid, "upstream-connected %s" % ARGS.upstream)
    done = threading.Event()

    def server_to_client():
        buf = b""
        try:
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                buf += chunk
                # rewrite complete lines only (STARTTLS may span chunks)
                if b"\n" in buf:
                    i = buf.rindex(b"\n") + 1
                    out, buf = buf[:i], buf[i:]
                    if b"STARTTLS" in out.upper():
                        log(c.cid, "stripped STARTTLS")
                    mask = ARGS.mask.encode()
                    out = out.replace(b"STARTTLS", mask).replace(b"starttls", mask)
                    c.raw.sendall(out)
            if buf:
                c.raw.sendall(buf)
        except OSError:
            pass
        finally:
            try:
                c.raw.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            done.set()

    t = threading.Thread(target=server_to_client, daemon=True)
    t.start()
    in_data = False
    n = 0
    try:
        while True:
            line = c.readline()
            if line is None:
                break
            up.sendall(line)
            if in_data:
                if line in (b".\r\n", b".\n"):
                    in_data = False
                    log(c.cid, "data-bytes %d clear" % n)
                    n = 0
                else:
                    n += len(line)
                continue
            log(c.cid, "recv clear %s" % printable(line))
            if line.strip().upper() == b"DATA":
                in_data = True  # (assumes the server answers 354)
    except OSError:
        pass
    try:
        up.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    done.wait(30)
    up.close()


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        with LOCK:
            COUNTER[0] += 1
            cid = COUNTER[0]
        peer = self.client_address
        log(cid, "open peer=%s:%d" % (peer[0], peer[1]))
        c = Conn(self.request, cid)
        try:
            if ARGS.mode == "mitm":
                mitm_session(c)
            else:
                smtp_session(c)
        except (OSError, ssl.SSLError) as e:
            log(cid, "error %s" % e)
        finally:
            log(cid, "close")
            try:
                c.sock.close()
            except OSError:
                pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", required=True,
                   choices=["normal", "die", "inject", "nostarttls", "mitm", "badtls"])
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=25)
    p.add_argument("--log", required=True)
    p.add_argument("--cert", help="PEM with certificate chain (and key, or --key)")
    p.add_argument("--key")
    p.add_argument("--hostname", default="badsmtp.test")
    p.add_argument("--banner", help="greeting text after \"220 \" (any bytes)")
    p.add_argument("--data-reply", help="text after \"250 \" accepting a message (any bytes)")
    p.add_argument("--after", type=int, default=1000, help="die: DATA bytes before dying")
    p.add_argument("--rst", action="store_true", help="die: reset instead of FIN")
    p.add_argument("--inject", default="250-injected\\r\\n250 INJECTED\\r\\n",
                   help="inject: plaintext sent after the 220 (\\r\\n escapes)")
    p.add_argument("--wait", type=float, default=15, help="inject: seconds to wait after 220")
    p.add_argument("--reject", action="append", default=[], help="550 this recipient")
    p.add_argument("--store", help="write accepted message bodies into DIR")
    p.add_argument("--upstream", help="mitm: HOST:PORT of the real server")
    p.add_argument("--mask", default="XXXXXXXA",
                   help="mitm: what STARTTLS is overwritten with (8 characters)")
    p.add_argument("--smtputf8", action="store_true")
    ARGS = p.parse_args()
    ARGS.reject = [r.lower() for r in ARGS.reject]
    if ARGS.mode == "mitm" and not ARGS.upstream:
        p.error("--mode mitm needs --upstream")
    if ARGS.mode == "inject" and not ARGS.cert:
        p.error("--mode inject needs --cert")
    fam = socket.AF_INET6 if ":" in ARGS.listen else socket.AF_INET
    Server.address_family = fam
    srv = Server((ARGS.listen.strip("[]"), ARGS.port), Handler)
    log(0, "listening %s:%d mode=%s" % (ARGS.listen, ARGS.port, ARGS.mode))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
