"""Batch: many captures on local cores or on a Dask cluster, into one Parquet dataset.

Theory of operation:

1. :func:`discover` turns inputs (files, directories searched recursively, globs) into a
   sorted list of capture paths. Inside directories a file is taken when its first bytes
   say pcap/pcapng (after undoing gzip/bzip2/xz/zstd, like Wireshark's wiretap), or when its
   name says capture (``.pcap``, ``.pcapng``, ``.cap``... optionally compressed) so that a
   damaged capture is reported as failed instead of being skipped silently.
2. Each capture is one task. A worker (:func:`analyze_capture`) analyses it with the engine
   and writes its own rows of the ``flows``, ``anomalies`` and ``events`` tables to
   ``DIR/<table>/capture_id=<id>/part.parquet`` (Hive-style partitions, so one capture can
   be read alone), each written to a temporary name in ``DIR/.tmp`` and moved with
   :func:`os.replace` (atomic on POSIX), so a reader never sees half a file. It returns a
   small status row, never raises for a bad capture.
3. The parent appends each status row to ``DIR/_manifest.jsonl`` as soon as it arrives
   (one flushed, fsync'ed line per capture), and rewrites ``DIR/captures.parquet`` from the
   manifest at the end (also when interrupted). A rerun skips captures whose path, size and
   mtime match a manifest row (``force`` redoes them), so an interrupted batch resumes; a
   failure recorded as transient (the environment's: disk full, out of memory, a missing
   module, a lost worker; :func:`failure_kind`) is retried.
4. Executors: a local :class:`~concurrent.futures.ProcessPoolExecutor` (forkserver, so the
   parent's threads are never forked) with at most ``jobs`` tasks in flight; when a worker
   dies the pool breaks, and the captures that were in flight are rerun one by one in their
   own process, which names the culprit (its exit code is recorded) and saves the others.
   With ``scheduler`` the same task runs on a dask.distributed cluster (workers must see the
   same file system); Dask itself retries a task whose worker died, then reports
   ``KilledWorker`` (a transient failure). A cluster left without any worker fails the
   batch after ``worker_timeout_s`` instead of waiting forever.
5. Nothing outlives the batch: local workers exit when the batch process ends, however it
   ends (:func:`_exit_with_batch`), and an interrupted pool is stopped, not waited for.

This is a sink (like cli.py): it reads the clock for elapsed times. The tables are
frames.py's DataFrames (so a batch's flows table has exactly the dtypes of
``tcptrace_py.analyze(...).flows``, plus ``capture``); pandas, pyarrow and dask are imported
at use, never by the core.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import glob
import hashlib
import importlib
import json
import math
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
import time
import tokenize
import types
import uuid
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcptrace_py.capture.pcap import is_pcap
from tcptrace_py.capture.pcapng import is_pcapng
from tcptrace_py.capture.source import open_source
from tcptrace_py.diagnostics import CaptureError
from tcptrace_py.lazy_dataclass import dataclass, field
from tcptrace_py.options import MAX_SECONDS, Options

if TYPE_CHECKING:
    import pyarrow as pa

TABLES = ("flows", "anomalies", "events")
"""Per-capture tables, each under ``DIR/<name>/capture_id=<id>/part.parquet``."""
MANIFEST_NAME = "_manifest.jsonl"
CAPTURES_NAME = "captures.parquet"
TMP_DIR_NAME = ".tmp"
PART_NAME = "part.parquet"
LOCK_NAME = ".tcptrace-py.lock"
"""Held (``flock``) by the one batch writing a dataset directory; holds its pid."""
TMP_PREFIX = "tcptrace-py-"
"""Our temporary files in ``DIR/.tmp`` are ``tcptrace-py-<pid>-<random>.tmp``: the start-up
clean-up deletes only those (never another program's files in a ``.tmp`` it happens to
share), and only under the lock, when none can belong to a live run."""


class DatasetDirError(FileExistsError):
    """The output directory cannot be used: a foreign non-empty directory, or another batch
    holds its lock. One line; the CLI exits 2."""

STATUS_OK = "ok"
STATUS_FAILED = "failed"

FAILURE_TRANSIENT = "transient"
"""A failure of the environment, not of the capture (disk full, out of memory, a missing
module, a worker killed from outside, a Dask worker lost): a rerun retries it without
``--force``."""
FAILURE_PERMANENT = "permanent"
"""A failure of the capture itself (not a capture, damaged, a crash on its contents): a rerun
skips it until the file changes or ``--force``."""

CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE,
                           signal.SIGABRT})
"""A local worker killed by one of these crashed on the capture's contents (the same input
crashes it again): permanent. Any other death (SIGKILL from the OOM killer, SIGTERM from an
operator, an exit status) is the environment's: transient."""

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp", ".ntar", ".trace")
"""Names that say "capture": taken inside directories even when the bytes do not agree, so
the damage is reported (Wireshark's file-open dialog uses the same list)."""
COMPRESSION_SUFFIXES = ("", ".gz", ".bz2", ".xz", ".zst", ".zstd")

CAPTURE_ID_HEX_CHARS = 16
"""Length of the capture id (SHA-1 of the absolute path, hex): 64 bits, no collision in any
realistic archive, short enough for a directory name."""

BeforeCapture = Callable[[str], None]

FLUSH_FLOWS = 20_000
"""Connections buffered per capture before their rows are written (bounds worker memory:
a record is ~180 columns, so ~100 MB of Python objects at most, events included)."""

WORKER_PRELOAD = ("tcptrace_py.engine", "tcptrace_py.frames", "pyarrow.parquet")
"""Modules the forkserver imports once for all local workers."""


# --------------------------------------------------------------------------- discovery
def looks_like_capture(path: str | Path) -> bool:
    """True when the file's (decompressed) first bytes are a pcap or pcapng magic."""
    try:
        opened = open_source(str(path), str(path))
    except CaptureError:
        return False
    try:
        return is_pcap(opened.head) or is_pcapng(opened.head)
    finally:
        opened.close()


