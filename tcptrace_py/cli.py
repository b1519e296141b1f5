"""Command line: the only module that imports click and rich.

Exit codes: 0 success; 1 ``--fail-on`` matched an anomaly; 2 bad usage or unreadable input.
Results go to stdout (or ``-o``), diagnostics to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from tcptrace_py import __version__
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.engine import Engine, FlowResult
from tcptrace_py.events import Anomaly
from tcptrace_py.options import Options

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


def _json_default(obj: object) -> object:
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def anomaly_dict(a: Anomaly) -> dict[str, Any]:
    """An anomaly as the JSON object of ``anomalies --format jsonl``."""
    return {"code": a.code, "severity": a.severity, "category": a.category,
            "flow_id": a.flow_id, "first_frame": a.first_frame, "last_frame": a.last_frame,
            "ts": a.ts_ns / 1e9, "summary": a.summary, "details": a.details}


def _err(msg: str) -> None:
    click.echo(f"tcptrace-py: {msg}", err=True)


def _report_diag(diag: Diagnostics, quiet: bool) -> None:
    if quiet:
        return
    for w in diag.warnings:
        _err(f"warning: {w}")
    if diag.warnings_dropped:
        _err(f"warning: {diag.warnings_dropped} more warnings not shown")
    if diag.skipped:
        parts = ", ".join(f"{k}={v}" for k, v in sorted(diag.skipped.items()))
        _err(f"skipped frames: {parts}")


def _run(files: tuple[str, ...], options: Options, strict: bool
         ) -> Iterator[tuple[str, Engine, FlowResult | None]]:
    """Analyse each file; yields (file, engine, result) and (file, engine, None) at each end."""
    for path in files:
        engine = Engine(options)
        for result in engine.run(sys.stdin.buffer if path == "-" else path, name=path,
                                 strict=strict):
            yield path, engine, result
        yield path, engine, None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcptrace-py")
def main() -> None:
    """Reconstruct the life of every TCP connection in packet captures.

    \b
    Examples:
      tcptrace-py analyze capture.pcap
      tcptrace-py analyze capture.pcapng.gz --format jsonl -o flows.jsonl
      tcpdump -w - -i any | tcptrace-py analyze -
      tcptrace-py anomalies capture.pcap --format jsonl
      tcptrace-py flow capture.pcap 3
    """


_FORMATS = click.Choice(["table", "json", "jsonl"])


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--format", "fmt", type=_FORMATS, default="table", show_default=True,
              help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
@click.option("--strict", is_flag=True, help="Treat a damaged capture as an error (exit 2).")
@click.option("-q", "--quiet", is_flag=True, help="No warnings on standard error.")
def analyze(files: tuple[str, ...], fmt: str, output: str | None, strict: bool,
            quiet: bool) -> None:
    """Analyse captures: one record per TCP connection.

    \b
    Examples:
      tcptrace-py analyze capture.pcap
      tcptrace-py analyze a.pcap b.pcapng --format jsonl -o flows.jsonl
      tcptrace-py analyze - < capture.pcap
    """
    options = Options()
    out: IO[str] = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    records: list[dict[str, Any]] = []
    try:
        for path, engine, result in _run(files, options, strict):
            if result is None:
                _report_diag(engine.diag, quiet)
                continue
            rec = result.record
            if len(files) > 1:
                rec = {"capture": path, **rec}
            if fmt == "jsonl":
                out.write(json.dumps(rec, default=_json_default) + "\n")
            else:
                records.append(rec)
    except CaptureError as exc:
        _err(str(exc))
        sys.exit(EXIT_BAD_INPUT)
    if fmt == "json":
        records.sort(key=lambda r: (r.get("capture", ""), r["flow_id"]))
        json.dump(records, out, default=_json_default, indent=1)
        out.write("\n")
    elif fmt == "table":
        _print_table(records, out)
    if output:
        out.close()


def _print_table(records: list[dict[str, Any]], out: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    records.sort(key=lambda r: (r.get("capture", ""), r["flow_id"]))
    table = Table(title=f"{len(records)} TCP connections")
    for col in ("flow", "client", "server", "open", "close", "client state", "server state",
                "pkts c/s", "bytes c/s", "retx", "anomalies"):
        table.add_column(col)
    for r in records:
        colour = "green" if r["close"] == "graceful" else (
            "red" if r["close"] in ("refused", "unanswered", "rst_by_client", "rst_by_server")
            else "yellow")
        table.add_row(str(r["flow_id"]), f"{r['client_ip']}:{r['client_port']}",
                      f"{r['server_ip']}:{r['server_port']}", r["open"],
                      f"[{colour}]{r['close']}[/]", r["client_state"], r["server_state"],
                      f"{r['client_packets']}/{r['server_packets']}",
                      f"{r['client_payload_bytes']}/{r['server_payload_bytes']}",
                      str(r.get("retransmissions", 0)), ", ".join(r.get("anomalies", [])))
    Console(file=out, width=200 if not out.isatty() else None).print(table)


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--format", "fmt", type=_FORMATS, default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None)
@click.option("--strict", is_flag=True, help="Treat a damaged capture as an error (exit 2).")
@click.option("-q", "--quiet", is_flag=True, help="No warnings on standard error.")
def anomalies(files: tuple[str, ...], fmt: str, output: str | None, strict: bool,
              quiet: bool) -> None:
    """List every anomaly found, with its evidence.

    \b
    Examples:
      tcptrace-py anomalies capture.pcap
      tcptrace-py anomalies capture.pcap --format jsonl | jq 'select(.severity=="error")'
    """
    out: IO[str] = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    found: list[dict[str, Any]] = []
    try:
        for path, engine, result in _run(files, Options(), strict):
            items = result.anomalies if result is not None else engine.summary.anomalies
            if result is None:
                _report_diag(engine.diag, quiet)
            for a in items:
                d = anomaly_dict(a)
                if len(files) > 1:
                    d = {"capture": path, **d}
                if fmt == "jsonl":
                    out.write(json.dumps(d, default=_json_default) + "\n")
                else:
                    found.append(d)
    except CaptureError as exc:
        _err(str(exc))
        sys.exit(EXIT_BAD_INPUT)
    if fmt == "json":
        json.dump(found, out, default=_json_default, indent=1)
        out.write("\n")
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(found)} anomalies")
        for col in ("severity", "code", "flow", "frames", "summary"):
            table.add_column(col)
        style = {"error": "red", "warning": "yellow", "info": "cyan"}
        for d in found:
            table.add_row(f"[{style.get(d['severity'], '')}]{d['severity']}[/]", d["code"],
                          "" if d["flow_id"] is None else str(d["flow_id"]),
                          f"{d['first_frame']}-{d['last_frame']}", d["summary"])
        Console(file=out).print(table)
    if output:
        out.close()


@main.command()
@click.argument("file")
@click.argument("flow_id", type=int)
@click.option("--strict", is_flag=True, help="Treat a damaged capture as an error (exit 2).")
def flow(file: str, flow_id: int, strict: bool) -> None:
    """Show one connection packet by packet as a ladder, with every transition explained.

    \b
    Example:
      tcptrace-py flow capture.pcap 0
    """
    from rich.console import Console
    from rich.table import Table

    from tcptrace_py.analysis import flag_names
    from tcptrace_py.segment import flags_text

    options = Options(keep_packets=True)
    target: FlowResult | None = None
    try:
        for _path, _engine, result in _run((file,), options, strict):
            if result is not None and result.record["flow_id"] == flow_id:
                target = result
    except CaptureError as exc:
        _err(str(exc))
        sys.exit(EXIT_BAD_INPUT)
    if target is None:
        _err(f"{file}: no connection with flow_id {flow_id}")
        sys.exit(EXIT_BAD_INPUT)
    rec = target.record
    console = Console()
    console.print(f"[bold]flow {flow_id}[/]: {rec['client_ip']}:{rec['client_port']} (client) "
                  f"<-> {rec['server_ip']}:{rec['server_port']} (server); open={rec['open']} "
                  f"close={rec['close']}; final states client={rec['client_state']} "
                  f"server={rec['server_state']}; anomalies: {', '.join(rec['anomalies'])}")
    events_by_frame: dict[int, list[str]] = {}
    for ev in target.events:
        events_by_frame.setdefault(ev.frame, []).append(
            f"{ev.endpoint}: {ev.old_state} -> {ev.new_state} ({ev.kind}; {ev.reason})")
    table = Table()
    for col in ("frame", "t (s)", "client", "", "server", "len", "analysis", "transitions"):
        table.add_column(col)
    t0 = rec["start_ts"]
    for frame, ts_ns, _fid, from_client, tflags, amask, plen in target.packets or []:
        arrow = "──▶" if from_client else "◀──"
        table.add_row(str(frame), f"{ts_ns / 1e9 - t0:.6f}",
                      flags_text(tflags) if from_client else "", arrow,
                      "" if from_client else flags_text(tflags), str(plen),
                      " ".join(flag_names(amask)).lower(),
                      "\n".join(events_by_frame.pop(frame, [])))
    console.print(table)
    for frame, lines in sorted(events_by_frame.items()):
        console.print(f"frame {frame}: " + "; ".join(lines))
