"""Batch processing (tcptrace_py/batch.py, batch_cli.py) on a directory of mixed captures.

The directory holds good captures (the real-kernel scenarios in ../shared when present, else
captures written here), compressed ones (gzip with a capture name, xz with a meaningless
name: found by bytes), broken ones (text named .pcap, a pcap cut inside its header) and a
capture cut mid-record (kept, with a warning). It is processed on the local process pool and
on a real dask.distributed LocalCluster, and both datasets must be identical.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from captures_util import tcp_frame, write_pcap
from click.testing import CliRunner

from tcptrace_py.batch import (
    CAPTURES_NAME,
    MANIFEST_NAME,
    TMP_DIR_NAME,
    TMP_PREFIX,
    analyze_many,
    capture_id,
    discover,
    part_path,
    read_manifest,
    read_table,
    run_batch,
)
from tcptrace_py.batch_cli import batch
from tcptrace_py.engine import Engine
from tcptrace_py.segment import ACK, FIN, PSH, SYN

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCENARIOS = SHARED / "scenarios"
# Small scenarios (enough variety; the 200 KB ones would only slow the suite down).
SCENARIO_NAMES = ("normal.pcap", "refused.pcap", "rst_abort.pcap",
                  "port_reuse_time_wait.pcap")


def _conversation(port: int) -> list[tuple[int, bytes]]:
    """One complete connection: handshake, 100 bytes each way, FIN/FIN."""
    c, s = "10.0.0.1", "10.0.0.2"
    t = 1_700_000_000_000_000_000
    ms = 1_000_000
    frames = [
        tcp_frame(c, s, port, 80, 1000, 0, SYN),
        tcp_frame(s, c, 80, port, 5000, 1001, SYN | ACK),
        tcp_frame(c, s, port, 80, 1001, 5001, ACK),
        tcp_frame(c, s, port, 80, 1001, 5001, PSH | ACK, payload=b"q" * 100),
        tcp_frame(s, c, 80, port, 5001, 1101, PSH | ACK, payload=b"r" * 100),
        tcp_frame(c, s, port, 80, 1101, 5101, FIN | ACK),
        tcp_frame(s, c, 80, port, 5101, 1102, FIN | ACK),
        tcp_frame(c, s, port, 80, 1102, 5102, ACK),
    ]
    return [(t + i * ms, f) for i, f in enumerate(frames)]


def _good_sources(tmp: Path) -> list[Path]:
    if SCENARIOS.is_dir():
        return [SCENARIOS / n for n in SCENARIO_NAMES if (SCENARIOS / n).exists()]
    return [write_pcap(tmp / f"conv{i}.pcap", _conversation(40000 + i) + _conversation(41000 + i))
            for i in range(4)]


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    d = tmp_path_factory.mktemp("mixed")
    goods = _good_sources(src)
    (d / "sub" / "deeper").mkdir(parents=True)
    for i, g in enumerate(goods):
        target = d / ("sub/deeper" if i % 2 else "") / g.name
        shutil.copyfile(g, target)
    data = goods[0].read_bytes()
    (d / "sub" / "rotated.pcap.gz").write_bytes(gzip.compress(data))
    (d / "blob.0001").write_bytes(lzma.compress(data))  # no capture name: found by bytes
    (d / "text.pcap").write_text("this is not a capture\n")
    (d / "header_cut.pcap").write_bytes(data[:10])
    (d / "mid_record_cut.pcap").write_bytes(data[: 24 + 16 + 30])
    (d / "README.txt").write_text("notes, not a capture\n")
    return d


BROKEN = {"text.pcap", "header_cut.pcap"}
NO_FLOWS = BROKEN | {"mid_record_cut.pcap"}  # cut before its first whole frame


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("capture", "flow_id", "frame", "first_frame", "code", "kind",
                        "endpoint", "path") if c in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    tables = {t: _sorted(read_table(out, t)) for t in ("flows", "anomalies", "events")}
    tables["captures"] = _sorted(read_table(out, "captures").drop(columns=["elapsed_s", "cpu_s"]))
    return tables


def test_discover_by_bytes_and_name(mixed_dir: Path) -> None:
    found = {os.path.relpath(p, mixed_dir) for p in discover([mixed_dir])}
    assert "blob.0001" in found                  # xz-wrapped pcap without a capture name
    assert "sub/rotated.pcap.gz" in found
    assert BROKEN <= found                       # named like captures: reported, not skipped
    assert "README.txt" not in found
    assert len(found) == len(_good_sources(mixed_dir)) + 5
    # Globs and explicit files; duplicates collapse.
    pattern = str(mixed_dir / "**" / "*.pcap*")
    globbed = discover([pattern, mixed_dir / "text.pcap"])
    assert str(mixed_dir / "sub" / "rotated.pcap.gz") in globbed
    assert len(globbed) == len(set(globbed))
    with pytest.raises(FileNotFoundError):
        discover([mixed_dir / "nope.pcap"])
    with pytest.raises(FileNotFoundError):
        discover([str(mixed_dir / "*.nothing")])


@pytest.fixture(scope="module")
def local_out(mixed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out_local")
    run_batch([mixed_dir], out, jobs=2)
    return out


def test_local_batch_outputs(mixed_dir: Path, local_out: Path) -> None:
    caps = read_table(local_out, "captures").set_index("path")
    assert len(caps) == len(discover([mixed_dir]))
    for name in BROKEN:
        row = caps.loc[str(mixed_dir / name)]
        assert row["status"] == "failed"
        assert str(mixed_dir / name) in row["error"]   # the reason names the file
    assert "text file" in caps.loc[str(mixed_dir / "text.pcap"), "error"]
    assert "cut short" in caps.loc[str(mixed_dir / "header_cut.pcap"), "error"]
    cut = caps.loc[str(mixed_dir / "mid_record_cut.pcap")]
    assert cut["status"] == "ok" and cut["warnings"] >= 1 and cut["first_warning"]
    ok = caps[caps["status"] == "ok"]
    assert len(ok) == len(caps) - len(BROKEN)

    flows = read_table(local_out, "flows")
    assert list(flows.columns[:2]) == ["capture", "flow_id"]
    assert flows["flow_id"].dtype == "int64" and flows["close"].dtype == "category"
    assert (flows.groupby("capture").size() == ok["connections"][ok["connections"] > 0]
            ).all()
    # The compressed copies give exactly what the original gives, read directly by Engine.
    direct = [r.record for r in Engine().run(str(mixed_dir / "blob.0001"))]
    for copy in ("blob.0001", "sub/rotated.pcap.gz"):
        got = flows[flows["capture"] == str(mixed_dir / copy)].sort_values("flow_id")
        assert got["flow_id"].tolist() == [r["flow_id"] for r in direct]
        assert got["close"].astype(str).tolist() == [r["close"] for r in direct]
        assert got["server_payload_bytes"].tolist() == [r["server_payload_bytes"]
                                                        for r in direct]
    events = read_table(local_out, "events")
    assert len(events) == int(ok["events"].sum()) > 0

    # One capture's partition can be read alone and carries its path.
    one = str(mixed_dir / "blob.0001")
    part = pq.read_table(part_path(str(local_out), "flows", capture_id(one))).to_pandas()
    assert set(part["capture"]) == {one} and len(part) == len(direct)
    # No partitions for failed captures, no leftover temp files.
    assert not os.path.exists(part_path(str(local_out), "flows",
                                        capture_id(str(mixed_dir / "text.pcap"))))
    assert os.listdir(local_out / TMP_DIR_NAME) == []


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    """Two worker processes; a task whose worker dies is failed at once (no retry), so the
    dead-worker test is quick."""
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                     dashboard_address=None) as cluster:
        yield cluster


def test_dask_cluster_gives_identical_outputs(mixed_dir: Path, local_out: Path,
                                              dask_cluster: Any,
                                              tmp_path: Path) -> None:
    out = tmp_path / "out_dask"
    res = CliRunner().invoke(batch, [str(mixed_dir), "-o", str(out), "--scheduler",
                                     dask_cluster.scheduler_address])
    assert res.exit_code == 1, res.output
    caps = read_table(out, "captures")
    assert {Path(p).name for p in caps.loc[caps["status"] == "failed", "path"]} == BROKEN
    local, remote = _tables(local_out), _tables(out)
    for name in ("flows", "anomalies", "events", "captures"):
        pd.testing.assert_frame_equal(local[name], remote[name], obj=name)
    assert len(local["flows"]) > 0


def test_rerun_does_no_work_and_resumes(mixed_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen: list[str] = []
    # An interruption after the first finished capture (a KeyboardInterrupt in the parent).
    def stop_after_first(row: dict[str, Any]) -> None:
        seen.append(row["path"])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch([mixed_dir], out, jobs=2, on_done=stop_after_first)
    assert list(read_manifest(str(out))) == seen
    assert read_table(out, "captures")["path"].tolist() == seen  # written even when stopped

    # What a killed run leaves: one of our temp files (deleted at the next start) beside a
    # file that is not ours (kept: the batch deletes only what it made).
    stale = out / TMP_DIR_NAME / f"{TMP_PREFIX}4242-0123456789abcdef.tmp"
    stale.write_bytes(b"half written by a killed run")
    foreign = out / TMP_DIR_NAME / "stale.parquet"
    foreign.write_bytes(b"someone else's")
    total = len(discover([mixed_dir]))
    resumed = run_batch([mixed_dir], out, jobs=2)
    assert len(resumed.analysed) == total - 1 and resumed.skipped == seen
    assert not stale.exists() and foreign.exists()

    parts = sorted(out.glob("*/capture_id=*/part.parquet"))
    mtimes = [p.stat().st_mtime_ns for p in parts]
    manifest_lines = (out / MANIFEST_NAME).read_text().count("\n")
    done: list[str] = []
    again = run_batch([mixed_dir], out, jobs=2, on_done=lambda r: done.append(r["path"]))
    assert again.analysed == [] and done == [] and len(again.skipped) == total
    assert [p.stat().st_mtime_ns for p in parts] == mtimes          # nothing rewritten
    assert (out / MANIFEST_NAME).read_text().count("\n") == manifest_lines
    assert len(again.failed) == len(BROKEN)  # failures stay failures on a rerun

    # A changed capture (new mtime) is redone, alone; --force redoes everything.
    touched = mixed_dir / "blob.0001"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    changed = run_batch([mixed_dir], out, jobs=1)
    assert changed.analysed == [str(touched)]
    forced = run_batch([mixed_dir / "sub"], out, jobs=2, force=True)
    assert len(forced.analysed) == len(discover([mixed_dir / "sub"]))


def die_on_crash_name(path: str) -> None:
    """Fault injection: the worker process exits abruptly, as an OOM kill would."""
    if "crash" in os.path.basename(path):
        os._exit(3)


def test_dying_worker_is_recorded_not_fatal(mixed_dir: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    goods = [p for p in discover([mixed_dir]) if Path(p).name not in NO_FLOWS][:3]
    for i, g in enumerate(goods):
        shutil.copyfile(g, inputs / f"good{i}.pcap")
    shutil.copyfile(goods[0], inputs / "crash.pcap")
    summary = run_batch([inputs], tmp_path / "out", jobs=2, before_capture=die_on_crash_name)
    rows = {Path(r["path"]).name: r for r in summary.captures}
    assert rows["crash.pcap"]["status"] == "failed"
    assert rows["crash.pcap"]["error"] == "worker process died (exit code 3)"
    assert all(rows[f"good{i}.pcap"]["status"] == "ok" for i in range(len(goods)))
    flows = read_table(tmp_path / "out", "flows")
    assert set(flows["capture"]) == {str(inputs / f"good{i}.pcap") for i in range(len(goods))}


def test_pool_breaking_between_submissions_loses_nothing(mixed_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A worker can die after wait() returned and before the next submit(): submit() then
    raises BrokenProcessPool itself (a race seen in CI). The task it was given never ran; it
    must go back to the queue, and every capture must still be analysed once."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    real_submit = ProcessPoolExecutor.submit
    calls = {"n": 0}

    def flaky_submit(self: ProcessPoolExecutor, fn: Any, /, *args: Any,
                     **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise BrokenProcessPool("simulated: a worker died between submissions")
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", flaky_submit)
    inputs = tmp_path / "in"
    inputs.mkdir()
    goods = [p for p in discover([mixed_dir]) if Path(p).name not in NO_FLOWS][:3]
    for i, g in enumerate(goods):
        shutil.copyfile(g, inputs / f"good{i}.pcap")
    summary = run_batch([inputs], tmp_path / "out", jobs=1)
    rows = {Path(r["path"]).name: r for r in summary.captures}
    assert sorted(rows) == [f"good{i}.pcap" for i in range(len(goods))]
    assert all(r["status"] == "ok" for r in rows.values())


def test_cli_exit_codes(mixed_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(batch, [str(mixed_dir), "-o", str(out), "--jobs", "2"])
    assert res.exit_code == 1, res.output          # broken captures present
    assert "failed" in res.output and (out / CAPTURES_NAME).exists()
    good = str(mixed_dir / "sub" / "rotated.pcap.gz")
    res = runner.invoke(batch, [good, "-o", str(tmp_path / "good"), "-j", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(batch, [good, "-o", str(tmp_path / "good"), "-j", "1"])
    assert res.exit_code == 0 and "already done" in res.output
    # --strict: damage after valid frames fails the capture.
    cut = str(mixed_dir / "mid_record_cut.pcap")
    res = runner.invoke(batch, [cut, "-o", str(tmp_path / "strict"), "--strict"])
    assert res.exit_code == 1
    assert read_table(tmp_path / "strict", "captures")["status"].tolist() == ["failed"]
    # Bad usage: nothing there, output is a file, missing -o.
    assert runner.invoke(batch, [str(tmp_path / "nope"), "-o", str(out)]).exit_code == 2
    (tmp_path / "file").write_text("x")
    assert runner.invoke(batch, [good, "-o", str(tmp_path / "file")]).exit_code == 2
    assert runner.invoke(batch, [good]).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(batch, [str(empty), "-o", str(out)]).exit_code == 2


def test_analyze_many_pandas_and_dask(mixed_dir: Path, local_out: Path,
                                      dask_cluster: Any) -> None:
    goods = [p for p in discover([mixed_dir]) if Path(p).name not in NO_FLOWS]
    res = analyze_many(goods, scheduler=dask_cluster.scheduler_address)
    expected = read_table(local_out, "flows")
    expected = _sorted(expected[expected["capture"].isin(goods)]).reset_index(drop=True)
    pd.testing.assert_frame_equal(_sorted(res.flows), expected)
    assert not os.path.exists(res.out_dir)       # temporary dataset removed
    lazy = analyze_many(goods[:2], jobs=1, dask=True, keep_events=False)
    flows = lazy.flows.compute()
    assert sorted(set(flows["capture"])) == sorted(goods[:2])
    assert len(lazy.events.compute()) == 0      # Options field passed through
    assert lazy.captures.compute()["status"].tolist() == ["ok", "ok"]


def test_large_capture_is_written_in_chunks(mixed_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are streamed to the partition every FLUSH_FLOWS connections (bounded memory);
    the result is the same table as one write."""
    from tcptrace_py import batch as batch_mod

    path = max((p for p in discover([mixed_dir]) if Path(p).name not in NO_FLOWS),
               key=lambda p: len(list(Engine().run(p))))
    whole = batch_mod.analyze_capture(batch_mod.CaptureTask(path, str(tmp_path / "a")))
    monkeypatch.setattr(batch_mod, "FLUSH_FLOWS", 1)
    chunked = batch_mod.analyze_capture(batch_mod.CaptureTask(path, str(tmp_path / "b")))
    assert whole["connections"] >= 2 and chunked["status"] == "ok"
    for name in ("flows", "anomalies", "events"):
        cols = list(batch_mod._empty(name).columns)
        a = batch_mod._read_one(part_path(str(tmp_path / "a"), name, capture_id(path)), name,
                                cols)
        b = batch_mod._read_one(part_path(str(tmp_path / "b"), name, capture_id(path)), name,
                                cols)
        assert len(a) == len(b) == whole[name if name != "flows" else "connections"]
        pd.testing.assert_frame_equal(a, b)
    assert pq.ParquetFile(part_path(str(tmp_path / "b"), "flows", capture_id(path))
                          ).num_row_groups == whole["connections"]


