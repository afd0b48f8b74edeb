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

NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x200, 0x400
NLA_F_NESTED = 0x8000
CT_NEW = (1 << 8) | 0  # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO = 1, 2, 3, 4
CTA_TIMEOUT = 7
IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 2, 4, 8
TCP_CONNTRACK_ESTABLISHED = 3


def attr(t, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, t) + payload + b"\0" * ((4 - n % 4) % 4)


def nested(t, *parts):
    return attr(t | NLA_F_NESTED, b"".join(parts))


def tuple_(t, src, dst, sport, dport):
    return nested(t,
                  nested(1, attr(1, src), attr(2, dst)),
                  nested(2, attr(1, struct.pack("B", socket.IPPROTO_TCP)),
                         attr(2, struct.pack("!H", sport)),
                         attr(3, struct.pack("!H", dport))))


def entry(i, seq):
    src = struct.pack("!I", (198 << 24 | 18 << 16) + (i & 0x1FFFF))
    dst = socket.inet_aton("192.0.2.1")
    sport = 1024 + (i >> 17)
    body = (struct.pack("=BBH", socket.AF_INET, 0, 0) +
            tuple_(CTA_TUPLE_ORIG, src, dst, sport, 80) +
            tuple_(CTA_TUPLE_REPLY, dst, src, 80, sport) +
            # (ctnetlink wants CONFIRMED as it will be: EBUSY otherwise)
            attr(CTA_STATUS, struct.pack("!I", IPS_SEEN_REPLY |
                                         IPS_ASSURED | IPS_CONFIRMED)) +
            attr(CTA_TIMEOUT, struct.pack("!I", 3600)) +
            nested(CTA_PROTOINFO, nested(1, attr(1, struct.pack(
                "B", TCP_CONNTRACK_ESTABLISHED)))))
    return struct.pack("=IHHII", 16 + len(body), CT_NEW,
                       NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL,
                       seq, 0) + body


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
