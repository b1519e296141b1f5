"""Command line: the only module that imports click (rich only for table output).

Exit codes (every command):
  0  success (warnings about a damaged capture or a link type no decoder reads included,
     unless ``--strict``);
  1  ``--fail-on SEVERITY`` and an anomaly at or above that severity was found;
  2  bad usage (unknown option or parameter, bad value) or unreadable input (missing file,
     a directory, not a capture, damaged with ``--strict``), or an output that cannot be
     written (disk full, missing directory, closed standard output);
  130  interrupted (SIGINT): the results of what was read are written, then exit.
Results go to stdout (or ``-o``), diagnostics to stderr, never a traceback for bad input.

Start-up matters (``tcptrace-py analyze x.pcap --format jsonl | jq`` on a tiny capture should
answer at once), so rich, pandas, pyarrow and matplotlib are imported only by the formats and
commands that need them.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import importlib.util
import io
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from tcptrace_py import __version__, implementation, units
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.engine import Engine, FlowResult
from tcptrace_py.events import SEVERITIES, SEVERITY_RANK, Anomaly
from tcptrace_py.export import (
    FORMATS,
    SummaryCounter,
    anomaly_dict,
    capture_summary,
    dumps,
    dumps_line,
    printable,
)
from tcptrace_py.gcpolicy import ANALYSIS_THRESHOLDS, collector_paused
from tcptrace_py.lazy_dataclass import dataclass, field
from tcptrace_py.options import Options
from tcptrace_py.outfile import LineBatch, OutputError, OutputFile
from tcptrace_py.report import CLOSE_VALUES

if TYPE_CHECKING:  # imported where used: only ``flow`` draws a ladder (start-up cost)
    from tcptrace_py.ladder import LadderRow, SegmentDetail
    from tcptrace_py.parallel import ParallelEngine

__all__ = ["EXIT_BAD_INPUT", "EXIT_FINDINGS", "EXIT_INTERRUPTED", "EXIT_OK", "anomaly_dict",
           "main"]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT), as shells report a process killed by it (128 + 2)."""

PROGRESS_MIN_BYTES = 32 * 1024 * 1024
"""Files smaller than this get no progress bar: they finish before a bar would be useful."""

_SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}

_EXIT_LINES = {
    0: "  0    success (a damaged capture, or frames of a link type no decoder reads, give\n"
       "       warnings and results, unless --strict)",
    1: "  1    --fail-on SEVERITY matched an anomaly",
    2: "  2    bad usage or unreadable input (missing file, directory, not a capture), or the\n"
       "       output cannot be written (one line naming it; an existing -o file is kept)",
    130: "  130  interrupted (Ctrl-C); what was read until then is written first",
}


def _exit_help(*codes: int) -> str:
    """The ``Exit codes:`` epilog of a command, listing only the codes it can return."""
    return "\n\b\nExit codes:\n" + "\n".join(_EXIT_LINES[c] for c in codes) + "\n"


EXIT_CODES_HELP = _exit_help(0, 1, 2, 130)
"""Every code (the group's help; analyze and anomalies, which have --fail-on)."""
NO_FAIL_ON_HELP = _exit_help(0, 2, 130)
"""Commands without --fail-on (summary, flow, plot)."""

F = TypeVar("F", bound=Callable[..., Any])
_T = TypeVar("_T")
TABLE_LIMIT = 1000
"""Rows the terminal table shows by default: rich renders ~2,000 rows a second here, and a
screen of failures is what a reader wants first (files get every row)."""


def _err(msg: str) -> None:
    click.echo(f"tcptrace-py: {printable(msg)}", err=True)


def _fail(msg: str) -> None:
    """One line on stderr and exit 2 (bad input)."""
    _err(msg)
    sys.exit(EXIT_BAD_INPUT)


