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

import dataclasses
import importlib
from collections.abc import Callable
from types import MemberDescriptorType, ModuleType
from typing import Any, TypeVar, cast

from tcptrace_py.compiled_modules import PURE_ENV, forced_pure

__all__ = ["API_VERSION", "ENGINE", "PURE_ENV", "compiled", "describe", "forced_pure",
           "missing_reason", "slots_factory", "twin", "warn_once_if_missing"]

compiled: ModuleType | None = None
"""The compiled module, or None when the reference engine runs."""

missing_reason = ""
"""Why the compiled module is absent although not forced off (the ImportError's text)."""

API_VERSION = 27
"""The ``_engine.API_VERSION`` these sources expect (see tcptrace_py/_engine.pyx)."""

if not forced_pure:
    try:
        compiled = importlib.import_module("tcptrace_py._engine")
    except ImportError as exc:  # not built: a checkout without a compiler, for instance
        missing_reason = str(exc)
    else:
        if getattr(compiled, "API_VERSION", None) != API_VERSION:
            # A stale build beside newer sources: never mix the two.
            compiled = None
            missing_reason = "the built extension is stale (rebuild: pip install -e .)"

T = TypeVar("T")


def twin(reference: type[T], base_name: str) -> type[T]:
    """The class the engine uses for ``reference``: the reference itself, or, when the
    compiled engine runs, a subclass of its compiled base ``base_name`` (which holds the
    attributes the compiled steady path touches as C fields, and compiled versions of the
    methods it defines) carrying every other method and slot of the reference unchanged.

    So the full path, the detectors and the reports run the reference's code on the same
    objects the compiled path updates, and a reference method can only be shadowed by a
    base that defines the same name (its twin). Dunder methods stay the reference's, except
    an ``__init__`` of a base listed in ``_engine.TWIN_INITS`` and those a base lists in
    ``_engine.TWIN_DUNDERS``.
    """
    if compiled is None:
        return reference
    base = getattr(compiled, base_name)
    own = vars(base)
    dunders = getattr(compiled, "TWIN_DUNDERS", {}).get(base_name, frozenset())
    ns: dict[str, Any] = {}
    for name, value in vars(reference).items():
        if name in ("__slots__", "__dict__", "__weakref__"):
            continue
        if isinstance(value, MemberDescriptorType):
            continue  # a reference slot: re-declared below unless the base has it
        if name in own and (not (name.startswith("__") and name.endswith("__"))
                            or name in dunders):
            continue  # compiled twin of this method or property
        if name == "__init__" and base_name in getattr(compiled, "TWIN_INITS", ()):
            continue  # the base's compiled constructor stands for the reference's
        ns[name] = value
    ns["__reference__"] = reference
    if "__slots__" in vars(reference):  # else the subclass keeps a __dict__, as the reference
        ns["__slots__"] = tuple(s for s in vars(reference)["__slots__"] if s not in own)
    return cast("type[T]", type(reference.__name__, (base,), ns))


def slots_factory(cls: type[T], *, complete: bool = False) -> Callable[..., T]:
    """The constructor the per-segment path uses for the slotted dataclass ``cls`` (events,
    evidence): ``cls`` itself under the reference engine; under the compiled one, a
    ``_engine.SlotsFactory`` that writes the slots without running the dataclass's
    generated ``__init__`` (Python code), giving an equal object. Positional arguments
    only. A class it cannot build that way (a field that is not a plain slot, a default
    factory, a ``__post_init__``) gets ``cls``; with ``complete`` every field must be given
    (no default is filled), so a field with a default factory is accepted too."""
    klass: Any = cls  # not narrowed by is_dataclass: the result keeps cls's type
    if compiled is None or not dataclasses.is_dataclass(klass) or \
            hasattr(klass, "__post_init__"):
        return cls
    fields = [f for f in dataclasses.fields(klass) if f.init]
    if len(fields) != len(dataclasses.fields(klass)) or (not complete and any(
            f.default_factory is not dataclasses.MISSING for f in fields)):
        return cls
    defaults = () if complete else tuple(
        f.default for f in fields if f.default is not dataclasses.MISSING)
    if any(f.default is dataclasses.MISSING for f in fields[len(fields) - len(defaults):]):
        return cls
    try:
        return cast("Callable[..., T]", compiled.SlotsFactory(
            cls, tuple(f.name for f in fields), defaults))
    except (TypeError, ValueError):
        return cls


ENGINE = "compiled (Cython)" if compiled is not None else "pure Python"
"""What ``tcptrace-py --version`` reports."""


def describe() -> str:
    """One line for ``--version``: which engine runs and, for the reference, why."""
    if compiled is not None:
        from tcptrace_py import compiled_modules

        stale = compiled_modules.install().stale
        if stale:
            return (f"engine: {ENGINE}; {len(stale)} module(s) edited since the build run "
                    "from source (rebuild: pip install -e .)")
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