def _named_like_capture(name: str) -> bool:
    low = name.lower()
    return any(low.endswith(s + c) for s in CAPTURE_SUFFIXES for c in COMPRESSION_SUFFIXES)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob pattern as a regex over whole paths: ``*``, ``?`` and ``[...]`` stay inside one
    path component, ``**`` as a component matches zero or more directories (as
    ``glob(recursive=True)``)."""
    out: list[str] = []
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
            continue
        j = 0
        while j < len(part):
            c = part[j]
            if c == "*":
                out.append("[^/]*")
            elif c == "?":
                out.append("[^/]")
            elif c == "[" and (k := part.find("]", j + 2)) > 0:
                body = part[j + 1:k]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                j = k
            else:
                out.append(re.escape(c))
            j += 1
        if not last:
            out.append("/")
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _walk(top: str, warn: Callable[[str], None]) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` following directory symlinks, but never into a directory already seen
    (by device and inode): a ``self -> .`` link or two links pointing at each other cannot
    loop. Hidden directories are skipped; one that cannot be read is a warning."""
    seen: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        warn(f"{safe_name(exc.filename or top)}: cannot read ({exc.strerror or exc})")

    for root, dirs, files in os.walk(top, followlinks=True, onerror=onerror):
        try:
            st = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            dirs[:] = []
            continue
        seen.add(ident)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        yield root, dirs, files


def _expand(pattern: str, warn: Callable[[str], None]) -> list[str]:
    """Paths matching a glob pattern. Without ``**`` this is :func:`glob.glob`; with it, a
    walk from the pattern's fixed leading directories that cannot follow a symlink loop
    (``glob`` follows them: one ``self -> .`` link made it list a capture 41 times, two made
    it run forever)."""
    if "**" not in pattern:
        return sorted(glob.glob(pattern))
    parts = pattern.split("/")
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    absolute = pattern.startswith("/")
    top = "/".join(fixed) or ("/" if absolute else ".")
    regex = _glob_regex(os.path.normpath(pattern))
    found = []
    for root, dirs, files in _walk(top, warn):
        for name in dirs + files:
            if name.startswith("."):
                continue
            full = os.path.join(root, name)
            if regex.match(os.path.normpath(full) if absolute else os.path.relpath(full)):
                found.append(full)
    return sorted(found)


def discover(inputs: Iterable[str | Path],
             warn: Callable[[str], None] | None = None) -> list[str]:
    """Capture paths (absolute, sorted, unique) for files, directories and glob patterns.

    Explicit files are always taken (a broken one is then reported as failed). A name that
    matches nothing raises :class:`FileNotFoundError` (bad usage, not a failed capture).
    A file reached twice (symlinks, overlapping inputs) is taken once, under its own path
    when that was reached, else the first in sorted order; directory symlinks are followed
    but never into a loop; directories that cannot be read are passed to ``warn`` (default:
    ignored).
    """
    warn_ = warn if warn is not None else (lambda _msg: None)
    found: set[str] = set()
    for item in inputs:
        text = os.fspath(item)
        if os.path.exists(text):
            candidates = [text]
        elif glob.has_magic(text):
            candidates = _expand(text, warn_)
            if not candidates:
                raise FileNotFoundError(f"{text}: no file matches this pattern")
        else:
            raise FileNotFoundError(f"{text}: no such file or directory")
        for cand in candidates:
            if os.path.isdir(cand):
                for root, _dirs, files in _walk(cand, warn_):
                    for name in files:
                        full = os.path.join(root, name)
                        if os.path.isfile(full) and (_named_like_capture(name)
                                                     or looks_like_capture(full)):
                            found.add(os.path.abspath(full))
            else:
                found.add(os.path.abspath(cand))
    by_real: dict[str, str] = {}
    for path in sorted(found):
        real = os.path.realpath(path)
        kept = by_real.get(real)
        if kept is None or (path == real and kept != real):
            by_real[real] = path  # the file's own path wins over a link's
    return sorted(by_real.values())


def capture_id(path: str) -> str:
    """Stable partition key of a capture: hash of its absolute path."""
    digest = hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:CAPTURE_ID_HEX_CHARS]


# --------------------------------------------------------------------------- schemas
# The per-capture tables are frames.py's DataFrames (same columns, same dtypes) with a
# ``capture`` column in front, stored through Arrow; reading them back gives those dtypes.
CAPTURE_COLUMN_KINDS: dict[str, str] = {
    "path": "str", "capture_id": "str", "size_bytes": "int", "mtime_ns": "int",
    "frames": "int", "tcp_segments": "int", "connections": "int", "anomalies": "int",
    "events": "int", "warnings": "int", "first_warning": "str", "status": "category",
    "failure": "category", "error": "str", "elapsed_s": "float", "cpu_s": "float",
}
"""The captures table (frames.py kinds): one row per capture processed into the directory."""

_ARROW_ALIASES = {"int": "int64", "float": "float64", "str": "string", "category": "string"}


def captures_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(n, pa.type_for_alias(_ARROW_ALIASES[k]))
                      for n, k in CAPTURE_COLUMN_KINDS.items()])


def table_kinds(table: str, columns: Sequence[str] | None = None) -> dict[str, str]:
    """frames.py kinds of a table (``flows``, ``anomalies``, ``events``, ``captures``)."""
    from tcptrace_py import frames

    if table == "flows":
        cols = None if columns is None else [c for c in columns if c != "capture"]
        return {"capture": "str", **frames.flow_schema(cols)}
    if table == "captures":
        return dict(CAPTURE_COLUMN_KINDS)
    return {"capture": "str",
            **{"anomalies": frames.ANOMALY_SCHEMA, "events": frames.EVENT_SCHEMA}[table]}


def capture_frames(capture: str, results: Sequence[Any], capture_anomalies: Sequence[Any]
                   ) -> dict[str, Any]:
    """One capture's flows/anomalies/events DataFrames, each with the ``capture`` column."""
    from tcptrace_py import frames

    records = [{"capture": capture, **r.record} for r in results]
    flows = frames.flows_frame(records) if records else _with_capture(
        frames.empty_frame(frames.flow_schema()), capture)
    anomalies = _with_capture(frames.anomalies_frame(
        [a for r in results for a in r.anomalies] + list(capture_anomalies)), capture)
    events = _with_capture(frames.events_frame([e for r in results for e in r.events]),
                           capture)
    return {"flows": flows, "anomalies": anomalies, "events": events}