# --------------------------------------------------------------------------- lazy group
class _LazyGroup(click.Group):
    """A group whose heavier subcommands (``batch``) are imported only when invoked."""

    lazy: dict[str, str] = {"batch": "tcptrace_py.batch_cli:batch"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def invoke(self, ctx: click.Context) -> Any:
        """Ctrl-C anywhere outside the analysis loop (start-up, writing, a second Ctrl-C)
        ends with exit 130 and one line, not click's "Aborted!" and exit 1 (which
        ``--fail-on`` uses)."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                _err("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader left (``| head``) outside a command's _writing (the flow ladder,
            # help...): what it wanted was written. Exit 0 without "Broken pipe", stdout
            # pointed at /dev/null so the interpreter's final flush does not fail again.
            _silence_stdout()
            sys.exit(EXIT_OK)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attr = self.lazy[cmd_name].split(":")
            try:
                cmd = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                return None
            return cmd if isinstance(cmd, click.Command) else None
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="tcptrace-py",
                      message=f"%(prog)s %(version)s\n{implementation.describe()}")
def main() -> None:
    """Reconstruct the life of every TCP connection in packet captures.

    \b
    Examples:
      tcptrace-py analyze capture.pcap
      tcptrace-py analyze capture.pcapng.gz --format jsonl -o flows.jsonl
      tcpdump -U -w - -i any | tcptrace-py analyze - --format jsonl
      tcptrace-py anomalies capture.pcap --fail-on warning
      tcptrace-py summary capture.pcap
      tcptrace-py flow capture.pcap 3
      tcptrace-py plot capture.pcap --flow 3 --kind tsg -o flow3.png
      tcptrace-py report capture.pcap -o report.html
      tcptrace-py columns; tcptrace-py codes

    \b
    Extras (pip install 'tcptrace-py[NAME]'):
      parquet  --format parquet, batch        plot  plot
      dask     batch --scheduler              zstd  .zst captures
      all      everything above
    """
    # The analysis allocates many small long-lived objects (per-connection state) and no
    # reference cycles: the cyclic collector's passes would only traverse them (_run_one
    # pauses it around each capture; tcptrace_py/gcpolicy.py). A command-line process owns
    # its interpreter, so it also moves start-up objects out of the collector's view and
    # collects less often in between; the library (engine) leaves the process alone.
    gc.freeze()
    gc.set_threshold(*ANALYSIS_THRESHOLDS)
    notice = implementation.warn_once_if_missing()
    if notice:
        click.echo(notice, err=True)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test runner's)
        pass


# --------------------------------------------------------------------------- options
@dataclass
class Filters:
    """Which connections (and their anomalies) to show."""

    states: tuple[str, ...] = ()
    closes: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    flows: tuple[int, ...] = ()
    _states_up: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._states_up = {s.upper().replace("-", "_") for s in self.states}

    @property
    def on_connections(self) -> bool:
        """True when some filter selects connections (capture-wide findings then hide)."""
        return bool(self.states or self.closes or self.hosts or self.ports or self.flows)

    def flow_ok(self, rec: dict[str, Any]) -> bool:
        if self.flows and rec["flow_id"] not in self.flows:
            return False
        if self._states_up and rec["client_state"] not in self._states_up and \
                rec["server_state"] not in self._states_up:
            return False
        if self.closes and rec["close"] not in self.closes:
            return False
        if self.hosts and rec["client_ip"] not in self.hosts and \
                rec["server_ip"] not in self.hosts:
            return False
        if self.ports and rec["client_port"] not in self.ports and \
                rec["server_port"] not in self.ports:
            return False
        return not (self.codes and not set(self.codes) & set(rec.get("anomalies", ())))

    def anomaly_ok(self, a: Anomaly, rec: dict[str, Any] | None) -> bool:
        if self.codes and a.code not in self.codes:
            return False
        if rec is None:
            return not self.on_connections
        return self.flow_ok({**rec, "anomalies": [a.code]})


def _choices(valid: Sequence[str], upper: bool = False) -> Callable[..., tuple[str, ...]]:
    """A click callback accepting only ``valid`` values (case-folded to upper for states):
    a typo (``--close refuse``) is exit 2 naming the valid values, not an empty result."""

    def check(_ctx: click.Context, param: click.Parameter,
              values: tuple[str, ...]) -> tuple[str, ...]:
        for v in values:
            key = v.upper().replace("-", "_") if upper else v
            if key not in valid:
                raise click.BadParameter(f"{v!r} is not one of: {', '.join(valid)}",
                                         param_hint=param.opts[0])
        return values

    return check


def _state_values() -> tuple[str, ...]:
    from tcptrace_py.fsm import TcpState

    return tuple(s.value for s in TcpState)


def _code_values() -> tuple[str, ...]:
    from tcptrace_py.detectors import CODES

    return tuple(sorted(CODES))


def _lazy_choices(values: Callable[[], tuple[str, ...]],
                  upper: bool = False) -> Callable[..., tuple[str, ...]]:
    """:func:`_choices` whose list is computed only when the option is used."""

    def check(ctx: click.Context, param: click.Parameter,
              given: tuple[str, ...]) -> tuple[str, ...]:
        return _choices(values(), upper)(ctx, param, given) if given else given

    return check


def engine_options(f: F) -> F:
    """Engine and detector settings shared by analyze, anomalies and batch (values go to
    :func:`build_options`)."""
    decorators = [
        click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                     help="Detector parameters from a TOML file."),
        click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
                     help="Set a detector parameter (e.g. rst_storm.min_rsts=50). "
                          "Repeatable; wins over --config."),
        click.option("--time-wait", "time_wait_s", type=click.FloatRange(min=0), default=None,
                     metavar="SECONDS", help="TIME_WAIT duration (default 60, Linux's)."),
        click.option("--idle-timeout", "idle_timeout_s", type=click.FloatRange(min=0),
                     default=None, metavar="SECONDS",
                     help="Emit a connection idle this long (default 3600)."),
        click.option("--attempt-timeout", "attempt_timeout_s", type=click.FloatRange(min=0),
                     default=None, metavar="SECONDS",
                     help="Emit a never-completed connection attempt silent this long "
                          "(default 300)."),
        click.option("--max-connections", type=click.IntRange(min=1), default=None,
                     metavar="N", help="Live connections kept at most (default 100000)."),
    ]
    for deco in reversed(decorators):
        f = deco(f)
    return f


JOBS_OPTION = click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
    help="Analyse each capture file with N processes, split by connection (same output as "
         "1; standard input and live reads use 1). Worth it for large captures.")

LOCAL_TIME_OPTION = click.option(
    "--local-time", "local_time", is_flag=True,
    help="Show start times in the local time zone instead of UTC (terminal output).")


def _common(f: F) -> F:
    """Options shared by analyze, anomalies and summary (applied bottom-up)."""
    decorators = [
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                     show_default=True,
                     help="Output format (parquet needs -o and the parquet extra: "
                          "pip install 'tcptrace-py[parquet]')."),
        click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
                     help="Write to this file instead of standard output."),
        click.option("--state", "states", multiple=True, metavar="STATE",
                     callback=_lazy_choices(_state_values, upper=True),
                     help="Only connections where either endpoint ended in STATE "
                          "(e.g. TIME_WAIT, CLOSE_WAIT). Repeatable."),
        click.option("--close", "closes", multiple=True, metavar="HOW",
                     callback=_choices(CLOSE_VALUES),
                     help=f"Only connections that ended this way ({', '.join(CLOSE_VALUES)})."
                          " Repeatable."),
        click.option("--anomaly", "codes", multiple=True, metavar="CODE",
                     callback=_lazy_choices(_code_values),
                     help="Only connections/anomalies with this anomaly code (see "
                          "docs/anomalies.md). Repeatable."),
        click.option("--host", "hosts", multiple=True, metavar="IP",
                     help="Only connections with this address at either end. Repeatable."),
        click.option("--port", "ports", multiple=True, type=int, metavar="PORT",
                     help="Only connections with this port at either end. Repeatable."),
        click.option("--flow", "flow_ids", multiple=True, type=int, metavar="ID",
                     help="Only this flow_id. Repeatable."),
        click.option("--sort", "sort_key", default=None, metavar="COLUMN",
                     help="Sort by this column (e.g. duration_s, start_ts, retransmissions)."),
        click.option("--reverse", is_flag=True, help="Sort in descending order."),
        click.option("--limit", type=click.IntRange(min=0), default=None, metavar="N",
                     help=f"Show at most N rows (0: all). Default: {TABLE_LIMIT} for the table, "
                          "whose rows are then the most severe (or the first of --sort); "
                          "every row for the other formats."),
        click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
                     help="Exit 1 when an anomaly at or above this severity is found."),
        engine_options,
        click.option("--strict", is_flag=True,
                     help="Treat a damaged capture as an error (exit 2)."),
        click.option("-q", "--quiet", is_flag=True,
                     help="No warnings, progress or summary on standard error."),
        JOBS_OPTION,
        LOCAL_TIME_OPTION,
    ]
    for deco in reversed(decorators):
        f = deco(f)
    return f


def build_options(config: str | None = None, params: Sequence[str] = (),
                  time_wait_s: float | None = None, idle_timeout_s: float | None = None,
                  max_connections: int | None = None, attempt_timeout_s: float | None = None,
                  **extra: Any) -> Options:
    """Options from CLI values; a bad config file or parameter is a click.UsageError (2)."""
    from tcptrace_py import detectors

    detector_params: dict[str, Any] = {}
    load_config = getattr(detectors, "load_config", None)
    parse_param = getattr(detectors, "parse_param", None)
    try:
        if config:
            if load_config is None:
                raise click.UsageError("--config needs tcptrace_py.detectors.load_config")
            detector_params.update(load_config(config))
        for p in params:
            if parse_param is None:
                raise click.UsageError("--param needs tcptrace_py.detectors.parse_param")
            if "=" not in p:
                raise click.BadParameter(f"{p!r} is not NAME=VALUE", param_hint="--param")
            parsed = parse_param(p)
            if isinstance(parsed, tuple):
                detector_params[parsed[0]] = parsed[1]
            else:
                detector_params.update(parsed)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise click.UsageError(str(exc).strip("'\"")) from None
    kw: dict[str, Any] = dict(extra)
    if detector_params:
        kw["detector_params"] = detector_params
    if time_wait_s is not None:
        kw["time_wait_s"] = time_wait_s
    if idle_timeout_s is not None:
        kw["idle_timeout_s"] = idle_timeout_s
    if max_connections is not None:
        kw["max_connections"] = max_connections
    if attempt_timeout_s is not None:
        kw["attempt_timeout_s"] = attempt_timeout_s
    try:
        options = replace(Options(), **kw)
        if detector_params:  # validate names now: a typo is exit 2, not a silent default
            Engine(options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return options


# --------------------------------------------------------------------------- running
class _CountingReader:
    """A binary file wrapper counting bytes read, to drive the progress bar."""

    def __init__(self, f: IO[bytes], advance: Callable[[int], None]) -> None:
        self._f = f
        self._advance = advance

    def read(self, n: int = -1, /) -> bytes:
        data = self._f.read(n)
        self._advance(len(data))
        return data

    def read1(self, n: int = -1, /) -> bytes:
        data = self._f.read1(n)  # type: ignore[attr-defined]
        self._advance(len(data))
        return bytes(data)

    def readinto1(self, b: Any, /) -> int:
        got: int = self._f.readinto1(b)  # type: ignore[attr-defined]
        self._advance(got)
        return got

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()


class _InterruptGate:
    """Ctrl-C takes effect only where the input is read.

    Why: a KeyboardInterrupt raised at any bytecode could stop a connection half-way
    through a segment (or drop a chunk just read), and the records written after it would
    be wrong. While the gate is installed, SIGINT only sets ``pending``; a read checks it
    first. A read that could block (a pipe, a terminal, a socket) first waits with
    ``select`` on the input and on the signal's wake-up pipe (``signal.set_wakeup_fd``), so
    a quiet live capture is interrupted at once and no byte read is lost. What was read is
    then analysed to the end (``Engine.finish``). A second Ctrl-C raises at once.
    """

    def __init__(self) -> None:
        self.pending = False
        """A SIGINT arrived."""
        self._wake_r: int | None = None
        """Read end of the wake-up pipe (None when not installed: no select)."""

    def _on_sigint(self, _signum: int, _frame: Any) -> None:
        if self.pending:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.pending = True

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread() or os.name != "posix":
            yield  # signal handlers belong to the main thread (e.g. a test runner's thread)
            return
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        previous_fd = signal.set_wakeup_fd(w)
        self._wake_r = r
        try:
            yield
        finally:
            signal.set_wakeup_fd(previous_fd)
            signal.signal(signal.SIGINT, previous)
            self._wake_r = None
            os.close(r)
            os.close(w)

    def check(self) -> None:
        if self.pending:
            raise KeyboardInterrupt

    def wait_readable(self, fd: int) -> None:
        """Block until ``fd`` has data (or end of file) or a SIGINT came (then raise)."""
        import select

        while True:
            self.check()
            if self._wake_r is None:
                return
            ready, _, _ = select.select([fd, self._wake_r], [], [])
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 512)
                continue  # a signal: pending says whether it was SIGINT
            if fd in ready:
                self.check()
                return

    def wrap(self, f: Any) -> _GatedReader:
        return _GatedReader(f, self)


def _stream_fd(f: Any) -> int | None:
    """The descriptor of a stream whose reads may block (not a regular file), else None."""
    try:
        fd = int(f.fileno())
        return None if stat.S_ISREG(os.fstat(fd).st_mode) else fd
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


class _GatedReader:
    """A binary stream whose reads are the points where a Ctrl-C stops the analysis.

    A stream that may block is read through its raw (unbuffered) file, one ``read`` a call,
    so that waiting for it with select (no hidden buffer holding data) is exact."""

    def __init__(self, f: Any, gate: _InterruptGate) -> None:
        self._gate = gate
        self._fd = _stream_fd(f)
        raw = getattr(f, "raw", None)
        self._f = raw if self._fd is not None and raw is not None else f
        self.mappable = self._fd is None and hasattr(f, "fileno")
        """A regular file the reader may map (``source._Prefixed.mapped``), though handed
        over as a stream: this command opened it, and its reads never block."""

    def _wait(self) -> None:
        if self._fd is not None:
            self._gate.wait_readable(self._fd)
        else:
            self._gate.check()

    def _call(self, fn: Callable[[int], Any], n: int) -> bytes:
        self._wait()
        data = fn(n)
        return b"" if data is None else bytes(data)

    def read(self, n: int = -1, /) -> bytes:
        return self._call(self._f.read, n)

    def read1(self, n: int = -1, /) -> bytes:
        return self._call(getattr(self._f, "read1", self._f.read), n)

    def readinto1(self, b: Any, /) -> int:
        """:meth:`read1` into ``b`` (the reader reuses one buffer: no fresh chunk a read)."""
        fill = getattr(self._f, "readinto1", None) or getattr(self._f, "readinto", None)
        if fill is None:
            data = self.read1(len(b))
            b[:len(data)] = data
            return len(data)
        self._wait()
        return fill(b) or 0

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The descriptor of a regular file, so the reader can map it (``source._Prefixed.
        mapped``) instead of copying it through ``readinto``: ~5 % of a large capture's
        time. Each call is also a point where Ctrl-C takes effect: the mapped reader asks
        the file's size through it before every mebibyte, as it would read one. A stream
        that may block has none (``OSError``): it is read, never mapped."""
        self._gate.check()
        if not self.mappable:
            raise OSError("a stream that may block is read, not mapped")
        return int(self._f.fileno())

    def tell(self) -> int:
        return int(self._f.tell())

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return int(self._f.seek(offset, whence))

    def close(self) -> None:
        """The opener closes the file."""


def _with_progress(path: str, quiet: bool, gate: _InterruptGate) -> Iterator[Any]:
    """Yield the source to analyse, read through ``gate``: a counting reader under a rich
    progress bar for big files when stderr is a terminal, else the open file (a path that
    is not a regular file is yielded as is, so the reader's one-line error names it)."""
    if path == "-" and sys.stdin is None:
        _fail("-: standard input is closed")
    size = 0
    if not quiet and path != "-" and sys.stderr is not None and sys.stderr.isatty():
        try:
            size = os.path.getsize(path) if os.path.isfile(path) else 0
        except OSError:
            size = 0
    if not size or size < PROGRESS_MIN_BYTES:
        if path == "-":
            yield gate.wrap(sys.stdin.buffer)
        elif not os.path.isfile(path):
            yield path
        else:
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                _fail(f"{path}: cannot open ({exc.strerror or exc})")
                return
            with f:
                yield gate.wrap(f)
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(os.path.basename(path), total=size)
        with open(path, "rb") as f:
            yield gate.wrap(_CountingReader(f, lambda n: bar.advance(task, n)))


@dataclass
class Run:
    """Everything one command collected over its input files."""

    multi: bool
    files: list[str] = field(default_factory=list)
    """The input files, in the order given."""
    records: list[dict[str, Any]] = field(default_factory=list)
    anomalies: list[tuple[str | None, Anomaly]] = field(default_factory=list)
    results: dict[tuple[str | None, int], FlowResult] = field(default_factory=dict)
    diag: Diagnostics = field(default_factory=Diagnostics)
    worst: int = -1
    """Highest severity rank among the anomalies shown (-1: none)."""
    interrupted: bool = False
    """Ctrl-C stopped the reading: results cover what was read; the command exits 130."""

    def found(self, cap: str | None, a: Anomaly, keep: bool,
              on_anomaly: Callable[[str | None, Anomaly], None] | None) -> None:
        """One anomaly that passed the filters: kept and/or streamed, always ranked."""
        self.worst = max(self.worst, SEVERITY_RANK.get(a.severity, 0))
        if keep:
            self.anomalies.append((cap, a))
        if on_anomaly is not None:
            on_anomaly(cap, a)


def _run(files: Sequence[str], options: Options, strict: bool, quiet: bool,
         filters: Filters, on_record: Callable[[dict[str, Any]], None] | None = None,
         keep: bool = True,
         on_anomaly: Callable[[str | None, Anomaly], None] | None = None,
         jobs: int = 1, on_line: Callable[[bytes], None] | None = None) -> Run:
    """Analyse each file, filter, and collect (or stream through ``on_record`` and
    ``on_anomaly``). With ``keep=False`` neither records nor anomalies are kept (only the
    worst severity, for ``--fail-on``): a streamed run's memory is then bounded by the
    engine's live connections, not by the connections or findings of the capture (a SYN
    flood has one ``unanswered_syn`` per SYN).

    Ctrl-C stops reading (at a read, see _InterruptGate); the connections read so far are
    finished as at capture end and handed over like the others, later files are skipped
    and ``run.interrupted`` is set (the command writes its output, then exits 130).

    ``jobs`` > 1 analyses each regular file with that many processes
    (:class:`~tcptrace_py.parallel.ParallelEngine`: the same results, no progress bar; a
    Ctrl-C stops it at once, keeping nothing of that file). ``on_line``, given with
    ``on_record``, takes a record already encoded as ``export.dumps_line`` would: the workers
    encode the records of a single file streamed unfiltered (``EncodedResult``)."""
    run = Run(multi=len(files) > 1, files=list(files))
    gate = _InterruptGate()
    with gate.installed():
        for path in files:
            _run_one(run, path, options, strict, quiet, filters, on_record, keep, gate,
                     on_anomaly, jobs, on_line)
            if run.interrupted:
                _err(f"interrupted: results cover the frames of {printable(path)} read "
                     "so far")
                break
    run.interrupted = run.interrupted or gate.pending
    return run


def _run_one(run: Run, path: str, options: Options, strict: bool, quiet: bool,
             filters: Filters, on_record: Callable[[dict[str, Any]], None] | None,
             keep: bool, gate: _InterruptGate,
             on_anomaly: Callable[[str | None, Anomaly], None] | None = None,
             jobs: int = 1, on_line: Callable[[bytes], None] | None = None) -> None:
    """One input file of :func:`_run`."""
    engine: Engine | ParallelEngine
    cap = path if run.multi else None
    # Every record streamed as it is: results come as their JSON lines (EncodedResult),
    # which the compiled engine writes without building the record dicts.
    lines = on_line is not None and cap is None and not keep \
        and not filters.on_connections and not filters.codes
    if jobs > 1:  # multiprocessing loads only for --jobs (start-up of the common case)
        from tcptrace_py.parallel import engine_for

        engine = engine_for(options, jobs, path, encode_lines=lines)
    elif lines:
        from tcptrace_py.encoded import EncodedResult

        engine = Engine(options, encode=EncodedResult.of_connection)
    else:
        engine = Engine(options)
    parallel = not isinstance(engine, Engine)
    recs: dict[int, dict[str, Any]] = {}
    try:
        # No reference cycles are made here: the cyclic collector would only traverse the
        # live connections (tcptrace_py/gcpolicy.py).
        with collector_paused():
            for src in [path] if parallel else _with_progress(path, quiet, gate):
                results = _gated(engine.run(src, name=path, strict=strict), gate) if parallel \
                    else engine.run(src, name=path, strict=strict)
                while True:
                    try:
                        result = next(results)
                    except StopIteration:
                        break
                    except KeyboardInterrupt:  # raised by a read: no connection was cut short
                        if run.interrupted:
                            raise  # a second Ctrl-C: stop now (exit 130, _LazyGroup.invoke)
                        run.interrupted = True
                        results = engine.finish(name=path)
                        continue
                    line = getattr(result, "line", None)
                    if line is not None:  # an EncodedResult: nothing filters its record
                        assert on_line is not None
                        for a in result.anomalies:
                            run.found(cap, a, keep, on_anomaly)
                        on_line(line)
                        continue
                    rec = result.record
                    if filters.on_connections:
                        # Owners are only consulted by connection filters (anomaly_ok); keeping
                        # every record otherwise made streamed runs grow with connections.
                        recs[rec["flow_id"]] = rec
                    if not filters.flow_ok(rec):
                        continue
                    if cap is not None:
                        rec = {"capture": cap, **rec}
                    for a in result.anomalies:
                        if filters.anomaly_ok(a, rec):
                            run.found(cap, a, keep, on_anomaly)
                    if on_record is not None:
                        on_record(rec)
                    if keep:
                        run.records.append(rec)
                        run.results[(cap, rec["flow_id"])] = result
    except CaptureError as exc:
        _report_diag(engine.diag, quiet)
        _fail(str(exc))
    except BrokenPipeError:
        raise  # writing streamed results: the output's (see _writing), not the input's
    except OSError as exc:  # e.g. a pipe closed under us, a file vanishing mid-read
        _fail(f"{path}: {exc.strerror or exc}")
    for a in engine.summary.anomalies:
        owner = recs.get(a.flow_id) if a.flow_id is not None else None
        if filters.anomaly_ok(a, owner):
            run.found(cap, a, keep, on_anomaly)
    _report_diag(engine.diag, quiet)
    run.diag.merge(engine.diag)


def _gated(results: Iterator[FlowResult], gate: _InterruptGate) -> Iterator[FlowResult]:
    """A ``--jobs`` run's results, stopped by Ctrl-C between two of them (its reads are
    the workers', not gated): the workers are stopped, the results handed over stay."""
    try:
        for result in results:
            gate.check()
            yield result
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _report_diag(diag: Diagnostics, quiet: bool) -> None:
    if quiet:
        return
    for w in diag.warnings:
        _err(f"warning: {w}")
    if diag.warnings_dropped:
        _err(f"warning: {diag.warnings_dropped} more warnings not shown")


def _sort(records: list[dict[str, Any]], key: str | None, reverse: bool) -> None:
    if key is None:
        records.sort(key=lambda r: (r.get("capture", ""), r["flow_id"]))
        return
    if records and key not in records[0]:
        raise click.BadParameter(f"no column {key!r}", param_hint="--sort")

    def k(r: dict[str, Any]) -> tuple[bool, Any]:
        v = r.get(key)
        return (v is None, v if not isinstance(v, list) else len(v))

    records.sort(key=k, reverse=reverse)


def _utf8_buffer(stream: IO[str]) -> io.BufferedIOBase | None:
    """The binary stream under ``stream`` when writing UTF-8 bytes there is writing their
    text to ``stream``: a text stream encoding UTF-8 that translates no newline (the
    output files, a standard output in a UTF-8 locale, on a system whose line end is
    ``\\n``) and hands its bytes to a buffered writer. None otherwise: the records then go
    through the text stream."""
    import codecs

    raw = getattr(stream, "buffer", None)
    encoding = getattr(stream, "encoding", None)
    # A raw file (``python -u``) may write part of a record: only a buffered one, which
    # writes all of it or raises, as the text stream's own writes do.
    if not isinstance(raw, io.BufferedIOBase) or not isinstance(encoding, str) \
            or os.linesep != "\n":
        return None
    try:
        if codecs.lookup(encoding).name != "utf-8":
            return None
    except LookupError:
        return None
    return raw


def _line_batch(raw: io.BufferedIOBase | None, live: bool) -> LineBatch | None:
    """Where the jsonl stream gathers its lines into ~1 MiB writes (``outfile.LineBatch``):
    not for live input nor a terminal, where someone waits for each line (each is then
    written at once), nor without a binary stream under the text one."""
    if raw is None or live or raw.isatty():
        return None
    return LineBatch(raw)


def _open_out(output: str | None, fmt: str) -> tuple[OutputFile, IO[str] | None]:
    """The output (opened before any input is read: a missing or unwritable directory is
    exit 2 at once, and an existing file is only replaced once the run succeeded) and the
    text stream to write to (None for parquet, which writes to ``OutputFile.path``)."""
    if fmt == "parquet" and not output:
        raise click.UsageError("--format parquet needs -o FILE")
    out = OutputFile(output, binary=fmt == "parquet")
    try:
        out.open()
    except OutputError as exc:
        _fail(str(exc))
    return out, None if fmt == "parquet" else out.stream


@contextlib.contextmanager
def _writing(out: OutputFile) -> Iterator[None]:
    """Run a command's analysis and writing: commit the output on success; on any failure
    discard it (the target keeps its old content) and report an output error as one line,
    exit 2, naming the output rather than the input."""
    try:
        yield
        out.commit()
    except OutputError as exc:
        out.discard()
        _fail(str(exc))
    except BrokenPipeError:
        # The reader went away (``| head``): what it wanted was written; exit quietly, and
        # point stdout at /dev/null so the interpreter's final flush does not complain.
        out.discard()
        if out.target is None:
            with contextlib.suppress(OSError, AttributeError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_OK)
        _fail(str(out.error(BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE)))))
    except OSError as exc:  # input errors are handled in _run: this is the output's
        out.discard()
        _fail(str(out.error(exc)))
    except BaseException:
        out.discard()
        raise


