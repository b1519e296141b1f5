"""The reference modules compiled unchanged load where they should, and only there.

Why: ``setup.py`` compiles the per-segment and per-connection modules (connection.py,
analysis/sequence.py, the detectors...) with Cython as they are, for speed. Python prefers an
extension over the ``.py`` beside it, so ``tcptrace_py/compiled_modules.py`` must send the
imports to the source when the reference engine is asked for (``TCPTRACE_PY_PURE=1``) and
when a source was edited after the build; these tests run each case in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tcptrace_py import compiled_modules, implementation

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tcptrace_py"

built = pytest.mark.skipif(
    not (PACKAGE / compiled_modules.MANIFEST).exists() or implementation.forced_pure,
    reason="compiled modules not built here, or TCPTRACE_PY_PURE is set")

PROBE = """
import importlib, json, sys
import tcptrace_py.cli  # what the CLI loads (tcptrace_py.parallel only with --jobs)
from tcptrace_py import compiled_modules, implementation
files = {name: importlib.import_module(name).__file__ for name in compiled_modules.MODULES}
print(json.dumps({"files": files, "version": implementation.describe()}))
"""


def probe(root: Path, **env: str) -> dict[str, object]:
    """Which file each compiled module came from, in a fresh interpreter importing the
    package from ``root`` (``PYTHONPATH``), and what ``--version`` says."""
    environ = {k: v for k, v in os.environ.items() if k != implementation.PURE_ENV}
    environ.update(env, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", PROBE], env=environ, cwd=root,
                         capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_every_listed_module_exists_and_setup_reads_the_same_list() -> None:
    """setup.py reads MODULES from the source (it cannot import the package): the list
    names real modules, and setup.py's reader gives the same tuple."""
    for name in compiled_modules.MODULES:
        assert os.path.exists(compiled_modules.source_path(name)), name
    namespace: dict[str, object] = {"__name__": "not_main"}
    code = (REPO / "setup.py").read_text(encoding="utf-8").replace(
        "setup(ext_modules=extensions()", "(lambda **kw: None)(ext_modules=[]")
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        exec(compile(code, "setup.py", "exec"), namespace)  # noqa: S102
        reader = namespace["_compiled_module_names"]
        assert callable(reader)
        assert reader() == compiled_modules.MODULES
    finally:
        os.chdir(cwd)


@built
def test_compiled_build_loads_every_module_from_its_extension() -> None:
    got = probe(REPO)
    files = got["files"]
    assert isinstance(files, dict)
    assert all(not f.endswith(".py") for f in files.values()), files
    assert got["version"] == "engine: compiled (Cython)"


@built
def test_pure_engine_loads_every_module_from_source() -> None:
    got = probe(REPO, **{implementation.PURE_ENV: "1"})
    files = got["files"]
    assert isinstance(files, dict)
    for name, path in files.items():
        assert path == str(compiled_modules.source_path(name)), (name, path)
    assert "pure Python" in str(got["version"])


@built
def test_a_source_edited_after_the_build_runs_instead_of_its_stale_extension(
        tmp_path: Path) -> None:
    """Edit fsm.py in a copy of the built package: fsm loads from source, the others stay
    compiled, and ``--version`` says one module runs from source."""
    copy = tmp_path / "tcptrace_py"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    fsm = copy / "fsm.py"
    fsm.write_text(fsm.read_text(encoding="utf-8") + "\n# edited after the build\n",
                   encoding="utf-8")
    got = probe(tmp_path)
    files = got["files"]
    assert isinstance(files, dict)
    assert files["tcptrace_py.fsm"] == str(fsm)
    others = {n: f for n, f in files.items() if n != "tcptrace_py.fsm"}
    assert all(not f.endswith(".py") for f in others.values()), others
    assert "1 module(s) edited since the build run from source" in str(got["version"])


@built
def test_a_source_with_its_recorded_time_is_not_read_and_another_time_is_checksummed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The record's time spares reading a source whose size and time are still the ones
    compiled; a source with another time (a copy, a checkout), or a record without one,
    is checksummed: the same bytes load compiled, other bytes of the same size and time
    are what the record cannot tell apart (a time never comes back after an edit)."""
    src = tmp_path / "mod.py"
    src.write_bytes(b"x = 1\n")
    data = src.read_bytes()
    st = src.stat()
    crc = compiled_modules.digest(data)
    read: list[str] = []
    real_read = compiled_modules._read_bytes

    def spy(path: str) -> bytes:
        read.append(path)
        return real_read(path)

    monkeypatch.setattr(compiled_modules, "_read_bytes", spy)
    assert compiled_modules._unchanged(str(src), (crc, st.st_mtime_ns)) and not read
    assert compiled_modules._unchanged(str(src), (crc, st.st_mtime_ns + 1)) and read
    read.clear()
    assert compiled_modules._unchanged(str(src), (crc, None)) and read
    read.clear()
    src.write_bytes(b"x = 2\n")  # the same size, another time: checksummed, stale
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert not compiled_modules._unchanged(str(src), (crc, st.st_mtime_ns)) and read
    assert not compiled_modules._unchanged(str(tmp_path / "gone.py"), (crc, st.st_mtime_ns))


@built
def test_without_a_record_of_the_build_every_module_loads_from_source(
        tmp_path: Path) -> None:
    """Extensions with no manifest (a build older than the record, a half-copied tree) are
    never trusted: the sources are the only copies known to be current."""
    copy = tmp_path / "tcptrace_py"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    (copy / compiled_modules.MANIFEST).unlink()
    files = probe(tmp_path)["files"]
    assert isinstance(files, dict)
    assert all(f.endswith(".py") for f in files.values()), files


@pytest.mark.skipif(implementation.compiled is None, reason="compiled engine not built")
def test_the_console_entry_keeps_freed_heap_on_glibc() -> None:
    """``_engine.keep_heap`` (called by ``tcptrace_py.__main__`` only): glibc's mallopt
    accepts both settings; elsewhere it says it did nothing."""
    import platform

    from tcptrace_py import __main__ as entry

    compiled = implementation.compiled
    assert compiled is not None
    ok = compiled.keep_heap(entry.HEAP_BLOCK_BYTES, entry.HEAP_KEEP_BYTES)
    assert ok is (platform.libc_ver()[0] == "glibc")