def _with_capture(df: Any, capture: str) -> Any:
    import pandas as pd

    df.insert(0, "capture", pd.Series([capture] * len(df), index=df.index, dtype="string"))
    return df


# --------------------------------------------------------------------------- worker
@dataclass(slots=True)
class CaptureTask:
    """What a worker needs for one capture (picklable: sent to processes and Dask)."""

    path: str
    """Absolute path of the capture."""
    out_dir: str
    """Absolute path of the dataset directory (shared with the parent)."""
    options: Options = field(default_factory=Options)
    """Engine options."""
    before_capture: BeforeCapture | None = None
    """Called in the worker before the capture is read (tracing, fault injection in tests)."""
    strict: bool = False
    """Damage after valid frames fails the capture instead of being a warning."""


def part_path(out_dir: str, table: str, cid: str) -> str:
    return os.path.join(out_dir, table, f"capture_id={cid}", PART_NAME)


def _write_atomic(table: pa.Table, final: str, tmp_dir: str) -> None:
    """Write to a unique temp name beside the dataset, then rename over ``final``."""
    import pyarrow.parquet as pq

    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = _tmp_path(tmp_dir)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _tmp_path(tmp_dir: str) -> str:
    return os.path.join(tmp_dir, f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}.tmp")


def safe_name(path: str) -> str:
    """A path as stored in the dataset (manifest, ``path`` and ``capture`` columns, error
    text): bytes that are not UTF-8 (which ``os`` decodes to lone surrogates) become
    ``\\xNN`` escapes, since Arrow and JSON consumers cannot store lone surrogates. The same
    for every name that is valid UTF-8."""
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return path.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return 0, 0
    return st.st_size, st.st_mtime_ns


def base_row(path: str) -> dict[str, Any]:
    size, mtime_ns = _stat(path)
    return {"path": safe_name(path), "capture_id": capture_id(path), "size_bytes": size,
            "mtime_ns": mtime_ns, "frames": 0, "tcp_segments": 0, "connections": 0,
            "anomalies": 0, "events": 0, "warnings": 0, "first_warning": None,
            "status": STATUS_FAILED, "failure": None,
            "error": None, "elapsed_s": 0.0, "cpu_s": 0.0}


def failure_kind(exc: BaseException) -> str:
    """:data:`FAILURE_TRANSIENT` when ``exc`` is the environment's fault, else permanent.

    The reader turns everything wrong with a capture's bytes into :class:`CaptureError`
    (permanent), except a system call that failed while opening or reading it (permission
    denied, I/O error: the CaptureError's cause is an OSError with an errno; damaged
    compressed data raises OSErrors without one). Any other OSError (ENOSPC or EDQUOT while
    writing partitions, a read-only or vanished output directory), MemoryError and
    ImportError (a module missing on a worker) are the machine's. Everything else (an
    exception of the analysis on this input) is the capture's. (A worker that gives no row
    at all is judged by :func:`_died_row`.)
    """
    if isinstance(exc, CaptureError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError) and cause.errno is not None:
            return FAILURE_TRANSIENT
        return FAILURE_PERMANENT
    if isinstance(exc, (OSError, MemoryError, ImportError)):
        return FAILURE_TRANSIENT
    return FAILURE_PERMANENT


def analyze_capture(task: CaptureTask) -> dict[str, Any]:
    """Analyse one capture, write its partitions, return its status row (never raises).

    Runs in a worker process (or a Dask worker). Any exception becomes ``status=failed``
    with a one-line reason and its :func:`failure_kind`: a batch outlives its worst capture.
    """
    start_s = time.perf_counter()
    start_cpu_s = time.process_time()
    row = base_row(task.path)
    cid = row["capture_id"]
    parts = _PartWriter(task.out_dir, cid)
    name = row["path"]
    engine: Any = None
    try:
        # Imported here, inside the try: a module missing on a (Dask) worker is a transient
        # failure of this row, not an exception that would lose the row's counters.
        from tcptrace_py.engine import Engine
        from tcptrace_py.gcpolicy import paused_while_computing

        engine = Engine(task.options)
        if task.before_capture is not None:
            task.before_capture(task.path)
        chunk: list[Any] = []
        # The collector is paused while the engine works, not while pandas builds frames.
        for result in paused_while_computing(
                engine.run(task.path, name=task.path, strict=task.strict)):
            chunk.append(result)
            if len(chunk) >= FLUSH_FLOWS:
                parts.write(capture_frames(name, chunk, []))
                chunk.clear()
        parts.write(capture_frames(name, chunk, engine.summary.anomalies))
        parts.commit()
    except CaptureError as exc:
        row["error"] = safe_name(str(exc))
        row["failure"] = failure_kind(exc)
    except Exception as exc:  # noqa: BLE001 - one bad capture must not stop the batch
        row["error"] = safe_name(f"{type(exc).__name__}: {exc}")
        row["failure"] = failure_kind(exc)
    else:
        row["status"] = STATUS_OK
    finally:
        parts.abort()
    if engine is not None:
        diag = engine.diag
        row.update(frames=diag.frames, tcp_segments=diag.tcp_segments,
                   connections=engine.summary.connections,
                   warnings=len(diag.warnings) + diag.warnings_dropped,
                   first_warning=safe_name(str(diag.warnings[0])) if diag.warnings else None)
    row.update(anomalies=parts.rows["anomalies"], events=parts.rows["events"],
               elapsed_s=round(time.perf_counter() - start_s, 6),
               cpu_s=round(time.process_time() - start_cpu_s, 6))
    return row


def _stable_types(table: pa.Table) -> pa.Table:
    """Arrow types that do not depend on a chunk's values, so chunks share one schema.

    pandas gives a categorical without categories a ``dictionary<null>`` and picks the
    narrowest index type; both would change from one chunk to the next.
    """
    import pyarrow as pa

    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_dictionary(t):
            value_type = pa.large_string() if pa.types.is_null(t.value_type) else t.value_type
            t = pa.dictionary(pa.int32(), value_type, t.ordered)
        fields.append(f.with_type(t))
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


