#!/usr/bin/env python3
"""Insert conntrack entries of port-25 flows that carry a connmark.

    ctmark.py SRC DST MARK N

N established, assured TCP entries SRC:P -> DST:25 (P from 20000 on) with
connmark MARK, through ctnetlink: what N flows a bypass entry let through
leave behind (ns 121).  Entries of closed flows would do as well: the
dump that finds them does not look at the TCP state.  Prints the count.
"""
import socket
import struct
import sys

NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLA_F_NESTED = 0x8000
CT_NEW = (1 << 8) | 0  # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO = 1, 2, 3, 4
CTA_TIMEOUT, CTA_MARK = 7, 8
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


def main():
    src, dst = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2])
    mark, n = int(sys.argv[3], 0), int(sys.argv[4])
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    for i in range(n):
        sport = 20000 + i
        body = (struct.pack("=BBH", socket.AF_INET, 0, 0) +
                tuple_(CTA_TUPLE_ORIG, src, dst, sport, 25) +
                tuple_(CTA_TUPLE_REPLY, dst, src, 25, sport) +
                # (ctnetlink wants CONFIRMED as it will be: EBUSY otherwise)
                attr(CTA_STATUS, struct.pack("!I", IPS_SEEN_REPLY |
                                             IPS_ASSURED | IPS_CONFIRMED)) +
                attr(CTA_TIMEOUT, struct.pack("!I", 3600)) +
                attr(CTA_MARK, struct.pack("!I", mark)) +
                nested(CTA_PROTOINFO, nested(1, attr(1, struct.pack(
                    "B", TCP_CONNTRACK_ESTABLISHED)))))
        s.send(struct.pack("=IHHII", 16 + len(body), CT_NEW,
                           NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL |
                           NLM_F_ACK, i + 1, 0) + body)
        err = struct.unpack_from("=i", s.recv(4096), 16)[0]
        if err != 0:
            sys.exit("entry %d: errno %d" % (i, -err))
    print(n)


if __name__ == "__main__":
    main()
