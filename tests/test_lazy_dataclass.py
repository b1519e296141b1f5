"""``lazy_dataclass.dataclass`` behaves as the standard decorator on every class using it.

Why: the package's value types (events, anomalies, evidence, options, diagnostics...) moved
from ``dataclasses.dataclass`` to ``tcptrace_py.lazy_dataclass.dataclass`` to take ~20 ms of
compiling off start-up. They are the public contract of the exports and the DataFrame API:
construction, equality, hashing, ``repr``, immutability, pickling (``--jobs`` workers send
them) and the ``dataclasses`` functions must not change. Each class is compared here with a
standard dataclass declared with the same fields and options.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pickle
import pkgutil
from typing import Any

import pytest

import tcptrace_py
from tcptrace_py import lazy_dataclass
from tcptrace_py.lazy_dataclass import dataclass, field


def _package_classes() -> list[type[Any]]:
    """Every dataclass the package defines."""
    found: dict[str, type[Any]] = {}
    for info in pkgutil.walk_packages(tcptrace_py.__path__, "tcptrace_py."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == info.name and \
                    dataclasses.is_dataclass(value):
                found[f"{info.name}.{value.__qualname__}"] = value
    return [found[k] for k in sorted(found)]


CLASSES = _package_classes()


def _standard_twin(cls: type[Any]) -> type[Any]:
    """The standard decorator's class for ``cls``'s fields, options and own methods."""
    params = cls.__dataclass_params__
    frozen = "__setattr__" in cls.__dict__
    spec = [(f.name, f.type, dataclasses.field(
        default=f.default, default_factory=f.default_factory, init=f.init, repr=f.repr,
        hash=f.hash, compare=f.compare, kw_only=f.kw_only)) for f in dataclasses.fields(cls)]
    own = {name: value for name, value in cls.__dict__.items()
           if name in ("__post_init__", "__reduce__", "__str__") or
           (callable(value) and not name.startswith("__"))}
    return dataclasses.make_dataclass(
        cls.__name__, spec, namespace={**own, "__qualname__": cls.__qualname__},
        frozen=frozen, eq=True, order=params.order, slots="__slots__" in cls.__dict__)


def _arguments(cls: type[Any]) -> dict[str, Any] | None:
    """Keyword arguments building ``cls``: distinct values for required fields, defaults for
    the rest; None for a class that checks its values (``__post_init__``) and has a required
    field."""
    required = [f for f in dataclasses.fields(cls) if f.init and
                f.default is dataclasses.MISSING and
                f.default_factory is dataclasses.MISSING]
    if required and hasattr(cls, "__post_init__"):
        return None
    return {f.name: 1000 + i for i, f in enumerate(required)}


def _hash(value: object) -> int | None:
    try:
        return hash(value)
    except TypeError:
        return None


def test_every_package_dataclass_uses_it() -> None:
    names = {c.__qualname__ for c in CLASSES}
    assert {"Event", "Anomaly", "Retransmission", "Options", "Diagnostics",
            "FlowResult"} <= names, names
    standard = [c for c in CLASSES if c.__repr__.__module__ != lazy_dataclass.__name__]
    assert not standard, "use tcptrace_py.lazy_dataclass.dataclass (start-up)"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_package_class_matches_the_standard_decorator(cls: type[Any]) -> None:
    assert cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("), \
        "a docstring of its own (the standard decorator would write the signature)"
    twin = _standard_twin(cls)
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in dataclasses.fields(twin)]
    assert cls.__match_args__ == twin.__match_args__
    assert cls.__dict__.get("__slots__") == twin.__dict__.get("__slots__")
    kwargs = _arguments(cls)
    if kwargs is None:
        pytest.skip("checks its values: built with real ones by its own tests")
    ours, theirs = cls(**kwargs), twin(**kwargs)
    assert inspect.signature(cls) == inspect.signature(twin)
    assert repr(ours) == repr(theirs)
    assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
    again = cls(**kwargs)
    assert ours == again and not ours != again
    assert ours != theirs  # another class, as two standard dataclasses
    assert (cls.__hash__ is None) == (twin.__hash__ is None)
    if cls.__hash__ is not None:  # a field holding a dict makes both raise
        assert _hash(ours) == _hash(again) and (_hash(ours) is None) == (_hash(theirs) is None)
    if "__setattr__" in cls.__dict__:
        name = dataclasses.fields(cls)[0].name
        frozen_error = dataclasses.FrozenInstanceError
        with pytest.raises(frozen_error, match=f"cannot assign to field '{name}'"):
            setattr(ours, name, 0)
        with pytest.raises(frozen_error, match=f"cannot delete field '{name}'"):
            delattr(ours, name)
    if cls.__module__ != "tcptrace_py.cli":  # cli's classes hold files and callables
        assert pickle.loads(pickle.dumps(ours)) == ours
        assert copy.deepcopy(ours) == ours


# --------------------------------------------------------------------- the decorator itself
@dataclasses.dataclass(frozen=True, slots=True)
class _StdFrozen:
    """A frozen slotted value."""

    a: int
    b: str = "x"
    c: float = 0.0


@dataclass(frozen=True, slots=True)
class _LazyFrozen:
    """A frozen slotted value."""

    a: int
    b: str = "x"
    c: float = 0.0


@dataclasses.dataclass
class _StdMutable:
    """A mutable value with factories and a check."""

    n: int = 0
    items: list[int] = dataclasses.field(default_factory=list)
    seen: int = dataclasses.field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must be >= 0")


@dataclass
class _LazyMutable:
    """A mutable value with factories and a check."""

    n: int = 0
    items: list[int] = field(default_factory=list)
    seen: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must be >= 0")


def _same_text(ours: object, theirs: object) -> None:
    assert repr(ours).replace("_Lazy", "_Std") == repr(theirs)


def test_frozen_slotted_value_behaves_as_the_standard_one() -> None:
    ours, theirs = _LazyFrozen(1, c=float("nan")), _StdFrozen(1, c=float("nan"))
    _same_text(ours, theirs)
    assert ours == ours  # the same NaN object: tuples compare identity first
    assert _LazyFrozen(1) == _LazyFrozen(1, "x") and _LazyFrozen(1) != _LazyFrozen(2)
    assert _LazyFrozen(1).__eq__(_StdFrozen(1)) is NotImplemented
    assert hash(_LazyFrozen(1)) == hash(_LazyFrozen(1)) == hash(_StdFrozen(1))
    assert len({_LazyFrozen(1), _LazyFrozen(1), _LazyFrozen(2)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        ours.a = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del ours.a
    assert not hasattr(ours, "__dict__")
    assert pickle.loads(pickle.dumps(_LazyFrozen(3, "y"))) == _LazyFrozen(3, "y")
    assert dataclasses.replace(_LazyFrozen(1), b="z") == _LazyFrozen(1, "z")
    assert dataclasses.astuple(_LazyFrozen(1)) == dataclasses.astuple(_StdFrozen(1))
    with pytest.raises(TypeError):
        _LazyFrozen()  # type: ignore[call-arg]
    assert inspect.signature(_LazyFrozen) == inspect.signature(_StdFrozen)
    match _LazyFrozen(5, "q"):
        case _LazyFrozen(a, b):
            assert (a, b) == (5, "q")


def test_mutable_value_behaves_as_the_standard_one() -> None:
    ours, theirs = _LazyMutable(2), _StdMutable(2)
    _same_text(ours, theirs)
    assert ours.items is not _LazyMutable().items  # a fresh list each time
    ours.items.append(1)
    ours.seen = 5
    assert ours == _LazyMutable(2, [1]) and ours != _LazyMutable(2)
    assert _LazyMutable.__hash__ is None and _StdMutable.__hash__ is None
    with pytest.raises(TypeError):
        hash(ours)
    with pytest.raises(ValueError, match="n must be"):
        _LazyMutable(-1)
    assert copy.copy(ours) == ours and copy.deepcopy(ours) == ours
    assert pickle.loads(pickle.dumps(ours)) == ours


def test_init_is_compiled_on_first_use_only() -> None:
    @dataclass(frozen=True, slots=True)
    class Fresh:
        """Built below for the first time."""

        x: int

    deferred = Fresh.__init__
    assert Fresh(1).x == 1
    assert Fresh.__init__ is not deferred  # replaced by the standard __init__
    assert Fresh(2).x == 2
    assert Fresh.__init__.__qualname__.endswith("Fresh.__init__")


def test_own_methods_are_kept() -> None:
    @dataclass(frozen=True)
    class Own:
        """Defines its own text and equality."""

        x: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    assert repr(Own(1)) == "own" and Own(1) == Own(2)
    with pytest.raises(TypeError, match="__setattr__"):
        @dataclass(frozen=True)
        class Clash:
            """Cannot be frozen and set its own attributes."""

            x: int

            def __setattr__(self, name: str, value: object) -> None: ...


def test_module_exports() -> None:
    assert lazy_dataclass.field is dataclasses.field
    assert set(lazy_dataclass.__all__) == {"dataclass", "field"}


@pytest.mark.parametrize("frozen", [False, True])
def test_generated_init_matches_the_standard_on_every_field_kind(frozen: bool) -> None:
    """Positional defaults, default factories, keyword-only fields, ``init=False`` with a
    default and with a factory, slots, and a field named ``self`` (which the standard
    decorator renames): the same signature, values and errors as the standard class."""
    def build(deco: Any, fld: Any) -> tuple[type[Any], type[Any]]:
        @deco(frozen=frozen, slots=True)
        class Kinds:
            """Every kind of field."""

            a: int
            b: str = "x"
            c: list[int] = fld(default_factory=list)
            d: int = fld(default=7, kw_only=True)
            e: int = fld(default=3, init=False)
            f: list[int] = fld(default_factory=lambda: [1], init=False)

        @deco(frozen=frozen)
        class Named:
            """A field the generated code must rename."""

            self: int
            other: int = 2

        return Kinds, Named

    ours_k, ours_n = build(dataclass, field)
    std_k, std_n = build(dataclasses.dataclass, dataclasses.field)
    ours_k(1), ours_n(1)  # the first instance compiles __init__
    assert inspect.signature(ours_k) == inspect.signature(std_k)
    assert inspect.signature(ours_n) == inspect.signature(std_n)
    for args, kwargs in [((1,), {}), ((1, "y", [5]), {"d": 9})]:
        got, want = ours_k(*args, **kwargs), std_k(*args, **kwargs)
        assert dataclasses.astuple(got) == dataclasses.astuple(want)
        assert got.c is not ours_k(1).c  # a new list from the factory each time
    with pytest.raises(TypeError):
        ours_k(1, "y", [5], 9)  # d is keyword-only
    with pytest.raises(TypeError):
        ours_k()
    assert dataclasses.astuple(ours_n(1)) == dataclasses.astuple(std_n(1)) == (1, 2)
    if frozen:
        with pytest.raises(dataclasses.FrozenInstanceError):
            ours_k(1).a = 2
