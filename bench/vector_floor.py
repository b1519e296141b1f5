"""A lower bound for a vectorised (numpy) design of the analysis, measured on a capture.

Why this exists: issue 7 asks for 400 k packets/s with full analysis in plain CPython. The
per-packet design is measured in docs/benchmarks.md; this script measures the *front* of the
alternative design, in which numpy does the per-packet work over columns:

1. walk the pcap records (the one sequential step: each record's length gives the next),
2. decode Ethernet/IPv4/IPv6/TCP headers of every packet into columns,
3. give every packet a flow id (canonical 4-tuple) and a direction,
4. find retransmissions (data ending at or below the highest end its sender already sent).

It leaves out everything else the analysis does (state replay, RTT under Karn's rule, windows,
the Zeek and Wireshark summaries, records, detectors), so its speed is an upper bound for such
a design: if these four steps alone cost more than the 2.5 us per packet that 400 k packets/s
allows, the full analysis cannot meet it either. Classic little-endian Ethernet pcap only.

    python bench/vector_floor.py bench/out/200k.pcap
"""

from __future__ import annotations

import argparse
import contextlib
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
HEADER_BYTES = 16 + 80
"""Bytes of each record gathered at once: the record header (16), then Ethernet (14), IPv6
(40) and TCP up to the window."""
CHUNK = 65536
"""Packets decoded per numpy pass: keeps one gathered block (CHUNK x 80 bytes) in cache."""


def walk(buf: bytes) -> tuple[I64, I64]:
    """Offsets of each record's frame and its captured length (a Python loop: sequential)."""
    offs: list[int] = []
    lens: list[int] = []
    unpack = struct.Struct("<I").unpack_from
    off = 24
    n = len(buf)
    while off + 16 <= n:
        incl = unpack(buf, off + 8)[0]
        offs.append(off)
        lens.append(incl)
        off += 16 + incl
    return np.array(offs, dtype=np.int64), np.array(lens, dtype=np.int64)


def _byte(f: I64, i: int | I64) -> I64:
    """Column of byte ``i`` of each row of ``f`` (``i`` a constant or one offset per row)."""
    if isinstance(i, int):
        return f[:, i]
    return np.take_along_axis(f, i.reshape(-1, 1), 1)[:, 0]


def _be16(f: I64, i: int | I64) -> I64:
    return (_byte(f, i) << 8) | _byte(f, i + 1)


def _be32(f: I64, i: int | I64) -> I64:
    return (_be16(f, i) << 16) | _be16(f, i + 2)


def decode(buf: bytes, offs: I64, lens: I64) -> dict[str, I64]:
    """TCP header columns of every packet from the records at ``offs`` (non-TCP: ``ok`` 0)."""
    raw = np.frombuffer(buf, dtype=np.uint8)
    cols: dict[str, list[I64]] = {k: [] for k in (
        "ts", "ok", "src", "dst", "sport", "dport", "seq", "ack", "flags", "win", "plen")}
    span = np.arange(HEADER_BYTES, dtype=np.int64)
    limit = len(raw) - 1
    for lo in range(0, len(offs), CHUNK):
        o = offs[lo:lo + CHUNK]
        h = raw[np.minimum(o[:, None] + span, limit)].astype(np.int64)
        rec = h[:, :16]
        f = h[:, 16:]

        etype = (f[:, 12] << 8) | f[:, 13]
        v4 = (etype == 0x0800) & (f[:, 23] == 6)
        v6 = (etype == 0x86DD) & (f[:, 20] == 6)
        ihl = np.where(v4, (f[:, 14] & 15) * 4, 40)
        tcp = 14 + ihl
        iplen = np.where(v4, _be16(f, 16), _be16(f, 18) + 40)
        doff = (_byte(f, tcp + 12) >> 4) * 4
        cols["ts"].append(((rec[:, 0] | rec[:, 1] << 8 | rec[:, 2] << 16 | rec[:, 3] << 24)
                           * 1_000_000_000)
                          + (rec[:, 4] | rec[:, 5] << 8 | rec[:, 6] << 16 | rec[:, 7] << 24)
                          * 1000)
        cols["ok"].append((v4 | v6).astype(np.int64) * (lens[lo:lo + CHUNK] >= 54))
        # IPv6 addresses folded to 32 bits (xor of their words): as many passes as keeping
        # all 128 bits would take, at the price of possible collisions in a measurement.
        cols["src"].append(np.where(v4, _be32(f, 26), _be32(f, 22) ^ _be32(f, 30)
                                    ^ _be32(f, 26) ^ _be32(f, 34)))
        cols["dst"].append(np.where(v4, _be32(f, 30), _be32(f, 38) ^ _be32(f, 46)
                                    ^ _be32(f, 42) ^ _be32(f, 50)))
        cols["sport"].append(_be16(f, tcp))
        cols["dport"].append(_be16(f, tcp + 2))
        cols["seq"].append(_be32(f, tcp + 4))
        cols["ack"].append(_be32(f, tcp + 8))
        cols["flags"].append(_byte(f, tcp + 13))
        cols["win"].append(_be16(f, tcp + 14))
        cols["plen"].append(iplen - ihl - doff)
    return {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in cols.items()}


