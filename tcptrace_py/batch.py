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
   mtime match a manifest row (``force`` redoes them), so an interrupted batch resumes.
4. Executors: a local :class:`~concurrent.futures.ProcessPoolExecutor` (forkserver, so the
   parent's threads are never forked) with at most ``jobs`` tasks in flight; when a worker
   dies the pool breaks, and the captures that were in flight are rerun one by one in their
   own process, which names the culprit (its exit code is recorded) and saves the others.
   With ``scheduler`` the same task runs on a dask.distributed cluster (workers must see the
   same file system); Dask itself retries a task whose worker died, then reports
   ``KilledWorker``, which is recorded like any other failure.

This is a sink (like cli.py): it reads the clock for elapsed times. It imports pyarrow at
use, and pandas/dask only in :func:`analyze_many`, so worker processes stay light.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import json
import multiprocessing as mp
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcptrace_py.capture.pcap import is_pcap
from tcptrace_py.capture.pcapng import is_pcapng
from tcptrace_py.capture.source import open_source
from tcptrace_py.diagnostics import CaptureError
from tcptrace_py.options import Options
from tcptrace_py.report import LIFECYCLE_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

TABLES = ("flows", "anomalies", "events")
"""Per-capture tables, each under ``DIR/<name>/capture_id=<id>/part.parquet``."""
MANIFEST_NAME = "_manifest.jsonl"
CAPTURES_NAME = "captures.parquet"
TMP_DIR_NAME = ".tmp"
PART_NAME = "part.parquet"

STATUS_OK = "ok"
STATUS_FAILED = "failed"

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp", ".ntar", ".trace")
"""Names that say "capture": taken inside directories even when the bytes do not agree, so
the damage is reported (Wireshark's file-open dialog uses the same list)."""
COMPRESSION_SUFFIXES = ("", ".gz", ".bz2", ".xz", ".zst", ".zstd")

CAPTURE_ID_HEX_CHARS = 16
"""Length of the capture id (SHA-1 of the absolute path, hex): 64 bits, no collision in any
realistic archive, short enough for a directory name."""

BeforeCapture = Callable[[str], None]


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


def discover(inputs: Iterable[str | Path]) -> list[str]:
    """Capture paths (absolute, sorted, unique) for files, directories and glob patterns.

    Explicit files are always taken (a broken one is then reported as failed). A name that
    matches nothing raises :class:`FileNotFoundError` (bad usage, not a failed capture).
    """
    found: set[str] = set()
    for item in inputs:
        text = os.fspath(item)
        if os.path.exists(text):
            candidates = [text]
        elif glob.has_magic(text):
            candidates = sorted(glob.glob(text, recursive=True))
            if not candidates:
                raise FileNotFoundError(f"{text}: no file matches this pattern")
        else:
            raise FileNotFoundError(f"{text}: no such file or directory")
        for cand in candidates:
            if os.path.isdir(cand):
                for root, dirs, files in os.walk(cand):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    for name in files:
                        full = os.path.join(root, name)
                        if os.path.isfile(full) and (_named_like_capture(name)
                                                     or looks_like_capture(full)):
                            found.add(os.path.abspath(full))
            else:
                found.add(os.path.abspath(cand))
    return sorted(found)


def capture_id(path: str) -> str:
    """Stable partition key of a capture: hash of its absolute path."""
    digest = hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:CAPTURE_ID_HEX_CHARS]


# --------------------------------------------------------------------------- schemas
_KIND_TYPES = {"int": "int64", "int?": "int64", "float": "float64", "float?": "float64",
               "str": "string", "category": "string", "bool": "bool", "ts": "float64"}
_FLOAT_SUFFIXES = ("_ms", "_s", "_avg_bytes", "_per_s", "_avg")


def flow_column_kinds() -> dict[str, str]:
    """Every flows column and its kind (report.LIFECYCLE_COLUMNS vocabulary).

    Lifecycle kinds come from report.py; analysis columns are named by a fresh analyzer and
    typed by value, or by unit suffix when the fresh value is a placeholder (``None``, or 0
    for an average), so the schema does not depend on which captures were seen.
    """
    from tcptrace_py.analysis import AnalysisOptions, SequenceAnalyzer

    kinds: dict[str, str] = {"capture": "str"}
    kinds.update(LIFECYCLE_COLUMNS)
    for name, value in SequenceAnalyzer(AnalysisOptions()).columns().items():
        if name in kinds:
            continue
        if isinstance(value, bool):
            kinds[name] = "bool"
        elif isinstance(value, float) or name.endswith(_FLOAT_SUFFIXES):
            kinds[name] = "float?"
        else:
            kinds[name] = "int?"
    kinds["anomalies"] = "list"
    return kinds


