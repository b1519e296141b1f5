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
import os
import stat
import sys
from typing import IO


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
