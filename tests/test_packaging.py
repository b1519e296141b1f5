"""Packaging of the compiled engine: sdist -> wheel with the extension, and an install
without a C compiler that still works (the pure engine, said once on stderr).

Why: the compiled core is a build requirement for speed, not for correctness. A user on a
machine without gcc must still get a working tool, and a wheel built from our sdist must
carry the extension (issue: "pip wheel . and an sdist build work").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tcptrace_py import implementation

pytestmark = pytest.mark.skipif(implementation.forced_pure,
                                reason="packaging is tested once, in the compiled run")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "normal.pcap"

# The test environment holds an editable install of this checkout, whose import hook would
# answer for a package missing a module (``tcptrace_py._engine``): drop it in the child.
_RUN = r"""
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv.pop(1))
sys.argv[0] = "tcptrace-py"
from tcptrace_py.cli import main
main()
"""


def _pip(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True,
                          text=True, env=env, timeout=900)


def _cli(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TCPTRACE_PY_PURE"}
    return subprocess.run([sys.executable, "-c", _RUN, str(target), *args],
                          capture_output=True, text=True, env=env, cwd=target)


def _source_tree(dest: Path) -> Path:
    """A copy of the checkout's sources without build products: an in-place build (or a
    ``build/`` directory left by ``setup.py build_ext``) holds an up-to-date extension that
    setuptools would install without compiling, whatever the compiler."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "*.so", "*.c", "bench",
        ".*_cache", ".hypothesis", "_compiled_sources.txt"))
    return dest


def test_install_without_compiler_runs_pure_engine(tmp_path: Path) -> None:
    target = tmp_path / "site"
    env = dict(os.environ, CC="/bin/false", CXX="/bin/false")
    done = _pip("install", "--no-deps", "--target", str(target),
                str(_source_tree(tmp_path / "src")), env=env)
    if done.returncode != 0 and "Could not find a version" in done.stderr:
        pytest.skip("build requirements not installable here (no package index)")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert not list((target / "tcptrace_py").glob("_engine*.so"))
    version = _cli(target, "--version")
    assert "engine: pure Python (the compiled extension is not built)" in version.stdout
    run = _cli(target, "analyze", str(SAMPLE), "--format", "jsonl")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") >= 1
    assert run.stderr.count("compiled engine not available") == 1


def test_editable_install_is_a_path_entry_not_an_import_hook(tmp_path: Path) -> None:
    """``pip install -e .`` (the README's set-up) puts the checkout on ``sys.path`` with a
    static .pth file (``[tool.setuptools] package-dir``): setuptools' import hook for a
    flat layout imports pathlib and importlib.util in every process, ~7 ms of each
    command's start-up. Built without a compiler here, to stay quick."""
    src = _source_tree(tmp_path / "src")
    venv = tmp_path / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    env = dict(os.environ, CC="/bin/false", CXX="/bin/false")
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-e", str(src)],
                          capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0 and "Could not find a version" in done.stderr:
        pytest.skip("build requirements not installable here (no package index)")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (site,) = venv.glob("lib/python*/site-packages")
    assert not list(site.glob("__editable__*finder*.py"))
    (pth,) = site.glob("__editable__.tcptrace_py*.pth")
    assert pth.read_text().strip() == str(src)
    found = subprocess.run([str(python), "-c", "import tcptrace_py, sys; "
                            "print(tcptrace_py.__file__); "
                            "print([m for m in sys.modules if 'editable' in m])"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines() == [str(src / "tcptrace_py" / "__init__.py"), "[]"]


@pytest.mark.skipif(sys.platform != "linux", reason="checks a Linux extension module")
def test_sdist_builds_a_wheel_with_the_extension(tmp_path: Path) -> None:
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    sdist = subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(dist),
                            str(REPO)], capture_output=True, text=True, timeout=900)
    if sdist.returncode != 0 and "Could not find a version" in sdist.stderr + sdist.stdout:
        pytest.skip("build requirements not installable here (no package index)")
    assert sdist.returncode == 0, sdist.stdout[-2000:] + sdist.stderr[-4000:]
    (tarball,) = dist.glob("*.tar.gz")
    wheel = _pip("wheel", "--no-deps", "-w", str(dist), str(tarball))
    assert wheel.returncode == 0, wheel.stdout[-2000:] + wheel.stderr[-4000:]
    (whl,) = dist.glob("*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert any(n.startswith("tcptrace_py/_engine.") and n.endswith(".so") for n in names)
    # The HTML report's script and style travel with the package (package-data).
    assert {"tcptrace_py/htmlreport/report.js", "tcptrace_py/htmlreport/index.js",
            "tcptrace_py/htmlreport/report.css"} <= set(names)
    target = tmp_path / "site"
    with zipfile.ZipFile(whl) as z:
        z.extractall(target)
    version = _cli(target, "--version")
    assert "engine: compiled (Cython)" in version.stdout, version.stdout + version.stderr
