"""``tcptrace-py batch``: the click front end of :mod:`tcptrace_py.batch`.

Kept apart from cli.py so the batch owner and the CLI owner do not edit one file; cli.py
registers it with ``main.add_command(batch)``.

Exit codes follow cli.py: 0 every capture analysed; 1 at least one selected capture failed
(now or in the run that recorded it: a rerun does not turn a failure green); 2 bad usage
(no input found, output is a file, unreachable scheduler). 130 when interrupted (the
finished captures are kept and the next run resumes), 143 on SIGTERM (the same).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import click

from tcptrace_py.batch import (
    DASK_WORKER_TIMEOUT_S,
    FAILURE_TRANSIENT,
    STATUS_OK,
    BatchSummary,
    ClusterLostError,
    MissingExtraError,
    run_batch,
    safe_name,
)
from tcptrace_py.cli import build_options, engine_options
from tcptrace_py.export import printable
from tcptrace_py.options import MAX_SECONDS

EXIT_OK = 0
EXIT_FAILED_CAPTURES = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention
EXIT_TERMINATED = 143  # 128 + SIGTERM


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, systemd, a job scheduler's time limit), handled as Ctrl-C is: the
    workers are stopped, ``captures.parquet`` is written with what was done, exit 143."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the batch runs, SIGTERM raises :class:`_Terminated` in the main thread (the
    default action would end the process without writing ``captures.parquet``). Outside
    the main thread (a test runner's) signals cannot be handled: nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _err(msg: str) -> None:
    click.echo(f"tcptrace-py batch: {printable(msg)}", err=True)


def _failure_line(row: dict[str, Any]) -> str:
    """One line per failed capture, naming it (a dead worker's reason does not) and saying
    whether a rerun retries it."""
    error = str(row["error"])
    text = error if error.startswith(str(row["path"])) else f"{row['path']}: {error}"
    if row.get("failure") == FAILURE_TRANSIENT:
        text += " (transient: a rerun retries it)"
    return f"failed: {text}"


class _Progress:
    """A rich progress bar on stderr (only when stderr is a terminal): captures done,
    packets per second (frames analysed / wall time), failures."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.frames = 0
        self.failed = 0
        self.start_s = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def start(self, todo: int, skipped: int) -> None:
        if skipped:
            _err(f"{skipped} captures already done, skipped (use --force to redo them)")
        if not self.enabled or not todo:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("captures"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[pps]} pkt/s"),
                             TextColumn("[red]{task.fields[failed]} failed"),
                             TimeElapsedColumn(), TimeRemainingColumn(),
                             console=Console(stderr=True), transient=False)
        self._task = self._bar.add_task("batch", total=todo, pps="0", failed=0)
        self._bar.start()

    def done(self, row: dict[str, Any]) -> None:
        self.frames += int(row["frames"])
        if row["status"] != STATUS_OK:
            self.failed += 1
            if not self.enabled:
                _err(_failure_line(row))
        if self._bar is not None:
            rate = self.frames / max(time.monotonic() - self.start_s, 1e-9)
            self._bar.update(self._task, advance=1, pps=f"{rate:,.0f}", failed=self.failed)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """FloatRange lets NaN through (every comparison with it is false)."""
    if value != value:
        raise click.BadParameter("must be a number of seconds, not nan")
    return value


