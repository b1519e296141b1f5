"""The compiled engine under AddressSanitizer and UBSan, over the fuzz corpus and captures.

Why: the compiled decoder reads frames through raw pointers with its own length checks
(Cython's bounds checking is off). A read past a frame's end may not crash and may not even
change a result, so equivalence tests can miss it; ASan turns any such read, and UBSan any
undefined arithmetic, into a failure. The extension is built here with
``TCPTRACE_PY_SANITIZE=1`` (see setup.py) into a scratch copy of the package, and the atheris
target's ``TestOneInput`` (which also compares the compiled decoder with the reference) runs
over its seeds, cut and flipped variants, the samples and the public captures.

Skips where gcc's sanitizer runtimes are absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tcptrace_py import implementation

pytestmark = pytest.mark.skipif(implementation.forced_pure,
                                reason="the sanitizer build tests the compiled engine")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _runtime(name: str) -> str | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    path = subprocess.run([gcc, f"-print-file-name={name}"], capture_output=True,
                          text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


ASAN = _runtime("libasan.so")
UBSAN = _runtime("libubsan.so")

_RUN = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/tests/fuzz")
import tcptrace_py.implementation as impl
assert impl.compiled is not None, impl.missing_reason
import fuzz_reader, seeds
inputs = list(seeds.seed_inputs().values())
for data in list(inputs):
    inputs.append(data[: len(data) // 2])
    for i in range(0, len(data), max(1, len(data) // 16)):
        inputs.append(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
for p in sys.argv[2:]:
    data = Path(p).read_bytes()
    inputs.append(data)
    inputs.append(data[: len(data) * 2 // 3])
for data in inputs:
    fuzz_reader.TestOneInput(data)
# Every frame of every capture as its own exact-size bytes object (ASan's red zones right
# behind its last byte), whole and cut at every few bytes of its headers: the compiled
# decoder's length checks meet every cut, and the reference checks each result.
from tcptrace_py.capture import read_frames
from tcptrace_py.diagnostics import CaptureError, Diagnostics
frames = 0
for p in sys.argv[2:]:
    try:
        for i, (_, _, linktype, frame, _) in enumerate(read_frames(p, Diagnostics())):
            if i >= 300 or linktype not in fuzz_reader.LINKTYPES:
                break
            tag = bytes([fuzz_reader.LINKTYPES.index(linktype)])
            for cut in (*range(0, min(len(frame), 120), 3), len(frame)):
                fuzz_reader.check_frame(tag + frame[:cut])
                frames += 1
    except CaptureError:
        pass
# The same inputs from a file: the compiled pcap reader reads a file it opened through a
# mapping of it, not its buffer (source._Prefixed.mapped).
import tempfile
from tcptrace_py.capture import read_segments
from tcptrace_py.decode import Decoder
from_files = 0
with tempfile.TemporaryDirectory() as d:
    f = Path(d) / "input.pcap"
    for data in inputs[:400]:
        f.write_bytes(data)
        diag = Diagnostics()
        try:
            for _ in read_segments(f, diag, Decoder(diag)):
                pass
            from_files += 1
        except CaptureError:
            pass
print("ran", len(inputs), frames, from_files)
"""


@pytest.mark.skipif(ASAN is None or UBSAN is None, reason="gcc sanitizer runtimes absent")
def test_compiled_engine_clean_under_asan_and_ubsan(tmp_path: Path) -> None:
    work = tmp_path / "src"
    shutil.copytree(REPO / "tcptrace_py", work / "tcptrace_py",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    shutil.copytree(REPO / "tests", work / "tests",
                    ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, work / name)
    env = dict(os.environ, TCPTRACE_PY_SANITIZE="1")
    env.pop("TCPTRACE_PY_PURE", None)
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                           cwd=work, env=env, capture_output=True, text=True)
    built = list((work / "tcptrace_py").glob("_engine*.so"))
    assert build.returncode == 0 and built, build.stdout + build.stderr
    captures = sorted(str(p) for p in (REPO / "samples").glob("*.pcap"))
    if (SHARED / "captures").is_dir():
        captures += sorted(str(p) for p in (SHARED / "captures").rglob("*")
                           if p.is_file() and p.stat().st_size < 2_000_000
                           and p.suffix not in (".tsv", ".json", ".md", ".txt", ".log")
                           and "expected" not in p.parts)
    # PYTHONMALLOC=malloc: every bytes object (each fuzzed frame) gets its own malloc block
    # with ASan red zones; pymalloc's arenas would hide a read past a small frame's end.
    run_env = dict(os.environ, LD_PRELOAD=f"{ASAN}:{UBSAN}", PYTHONMALLOC="malloc",
                   ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
                   UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    run_env.pop("TCPTRACE_PY_PURE", None)
    done = subprocess.run([sys.executable, "-c", _RUN, str(work), *captures], cwd=work,
                          env=run_env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert done.stdout.startswith("ran ")
    assert int(done.stdout.split()[3]) > 100  # inputs read from a file (mapped) to their end