def test_dying_dask_worker_is_recorded(mixed_dir: Path, tmp_path: Path,
                                       dask_cluster: Any) -> None:
    """On Dask a dead worker surfaces as KilledWorker (after Dask's own retries, none here):
    recorded like any other failure, and the other captures finish."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = next(p for p in discover([mixed_dir]) if Path(p).name not in NO_FLOWS)
    shutil.copyfile(good, inputs / "good.pcap")
    shutil.copyfile(good, inputs / "crash.pcap")
    summary = run_batch([inputs], tmp_path / "out", scheduler=dask_cluster.scheduler_address,
                        before_capture=die_on_crash_name)
    rows = {Path(r["path"]).name: r for r in summary.captures}
    assert rows["good.pcap"]["status"] == "ok"
    assert rows["crash.pcap"]["status"] == "failed"
    assert rows["crash.pcap"]["error"].startswith("KilledWorker")
    assert rows["crash.pcap"]["failure"] == "transient"   # a rerun retries it


# --------------------------------------------------------------------------- scripts
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SCRIPT_CAPTURES = [str(SAMPLES / "normal.pcap"), str(SAMPLES / "refused.pcap")]


def _script(body: str) -> str:
    """A user's script analysing two samples with ``analyze_many`` (body: how it is called);
    it prints TOP once at its top level and then the result."""
    return (
        "import sys, tcptrace_py, tcptrace_py.batch as b\n"
        "print('TOP', flush=False)\n"
        f"paths = {SCRIPT_CAPTURES!r}\n"
        + body +
        "def show(res):\n"
        "    print('STATUS', ','.join(res.captures['status']))\n"
        "    print('FLOWS', len(res.flows))\n"
    )


def _run_script(code: str, tmp_path: Path, stdin: bool = False) -> Any:
    import subprocess
    import sys

    path = tmp_path / "user_script.py"
    path.write_text(code)
    args = [sys.executable, "-"] if stdin else [sys.executable, str(path)]
    return subprocess.run(args, input=code if stdin else None, capture_output=True,
                          text=True, cwd=tmp_path, timeout=300, check=False)


def _expected_flows() -> int:
    return sum(len(list(Engine().run(p))) for p in SCRIPT_CAPTURES)


UNGUARDED = ("print('METHOD', b.local_start_method())\n"
             "res = tcptrace_py.analyze_many(paths, jobs=2)\n"
             "print('STATUS', ','.join(res.captures['status']))\n"
             "print('FLOWS', len(res.flows))\n")


def test_analyze_many_from_script_without_main_guard(tmp_path: Path) -> None:
    """A plain script without ``if __name__ == "__main__":``: workers used to re-run it and
    die in multiprocessing's bootstrapping check, every capture "failed" and the frames were
    empty. Its top-level output (stdout a pipe: block buffered) appears once."""
    res = _run_script(_script(UNGUARDED), tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("TOP") == 1, res.stdout
    assert "METHOD fork" in res.stdout
    assert "RuntimeWarning" not in res.stderr  # really forked, not analysed in-process
    assert "STATUS ok,ok" in res.stdout
    assert f"FLOWS {_expected_flows()}" in res.stdout
    assert "bootstrapping" not in res.stderr


def test_analyze_many_from_standard_input(tmp_path: Path) -> None:
    """``python - < script.py``: there is no main file for workers to import."""
    res = _run_script(_script(UNGUARDED), tmp_path, stdin=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("TOP") == 1
    assert "STATUS ok,ok" in res.stdout and f"FLOWS {_expected_flows()}" in res.stdout


def test_analyze_many_unguarded_with_threads_runs_in_process(tmp_path: Path) -> None:
    """A threaded process is never forked: the captures are analysed in the caller, with a
    warning that says how to get the workers back."""
    body = ("import threading\n"
            "stop = threading.Event()\n"
            "threading.Thread(target=stop.wait, daemon=True).start()\n" + UNGUARDED +
            "stop.set()\n")
    res = _run_script(_script(body), tmp_path)
    assert res.returncode == 0, res.stderr
    assert "METHOD in-process" in res.stdout and "STATUS ok,ok" in res.stdout
    assert f"FLOWS {_expected_flows()}" in res.stdout and res.stdout.count("TOP") == 1
    assert "RuntimeWarning" in res.stderr and "__name__" in res.stderr


def test_guarded_script_keeps_forkserver(tmp_path: Path) -> None:
    """With the guard, workers may import the script again (multiprocessing's documented
    rule): the forkserver, whose workers start with the analysis stack imported, stays."""
    body = ("if __name__ == '__main__':\n"
            "    print('METHOD', b.local_start_method())\n"
            "    res = tcptrace_py.analyze_many(paths, jobs=2)\n"
            "    print('STATUS', ','.join(res.captures['status']))\n")
    res = _run_script(_script(body), tmp_path)
    assert res.returncode == 0, res.stderr
    assert "METHOD forkserver" in res.stdout and "STATUS ok,ok" in res.stdout


def test_analyze_many_all_failed_raises_some_failed_warns(mixed_dir: Path) -> None:
    from tcptrace_py.batch import BatchFailedError

    broken = sorted(str(mixed_dir / n) for n in BROKEN)
    with pytest.raises(BatchFailedError, match="all 2 captures failed") as info:
        analyze_many(broken, jobs=1)
    assert all(p in str(info.value) for p in broken)   # each failure named, with its reason
    assert len(info.value.summary.failed) == 2
    good = str(mixed_dir / "sub" / "rotated.pcap.gz")
    with pytest.warns(RuntimeWarning, match="1 of 2 captures failed") as rec:
        res = analyze_many([good, broken[0]], jobs=1)
    assert broken[0] in str(rec[0].message)
    assert set(res.flows["capture"]) == {good}
