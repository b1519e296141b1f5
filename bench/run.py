#!/usr/bin/env python3
"""Time tcptrace-py against tcptrace and tshark on the same captures.

Why this shape: a benchmark result is only worth quoting if it can be re-run the same way,
so every tool runs as a child process on the same file, in alternating order (round 1:
ours, tcptrace, tshark; round 2: the same...) so that cache warmth and machine noise hit
all tools alike, and medians are reported.  Peak RSS comes from ``os.wait4`` (the kernel's
``ru_maxrss`` of that child alone, in KiB on Linux), wall time from ``perf_counter``.

What each tool does (full analysis, output discarded):

- ours:     ``tcptrace-py analyze FILE --format jsonl -o /dev/null`` (override: ``--cmd``)
- tcptrace: ``tcptrace -n -l -r FILE > /dev/null`` (no name lookups, long output, RTT stats)
- tshark:   ``tshark -n -r FILE -o tcp.analyze_sequence_numbers:TRUE -T fields
  -e tcp.analysis.flags > /dev/null`` (TCP sequence analysis on, one field printed)

Start-up latency is the time from spawning a tool to its first byte on stdout, on a tiny
capture (so it is dominated by interpreter/library start-up, not analysis).

``--smoke`` (for CI) generates a 2 k-packet capture, runs each available tool once and
only checks that everything runs; it never asserts anything about timings.

Usage::

    python bench/run.py bench/out/200k.pcap bench/out/2m.pcap --rounds 3 \\
        --json bench/out/results.json --markdown bench/out/results.md
    python bench/run.py --smoke
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_capture  # noqa: E402  (sibling script, not a package)

#: Packets in the capture used for start-up latency: small enough that analysis is noise.
STARTUP_PACKETS = 50
#: Packets in the --smoke capture: every connection kind appears, and it runs in seconds.
SMOKE_PACKETS = 2000
#: Timeout for one tool run on one file; tshark on 2 M packets takes minutes.
RUN_TIMEOUT_S = 3600.0

OURS_CMD = "{ours} analyze {file} --format jsonl -o /dev/null"
OURS_STARTUP_CMD = "{ours} analyze {file} --format jsonl"
TCPTRACE_CMD = "tcptrace -n -l -r {file}"
TSHARK_CMD = (
    "tshark -n -r {file} -o tcp.analyze_sequence_numbers:TRUE -T fields -e tcp.analysis.flags"
)


@dataclass
class Tool:
    """A tool under test: a command template with ``{file}`` and whether it is runnable."""

    name: str
    cmd: str
    startup_cmd: str
    available: bool
    why_unavailable: str = ""
    version: str = ""


@dataclass
class Run:
    """One timed run of one tool on one file."""

    wall_s: float
    max_rss_kib: int
    returncode: int
    stderr_tail: str = ""
    #: user + system CPU seconds of the tool (less sensitive than wall time to other work
    #: on a shared machine, as long as the tool is single-threaded).
    cpu_s: float = 0.0


@dataclass
class Result:
    """All runs of one tool on one capture, and their summary."""

    tool: str
    capture: str
    packets: int
    runs: list[Run] = field(default_factory=list)
    median_wall_s: float | None = None
    median_cpu_s: float | None = None
    packets_per_s: float | None = None
    packets_per_cpu_s: float | None = None
    max_rss_mib: float | None = None
    ok: bool = True


def _ours_prefix() -> tuple[str, str]:
    """How to start our CLI: the console script if installed, else the module from the
    repository (no install needed).  Returns (prefix, reason-if-unavailable)."""
    exe = shutil.which("tcptrace-py")
    if exe:
        return shlex.quote(exe), ""
    if importlib.util.find_spec("tcptrace_py") is None:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        found = importlib.util.find_spec("tcptrace_py.cli") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        return "", "tcptrace_py.cli not importable (CLI not written yet?)"
    py = shlex.quote(sys.executable)
    if importlib.util.find_spec("tcptrace_py.__main__") is not None:
        return f"{py} -m tcptrace_py", ""
    return f"{py} -c 'import sys; from tcptrace_py.cli import main; sys.exit(main())'", ""


def _version(argv: list[str]) -> str:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in (cp.stdout + cp.stderr).splitlines():
        if line.strip() and "Running as user" not in line:
            return line.strip()
    return ""


def discover_tools(
    ours_cmd: str | None, ours_startup_cmd: str | None, only: set[str] | None
) -> list[Tool]:
    """The tools to run, marking absent ones (the runner skips them, never fails on them)."""
    tools: list[Tool] = []
    prefix, why = _ours_prefix()
    if ours_cmd:
        cmd = ours_cmd
        startup = ours_startup_cmd or ours_cmd.replace(" -o /dev/null", "")
        tools.append(Tool("tcptrace-py", cmd, startup, True))
    else:
        tools.append(
            Tool(
                "tcptrace-py",
                OURS_CMD.replace("{ours}", prefix),
                (ours_startup_cmd or OURS_STARTUP_CMD).replace("{ours}", prefix),
                bool(prefix),
                why,
            )
        )
    for name, cmd, ver in (
        ("tcptrace", TCPTRACE_CMD, ["tcptrace", "-v"]),
        ("tshark", TSHARK_CMD, ["tshark", "--version"]),
    ):
        present = shutil.which(name) is not None
        tools.append(
            Tool(
                name,
                cmd,
                cmd,
                present,
                "" if present else f"{name} not on PATH",
                _version(ver) if present else "",
            )
        )
    if only is not None:
        tools = [t for t in tools if t.name in only]
    return tools


def _child_env() -> dict[str, str]:
    """Children find the package from the repository even when it is not pip-installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


