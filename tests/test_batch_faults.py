"""Batch faults (issue 18 item 7, issue 17 item 4): a killed batch leaves no process behind,
a Dask cluster without workers fails the batch after a bounded wait, transient failures are
retried by a rerun while a bad capture stays failed, and a missing pyarrow stops ``batch``
before it touches anything."""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptrace_py import batch_cli
from tcptrace_py.batch import (
    CAPTURES_NAME,
    FAILURE_PERMANENT,
    FAILURE_TRANSIENT,
    MANIFEST_NAME,
    read_manifest,
    read_table,
    run_batch,
)
from tcptrace_py.batch_cli import batch

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TESTS = Path(__file__).resolve().parent
MARKER_VAR = "TCPTRACE_PY_TEST_MARKER"


def _copy_inputs(d: Path, names: dict[str, str]) -> Path:
    """``names``: input name -> sample it copies."""
    d.mkdir()
    for name, sample in names.items():
        shutil.copy(SAMPLES / sample, d / name)
    return d


# --------------------------------------------------------------------------- transient
def environment_faults(path: str) -> None:
    """Fault injection in the worker, by file name: what the environment does to a batch."""
    name = os.path.basename(path)
    if name.startswith("nomem"):
        raise MemoryError
    if name.startswith("nomodule"):
        importlib.import_module("tcptrace_py_extra_not_installed")  # a real ImportError
    if name.startswith("oomkill"):
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
    if name.startswith("segv"):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the cwd
        os.kill(os.getpid(), signal.SIGSEGV)  # a crash on the capture's contents


