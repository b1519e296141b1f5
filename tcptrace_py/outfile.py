"""Output files written whole or not at all (the CLI's ``-o``).

Why: a command that fails (unreadable input, disk full, Ctrl-C before anything was read)
must not destroy the results of an earlier run, and a reader must never see half a file.
So results go to a temporary file beside the target (same directory, hence same file system)
that replaces the target with ``os.replace`` only once everything was written and flushed.
The temporary file is created before the input is read: a missing or unwritable directory
is reported at once, naming the output. A target that exists and is not a regular file
(``/dev/null``, ``/dev/full``, a FIFO, ``/dev/stdout``) is written in place: it cannot be
replaced, and a reader of a pipe wants the stream.

Every failure of the output is an :class:`OutputError`, one line naming the output (never
the input), which the CLI turns into exit status 2.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
from typing import IO, Any

LINE_BATCH_BYTES = 1 << 20
"""How many bytes of JSON lines :class:`LineBatch` gathers before it writes them."""

WRITEV_PARTS = 1024
"""Parts one ``os.writev`` call takes (POSIX's IOV_MAX is at least 16; Linux's is 1024)."""


class OutputError(Exception):
    """Writing the results failed; ``str()`` is one line naming the output."""


def describe(exc: OSError) -> str:
    """``strerror`` of an OSError (no errno prefix, no file name), else its text."""
    return exc.strerror or str(exc)


class OutputFile:
    """Where a command's results go: standard output (``target`` None or ``-``), or a file.

    ``open()`` first (before reading input); write to :attr:`stream` (text) or to
    :attr:`path` (binary writers such as Parquet); then :meth:`commit` on success or
    :meth:`discard` on failure.
    """

    def __init__(self, target: str | None, *, binary: bool = False) -> None:
        self.target = None if target in (None, "-") else target
        self.binary = binary
        self.name = self.target if self.target is not None else "standard output"
        """How errors name the output."""
        self._tmp: str | None = None
        self._stream: IO[str] | None = None

    def open(self) -> None:
        """Create the temporary file (or open a device/FIFO, or check stdout)."""
        if self.target is None:
            if self.binary:
                raise OutputError("parquet needs -o FILE")
            if sys.stdout is None:
                raise OutputError("standard output is closed")
            self._stream = sys.stdout
            return
        target = self.target
        try:
            st = os.stat(target)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise OutputError(f"{target}: cannot write ({describe(exc)})") from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{target}: is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            # A device or FIFO: written in place (cannot be replaced by a rename).
            if self.binary:
                self._tmp = None
                return
            try:
                self._stream = open(target, "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as exc:
                raise OutputError(f"{target}: cannot write ({describe(exc)})") from None
            return
        import tempfile  # here: standard output and devices never need it (start-up)

        directory = os.path.dirname(os.path.abspath(target))
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.",
                                       suffix=".tmp", dir=directory)
        except OSError as exc:
            raise OutputError(f"{target}: cannot write ({describe(exc)})") from None
        self._tmp = tmp
        # mkstemp makes the file 0600; give the result the mode the target has, or the one
        # open() would have given a new file.
        if st is not None:
            mode = stat.S_IMODE(st.st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)
        if self.binary:
            os.close(fd)
            return
        self._stream = os.fdopen(fd, "w", encoding="utf-8", newline="")

    @property
    def stream(self) -> IO[str]:
        """The text stream to write to."""
        assert self._stream is not None, "open() first; binary outputs have a path"
        return self._stream

    @property
    def path(self) -> str:
        """The file a binary writer writes (the temporary one, or the device itself)."""
        assert self.target is not None
        return self._tmp if self._tmp is not None else self.target

    def error(self, exc: OSError) -> OutputError:
        """An OSError of writing, as the one-line OutputError naming the output."""
        return OutputError(f"{self.name}: {describe(exc)}")

    def commit(self) -> None:
        """Flush and close, then put the file in place. Standard output is only flushed."""
        stream = self._stream
        try:
            if stream is not None:
                stream.flush()
                if stream is not sys.stdout:
                    self._stream = None
                    stream.close()
            if self._tmp is not None:
                assert self.target is not None
                os.replace(self._tmp, self.target)
                self._tmp = None
        except OSError as exc:
            self.discard()
            raise self.error(exc) from None

    def discard(self) -> None:
        """Close and delete the temporary file (the target keeps its old content)."""
        stream = self._stream
        self._stream = None
        if stream is not None and stream is not sys.stdout:
            with contextlib.suppress(OSError):
                stream.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None


def write_all(fd: int, parts: list[Any]) -> None:
    """Write ``parts`` (bytes-like) to the file descriptor ``fd`` in order, whole: with
    ``os.writev``, no part copied here (where there is none, each call's parts joined);
    a part written in part (a signal, a short write) goes on from where it stopped."""
    writev = getattr(os, "writev", None)
    if writev is None:  # no writev here (Windows): one joined write at a time
        def writev(fd: int, chunk: list[Any]) -> int:
            return os.write(fd, b"".join(chunk))
    i = 0
    while i < len(parts):
        n = writev(fd, parts[i:i + WRITEV_PARTS])
        while n:
            size = len(parts[i])
            if n >= size:
                n -= size
                i += 1
            else:
                parts[i] = memoryview(parts[i])[n:]
                n = 0
        while i < len(parts) and not len(parts[i]):
            i += 1


class LineBatch:
    """JSON lines gathered and written :data:`LINE_BATCH_BYTES` at a time (``write``;
    ``flush`` writes what is gathered).

    Why: a record's line is ~5 KB, so an 8 KiB buffered writer made one ``write`` system
    call for nearly every record: 25 k calls for the 132 MB of 2m.pcap's lines, 131 ms of
    CPU into a file and 26 ms into /dev/null, against 42 and 9 ms in 1 MiB writes. Where
    the stream has a file descriptor the gathered lines go out with ``os.writev`` (after
    the stream's own buffer, to keep the order), not copied once more; elsewhere (a test's
    captured output) joined into one write. For live input the command line writes each
    line at once instead (a reader waits for it)."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw = raw
        try:
            self.fd: int | None = raw.fileno()
        except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation included
            self.fd = None
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, line: bytes) -> None:
        self.parts.append(line)
        self.size += len(line)
        if self.size >= LINE_BATCH_BYTES or len(self.parts) >= WRITEV_PARTS:
            self.flush()

    def flush(self) -> None:
        parts = self.parts
        if not parts:
            return
        self.parts = []
        self.size = 0
        if self.fd is None:
            self.raw.write(b"".join(parts))
        else:
            self.raw.flush()
            write_all(self.fd, parts)
