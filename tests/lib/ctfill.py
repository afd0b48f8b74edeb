#!/usr/bin/env python3
"""Fill this network namespace's conntrack table.

    ctfill.py

Inserts established, assured TCP entries (198.18.0.0/15 to 192.0.2.1:80,
which nothing here uses) through ctnetlink until nf_conntrack_count reaches
nf_conntrack_max, as a flood of established flows relayed for a gateway's
clients would: assured entries are never evicted for a new flow, so the
kernel drops every new flow's first packet.  The count is the namespace's
own (the max is global on recent kernels): nothing outside it changes, and
the entries go with the namespace.  Prints the count and the max.
"""
import errno
import socket
import struct
import sys

from ctnl import NETLINK_NETFILTER, ct_new


def entry(i, seq):
    src = struct.pack("!I", (198 << 24 | 18 << 16) + (i & 0x1FFFF))
    return ct_new(src, socket.inet_aton("192.0.2.1"), 1024 + (i >> 17), 80,
                  seq)


def sysctl(name):
    with open("/proc/sys/net/netfilter/" + name) as f:
        return int(f.read())


s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
s.setblocking(False)
s.bind((0, 0))
cmax, i, seq = sysctl("nf_conntrack_max"), 0, 1
while sysctl("nf_conntrack_count") < cmax and i < 0x20000 * 64:
    n = min(512, cmax - sysctl("nf_conntrack_count"))
    batch = b""
    for _ in range(n):
        batch += entry(i, seq)
        i += 1
        seq += 1
    s.sendto(batch, (0, 0))
    try:
        while s.recv(65536):
            pass
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.ENOBUFS):
            raise
print("count=%d max=%d" % (sysctl("nf_conntrack_count"), cmax))
sys.exit(0 if sysctl("nf_conntrack_count") >= cmax else 1)