#: GNU time measures the tool's peak RSS from a fresh fork of a tiny process.  Plain
#: ``os.wait4`` on a child of this Python process over-reports: Linux carries the parent's
#: resident set into the child's ``ru_maxrss`` at fork and keeps the high-water mark
#: across exec (measured here: tcptrace 7.6 MiB under GNU time, 14 MiB via wait4).
GNU_TIME = "/usr/bin/time"


def rss_method() -> str:
    """How peak RSS is measured on this machine (recorded in the JSON)."""
    if os.access(GNU_TIME, os.X_OK):
        return "GNU time %M (max RSS of the tool, KiB)"
    return "os.wait4 ru_maxrss (includes the runner's RSS at fork)"


def run_once(cmd: str, file: Path, timeout_s: float = RUN_TIMEOUT_S) -> Run:
    """Run ``cmd`` on ``file`` with stdout discarded; wall time and the tool's peak RSS."""
    argv = shlex.split(cmd.replace("{file}", shlex.quote(str(file))))
    with (
        open(os.devnull, "wb") as devnull,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(prefix="rss-", suffix=".txt") as rss_file,
    ):
        use_time = os.access(GNU_TIME, os.X_OK)
        if use_time:
            argv = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv]
        t0 = time.perf_counter()
        p = subprocess.Popen(
            argv, stdout=devnull, stderr=err, env=_child_env(), start_new_session=True
        )
        deadline = t0 + timeout_s
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(p.pid, 9)
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
        max_rss_kib = int(ru.ru_maxrss)
        if use_time:
            # GNU time writes "Command exited with non-zero status N" before %M on failure.
            lines = Path(rss_file.name).read_text().split()
            if lines and lines[-1].isdigit():
                max_rss_kib = int(lines[-1])
    # Linux's wait4 reports the child plus its reaped descendants, so wrapping in GNU time
    # still counts the tool's CPU.
    cpu = ru.ru_utime + ru.ru_stime
    return Run(round(wall, 4), max_rss_kib, p.returncode, tail, round(cpu, 4))


def first_output_s(cmd: str, file: Path) -> tuple[float | None, Run]:
    """Seconds from spawn to the first byte on stdout (None if the tool printed nothing)."""
    argv = shlex.split(cmd.replace("{file}", shlex.quote(str(file))))
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_child_env())
    assert p.stdout is not None
    first = p.stdout.read(1)
    t_first = time.perf_counter() - t0 if first else None
    p.stdout.read()
    p.stdout.close()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return (
        round(t_first, 4) if t_first is not None else None,
        Run(round(wall, 4), int(ru.ru_maxrss), p.returncode),
    )


