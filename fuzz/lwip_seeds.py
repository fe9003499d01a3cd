"""Seed inputs for fuzz_lwip_input: a TCP connection to the listener (SYN,
time, a request in an ACK batch), one that asks for a bulk answer and then
acknowledges it with losses reported by SACK, one left unacknowledged
through retransmission timeouts, and UDP to the listener and
to a closed port, in IPv4 and IPv6, encoded as the target's ops."""

import os
import struct
import sys

NODE4, PEER4 = bytes([100, 64, 0, 1]), bytes([100, 64, 0, 2])
NODE6 = bytes.fromhex("fd7a115ca1e000000000000000000001")
PEER6 = bytes.fromhex("fd7a115ca1e000000000000000000002")


def ip4(proto, payload):
    return struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), 1, 0, 64,
                       proto, 0) + PEER4 + NODE4 + payload


def ip6(proto, payload):
    return struct.pack("!IHBB", 6 << 28, len(payload), proto, 64) \
        + PEER6 + NODE6 + payload


def tcp(seq, ack, flags, data=b"", dport=80, opts=b""):
    return struct.pack("!HHIIBBHHH", 40000, dport, seq, ack,
                       (5 + len(opts) // 4) << 4, flags, 65535, 0, 0) \
        + opts + data


SYN_OPTS = bytes([2, 4, 0x04, 0xd8,        # MSS 1240
                  4, 2, 1, 1])             # SACK permitted, NOP NOP
ISS = 6509                                 # the listener's first sequence


def sack(*blocks):
    """SACK option (kind 5) padded to 4 bytes; blocks relative to ISS + 1."""
    b = b"".join(struct.pack("!II", ISS + 1 + l, ISS + 1 + r)
                 for l, r in blocks)
    return bytes([1, 1, 5, 2 + len(b)]) + b


def bulk_with_losses(ip):
    """'B' asks for 24 KiB; segment 2 and 5-6 are reported lost, then
    repaired by a partial and a full ACK."""
    m = 1240
    ops = op(0, ip(6, tcp(1000, 0, 0x02, opts=SYN_OPTS))) + op(2, b"\x02")
    ops += op(1, ip(6, tcp(1001, ISS + 1, 0x18, b"B")))
    ops += op(0, ip(6, tcp(1002, ISS + 1 + m, 0x10)))
    for k in range(3, 6):
        ops += op(0, ip(6, tcp(1002, ISS + 1 + m, 0x10,
                               opts=sack((2 * m, k * m)))))
    ops += op(0, ip(6, tcp(1002, ISS + 1 + 4 * m, 0x10,
                           opts=sack((6 * m, 9 * m)))))
    ops += op(2, b"\x04")
    ops += op(0, ip(6, tcp(1002, ISS + 1 + 9 * m, 0x10)))
    return ops


def udp(dport, data):
    return struct.pack("!HHHH", 40000, dport, 8 + len(data), 0) + data


def op(kind, b):
    return bytes([kind]) + struct.pack("<H", len(b)) + b


def main(out):
    os.makedirs(out, exist_ok=True)
    req = b"GET / HTTP/1.0\r\n\r\n"
    for name, ip in (("4", ip4), ("6", ip6)):
        seeds = {
            "tcp": op(0, ip(6, tcp(1000, 0, 0x02))) + op(2, b"\x02")
            + op(1, ip(6, tcp(1001, 6510, 0x18, req))),
            "udp": op(0, ip(17, udp(53, b"hello")))
            + op(0, ip(17, udp(99, b"x"))),
            "closed": op(0, ip(6, tcp(1, 0, 0x02, dport=81))),
            "sack": bulk_with_losses(ip),
            # data 2^31 away from rcv_nxt (lwip-tcp-trim.patch)
            "trim": op(0, ip(6, tcp(1000, 0, 0x02, opts=SYN_OPTS)))
            + op(1, ip(6, tcp(1001, ISS + 1, 0x18, b"x")))
            + op(0, ip(6, tcp((1002 + (1 << 31)) & 0xffffffff, ISS + 1,
                              0x18, b"y"))),
            # an MSS option after the SYN, below the length of the queued
            # segments, then data whose answer is queued behind them
            # (lwip-tcp-syn-mss.patch)
            "mss": op(0, ip(6, tcp(1000, 0, 0x02, opts=SYN_OPTS)))
            + op(2, b"\x02") + op(1, ip(6, tcp(1001, ISS + 1, 0x18, b"B")))
            + op(0, ip(6, tcp(1002, ISS + 1, 0x18, b"x",
                              opts=bytes([2, 4, 0x02, 0x18])))),
            # a bulk answer never acknowledged: retransmission timeouts,
            # run by lwIP's slow timer, in 50 ms steps
            "rto": op(0, ip(6, tcp(1000, 0, 0x02, opts=SYN_OPTS)))
            + op(2, b"\x02") + op(1, ip(6, tcp(1001, ISS + 1, 0x18, b"B")))
            + op(2, b"\x01") * 80,
            # lwIP's heap limited to 20k more than it holds at the start
            # (first byte 0xd2, kind 0): a bulk answer that does not fit,
            # data out of order and in order under pressure (arch/mem.h)
            "mem": op(0xd2, ip(6, tcp(1000, 0, 0x02, opts=SYN_OPTS)))
            + op(2, b"\x02") + op(1, ip(6, tcp(1001, ISS + 1, 0x18, b"B")))
            + b"".join(op(0, ip(6, tcp(1002 + 1200 * i, ISS + 1, 0x18,
                                       b"o" * 1200))) for i in range(16, 0, -1))
            + b"".join(op(1, ip(6, tcp(1002 + 1200 * i, ISS + 1, 0x18,
                                       b"i" * 1200))) for i in range(6))
            + op(2, b"\x04"),
            # an option kind in the last byte (lwip-tcp-optlen.patch)
            "optlen": op(0, ip(6, tcp(1000, 0, 0x02, opts=SYN_OPTS[:4]
                                      + bytes([4, 2, 1, 0xff])))),
        }
        for k, v in seeds.items():
            with open(os.path.join(out, "seed-%s%s" % (k, name)), "wb") as f:
                f.write(v)


if __name__ == "__main__":
    main(sys.argv[1])
