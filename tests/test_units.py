"""Durations and instants for people (tcptrace_py/units.py), and where they are shown: finding
summaries, the connections table, the capture summary and the ladder header."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptrace_py import units
from tcptrace_py.cli import main
from tcptrace_py.engine import Engine

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.mark.parametrize("value,text", [
    (0.0, "0 s"), (1.02, "1.02 s"), (0.175047, "175 ms"), (0.042, "42.0 ms"),
    (3.5e-6, "3.50 µs"), (12e-9, "12 ns"), (0.9999996, "1.00 s"), (0.0009999, "1.00 ms"),
    (59.94, "59.9 s"), (59.99, "1 min"), (125.0, "2 min 5 s"), (3600.8, "1 h"),
    (11_525.0, "3 h 12 min"), (183_700.0, "2 d 3 h"), (-0.5, "-500 ms"),
    (float("nan"), "n/a"),
])
def test_seconds(value: float, text: str) -> None:
    assert units.seconds(value) == text


def test_lists_share_one_unit() -> None:
    assert units.seconds_list([1.006186, 2.015998]) == "1.01, 2.02 s"
    assert units.seconds_list([0.175047, 0.17497, 0.175008]) == "175, 175, 175 ms"
    assert units.seconds_list([0.0005, 0.2]) == "0.5, 200.0 ms"


def test_instants() -> None:
    assert units.instant(1795254066.798866) == "2026-11-21 09:41:06.798866 UTC"
    assert units.time_of_day(1795254066.798866) == "09:41:06.798"
    assert units.time_of_day(1795254066.798866, with_date=True) == "11-21 09:41:06"


def _summaries(name: str) -> dict[str, str]:
    engine = Engine()
    found = [a for r in engine.run(str(SAMPLES / name)) for a in r.anomalies]
    return {a.code: a.summary for a in found + engine.summary.anomalies}


def test_finding_summaries_say_durations_in_reader_units() -> None:
    """The real kernel's SYN retries (1.006186 and 2.015998 s apart) and RTO intervals read
    as "1.01, 2.02 s" and "212, 424 ms"; the details keep the exact seconds."""
    assert "retries after 1.01, 2.02 s (linux_exponential)" in \
        _summaries("unanswered_syn.pcap")["unanswered_syn"]
    assert _summaries("retransmission_timeout.pcap")["rto_backoff"].endswith(
        "intervals 212, 424 ms")
    assert "zero window for 1.95 s" in _summaries("zero_window.pcap")["zero_window_stall"]
    engine = Engine()
    (res,) = list(engine.run(str(SAMPLES / "unanswered_syn.pcap")))
    assert res.anomalies[0].details["intervals_s"] == [1.006186, 2.015998]


def test_table_summary_and_ladder_show_readable_times() -> None:
    sample = str(SAMPLES / "rst_abort.pcap")
    out = CliRunner().invoke(main, ["analyze", sample], env={"COLUMNS": "200"}).stdout
    assert "(start times UTC, 2026-11-21)" in out
    assert "09:41:24.238" in out and "46.6 ms" in out          # start and duration
    assert "46.6 ms, 2026-11-21 09:41:24.238066 UTC to 09:41:24.284618 UTC" in out
    out = CliRunner().invoke(main, ["flow", sample, "0"], env={"COLUMNS": "200"}).stdout
    assert "started 2026-11-21 09:41:24.238066 UTC, lasted 46.6 ms" in out


@pytest.mark.skipif(sys.platform == "win32", reason="TZ is POSIX")
def test_local_time_option() -> None:
    """--local-time: the zone of the environment (TZ), named."""
    env = {**os.environ, "TZ": "Europe/Paris", "COLUMNS": "200"}
    sample = str(SAMPLES / "rst_abort.pcap")

    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "tcptrace_py", *args], env=env,
                              capture_output=True, text=True, check=True).stdout

    out = run("summary", sample, "--local-time")
    assert "2026-11-21 10:41:24.238066 CET to 10:41:24.284618 CET" in out
    out = run("analyze", sample, "--local-time")
    assert "start times CET, 2026-11-21" in out and "10:41:24.238" in out
    assert "started 2026-11-21 10:41:24.238066 CET" in run("flow", sample, "0", "--local-time")
    # jsonl keeps epoch seconds: files are for programs.
    rec = json.loads(run("analyze", sample, "--format", "jsonl", "--local-time"))
    assert rec["start_ts"] == pytest.approx(1795254084.238066)
