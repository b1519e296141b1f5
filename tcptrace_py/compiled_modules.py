"""Which copy of the engine's Python modules loads: the Cython-compiled one or the source.

Why this exists: besides the hand-written twin of the per-packet path (``_engine.pyx``), the
build compiles the reference modules of the per-segment and per-connection path
(``connection.py``, ``analysis/sequence.py``, the detectors...) with Cython *unchanged*, as
mypy and black ship mypyc-compiled copies of their own Python source: the same code, about
15 % fewer instructions on a full analysis (``docs/benchmarks.md``). Python's import system prefers
such an extension module over the ``.py`` beside it, which would be wrong twice:

1. ``TCPTRACE_PY_PURE=1`` promises the pure-Python reference from end to end;
2. a source edited after the build would be shadowed by its stale compiled copy, so a fix
   in the reference would silently not run.

:class:`SourceWhenStale`, installed by the package's ``__init__`` before any engine module
loads, sends those imports to the ``.py`` source in both cases. The build records each
compiled source's length and CRC-32 beside the extensions (``_compiled_sources.txt``,
written by ``setup.py``), so staleness is a content check, not a guess from file times
(``zlib`` rather than ``hashlib``: this runs at every start, and it guards against edits,
not attacks). The record also holds the source's modification time when the source was
older than the build by more than two seconds (more than any file system's time
granularity): a source whose size and time are still those is the one compiled, known
from a ``stat`` without reading and checksumming it (the 28 sources are ~400 KB: 1.6 M
of the ~275 M instructions of a start-up); any other time takes the content check.
"""

from __future__ import annotations

import os
import sys
import zlib
from importlib.machinery import ModuleSpec, SourceFileLoader

# Imported by the package itself, before anything else: no typing, pathlib or re here (see
# tcptrace_py/__init__.py); type checkers see the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

PURE_ENV = "TCPTRACE_PY_PURE"
"""Environment variable that forces the pure-Python reference engine."""

forced_pure = os.environ.get(PURE_ENV, "") not in ("", "0")
"""True when the user asked for the reference engine."""

MODULES = (
    "tcptrace_py.analysis.direction", "tcptrace_py.analysis.rangeset",
    "tcptrace_py.analysis.rtt", "tcptrace_py.analysis.sequence", "tcptrace_py.compat",
    "tcptrace_py.connection", "tcptrace_py.detectors", "tcptrace_py.detectors.base",
    "tcptrace_py.detectors.capture", "tcptrace_py.detectors.close",
    "tcptrace_py.detectors.connect", "tcptrace_py.detectors.giveup",
    "tcptrace_py.detectors.handshake", "tcptrace_py.detectors.icmp",
    "tcptrace_py.detectors.protocol", "tcptrace_py.detectors.resets",
    "tcptrace_py.detectors.retransmission", "tcptrace_py.detectors.scans",
    "tcptrace_py.detectors.window", "tcptrace_py.duplicates", "tcptrace_py.encoded",
    "tcptrace_py.engine", "tcptrace_py.facts", "tcptrace_py.flowtable", "tcptrace_py.fsm",
    "tcptrace_py.giveup", "tcptrace_py.parallel", "tcptrace_py.report",
)
"""The modules ``setup.py`` compiles unchanged: the per-segment path (connection, sequence,
compat, fsm, flowtable...), the per-connection detectors, the record builder, the
streamed lines (``encoded``: one result per connection) and the ``--jobs`` merge (a few
generator steps per connection in the calling process). Not the readers and the decoder
(``_engine.pyx`` twins them by hand), nor anything that runs once."""

MANIFEST = "_compiled_sources.txt"
"""File beside the package's extensions, one line per compiled module: ``name digest`` or
``name digest mtime_ns``."""

PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))


def source_path(name: str) -> str:
    """The ``.py`` file of module ``name`` (a package's ``__init__.py``)."""
    rel = os.path.join(PACKAGE_DIR, *name.split(".")[1:])
    package = os.path.join(rel, "__init__.py")
    return package if os.path.exists(package) else rel + ".py"


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def digest(data: bytes) -> str:
    """Length and CRC-32 of a source file's bytes, as ``setup.py`` records them."""
    return f"{len(data)}:{zlib.crc32(data):08x}"


def _recorded() -> dict[str, tuple[str, int | None]]:
    """Module name -> (digest, the source's modification time or None)."""
    try:
        with open(os.path.join(PACKAGE_DIR, MANIFEST), encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, ValueError):
        return {}  # never built, or built before the manifest existed: use the sources
    out: dict[str, tuple[str, int | None]] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not rest:
            continue
        digest_text, _, mtime = rest.partition(" ")
        out[name] = (digest_text, int(mtime) if mtime.isdigit() else None)
    return out


def _unchanged(src: str, recorded: tuple[str, int | None]) -> bool:
    """Whether ``src`` is the source the build compiled (see the module docstring)."""
    want, mtime_ns = recorded
    if mtime_ns is not None:
        try:
            st = os.stat(src)
        except OSError:
            return False
        if st.st_mtime_ns == mtime_ns and str(st.st_size) == want.partition(":")[0]:
            return True
    return want == digest(_read_bytes(src))


class SourceWhenStale:
    """Meta-path finder: the ``.py`` source of a compiled module when the reference engine
    was asked for or the compiled copy is stale; otherwise nothing (the normal machinery
    then loads the extension). ``stale`` lists the modules it redirected for staleness."""

    def __init__(self) -> None:
        self.recorded = _recorded()
        self.stale: list[str] = []

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in MODULES:
            return None
        src = source_path(fullname)
        if not forced_pure:
            recorded = self.recorded.get(fullname)
            if recorded is not None:
                if _unchanged(src, recorded):
                    return None
                self.stale.append(fullname)
            # Without a record the build compiled nothing (or predates the record): the
            # source is the only copy known to be current.
        spec = ModuleSpec(fullname, SourceFileLoader(fullname, src), origin=src,
                          is_package=os.path.basename(src) == "__init__.py")
        spec.has_location = True
        if spec.submodule_search_locations is not None:
            spec.submodule_search_locations.append(os.path.dirname(src))
        return spec


def install() -> SourceWhenStale:
    """Put the finder first on ``sys.meta_path`` (once per process) and return it."""
    for finder in sys.meta_path:
        if isinstance(finder, SourceWhenStale):
            return finder
    finder = SourceWhenStale()
    sys.meta_path.insert(0, finder)
    return finder

