"""ctnetlink messages for the tests' conntrack helpers (ctfill.py,
ctmark.py): one established, assured TCP entry per message, as a flow
that finished its handshake leaves it.  Test code only."""
import socket
import struct

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


def ct_new(src, dst, sport, dport, seq, mark=None, ack=False):
    """The CT_NEW message of an established, assured entry src:sport ->
    dst:dport (4-byte packed IPv4 addresses), with connmark mark."""
    body = (struct.pack("=BBH", socket.AF_INET, 0, 0) +
            tuple_(CTA_TUPLE_ORIG, src, dst, sport, dport) +
            tuple_(CTA_TUPLE_REPLY, dst, src, dport, sport) +
            # (ctnetlink wants CONFIRMED as it will be: EBUSY otherwise)
            attr(CTA_STATUS, struct.pack("!I", IPS_SEEN_REPLY |
                                         IPS_ASSURED | IPS_CONFIRMED)) +
            attr(CTA_TIMEOUT, struct.pack("!I", 3600)) +
            (attr(CTA_MARK, struct.pack("!I", mark)) if mark is not None
             else b"") +
            nested(CTA_PROTOINFO, nested(1, attr(1, struct.pack(
                "B", TCP_CONNTRACK_ESTABLISHED)))))
    flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | (NLM_F_ACK if ack
                                                         else 0)
    return struct.pack("=IHHII", 16 + len(body), CT_NEW, flags, seq,
                       0) + body
