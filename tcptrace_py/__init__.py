"""tcptrace-py: the life of every TCP connection in a packet capture.

Public API (importing the package is cheap: pandas, pyarrow and matplotlib load only when a
function that needs them runs)::

    >>> import tcptrace_py
    >>> res = tcptrace_py.analyze("capture.pcap")             # path, file object or bytes
    >>> res.flows[res.flows.close.isin(["refused", "unanswered"])]
    >>> res.anomalies, res.events, res.packets, res.summary   # typed DataFrames + summary
    >>> for rec in tcptrace_py.iter_flows("big.pcap.zst"):   # plain dicts, no pandas
    ...     print(rec["flow_id"], rec["close"])
    >>> tcptrace_py.analyze_many(["a.pcap", "b.pcap"], jobs=4)  # many captures in parallel

Keyword options are :class:`tcptrace_py.options.Options` fields (``time_wait_s=30``,
``idle_timeout_s=600``, ``detector_params={...}``) plus ``packets=True`` to keep the packet
table from the first pass.
"""

from __future__ import annotations

from tcptrace_py import compiled_modules

# What importing the package loads stays small (no typing, pathlib or re: the console
# script imports the package before its entry point turns the cyclic collector off, see
# __main__.py); type checkers see the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

__version__ = "0.1.0"

# Before any engine module loads: the reference's source where it was asked for or where the
# compiled copy is stale (compiled_modules.py says why).
compiled_modules.install()

if TYPE_CHECKING:
    from tcptrace_py.engine import Source
    from tcptrace_py.frames import AnalysisResult
    from tcptrace_py.parallel import ParallelEngine

__all__ = ["AnalysisResult", "Options", "__version__", "analyze", "analyze_many",
           "iter_flows"]


def analyze(source: Source, **options: Any) -> AnalysisResult:
    """Analyse one capture; returns an object with ``.flows``, ``.anomalies``, ``.events``,
    ``.packets`` (pandas DataFrames with explicit dtypes), ``.summary`` and ``.diagnostics``.

    ``source`` is a path, a binary file object or the capture's bytes (compressed or not).
    ``jobs=N`` analyses a capture file with N processes split by connection (the same
    results, flow ids and order; worth it for large captures).
    ``packets=True`` keeps the per-packet table from this pass; otherwise ``.packets`` re-reads
    the capture on first access. ``strict=True`` raises ``CaptureError`` on a damaged file
    instead of warning. Other keywords are ``Options`` fields.

    >>> res = analyze("samples/normal.pcap", time_wait_s=30)  # doctest: +SKIP
    >>> res.flows[["client_ip", "server_port", "open", "close", "duration_s"]]  # doctest: +SKIP
    """
    from tcptrace_py.frames import analyze as _analyze

    return _analyze(source, **options)


def iter_flows(source: Source, **options: Any) -> Generator[dict[str, Any], None, None]:
    """Stream connection records (plain dicts, the JSONL objects) as connections finish.

    Memory stays bounded by live connections and pandas is never imported. ``jobs=N``
    splits a capture file over N processes (the same records in the same order).

    >>> for rec in iter_flows("capture.pcap"):  # doctest: +SKIP
    ...     if rec["close"] == "refused":
    ...         print(rec["client_ip"], rec["server_port"])
    """
    from dataclasses import fields, replace

    from tcptrace_py.options import Options

    strict = bool(options.pop("strict", False))
    jobs = int(options.pop("jobs", 1))
    known = {f.name for f in fields(Options)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    from tcptrace_py.engine import Engine
    from tcptrace_py.gcpolicy import paused_while_computing

    opts = replace(Options(), **options)
    if jobs > 1:  # multiprocessing loads only for jobs > 1 (start-up of the common case)
        from tcptrace_py.parallel import engine_for

        engine: Engine | ParallelEngine = engine_for(opts, jobs, source)
    else:
        engine = Engine(opts)
    for result in paused_while_computing(engine.run(source, strict=strict)):
        yield result.record


def __getattr__(name: str) -> Any:
    """Lazy attributes: heavy or optional modules load on first use (PEP 562)."""
    if name == "analyze_many":
        import importlib

        return importlib.import_module("tcptrace_py.batch").analyze_many
    if name == "AnalysisResult":
        from tcptrace_py.frames import AnalysisResult

        return AnalysisResult
    if name == "Options":
        from tcptrace_py.options import Options

        return Options
    raise AttributeError(f"module 'tcptrace_py' has no attribute {name!r}")