EXIT_CODES_HELP = """
\b
Exit codes:
  0    every selected capture analysed
  1    at least one selected capture failed (now or in the run that recorded it)
  2    bad usage (no input found, output is a file, bad option, a missing extra), an
       unreachable scheduler or a Dask cluster left without workers (--worker-timeout)
  130  interrupted (Ctrl-C); finished captures are kept, a rerun resumes
  143  terminated (SIGTERM): the same, workers stopped, captures.parquet written
"""


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", required=True,
              type=click.Path(file_okay=False, writable=True),
              help="Dataset directory (flows/, anomalies/, events/, captures.parquet).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Local worker processes [default: the CPU count].")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on this dask.distributed scheduler (e.g. tcp://host:8786) instead.")
@click.option("--worker-timeout", "worker_timeout_s", default=DASK_WORKER_TIMEOUT_S,
              show_default=True, metavar="SECONDS",
              type=click.FloatRange(min=0, max=MAX_SECONDS, min_open=True),
              callback=_finite,
              help="With --scheduler: fail (exit 2) when the cluster has had no worker "
                   "for this long.")
@click.option("--force", is_flag=True, help="Redo captures already done.")
@click.option("--strict", is_flag=True,
              help="A capture damaged after valid frames counts as failed.")
@engine_options
@click.option("--report", "html_report", is_flag=True,
              help="Also write an HTML report per capture and an index page to "
                   "DIR/reports/ (docs/report.md).")
@click.option("-q", "--quiet", is_flag=True, help="No summary or failure lines on stderr.")
def batch(inputs: tuple[str, ...], out_dir: str, jobs: int | None, scheduler: str | None,
          worker_timeout_s: float, force: bool, strict: bool, config: str | None,
          params: tuple[str, ...], time_wait_s: float | None, idle_timeout_s: float | None,
          attempt_timeout_s: float | None, max_connections: int | None, html_report: bool,
          quiet: bool) -> None:
    """Analyse many captures in parallel into a Parquet dataset.

    INPUT is a capture file, a directory (searched recursively; captures are recognised by
    their bytes, compressed ones included) or a glob pattern. Captures already in DIR's
    manifest with the same size and mtime are skipped, so an interrupted batch resumes;
    so are failures of the capture itself, while transient ones (disk full, out of memory,
    a missing module, a lost worker) are retried.

    Needs the parquet extra (pip install 'tcptrace-py[parquet]'); --scheduler needs the
    dask extra (pip install 'tcptrace-py[dask]').

    \b
    Examples:
      tcptrace-py batch /data/rings -o results/
      tcptrace-py batch 'dumps/**/*.pcap*' -o results/ --jobs 8
      tcptrace-py batch /shared/pcaps -o /shared/results --scheduler tcp://10.0.0.5:8786
      tcptrace-py batch /data/rings -o results/ --param rst_storm.min_rsts=50 --time-wait 30
      tcptrace-py batch captures/ -o results/ --report    # + results/reports/index.html
    """
    options = build_options(config, params, time_wait_s, idle_timeout_s, max_connections,
                            attempt_timeout_s)
    progress = _Progress(sys.stderr.isatty() and not quiet)
    summary: BatchSummary
    try:
        with _sigterm_as_interrupt():
            summary = run_batch(inputs, out_dir, jobs=jobs, scheduler=scheduler, force=force,
                                options=options, strict=strict, on_start=progress.start,
                                on_done=progress.done, worker_timeout_s=worker_timeout_s,
                                on_warning=None if quiet else lambda m: _err(f"warning: {m}"))
    except (FileNotFoundError, NotADirectoryError, FileExistsError, MissingExtraError) as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    except ClusterLostError as exc:  # what was done is recorded; a rerun resumes
        progress.stop()
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt as exc:
        progress.stop()
        what = "terminated" if isinstance(exc, _Terminated) else "interrupted"
        _err(f"{what}; finished captures are kept, rerun to resume")
        sys.exit(EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED)
    except OSError as exc:  # e.g. an unreachable scheduler address
        progress.stop()
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    progress.stop()
    if not summary.captures:
        _err("no captures found in the inputs")
        sys.exit(EXIT_USAGE)
    failed = summary.failed
    if progress.enabled:  # the bar did not print them one by one
        analysed = {safe_name(p) for p in summary.analysed}
        for row in failed:
            if row["path"] in analysed:
                _err(_failure_line(row))
    if html_report:
        from tcptrace_py.htmlreport import write_batch_reports

        failed_paths = {row["path"] for row in failed}
        errors = {p: next(r["error"] or "failed" for r in failed if r["path"] == safe_name(p))
                  for p in (*summary.analysed, *summary.skipped)
                  if safe_name(p) in failed_paths}
        try:
            index = write_batch_reports(
                [p for p in (*summary.analysed, *summary.skipped) if p not in errors],
                out_dir, options=options, strict=strict, failed=errors)
        except OSError as exc:
            _err(f"reports: {exc}")
            sys.exit(EXIT_USAGE)
        if not quiet:
            _err(f"reports -> {index}")
    if not quiet:
        _err(f"{len(summary.analysed)} analysed, {len(summary.skipped)} skipped, "
             f"{len(failed)} failed -> {summary.out_dir}")
    sys.exit(EXIT_FAILED_CAPTURES if failed else EXIT_OK)


if __name__ == "__main__":  # python -m tcptrace_py.batch_cli (before cli.py registers it)
    batch()