def test_transient_failures_are_retried_permanent_ones_are_not(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    inputs = _copy_inputs(tmp_path / "in", {
        "good.pcap": "normal.pcap", "nomem.pcap": "normal.pcap",
        "nomodule.pcap": "refused.pcap", "oomkill.pcap": "half_close.pcap",
        "segv.pcap": "rst_abort.pcap"})
    (inputs / "text.pcap").write_text("not a capture\n")
    (inputs / "bad.pcap.gz").write_bytes(b"\x1f\x8b" + b"not deflate" * 4)
    out = tmp_path / "out"
    monkeypatch.setattr(batch_cli, "run_batch",
                        functools.partial(run_batch, before_capture=environment_faults))
    # /proc/self/mem: a real I/O error (EIO) when the reader reads its first bytes.
    res = CliRunner().invoke(batch, [str(inputs), "/proc/self/mem", "-o", str(out), "-j", "2"])
    assert res.exit_code == 1, res.output
    rows = {Path(p).name: r for p, r in read_manifest(str(out)).items()}
    kinds = {n: (r["status"], r["failure"]) for n, r in rows.items()}
    assert kinds == {"good.pcap": ("ok", None),
                     "nomem.pcap": ("failed", FAILURE_TRANSIENT),
                     "nomodule.pcap": ("failed", FAILURE_TRANSIENT),
                     "oomkill.pcap": ("failed", FAILURE_TRANSIENT),
                     "mem": ("failed", FAILURE_TRANSIENT),
                     "segv.pcap": ("failed", FAILURE_PERMANENT),
                     "text.pcap": ("failed", FAILURE_PERMANENT),
                     "bad.pcap.gz": ("failed", FAILURE_PERMANENT)}
    assert rows["nomodule.pcap"]["error"].startswith("ModuleNotFoundError")
    assert rows["oomkill.pcap"]["error"] == "worker process died (exit code -9)"
    assert rows["segv.pcap"]["error"] == "worker process died (exit code -11)"
    assert "Input/output error" in rows["mem"]["error"]
    assert "damaged gzip data" in rows["bad.pcap.gz"]["error"]  # an OSError without errno
    # Each failure is one line naming its capture; the transient ones say a rerun retries.
    failed = [ln for ln in res.stderr.splitlines() if "failed: " in ln]
    assert len(failed) == 7
    for name in ("nomem.pcap", "nomodule.pcap", "oomkill.pcap", "/proc/self/mem"):
        (line,) = [ln for ln in failed if name in ln]
        assert line.endswith("(transient: a rerun retries it)")
    assert sum(ln.endswith("retries it)") for ln in failed) == 4
    captures = read_table(out, "captures").set_index("path")
    assert captures.loc[str(inputs / "nomem.pcap"), "failure"] == FAILURE_TRANSIENT
    assert captures["failure"].dtype == "category"

    # The environment is fixed: a rerun without --force redoes exactly the transient ones.
    monkeypatch.undo()
    res = CliRunner().invoke(batch, [str(inputs), "-o", str(out), "-j", "2"])
    assert res.exit_code == 1  # segv.pcap, text.pcap and bad.pcap.gz are still failed
    assert "3 analysed, 4 skipped, 3 failed" in res.stderr
    rows = {Path(p).name: r for p, r in read_manifest(str(out)).items()}
    assert all(rows[n]["status"] == "ok" for n in ("nomem.pcap", "nomodule.pcap",
                                                   "oomkill.pcap"))
    flows = read_table(out, "flows")
    assert {Path(c).name for c in flows["capture"]} == {
        "good.pcap", "nomem.pcap", "nomodule.pcap", "oomkill.pcap"}


def test_disk_full_is_transient(tmp_path: Path) -> None:
    """A real ENOSPC: the dataset on a 64 KiB tmpfs (in a private mount namespace, so
    nothing outlives the test) cannot hold a flows partition. The capture is recorded as a
    transient failure; after the file system grows, a plain rerun analyses it."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "mount", "-t", "tmpfs", "tmpfs", str(tmp_path)],
            capture_output=True, check=False).returncode != 0:
        pytest.skip("needs unshare -m and mount (root)")
    out = tmp_path / "out"
    copy = tmp_path / "copy"
    out.mkdir()
    cmd = [sys.executable, "-m", "tcptrace_py.batch_cli", str(SAMPLES / "normal.pcap"),
           "-o", str(out), "-j", "1"]
    run = f"rc=0; {' '.join(cmd)} || rc=$?; echo rc=$rc\n"
    script = (f"mount -t tmpfs -o size=64k tmpfs {out}\n{run}"
              f"mount -o remount,size=16m tmpfs {out}\n{run}"
              f"cp -r {out} {copy}\n")
    res = subprocess.run(["unshare", "-m", "sh", "-ec", script], capture_output=True,
                         text=True, timeout=300, check=True)
    assert res.stdout.split() == ["rc=1", "rc=0"], res.stderr
    first, second = (json.loads(ln) for ln in
                     (copy / MANIFEST_NAME).read_text().splitlines())
    assert first["status"] == "failed" and first["failure"] == FAILURE_TRANSIENT
    assert "No space left on device" in first["error"]
    assert second["status"] == "ok"
    assert "No space left on device (transient: a rerun retries it)" in res.stderr


# --------------------------------------------------------------------------- killing
def stall_named_stall(path: str) -> None:
    """Fault injection: the capture named ``stall*`` takes "forever" (a huge capture)."""
    if os.path.basename(path).startswith("stall"):
        Path(os.environ["TCPTRACE_PY_TEST_FLAGS"], f"started-{os.getpid()}").touch()
        time.sleep(600)


RUN_WITH_HOOK = """\
import functools, sys
from tcptrace_py import batch_cli
from tcptrace_py.batch import run_batch
import test_batch_faults

if __name__ == "__main__":
    hook = getattr(test_batch_faults, sys.argv[1])
    batch_cli.run_batch = functools.partial(run_batch, before_capture=hook)
    batch_cli.batch(sys.argv[2:])
"""
"""``tcptrace-py batch`` in its own process with a fault-injection hook of this module."""


UNGUARDED_WITH_HOOK = """\
import sys
from tcptrace_py.batch import local_start_method, run_batch
import test_batch_faults

assert local_start_method() == "fork"  # top level, no main guard: forked workers
run_batch([sys.argv[2]], sys.argv[4], jobs=int(sys.argv[6]),
          before_capture=getattr(test_batch_faults, sys.argv[1]))
"""
"""The same arguments, through ``run_batch`` called from a script's top level."""


def _hook_command(tmp_path: Path, hook: str, *args: str) -> list[str]:
    script = tmp_path / "batch_with_hook.py"
    script.write_text(RUN_WITH_HOOK)
    return [sys.executable, str(script), hook, *args]


def _env(**extra: str) -> dict[str, str]:
    """The environment of a child that can import this module (the hook's home)."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _marked(marker: str) -> list[int]:
    """Pids of live processes whose environment carries ``marker`` (the batch started by
    the test and everything it started: forkserver, workers, resource tracker)."""
    found = []
    needle = f"{MARKER_VAR}={marker}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path("/proc", entry, "environ").read_bytes()
            state = Path("/proc", entry, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env.split(b"\0") and state != "Z":  # a zombie is already dead
            found.append(int(entry))
    return found


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique marker; whatever still carries it at the end is killed (by pid)."""
    value = uuid.uuid4().hex
    yield value
    for pid in _marked(value):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
@pytest.mark.parametrize(("sig", "forked"), [(signal.SIGTERM, False), (signal.SIGKILL, False),
                                             (signal.SIGKILL, True)],
                         ids=["TERM", "KILL", "KILL-fork"])
def test_killed_batch_leaves_no_process_behind(sig: signal.Signals, forked: bool,
                                               tmp_path: Path, marker: str) -> None:
    """SIGTERM or kill -9 of the batch while a worker is busy: the forkserver, the workers
    and the resource tracker are all gone shortly after (they used to wait forever); with
    SIGTERM the batch also writes captures.parquet with what was done and exits 143. The
    same with workers forked from the batch itself (a script without a main guard)."""
    inputs = _copy_inputs(tmp_path / "in", {"a.pcap": "normal.pcap", "b.pcap": "refused.pcap",
                                            "stall.pcap": "half_close.pcap"})
    flags = tmp_path / "flags"
    flags.mkdir()
    out = tmp_path / "out"
    env = _env(**{MARKER_VAR: marker, "TCPTRACE_PY_TEST_FLAGS": str(flags)})
    cmd = _hook_command(tmp_path, "stall_named_stall", str(inputs), "-o", str(out), "-j", "2")
    if forked:
        (tmp_path / "unguarded.py").write_text(UNGUARDED_WITH_HOOK)
        cmd[1] = str(tmp_path / "unguarded.py")
    proc = subprocess.Popen(cmd,
                            env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def busy() -> bool:
            assert proc.poll() is None, proc.communicate()[1]
            return any(flags.iterdir()) and len(read_manifest(str(out))) == 2
        _wait_for(busy, 120, "a and b done, stall in flight")
        # batch, forkserver, resource tracker and the workers (forked: batch and workers)
        assert len(_marked(marker)) >= (3 if forked else 4)
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=60)
        _wait_for(lambda: not _marked(marker), 10, "every process of the batch to end")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
        assert stderr.strip().splitlines()[-1] == (
            "tcptrace-py batch: terminated; finished captures are kept, rerun to resume")
        assert sorted(Path(p).name for p in read_table(out, "captures")["path"]) == [
            "a.pcap", "b.pcap"]
    else:
        assert proc.returncode == -signal.SIGKILL
    # The next run (no stall) resumes: only the capture that was in flight is analysed.
    summary = run_batch([inputs], out, jobs=1)
    assert [Path(p).name for p in summary.analysed] == ["stall.pcap"]
    assert not summary.failed


# --------------------------------------------------------------------------- Dask
def kill_worker_on_crash(path: str) -> None:
    """Fault injection on a Dask worker: the worker process is killed (no nanny restarts
    it), so the cluster is left without any worker."""
    if os.path.basename(path).startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)