def _exit_for(run: Run, fail_on: str | None) -> None:
    if run.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if fail_on is not None and run.worst >= SEVERITY_RANK[fail_on]:
        sys.exit(EXIT_FINDINGS)


def _need_pkg(fmt: str) -> None:
    need = {"parquet": "pyarrow"}.get(fmt)
    if need and importlib.util.find_spec(need) is None:
        _fail(f"--format {fmt} needs the {need} package (pip install tcptrace-py[parquet])")


# --------------------------------------------------------------------------- analyze
@main.command(epilog=EXIT_CODES_HELP)
@click.argument("files", nargs=-1, required=True)
@_common
def analyze(files: tuple[str, ...], fmt: str, output: str | None, states: tuple[str, ...],
            closes: tuple[str, ...], codes: tuple[str, ...], hosts: tuple[str, ...],
            ports: tuple[int, ...], flow_ids: tuple[int, ...], sort_key: str | None,
            reverse: bool, limit: int | None, fail_on: str | None, config: str | None,
            params: tuple[str, ...], time_wait_s: float | None, idle_timeout_s: float | None,
            attempt_timeout_s: float | None, max_connections: int | None, strict: bool,
            quiet: bool, jobs: int, local_time: bool) -> None:
    """Analyse captures: one record per TCP connection.

    The table shows each connection coloured by the worst severity of its anomalies, the
    anomalies under it, and a capture summary. jsonl streams records as connections finish.

    \b
    Examples:
      tcptrace-py analyze capture.pcap
      tcptrace-py analyze a.pcap b.pcapng --format jsonl -o flows.jsonl
      tcptrace-py analyze capture.pcap --format parquet -o flows.parquet
      tcptrace-py analyze capture.pcap --format zeek -o conn.log
      tcptrace-py analyze capture.pcap --close refused --close unanswered
      tcptrace-py analyze capture.pcap --state CLOSE_WAIT --sort duration_s --reverse
      tcptrace-py analyze capture.pcap --param rst_storm.min_rsts=50 --fail-on error
      tcptrace-py analyze - < capture.pcap
    """
    _need_pkg(fmt)
    # Events (state transitions) are never written by this command: not kept, so results
    # hold less memory and --jobs workers do not send them.
    options = build_options(config, params, time_wait_s, idle_timeout_s, max_connections,
                            attempt_timeout_s, keep_events=False)
    filters = Filters(states, closes, codes, hosts, ports, flow_ids)
    target, out = _open_out(output, fmt)
    stream = fmt == "jsonl" and sort_key is None
    rows = _limit_for(fmt, limit)
    with _writing(target):
        if stream:
            assert out is not None
            written = [0]

            # Live input: each connection reaches the reader (jq, a log shipper) as soon as
            # it is finished, not when a block buffer fills.
            live = "-" in files

            # Lines go to the bytes under the text stream where that writes the same bytes
            # (export.dumps_line; the lines --jobs workers encoded, as UTF-8), else to the
            # text stream: one layer for the whole run, so none holds text the other lacks.
            raw = _utf8_buffer(out)
            write_record: Callable[[dict[str, Any]], object]
            write_line: Callable[[bytes], object]
            batch = _line_batch(raw, live)
            sink: LineBatch | io.BufferedIOBase | None = raw if batch is None else batch
            if sink is not None:
                binary = sink
                write_record = lambda rec: binary.write(dumps_line(rec))  # noqa: E731
                write_line = binary.write  # already a UTF-8 line with its newline
                flush = binary.flush
            else:
                write_record = lambda rec: out.write(dumps(rec) + "\n")  # noqa: E731
                write_line = lambda line: out.write(line.decode())  # noqa: E731
                flush = out.flush

            def put(write: Callable[[Any], object], item: Any) -> None:
                if rows is None or written[0] < rows:
                    try:
                        write(item)
                    except BrokenPipeError:
                        raise
                    except OSError as exc:  # the output's error, not the input's
                        raise target.error(exc) from None
                    written[0] += 1
                    if live:
                        flush()

            def emit(rec: dict[str, Any]) -> None:
                put(write_record, rec)

            def emit_line(line: bytes) -> None:
                put(write_line, line)

            try:
                run = _run(files, options, strict, quiet, filters, on_record=emit,
                           keep=False, jobs=jobs, on_line=emit_line)
            except BaseException:
                if batch is not None:  # what was analysed before the failure goes out
                    with contextlib.suppress(OSError):
                        batch.flush()
                raise
            if batch is not None:
                batch.flush()  # its errors are the output's (_writing says so)
        else:
            run = _run(files, options, strict, quiet, filters, jobs=jobs)
            _sort(run.records, sort_key, reverse)
            worst: dict[tuple[str | None, int], int] = {}
            for cap, a in run.anomalies:
                if a.flow_id is not None:
                    key = (cap, a.flow_id)
                    worst[key] = max(worst.get(key, -1), SEVERITY_RANK.get(a.severity, 0))

            def rank(r: dict[str, Any]) -> int:
                return worst.get((r.get("capture"), r["flow_id"]), -1)

            # The table, unless --sort: the worst first, then by start time, so a scan's one
            # port_scan warning is not line 4,022 (files keep flow order, stable for diffs).
            by_severity = fmt == "table" and sort_key is None
            if by_severity:
                order = {path: i for i, path in enumerate(run.files)}
                # A start time no output can hold is null: such rows sort last.
                run.records.sort(key=lambda r: (-rank(r), r["start_ts"] is None,
                                                r["start_ts"] or 0.0,
                                                order.get(r.get("capture", ""), 0),
                                                r["flow_id"]))
            shown, omitted = _most_severe(run.records, rows, rank,
                                          sort_key is not None or by_severity)
            if fmt == "table":
                assert out is not None
                _print_flows(run, shown, omitted, out, quiet, local_time)
            else:
                from tcptrace_py.export import write_flows

                write_flows(shown, fmt, out, target.path if out is None else None,
                            diag=run.diag)
    _exit_for(run, fail_on)


