#!/usr/bin/env python3
"""Open N SMTP sessions through the divert and hold them idle.

Each session reads the greeting, sends EHLO, MAIL FROM and RCPT TO and waits
for the RCPT reply: by then mxguard has done STARTTLS upstream.  When all
sessions are up (or failed) it prints one line "READY ok=N fail=M" and keeps
them open until stdin closes or a line arrives, then sends QUIT on all.

usage: holdconns.py HOST PORT N [PARALLEL]
"""
import asyncio
import resource
import sys


async def session(host, port, sem, held, errors):
    async with sem:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 60)
        except Exception as e:  # noqa: BLE001
            errors.append("connect: %s" % e)
            return

        async def reply():
            while True:
                line = await asyncio.wait_for(r.readline(), 120)
                if not line:
                    raise EOFError("connection closed")
                if line[3:4] != b"-":
                    return line

        try:
            for cmd, want in ((None, b"220"), (b"EHLO hold.test\r\n", b"250"),
                              (b"MAIL FROM:<hold@hold.test>\r\n", b"250"),
                              (b"RCPT TO:<sink@sink.test>\r\n", b"250")):
                if cmd:
                    w.write(cmd)
                line = await reply()
                if not line.startswith(want):
                    raise ValueError("%r -> %r" % (cmd, line.strip()))
        except Exception as e:  # noqa: BLE001
            errors.append(str(e) or type(e).__name__)
            w.close()
            return
        held.append((r, w))


async def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    par = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sem = asyncio.Semaphore(par)
    held, errors = [], []
    await asyncio.gather(*(session(host, port, sem, held, errors)
                           for _ in range(n)))
    kinds = {}
    for e in errors:
        kinds[e[:60]] = kinds.get(e[:60], 0) + 1
    print("READY ok=%d fail=%d %s" % (len(held), len(errors),
          " ".join("[%s]x%d" % kv for kv in sorted(kinds.items()))), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    # check the held sessions are still alive: the server must not have
    # closed any of them while idle
    alive = 0
    for r, w in held:
        w.write(b"QUIT\r\n")
    for r, w in held:
        try:
            line = await asyncio.wait_for(r.readline(), 30)
            if line.startswith(b"221"):
                alive += 1
        except Exception:  # noqa: BLE001
            pass
        w.close()
    print("DONE alive=%d" % alive, flush=True)


asyncio.run(main())
