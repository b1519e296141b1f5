# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""The compiled twin of the per-packet front end: Segment, the fused pcap reader, decoding.

Theory of operation
-------------------
The pure-Python modules are the reference; this module is their translation to C-level
code, function for function, and ``tcptrace_py.implementation`` picks one of the two once per
process (``TCPTRACE_PY_PURE=1`` forces the reference). Nothing here decides anything the
reference does not: every branch names the reference function it stands for, and
``tests/test_engines.py`` runs every capture through both and compares every output.

What is compiled today (the stages a packet crosses first):

1. :class:`Segment` - the twin of ``segment.Segment``: the same fields, constructor and
   properties, as an extension type. Built from C without calling ``__init__``.
2. :func:`read_pcap_segments` - the twin of ``capture.pcap._records`` in segment mode: the
   same 1 MiB chunks, damage, timestamp and counting rules; records are decoded from a
   pointer into the chunk, no slice and no tuple per frame.
3. :class:`Decoder` - the twin of ``decode.Decoder``'s common cases: Ethernet (any number
   of VLAN/QinQ tags), Linux cooked v1/v2, raw IP, BSD loopback; IPv4 (with options) and
   IPv6 (no extension headers) carrying TCP with any options. Every other frame (tunnels,
   fragments, ICMP, non-TCP, extension headers, cut or malformed headers, other link types)
   is handed to the reference decoder with its bytes, which counts the skip reasons: so the
   diagnostics are the reference's by construction.

Safety rule: every read from a frame is preceded by an explicit length check against the
captured length (``n``); Cython's own bounds checking is off. The Hypothesis and atheris
fuzz targets run against this module as well as the reference.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.limits cimport LLONG_MIN
from libc.stdint cimport uint8_t, uint32_t

# ---------------------------------------------------------------- constants (segment.py)
DEF FIN = 0x01
DEF SYN = 0x02

cdef object _EMPTY = ()


