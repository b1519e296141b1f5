"""Opening a capture source: path, ``-`` (stdin), file object or ``bytes``; decompression.

Why magic bytes and not file names: captures are routinely renamed (``trace.dmp.gz``,
``x.pcap`` that is really pcapng, a ``.pcap`` that is really a Git LFS pointer). Wireshark's
wiretap also sniffs compression from the first bytes, and so do we: gzip (1f 8b), bzip2
("BZh"), xz (fd 37 7a 58 5a 00) and zstd (28 b5 2f fd, when the ``zstandard`` package is
installed).

Everything here returns a plain object with a ``read(n)`` method; the format readers read it
in large chunks, so nothing ever allocates by a length found in the file.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import zlib
from typing import IO, TYPE_CHECKING, Any, Protocol

from tcptrace_py.diagnostics import CaptureError

if TYPE_CHECKING:
    import mmap

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LFS_POINTER_PREFIX = b"version https://git-lfs"

SNIFF_BYTES = 32  # compression magics, both capture magics, and "version https://git-lfs"

_COMPRESSIONS = (("gzip", GZIP_MAGIC), ("bzip2", BZIP2_MAGIC), ("xz", XZ_MAGIC),
                 ("zstd", ZSTD_MAGIC))


def sniff_compression(head: bytes) -> str | None:
    """The compression a file starting with ``head`` is in ("gzip", "bzip2", "xz",
    "zstd"), by its magic number; None when it starts with none of them."""
    for codec, magic in _COMPRESSIONS:
        if head.startswith(magic):
            return codec
    return None


class Readable(Protocol):
    """What the format readers need: ``read(n)`` returning at most n bytes, b"" at EOF."""

    def read(self, n: int = -1, /) -> bytes: ...


class _Prefixed:
    """A stream that first returns ``head`` (bytes already sniffed), then the rest of ``inner``.

    Why: file objects handed to us (sockets, pipes, stdin) cannot seek back after sniffing.
    """

    def __init__(self, head: bytes, inner: Any, *, partial_reads: bool = False) -> None:
        self._head = head
        self._inner = inner
        self._partial = partial_reads
        # Decompressors' read(n) loop until n bytes and, on a cut or corrupt stream, raise
        # and lose what they had decoded; read1(n) hands out each decoded piece as it comes,
        # so the frames before the damage are kept.
        self._read = inner.read1 if partial_reads and hasattr(inner, "read1") else inner.read
        # readinto fills a caller's buffer: the compiled pcap reader reuses one, where
        # read(n) would allocate a fresh mebibyte per chunk (a page fault per 4 KiB: about
        # 1 s of system time on a 1.8 GB capture). Same chunks, same partial-read rule.
        into = "readinto1" if partial_reads and hasattr(inner, "readinto1") else "readinto"
        self._readinto = getattr(inner, into, None)

    def read(self, n: int = -1, /) -> bytes:
        if self._head:
            if n < 0:
                out = self._head + bytes(self._inner.read())
                self._head = b""
                return out
            out = self._head[:n]
            self._head = self._head[n:]
            return out
        return bytes(self._read(n))

    def readinto(self, b: Any, /) -> int:
        """Fill ``b`` as :meth:`read` ``(len(b))`` would return; the count (0 at the end)."""
        if self._head or self._readinto is None:
            data = self.read(len(b))
            b[:len(data)] = data
            return len(data)
        return self._readinto(b) or 0

    def readable(self) -> bool:  # gzip/bz2/lzma check for this on their fileobj
        return True

    def mapped(self, consumed: int) -> mmap.mmap | None:
        """The whole file this stream reads, mapped read-only (:class:`mmap.mmap`), when a
        reader may take its bytes from there instead: a regular file we opened (not a
        pipe, standard input or a decompressor's output) that holds more than the
        ``consumed`` bytes read so far, with the sniffed head read. None otherwise, or
        when mapping fails.

        Why: ``readinto`` copies every byte of the capture from the page cache, ~0.25 s of
        system time per 1.8 GB, which each ``--jobs`` worker pays again; a mapping reads
        the cached pages where they are (docs/benchmarks.md, fifteenth session). The
        reader drops the pages behind it (``madvise(MADV_DONTNEED)``), so memory stays
        bounded.
        The cost is the mapping's one hazard: a file truncated while it is read ends the
        process with SIGBUS. The reader narrows that to a mebibyte: it checks the file's
        size (:meth:`still_mapped`) before it reads on, and reads with ``readinto`` from
        where it was when the file shrank (or grew: a capture still being written)."""
        # A stream handed over is read as given (it may be a pipe, or a wrapper whose
        # descriptor is not what it reads), unless it says it is a mappable file: the
        # command line's Ctrl-C gate around a file it opened (``cli._GatedReader``).
        if self._head or (self._partial and not getattr(self._inner, "mappable", False)):
            return None
        import mmap  # here: only a capture file read this way needs it (~0.2 ms)

        if not all(hasattr(mmap, n) for n in ("MADV_SEQUENTIAL", "MADV_DONTNEED")):
            return None  # no madvise to drop the pages read (Windows)
        try:
            fd = self._inner.fileno()
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or st.st_size <= consumed
                    or self._inner.tell() != consumed):
                return None
            mapped = mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ)
        except (AttributeError, OSError, ValueError, OverflowError):
            return None
        try:
            mapped.madvise(mmap.MADV_SEQUENTIAL)  # read-ahead, as for sequential reads
        except OSError:
            mapped.close()
            return None
        return mapped

    def still_mapped(self, size: int) -> bool:
        """Whether the file still holds the ``size`` bytes :meth:`mapped` mapped."""
        try:
            return os.fstat(self._inner.fileno()).st_size >= size
        except (OSError, ValueError):
            return False

    def seek(self, offset: int) -> None:
        """Read on from the file's byte ``offset`` (after a mapping, see :meth:`mapped`)."""
        self._inner.seek(offset)

    def close(self) -> None:
        """Closing is the opener's business (see :func:`open_source`)."""


def read_head(f: Any, n: int) -> bytes:
    """Read up to n bytes, looping over short reads (pipes return what they have)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = f.read(n - got)
        if not chunk:
            break
        parts.append(bytes(chunk))
        got += len(chunk)
    return b"".join(parts)


def source_name(source: object, name: str | None = None) -> str:
    """The name used in messages: explicit name, the path, ``-`` for stdin, or a placeholder."""
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):  # not pathlib: start-up (docs/benchmarks.md)
        return os.fsdecode(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    fname = getattr(source, "name", None)
    return str(fname) if isinstance(fname, str) else "<stream>"


def decompression_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a decompressing reader raises on damaged input (caught as damage)."""
    # zlib.error is what gzip raises on corrupt deflate data ("invalid distance too far
    # back"): it is not an OSError (found by tests/fuzz/fuzz_reader.py).
    errs: list[type[BaseException]] = [OSError, EOFError, ValueError, zlib.error]
    # An xz or zstd stream was opened through ``lzma`` or ``zstandard`` (imported then, by
    # open_source): only then can its error occur, so a start-up that reads no such capture
    # imports neither.
    isal_zlib = sys.modules.get("isal.isal_zlib")  # gzip's inflater when installed
    if isal_zlib is not None:
        errs.append(isal_zlib.error)
    lzma = sys.modules.get("lzma")
    if lzma is not None:
        errs.append(lzma.LZMAError)
    zstandard = sys.modules.get("zstandard")
    if zstandard is not None:
        errs.append(zstandard.ZstdError)
    return tuple(errs)


class OpenedSource:
    """An opened, decompressed stream plus what we learned while opening it."""

    def __init__(self, stream: Readable, head: bytes, compression: str | None,
                 to_close: list[Any]) -> None:
        self.stream = stream
        self.head = head  # first decompressed bytes (already part of ``stream``)
        self.compression = compression
        self._to_close = to_close

    def close(self) -> None:
        for f in reversed(self._to_close):
            try:
                f.close()
            except Exception:  # noqa: BLE001 - closing must never mask the real error
                pass


def open_source(source: object, display: str) -> OpenedSource:
    """Open ``source`` and undo compression; CaptureError (one line) when it cannot be read."""
    to_close: list[Any] = []
    raw: Any
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path == "-":
            raw = sys.stdin.buffer
        else:
            if os.path.isdir(path):
                raise CaptureError(f"{display}: is a directory, not a capture file")
            try:
                raw = open(path, "rb")  # noqa: SIM115 - closed by OpenedSource.close
            except FileNotFoundError:
                raise CaptureError(f"{display}: no such file") from None
            except OSError as exc:
                raise CaptureError(f"{display}: cannot open ({exc.strerror or exc})") from None
            to_close.append(raw)
    elif hasattr(source, "read"):
        raw = source
    else:
        raise CaptureError(f"{display}: unsupported source type {type(source).__name__}")

    try:
        head = read_head(raw, SNIFF_BYTES)
    except OSError as exc:
        for f in to_close:
            f.close()
        raise CaptureError(f"{display}: cannot read ({exc})") from None
    # A stream handed to us (standard input, a pipe, a socket) is read with read1: read(n)
    # would wait for n bytes (1 MiB), so a live ``tcpdump -U -w - | tcptrace-py analyze -``
    # would analyse nothing until a mebibyte had arrived. Files we opened keep read(n).
    stream: Any = _Prefixed(head, raw, partial_reads=not to_close)
    compression = sniff_compression(head)
    inner: IO[bytes] | Any
    # Each decompressor is imported when a capture needs it: most are not compressed, and
    # the three modules cost a start-up ~1 ms (docs/benchmarks.md, "Start-up").
    if compression == "gzip":
        from tcptrace_py.capture.gzipstream import GzipStream

        inner = GzipStream(stream)
    elif compression == "bzip2":
        import bz2

        inner = bz2.BZ2File(stream, mode="rb")
    elif compression == "xz":
        import lzma

        inner = lzma.LZMAFile(stream, mode="rb")
    elif compression == "zstd":
        try:
            import zstandard
        except ImportError:
            for f in to_close:
                f.close()
            raise CaptureError(f"{display}: zstd-compressed capture, but the 'zstandard' "
                               "package is not installed (pip install zstandard)") from None
        inner = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    else:
        return OpenedSource(stream, head, None, to_close)
    to_close.append(inner)
    try:
        dhead = read_head(_Prefixed(b"", inner, partial_reads=True), SNIFF_BYTES)
    except decompression_errors() as exc:
        OpenedSource(stream, b"", compression, to_close).close()
        raise CaptureError(f"{display}: damaged {compression} data ({exc})") from None
    return OpenedSource(_Prefixed(dhead, inner, partial_reads=True), dhead, compression,
                        to_close)