def _limit_for(fmt: str, limit: int | None) -> int | None:
    """Rows to show: --limit as given (0 = all), else TABLE_LIMIT for the table only."""
    if limit is None:
        return TABLE_LIMIT if fmt == "table" else None
    return limit or None


def _most_severe(items: list[_T], limit: int | None, rank: Callable[[_T], int],
                 sorted_by_user: bool) -> tuple[list[_T], int]:
    """At most ``limit`` of ``items`` in their order, and how many were left out.

    Without a user sort the kept rows are the most severe (stable: ties keep capture order),
    so a capture with 50,000 info findings still shows its one error; with --sort they are
    the first rows of that order, as the user asked."""
    if limit is None or len(items) <= limit:
        return items, 0
    if sorted_by_user:
        return items[:limit], len(items) - limit
    order = sorted(range(len(items)), key=lambda i: -rank(items[i]))[:limit]
    return [items[i] for i in sorted(order)], len(items) - limit


def _omitted_note(console: Any, shown: int, omitted: int, what: str) -> None:
    if omitted:
        console.print(f"[dim]showing {shown:,} of {shown + omitted:,} {what}; --limit 0 shows "
                      "all, --format jsonl/csv/parquet writes all[/]")


def _endpoint(ip: str, port: int) -> str:
    """``ip:port`` for display, an IPv6 address in brackets (RFC 3986) as in the evidence."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def escape(text: str) -> str:
    """Text for a rich table cell or line: brackets (IPv6 endpoints, file names) would
    otherwise be read as markup and vanish, and control characters (a file name's escape
    sequences) would reach the terminal: rich escapes markup, not those."""
    from rich.markup import escape as rich_escape

    return rich_escape(printable(text, keep="\n"))


LADDER_WIDE_MIN = 140
"""Narrowest console for the ladder's one-column-per-field layout: its fixed columns take
~100 and the transitions need ~40 to read; below, the stacked layout is used."""
PIPE_WIDTH = 200
"""Width of tables written to a file or pipe when ``COLUMNS`` does not say: wide enough for
the full connections table, so ``> report.txt`` keeps every column on one line."""
ANOMALY_MIN_WIDTH = 36
"""Narrowest anomalies column a table layout may leave (about five words a line): below it
the connections are listed as blocks instead (see _FLOW_LAYOUTS)."""


def _console(out: IO[str]) -> Any:
    """A rich console for ``out``: a terminal's own width (rich also honours ``COLUMNS``);
    else ``COLUMNS`` when set (``COLUMNS=80 tcptrace-py analyze x | less``), else PIPE_WIDTH."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            """rich exits 1 here; the command's reader left (``| head``): exit 0 through
            the group's BrokenPipeError handler instead."""
            self.quiet = True
            raise BrokenPipeError

    if out.isatty():
        return _Console(file=out)
    cols = os.environ.get("COLUMNS", "").strip()
    width = int(cols) if cols.isdigit() and int(cols) > 0 else PIPE_WIDTH
    return _Console(file=out, width=width)