cdef inline uint32_t be16(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint32_t le32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef inline uint32_t le16(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[1] << 8) | p[0]


# ---------------------------------------------------------------- Segment (segment.py)
cdef class Segment:
    """One TCP segment as seen at the capture point (twin of ``segment.Segment``; the field
    documentation is there)."""

    cdef public object frame
    cdef public object ts_ns
    cdef public object src
    cdef public object dst
    cdef public int sport
    cdef public int dport
    cdef public long long seq
    cdef public long long ack
    cdef public int flags
    cdef public int window
    cdef public long long payload_len
    cdef public long long captured_payload
    cdef public int urgent
    cdef public int mss
    cdef public int wscale
    cdef public bint sack_permitted
    cdef public object sack
    cdef public long long tsval
    cdef public long long tsecr
    cdef public int ip_id
    cdef public int ttl
    cdef public bint header_truncated
    cdef public object other_options
    cdef public long long checksum

    def __init__(self, frame, ts_ns, src, dst, int sport, int dport, long long seq,
                 long long ack, int flags, int window, long long payload_len,
                 long long captured_payload=-1, int urgent=0, int mss=-1, int wscale=-1,
                 bint sack_permitted=False, sack=(), long long tsval=-1,
                 long long tsecr=-1, int ip_id=-1, int ttl=64, bint header_truncated=False,
                 other_options=(), long long checksum=0):
        self.frame = frame
        self.ts_ns = ts_ns
        self.src = src
        self.dst = dst
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload_len = payload_len
        self.captured_payload = payload_len if captured_payload < 0 else captured_payload
        self.urgent = urgent
        self.mss = mss
        self.wscale = wscale
        self.sack_permitted = sack_permitted
        self.sack = sack
        self.tsval = tsval
        self.tsecr = tsecr
        self.ip_id = ip_id
        self.ttl = ttl
        self.header_truncated = header_truncated
        self.other_options = other_options
        self.checksum = checksum

    @property
    def truncated(self):
        """True when the capture holds fewer payload bytes than the IP header announced."""
        return self.captured_payload < self.payload_len or self.header_truncated

    @property
    def seg_len(self):
        """Sequence space the segment occupies: payload plus one for SYN and one for FIN."""
        return self.payload_len + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def __repr__(self):
        from tcptrace_py.segment import addr_text, flags_text

        return (f"Segment(frame={self.frame}, {addr_text(self.src)}:{self.sport} > "
                f"{addr_text(self.dst)}:{self.dport} [{flags_text(self.flags)}] "
                f"seq={self.seq} ack={self.ack} win={self.window} len={self.payload_len})")


# ---------------------------------------------------------------- decoding (decode.py)
cdef inline bint _is_vlan(uint32_t et) noexcept nogil:
    # decode.ETH_VLAN_TAGS: 802.1Q, 802.1ad, old QinQ.
    return et == 0x8100 or et == 0x88A8 or et == 0x9100 or et == 0x9200


cdef Segment _tcp(const uint8_t* d, Py_ssize_t n, Py_ssize_t l4, Py_ssize_t ip_end,
                  const uint8_t* src, const uint8_t* dst, Py_ssize_t alen, int ip_id,
                  int ttl, object frame, object ts):
    """Twin of ``Decoder._tcp`` for a complete fixed header (None: the reference decides)."""
    cdef Py_ssize_t cap_end = ip_end if ip_end < n else n
    if l4 + 20 > cap_end:
        return None  # _tcp_cut: a header cut inside its fixed 20 bytes
    cdef const uint8_t* t = d + l4
    cdef uint32_t off_flags = be16(t + 12)
    cdef Py_ssize_t thl = (off_flags >> 12) << 2
    if thl < 20:
        return None  # malformed
    cdef Py_ssize_t payload_len = ip_end - l4 - thl
    if payload_len < 0:
        return None  # malformed
    cdef Py_ssize_t data_start = l4 + thl
    if data_start > cap_end:
        return None  # header cut inside its options: the reference keeps what it can
    cdef Segment seg = Segment.__new__(Segment)
    seg.frame = frame
    seg.ts_ns = ts
    seg.src = PyBytes_FromStringAndSize(<const char*>src, alen)
    seg.dst = PyBytes_FromStringAndSize(<const char*>dst, alen)
    seg.sport = be16(t)
    seg.dport = be16(t + 2)
    seg.seq = be32(t + 4)
    seg.ack = be32(t + 8)
    seg.flags = off_flags & 0x1FF
    seg.window = be16(t + 14)
    seg.checksum = be16(t + 16)
    seg.urgent = be16(t + 18)
    seg.payload_len = payload_len
    seg.captured_payload = cap_end - data_start
    seg.ip_id = ip_id
    seg.ttl = ttl
    seg.header_truncated = False
    seg.mss = -1
    seg.wscale = -1
    seg.sack_permitted = False
    seg.sack = _EMPTY
    seg.tsval = -1
    seg.tsecr = -1
    seg.other_options = _EMPTY
    if thl == 20:
        return seg
    cdef const uint8_t* o = t + 20
    if thl == 32 and o[0] == 1 and o[1] == 1 and o[2] == 8 and o[3] == 10:
        seg.tsval = be32(o + 4)
        seg.tsecr = be32(o + 8)
        return seg
    if not _options(seg, o, thl - 20):
        return None  # malformed option: the reference counts it and keeps what it parsed
    return seg


cdef bint _options(Segment seg, const uint8_t* o, Py_ssize_t n) except -1:
    """Twin of ``decode.parse_tcp_options``; False on a malformed option (the caller hands
    the frame to the reference, which counts ``malformed_tcp_option``)."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t olen, j
    cdef uint8_t kind
    cdef list other = None
    while i < n:
        kind = o[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            return False
        olen = o[i + 1]
        if olen < 2 or i + olen > n:
            return False
        if kind == 8 and olen == 10:
            seg.tsval = be32(o + i + 2)
            seg.tsecr = be32(o + i + 6)
        elif kind == 2 and olen == 4:
            seg.mss = be16(o + i + 2)
        elif kind == 3 and olen == 3:
            seg.wscale = o[i + 2]
        elif kind == 4 and olen == 2:
            seg.sack_permitted = True
        elif kind == 5 and (olen - 2) % 8 == 0:
            blocks = []
            j = i + 2
            while j < i + olen:
                blocks.append((be32(o + j), be32(o + j + 4)))
                j += 8
            seg.sack = tuple(blocks)
        else:
            if other is None:
                other = []
            other.append((kind, PyBytes_FromStringAndSize(<const char*>(o + i + 2), olen - 2)))
        i += olen
    if other is not None:
        seg.other_options = tuple(other)
    return True


cdef Segment _ipv4(const uint8_t* d, Py_ssize_t n, Py_ssize_t off, object frame, object ts):
    """Twin of ``Decoder._ipv4`` for an unfragmented IPv4 header carrying TCP."""
    if off + 20 > n:
        return None
    cdef const uint8_t* h = d + off
    cdef uint8_t b0 = h[0]
    cdef Py_ssize_t ihl = (b0 & 0x0F) << 2
    if b0 >> 4 != 4 or ihl < 20:
        return None
    cdef Py_ssize_t total_len = be16(h + 2)
    if be16(h + 6) & 0x1FFF:
        return None  # non-first fragment
    if total_len == 0 or total_len < ihl:
        return None  # TSO length 0 (a note) or malformed: the reference says which
    if h[9] != 6:
        return None  # not TCP: tunnels, ICMP errors and skips are the reference's
    return _tcp(d, n, off + ihl, off + total_len, h + 12, h + 16, 4, <int>be16(h + 4),
                h[8], frame, ts)


cdef Segment _ipv6(const uint8_t* d, Py_ssize_t n, Py_ssize_t off, object frame, object ts):
    """Twin of ``Decoder._ipv6`` for an IPv6 header carrying TCP directly."""
    if off + 40 > n:
        return None
    cdef const uint8_t* h = d + off
    if be32(h) >> 28 != 6 or h[6] != 6:
        return None  # malformed, or extension headers / another protocol
    cdef Py_ssize_t plen = be16(h + 4)
    cdef Py_ssize_t ip_end = off + 40 + plen if plen else n
    return _tcp(d, n, off + 40, ip_end, h + 8, h + 24, 16, -1, h[7], frame, ts)


cdef Segment _ip_by_version(const uint8_t* d, Py_ssize_t n, Py_ssize_t off, object frame,
                            object ts):
    if off >= n:
        return None
    cdef uint8_t version = d[off] >> 4
    if version == 4:
        return _ipv4(d, n, off, frame, ts)
    if version == 6:
        return _ipv6(d, n, off, frame, ts)
    return None


cdef Segment decode_frame(const uint8_t* d, Py_ssize_t n, int linktype, object frame,
                          object ts):
    """Twin of ``Decoder.decode`` for the link types and headers named in the module
    docstring; None hands the frame to the reference decoder (nothing counted here)."""
    cdef Py_ssize_t off
    cdef uint32_t et, family
    if linktype == 1:  # Ethernet: type at 12, IP at 14
        if n < 14:
            return None
        et = be16(d + 12)
        off = 14
    elif linktype == 113:  # Linux cooked v1: protocol at 14, IP at 16
        if n < 16:
            return None
        et = be16(d + 14)
        off = 16
    elif linktype == 276:  # Linux cooked v2: protocol at 0, IP at 20
        if n < 20:
            return None
        et = be16(d)
        off = 20
    elif linktype == 101 or linktype == 12 or linktype == 14:  # raw IP
        return _ip_by_version(d, n, 0, frame, ts)
    elif linktype == 228:
        return _ipv4(d, n, 0, frame, ts)
    elif linktype == 229:
        return _ipv6(d, n, 0, frame, ts)
    elif linktype == 0 or linktype == 108:  # BSD loopback: host-order address family
        if n < 4:
            return None
        family = le32(d)
        if family > 0xFFFF:
            family = be32(d)
        if family == 2:
            return _ipv4(d, n, 4, frame, ts)
        if family == 10 or family == 24 or family == 28 or family == 30:
            return _ipv6(d, n, 4, frame, ts)
        return None
    else:
        return None
    # Decoder._ether: VLAN/QinQ tags, then IPv4 or IPv6.
    while _is_vlan(et):
        if off + 4 > n:
            return None
        et = be16(d + off + 2)
        off += 4
    if et == 0x0800:
        return _ipv4(d, n, off, frame, ts)
    if et == 0x86DD:
        return _ipv6(d, n, off, frame, ts)
    return None


cdef class Decoder:
    """Twin of ``decode.Decoder``: decodes what the compiled path knows and hands every
    other frame to the reference decoder it wraps (``.reference``), which counts skips and
    keeps ICMP errors (``icmp_errors`` is the reference's list)."""

    cdef public object reference
    cdef public object diag
    cdef public object icmp_errors

    def __init__(self, reference):
        self.reference = reference
        self.diag = reference.diag
        self.icmp_errors = reference.icmp_errors

    def decode(self, int linktype, bytes data, frame_no, ts_ns, wire_len):
        """Decode one frame; None when skipped (reason counted by the reference)."""
        cdef Segment seg = decode_frame(<const uint8_t*>PyBytes_AS_STRING(data),
                                        PyBytes_GET_SIZE(data), linktype, frame_no, ts_ns)
        if seg is None:
            return self.reference.decode(linktype, data, frame_no, ts_ns, wire_len)
        self.diag.tcp_segments += 1
        return seg


# ---------------------------------------------------------------- pcap (capture/pcap.py)
def read_pcap_segments(stream, bytes head, str display, diag, bint strict, decoder):
    """Twin of ``capture.pcap.read_pcap_segments``: the TCP segments of a classic pcap
    stream, with the reference's damage, timestamp and counting rules."""
    from tcptrace_py.capture.common import (
        CHUNK_BYTES,
        MAX_RECORD_BYTES,
        damage,
        note_backwards,
        update_ts_range,
    )
    from tcptrace_py.capture.pcap import _SWAPPED, GLOBAL_HEADER_BYTES, parse_header

    reference = decoder.reference if isinstance(decoder, Decoder) else decoder
    ref_decode = reference.decode
    cdef bytes buf = head
    while len(buf) < GLOBAL_HEADER_BYTES:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        buf += bytes(chunk)
    hdr = parse_header(buf, display)
    cdef bint little = hdr["_order"] == "<"
    cdef long long frac_ns = hdr["_frac_ns"]
    cdef int swap = hdr["_swap"]
    cdef int swapped = _SWAPPED
    cdef Py_ssize_t rec_bytes = hdr["record_header_bytes"]
    cdef int linktype = hdr["linktype"]
    cdef long long snaplen = hdr["snaplen"]
    cdef long long max_record = MAX_RECORD_BYTES
    cdef long long max_cap = min(snaplen, max_record) if snaplen > 0 else max_record
    cdef long long frac_limit = 1_000_000_000 // frac_ns
    cdef long long chunk_bytes = CHUNK_BYTES

    cdef Py_ssize_t pos = GLOBAL_HEADER_BYTES
    cdef long long base = 0
    cdef long long frame_no = 0
    cdef long long flushed = 0
    cdef long long tcp_segments = 0
    cdef long long last_ts = LLONG_MIN
    cdef long long min_ts = 0
    cdef bint have_min = False
    cdef bint backwards_warned = False
    cdef long long bad_frac = 0
    cdef Py_ssize_t n, start, end
    cdef long long sec, frac, caplen, wire_len, ts, tmp
    cdef const uint8_t* p
    cdef const uint8_t* r
    cdef Segment seg
    read = stream.read
    try:
        while True:
            n = PyBytes_GET_SIZE(buf)
            p = <const uint8_t*>PyBytes_AS_STRING(buf)
            while pos + rec_bytes <= n:
                r = p + pos
                if little:
                    sec = le32(r)
                    frac = le32(r + 4)
                    caplen = le32(r + 8)
                    wire_len = le32(r + 12)
                else:
                    sec = be32(r)
                    frac = be32(r + 4)
                    caplen = be32(r + 8)
                    wire_len = be32(r + 12)
                if swap and (swap == swapped or caplen > wire_len):
                    tmp = caplen
                    caplen = wire_len
                    wire_len = tmp
                if caplen > max_cap:
                    limit = (f"the file's snaplen {snaplen}" if caplen <= max_record
                             else f"the {max_record}-byte limit")
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
                    if not have_min or ts < min_ts:
                        min_ts = ts
                        have_min = True
                else:
                    if not have_min:
                        min_ts = ts
                        have_min = True
                    last_ts = ts
                frame_no += 1
                pos = end
                seg = decode_frame(p + start, caplen, linktype, frame_no, ts)
                if seg is not None:
                    tcp_segments += 1
                    yield seg
                    continue
                ref_seg = ref_decode(linktype, buf[start:end], frame_no, ts, wire_len)
                if ref_seg is not None:
                    yield ref_seg
            if tcp_segments:
                diag.tcp_segments += tcp_segments
                tcp_segments = 0
            if frame_no != flushed:
                diag.frames += frame_no - flushed
                diag.link_types[linktype] += frame_no - flushed
                flushed = frame_no
                update_ts_range(diag, min_ts if have_min else None, last_ts)
            chunk = read(chunk_bytes)
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
            update_ts_range(diag, min_ts if have_min else None, last_ts)
        if bad_frac:
            diag.notes["invalid_timestamp_fraction"] += bad_frac
            diag.warn(display, f"{bad_frac} record(s) have a timestamp fraction of 1 s or "
                      "more (kept, added as is)", code="invalid_timestamp")