def test_cluster_without_workers_fails_after_the_timeout(tmp_path: Path) -> None:
    """Every Dask worker dies (killed, no nanny to restart it): the batch used to wait for
    a worker forever. Now it fails with one line (exit 2) after --worker-timeout; what
    finished is recorded and the captures left are not (a rerun does them)."""
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    inputs = _copy_inputs(tmp_path / "in", {"a.pcap": "normal.pcap",
                                            "crash.pcap": "refused.pcap"})
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=0, processes=True,
                                  dashboard_address=None) as cluster:
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
             "--no-nanny", "--nthreads", "1", "--no-dashboard"], env=_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with distributed.Client(cluster) as client:
                client.wait_for_workers(1, timeout=120)
            # Without the bound this never returns: the timeout makes the test fail instead.
            res = subprocess.run(_hook_command(tmp_path, "kill_worker_on_crash", str(inputs),
                                               "-o", str(out), "--scheduler",
                                               cluster.scheduler_address,
                                               "--worker-timeout", "2"),
                                 env=_env(), capture_output=True, text=True, timeout=120,
                                 check=False)
            assert worker.wait(timeout=60) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert res.returncode == 2, res.stderr
    # One line of ours (distributed's own client may log its warnings above it).
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("tcptrace-py batch:")]
    assert line.startswith("tcptrace-py batch: no Dask worker on tcp://"), line
    assert re.search(r"for 2 s; [12] captures? not analysed \(rerun to resume", line)
    assert (out / CAPTURES_NAME).exists()
    assert str(inputs / "crash.pcap") not in read_manifest(str(out))


