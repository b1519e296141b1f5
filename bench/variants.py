#!/usr/bin/env python3
"""Re-frame a generated Ethernet pcap as Linux cooked (SLL) or 802.1Q VLAN-tagged frames.

Why: the benchmark compares the other framings users capture with (``tcpdump -i any`` gives
SLL, trunk ports give VLAN tags) against plain Ethernet on the same packets; only the link
header differs, so any speed difference is the reader's and decoder's.

Usage: python bench/variants.py bench/out/200k.pcap   # writes 200k_sll.pcap, 200k_vlan.pcap
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

GLOBAL = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")


def reframe(src: Path, dst: Path, kind: str) -> None:
    data = src.read_bytes()
    magic, major, minor, zone, sigfigs, snaplen, linktype = GLOBAL.unpack_from(data, 0)
    if linktype != 1 or magic not in (0xA1B2C3D4, 0xA1B23C4D):
        raise SystemExit(f"{src}: not a little-endian Ethernet pcap")
    out = bytearray(GLOBAL.pack(magic, major, minor, zone, sigfigs, snaplen + 4,
                                113 if kind == "sll" else 1))
    pos = GLOBAL.size
    while pos + RECORD.size <= len(data):
        sec, frac, caplen, wire = RECORD.unpack_from(data, pos)
        frame = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        ethertype = frame[12:14]
        if kind == "sll":  # packet type 0 (to us), ARPHRD_ETHER, 6-byte address
            new = struct.pack("!HHH", 0, 1, 6) + frame[6:12] + b"\x00\x00" + ethertype
        else:  # one 802.1Q tag, VLAN 100
            new = frame[:12] + b"\x81\x00\x00\x64" + ethertype
        frame = new + frame[14:]
        extra = len(new) - 14
        out += RECORD.pack(sec, frac, len(frame), wire + extra) + frame
    dst.write_bytes(bytes(out))


def main() -> None:
    src = Path(sys.argv[1])
    for kind in ("sll", "vlan"):
        reframe(src, src.with_name(f"{src.stem}_{kind}.pcap"), kind)


if __name__ == "__main__":
    main()