def flow_ids(c: dict[str, I64]) -> tuple[I64, I64]:
    """Flow id per packet (canonical endpoints) and direction (1: from the lower endpoint)."""
    a = (c["src"] << 16) | c["sport"]
    b = (c["dst"] << 16) | c["dport"]
    fwd = (a <= b).astype(np.int64)
    key = np.stack([np.where(fwd == 1, a, b), np.where(fwd == 1, b, a)], axis=1)
    _, inverse = np.unique(key, axis=0, return_inverse=True)
    return inverse.ravel().astype(np.int64), fwd


def retransmissions(c: dict[str, I64], flow: I64, fwd: I64) -> I64:
    """Per packet: 1 when its data ends at or below the highest end its sender already sent."""
    grp = flow * 2 + fwd
    order = np.lexsort((np.arange(len(grp)), grp))
    g = grp[order]
    s = c["seq"][order]
    p = c["plen"][order]
    syn_fin = ((c["flags"][order] & 3) != 0).astype(np.int64)
    start = np.r_[True, g[1:] != g[:-1]]
    first = np.maximum.accumulate(np.where(start, np.arange(len(g)), 0))
    rel = (s - s[first]) & 0xFFFFFFFF
    rel = np.where(rel >= 1 << 31, rel - (1 << 32), rel)
    end = rel + p + syn_fin
    shift = g << 34
    high = np.maximum.accumulate(end + shift) - shift
    before = np.where(start, -1, np.r_[-1, high[:-1]])
    out = np.zeros(len(g), dtype=np.int64)
    out[order] = ((p > 0) & (end <= before)).astype(np.int64)
    return out


def measure(path: Path) -> dict[str, float]:
    """CPU seconds of each step, then ``packets``, ``flows`` and ``retransmitted`` counts."""
    times: dict[str, float] = {}

    @contextlib.contextmanager
    def step(name: str) -> Iterator[None]:
        t = time.process_time()
        yield
        times[name] = time.process_time() - t

    with step("read the file"):
        buf = path.read_bytes()
    if struct.unpack_from("<I", buf, 0)[0] != 0xA1B2C3D4 or \
            struct.unpack_from("<I", buf, 20)[0] != 1:
        raise SystemExit(f"{path}: not a little-endian microsecond Ethernet pcap")
    with step("walk the records (Python loop)"):
        offs, lens = walk(buf)
    with step("decode headers (numpy)"):
        cols = decode(buf, offs, lens)
    with step("flow ids (numpy unique)"):
        flow, fwd = flow_ids(cols)
    with step("retransmissions (numpy)"):
        rex = retransmissions(cols, flow, fwd)
    times["packets"] = float(len(offs))
    times["flows"] = float(flow.max() + 1 if len(flow) else 0)
    times["retransmitted"] = float(rex.sum())
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("capture", type=Path)
    args = ap.parse_args(argv)
    m = measure(args.capture)
    n = m.pop("packets")
    flows = m.pop("flows")
    rexmt = m.pop("retransmitted")
    print(f"{args.capture}: {n:,.0f} packets, {flows:,.0f} flows, {rexmt:,.0f} retransmitted")
    for name, s in m.items():
        print(f"  {name:32s} {s:7.3f} s {1e6 * s / max(n, 1):6.2f} us/packet")
    total = sum(m.values())
    print(f"  {'total':32s} {total:7.3f} s {1e6 * total / max(n, 1):6.2f} us/packet "
          f"({n / total if total else 0:,.0f} packets/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
