"""Batch output directory hygiene (issue 18 items 4-7): a batch writes and deletes only what
it owns, one batch per directory, names that are not UTF-8, symlink loops, torn manifests."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tcptrace_py.batch import (
    LOCK_NAME,
    MANIFEST_NAME,
    TMP_DIR_NAME,
    TMP_PREFIX,
    DatasetDirError,
    discover,
    read_manifest,
    read_table,
    run_batch,
)
from tcptrace_py.batch_cli import batch

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for name in ("normal.pcap", "refused.pcap"):
        shutil.copy(SAMPLES / name, d / name)
    return d


def test_foreign_directory_refused_and_untouched(inputs: Path, tmp_path: Path) -> None:
    """``batch -o .`` in a project that has a ``.tmp/``: refused with one line, exit 2,
    nothing written or deleted (it used to empty ``.tmp``)."""
    project = tmp_path / "project"
    (project / TMP_DIR_NAME).mkdir(parents=True)
    (project / TMP_DIR_NAME / "build-cache.bin").write_bytes(b"precious")
    (project / "main.py").write_text("print('hi')\n")
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    with pytest.raises(DatasetDirError, match="not a tcptrace-py dataset"):
        run_batch([inputs], project, jobs=1)
    res = CliRunner().invoke(batch, [str(inputs), "-o", str(project), "-j", "1"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "not empty and not a tcptrace-py dataset" in lines[0]
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before
    assert (project / TMP_DIR_NAME / "build-cache.bin").read_bytes() == b"precious"


def test_only_own_stale_temporary_files_deleted(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_batch([inputs], out, jobs=1)
    ours = out / TMP_DIR_NAME / f"{TMP_PREFIX}999-feedface.tmp"
    theirs = out / TMP_DIR_NAME / "notes.tmp"
    ours.write_bytes(b"x")
    theirs.write_bytes(b"y")
    run_batch([inputs], out, jobs=1, force=True)
    assert not ours.exists() and theirs.read_bytes() == b"y"
    # Files of ours are named so that two writers never collide (pid and random part).
    assert (out / LOCK_NAME).exists()


def test_second_batch_refused_while_first_holds_the_lock(inputs: Path,
                                                         tmp_path: Path) -> None:
    """A second batch into a directory in use refuses at once (one line, exit 2) and does
    not touch the first one's in-flight temporary file."""
    out = tmp_path / "out"
    run_batch([inputs], out, jobs=1)
    in_flight = out / TMP_DIR_NAME / f"{TMP_PREFIX}{os.getpid()}-0badc0de.tmp"
    in_flight.write_bytes(b"being written")
    fd = os.open(out / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the "first" batch, still running
        os.pwrite(fd, b"31337\n", 0)
        with pytest.raises(DatasetDirError, match=r"another batch \(pid 31337\)"):
            run_batch([inputs], out, jobs=1, force=True)
        res = CliRunner().invoke(batch, [str(inputs), "-o", str(out), "-j", "1", "--force"])
        assert res.exit_code == 2
        assert len(res.stderr.strip().splitlines()) == 1
        assert in_flight.read_bytes() == b"being written"
    finally:
        os.close(fd)
    run_batch([inputs], out, jobs=1)  # released: the next batch runs (and cleans up)
    assert not in_flight.exists()


def test_name_not_utf8_stored_escaped(inputs: Path, tmp_path: Path) -> None:
    """A capture whose file name is not valid UTF-8 is analysed, stored with the bad bytes
    escaped, and the dataset stays readable and resumable."""
    bad = os.path.join(os.fsencode(inputs), b"caf\xe9-\xff.pcap")
    shutil.copy(os.fsencode(SAMPLES / "half_close.pcap"), bad)
    out = tmp_path / "out"
    summary = run_batch([inputs], out, jobs=1)
    assert len(summary.captures) == 3 and not summary.failed
    captures = read_table(out, "captures")
    escaped = str(inputs / "caf\\xe9-\\xff.pcap")
    assert escaped in captures["path"].tolist()
    flows = read_table(out, "flows")
    assert escaped in set(flows["capture"].astype(str))
    assert json.loads((out / MANIFEST_NAME).read_text().splitlines()[0])
    again = run_batch([inputs], out, jobs=1)
    assert again.analysed == [] and len(again.skipped) == 3


def test_symlink_loops_not_followed(inputs: Path) -> None:
    (inputs / "self").symlink_to(".")
    (inputs / "a").mkdir()
    (inputs / "a" / "up").symlink_to("..")
    (inputs / "alias.pcap").symlink_to(inputs / "normal.pcap")
    expected = [str(inputs / "normal.pcap"), str(inputs / "refused.pcap")]
    assert discover([inputs]) == expected
    assert discover([f"{inputs}/**/*.pcap"]) == expected
    assert discover([f"{inputs}/*.pcap"]) == expected


def test_torn_manifest_line_does_not_swallow_the_next_row(inputs: Path,
                                                          tmp_path: Path) -> None:
    """kill -9 mid-write leaves half a line; the next run's first row must survive."""
    out = tmp_path / "out"
    run_batch([inputs / "normal.pcap"], out, jobs=1)
    with (out / MANIFEST_NAME).open("a") as f:
        f.write('{"path": "/gone.pcap", "status": "o')  # torn: no newline
    run_batch([inputs], out, jobs=1)
    rows = read_manifest(str(out))
    assert str(inputs / "refused.pcap") in rows
    assert read_table(out, "captures")["path"].tolist() == sorted(
        [str(inputs / "normal.pcap"), str(inputs / "refused.pcap")])


def test_unreadable_sub_directory_is_a_warning(inputs: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A sub-directory that cannot be listed is named in a warning (stderr, one line), not
    skipped in silence; the rest is analysed."""
    locked = inputs / "locked"
    locked.mkdir()
    shutil.copy(SAMPLES / "half_close.pcap", locked / "hidden_from_us.pcap")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            # root reads through permissions: make the listing fail as it would for a user
            real_scandir = os.scandir

            def scandir(path: Any = ".") -> Any:
                if os.fspath(path) == str(locked):
                    raise PermissionError(13, "Permission denied", str(locked))
                return real_scandir(path)

            monkeypatch.setattr(os, "scandir", scandir)
        warned: list[str] = []
        found = discover([inputs], warned.append)
        assert found == [str(inputs / "normal.pcap"), str(inputs / "refused.pcap")]
        assert warned == [f"{locked}: cannot read (Permission denied)"]
        assert discover([f"{inputs}/**/*.pcap"], warned.append) == found
        assert len(warned) == 2 and warned[1] == warned[0]
        res = CliRunner().invoke(batch, [str(inputs), "-o", str(tmp_path / "out"), "-j", "1"])
        assert res.exit_code == 0, res.output
        assert f"tcptrace-py batch: warning: {locked}: cannot read (Permission denied)" in (
            res.stderr.splitlines())
    finally:
        locked.chmod(0o755)
