"""Build the compiled engine (Cython 3); metadata is in pyproject.toml.

Two kinds of extension: the hand-written twin of the per-packet path
(tcptrace_py/_engine.pyx), and the reference modules of the per-segment and per-connection
path compiled unchanged (tcptrace_py/compiled_modules.py lists them and says why). The build
records each such source's length and CRC-32 (and its time, when older than the build) in
tcptrace_py/_compiled_sources.txt, so that an edited source is imported instead of its stale
compiled copy.

The extension is optional at install time, as msgpack's and multidict's are: without a C
compiler (or with TCPTRACE_PY_PURE=1 set while installing) the package installs and runs
the pure-Python reference engine, and the CLI says so once on stderr. With
TCPTRACE_PY_SANITIZE=1 the extension is built with AddressSanitizer and UBSan (for the fuzz
corpus test; see tests/test_sanitizer.py).
"""

from __future__ import annotations

import os
import sys
import time
import zlib

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PURE = os.environ.get("TCPTRACE_PY_PURE", "") not in ("", "0")
SANITIZE = os.environ.get("TCPTRACE_PY_SANITIZE", "") not in ("", "0")


MANIFEST = "_compiled_sources.txt"


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing: the pure engine is a complete fallback."""

    def initialize_options(self) -> None:
        super().initialize_options()
        self.parallel = os.cpu_count() or 1  # a few dozen C files: use every core

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: install the reference only
            self._skip(exc)
        self._record_sources()
        if self.inplace:
            self._byte_compile_in_place()

    @staticmethod
    def _byte_compile_in_place() -> None:
        """Byte-compile the package's Python modules where they lie, as a wheel install
        does in site-packages (``pip install -e .`` builds in place and writes none).

        Why: with PYTHONDONTWRITEBYTECODE set (some images set it for everything), Python
        never caches the modules it compiles, so every run compiled the command line and
        the other modules the Cython build leaves as Python again: ~300 M instructions,
        ~80 ms, a sixth of a 200 k-packet analysis (docs/benchmarks.md, eighteenth
        session). Cached bytecode is read whatever that variable says."""
        import compileall

        compileall.compile_dir("tcptrace_py", quiet=1)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    def _record_sources(self) -> None:
        """Write the length and CRC-32 of each compiled reference module's source beside
        the extensions (only those whose extension was built), as
        tcptrace_py/compiled_modules.py reads them."""
        digests: dict[str, str] = {}
        package_dir = ""
        for ext in self.extensions:
            out = self.get_ext_fullpath(ext.name)
            if ext.name == "tcptrace_py._engine":
                package_dir = os.path.dirname(out)
            py = getattr(ext, "_reference_source", None)
            if py is not None and os.path.exists(out):
                with open(py, "rb") as fh:
                    data = fh.read()
                name = ext.name.removesuffix(".__init__")
                digests[name] = f"{len(data)}:{zlib.crc32(data):08x}"
                # The source's time too, when older than the build by more than any clock
                # granularity: a later edit then has another time for sure, and the
                # check at start-up is a stat, not a read (compiled_modules.py).
                mtime_ns = os.stat(py).st_mtime_ns
                if time.time_ns() - mtime_ns > 2_000_000_000:
                    digests[name] += f" {mtime_ns}"
        if not package_dir:
            return
        os.makedirs(package_dir, exist_ok=True)
        with open(os.path.join(package_dir, MANIFEST), "w", encoding="utf-8") as fh:
            fh.writelines(f"{name} {d}\n" for name, d in sorted(digests.items()))

    @staticmethod
    def _skip(exc: BaseException) -> None:
        print(f"WARNING: tcptrace-py compiled engine not built ({exc}); the pure-Python "
              "engine will run", file=sys.stderr)


def extensions() -> list[Extension]:
    if PURE:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("WARNING: Cython not available; the pure-Python engine will run",
              file=sys.stderr)
        return []
    # -ffp-contract=off: no fused multiply-add, so C double arithmetic rounds each step as
    # Python's floats do (the twins of round3/round1 must give round()'s bits).
    flags = ["-O2", "-ffp-contract=off"]
    link: list[str] = []
    if SANITIZE:
        flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                 "-ffp-contract=off"]
        link = ["-fsanitize=address,undefined"]
    engine = Extension("tcptrace_py._engine", ["tcptrace_py/_engine.pyx"],
                       extra_compile_args=flags, extra_link_args=link)
    out = list(cythonize([engine], compiler_directives={"language_level": 3}, quiet=True))
    if SANITIZE:
        return out  # the sanitizer test exercises the hand-written reader and decoder
    # The reference modules, compiled as they are. annotation_typing=False keeps Python's
    # semantics exactly (Cython would otherwise read a ``float`` annotation as a C double).
    for name in _compiled_module_names():
        path = _module_source(name)
        # A package's __init__.py builds as pkg/__init__.so, which Python imports as pkg.
        ext_name = name + ".__init__" if path.endswith("__init__.py") else name
        ext = Extension(ext_name, [path], extra_compile_args=["-O2"])
        (built,) = cythonize([ext], quiet=True, compiler_directives={
            "language_level": 3, "annotation_typing": False, "binding": True})
        built._reference_source = path  # type: ignore[attr-defined]
        out.append(built)
    return out


def _compiled_module_names() -> tuple[str, ...]:
    """tcptrace_py.compiled_modules.MODULES, read without importing the package."""
    import ast

    with open(os.path.join("tcptrace_py", "compiled_modules.py"), encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "MODULES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("tcptrace_py/compiled_modules.py has no MODULES")


def _module_source(name: str) -> str:
    rel = os.path.join(*name.split("."))
    package = os.path.join(rel, "__init__.py")
    return package if os.path.exists(package) else rel + ".py"


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
