"""Seed inputs for fuzz_lwip_input: a TCP connection to the listener (SYN,
time, a request in an ACK batch) and UDP to the listener and to a closed
port, in IPv4 and IPv6, encoded as the target's ops."""

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


def tcp(seq, ack, flags, data=b"", dport=80):
    return struct.pack("!HHIIBBHHH", 40000, dport, seq, ack, 5 << 4, flags,
                       65535, 0, 0) + data


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
        }
        for k, v in seeds.items():
            with open(os.path.join(out, "seed-%s%s" % (k, name)), "wb") as f:
                f.write(v)


if __name__ == "__main__":
    main(sys.argv[1])