def count_packets(path: Path) -> int:
    """Records in a classic pcap (the generator's ``.meta.json`` is used when present)."""
    meta = Path(str(path) + ".meta.json")
    if meta.exists():
        try:
            return int(json.loads(meta.read_text())["packets"])
        except (ValueError, KeyError):
            pass
    n = 0
    with open(path, "rb") as fh:
        hdr = fh.read(24)
        endian = "<" if hdr[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        rec = struct.Struct(endian + "IIII")
        while True:
            h = fh.read(16)
            if len(h) < 16:
                return n
            fh.seek(rec.unpack(h)[2], os.SEEK_CUR)
            n += 1


def machine_info() -> dict[str, str]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cpus": str(os.cpu_count() or ""),
        "cpu_model": model,
        "memory": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        # Other work on the machine skews timings; the load at the end of the run says so.
        "loadavg_1_5_15": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def benchmark(
    tools: list[Tool], captures: list[Path], rounds: int, log: bool = True
) -> list[Result]:
    """Alternating rounds: every tool once per round on each capture."""
    results: list[Result] = []
    for cap in captures:
        n = count_packets(cap)
        by_tool = {t.name: Result(t.name, str(cap), n) for t in tools if t.available}
        for r in range(rounds):
            order = [t for t in tools if t.available]
            if r % 2:
                order.reverse()  # alternate who goes first, so no tool always runs cold
            for t in order:
                run = run_once(t.cmd, cap)
                by_tool[t.name].runs.append(run)
                if log:
                    print(
                        f"[{cap.name}] round {r + 1}/{rounds} {t.name}: {run.wall_s:.3f} s, "
                        f"cpu {run.cpu_s:.3f} s, {run.max_rss_kib / 1024:.1f} MiB, "
                        f"rc={run.returncode}",
                        file=sys.stderr,
                    )
        for res in by_tool.values():
            res.ok = all(x.returncode == 0 for x in res.runs)
            # A failed run (e.g. a crash after 0.1 s) is no timing: summarize good runs only.
            good = [x for x in res.runs if x.returncode == 0]
            if good:
                res.median_wall_s = round(statistics.median(x.wall_s for x in good), 4)
                res.median_cpu_s = round(statistics.median(x.cpu_s for x in good), 4)
                res.packets_per_s = round(n / res.median_wall_s) if res.median_wall_s else None
                if res.median_cpu_s:
                    res.packets_per_cpu_s = round(n / res.median_cpu_s)
                res.max_rss_mib = round(max(x.max_rss_kib for x in good) / 1024, 1)
            results.append(res)
    return results


def startup(tools: list[Tool], tiny: Path, rounds: int) -> dict[str, dict[str, object]]:
    """Median time to first output and total wall time on a tiny capture."""
    out: dict[str, dict[str, object]] = {}
    for t in tools:
        if not t.available:
            continue
        firsts: list[float] = []
        walls: list[float] = []
        rcs: list[int] = []
        for _ in range(rounds):
            f, run = first_output_s(t.startup_cmd, tiny)
            if f is not None:
                firsts.append(f)
            walls.append(run.wall_s)
            rcs.append(run.returncode)
        out[t.name] = {
            "first_output_s": round(statistics.median(firsts), 4) if firsts else None,
            "wall_s": round(statistics.median(walls), 4),
            "ok": all(rc == 0 for rc in rcs),
        }
    return out


def ratios(results: list[Result]) -> dict[str, dict[str, float]]:
    """ours/tcptrace and ours/tshark ratios per capture, of median wall time and of median
    CPU time (>1 means we are slower)."""
    out: dict[str, dict[str, float]] = {}
    for cap in sorted({r.capture for r in results}):
        row = {r.tool: r for r in results if r.capture == cap}
        ours = row.get("tcptrace-py")
        if ours is None or not ours.median_wall_s:
            continue
        d: dict[str, float] = {}
        for name, other in row.items():
            if name == "tcptrace-py":
                continue
            if other.median_wall_s:
                d[f"ours/{name} (wall time)"] = round(ours.median_wall_s / other.median_wall_s, 2)
            if other.median_cpu_s and ours.median_cpu_s:
                d[f"ours/{name} (CPU time)"] = round(ours.median_cpu_s / other.median_cpu_s, 2)
        out[cap] = d
    return out


def markdown(
    results: list[Result],
    start: dict[str, dict[str, object]],
    tools: list[Tool],
    rounds: int,
) -> str:
    """The tables that go into docs/benchmarks.md."""
    lines = [
        f"Median of {rounds} alternating run(s) per tool; peak RSS is the largest over runs.",
        "",
        "| capture | packets | tool | median wall (s) | median CPU (s) | packets/s (wall) "
        "| packets/CPU-s | peak RSS (MiB) | ok |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        n_ok = sum(x.returncode == 0 for x in r.runs)
        wall = "-" if r.median_wall_s is None else f"{r.median_wall_s:.3f}"
        cpu = "-" if r.median_cpu_s is None else f"{r.median_cpu_s:.3f}"
        pps = "-" if r.packets_per_s is None else f"{r.packets_per_s:,}"
        ppc = "-" if r.packets_per_cpu_s is None else f"{r.packets_per_cpu_s:,}"
        rss = "-" if r.max_rss_mib is None else str(r.max_rss_mib)
        ok = "yes" if r.ok else f"NO ({n_ok}/{len(r.runs)} runs ok)"
        lines.append(
            f"| {Path(r.capture).name} | {r.packets:,} | {r.tool} | {wall} | {cpu} | {pps} "
            f"| {ppc} | {rss} | {ok} |"
        )
    rat = ratios(results)
    if rat:
        lines += ["", "| capture | ratio | value |", "| --- | --- | ---: |"]
        for cap, d in rat.items():
            for k, v in d.items():
                lines.append(f"| {Path(cap).name} | {k} | {v} |")
    if start:
        lines += [
            "",
            f"Start-up on a {STARTUP_PACKETS}-packet capture (median):",
            "",
            "| tool | time to first output (s) | total wall (s) |",
            "| --- | ---: | ---: |",
        ]
        for name, st in start.items():
            fo = st["first_output_s"]
            lines.append(f"| {name} | {'-' if fo is None else fo} | {st['wall_s']} |")
    skipped = [t for t in tools if not t.available]
    if skipped:
        lines += [""] + [f"Skipped {t.name}: {t.why_unavailable}." for t in skipped]
    return "\n".join(lines) + "\n"


def _gen(path: Path, packets: int, seed: int) -> None:
    with open(path, "wb") as fh:
        st = gen_capture.generate(fh, packets, seed)
    meta = {"seed": seed, "requested_packets": packets, **st.__dict__}
    Path(str(path) + ".meta.json").write_text(json.dumps(meta) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("captures", nargs="*", type=Path, help="pcap files to analyze")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per capture")
    p.add_argument(
        "--cmd",
        help="our command template with {file}, e.g. "
        "'python -m tcptrace_py analyze {file} --format jsonl -o /dev/null'",
    )
    p.add_argument("--startup-cmd", help="our start-up command template (prints to stdout)")
    p.add_argument("--tools", help="comma-separated subset: tcptrace-py,tcptrace,tshark")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up measurement")
    p.add_argument("--json", type=Path, help="write results as JSON here")
    p.add_argument("--markdown", type=Path, help="write the Markdown tables here")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="CI mode: tiny generated capture, one run per tool, checks they run",
    )
    a = p.parse_args(argv)
    only = set(a.tools.split(",")) if a.tools else None
    tools = discover_tools(a.cmd, a.startup_cmd, only)
    for t in tools:
        if not t.available:
            print(f"skipping {t.name}: {t.why_unavailable}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tcptrace-py-bench-") as tmp:
        tiny = Path(tmp) / "startup.pcap"
        _gen(tiny, STARTUP_PACKETS, 7)
        captures = list(a.captures)
        rounds = a.rounds
        if a.smoke:
            smoke = Path(tmp) / "smoke.pcap"
            _gen(smoke, SMOKE_PACKETS, 1)
            captures, rounds = [smoke], 1
        if not captures:
            p.error("give capture files or --smoke")
        results = benchmark(tools, captures, rounds)
        start = {} if a.no_startup else startup(tools, tiny, 1 if a.smoke else max(3, rounds))
    md = markdown(results, start, tools, rounds)
    doc = {
        "machine": machine_info(),
        "rss_method": rss_method(),
        "rounds": rounds,
        "tools": [asdict(t) for t in tools],
        "results": [asdict(r) for r in results],
        "ratios": ratios(results),
        "startup": start,
        "startup_packets": STARTUP_PACKETS,
    }
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(doc, indent=2) + "\n")
    if a.markdown:
        a.markdown.parent.mkdir(parents=True, exist_ok=True)
        a.markdown.write_text(md)
    print(md)
    if any(not r.ok for r in results) or any(not v["ok"] for v in start.values()):
        for r in results:
            if not r.ok:
                print(f"FAILED {r.tool} on {r.capture}: {r.runs[-1].stderr_tail}", file=sys.stderr)
        for k, v in start.items():
            if not v["ok"]:
                print(f"FAILED {k} start-up run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