def _arrow_type(kind: str) -> pa.DataType:
    import pyarrow as pa

    if kind == "list":
        return pa.list_(pa.string())
    return pa.type_for_alias(_KIND_TYPES[kind])


def flows_schema() -> pa.Schema:
    """Arrow schema of the flows table (kept equal to frames.py's DataFrame columns)."""
    import pyarrow as pa

    return pa.schema([pa.field(n, _arrow_type(k)) for n, k in flow_column_kinds().items()])


ANOMALY_COLUMN_KINDS: dict[str, str] = {
    "capture": "str", "flow_id": "int?", "code": "category", "severity": "category",
    "category": "category", "first_frame": "int", "last_frame": "int", "ts_ns": "int",
    "summary": "str", "details": "str",
}
"""Anomalies table; ``details`` is the evidence dict as a JSON string (free-form shape)."""

EVENT_COLUMN_KINDS: dict[str, str] = {
    "capture": "str", "flow_id": "int", "frame": "int", "ts_ns": "int",
    "endpoint": "category", "kind": "category", "old_state": "category",
    "new_state": "category", "direction": "category", "flags": "str", "seq": "int",
    "ack": "int", "payload_len": "int", "reason": "str",
}

CAPTURE_COLUMN_KINDS: dict[str, str] = {
    "path": "str", "capture_id": "str", "size_bytes": "int", "mtime_ns": "int",
    "frames": "int", "tcp_segments": "int", "connections": "int", "anomalies": "int",
    "events": "int", "warnings": "int", "first_warning": "str", "status": "category",
    "error": "str", "elapsed_s": "float",
}
"""The captures table: one row per capture ever processed into this directory."""


def table_kinds(table: str) -> dict[str, str]:
    """Column kinds of a table by name (``flows``, ``anomalies``, ``events``, ``captures``)."""
    if table == "flows":
        return flow_column_kinds()
    return {"anomalies": ANOMALY_COLUMN_KINDS, "events": EVENT_COLUMN_KINDS,
            "captures": CAPTURE_COLUMN_KINDS}[table]


def table_schema(table: str) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(n, _arrow_type(k)) for n, k in table_kinds(table).items()])


def _to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.table(cols, schema=schema)


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
    tmp = os.path.join(tmp_dir, f"{uuid.uuid4().hex}.parquet")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return 0, 0
    return st.st_size, st.st_mtime_ns


def base_row(path: str) -> dict[str, Any]:
    size, mtime_ns = _stat(path)
    return {"path": path, "capture_id": capture_id(path), "size_bytes": size,
            "mtime_ns": mtime_ns, "frames": 0, "tcp_segments": 0, "connections": 0,
            "anomalies": 0, "events": 0, "warnings": 0, "first_warning": None,
            "status": STATUS_FAILED,
            "error": None, "elapsed_s": 0.0}


