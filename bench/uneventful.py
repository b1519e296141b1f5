#!/usr/bin/env python3
"""Write a capture of N uneventful IPv4 connections: handshake, one request and one
response, graceful close (client first), nothing lost, 10 packets each.

Why: issue 16 budgets the Python work of an uneventful connection (~5 us end to end). On
this capture every connection is such a one, so (run time - start-up) / N is that cost,
with nothing else mixed in (the bench generator's captures also hold resets, losses,
probes and bulk transfers). Connections start 2 ms apart; each one lasts 0.7 ms.

Usage::

    python bench/uneventful.py 20000 bench/out/uneventful_20k.pcap
    tcptrace-py analyze bench/out/uneventful_20k.pcap --format jsonl -o /dev/null -q
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from gen_capture import _fold, _words_sum  # sibling script: the bench's checksum helpers

SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08
EPOCH_S = 1_704_067_200
MSS_OPTION = bytes([2, 4, 5, 0xB4])  # MSS 1460


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``, an odd length padded."""
    return ~_fold(_words_sum(data + b"\x00" * (len(data) % 2))) & 0xFFFF


def frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
          payload: bytes = b"", options: bytes = b"") -> bytes:
    """One Ethernet frame carrying an IPv4 TCP segment with correct checksums."""
    offset = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      offset << 4, flags, 65535, 0, 0) + options + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + tcp


def connection(i: int) -> list[tuple[int, bytes]]:
    """The 10 frames of connection ``i`` as (ns after its start, frame)."""
    c = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    s = bytes([192, 0, 2, 1])
    cp, sp = 10000 + i % 50000, 80
    a, b = 1000 + i, 5000 + i  # initial sequence numbers
    return [
        (0, frame(c, s, cp, sp, a, 0, SYN, options=MSS_OPTION)),
        (100_000, frame(s, c, sp, cp, b, a + 1, SYN | ACK, options=MSS_OPTION)),
        (200_000, frame(c, s, cp, sp, a + 1, b + 1, ACK)),
        (210_000, frame(c, s, cp, sp, a + 1, b + 1, PSH | ACK, b"x" * 100)),
        (300_000, frame(s, c, sp, cp, b + 1, a + 101, ACK)),
        (310_000, frame(s, c, sp, cp, b + 1, a + 101, PSH | ACK, b"y" * 1000)),
        (400_000, frame(c, s, cp, sp, a + 101, b + 1001, ACK)),
        (500_000, frame(c, s, cp, sp, a + 101, b + 1001, FIN | ACK)),
        (600_000, frame(s, c, sp, cp, b + 1001, a + 102, FIN | ACK)),
        (700_000, frame(c, s, cp, sp, a + 102, b + 1002, ACK)),
    ]


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: python bench/uneventful.py N OUT.pcap")
    n, out = int(sys.argv[1]), Path(sys.argv[2])
    frames = [(i * 2_000_000 + dt, data) for i in range(n) for dt, data in connection(i)]
    frames.sort(key=lambda f: f[0])
    with out.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))  # ns pcap
        for ts, data in frames:
            sec, ns = divmod(EPOCH_S * 1_000_000_000 + ts, 1_000_000_000)
            fh.write(struct.pack("<IIII", sec, ns, len(data), len(data)))
            fh.write(data)
    print(f"{out}: {n} connections, {len(frames)} packets")


if __name__ == "__main__":
    main()
