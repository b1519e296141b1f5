"""``dataclass`` as the standard library's, without compiling code at import.

Why: ``dataclasses.dataclass`` writes each class's ``__init__``, ``__repr__``, ``__eq__``,
``__hash__`` and (frozen) ``__setattr__``/``__delattr__`` as source text and compiles each with
``exec``. The 23 classes on the path of ``tcptrace-py analyze`` spent ~20-30 ms of a ~100 ms
start-up (134 M of 2,422 M instructions on bench/out/200k.pcap) compiling ~120 such functions,
most of which a run never calls (docs/benchmarks.md, "thirteenth session").

What it does: the standard decorator is applied with ``init``, ``repr`` and ``eq`` off, so
the class is a real dataclass (``dataclasses.fields``, ``replace``, ``asdict`` and
``__match_args__`` work; slots are made the same way). Then:

- ``__init__`` is the standard generated one, compiled the first time the class is
  instantiated (a stand-in runs once, replaces itself and forwards the call): a class a run
  never builds costs nothing, and a built one runs the same code as before.
- ``__repr__``, ``__eq__``, ``__hash__`` and the frozen ``__setattr__``/``__delattr__`` are
  shared functions reading ``fields()``: the same results (text, equality across the same
  class only, hash consistent with equality, ``FrozenInstanceError``), compiled once for all
  classes. None of them is on a hot path.
- A frozen slotted class pickles by its field values, as the standard one does.

A method the class body defines itself is kept, as the standard decorator keeps it. Each
class needs a docstring: without one the standard decorator writes the signature in its
place, through ``inspect.signature`` (slow), of an ``__init__`` not yet made.
``tests/test_lazy_dataclass.py`` holds every behaviour against the standard decorator.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from types import FunctionType
from typing import Any, TypeVar, overload

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10: type checkers read the 3.11 branch
    def dataclass_transform(**_kwargs: Any) -> Callable[[Any], Any]:
        return lambda f: f

from dataclasses import FrozenInstanceError, field

__all__ = ["dataclass", "field"]

T = TypeVar("T")


@overload
def dataclass(cls: type[T], /) -> type[T]: ...


@overload
def dataclass(*, frozen: bool = False, slots: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(field_specifiers=(dataclasses.field, dataclasses.Field))
def dataclass(cls: type[T] | None = None, /, *, frozen: bool = False,
              slots: bool = False) -> type[T] | Callable[[type[T]], type[T]]:
    """``@dataclass``, ``@dataclass(frozen=True, slots=True)``: the standard decorator's
    class (``eq=True``, no ordering), its methods made as the module docstring says."""
    def wrap(klass: type[T]) -> type[T]:
        return _make(klass, frozen, slots)
    return wrap if cls is None else wrap(cls)


def _make(klass: type[T], frozen: bool, slots: bool) -> type[T]:
    body = dict(klass.__dict__)
    cls: Any = dataclasses.dataclass(klass, init=False, repr=False, eq=False, slots=slots)
    names = tuple(f.name for f in dataclasses.fields(cls))
    compared = tuple(f.name for f in dataclasses.fields(cls) if f.compare)
    hashed = tuple(f.name for f in dataclasses.fields(cls)
                   if (f.compare if f.hash is None else f.hash))
    shown = tuple(f.name for f in dataclasses.fields(cls) if f.repr)

    def keep(name: str, value: Any) -> None:
        if name not in body:
            setattr(cls, name, value)

    keep("__init__", _deferred_init(cls, frozen))
    keep("__repr__", _repr(shown))
    if "__eq__" not in body:
        cls.__eq__ = _eq(compared)
        # The standard rule (eq=True): a frozen class hashes its compared fields; a mutable
        # one is unhashable, unless the body defines __hash__.
        if "__hash__" not in body:
            cls.__hash__ = _hash(hashed) if frozen else None
    if frozen:
        for name in ("__setattr__", "__delattr__"):
            if name in body:
                raise TypeError(f"cannot overwrite attribute {name} in class {cls.__name__}")
        cls.__setattr__ = _frozen_setattr(cls, names)
        cls.__delattr__ = _frozen_delattr(cls, names)
        if slots:
            keep("__getstate__", _getstate(names))
            keep("__setstate__", _setstate(names))
    return cls  # type: ignore[no-any-return]


def _deferred_init(cls: Any, frozen: bool) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _standard_init(cls, frozen)
        cls.__init__ = init
        init(self, *args, **kwargs)
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _standard_init(cls: Any, frozen: bool) -> Callable[..., None]:
    """The standard decorator's ``__init__`` for ``cls``'s fields: the body
    ``dataclasses._init_fn`` writes (each field assigned, a default factory called when
    its parameter was left out, through ``object.__setattr__`` when frozen, then
    ``__post_init__``), compiled once, with the parameters' defaults (keyword-only ones
    after ``*``) and annotations set on the function rather than written in its source:
    the same signature, a third of the compiling.

    Why not the decorator itself on a stand-in class (``make_dataclass``): it also wrote a
    frozen stand-in's ``__setattr__`` and ``__delattr__`` and built a class, ~0.4 ms a
    class, ~3.5 ms of the ~40 ms a tiny capture's ``analyze`` ran in process (eight classes
    built per run; docs/benchmarks.md, twenty-sixth session). ``dataclasses.fields`` holds
    no ``InitVar``, so neither does this (nor did the stand-in); a field named ``self`` (or
    like the generated names) takes the stand-in, whose generated code renames ``self``."""
    fields = dataclasses.fields(cls)
    slots = "__slots__" in cls.__dict__
    if any(f.name == "self" or f.name.startswith("__dataclass") for f in fields):
        return _stand_in_init(cls, frozen)
    missing = dataclasses.MISSING
    params: list[str] = []
    kw_only: list[str] = []
    defaults: list[Any] = []
    kw_defaults: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    body: list[str] = []
    values: dict[str, Any] = {"__dataclass_builtins_object__": object}
    seen_default = False
    for f in fields:
        dflt = f"__dataclass_dflt_{f.name}__"
        if f.init:
            annotations[f.name] = f.type
            default = (_HAS_DEFAULT_FACTORY if f.default_factory is not missing
                       else f.default)
            if f.kw_only:
                kw_only.append(f.name)
                if default is not missing:
                    kw_defaults[f.name] = default
            else:
                if default is not missing:
                    seen_default = True
                    defaults.append(default)
                elif seen_default:
                    raise TypeError(f"non-default argument {f.name!r} follows default argument")
                params.append(f.name)
        if f.default_factory is not missing:
            values[dflt] = f.default_factory
            if f.init:
                values["__dataclass_HAS_DEFAULT_FACTORY__"] = _HAS_DEFAULT_FACTORY
                value = f"{dflt}() if {f.name} is __dataclass_HAS_DEFAULT_FACTORY__ else {f.name}"
            else:
                value = f"{dflt}()"
        elif f.init:
            value = f.name
        elif slots and f.default is not missing:
            values[dflt] = f.default
            value = dflt
        else:
            continue  # read from the class attribute holding the default
        body.append(f"__dataclass_builtins_object__.__setattr__(self,{f.name!r},{value})"
                    if frozen else f"self.{f.name}={value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    if kw_only:
        params += ["*", *kw_only]
    # ``compile`` is nearly all of this function's cost (~120 us for 20 fields; ~300 us
    # with the defaults and annotations written in the parameter list).
    text = (f"def __create_fn__({', '.join(values)}):\n"
            f" def __init__({','.join(['self', *params])}):\n"
            + "".join(f"  {line}\n" for line in body or ["pass"])
            + " return __init__")
    module = sys.modules.get(cls.__module__)
    namespace: dict[str, Any] = {}
    code = compile(text, "<string>", "exec", dont_inherit=True)
    exec(code, module.__dict__ if module is not None else {}, namespace)  # noqa: S102
    init: FunctionType = namespace["__create_fn__"](**values)
    init.__defaults__ = tuple(defaults) or None
    init.__kwdefaults__ = kw_defaults or None
    init.__annotations__ = {**annotations, "return": None}
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


class _HasDefaultFactory:
    """The marker of a parameter left to its default factory, where ``dataclasses`` has no
    ``_HAS_DEFAULT_FACTORY`` (private; the same object keeps ``inspect.signature`` equal
    to the standard class's)."""

    def __repr__(self) -> str:
        return "<factory>"


_HAS_DEFAULT_FACTORY: Any = getattr(dataclasses, "_HAS_DEFAULT_FACTORY", _HasDefaultFactory())


def _stand_in_init(cls: Any, frozen: bool) -> Callable[..., None]:
    """The standard decorator's ``__init__`` for ``cls``'s fields, taken from a stand-in
    dataclass declared with the same fields (and ``__post_init__``, which it calls on
    ``self``)."""
    spec = [(f.name, f.type, dataclasses.field(
        default=f.default, default_factory=f.default_factory, init=f.init,
        kw_only=f.kw_only)) for f in dataclasses.fields(cls)]
    # A docstring spares the standard decorator writing one from inspect.signature (~1 ms).
    namespace: dict[str, Any] = {"__doc__": cls.__doc__}
    if hasattr(cls, "__post_init__"):
        namespace["__post_init__"] = cls.__post_init__
    stand_in = dataclasses.make_dataclass(cls.__name__, spec, namespace=namespace,
                                          frozen=frozen, repr=False, eq=False)
    init: Callable[..., None] = stand_in.__dict__["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


def _repr(shown: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__qualname__}({inner})"
    return __repr__


def _eq(compared: tuple[str, ...]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        # Tuples, as the standard method compares (an element is equal to itself first).
        return tuple(getattr(self, n) for n in compared) == \
            tuple(getattr(other, n) for n in compared)
    return __eq__


def _hash(hashed: tuple[str, ...]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(tuple(getattr(self, n) for n in hashed))
    return __hash__


def _frozen_setattr(cls: Any, names: tuple[str, ...]) -> Callable[[Any, str, Any], None]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)
    return __setattr__


def _frozen_delattr(cls: Any, names: tuple[str, ...]) -> Callable[[Any, str], None]:
    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)
    return __delattr__


def _getstate(names: tuple[str, ...]) -> Callable[[Any], list[Any]]:
    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, n) for n in names]
    return __getstate__


def _setstate(names: tuple[str, ...]) -> Callable[[Any, list[Any]], None]:
    def __setstate__(self: Any, state: list[Any]) -> None:
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)
    return __setstate__