def test_worker_timeout_must_be_a_finite_positive_number(tmp_path: Path) -> None:
    for bad in ("nan", "inf", "0", "-1"):
        res = CliRunner().invoke(batch, [str(SAMPLES / "normal.pcap"), "-o",
                                         str(tmp_path / "o"), "--worker-timeout", bad])
        assert res.exit_code == 2 and "--worker-timeout" in res.stderr
    with pytest.raises(ValueError, match="worker_timeout_s"):
        run_batch([SAMPLES / "normal.pcap"], tmp_path / "o", worker_timeout_s=float("nan"))
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- extras
HIDE_PYARROW = """\
import sys

class HidePyarrow:
    \"\"\"As if pyarrow were not installed.\"\"\"
    def find_spec(self, name, path=None, target=None):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HidePyarrow())
for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
    del sys.modules[name]
from tcptrace_py.cli import main
main(sys.argv[1:])
"""


def test_batch_without_pyarrow_in_a_real_process(tmp_path: Path) -> None:
    """pyarrow hidden by an import hook in a fresh interpreter (not a mocked find_spec):
    ``tcptrace-py batch`` stops at once, one line naming the extra, exit 2, nothing
    created; ``analyze`` (base install) still works there."""
    script = tmp_path / "no_pyarrow.py"
    script.write_text(HIDE_PYARROW)
    out = tmp_path / "ds"
    res = subprocess.run([sys.executable, str(script), "batch", str(SAMPLES / "normal.pcap"),
                          "-o", str(out)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "tcptrace-py batch: needs the pyarrow package: pip install 'tcptrace-py[parquet]'"]
    assert not out.exists()
    res = subprocess.run([sys.executable, str(script), "analyze", str(SAMPLES / "normal.pcap"),
                          "--format", "jsonl"], capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 0 and json.loads(res.stdout.splitlines()[0])["flow_id"] == 0


def test_each_help_names_the_extra_it_needs() -> None:
    from tcptrace_py.cli import main

    res = CliRunner().invoke(batch, ["--help"])
    assert "tcptrace-py[parquet]" in res.output and "tcptrace-py[dask]" in res.output
    for command, extra in (("analyze", "parquet"), ("anomalies", "parquet"),
                           ("plot", "plot")):
        res = CliRunner().invoke(main, [command, "--help"])
        # wrapped anywhere, even after the hyphen: compare without white space
        assert f"pipinstall'tcptrace-py[{extra}]'" in "".join(res.output.split()), command


def test_dataset_of_an_older_version(tmp_path: Path) -> None:
    """A dataset written before the ``failure`` column: its captures table still reads
    (failure null), and its failed rows stay failed for good on a rerun, as they were."""
    import pandas as pd

    inputs = _copy_inputs(tmp_path / "in", {"good.pcap": "normal.pcap"})
    (inputs / "text.pcap").write_text("not a capture\n")
    out = tmp_path / "out"
    run_batch([inputs], out, jobs=1)
    manifest = out / MANIFEST_NAME
    old_rows = [{k: v for k, v in json.loads(ln).items() if k != "failure"}
                for ln in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in old_rows))
    pd.read_parquet(out / CAPTURES_NAME).drop(columns=["failure"]).to_parquet(
        out / CAPTURES_NAME)
    captures = read_table(out, "captures")
    assert captures["failure"].isna().all() and len(captures) == 2
    again = run_batch([inputs], out, jobs=1)
    assert again.analysed == [] and len(again.failed) == 1
