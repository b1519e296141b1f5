"""capture: the only file I/O of the pipeline; bytes in, raw frames out.

``read_frames(source, diag)`` yields ``(frame_no, ts_ns, linktype, data, wire_len)`` tuples
from classic pcap or pcapng, optionally gzip/bzip2/xz/zstd compressed (sniffed by magic
bytes). Sources that cannot be read at all raise :class:`CaptureError` with one line naming
the file; damage after the header is a ``diag.warn`` and the iterator stops (``strict``
raises instead).

``read_segments(source, diag, decoder)`` is ``read_frames`` followed by ``decoder.decode``,
with the two fused for classic pcap (see capture/pcap.py): what the engine iterates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from tcptrace_py import implementation
from tcptrace_py.capture.common import CHUNK_BYTES, MAX_RECORD_BYTES, Frame
from tcptrace_py.capture.pcap import is_pcap, parse_header, read_pcap, read_pcap_segments
from tcptrace_py.capture.pcapng import (
    describe_pcapng,
    is_pcapng,
    read_pcapng,
    read_pcapng_segments,
)
from tcptrace_py.capture.source import (
    LFS_POINTER_PREFIX,
    OpenedSource,
    decompression_errors,
    open_source,
    read_head,
    source_name,
)
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.segment import Segment

__all__ = ["CaptureError", "Frame", "capture_format", "read_frames", "read_segments",
           "read_flow_segments",
           "read_flows_segments", "route_segments",
           "describe",
           "MAX_RECORD_BYTES", "CHUNK_BYTES"]

_T = TypeVar("_T")


def _not_a_capture(display: str, head: bytes, compression: str | None) -> CaptureError:
    """The one-line error for data that is neither pcap nor pcapng, saying what it looks like."""
    what = f"{compression}-compressed data" if compression else "file"
    if not head:
        if compression:
            return CaptureError(f"{display}: {what} is empty, not a capture")
        return CaptureError(f"{display}: empty file, not a capture")
    if head.startswith(LFS_POINTER_PREFIX):
        return CaptureError(f"{display}: Git LFS pointer, not a capture "
                            "(fetch the real file with 'git lfs pull')")
    if len(head) < 4:
        return CaptureError(f"{display}: {what} too short ({len(head)} bytes), not a capture")
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return CaptureError(f"{display}: text {what}, not a capture "
                            f"(starts with {head[:12].decode('ascii')!r})")
    return CaptureError(f"{display}: not a pcap or pcapng capture "
                        f"(unknown magic {head[:4].hex()})")


def _open(source: object, display: str) -> tuple[OpenedSource, str]:
    opened = open_source(source, display)
    head = opened.head
    if is_pcap(head):
        return opened, "pcap"
    if is_pcapng(head):
        return opened, "pcapng"
    opened.close()
    raise _not_a_capture(display, head, opened.compression)


def capture_format(source: object, name: str | None = None) -> str | None:
    """``"pcap"`` or ``"pcapng"``: the format of the capture ``source`` names, from its first
    bytes (decompressed); None when it cannot be read as either (reading it says why)."""
    unreadable: tuple[type[BaseException], ...] = (CaptureError, OSError,
                                                   *decompression_errors())
    try:
        opened, fmt = _open(source, source_name(source, name))
    except unreadable:
        return None
    opened.close()
    return fmt


def read_frames(source: object, diag: Diagnostics, *, strict: bool = False,
                name: str | None = None) -> Iterator[Frame]:
    """Yield every frame of a capture; see the module docstring and docs/architecture.md."""
    return _read(source, diag, strict, name,
                 lambda stream, display: read_pcap(stream, b"", display, diag, strict),
                 lambda stream, display: read_pcapng(stream, b"", display, diag, strict))


def read_segments(source: object, diag: Diagnostics, decoder: Decoder, *,
                  strict: bool = False, name: str | None = None) -> Iterator[Segment]:
    """Yield the TCP segment of every frame that decodes to one: the same segments, warnings
    and counters as ``decoder.decode`` over :func:`read_frames`, faster for classic pcap."""
    return _segments(source, diag, decoder, strict, name, None)  # type: ignore[return-value]


def route_segments(source: object, diag: Diagnostics, decoder: Decoder, router: object, *,
                   strict: bool = False, name: str | None = None) -> Iterator[Segment | None]:
    """:func:`read_segments` for ``Engine.run`` with the compiled engine's ``Router``: the
    compiled pcap loop and pcapng's compiled loop over Enhanced Packet Blocks hand each
    segment to the flow table themselves and yield ``None`` when the engine has work to do
    (finished connections, ICMP errors; in a ``--jobs`` worker also allocated flow ids and
    deferred incarnations); other readers yield every segment, as :func:`read_segments`."""
    return _segments(source, diag, decoder, strict, name, router)


def _segments(source: object, diag: Diagnostics, decoder: Decoder, strict: bool,
              name: str | None, router: object) -> Iterator[Segment | None]:
    compiled = implementation.compiled
    if compiled is not None:
        # The compiled twins: the pcap record loop and the decoder's common cases in C, the
        # reference decoder behind them for every other frame (tcptrace_py/_engine.pyx).
        decoder = compiled.Decoder(decoder)

        def pcap(stream: Any, display: str) -> Iterator[Segment | None]:
            return compiled.read_pcap_segments(  # type: ignore[no-any-return]
                stream, b"", display, diag, strict, decoder, router)
    else:
        def pcap(stream: Any, display: str) -> Iterator[Segment | None]:
            return read_pcap_segments(stream, b"", display, diag, strict, decoder)
    return _read(source, diag, strict, name, pcap,
                 lambda stream, display: read_pcapng_segments(stream, b"", display, diag,
                                                              strict, decoder, router))


def read_flow_segments(source: object, rec: Mapping[str, Any], last_frame: int,
                       diag: Diagnostics | None = None) -> Iterator[tuple[Segment, bool]]:
    """One connection's segments, ``(segment, from_client)``, re-read from the capture: the
    frames between the record's ``first_frame`` and ``last_frame`` whose 4-tuple is the
    record's, in either direction (a self-connect's segments count as the client's). For
    views that need per-packet detail the engine does not keep (the ladder, the plots)."""
    for _i, seg, fc in _flows_segments(source, [rec], [last_frame], diag):
        yield seg, fc


def read_flows_segments(source: object, recs: Sequence[Mapping[str, Any]],
                        diag: Diagnostics | None = None,
                        ) -> dict[int, list[tuple[Segment, bool]]]:
    """:func:`read_flow_segments` for several connections in one read of the capture (the
    HTML report's connections), by ``flow_id``; each connection's frames are those between
    its record's ``first_frame`` and ``last_frame``, which also tells incarnations of one
    4-tuple apart."""
    out: dict[int, list[tuple[Segment, bool]]] = {int(r["flow_id"]): [] for r in recs}
    for i, seg, fc in _flows_segments(source, recs, [int(r["last_frame"]) for r in recs],
                                      diag):
        out[int(recs[i]["flow_id"])].append((seg, fc))
    return out


def _flows_segments(source: object, recs: Sequence[Mapping[str, Any]],
                    last_frames: Sequence[int], diag: Diagnostics | None,
                    ) -> Iterator[tuple[int, Segment, bool]]:
    """``(index into recs, segment, from_client)`` of the segments of those connections."""
    if not recs:
        return
    import ipaddress  # here, not at start-up: only the flow and packet commands come here
    # 4-tuple as sent -> [(first frame, last frame, index, from_client)]
    by_tuple: dict[tuple[bytes, int, bytes, int], list[tuple[int, int, int, bool]]] = {}
    for i, (rec, last) in enumerate(zip(recs, last_frames, strict=True)):
        client = (ipaddress.ip_address(rec["client_ip"]).packed, int(rec["client_port"]))
        server = (ipaddress.ip_address(rec["server_ip"]).packed, int(rec["server_port"]))
        first = int(rec["first_frame"])
        by_tuple.setdefault((*client, *server), []).append((first, last, i, True))
        if client != server:  # a self-connect's segments count as the client's
            by_tuple.setdefault((*server, *client), []).append((first, last, i, False))
    diag = diag if diag is not None else Diagnostics()
    decode = Decoder(diag).decode
    first_wanted = min(int(r["first_frame"]) for r in recs)
    last_wanted = max(last_frames)
    for frame_no, ts_ns, linktype, data, wire_len in read_frames(source, diag):
        if frame_no < first_wanted:
            continue
        if frame_no > last_wanted:
            break
        seg = decode(linktype, data, frame_no, ts_ns, wire_len)
        if seg is None:
            continue
        spans = by_tuple.get((seg.src, seg.sport, seg.dst, seg.dport))
        if spans is None:
            continue
        for first, last, i, fc in spans:
            if first <= frame_no <= last:
                yield i, seg, fc
                break


def _read(source: object, diag: Diagnostics, strict: bool, name: str | None,
          pcap: Callable[[Any, str], Iterator[_T]],
          pcapng: Callable[[Any, str], Iterator[_T]]) -> Iterator[_T]:
    """Open ``source``, run the reader for its format, and turn a damaged compressed stream
    into a warning (or CaptureError when ``strict``)."""
    display = source_name(source, name)
    opened, fmt = _open(source, display)
    errors = decompression_errors()
    frames_before = diag.frames
    try:
        reader = pcap(opened.stream, display) if fmt == "pcap" else \
            pcapng(opened.stream, display)
        try:
            yield from reader
        except CaptureError:
            raise
        except errors as exc:
            # A damaged or cut compressed stream (gzip CRC, truncated xz...) is damage like a
            # file cut mid-record: the frames read so far stand.
            msg = (f"{opened.compression or 'read'} error: {exc} "
                   f"({diag.frames - frames_before} frames read)")
            if strict:
                raise CaptureError(f"{display}: {msg}") from None
            diag.warn(display, msg, code="read_error")
    finally:
        opened.close()


def describe(source: object, *, name: str | None = None) -> dict[str, Any]:
    """Format facts from the file's header, without reading the packets.

    Returns e.g. ``{"format": "pcap", "compression": None, "byte_order": "little",
    "ts_precision": "usec", "version": "2.4", "snaplen": 65535, "linktype": 1}`` or, for
    pcapng, ``"interfaces": [{"linktype", "snaplen", "tsresol", "tsoffset_s"}, ...]`` of
    the first section (as far as they appear in its first 64 KiB).
    """
    display = source_name(source, name)
    opened, fmt = _open(source, display)
    try:
        head = read_head(opened.stream, 64 * 1024)
    except decompression_errors() as exc:
        opened.close()
        raise CaptureError(f"{display}: cannot read ({exc})") from None
    finally:
        opened.close()
    info: dict[str, Any]
    if fmt == "pcap":
        info = {k: v for k, v in parse_header(head, display).items() if not k.startswith("_")}
    else:
        info = describe_pcapng(head, display)
    info["compression"] = opened.compression
    return info
