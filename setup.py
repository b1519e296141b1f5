"""Build the compiled engine (tcptrace_py/_engine.pyx, Cython 3); metadata is in pyproject.toml.

The extension is optional at install time, as msgpack's and multidict's are: without a C
compiler (or with TCPTRACE_PY_PURE=1 set while installing) the package installs and runs
the pure-Python reference engine, and the CLI says so once on stderr. With
TCPTRACE_PY_SANITIZE=1 the extension is built with AddressSanitizer and UBSan (for the fuzz
corpus test; see tests/test_sanitizer.py).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PURE = os.environ.get("TCPTRACE_PY_PURE", "") not in ("", "0")
SANITIZE = os.environ.get("TCPTRACE_PY_SANITIZE", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing: the pure engine is a complete fallback."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: install the reference only
            self._skip(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

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
    flags = ["-O2"]
    link: list[str] = []
    if SANITIZE:
        flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
        link = ["-fsanitize=address,undefined"]
    ext = Extension("tcptrace_py._engine", ["tcptrace_py/_engine.pyx"],
                    extra_compile_args=flags, extra_link_args=link)
    return list(cythonize([ext], compiler_directives={"language_level": 3}, quiet=True))


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
