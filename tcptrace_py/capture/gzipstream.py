"""A gzip stream's decompressed bytes, from a fast inflater, the bytes before any damage kept.

Why not ``gzip.GzipFile``: inflating is most of what a gzip capture costs beyond the same
capture uncompressed, and ISA-L (the ``isal`` package) inflates ~2.5x faster than zlib
(200k.pcap.gz, 181 MB: 0.066 s against 0.159 s of CPU; docs/benchmarks.md, fifteenth
session). Why not ISA-L's own ``IGzipFile`` (nor zlib-ng's ``GzipNGFile``): on a damaged
stream they lose what they decoded from the last ~1 MiB before raising (a cut file, trailing
garbage after a sound member), where the standard library's reader hands every byte out
first; a capture cut short must keep its frames up to the cut.

So this reader drives an inflater object (``decompressobj`` of ``isal.isal_zlib`` when
installed, of the standard ``zlib`` otherwise, the same interface) as the standard reader
does: one member at a time with ``wbits=31`` (the member's header, CRC-32 and length checked
by the inflater), each call handing out what it decoded, the next member after zero padding,
and the standard reader's errors where its rules are broken: ``EOFError`` for a stream that
ends inside a member, ``OSError`` for bytes after a member that start no other. A damaged
member raises the inflater's error (``zlib.error`` or ISA-L's), which
:func:`tcptrace_py.capture.source.decompression_errors` lists.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

READ_BYTES = 64 * 1024
"""Compressed bytes read at a time. Each inflater call copies the input it left over
(``unconsumed_tail``), so this stays small (the standard reader reads 128 KiB)."""

OUT_BYTES = 32 * 1024
"""Most decompressed bytes one inflater call makes. An inflater that meets damage raises and
drops what that call decoded, so this bounds what damage can take from before it (the
standard reader decodes into an 8 KiB buffer). The price: 200k.pcap.gz's 181 MB take
5,500 calls and 0.082 s of CPU, against 0.059 s at 1 MiB a call (8 KiB: 0.117 s)."""

GZIP_WBITS = 31
"""``wbits`` for one gzip member: 16 (a gzip wrapper) + 15 (the largest window)."""

_GZIP_MAGIC = b"\x1f\x8b"


def inflater_module() -> ModuleType:
    """``isal.isal_zlib`` when installed (faster), else the standard ``zlib``."""
    try:
        from isal import isal_zlib
    except ImportError:
        import zlib

        return zlib
    return isal_zlib


class GzipStream:
    """The decompressed bytes of the gzip stream ``fileobj`` (its members one after the
    other), read with :meth:`read`, :meth:`read1` or :meth:`readinto1`."""

    def __init__(self, fileobj: Any, inflater: ModuleType | None = None) -> None:
        self._fp = fileobj
        self._zlib = inflater or inflater_module()
        self._d: Any = self._zlib.decompressobj(GZIP_WBITS)
        self._in = b""
        """Compressed bytes read and not yet given to the inflater."""
        self._done = False
        self._out = b""
        self._out_pos = 0
        """Decoded bytes not yet handed out: ``_out[_out_pos:]`` (small reads come from here,
        so the inflater always makes up to :data:`OUT_BYTES` at a time)."""

    def _more(self) -> bytes:
        return bytes(self._fp.read(READ_BYTES))

    def _next_member(self) -> bool:
        """After a member's end: start the next one; False at the stream's end."""
        rest = self._d.unused_data + self._in
        while True:
            rest = rest.lstrip(b"\x00")  # gzip files may be padded with zeros
            if len(rest) >= 2:
                break
            more = self._more()
            if not more:
                if rest:  # one byte left: no member can start there
                    raise OSError(f"Not a gzipped file ({rest!r})")
                return False
            rest += more
        if not rest.startswith(_GZIP_MAGIC):
            raise OSError(f"Not a gzipped file ({rest[:2]!r})")
        self._d = self._zlib.decompressobj(GZIP_WBITS)
        self._in = rest
        return True

    def read1(self, n: int = -1, /) -> bytes:
        """Up to ``n`` decompressed bytes (some if any are left; b"" at the end)."""
        if n == 0:
            return b""
        out, pos = self._out, self._out_pos
        if pos >= len(out):
            out = self._decoded()
            pos = 0
        if n < 0 or pos + n >= len(out):
            self._out, self._out_pos = b"", 0
            return out if pos == 0 else out[pos:]
        self._out, self._out_pos = out, pos + n
        return out[pos:pos + n]

    def _decoded(self) -> bytes:
        """The inflater's next output, up to :data:`OUT_BYTES`; b"" at the stream's end."""
        while not self._done:
            if self._d.eof:
                if not self._next_member():
                    self._done = True
                    break
            if not self._in:
                self._in = self._more()
            # With no input left this still runs: the inflater may hold decoded bytes that
            # an earlier call's limit kept back.
            exhausted = not self._in
            out = self._d.decompress(self._in, OUT_BYTES)
            self._in = self._d.unconsumed_tail
            if out:
                return bytes(out)
            if exhausted and not self._d.eof:
                self._done = True
                raise EOFError("Compressed file ended before the end-of-stream marker was "
                               "reached")
        return b""

    def read(self, n: int = -1, /) -> bytes:
        """``n`` decompressed bytes, fewer only at the end (all of them when ``n`` < 0)."""
        parts: list[bytes] = []
        got = 0
        while n < 0 or got < n:
            chunk = self.read1(n - got if n >= 0 else -1)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def readinto1(self, b: Any, /) -> int:
        """Fill the start of ``b`` as :meth:`read1` ``(len(b))`` would; the count."""
        data = self.read1(len(b))
        b[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """The compressed stream is its opener's to close."""
        self._done = True