def _capture_labels(run: Run) -> dict[str | None, str]:
    """Short labels (1, 2, ...) for the input files of a multi-capture run, in input order:
    a full-path column took the table's room; a legend names them once."""
    if not run.multi:
        return {}
    return {path: str(i) for i, path in enumerate(run.files, 1)}


def _print_legend(console: Any, labels: dict[str | None, str]) -> None:
    for path, n in labels.items():
        console.print(f"[bold]cap {n}[/]: {escape(str(path))}", overflow="fold")


@dataclass(frozen=True)
class _Clock:
    """How the table shows start times: the zone, and the date on each row when the rows
    span several days (else the date is in the table's title)."""

    local: bool = False
    with_date: bool = False

    @staticmethod
    def for_rows(rows: Sequence[dict[str, Any]], local: bool) -> _Clock:
        days = {units.instant(r["start_ts"], local)[:10] for r in rows
                if r["start_ts"] is not None}
        return _Clock(local, len(days) > 1)

    def title(self, rows: Sequence[dict[str, Any]]) -> str:
        if not rows:
            return ""
        known = [r["start_ts"] for r in rows if r["start_ts"] is not None]
        if not known:
            return ""
        sample = units.instant(known[0], self.local)
        zone = sample.rsplit(" ", 1)[-1] if self.local else "UTC"
        return f"start times {zone}" + ("" if self.with_date else f", {sample[:10]}")


def _flow_cells(r: dict[str, Any], layout: str, clock: _Clock) -> list[str]:
    """The fixed (non-anomaly) cells of one connection in ``layout`` (plain text)."""
    client = _endpoint(r["client_ip"], r["client_port"])
    server = _endpoint(r["server_ip"], r["server_port"])
    pkts = f"{r['client_packets']}/{r['server_packets']}"
    payload = f"{r['client_payload_bytes']}/{r['server_payload_bytes']}"
    retx = str(r.get("retransmissions", 0))
    dur = units.seconds(r["duration_s"])
    start = units.time_of_day(r["start_ts"], clock.local, clock.with_date)
    states = f"{r['client_state']}/{r['server_state']}"
    if layout == "wide":
        return [str(r["flow_id"]), client, server, _open_text(r), r["close"], r["client_state"],
                r["server_state"], pkts, payload, retx, f"{start}\n{dur}"]
    if layout == "compact":
        return [str(r["flow_id"]), f"{client}\n→ {server}",
                f"{r['close']}\n{_open_text(r)}\n{states}",
                f"{pkts} pkts\n{payload} B\n{retx} retx\n{start}\n{dur}"]
    # list: one text block per connection, wrapped at the console's width.
    return [str(r["flow_id"]), f"{client} → {server}\nclose {r['close']} (open {_open_text(r)}; "
            f"states {states}); pkts {pkts}, bytes {payload}, retx {retx}; "
            f"started {start}, lasted {dur}"]


_FLOW_LAYOUTS: dict[str, tuple[str, ...]] = {
    "wide": ("flow", "client", "server", "open", "close", "client\nstate", "server\nstate",
             "packets\ncli/srv", "payload B\ncli/srv", "retrans-\nmissions",
             "start\nduration"),
    "compact": ("flow", "client\n→ server", "close\nopen\nstates cli/srv",
                "traffic cli/srv\nstart\nduration"),
    "list": ("flow", "connection"),
}
"""Connections table layouts, widest first, by their fixed columns (the anomalies column
follows them). The first whose fixed columns, measured on the rows shown, leave at least
ANOMALY_MIN_WIDTH for the anomalies is used; "list" always fits: flow id, endpoints, close
and anomalies are never dropped, the rest is stacked or wrapped."""


def _choose_layout(rows: Sequence[dict[str, Any]], width: int, multi: bool,
                   clock: _Clock) -> str:
    for layout in ("wide", "compact"):
        heads = _FLOW_LAYOUTS[layout]
        widths = [max(len(line) for line in h.split("\n")) for h in heads]
        for r in rows:
            for i, cell in enumerate(_flow_cells(r, layout, clock)):
                widths[i] = max(widths[i], max(len(line) for line in cell.split("\n")))
        if multi:
            widths.append(3)
        # rich: one space of padding each side of a cell and a rule between/around columns.
        need = sum(widths) + 3 * (len(widths) + 1) + 1
        if need + ANOMALY_MIN_WIDTH <= width:
            return layout
    return "list"