class _PartWriter:
    """A capture's three partitions, streamed chunk by chunk into temporary files and renamed
    into place together at :meth:`commit` (memory bounded by FLUSH_FLOWS, not the capture)."""

    def __init__(self, out_dir: str, cid: str) -> None:
        self.out_dir = out_dir
        self.cid = cid
        self.tmp_dir = os.path.join(out_dir, TMP_DIR_NAME)
        self.writers: dict[str, Any] = {}
        self.tmp: dict[str, str] = {}
        self.rows = dict.fromkeys(TABLES, 0)

    def write(self, tables: dict[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for name in TABLES:
            table = _stable_types(pa.Table.from_pandas(tables[name], preserve_index=False))
            writer = self.writers.get(name)
            if writer is None:
                os.makedirs(self.tmp_dir, exist_ok=True)
                self.tmp[name] = _tmp_path(self.tmp_dir)
                writer = self.writers[name] = pq.ParquetWriter(self.tmp[name], table.schema)
            elif not table.num_rows:
                continue
            else:
                table = table.cast(writer.schema)
            writer.write_table(table)
            self.rows[name] += table.num_rows

    def commit(self) -> None:
        """Close every file, then rename each over its partition (os.replace is atomic)."""
        for writer in self.writers.values():
            writer.close()
        for name, tmp in self.tmp.items():
            final = part_path(self.out_dir, name, self.cid)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(tmp, final)
        self.tmp.clear()

    def abort(self) -> None:
        """Remove what was not committed (a failed or interrupted capture)."""
        for writer in self.writers.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001, S110 - already failing; cleanup only
                pass
        for tmp in self.tmp.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.writers.clear()
        self.tmp.clear()


# --------------------------------------------------------------------------- manifest
def read_manifest(out_dir: str) -> dict[str, dict[str, Any]]:
    """Latest status row per path; a torn last line (killed parent) is ignored."""
    rows: dict[str, dict[str, Any]] = {}
    try:
        with open(os.path.join(out_dir, MANIFEST_NAME), encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and "path" in row:
                    rows[row["path"]] = row
    except FileNotFoundError:
        pass
    return rows


class Manifest:
    """Append-only record of finished captures; one durable line per capture."""

    def __init__(self, out_dir: str) -> None:
        self.path = os.path.join(out_dir, MANIFEST_NAME)
        self.rows = read_manifest(out_dir)
        torn = False
        with contextlib.suppress(OSError), open(self.path, "rb") as f:
            if f.seek(0, os.SEEK_END):
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if torn:
            # A parent killed mid-write left half a line: end it, or the next row would be
            # glued to it and lost with it.
            self._f.write("\n")
            self._f.flush()

    def row(self, path: str) -> dict[str, Any] | None:
        """The latest row of a capture path (as found on disk, not yet made safe)."""
        return self.rows.get(safe_name(path))

    def is_done(self, path: str) -> bool:
        """Skipped by a rerun: recorded ``ok`` or failed for good, with the same size and
        mtime. A transient failure is not done (rows of older versions, without
        ``failure``, count as permanent, as they did then)."""
        row = self.row(path)
        if row is None or row.get("failure") == FAILURE_TRANSIENT:
            return False
        size, mtime_ns = _stat(path)
        return bool(row.get("size_bytes") == size and row.get("mtime_ns") == mtime_ns)

    def record(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row, sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.rows[row["path"]] = row

    def close(self) -> None:
        self._f.close()


def write_captures_table(out_dir: str, rows: Iterable[dict[str, Any]]) -> str:
    """Rewrite ``DIR/captures.parquet`` atomically from the manifest rows (sorted by path)."""
    tmp_dir = os.path.join(out_dir, TMP_DIR_NAME)
    os.makedirs(tmp_dir, exist_ok=True)
    final = os.path.join(out_dir, CAPTURES_NAME)
    ordered = sorted(rows, key=lambda r: str(r["path"]))
    import pyarrow as pa

    schema = captures_schema()
    table = pa.table({f.name: [r.get(f.name) for r in ordered] for f in schema}, schema=schema)
    _write_atomic(table, final, tmp_dir)
    return final


def _drop_partitions(out_dir: str, cid: str) -> None:
    """Remove a capture's partitions (it failed now: its old rows no longer describe it)."""
    for name in TABLES:
        p = part_path(out_dir, name, cid)
        if os.path.exists(p):
            os.unlink(p)
            try:
                os.rmdir(os.path.dirname(p))
            except OSError:
                pass


def _clean_tmp(out_dir: str) -> None:
    """Delete our temp files left by a killed run (their capture is not in the manifest).
    Called under the lock: no live run of ours owns one. Other files are left alone."""
    tmp_dir = os.path.join(out_dir, TMP_DIR_NAME)
    if os.path.isdir(tmp_dir):
        for name in os.listdir(tmp_dir):
            if name.startswith(TMP_PREFIX) and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(tmp_dir, name))


def _check_dataset_dir(out: str) -> None:
    """Refuse a directory that holds files but no dataset of ours (``-o .`` in a project):
    a batch writes and deletes in what it owns only."""
    try:
        entries = os.listdir(out)
    except FileNotFoundError:
        return
    ours = (MANIFEST_NAME, CAPTURES_NAME, LOCK_NAME)
    if entries and not any(name in entries for name in ours):
        raise DatasetDirError(f"{safe_name(out)}: not empty and not a tcptrace-py dataset "
                              f"(no {MANIFEST_NAME}); use a new or empty directory")


@contextlib.contextmanager
def _dataset_lock(out: str) -> Iterator[None]:
    """Hold ``DIR/.tcptrace-py.lock`` for the whole batch; a second batch on the same
    directory refuses at once (one line) instead of deleting the first one's files."""
    path = os.path.join(out, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise DatasetDirError(f"{safe_name(out)}: another batch (pid {holder}) is "
                                  "writing this dataset; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------- executors
def _died_row(path: str, reason: str, failure: str = FAILURE_TRANSIENT) -> dict[str, Any]:
    """The row of a capture whose worker gave no row: the worker or the executor failed
    (:func:`analyze_capture` itself never raises), so by default the failure is transient."""
    row = base_row(path)
    row["error"] = reason
    row["failure"] = failure
    return row


def _death_kind(exitcode: int | None) -> str:
    """A dead local worker: permanent when a crash signal killed it (see CRASH_SIGNALS)."""
    if exitcode is not None and exitcode < 0 and -exitcode in CRASH_SIGNALS:
        return FAILURE_PERMANENT
    return FAILURE_TRANSIENT


ORPHAN_POLL_S = 1.0
"""Where ``os.pidfd_open`` is missing (Linux before 5.3, other systems), how often a worker
checks that its batch process is still alive: an orphan lingers at most this long."""
POOL_STOP_WAIT_S = 5.0
"""How long an interrupted batch waits for a terminated worker before killing it."""
ORPHAN_EXIT_CODE = 70
"""Exit status of a worker that stopped because its batch process was gone."""
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _exit_with_batch(batch_pid: int) -> None:
    """Worker initializer: end this worker as soon as the batch process that started it is
    gone, however it died (SIGKILL included).

    Without it a killed batch leaves everything behind: its pool workers wait forever on
    the task queue (each holds the queue's write end itself, so no end of file comes), the
    forkserver lives while a process it forked holds its "alive" pipe, and multiprocessing's
    resource tracker while any of them holds its pipe. Two guards, so both start methods are
    covered: the kernel kills the worker when its parent dies (``PR_SET_PDEATHSIG``; the
    parent is the batch with ``fork``, the forkserver otherwise), and a daemon thread waits on
    a pidfd of the batch process itself and exits the worker when it becomes readable (the
    process ended). Once the workers are gone the forkserver and the tracker see end of file
    on their pipes and exit by themselves.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    threading.Thread(target=_watch_batch, args=(batch_pid,), daemon=True,
                     name="tcptrace-py-batch-watch").start()


def _watch_batch(batch_pid: int) -> None:
    """Return never; ``os._exit`` when process ``batch_pid`` has ended."""
    import select

    try:
        fd = os.pidfd_open(batch_pid)
    except ProcessLookupError:
        os._exit(ORPHAN_EXIT_CODE)  # already gone before we started
    except (AttributeError, OSError):
        while True:  # no pidfd: poll (a reused pid could only delay the exit)
            try:
                os.kill(batch_pid, 0)
            except ProcessLookupError:
                os._exit(ORPHAN_EXIT_CODE)
            except OSError:
                pass
            time.sleep(ORPHAN_POLL_S)
    select.select([fd], [], [])
    os._exit(ORPHAN_EXIT_CODE)


def _isolated_child(task: CaptureTask, conn: Any, batch_pid: int) -> None:
    _exit_with_batch(batch_pid)
    conn.send(analyze_capture(task))
    conn.close()


def _run_isolated(task: CaptureTask, ctx: Any) -> dict[str, Any]:
    """Rerun one suspect capture alone in a fresh process: a death is then its own."""
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_isolated_child, args=(task, child_conn, os.getpid()),
                       daemon=True)
    proc.start()
    child_conn.close()
    try:
        row: dict[str, Any] = parent_conn.recv()
    except EOFError:
        proc.join()
        return _died_row(task.path, f"worker process died (exit code {proc.exitcode})",
                         _death_kind(proc.exitcode))
    except BaseException:
        proc.kill()  # interrupted: the capture is not recorded, the next run redoes it
        proc.join()
        raise
    finally:
        parent_conn.close()
    proc.join()
    return row


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop an interrupted pool at once: cancel what has not started and end the workers
    (``shutdown`` alone would wait for the captures in flight, minutes for a big one).
    What they were writing stays in ``.tmp`` under a name of ours, deleted by the next run."""
    # Private, but stable from Python 3.8 to 3.13 (3.14 adds terminate_workers()).
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(POOL_STOP_WAIT_S)
            if proc.is_alive():
                proc.kill()


START_FORKSERVER = "forkserver"
START_FORK = "fork"
START_IN_PROCESS = "in-process"


def _is_main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = (test.left, test.comparators[0])
    return ({s.id for s in sides if isinstance(s, ast.Name)} == {"__name__"}
            and {s.value for s in sides if isinstance(s, ast.Constant)} == {"__main__"})


def _line_is_guarded(path: str, lineno: int) -> bool:
    """True when line ``lineno`` of the script at ``path`` lies inside an
    ``if __name__ == "__main__":`` block (unreadable source: False, the safe answer)."""
    try:
        with tokenize.open(path) as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_guard(node.test) and node.body:
            end = node.body[-1].end_lineno or node.body[-1].lineno
            if node.body[0].lineno <= lineno <= end:
                return True
    return False


def _main_reimport_hazard() -> str | None:
    """Why worker processes started by forkserver/spawn would break, or None.

    Such a worker first imports the parent's ``__main__`` again (as ``__mp_main__``, so that
    objects defined there can be unpickled; ``multiprocessing.spawn.prepare``). That runs the
    script's top level once more: without an ``if __name__ == "__main__":`` guard the worker
    calls ``analyze_many`` itself, multiprocessing refuses ("...before the current process
    has finished its bootstrapping phase") and every worker dies, and the script's own output
    repeats per worker. A script read from standard input (``python - < s.py``) has no file
    to import at all. Both are detected here: the main module's file is missing, or this
    call comes from its top-level code outside such a guard (the guard is found in the
    script's syntax tree, at the line of the call).
    """
    main = sys.modules.get("__main__")
    if main is None:
        return None
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    path = getattr(main, "__file__", None)
    if spec_name is not None:
        if spec_name == "__main__" or spec_name.endswith(".__main__"):
            return None  # workers skip a package's __main__ (spawn._fixup_main_from_name)
    elif path is None:
        return None  # interactive, notebook, python -c: workers import nothing of it
    elif not os.path.isfile(path):
        return f"the main module ({path}) has no file worker processes could import"
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            if path is None or _line_is_guarded(path, frame.f_lineno):
                return None
            return (f"called from the top level of {path} (line {frame.f_lineno}) outside an "
                    "'if __name__ == \"__main__\":' block")
        frame = frame.f_back
    return None


def _thread_count() -> int:
    """Threads of this process, native ones (pyarrow's pool) included where /proc says."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def local_start_method() -> str:
    """How :func:`run_local` starts workers: ``forkserver`` normally; when the main module
    cannot be imported again safely (see :func:`_main_reimport_hazard`), ``fork`` (the
    workers are copies of this process and import nothing) if this process has a single
    thread (forking a threaded process can copy a lock held by another thread), else the
    captures are analysed here, one at a time, with a warning."""
    hazard = _main_reimport_hazard()
    if hazard is None:
        return START_FORKSERVER
    if START_FORK in mp.get_all_start_methods() and _thread_count() == 1:
        return START_FORK
    warnings.warn(f"tcptrace-py: analysing captures one at a time in this process: worker "
                  f"processes cannot start because analyze_many was {hazard} and this process "
                  "runs threads (fork is unsafe); put the call under 'if __name__ == "
                  "\"__main__\":' to use every core", RuntimeWarning, stacklevel=2)
    return START_IN_PROCESS


def run_local(tasks: Sequence[CaptureTask], jobs: int) -> Iterator[dict[str, Any]]:
    """Yield status rows as captures finish on a local process pool of ``jobs`` workers.

    At most ``jobs`` tasks are in flight, so when a worker dies (the whole pool breaks:
    concurrent.futures cannot tell which task killed it) only those few are suspects; each
    is rerun alone to find the culprit and the pool is rebuilt for the rest. Workers start
    as :func:`local_start_method` says.
    """
    method = local_start_method()
    if method == START_IN_PROCESS:
        for t in tasks:
            yield analyze_capture(t)
        return
    ctx = mp.get_context(method)
    if method == START_FORKSERVER:
        # Workers fork from a server that has already imported the analysis stack, so a new
        # pool (after a worker died, or the next batch in this process) starts in milliseconds.
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))
    queue = list(reversed(tasks))
    while queue:
        suspects: list[CaptureTask] = []
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                 initializer=_exit_with_batch,
                                 initargs=(os.getpid(),)) as pool:
            try:
                broken = yield from _drain_pool(pool, jobs, queue, suspects)
            except BaseException:
                # Interrupted, here or in the consumer (GeneratorExit from close()).
                _stop_pool(pool)
                raise
        for t in sorted(suspects, key=lambda t: t.path):
            yield _run_isolated(t, ctx)
        if broken and not suspects and queue:
            # The pool broke with nothing in flight to blame: make progress one capture at a
            # time in its own process, so a pool that cannot start never loops forever.
            yield _run_isolated(queue.pop(), ctx)


def _drain_pool(pool: ProcessPoolExecutor, jobs: int, queue: list[CaptureTask],
                suspects: list[CaptureTask]) -> Generator[dict[str, Any], None, bool]:
    """Feed ``queue`` to ``pool`` (at most ``jobs`` in flight) and yield rows until the
    queue is empty or the pool breaks; the captures in flight at the break are appended to
    ``suspects``. Returns whether it broke."""
    inflight: dict[Future[dict[str, Any]], CaptureTask] = {}
    broken = False
    while (queue or inflight) and not broken:
        while queue and len(inflight) < jobs:
            t = queue.pop()
            try:
                inflight[pool.submit(analyze_capture, t)] = t
            except BrokenProcessPool:
                # A worker died after the last wait(): this task never started, so it
                # goes back to the queue for the next pool, not among the suspects.
                queue.append(t)
                broken = True
                break
        if broken:
            break
        done, _ = wait(inflight, return_when=FIRST_COMPLETED)
        for fut in done:
            t = inflight.pop(fut)
            try:
                yield fut.result()
            except BrokenProcessPool:
                broken = True
                suspects.append(t)
            except Exception as exc:  # noqa: BLE001
                yield _died_row(t.path, f"{type(exc).__name__}: {exc}")
    if broken:
        # Futures that finished before the break keep their results; the rest are
        # suspects (the pool fails every unfinished future at once).
        wait(inflight)
        for fut, t in inflight.items():
            if fut.exception() is None:
                yield fut.result()
            else:
                suspects.append(t)
    return broken


DASK_WORKER_TIMEOUT_S = 120.0
"""How long a Dask batch waits while its cluster has no worker at all before it fails
(``--worker-timeout``). Long enough for a Nanny to restart a dead worker (seconds) or a
cloud autoscaler to bring a node (one to two minutes); without a bound, a cluster whose
workers all died left the batch waiting forever. Raise it for batch-queue clusters
(dask-jobqueue) whose workers wait in a queue."""
DASK_POLL_S = 0.1
"""Wait between looks for finished captures (as ``distributed.as_completed`` itself
polls)."""
DASK_WORKER_CHECK_S = 1.0
"""How often the scheduler is asked how many workers it has while nothing finishes."""


class ClusterLostError(RuntimeError):
    """The Dask cluster had no worker for longer than the timeout; the captures not yet
    analysed are not recorded (a rerun does them). One line; the CLI exits 2."""


def run_dask(tasks: Sequence[CaptureTask], scheduler: Any,
             worker_timeout_s: float = DASK_WORKER_TIMEOUT_S) -> Iterator[dict[str, Any]]:
    """Yield status rows as captures finish on a dask.distributed cluster.

    ``scheduler`` is an address (``tcp://host:8786``) or an existing ``Client``/cluster.
    Raises :class:`ClusterLostError` when the cluster has had no worker for
    ``worker_timeout_s`` while captures were waiting (Dask itself would wait forever).
    """
    # Typed as Any: distributed ships no type hints (mypy --strict would flag every call).
    distributed: Any = importlib.import_module("distributed")
    own = not isinstance(scheduler, distributed.Client)
    client = distributed.Client(scheduler) if own else scheduler
    futures: dict[Any, CaptureTask] = {}
    try:
        futures = {client.submit(analyze_capture, t, pure=False,
                                 key=f"tcptrace-py-{capture_id(t.path)}-{uuid.uuid4().hex[:8]}"):
                   t for t in tasks}
        # with_results: the results are gathered in the client's event loop, not here. A
        # finished capture whose worker died before its row was fetched is recomputed, and
        # fut.result() would block for that with no worker left, out of the watch below.
        pending = distributed.as_completed(futures, with_results=True, raise_errors=False)
        no_worker_since: float | None = None
        next_check = time.monotonic() + DASK_WORKER_CHECK_S
        while not pending.is_empty():
            if pending.has_ready():
                for fut, result in pending.next_batch(block=False):
                    t = futures.pop(fut)
                    if fut.status == "finished":
                        yield result
                    else:  # KilledWorker and friends: (type, exception, traceback)
                        exc = result[1] if isinstance(result, tuple) else result
                        yield _died_row(t.path, f"{type(exc).__name__}: {exc}")
                    fut.release()
                no_worker_since = None
                continue
            now = time.monotonic()
            if now >= next_check:
                next_check = now + DASK_WORKER_CHECK_S
                if _dask_workers(client):
                    no_worker_since = None
                elif no_worker_since is None:
                    no_worker_since = now
                elif now - no_worker_since >= worker_timeout_s:
                    left = len(futures)
                    raise ClusterLostError(
                        f"no Dask worker on {_dask_address(client)} for "
                        f"{worker_timeout_s:g} s; {left} capture{'s' if left != 1 else ''} "
                        "not analysed (rerun to resume; --worker-timeout waits longer)")
            time.sleep(DASK_POLL_S)
    finally:
        if futures:  # interrupted or failed: leave nothing of ours queued on the cluster
            with contextlib.suppress(Exception):
                client.cancel(list(futures))
        if own:
            client.close()


def _dask_workers(client: Any) -> int:
    """Workers the scheduler knows (0 when it cannot be asked)."""
    try:
        return len(client.nthreads())
    except Exception:  # noqa: BLE001 - a scheduler that does not answer has no workers for us
        return 0


def _dask_address(client: Any) -> str:
    return str(getattr(client, "scheduler", None) and client.scheduler.address or "the cluster")


# --------------------------------------------------------------------------- the batch
class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""


def require_extra(module: str, extra: str) -> None:
    """Raise MissingExtraError when ``module`` cannot be imported."""
    import importlib.util

    try:
        # Found, not imported: importing pyarrow starts threads (jemalloc's), and a process
        # with threads cannot fork its workers (local_start_method). A meta-path finder
        # that hides the module raises ImportError from find_spec itself.
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        raise MissingExtraError(f"needs the {module} package: pip install "
                                f"'tcptrace-py[{extra}]'")



@dataclass(slots=True)
class BatchSummary:
    """What a batch run did."""

    out_dir: str
    captures: list[dict[str, Any]]
    """Status rows of every selected capture (analysed now or skipped as done)."""
    analysed: list[str]
    """Paths analysed in this run."""
    skipped: list[str]
    """Paths skipped because the manifest shows them done (same path, size, mtime)."""

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.captures if r["status"] != STATUS_OK]


def run_batch(inputs: Iterable[str | Path], out_dir: str | Path, *, jobs: int | None = None,
              scheduler: Any = None, force: bool = False, options: Options | None = None,
              strict: bool = False,
              on_start: Callable[[int, int], None] | None = None,
              on_done: Callable[[dict[str, Any]], None] | None = None,
              before_capture: BeforeCapture | None = None,
              on_warning: Callable[[str], None] | None = None,
              worker_timeout_s: float = DASK_WORKER_TIMEOUT_S) -> BatchSummary:
    """Analyse every capture found in ``inputs`` into the dataset at ``out_dir``.

    ``on_start(todo, skipped)`` and ``on_done(row)`` let a front end show progress;
    ``on_warning(message)`` hears of input directories that cannot be read.
    Raises FileNotFoundError/NotADirectoryError for bad inputs, :class:`DatasetDirError`
    for an output directory that is foreign or in use (usage errors), and
    :class:`MissingExtraError` when a package the run needs is not installed (before the
    dataset is touched: otherwise every capture would be recorded as failed for good).
    With ``scheduler``, :class:`ClusterLostError` when the cluster stays without any worker
    for ``worker_timeout_s`` (what was done is recorded; a rerun resumes).
    """
    if not (math.isfinite(worker_timeout_s) and 0 < worker_timeout_s <= MAX_SECONDS):
        raise ValueError(f"worker_timeout_s must be a number of seconds above 0 and at most "
                         f"{MAX_SECONDS:g}, not {worker_timeout_s!r}")
    require_extra("pyarrow", "parquet")
    if scheduler is not None:
        require_extra("distributed", "dask")
    paths = discover(inputs, on_warning)
    out = os.path.abspath(out_dir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"{out}: output exists and is not a directory")
    _check_dataset_dir(out)
    os.makedirs(out, exist_ok=True)
    with _dataset_lock(out):
        return _run_locked(paths, out, jobs, scheduler, force, options, strict, on_start,
                           on_done, before_capture, worker_timeout_s)


def _run_locked(paths: list[str], out: str, jobs: int | None, scheduler: Any, force: bool,
                options: Options | None, strict: bool,
                on_start: Callable[[int, int], None] | None,
                on_done: Callable[[dict[str, Any]], None] | None,
                before_capture: BeforeCapture | None,
                worker_timeout_s: float) -> BatchSummary:
    _clean_tmp(out)
    opts = options or Options()
    manifest = Manifest(out)
    todo = [p for p in paths if force or not manifest.is_done(p)]
    todo_set = set(todo)
    skipped = [p for p in paths if p not in todo_set]
    if on_start is not None:
        on_start(len(todo), len(skipped))
    tasks = [CaptureTask(p, out, opts, before_capture, strict) for p in todo]
    rows: Iterator[dict[str, Any]] = iter(())
    try:
        if tasks:
            rows = (run_dask(tasks, scheduler, worker_timeout_s) if scheduler is not None
                    else run_local(tasks, max(1, min(jobs or os.cpu_count() or 1, len(tasks)))))
            for row in rows:
                if row["status"] != STATUS_OK:
                    _drop_partitions(out, row["capture_id"])
                manifest.record(row)
                if on_done is not None:
                    on_done(row)
    finally:
        # Interrupted (Ctrl-C, SIGTERM through the CLI, an exception in on_done): stop the
        # executor now (its workers are killed, not waited for) rather than when the
        # generator is garbage-collected, then record what was done.
        close = getattr(rows, "close", None)
        if close is not None:
            close()
        manifest.close()
        # From the file, not memory: an interruption (a signal raises between any two
        # bytecodes) can fall inside record(), after the line was written, before ``rows``
        # learnt it.
        manifest.rows = read_manifest(out)
        write_captures_table(out, manifest.rows.values())
    selected = [manifest.row(p) for p in paths]
    return BatchSummary(out, [r for r in selected if r is not None], todo, skipped)


# --------------------------------------------------------------------------- reading back
@dataclass
class BatchResult:
    """The four tables of a batch: pandas DataFrames, or dask DataFrames (``dask=True``)."""

    flows: Any
    anomalies: Any
    events: Any
    captures: Any
    out_dir: str
    summary: BatchSummary | None = None


def read_table(out_dir: str | Path, table: str, captures: Sequence[str] | None = None) -> Any:
    """One table of a batch directory as a typed pandas DataFrame (frames.py dtypes).

    Only captures whose latest manifest status is ``ok`` are read (optionally only
    ``captures``), so partitions of a capture that has since failed never leak in.
    """
    import pandas as pd

    from tcptrace_py import frames

    out = os.path.abspath(out_dir)
    if table == "captures":
        df = pd.read_parquet(os.path.join(out, CAPTURES_NAME))
        for name in CAPTURE_COLUMN_KINDS:  # a dataset of an older version (no ``failure``)
            if name not in df.columns:
                df[name] = None
        return frames.coerce(df[list(CAPTURE_COLUMN_KINDS)], CAPTURE_COLUMN_KINDS)
    parts = [pd.read_parquet(f) for f in _part_files(out, table, captures)]
    if not parts:
        return _empty(table)
    df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    # Re-coerce: categoricals of different captures may have met different extra values.
    return frames.coerce(df, table_kinds(table, list(df.columns)))


def _empty(table: str) -> Any:
    from tcptrace_py import frames

    return frames.empty_frame(table_kinds(table))


def _part_files(out: str, table: str, captures: Sequence[str] | None) -> list[str]:
    rows = read_manifest(out)
    wanted = set(rows) if captures is None else {os.path.abspath(c) for c in captures}
    files = []
    for path in sorted(wanted):
        row = rows.get(path)
        if row is None or row.get("status") != STATUS_OK:
            continue
        f = part_path(out, table, row["capture_id"])
        if os.path.exists(f):
            files.append(f)
    return files


def _read_dask(out: str, table: str) -> Any:
    """A dask DataFrame with one lazily read partition per capture."""
    dd: Any = importlib.import_module("dask.dataframe")
    delayed: Any = importlib.import_module("dask").delayed

    if table == "captures":
        return dd.from_pandas(read_table(out, "captures"), npartitions=1)
    files = _part_files(out, table, None)
    meta = _empty(table)
    if not files:
        return dd.from_pandas(meta, npartitions=1)
    parts = [delayed(_read_one)(f, table, list(meta.columns)) for f in files]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _read_one(file: str, table: str, columns: list[str]) -> Any:
    import pandas as pd

    from tcptrace_py import frames

    df = pd.read_parquet(file)
    return frames.coerce(df, table_kinds(table, list(df.columns)))[columns]


class BatchFailedError(RuntimeError):
    """Every capture of an :func:`analyze_many` call failed: empty frames would look like
    captures without connections. ``summary`` holds the status rows (``summary.failed``)."""

    def __init__(self, message: str, summary: BatchSummary) -> None:
        super().__init__(message)
        self.summary = summary


FAILURES_SHOWN = 5
"""Failed captures named in an analyze_many error or warning; the rest are counted (the
``captures`` frame has every reason)."""


def _failure_lines(failed: Sequence[dict[str, Any]]) -> str:
    lines = [f"  {r['path']}: {r['error']}" for r in failed[:FAILURES_SHOWN]]
    if len(failed) > FAILURES_SHOWN:
        lines.append(f"  ... and {len(failed) - FAILURES_SHOWN} more")
    return "\n".join(lines)


def _raise_or_warn_failures(summary: BatchSummary, tmp: str | None) -> None:
    """All captures failed: raise :class:`BatchFailedError`; some: a RuntimeWarning naming
    them (a DataFrame silently missing captures is the error people never see)."""
    import shutil

    failed = summary.failed
    if not failed:
        return
    total = len(summary.captures)
    if len(failed) == total:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise BatchFailedError(f"all {total} captures failed:\n{_failure_lines(failed)}",
                               summary)
    warnings.warn(f"{len(failed)} of {total} captures failed (their rows are missing; "
                  f"see result.captures):\n{_failure_lines(failed)}", RuntimeWarning,
                  stacklevel=3)


def analyze_many(paths: Iterable[str | Path] | str | Path, jobs: int | None = None,
                 scheduler: Any = None, dask: bool = False, *, out_dir: str | Path | None = None,
                 force: bool = False, worker_timeout_s: float = DASK_WORKER_TIMEOUT_S,
                 **options: Any) -> BatchResult:
    """Analyse many captures in parallel; return flows/anomalies/events/captures DataFrames.

    ``out_dir`` keeps the Parquet dataset (and makes reruns incremental); without it a
    temporary directory is used and removed when the result is garbage-collected. Extra
    keyword arguments are :class:`~tcptrace_py.options.Options` fields.

    Raises :class:`BatchFailedError` when every capture failed; warns (RuntimeWarning, with
    the failed paths and reasons) when some did; :class:`ClusterLostError` when the Dask
    cluster stays without workers for ``worker_timeout_s``. Works from a script without an
    ``if __name__ == "__main__":`` guard and from ``python - < script.py``
    (:func:`local_start_method`).
    """
    import shutil
    import tempfile
    import weakref

    if isinstance(paths, (str, Path)):
        paths = [paths]
    tmp: str | None = None
    if out_dir is None:
        tmp = tempfile.mkdtemp(prefix="tcptrace-py-batch-")
        out_dir = tmp
    try:
        summary = run_batch(paths, out_dir, jobs=jobs, scheduler=scheduler, force=force,
                            options=Options(**options), worker_timeout_s=worker_timeout_s)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    _raise_or_warn_failures(summary, tmp)
    out = summary.out_dir
    if dask:
        result = BatchResult(_read_dask(out, "flows"), _read_dask(out, "anomalies"),
                             _read_dask(out, "events"), _read_dask(out, "captures"), out, summary)
        if tmp is not None:
            weakref.finalize(result, shutil.rmtree, tmp, True)
        return result
    result = BatchResult(read_table(out, "flows"), read_table(out, "anomalies"),
                         read_table(out, "events"), read_table(out, "captures"), out, summary)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
