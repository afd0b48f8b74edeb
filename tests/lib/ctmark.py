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

from ctnl import NETLINK_NETFILTER, ct_new


def main():
    src, dst = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2])
    mark, n = int(sys.argv[3], 0), int(sys.argv[4])
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    for i in range(n):
        s.send(ct_new(src, dst, 20000 + i, 25, i + 1, mark=mark, ack=True))
        err = struct.unpack_from("=i", s.recv(4096), 16)[0]
        if err != 0:
            sys.exit("entry %d: errno %d" % (i, -err))
    print(n)


if __name__ == "__main__":
    main()