def _print_flows(run: Run, records: list[dict[str, Any]], omitted: int, out: IO[str],
                 quiet: bool, local: bool = False) -> None:
    """The connections table (``records``: the rows to show), capture-wide findings and the
    capture summary, which counts every connection, shown or not. The layout follows the
    console's width (_FLOW_LAYOUTS)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = _console(out)
    labels = _capture_labels(run)
    by_flow: dict[tuple[str | None, int], list[Anomaly]] = {}
    for cap, a in run.anomalies:
        if a.flow_id is not None:
            by_flow.setdefault((cap, a.flow_id), []).append(a)
    clock = _Clock.for_rows(records, local)
    layout = _choose_layout(records, console.width, run.multi, clock)
    _print_legend(console, labels)
    # Capture-wide findings first: a scan or flood explains the rows that follow.
    wide = sorted(((cap, a) for cap, a in run.anomalies if a.flow_id is None),
                  key=lambda x: (-SEVERITY_RANK.get(x[1].severity, 0), x[1].ts_ns))
    if wide:
        console.print(_anomaly_table([a for _c, a in wide], "capture-wide anomalies",
                                     [labels.get(c) for c, _a in wide] if run.multi else None))
    when = clock.title(records)
    table = Table(title=f"{len(run.records)} TCP connections" + (f" ({when})" if when else ""),
                  show_lines=bool(by_flow) or layout != "wide",
                  box=box.SIMPLE_HEAD if layout == "list" else box.HEAVY_HEAD)
    cols = list(_FLOW_LAYOUTS[layout])
    if layout != "list":
        cols.append("anomalies")
    if run.multi:
        cols.insert(0, "cap")
    for col in cols:
        flexible = col in ("anomalies", "connection")
        table.add_column(col, no_wrap=not flexible, ratio=1 if flexible else None,
                         overflow="fold")
    for r in records:
        found = sorted(by_flow.get((r.get("capture"), r["flow_id"]), []),
                       key=lambda a: (-SEVERITY_RANK.get(a.severity, 0), a.code))
        worst = max((SEVERITY_RANK.get(a.severity, 0) for a in found), default=-1)
        style = _SEVERITY_STYLE[SEVERITIES[worst]] if worst >= 0 else None
        notes = Text()
        for i, a in enumerate(found):
            if i:
                notes.append("\n")
            notes.append(f"{a.severity} {a.code}", style=f"bold {_SEVERITY_STYLE[a.severity]}"
                         if a.severity in _SEVERITY_STYLE else "bold")
            notes.append(f": {printable(a.summary)} (frames {a.first_frame}-{a.last_frame})")
        cells: list[Any] = [Text(c) for c in _flow_cells(r, layout, clock)]
        if layout == "list":
            if found:
                cells[-1].append("\n")
                cells[-1].append_text(notes)
        else:
            cells.append(notes)
        if run.multi:
            cells.insert(0, labels.get(r.get("capture"), ""))
        table.add_row(*cells, style=style)
    console.print(table)
    _omitted_note(console, len(records), omitted, "connections")
    _print_summary(console, capture_summary(run.diag, run.records,
                                            (a for _c, a in run.anomalies)), local)


def _open_text(rec: dict[str, Any]) -> str:
    """The ``open`` column, saying when the handshake was inferred rather than captured and
    which of its segments the capture holds (``handshake_seen``: SYN, SYN-ACK, ACK)."""
    if rec.get("handshake_inferred"):
        return f"{rec['open']} (inferred, seen {rec.get('handshake_seen', '?')})"
    return str(rec["open"])


def _anomaly_table(items: Sequence[Anomaly], title: str,
                   captures: Sequence[str | None] | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title)
    cols = ["severity", "code", "flow", "frames", "summary"]
    if captures is not None:
        cols.insert(0, "cap")
    for col in cols:
        table.add_column(col, ratio=1 if col == "summary" else None, overflow="fold")
    for i, a in enumerate(items):
        style = _SEVERITY_STYLE.get(a.severity, "")
        row = [f"[{style}]{a.severity}[/]", a.code,
               "" if a.flow_id is None else str(a.flow_id),
               f"{a.first_frame}-{a.last_frame}", escape(a.summary)]
        if captures is not None:
            row.insert(0, escape(captures[i] or ""))
        table.add_row(*row)
    return table


def _print_summary(console: Any, s: dict[str, Any], local: bool = False) -> None:
    from rich.table import Table

    def kv(d: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"

    table = Table(title="capture summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    span = "n/a"
    if s["span_s"] is not None:
        first, last = units.instant(s["first_ts"], local), units.instant(s["last_ts"], local)
        # The end without its date when the capture stays within one day.
        last = last[11:] if last[:10] == first[:10] else last
        span = f"{units.seconds(s['span_s'])}, {first} to {last}"
    table.add_row("frames", f"{s['frames']} ({s['tcp_segments']} TCP segments)")
    table.add_row("link types", kv(s["link_types"]))
    table.add_row("time span", span)
    table.add_row("skipped frames", kv(s["skipped"]))
    table.add_row("connections", str(s["connections"]))
    table.add_row("opened by", kv(s["by_open"]))
    table.add_row("closed by", kv(s["by_close"]))
    sev = s["anomalies_by_severity"]
    table.add_row("anomalies", " ".join(
        f"[{_SEVERITY_STYLE[k]}]{k} {v}[/]" for k, v in sev.items()) or "none")
    table.add_row("by code", kv(s["anomalies_by_code"]))
    if s["warnings"]:
        table.add_row("warnings", f"[yellow]{s['warnings']}[/] (see standard error)")
    console.print(table)


# --------------------------------------------------------------------------- anomalies
@main.command(epilog=EXIT_CODES_HELP)
@click.argument("files", nargs=-1, required=True)
@_common
def anomalies(files: tuple[str, ...], fmt: str, output: str | None, states: tuple[str, ...],
              closes: tuple[str, ...], codes: tuple[str, ...], hosts: tuple[str, ...],
              ports: tuple[int, ...], flow_ids: tuple[int, ...], sort_key: str | None,
              reverse: bool, limit: int | None, fail_on: str | None, config: str | None,
              params: tuple[str, ...], time_wait_s: float | None, idle_timeout_s: float | None,
              attempt_timeout_s: float | None, max_connections: int | None, strict: bool,
              quiet: bool, jobs: int, local_time: bool) -> None:
    """List every anomaly found, with its evidence.

    Connection filters (--state, --host...) keep the anomalies of matching connections and
    hide capture-wide ones; --anomaly CODE keeps only that code. --sort takes an anomaly field
    (severity, code, flow_id, ts...). zeek writes a weird.log.

    \b
    Examples:
      tcptrace-py anomalies capture.pcap
      tcptrace-py anomalies capture.pcap --format jsonl | jq 'select(.severity=="error")'
      tcptrace-py anomalies capture.pcap --anomaly rst_storm --format csv -o rst.csv
      tcptrace-py anomalies capture.pcap --fail-on warning -q --format jsonl >/dev/null
    """
    _need_pkg(fmt)
    # Events (state transitions) are never written by this command: not kept, so results
    # hold less memory and --jobs workers do not send them.
    options = build_options(config, params, time_wait_s, idle_timeout_s, max_connections,
                            attempt_timeout_s, keep_events=False)
    filters = Filters(states, closes, codes, hosts, ports, flow_ids)
    target, out = _open_out(output, fmt)
    with _writing(target):
        run = _run(files, options, strict, quiet, filters, jobs=jobs)
        items = run.anomalies
        if sort_key is not None:
            try:
                probe = anomaly_dict(items[0][1]) if items else {}
                if items and sort_key not in probe:
                    raise click.BadParameter(f"no anomaly field {sort_key!r}",
                                             param_hint="--sort")
                if sort_key == "severity":
                    items.sort(key=lambda x: SEVERITY_RANK.get(x[1].severity, 0),
                               reverse=not reverse)
                else:
                    items.sort(key=lambda x: (anomaly_dict(x[1])[sort_key] is None,
                                              anomaly_dict(x[1])[sort_key]), reverse=reverse)
            except TypeError:
                raise click.BadParameter(f"cannot sort by {sort_key!r}",
                                         param_hint="--sort") from None
        if sort_key is None and fmt == "table":
            # Worst first, capture-wide findings first among equals (they summarise the
            # others), then by time.
            items.sort(key=lambda x: (-SEVERITY_RANK.get(x[1].severity, 0),
                                      x[1].flow_id is not None, x[1].ts_ns))
        total = len(items)
        items, omitted = _most_severe(
            items, _limit_for(fmt, limit),
            # Capture-wide findings first among equals: they summarise the others.
            lambda x: 2 * SEVERITY_RANK.get(x[1].severity, 0) + (x[1].flow_id is None),
            sort_key is not None)
        caps = [c for c, _a in items]
        anoms = [a for _c, a in items]
        if fmt == "table":
            assert out is not None
            console = _console(out)
            labels = _capture_labels(run)
            _print_legend(console, labels)
            console.print(_anomaly_table(anoms, f"{total} anomalies",
                                         [labels.get(c) for c in caps] if run.multi else None))
            _omitted_note(console, len(anoms), omitted, "anomalies")
        else:
            from tcptrace_py.export import write_anomalies

            recs = {(r.get("capture"), r["flow_id"]): r for r in run.records}
            write_anomalies(anoms, fmt, out, target.path if out is None else None,
                            captures=caps if run.multi else None,
                            records=recs, diag=run.diag)
    _exit_for(run, fail_on)


ANOMALY_SORT_FIELDS = ("severity", "code", "category", "flow_id", "first_frame", "last_frame",
                       "ts", "summary")
"""What ``anomalies --sort`` accepts (the fields of an anomaly record but ``details``)."""


def _option(cmd: click.Command, name: str) -> click.Parameter:
    return next(p for p in cmd.params if p.name == name)


# The shared --sort option names connection columns; anomalies sorts anomaly fields.
_sort_option = _option(anomalies, "sort_key")
assert isinstance(_sort_option, click.Option)
_sort_option.help = f"Sort by this anomaly field ({', '.join(ANOMALY_SORT_FIELDS)})."
_sort_option.callback = lambda _ctx, _param, value: (
    value if value is None or value in ANOMALY_SORT_FIELDS else _bad_sort(value))


def _bad_sort(value: str) -> str:
    raise click.BadParameter(f"{value!r} is not one of: {', '.join(ANOMALY_SORT_FIELDS)}",
                             param_hint="--sort")


# --------------------------------------------------------------------------- summary
@main.command(epilog=NO_FAIL_ON_HELP)
@click.argument("files", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--max-connections", type=click.IntRange(min=1), default=None, metavar="N",
              help="Live connections kept at most (default 100000), as for analyze.")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Detector parameters from a TOML file.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Set a detector parameter (e.g. scan.max_tracked=1000). Repeatable.")
@click.option("--strict", is_flag=True, help="Treat a damaged capture as an error (exit 2).")
@click.option("-q", "--quiet", is_flag=True, help="No warnings on standard error.")
@JOBS_OPTION
@LOCAL_TIME_OPTION
def summary(files: tuple[str, ...], fmt: str, max_connections: int | None, config: str | None,
            params: tuple[str, ...], strict: bool, quiet: bool, jobs: int,
            local_time: bool) -> None:
    """The capture at a glance: frames, link types, time span, skipped frames by reason,
    connections by how they opened and closed, anomalies by code and severity.

    \b
    Examples:
      tcptrace-py summary capture.pcap
      tcptrace-py summary a.pcap b.pcap --format json | jq .by_close
    """
    target, _ = _open_out(None, "json")  # standard output: closed is one line, exit 2
    # Streamed: records and anomalies are counted as they come and dropped, so memory is
    # bounded by the engine's live connections (--max-connections), as for analyze's jsonl.
    options = build_options(config, params, max_connections=max_connections,
                            keep_events=False)
    counter = SummaryCounter()
    run = _run(files, options, strict, quiet, Filters(), on_record=counter.add_record,
               keep=False, on_anomaly=lambda _cap, a: counter.add_anomaly(a), jobs=jobs)
    s = counter.summary(run.diag)
    with _writing(target):
        if fmt == "json":
            target.stream.write(dumps(s) + "\n")
        else:
            _print_summary(_console(target.stream), s, local_time)
    _exit_for(run, None)


# --------------------------------------------------------------------------- flow
@main.command(epilog=NO_FAIL_ON_HELP)
@click.argument("file")
@click.argument("flow_id", type=int)
@click.option("--frames", "frame_range", default=None, metavar="A-B",
              help="Only frames A to B (either end may be left out: 100-, -250).")
@click.option("--limit", type=click.IntRange(min=0), default=TABLE_LIMIT, show_default=True,
              metavar="N", help="Show at most N packets (0: all).")
@click.option("--strict", is_flag=True, help="Treat a damaged capture as an error (exit 2).")
@click.option("--interesting", is_flag=True,
              help="Only packets that changed a state, carry an analysis flag (retransmission,"
                   " zero window...) or SYN/FIN/RST.")
@click.option("--stats", is_flag=True,
              help="Per-direction statistics side by side (client->server, server->client) "
                   "with units, as tcptrace's long output, instead of the ladder.")
@LOCAL_TIME_OPTION
def flow(file: str, flow_id: int, frame_range: str | None, limit: int, strict: bool,
         interesting: bool, stats: bool, local_time: bool) -> None:
    """Show one connection packet by packet as a ladder, with every transition explained.

    \b
    Examples:
      tcptrace-py flow capture.pcap 0
      tcptrace-py flow capture.pcap 12 --frames 1200-1320
    """
    first, last = _parse_frames(frame_range)

    run = _run((file,), Options(keep_packets=True, packet_flows=(flow_id,)), strict, False,
               Filters(flows=(flow_id,)))
    target = run.results.get((None, flow_id))
    if target is None and run.interrupted:
        _exit_for(run, None)
    if target is None:
        _fail(f"{file}: no connection with flow_id {flow_id}")
        return
    rec = target.record
    console = _console(sys.stdout)
    client = escape(_endpoint(rec["client_ip"], rec["client_port"]))
    server = escape(_endpoint(rec["server_ip"], rec["server_port"]))
    console.print(f"[bold]flow {flow_id}[/]: {client} (client) "
                  f"<-> {server} (server); started {units.instant(rec['start_ts'], local_time)}"
                  f", lasted {units.seconds(rec['duration_s'])}; "
                  f"open={escape(_open_text(rec))} "
                  f"close={rec['close']}; final states client={rec['client_state']} "
                  f"server={rec['server_state']}; anomalies: "
                  f"{', '.join(rec['anomalies']) or 'none'}")
    if stats:
        console.print(_stats_table(rec, client, server))
        for a in target.anomalies:
            console.print(f"[{_SEVERITY_STYLE.get(a.severity, '')}]{a.severity}[/] {a.code}: "
                          f"{escape(a.summary)} (frames {a.first_frame}-{a.last_frame})")
        _exit_for(run, None)
        return
    events_frames = {ev.frame for ev in target.events}
    packets = target.packets or []
    in_range = [p for p in packets if first <= p[0] <= last and
                (not interesting or p[5] & ~_ROUTINE_ANALYSIS or p[4] & _CONTROL_FLAGS
                 or p[0] in events_frames)]
    shown_frames = {p[0] for p in in_range[:limit or None]}
    from tcptrace_py.ladder import ladder_rows

    details = _segment_details(file, rec, shown_frames)
    rows, events_by_frame = ladder_rows(rec, target.events, packets, details, shown_frames)
    if len(rows) > PLAIN_LADDER_MIN_ROWS:
        _plain_ladder(rows)
    else:
        console.print(_rich_ladder(rows, console.width < LADDER_WIDE_MIN))
    omitted = len(in_range) - len(shown_frames)
    if omitted:
        console.print(f"[dim]showing {len(shown_frames):,} of {len(in_range):,} packets; "
                      "--limit 0 shows all, --frames A-B another stretch[/]")
    # Events on frames without a row of their own (timers): those the rows shown reach.
    reach = max(shown_frames) if omitted and shown_frames else last
    for frame, lines in sorted(events_by_frame.items()):
        if first <= frame <= reach:
            console.print(f"frame {frame}: " + escape("; ".join(lines)))
    for a in target.anomalies:
        console.print(f"[{_SEVERITY_STYLE.get(a.severity, '')}]{a.severity}[/] {a.code}: "
                      f"{escape(a.summary)} (frames {a.first_frame}-{a.last_frame})")
    _exit_for(run, None)


_CONTROL_FLAGS = 0x07  # FIN, SYN, RST
_ROUTINE_ANALYSIS = (1 << 22) | (1 << 24)
"""analysis/flags.py TRUNCATED and RTT_SAMPLE: on most packets of a capture, not events
(``flow --interesting`` ignores them)."""
PLAIN_LADDER_MIN_ROWS = 2000
"""Above this many rows the ladder is printed as plain fixed-width lines: rich lays out
~1,000 table rows a second here (26,686 packets of tcptrace's zwnd.dmp took 50 s), plain
lines print at once."""


def _segment_details(path: str, rec: dict[str, Any],
                     wanted: set[int]) -> dict[int, SegmentDetail]:
    """Sequence, ACK, window and SACK of the wanted frames of one connection, from a second
    read of the capture (the engine keeps only flags and lengths per packet, as plots.py
    does); nothing for standard input, which cannot be read twice."""
    if path == "-" or not wanted:
        return {}
    from tcptrace_py.capture import read_flow_segments
    from tcptrace_py.ladder import segment_details

    out: dict[int, SegmentDetail] = {}
    try:  # what was read before a damaged stretch stays in ``out``
        segment_details(read_flow_segments(path, rec, max(wanted)), wanted, out)
    except (CaptureError, OSError):
        pass  # the first read already reported the capture's problems
    return out


def _rich_ladder(rows: Sequence[LadderRow], narrow: bool) -> Any:
    """The ladder as a rich table; below LADDER_WIDE_MIN columns it stacks frame/time,
    segment/numbers and the two states, with analysis and transitions wrapping last."""
    from rich.table import Table

    table = Table(show_lines=narrow)
    cols = (("frame\nt (s)", "segment\nseq, ack, win", "states\ncli/srv",
             "analysis, transitions") if narrow else
            ("frame", "t (s)", "client", "", "server", "seq / ack / win / sack", "len",
             "analysis", "client state", "server state", "transitions"))
    for col in cols:
        last_col = col in ("transitions", "analysis, transitions")
        table.add_column(col, no_wrap=not last_col and col != "seq / ack / win / sack",
                         ratio=1 if last_col else None, overflow="fold")
    for r in rows:
        arrow = "──▶" if r.from_client else "◀──"
        numbers = r.detail.text() if r.detail else ""
        transitions = escape("\n".join(r.transitions))
        if narrow:
            segment = f"{r.flags} {arrow}" if r.from_client else f"{arrow} {r.flags}"
            # One number per line: the column stays narrow, the transitions get the room.
            numbers = "\n".join(r.detail.lines()) if r.detail else ""
            table.add_row(f"{r.frame}\n{r.t_s:.6f}",
                          "\n".join(x for x in (f"{segment} {r.payload} B", numbers) if x),
                          f"{r.client_state}\n{r.server_state}",
                          "\n".join(x for x in (r.analysis, transitions) if x))
            continue
        table.add_row(str(r.frame), f"{r.t_s:.6f}", r.flags if r.from_client else "", arrow,
                      "" if r.from_client else r.flags, numbers, str(r.payload), r.analysis,
                      r.client_state, r.server_state, transitions)
    return table


def _plain_ladder(rows: Sequence[LadderRow]) -> None:
    """The ladder as plain fixed-width lines (many rows): one line per packet, its
    transitions on indented lines below."""
    lines = [f"{'frame':>8} {'t (s)':>12}  {'segment':<11} {'len':>5}  "
             f"{'client/server state':<25}  seq / ack / win / sack; analysis"]
    for r in rows:
        seg = f"{r.flags} ──▶" if r.from_client else f"◀── {r.flags}"
        numbers = r.detail.text() if r.detail else ""
        tail = "; ".join(x for x in (numbers, r.analysis) if x)
        lines.append(f"{r.frame:>8} {r.t_s:>12.6f}  {seg:<11} {r.payload:>5}  "
                     f"{r.client_state + '/' + r.server_state:<25}  {tail}")
        lines.extend(f"{'':>23}{t}" for t in r.transitions)
    sys.stdout.write("\n".join(lines) + "\n")


def _stat_value(value: Any, unit: str) -> str:
    """One statistic for people: missing as "-", times in a reader's units, counts with
    thousands separators, the unit after the number."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "ms":
        return units.seconds(value / 1000)
    if unit in ("bytes", "packets", "count") and isinstance(value, (int, float)):
        text = f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"
        return f"{text} B" if unit == "bytes" else text
    if unit == "bytes/s":
        return f"{value:,.0f} B/s"
    return str(value)


def _stats_table(rec: dict[str, Any], client: str, server: str) -> Any:
    """tcptrace -l's two columns (a2b, b2a) for one connection, from columns.DIRECTION (the
    same names, units and tcptrace labels as ``tcptrace-py columns``)."""
    from rich.table import Table

    from tcptrace_py.columns import DIRECTION

    table = Table(title="per-direction statistics (what each side sent)")
    table.add_column("statistic", no_wrap=True)
    table.add_column(f"{client} ->", justify="right", no_wrap=True)
    table.add_column(f"<- {server}", justify="right", no_wrap=True)
    table.add_column("tcptrace -l", overflow="fold")
    absent_if_negative = ("mss_bytes", "window_scale", "isn")  # -1: no such option / SYN
    for col in DIRECTION:
        values = [rec[f"{side}_{col.name}"] for side in ("client", "server")]
        if col.name in absent_if_negative:
            values = [None if v is not None and v < 0 else v for v in values]
        table.add_row(col.name.replace("_", " "), *(_stat_value(v, col.unit) for v in values),
                      escape(col.tcptrace))
    return table


def _parse_frames(text: str | None) -> tuple[int, int]:
    """``A-B`` (either end optional) -> inclusive frame bounds; a usage error otherwise."""
    if text is None:
        return 0, sys.maxsize
    lo, sep, hi = text.partition("-")
    try:
        first = int(lo) if lo.strip() else 0
        last = int(hi) if hi.strip() else sys.maxsize
    except ValueError:
        first = last = -1
    if not sep or first < 0 or last < first:
        raise click.BadParameter(f"{text!r} is not a frame range like 100-250",
                                 param_hint="--frames")
    return first, last


# --------------------------------------------------------------------------- reference
@main.command(epilog=_exit_help(0, 2))
@click.argument("table", required=False, default="flows",
                type=click.Choice(("flows", "anomalies", "events", "packets", "captures")))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default="table", show_default=True,
              help="markdown: every table, as docs/columns.md.")
