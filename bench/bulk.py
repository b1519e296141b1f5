#!/usr/bin/env python3
"""Write a capture of N long transfers: handshake, M data segments of 1,448 bytes from the
server (the client ACKs every second one), graceful close (server first), nothing lost.

Why: the bench generator's mix is dominated by what each connection costs (opening,
closing, the record, the detectors). On this capture nearly every packet is a steady data
segment or ACK, so it measures the per-packet path alone, against tcptrace on the same
file (docs/benchmarks.md, "The compiled engine, seventh pass"). Packets are 20 us apart,
one connection after the other.

Usage::

    python bench/bulk.py 10 10000 bench/out/bulk150k.pcap     # 150 k packets
    python bench/bulk.py 10 60000 bench/out/bulk900k.pcap     # 900 k packets
    tcptrace-py analyze bench/out/bulk150k.pcap --format jsonl -o /dev/null -q
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from uneventful import ACK, EPOCH_S, FIN, MSS_OPTION, PSH, SYN, frame  # sibling script

PAYLOAD = b"x" * 1448
GAP_NS = 20_000


def connection(i: int, segments: int) -> list[bytes]:
    """The frames of transfer ``i`` in order: 3 + ``segments`` + ``segments // 2`` + 3."""
    c, s = bytes([10, 0, 0, 1]), bytes([10, 1, (i >> 8) & 255, i & 255])
    cp, sp = 40000 + i % 20000, 80
    ci, si = 1000, 5000  # initial sequence numbers
    out = [frame(c, s, cp, sp, ci, 0, SYN, options=MSS_OPTION),
           frame(s, c, sp, cp, si, ci + 1, SYN | ACK, options=MSS_OPTION),
           frame(c, s, cp, sp, ci + 1, si + 1, ACK)]
    seq = si + 1
    for k in range(segments):
        out.append(frame(s, c, sp, cp, seq, ci + 1, ACK | PSH, PAYLOAD))
        seq += len(PAYLOAD)
        if k % 2:
            out.append(frame(c, s, cp, sp, ci + 1, seq, ACK))
    out += [frame(s, c, sp, cp, seq, ci + 1, FIN | ACK),
            frame(c, s, cp, sp, ci + 1, seq + 1, FIN | ACK),
            frame(s, c, sp, cp, seq + 1, ci + 2, ACK)]
    return out


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit("usage: python bench/bulk.py N SEGMENTS OUT.pcap")
    n, segments, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    if segments * len(PAYLOAD) >= 1 << 31:
        raise SystemExit("SEGMENTS too large: a transfer must stay within half the sequence space")
    ts = EPOCH_S * 1_000_000_000
    count = 0
    with out.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))  # ns pcap
        for i in range(n):
            for data in connection(i, segments):
                ts += GAP_NS
                sec, ns = divmod(ts, 1_000_000_000)
                fh.write(struct.pack("<IIII", sec, ns, len(data), len(data)))
                fh.write(data)
                count += 1
    print(f"{out}: {n} connections, {count} packets")


if __name__ == "__main__":
    main()
