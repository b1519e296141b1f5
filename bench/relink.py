"""Rewrite the link layer of an Ethernet pcap: the same packets as Linux cooked frames
(SLL, SLL2: what ``tcpdump -i any`` writes) or with one 802.1Q VLAN tag.

Why: the reader has per-link-type fast paths; benchmarking them needs the same traffic in
each framing, so the numbers differ by the framing only. Little-endian microsecond pcap in,
the same out (what ``gen_capture.py`` writes).

    python bench/relink.py --to sll bench/out/200k.pcap bench/out/200k-sll.pcap
    python bench/relink.py --to vlan bench/out/200k.pcap bench/out/200k-vlan.pcap
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

LINKTYPES = {"sll": 113, "sll2": 276, "vlan": 1}
_REC = struct.Struct("<IIII")


def relink_frame(frame: bytes, to: str) -> bytes:
    """One Ethernet frame in the other framing (ethertype and payload kept)."""
    ethertype, payload = frame[12:14], frame[14:]
    if to == "vlan":
        return frame[:12] + b"\x81\x00\x00\x07" + frame[12:]  # VLAN 7, priority 0
    if to == "sll":  # pkttype host, ARPHRD_ETHER, address length 6, address, protocol
        return struct.pack("!HHH8s", 0, 1, 6, frame[6:12] + b"\0\0") + ethertype + payload
    # SLL2: protocol, reserved, ifindex, ARPHRD_ETHER, pkttype, address length, address
    return ethertype + struct.pack("!HIHBB8s", 0, 2, 1, 0, 6, frame[6:12] + b"\0\0") + payload


def relink(data: bytes, to: str) -> bytes:
    """A whole pcap file (bytes) in the other framing."""
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise ValueError("expected a little-endian microsecond pcap file")
    header = bytearray(data[:24])
    struct.pack_into("<I", header, 20, LINKTYPES[to])
    out = [bytes(header)]
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, wire_len = _REC.unpack_from(data, pos)
        frame = relink_frame(data[pos + 16:pos + 16 + caplen], to)
        grown = len(frame) - caplen
        out.append(_REC.pack(sec, frac, len(frame), wire_len + grown) + frame)
        pos += 16 + caplen
    return b"".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--to", choices=sorted(LINKTYPES), required=True)
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    args = ap.parse_args(argv)
    try:
        args.output.write_bytes(relink(args.input.read_bytes(), args.to))
    except (OSError, ValueError) as exc:
        print(f"relink.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