def columns(table: str, fmt: str) -> None:
    """What each column means: unit, kind, meaning and the tcptrace -l line, tshark field
    and Zeek conn.log field of the same thing (from tcptrace_py/columns.py).

    \b
    Examples:
      tcptrace-py columns                      # the ~180 flow columns
      tcptrace-py columns anomalies
      tcptrace-py columns --format json | jq '.[] | select(.unit == "ms")'
    """
    from tcptrace_py import columns as ref

    if fmt == "markdown":
        click.echo(ref.markdown(), nl=False)
        return
    rows = ref.rows(table)
    if fmt == "json":
        click.echo(dumps(rows))
        return
    from rich.table import Table

    out = Table(title=f"{table}: {len(rows)} columns", show_lines=True)
    for col in ("column", "kind", "unit", "meaning", "tcptrace -l", "tshark", "Zeek"):
        fixed = col in ("column", "kind", "unit")
        out.add_column(col, no_wrap=fixed, overflow="fold",
                       ratio=None if fixed else (3 if col == "meaning" else 1))
    for r in rows:
        out.add_row(*(escape(r[k]) for k in ("column", "kind", "unit", "meaning", "tcptrace",
                                             "tshark", "zeek")))
    _console(sys.stdout).print(out)


@main.command(epilog=_exit_help(0, 2))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
def codes(fmt: str) -> None:
    """Every anomaly code: severity, category, the detector that raises it, what it means,
    and that detector's parameters with their defaults (set them with --param
    DETECTOR.NAME=VALUE or --config).

    \b
    Examples:
      tcptrace-py codes
      tcptrace-py codes --format json | jq '.[] | select(.severity == "error") | .code'
    """
    from tcptrace_py import detectors

    params: dict[str, list[dict[str, Any]]] = {}
    for det, name, default, doc in detectors.parameters():
        params.setdefault(det, []).append({"name": f"{det}.{name}", "default": default,
                                           "doc": doc})
    rows = [{"code": code, "severity": sev, "category": cat, "detector": det, "meaning": doc,
             "parameters": params.get(det, [])}
            for det, code, sev, cat, doc in detectors.codes()]
    if fmt == "json":
        click.echo(dumps(rows))
        return
    from rich.table import Table

    out = Table(title=f"{len(rows)} anomaly codes", show_lines=True)
    for col in ("code", "severity", "category", "meaning", "parameters (default)"):
        out.add_column(col, ratio=3 if col == "meaning" else (2 if col.startswith("param")
                                                                else None),
                       overflow="fold")
    for r in rows:
        style = _SEVERITY_STYLE.get(str(r["severity"]), "")
        out.add_row(str(r["code"]), f"[{style}]{r['severity']}[/]", str(r["category"]),
                    escape(str(r["meaning"])),
                    escape("\n".join(f"{p['name']}={p['default']}" for p in params.get(
                        str(r["detector"]), []))))
    _console(sys.stdout).print(out)


