"""pcapng (draft-ietf-opsawg-pcapng): sections, interfaces, EPB/SPB/PB, both byte orders.

Theory of operation:
1. A file is a sequence of sections; each starts with a Section Header Block whose
   byte-order magic fixes the endianness of everything up to the next SHB, and each section
   has its own list of interfaces (IDB), numbered from 0.
2. Every IDB carries a link type, a snaplen and optional ``if_tsresol`` (a power of 10, or
   of 2 when the top bit is set) and ``if_tsoffset`` (seconds added to every timestamp).
3. Packet blocks (Enhanced 6, Simple 3, obsolete Packet 2) each count as one frame, as in
   Wireshark's numbering. Simple Packet Blocks have no timestamp and belong to interface 0:
   we reuse the previous frame's timestamp and count a ``pcapng_spb_no_timestamp`` note.
   A timestamp outside what the outputs can hold (``segment.TS_NS_MIN..TS_NS_MAX``: a bad
   ``if_tsoffset``/``if_tsresol`` or a timestamp near 2**64 units) keeps its frame, exact,
   but stays out of the backwards check and the capture's time span; the frames are counted
   per interface and warned about once per interface when the file ends
   (``timestamp_out_of_range``).
4. Known non-packet blocks (name resolution, statistics, decryption secrets, custom...) are
   skipped; unknown block types are skipped and counted (``pcapng_unknown_block``).
5. A block whose total length is not a multiple of 4, is below 12, above MAX_BLOCK_BYTES,
   or whose trailing copy differs from the leading one is corruption: we cannot find the next
   block, so we warn and stop (or raise when strict).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, cast

from tcptrace_py import implementation
from tcptrace_py.capture.common import (
    MAX_BLOCK_BYTES,
    MAX_RECORD_BYTES,
    Frame,
    OutOfRange,
    StreamBuffer,
    damage,
    note_backwards,
    note_out_of_range,
    report_out_of_range,
    update_ts_range,
)
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.segment import TS_NS_MAX, TS_NS_MIN, Segment

SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
NRB = 0x00000004
ISB = 0x00000005
EPB = 0x00000006
KNOWN_SKIPPED = {NRB, ISB, 0x00000007, 0x00000008, 0x00000009, 0x0000000A, 0x0000000B,
                 0x00000BAD, 0x40000BAD, 0x00000204}
"""Known blocks carrying nothing we use: NRB, ISB, IRIG timestamp, ARINC 429, systemd
journal export, decryption secrets, Hone machine info, custom blocks, sysdig event."""
BYTE_ORDER_MAGIC = 0x1A2B3C4D
SHB_MAGIC_BYTES = struct.pack("<I", SHB)  # palindrome: same bytes in both byte orders

OPT_ENDOFOPT = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14


EPB_INNER_LOOP = True
"""Take the inner loop over whole EPBs (:func:`_blocks`); tests turn it off to check that
it reads exactly what the general loop reads."""


MAX_INTERFACES = 65536
"""Interfaces kept per section. An IDB costs ~100 bytes, and nothing else bounds their number
(a crafted file of a million IDBs took ~100 MB); the obsolete Packet Block's interface id is
16 bits, and no capture tool writes more interfaces. Further IDBs are counted
(``pcapng_interfaces_dropped``), warned about once, and packets naming them are skipped as
naming an unknown interface."""


def is_pcapng(head: bytes) -> bool:
    return head[:4] == SHB_MAGIC_BYTES


class Interface:
    """One IDB's fields needed per packet; timestamps: ns = (units*mul // div >> shift) + off."""

    __slots__ = ("linktype", "snaplen", "mul", "div", "shift", "offset_ns", "tsresol")

    def __init__(self, linktype: int, snaplen: int, tsresol: int, offset_s: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.tsresol = tsresol
        self.shift = 0
        self.div = 1
        self.mul = 1
        if tsresol & 0x80:
            # Power of 2: units are 2**-p seconds.
            self.mul = 1_000_000_000
            self.shift = tsresol & 0x7F
        else:
            exp = tsresol
            if exp <= 9:
                self.mul = 10 ** (9 - exp)
            else:
                self.div = 10 ** (exp - 9)
        self.offset_ns = offset_s * 1_000_000_000

    def ts_ns(self, units: int) -> int:
        return (((units * self.mul) // self.div) >> self.shift) + self.offset_ns


def _parse_options(block: bytes, start: int, end: int, order: str) -> dict[int, bytes]:
    """Option TLVs from ``block[start:end]`` (first occurrence of each code); stops at damage."""
    out: dict[int, bytes] = {}
    hdr = struct.Struct(order + "HH")
    pos = start
    while pos + 4 <= end:
        code, length = hdr.unpack_from(block, pos)
        if code == OPT_ENDOFOPT:
            break
        vstart = pos + 4
        if vstart + length > end:
            break
        out.setdefault(code, block[vstart:vstart + length])
        pos = vstart + ((length + 3) & ~3)
    return out


def _make_interface(block: bytes, order: str) -> Interface:
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", block, 8)
    opts = _parse_options(block, 16, len(block) - 4, order)
    tsresol = 6  # default: microseconds
    offset_s = 0
    if OPT_IF_TSRESOL in opts and len(opts[OPT_IF_TSRESOL]) >= 1:
        tsresol = opts[OPT_IF_TSRESOL][0]
    if OPT_IF_TSOFFSET in opts and len(opts[OPT_IF_TSOFFSET]) >= 8:
        (offset_s,) = struct.unpack_from(order + "q", opts[OPT_IF_TSOFFSET], 0)
    return Interface(linktype, snaplen, tsresol, offset_s)


def read_pcapng(stream: Any, head: bytes, display: str, diag: Diagnostics,
                strict: bool) -> Iterator[Frame]:
    """Yield frames from a pcapng stream whose first bytes (``head``) were sniffed."""
    return cast(Iterator[Frame], _blocks(stream, head, display, diag, strict, None))


def read_pcapng_segments(stream: Any, head: bytes, display: str, diag: Diagnostics,
                         strict: bool, decoder: Decoder,
                         router: object = None) -> Iterator[Segment | None]:
    """The TCP segments of a pcapng stream: :func:`read_pcapng` followed by ``decoder.decode``
    on every frame, with the decoder called from the block loop (no frame tuple, no
    generator hop). Frames that do not decode are counted by the decoder, not yielded.

    ``router``: the compiled engine's (``capture.route_segments``), handed to the compiled
    inner loop, which then routes its segments itself and yields ``None`` when the engine
    has work to do; the blocks outside that loop still yield their segments."""
    return cast(Iterator[Segment | None], _blocks(stream, head, display, diag, strict,
                                                  decoder, router))


def _blocks(stream: Any, head: bytes, display: str, diag: Diagnostics, strict: bool,
            decoder: Decoder | None, router: object = None) -> Iterator[Frame | Segment | None]:
    """The block loop: frames when ``decoder`` is None, else decoded segments.

    Runs of well-formed Enhanced Packet Blocks that sit whole in the buffer go through a
    tight inner loop (the bulk of any capture Wireshark or dumpcap writes); it applies the
    same rules as the general loop below and hands anything else to it (another block type,
    a block not yet read, any length or interface the general loop would warn about), so
    every message and counter comes from one place."""
    frames_only = decoder is None
    # Never called when ``frames_only``; Decoder(diag) only gives the name a callable type.
    decode = (decoder or Decoder(diag)).decode
    inner = EPB_INNER_LOOP
    # The compiled twin of the inner loop, for segments (the compiled engine's decoder).
    compiled: Any = implementation.compiled
    fast_run = (compiled.pcapng_epb_run if compiled is not None and not frames_only
                and isinstance(decoder, compiled.Decoder) else None)
    run_state: Any = compiled.EpbState() if fast_run is not None else None
    fb = StreamBuffer(stream, head)
    order = "<"
    u32 = struct.Struct("<I").unpack_from
    epb = struct.Struct("<IIIII").unpack_from
    pb = struct.Struct("<HHIIII").unpack_from
    epb_fast = struct.Struct("<IIIIIII").unpack_from  # type, length, then the EPB fields
    pending = 0  # frames counted by the inner loop, added to diag when it exits
    pending_lt = 0
    interfaces: list[Interface] = []
    frame_no = 0
    sections = 0
    last_ts = -(1 << 63)
    prev_ts = 0
    min_ts: int | None = None
    backwards_warned = False
    bad_iface_warned = False
    out_of_range: OutOfRange = {}
    ts_min, ts_max = TS_NS_MIN, TS_NS_MAX
    try:
        while True:
            if interfaces and inner and fast_run is not None:
                # ---- the same inner loop, compiled (tcptrace_py/_engine.pyx)
                run_state.frame_no, run_state.last_ts, run_state.prev_ts = (
                    frame_no, last_ts, prev_ts)
                run_state.min_ts, run_state.backwards_warned = min_ts, backwards_warned
                run_state.pending, run_state.pending_lt = pending, pending_lt
                run_state.out_of_range, run_state.section = out_of_range, sections
                try:
                    yield from fast_run(fb, interfaces, order == "<", decoder, diag, display,
                                        run_state, router)
                finally:
                    frame_no, last_ts, prev_ts = (run_state.frame_no, run_state.last_ts,
                                                  run_state.prev_ts)
                    min_ts, backwards_warned = run_state.min_ts, run_state.backwards_warned
                    pending, pending_lt = run_state.pending, run_state.pending_lt
                if pending:
                    diag.frames += pending
                    diag.link_types[pending_lt] += pending
                    pending = 0
            elif interfaces and inner:
                # ---- the inner loop over whole EPBs (see the docstring)
                buf = fb.buf
                pos = fb.pos
                end = len(buf) - 32
                n_ifaces = len(interfaces)
                while pos <= end:
                    btype, blen, iface_id, ts_hi, ts_lo, caplen, wire_len = epb_fast(buf, pos)
                    if (btype != EPB or blen < 32 or blen % 4 or blen > MAX_BLOCK_BYTES
                            or pos + blen > end + 32 or iface_id >= n_ifaces
                            or caplen > blen - 32 or caplen > MAX_RECORD_BYTES
                            or u32(buf, pos + blen - 4)[0] != blen):
                        break
                    iface = interfaces[iface_id]
                    units = (ts_hi << 32) | ts_lo
                    if iface.div == 1 and iface.shift == 0:
                        ts = units * iface.mul + iface.offset_ns
                    else:
                        ts = iface.ts_ns(units)
                    if ts < ts_min or ts > ts_max:
                        note_out_of_range(out_of_range, sections, iface_id, frame_no + 1, ts)
                    elif ts < last_ts:
                        backwards_warned = note_backwards(diag, display, backwards_warned,
                                                          frame_no + 1, ts, last_ts)
                        if min_ts is None or ts < min_ts:
                            min_ts = ts
                    else:
                        if min_ts is None:
                            min_ts = ts
                        last_ts = ts
                    prev_ts = ts
                    frame_no += 1
                    lt = iface.linktype
                    if lt != pending_lt and pending:
                        diag.frames += pending
                        diag.link_types[pending_lt] += pending
                        pending = 0
                    pending_lt = lt
                    pending += 1
                    data_start = pos + 28
                    pos += blen
                    fb.pos = pos
                    if frames_only:
                        yield (frame_no, ts, lt, buf[data_start:data_start + caplen], wire_len)
                    else:
                        seg = decode(lt, buf[data_start:data_start + caplen], frame_no, ts,
                                     wire_len)
                        if seg is not None:
                            yield seg
                if pending:
                    diag.frames += pending
                    diag.link_types[pending_lt] += pending
                    pending = 0
            if not fb.fill(8):
                if fb.remaining() and sections == 0:
                    # Cut inside the first block header: nothing readable, like a pcap file
                    # shorter than its global header.
                    raise CaptureError(f"{display}: pcapng section header cut short "
                                       f"({fb.remaining()} bytes), not a capture")
                if fb.remaining():
                    damage(diag, display, f"file ends in the middle of a block header "
                           f"({fb.remaining()} bytes left over; {frame_no} frames read)",
                           offset=fb.offset, frame=frame_no + 1, strict=strict,
                           code="truncated_record")
                return
            buf = fb.buf
            pos = fb.pos
            btype = u32(buf, pos)[0]
            if btype == SHB:
                if not fb.fill(12):
                    if sections == 0:
                        raise CaptureError(f"{display}: pcapng section header cut short "
                                           f"({fb.remaining()} bytes), not a capture")
                    damage(diag, display, "file ends inside a section header block",
                           offset=fb.offset, frame=frame_no + 1, strict=strict,
                           code="truncated_record")
                    return
                buf = fb.buf
                pos = fb.pos
                magic_le = struct.unpack_from("<I", buf, pos + 8)[0]
                if magic_le == BYTE_ORDER_MAGIC:
                    order = "<"
                elif struct.unpack_from(">I", buf, pos + 8)[0] == BYTE_ORDER_MAGIC:
                    order = ">"
                else:
                    msg = "section header block has a bad byte-order magic"
                    if sections == 0:
                        raise CaptureError(f"{display} (offset {fb.offset}): {msg}, "
                                           "not a pcapng file")
                    damage(diag, display, msg, offset=fb.offset, frame=frame_no + 1,
                           strict=strict, code="bad_block")
                    return
                u32 = struct.Struct(order + "I").unpack_from
                epb = struct.Struct(order + "IIIII").unpack_from
                pb = struct.Struct(order + "HHIIII").unpack_from
                epb_fast = struct.Struct(order + "IIIIIII").unpack_from
            blen = u32(buf, pos + 4)[0]
            if blen < 12 or blen % 4 or blen > MAX_BLOCK_BYTES:
                msg = (f"block length {blen} is invalid (block type 0x{btype:08x}; "
                       f"{frame_no} frames read)")
                if sections == 0:
                    raise CaptureError(f"{display} (offset {fb.offset}): {msg}")
                damage(diag, display, msg, offset=fb.offset, frame=frame_no + 1,
                       strict=strict, code="bad_block_length")
                return
            if not fb.fill(blen):
                msg = (f"file ends in the middle of a block ({fb.remaining()} of {blen} bytes;"
                       f" {frame_no} frames read)")
                if sections == 0:
                    raise CaptureError(f"{display} (offset {fb.offset}): {msg}")
                damage(diag, display, msg, offset=fb.offset, frame=frame_no + 1,
                       strict=strict, code="truncated_record")
                return
            buf = fb.buf
            pos = fb.pos
            if u32(buf, pos + blen - 4)[0] != blen:
                msg = (f"block length {blen} does not match its trailing copy "
                       f"{u32(buf, pos + blen - 4)[0]} (block type 0x{btype:08x}; "
                       f"{frame_no} frames read)")
                if sections == 0:
                    raise CaptureError(f"{display} (offset {fb.offset}): {msg}")
                damage(diag, display, msg, offset=fb.offset, frame=frame_no + 1,
                       strict=strict, code="bad_block_length")
                return
            block_off = fb.offset
            fb.pos = pos + blen

            if btype == EPB or btype == PB or btype == SPB:
                if btype == EPB:
                    if blen < 32:
                        damage(diag, display, f"enhanced packet block too short ({blen})",
                               offset=block_off, frame=frame_no + 1, strict=strict,
                               code="bad_block")
                        return
                    iface_id, ts_hi, ts_lo, caplen, wire_len = epb(buf, pos + 8)
                    data_start = pos + 28
                    room = blen - 32
                elif btype == PB:
                    if blen < 32:
                        damage(diag, display, f"packet block too short ({blen})",
                               offset=block_off, frame=frame_no + 1, strict=strict,
                               code="bad_block")
                        return
                    iface_id, _drops, ts_hi, ts_lo, caplen, wire_len = pb(buf, pos + 8)
                    data_start = pos + 28
                    room = blen - 32
                else:
                    if blen < 16:
                        damage(diag, display, f"simple packet block too short ({blen})",
                               offset=block_off, frame=frame_no + 1, strict=strict,
                               code="bad_block")
                        return
                    iface_id = 0
                    ts_hi = ts_lo = 0
                    wire_len = u32(buf, pos + 8)[0]
                    data_start = pos + 12
                    room = blen - 16
                    caplen = min(wire_len, room)
                if iface_id >= len(interfaces):
                    diag.notes["pcapng_bad_interface"] += 1
                    if not bad_iface_warned:
                        bad_iface_warned = True
                        diag.warn(display, f"packet block names interface {iface_id} but the "
                                  f"section has {len(interfaces)} (block skipped)",
                                  offset=block_off, frame=frame_no + 1, code="bad_block")
                    continue
                iface = interfaces[iface_id]
                if btype == SPB and iface.snaplen:
                    caplen = min(caplen, iface.snaplen)
                if caplen > room or caplen > MAX_RECORD_BYTES:
                    damage(diag, display, f"captured length {caplen} does not fit its block "
                           f"or exceeds {MAX_RECORD_BYTES} bytes ({frame_no} frames read)",
                           offset=block_off, frame=frame_no + 1, strict=strict,
                           code="bad_record_length")
                    return
                if btype == SPB:
                    ts = prev_ts
                    diag.notes["pcapng_spb_no_timestamp"] += 1
                else:
                    units = (ts_hi << 32) | ts_lo
                    if iface.div == 1 and iface.shift == 0:
                        ts = units * iface.mul + iface.offset_ns
                    else:
                        ts = iface.ts_ns(units)
                if ts < ts_min or ts > ts_max:
                    note_out_of_range(out_of_range, sections, iface_id, frame_no + 1, ts)
                elif ts < last_ts:
                    backwards_warned = note_backwards(diag, display, backwards_warned,
                                                      frame_no + 1, ts, last_ts)
                    if min_ts is None or ts < min_ts:
                        min_ts = ts
                else:
                    if min_ts is None:
                        min_ts = ts
                    last_ts = ts
                prev_ts = ts
                frame_no += 1
                lt = iface.linktype
                diag.frames += 1
                diag.link_types[lt] += 1
                if frames_only:
                    yield (frame_no, ts, lt, buf[data_start:data_start + caplen], wire_len)
                else:
                    seg = decode(lt, buf[data_start:data_start + caplen], frame_no, ts,
                                 wire_len)
                    if seg is not None:
                        yield seg
            elif btype == IDB:
                if blen < 20:
                    damage(diag, display, f"interface description block too short ({blen})",
                           offset=block_off, frame=frame_no + 1, strict=strict,
                           code="bad_block")
                    return
                if len(interfaces) < MAX_INTERFACES:
                    interfaces.append(_make_interface(buf[pos:pos + blen], order))
                else:
                    if not diag.notes["pcapng_interfaces_dropped"]:
                        diag.warn(display, f"more than {MAX_INTERFACES} interfaces in a "
                                  "section: further interface blocks ignored",
                                  offset=block_off, frame=frame_no + 1, code="bad_block")
                    diag.notes["pcapng_interfaces_dropped"] += 1
            elif btype == SHB:
                if blen < 28:
                    msg = f"section header block too short ({blen})"
                    if sections == 0:
                        raise CaptureError(f"{display} (offset {block_off}): {msg}")
                    damage(diag, display, msg, offset=block_off, frame=frame_no + 1,
                           strict=strict, code="bad_block")
                    return
                major = struct.unpack_from(order + "H", buf, pos + 12)[0]
                if major != 1:
                    msg = f"unsupported pcapng version {major}"
                    if sections == 0:
                        raise CaptureError(f"{display} (offset {block_off}): {msg}")
                    damage(diag, display, msg, offset=block_off, frame=frame_no + 1,
                           strict=strict, code="bad_block")
                    return
                sections += 1
                interfaces = []
                if sections > 1:
                    diag.notes["pcapng_sections"] += 1
            elif btype in KNOWN_SKIPPED:
                pass
            else:
                diag.notes["pcapng_unknown_block"] += 1
    finally:
        if pending:
            diag.frames += pending
            diag.link_types[pending_lt] += pending
        if frame_no and min_ts is not None:
            update_ts_range(diag, min_ts, last_ts)
        if out_of_range:
            report_out_of_range(diag, display, out_of_range, sections > 1)


def describe_pcapng(head: bytes, display: str = "capture") -> dict[str, Any]:
    """Byte order and interfaces of the first section, from the first bytes of the file.
    A first section header the reader would refuse is a ``CaptureError`` here too."""
    if len(head) < 28:
        raise CaptureError(f"{display}: pcapng section header cut short ({len(head)} bytes), "
                           "not a capture")
    if struct.unpack_from("<I", head, 8)[0] == BYTE_ORDER_MAGIC:
        order = "<"
    elif struct.unpack_from(">I", head, 8)[0] == BYTE_ORDER_MAGIC:
        order = ">"
    else:
        raise CaptureError(f"{display} (offset 0): section header block has a bad byte-order "
                           "magic, not a pcapng file")
    info: dict[str, Any] = {"format": "pcapng",
                            "byte_order": "little" if order == "<" else "big",
                            "interfaces": []}
    pos = 0
    while pos + 12 <= len(head):
        btype, blen = struct.unpack_from(order + "II", head, pos)
        if blen < 12 or blen % 4 or pos + blen > len(head):
            break
        if btype == SHB and pos == 0:
            major, minor = struct.unpack_from(order + "HH", head, 12)
            info["version"] = f"{major}.{minor}"
        elif btype == SHB:
            break
        elif btype == IDB and blen >= 20:
            iface = _make_interface(head[pos:pos + blen], order)
            info["interfaces"].append({"linktype": iface.linktype, "snaplen": iface.snaplen,
                                       "tsresol": iface.tsresol,
                                       "tsoffset_s": iface.offset_ns // 1_000_000_000})
        pos += blen
    return info