def analyze_capture(task: CaptureTask) -> dict[str, Any]:
    """Analyse one capture, write its partitions, return its status row (never raises).

    Runs in a worker process (or a Dask worker). Any exception becomes ``status=failed``
    with a one-line reason: a batch outlives its worst capture.
    """
    from tcptrace_py.engine import Engine

    start_s = time.perf_counter()
    row = base_row(task.path)
    cid = row["capture_id"]
    flows: list[dict[str, Any]] = []
    anomalies: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    engine = Engine(task.options)
    try:
        if task.before_capture is not None:
            task.before_capture(task.path)
        for result in engine.run(task.path, name=task.path, strict=task.strict):
            flows.append({"capture": task.path, **result.record})
            anomalies.extend(_anomaly_row(task.path, a) for a in result.anomalies)
            events.extend({"capture": task.path, **asdict(e)} for e in result.events)
        anomalies.extend(_anomaly_row(task.path, a) for a in engine.summary.anomalies)
        tmp_dir = os.path.join(task.out_dir, TMP_DIR_NAME)
        os.makedirs(tmp_dir, exist_ok=True)
        for name, rows in (("flows", flows), ("anomalies", anomalies), ("events", events)):
            _write_atomic(_to_table(rows, table_schema(name)), part_path(task.out_dir, name, cid),
                          tmp_dir)
    except CaptureError as exc:
        row["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad capture must not stop the batch
        row["error"] = f"{type(exc).__name__}: {exc}"
    else:
        row["status"] = STATUS_OK
    diag = engine.diag
    row.update(frames=diag.frames, tcp_segments=diag.tcp_segments,
               connections=engine.summary.connections, anomalies=len(anomalies),
               events=len(events), warnings=len(diag.warnings) + diag.warnings_dropped,
               first_warning=str(diag.warnings[0]) if diag.warnings else None,
               elapsed_s=round(time.perf_counter() - start_s, 6))
    return row


def _anomaly_row(capture: str, a: Any) -> dict[str, Any]:
    return {"capture": capture, "flow_id": a.flow_id, "code": a.code, "severity": a.severity,
            "category": a.category, "first_frame": a.first_frame, "last_frame": a.last_frame,
            "ts_ns": a.ts_ns, "summary": a.summary,
            "details": json.dumps(a.details, sort_keys=True, default=str)}


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
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def is_done(self, path: str) -> bool:
        row = self.rows.get(path)
        if row is None:
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
    _write_atomic(_to_table(ordered, table_schema("captures")), final, tmp_dir)
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
    """Delete temp files left by a killed run (their capture is not in the manifest)."""
    tmp_dir = os.path.join(out_dir, TMP_DIR_NAME)
    if os.path.isdir(tmp_dir):
        for name in os.listdir(tmp_dir):
            try:
                os.unlink(os.path.join(tmp_dir, name))
            except OSError:
                pass


# --------------------------------------------------------------------------- executors
def _died_row(path: str, reason: str) -> dict[str, Any]:
    row = base_row(path)
    row["error"] = reason
    return row


def _isolated_child(task: CaptureTask, conn: Any) -> None:
    conn.send(analyze_capture(task))
    conn.close()


def _run_isolated(task: CaptureTask, ctx: Any) -> dict[str, Any]:
    """Rerun one suspect capture alone in a fresh process: a death is then its own."""
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_isolated_child, args=(task, child_conn), daemon=True)
    proc.start()
    child_conn.close()
    try:
        row: dict[str, Any] = parent_conn.recv()
    except EOFError:
        proc.join()
        return _died_row(task.path, f"worker process died (exit code {proc.exitcode})")
    finally:
        parent_conn.close()
    proc.join()
    return row


def run_local(tasks: Sequence[CaptureTask], jobs: int) -> Iterator[dict[str, Any]]:
    """Yield status rows as captures finish on a local process pool of ``jobs`` workers.

    At most ``jobs`` tasks are in flight, so when a worker dies (the whole pool breaks:
    concurrent.futures cannot tell which task killed it) only those few are suspects; each
    is rerun alone to find the culprit and the pool is rebuilt for the rest.
    """
    ctx = mp.get_context("forkserver")
    queue = list(reversed(tasks))
    while queue:
        suspects: list[CaptureTask] = []
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            inflight: dict[Future[dict[str, Any]], CaptureTask] = {}
            broken = False
            while (queue or inflight) and not broken:
                while queue and len(inflight) < jobs:
                    t = queue.pop()
                    inflight[pool.submit(analyze_capture, t)] = t
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
                suspects.extend(inflight.values())
        for t in sorted(suspects, key=lambda t: t.path):
            yield _run_isolated(t, ctx)


def run_dask(tasks: Sequence[CaptureTask], scheduler: Any) -> Iterator[dict[str, Any]]:
    """Yield status rows as captures finish on a dask.distributed cluster.

    ``scheduler`` is an address (``tcp://host:8786``) or an existing ``Client``/cluster.
    """
    # Typed as Any: distributed ships no type hints (mypy --strict would flag every call).
    distributed: Any = importlib.import_module("distributed")
    as_completed = distributed.as_completed
    own = not isinstance(scheduler, distributed.Client)
    client = distributed.Client(scheduler) if own else scheduler
    try:
        futures = {client.submit(analyze_capture, t, pure=False,
                                 key=f"tcptrace-py-{capture_id(t.path)}-{uuid.uuid4().hex[:8]}"):
                   t for t in tasks}
        for fut in as_completed(futures):
            t = futures[fut]
            try:
                yield fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker and friends
                yield _died_row(t.path, f"{type(exc).__name__}: {exc}")
            fut.release()
    finally:
        if own:
            client.close()