# --------------------------------------------------------------------------- plot
PLOT_KINDS = ("tsg", "rtt", "throughput", "window", "timeline")


@main.command(epilog=NO_FAIL_ON_HELP)
@click.argument("file")
@click.option("--flow", "flow_id", type=int, default=None, metavar="ID",
              help="Connection to plot (required except for --kind timeline).")
@click.option("--kind", type=click.Choice(PLOT_KINDS), default="tsg", show_default=True,
              help="tsg: time-sequence graph; rtt: RTT samples; throughput; window: "
                   "advertised window and bytes in flight; timeline: every connection.")
@click.option("--direction", type=click.Choice(["auto", "client", "server"]), default="auto",
              show_default=True, help="Sender whose data a tsg/rtt/window plot follows "
                                      "(auto: the one that sent more).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Image file to write (.png, .svg, .pdf).")
@click.option("--strict", is_flag=True, help="Treat a damaged capture as an error (exit 2).")
@click.option("--frames", "frame_range", default=None, metavar="A-B",
              help="Only frames A to B of the connection (100-, -250), on the whole "
                   "connection's time and sequence origin.")
@click.option("-q", "--quiet", is_flag=True, help="No warnings on standard error.")
def plot(file: str, flow_id: int | None, kind: str, direction: str, output: str,
         strict: bool, frame_range: str | None, quiet: bool) -> None:
    """Draw a connection (time-sequence graph, RTT, throughput, window) or the capture's
    connection timeline, with matplotlib, to an image file. Needs the plot extra
    (pip install 'tcptrace-py[plot]').

    \b
    Examples:
      tcptrace-py plot capture.pcap --flow 3 --kind tsg -o flow3.png
      tcptrace-py plot capture.pcap --flow 3 --kind rtt -o rtt.svg
      tcptrace-py plot capture.pcap --kind timeline -o timeline.png
    """
    if kind != "timeline" and flow_id is None:
        raise click.UsageError(f"--kind {kind} needs --flow ID")
    if kind == "timeline" and frame_range is not None:
        raise click.UsageError("--frames applies to a connection's plot, not --kind timeline")
    frames = _parse_frames(frame_range) if frame_range is not None else None
    if importlib.util.find_spec("matplotlib") is None:
        _fail("plot needs matplotlib (pip install tcptrace-py[plot])")
    from tcptrace_py import plots
    from tcptrace_py.frames import analyze as analyze_api

    try:
        # A flow plot needs that connection's packet rows only; the timeline all of them.
        result = analyze_api(file if file != "-" else sys.stdin.buffer.read(), name=file,
                             strict=strict, packets=True,
                             packet_flows=() if kind == "timeline" or flow_id is None
                             else (flow_id,))
        if kind == "timeline":
            fig = plots.plot_timeline(result).figure
        else:
            assert flow_id is not None
            fig = plots.plot_flow(result, flow_id, kind, direction=direction,
                                  frames=frames).figure
        fig.savefig(output, dpi=120)
    except CaptureError as exc:
        _fail(str(exc))
    except KeyError as exc:
        _fail(f"{file}: {exc.args[0]}")
    except (OSError, ValueError) as exc:
        _fail(f"{output}: {exc}")
    _report_diag(result.diagnostics, quiet)


# --------------------------------------------------------------------------- report
@main.command(epilog=NO_FAIL_ON_HELP)
@click.argument("file")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="HTML file to write (one self-contained file; replaced when complete).")
@click.option("--title", default=None, help="Page title (default: the capture's file name).")
@click.option("--largest", type=click.IntRange(min=0), default=None, metavar="N",
              help="Embed packet detail for the N largest connections besides those with "
                   "findings (default 20).")
@click.option("--max-detail-mb", type=click.FloatRange(min=0), default=None, metavar="MB",
              help="Most packet detail embedded, in MB (default 40); what is left out is "
                   "named in the report.")
@engine_options
@click.option("--strict", is_flag=True, help="Treat a damaged capture as an error (exit 2).")
@click.option("-q", "--quiet", is_flag=True, help="No warnings on standard error.")
def report(file: str, output: str, title: str | None, largest: int | None,
           max_detail_mb: float | None, config: str | None, params: tuple[str, ...],
           time_wait_s: float | None, idle_timeout_s: float | None,
           attempt_timeout_s: float | None, max_connections: int | None, strict: bool,
           quiet: bool) -> None:
    """Write an interactive HTML report of a capture: summary, findings with evidence,
    the connection table, and per connection its lifecycle, ladder and zoomable
    time-sequence, RTT, throughput and window graphs (docs/report.md).

    The file is self-contained (no network request; open it offline, mail it, attach it).

    \b
    Examples:
      tcptrace-py report capture.pcap -o report.html
      tcptrace-py report big.pcapng --largest 50 --max-detail-mb 100 -o big.html
    """
    options = build_options(config, params, time_wait_s, idle_timeout_s, max_connections,
                            attempt_timeout_s)
    from tcptrace_py.frames import analyze as analyze_api

    try:
        # Standard input cannot be read twice: keep it in memory for the second pass.
        result = analyze_api(file if file != "-" else sys.stdin.buffer.read(), name=file,
                             strict=strict, options=options)
    except CaptureError as exc:
        _fail(str(exc))
        return
    name = title if title is not None else ("stdin" if file == "-" else os.path.basename(file))
    try:
        result.to_html(output, title=name, largest=largest,
                       max_detail_bytes=None if max_detail_mb is None
                       else int(max_detail_mb * 1_000_000))
    except CaptureError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{output}: {exc.strerror or exc}")
    _report_diag(result.diagnostics, quiet)
