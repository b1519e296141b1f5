"""Classic libpcap files (pcap-savefile(5)): both byte orders, usec/nsec, 2.2 and Kuznetsov.

Theory of operation: the file is read in 1 MiB chunks; records are sliced out of the chunk
with one precompiled ``struct.Struct.unpack_from`` per record header. Only the trailing partial
record of a chunk is copied forward. Lengths come from the file, so each captured length is
checked against ``MAX_RECORD_BYTES`` and the header's snaplen *before* we wait for that many
bytes (a corrupted length must not make us buffer gigabytes).

The same record loop also serves :func:`read_pcap_segments`, the fused reader+decoder the
engine uses: for the overwhelmingly common frame (Ethernet or Linux cooked, IPv4 without
options or IPv6 without extension headers, TCP with no options or NOP NOP timestamp) the
headers are unpacked straight from the chunk at the record's offset and the :class:`Segment`
is built there. That saves, per frame, a copy of the frame's bytes, the frame tuple, a
generator hop and the decoder call (~20 % of read+decode). Every other frame is handed to
``Decoder.decode`` with a bytes slice, exactly as :func:`read_frames` + ``Decoder.decode``
would, so the fast path only has to agree with ``Decoder.decode`` on the frames it accepts
(tests/test_capture_fused.py checks that on every capture it can find).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, cast

from tcptrace_py.capture.common import (
    CHUNK_BYTES,
    MAX_RECORD_BYTES,
    Frame,
    damage,
    note_backwards,
    update_ts_range,
)
from tcptrace_py.decode import (
    ETHERNET_UNPACKERS,
    NOP_NOP_TS_WORD,
    TCP_TS_BLOCK_UNPACK,
    VLAN_UNPACKERS,
    Decoder,
    fused_unpackers,
)
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.segment import Segment

# Magic numbers as read little-endian from the first four bytes of the file.
MAGIC_USEC = 0xA1B2C3D4
MAGIC_NSEC = 0xA1B23C4D
MAGIC_KUZNETSOV = 0xA1B2CD34  # "modified" pcap (Alexey Kuznetsov's patches): 24-byte records
GLOBAL_HEADER_BYTES = 24

_MAGICS: dict[bytes, tuple[str, int, int]] = {}
"""First 4 bytes -> (struct byte order, ns per timestamp fraction unit, record header bytes)."""
for _order, _tag in (("<", "little"), (">", "big")):
    _MAGICS[struct.pack(_order + "I", MAGIC_USEC)] = (_order, 1000, 16)
    _MAGICS[struct.pack(_order + "I", MAGIC_NSEC)] = (_order, 1, 16)
    _MAGICS[struct.pack(_order + "I", MAGIC_KUZNETSOV)] = (_order, 1000, 24)

LINKTYPE_MASK = 0x03FFFFFF  # libpcap LT_LINKTYPE(): upper bits carry the FCS length

# libpcap sf-pcap.c: files written before 2.3 have caplen and len swapped; 2.3 files may.
_NOT_SWAPPED, _MAYBE_SWAPPED, _SWAPPED = 0, 1, 2


def is_pcap(head: bytes) -> bool:
    return head[:4] in _MAGICS


def parse_header(head: bytes, display: str) -> dict[str, Any]:
    """The 24-byte global header as a dict (for ``describe`` and the reader)."""
    order, frac_ns, rec_bytes = _MAGICS[head[:4]]
    if len(head) < GLOBAL_HEADER_BYTES:
        raise CaptureError(f"{display}: pcap global header cut short "
                           f"({len(head)} of {GLOBAL_HEADER_BYTES} bytes)")
    major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "HHiIII",
                                                                          head, 4)
    if major != 2:
        raise CaptureError(f"{display}: unsupported pcap version {major}.{minor} (offset 4)")
    return {
        "format": "pcap",
        "byte_order": "little" if order == "<" else "big",
        "ts_precision": "nsec" if frac_ns == 1 else "usec",
        "modified": rec_bytes == 24,
        "version": f"{major}.{minor}",
        "snaplen": snaplen,
        "linktype": network & LINKTYPE_MASK,
        "record_header_bytes": rec_bytes,
        "_order": order,
        "_frac_ns": frac_ns,
        "_swap": (_SWAPPED if minor < 3 else _MAYBE_SWAPPED if minor == 3 else _NOT_SWAPPED),
    }


def read_pcap(stream: Any, head: bytes, display: str, diag: Diagnostics,
              strict: bool) -> Iterator[Frame]:
    """Yield frames from a classic pcap stream whose first bytes (``head``) were sniffed."""
    return cast(Iterator[Frame], _records(stream, head, display, diag, strict, None))


def read_pcap_segments(stream: Any, head: bytes, display: str, diag: Diagnostics,
                       strict: bool, decoder: Decoder) -> Iterator[Segment]:
    """Yield the TCP segments of a classic pcap stream: :func:`read_pcap` followed by
    ``decoder.decode`` on every frame, fused (see the module docstring). Frames that do not
    decode are counted in ``diag`` by the decoder and not yielded."""
    return cast(Iterator[Segment], _records(stream, head, display, diag, strict, decoder))


def _records(stream: Any, head: bytes, display: str, diag: Diagnostics, strict: bool,
             decoder: Decoder | None) -> Iterator[Frame | Segment]:
    """The record loop: frames when ``decoder`` is None, else segments (fused decoding).

    One loop for both so the damage, timestamp and counting rules cannot drift apart; the
    per-record test of ``frames_only`` costs a few ns."""
    frames_only = decoder is None
    # Never called when ``frames_only``; Decoder(diag) only gives the name a callable type.
    decode = (decoder or Decoder(diag)).decode
    buf = head
    while len(buf) < GLOBAL_HEADER_BYTES:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        buf += bytes(chunk)
    hdr = parse_header(buf, display)
    order: str = hdr["_order"]
    frac_ns: int = hdr["_frac_ns"]
    swap: int = hdr["_swap"]
    rec_bytes: int = hdr["record_header_bytes"]
    linktype: int = hdr["linktype"]
    snaplen: int = hdr["snaplen"]
    # Records longer than the file's own snaplen are damage (a writer never does that), and
    # so is anything above MAX_RECORD_BYTES whatever the header claims.
    max_cap = min(snaplen, MAX_RECORD_BYTES) if snaplen > 0 else MAX_RECORD_BYTES
    unpack_rec = struct.Struct(order + "IIII").unpack_from
    frac_limit = 1_000_000_000 // frac_ns  # fraction must be < 1 s
    # The fused fast path is for link types with an ethertype at a fixed offset (Ethernet,
    # Linux cooked v1/v2); other link types always go through ``decode`` (which has its own
    # dispatch). ``l2`` is the IP header's offset in the frame (``ip_off`` per frame, 4 more
    # under a VLAN tag); ``v4_min`` the length of link + IPv4 + fixed TCP header (54 for
    # Ethernet). Bound once: globals cost a dict lookup.
    unpackers = None if frames_only else fused_unpackers(linktype)
    fused = unpackers is not None
    # When not fused, Ethernet's stand in: always bound, never called.
    l2, eth4, eth6 = unpackers or ETHERNET_UNPACKERS
    v4_min = l2 + 40
    # Ethernet frames with one 802.1Q tag are fused too (the same unpacks, 4 bytes further).
    vlan = fused and linktype == 1
    _, vlan4, vlan6 = VLAN_UNPACKERS
    ts_block = TCP_TS_BLOCK_UNPACK
    nop_nop_ts = NOP_NOP_TS_WORD
    tcp_segments = 0  # segments built by the fast path, added to diag once per chunk

    pos = GLOBAL_HEADER_BYTES
    base = 0  # stream offset of buf[0]
    frame_no = 0
    flushed = 0
    last_ts = -(1 << 63)
    min_ts: int | None = None
    max_ts: int | None = None
    backwards_warned = False
    bad_frac = 0
    read = stream.read
    try:
        while True:
            n = len(buf)
            while pos + rec_bytes <= n:
                sec, frac, caplen, wire_len = unpack_rec(buf, pos)
                if swap and (swap == _SWAPPED or caplen > wire_len):
                    caplen, wire_len = wire_len, caplen
                if caplen > max_cap:
                    limit = (f"the file's snaplen {snaplen}" if caplen <= MAX_RECORD_BYTES
                             else f"the {MAX_RECORD_BYTES}-byte limit")
                    damage(diag, display,
                           f"record length {caplen} exceeds {limit} "
                           f"(file damaged; {frame_no} frames read)",
                           offset=base + pos, frame=frame_no + 1, strict=strict,
                           code="bad_record_length")
                    return
                start = pos + rec_bytes
                end = start + caplen
                if end > n:
                    break
                if frac >= frac_limit:
                    bad_frac += 1
                ts = sec * 1_000_000_000 + frac * frac_ns
                if ts < last_ts:
                    backwards_warned = note_backwards(diag, display, backwards_warned,
                                                      frame_no + 1, ts, last_ts)
                    if min_ts is None or ts < min_ts:
                        min_ts = ts
                else:
                    if min_ts is None:
                        min_ts = ts
                    last_ts = ts
                frame_no += 1
                pos = end
                if frames_only:
                    yield (frame_no, ts, linktype, buf[start:end], wire_len)
                    continue
                if fused and caplen >= v4_min:
                    # Fused decoding: the same rules as Decoder.decode's Ethernet fast path
                    # (read there for the why of each test); lengths from the IP header,
                    # ``caplen`` playing the part of ``len(data)``.
                    fields = eth4(buf, start)
                    ip_off = l2
                    if fields[0] == 0x8100 and vlan and caplen >= v4_min + 4:
                        # One 802.1Q tag (Ethernet): the same headers 4 bytes further, as
                        # Decoder._ether skips it. Two tags stay on the decoder.
                        fields = vlan4(buf, start)
                        ip_off = l2 + 4
                    (et, vihl, tos, total_len, ip_id, frag, ttl, proto, src, dst, sport,
                     dport, seq, ack, off_flags, window, csum, urp) = fields
                    if et == 0x0800:
                        if vihl == 0x45 and proto == 6 and not frag & 0x1FFF \
                                and total_len >= 40:
                            thl = (off_flags >> 12) << 2
                            ip_end = ip_off + total_len
                            if thl == 20:
                                tcp_segments += 1
                                yield Segment(frame_no, ts, src, dst, sport, dport, seq, ack,
                                              off_flags & 0x1FF, window, total_len - 40,
                                              (ip_end if ip_end < caplen else caplen) - ip_off
                                              - 40,
                                              urp, -1, -1, False, (), -1, -1, ip_id, ttl,
                                              False, (), csum, tos & 3)
                                continue
                            if thl == 32 and total_len >= 52 and ip_end <= caplen:
                                word, tsval, tsecr = ts_block(buf, start + ip_off + 40)
                                if word == nop_nop_ts:
                                    tcp_segments += 1
                                    yield Segment(frame_no, ts, src, dst, sport, dport, seq,
                                                  ack, off_flags & 0x1FF, window,
                                                  total_len - 52, total_len - 52, urp, -1,
                                                  -1, False, (), tsval, tsecr, ip_id, ttl,
                                                  False, (), csum, tos & 3)
                                    continue
                    elif et == 0x86DD and caplen >= ip_off + 60:
                        (vtcfl, plen, nh, hlim, src, dst, sport, dport, seq, ack, off_flags,
                         window, csum, urp) = (eth6 if ip_off == l2 else vlan6)(buf, start)
                        # Payload length 0 (jumbogram/TSO) and extension headers: slow path.
                        if vtcfl >> 28 == 6 and nh == 6 and plen >= 20:
                            thl = (off_flags >> 12) << 2
                            ip_end = ip_off + 40 + plen
                            if thl == 20:
                                tcp_segments += 1
                                yield Segment(frame_no, ts, src, dst, sport, dport, seq, ack,
                                              off_flags & 0x1FF, window, plen - 20,
                                              (ip_end if ip_end < caplen else caplen) - ip_off
                                              - 60,
                                              urp, -1, -1, False, (), -1, -1, -1, hlim,
                                              False, (), csum, (vtcfl >> 20) & 3)
                                continue
                            if thl == 32 and plen >= 32 and ip_end <= caplen:
                                word, tsval, tsecr = ts_block(buf, start + ip_off + 60)
                                if word == nop_nop_ts:
                                    tcp_segments += 1
                                    yield Segment(frame_no, ts, src, dst, sport, dport, seq,
                                                  ack, off_flags & 0x1FF, window, plen - 32,
                                                  plen - 32, urp, -1, -1, False, (), tsval,
                                                  tsecr, -1, hlim, False, (), csum,
                                                  (vtcfl >> 20) & 3)
                                    continue
                seg = decode(linktype, buf[start:end], frame_no, ts, wire_len)
                if seg is not None:
                    yield seg
            if tcp_segments:
                diag.tcp_segments += tcp_segments
                tcp_segments = 0
            # Flush counters once per chunk so diag is roughly live and cheap to keep.
            if frame_no != flushed:
                diag.frames += frame_no - flushed
                diag.link_types[linktype] += frame_no - flushed
                flushed = frame_no
                max_ts = last_ts
                update_ts_range(diag, min_ts, max_ts)
            chunk = read(CHUNK_BYTES)
            if not chunk:
                if pos < n:
                    damage(diag, display,
                           f"file ends in the middle of a record ({n - pos} bytes left over; "
                           f"{frame_no} frames read)",
                           offset=base + pos, frame=frame_no + 1, strict=strict,
                           code="truncated_record")
                return
            buf = buf[pos:] + bytes(chunk)
            base += pos
            pos = 0
    finally:
        if tcp_segments:
            diag.tcp_segments += tcp_segments
        if frame_no != flushed:
            diag.frames += frame_no - flushed
            diag.link_types[linktype] += frame_no - flushed
            update_ts_range(diag, min_ts, last_ts)
        if bad_frac:
            diag.notes["invalid_timestamp_fraction"] += bad_frac
            diag.warn(display, f"{bad_frac} record(s) have a timestamp fraction of 1 s or "
                      "more (kept, added as is)", code="invalid_timestamp")