# --------------------------------------------------------------------------- the batch
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
              before_capture: BeforeCapture | None = None) -> BatchSummary:
    """Analyse every capture found in ``inputs`` into the dataset at ``out_dir``.

    ``on_start(todo, skipped)`` and ``on_done(row)`` let a front end show progress.
    Raises FileNotFoundError/NotADirectoryError for bad inputs (usage errors).
    """
    paths = discover(inputs)
    out = os.path.abspath(out_dir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"{out}: output exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    _clean_tmp(out)
    opts = options or Options()
    manifest = Manifest(out)
    todo = [p for p in paths if force or not manifest.is_done(p)]
    todo_set = set(todo)
    skipped = [p for p in paths if p not in todo_set]
    if on_start is not None:
        on_start(len(todo), len(skipped))
    tasks = [CaptureTask(p, out, opts, before_capture, strict) for p in todo]
    try:
        if tasks:
            rows = (run_dask(tasks, scheduler) if scheduler is not None
                    else run_local(tasks, max(1, min(jobs or os.cpu_count() or 1, len(tasks)))))
            for row in rows:
                if row["status"] != STATUS_OK:
                    _drop_partitions(out, row["capture_id"])
                manifest.record(row)
                if on_done is not None:
                    on_done(row)
    finally:
        manifest.close()
        write_captures_table(out, manifest.rows.values())
    return BatchSummary(out, [manifest.rows[p] for p in paths if p in manifest.rows], todo,
                        skipped)


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


def _to_pandas(table: pa.Table, kinds: dict[str, str]) -> Any:
    import pandas as pd
    import pyarrow as pa

    # Nullable pandas dtypes: an int column with a missing value stays int (``Int64``).
    mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(),
               pa.string(): pd.StringDtype()}
    df = table.to_pandas(types_mapper=mapping.get)
    for name, kind in kinds.items():
        if kind == "category" and name in df:
            df[name] = df[name].astype("category")
    return df


def read_table(out_dir: str | Path, table: str, captures: Sequence[str] | None = None) -> Any:
    """One table of a batch directory as a pandas DataFrame (optionally some captures only).

    Only captures whose latest manifest status is ``ok`` are read, so partitions of a
    capture that has since failed or vanished from the inputs never leak in.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = os.path.abspath(out_dir)
    if table == "captures":
        return _to_pandas(pq.read_table(os.path.join(out, CAPTURES_NAME),
                                        schema=table_schema("captures")), CAPTURE_COLUMN_KINDS)
    files = _part_files(out, table, captures)
    schema = table_schema(table)
    parts = [pq.read_table(f, schema=schema) for f in files]
    data = pa.concat_tables(parts) if parts else schema.empty_table()
    return _to_pandas(data, table_kinds(table))


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
    dd: Any = importlib.import_module("dask.dataframe")
    delayed: Any = importlib.import_module("dask").delayed

    if table == "captures":
        return dd.from_pandas(read_table(out, "captures"), npartitions=1)
    files = _part_files(out, table, None)
    meta = read_table(out, table, captures=[])
    if not files:
        return dd.from_pandas(meta, npartitions=1)
    # One partition per capture, loaded lazily with the same dtypes as the pandas reader.
    parts = [delayed(_read_one)(f, table) for f in files]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _read_one(file: str, table: str) -> Any:
    import pyarrow.parquet as pq

    return _to_pandas(pq.read_table(file, schema=table_schema(table)), table_kinds(table))


def analyze_many(paths: Iterable[str | Path] | str | Path, jobs: int | None = None,
                 scheduler: Any = None, dask: bool = False, *, out_dir: str | Path | None = None,
                 force: bool = False, **options: Any) -> BatchResult:
    """Analyse many captures in parallel; return flows/anomalies/events/captures DataFrames.

    ``out_dir`` keeps the Parquet dataset (and makes reruns incremental); without it a
    temporary directory is used and removed when the result is garbage-collected. Extra
    keyword arguments are :class:`~tcptrace_py.options.Options` fields.
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
    summary = run_batch(paths, out_dir, jobs=jobs, scheduler=scheduler, force=force,
                        options=Options(**options))
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
