"""Which engine runs: the compiled twin (Cython) or the pure-Python reference.

Decided once, here and nowhere else, when the package is first imported (as msgpack's
``MSGPACK_PUREPYTHON`` and multidict's ``_compat.py`` do):

1. ``TCPTRACE_PY_PURE=1`` (any value but empty or ``0``) selects the reference.
2. Otherwise the compiled module ``tcptrace_py._engine`` is used when it imports.
3. When it does not (an install without a C compiler, a source checkout never built), the
   reference runs and :func:`warn_once_if_missing` says so once on stderr from the CLI.

Both engines give identical records, events, anomalies and diagnostics on every capture
(``tests/test_engines.py``); the compiled one is only faster.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PURE_ENV = "TCPTRACE_PY_PURE"
"""Environment variable that forces the pure-Python reference engine."""

forced_pure = os.environ.get(PURE_ENV, "") not in ("", "0")
"""True when the user asked for the reference engine."""

compiled: ModuleType | None = None
"""The compiled module, or None when the reference engine runs."""

missing_reason = ""
"""Why the compiled module is absent although not forced off (the ImportError's text)."""

if not forced_pure:
    try:
        compiled = importlib.import_module("tcptrace_py._engine")
    except ImportError as exc:  # not built: a checkout without a compiler, for instance
        missing_reason = str(exc)

ENGINE = "compiled (Cython)" if compiled is not None else "pure Python"
"""What ``tcptrace-py --version`` reports."""


def describe() -> str:
    """One line for ``--version``: which engine runs and, for the reference, why."""
    if compiled is not None:
        return f"engine: {ENGINE}"
    why = f"{PURE_ENV} is set" if forced_pure else "the compiled extension is not built"
    return f"engine: {ENGINE} ({why})"


_warned = False


def warn_once_if_missing() -> str | None:
    """The one-line notice that the compiled engine is missing (None when it runs or the
    user chose the reference); returned once per process for the CLI to print."""
    global _warned
    if compiled is not None or forced_pure or _warned:
        return None
    _warned = True
    return ("tcptrace-py: note: compiled engine not available, running the pure-Python "
            f"engine (slower); reinstall with a C compiler to build it ({missing_reason})")
