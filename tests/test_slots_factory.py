"""The compiled constructor of slotted dataclasses makes the objects their class makes.

Why: the per-segment path creates events, notable packets and retransmission records
through ``implementation.slots_factory``, which under the compiled engine writes the slots
of a fresh instance instead of running the dataclass's generated ``__init__`` (interpreted
Python). Every field must then hold exactly what ``cls(*values)`` would have stored, with
the defaults filled in the same way, and a call the class would refuse must be refused.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from tcptrace_py import implementation
from tcptrace_py.analysis.evidence import Retransmission
from tcptrace_py.connection import NotablePacket, _new_notable
from tcptrace_py.events import Anomaly, Event, new_event

compiled_only = pytest.mark.skipif(implementation.compiled is None,
                                   reason="the reference engine runs: no compiled factory")

EVENT_ARGS = (7, 12, 1_704_067_200_000_000_000, "client", "transition", "SYN_SENT",
              "ESTABLISHED", "received", "SA", 0, 1, 0, "SYN-ACK arrives")


def fields_of(obj: Any) -> list[tuple[str, Any, type]]:
    """Each field's name, value and the value's type (True and 1 are equal, not alike)."""
    return [(f.name, getattr(obj, f.name), type(getattr(obj, f.name)))
            for f in dataclasses.fields(obj)]


def test_reference_engine_uses_the_classes_themselves() -> None:
    if implementation.compiled is None:
        assert new_event is Event and _new_notable is NotablePacket
    else:
        assert isinstance(new_event, implementation.compiled.SlotsFactory)


@compiled_only
def test_event_equals_the_dataclass_made_one() -> None:
    fast, slow = new_event(*EVENT_ARGS), Event(*EVENT_ARGS)
    assert type(fast) is Event
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert fields_of(fast) == fields_of(slow)
    assert pickle.loads(pickle.dumps(fast)) == slow
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.frame = 1  # type: ignore[misc]


@compiled_only
@pytest.mark.parametrize("args", [
    (3, 5, "server", 0x14, 10, 20, 0),                 # both defaults taken
    (3, 5, "server", 0x04, 10, 20, 0, False),          # one default taken
    (3, 5, "client", 0x11, 10, 20, 0, True, 40_000),   # none
])
def test_defaults_are_filled_as_the_dataclass_fills_them(args: tuple[Any, ...]) -> None:
    fast, slow = _new_notable(*args), NotablePacket(*args)
    assert fields_of(fast) == fields_of(slow)


@compiled_only
def test_retransmission_record() -> None:
    args = (40, 9, "server", "fast", 31, 12_000, 1449, 1448, "fast", 12_000, False)
    factory = implementation.slots_factory(Retransmission)
    assert fields_of(factory(*args)) == fields_of(Retransmission(*args))


@compiled_only
@pytest.mark.parametrize("count", [0, 12, 14])
def test_wrong_argument_count_is_refused_like_the_class(count: int) -> None:
    args: tuple[Any, ...] = EVENT_ARGS[:count] + (0,) * max(0, count - 13)
    with pytest.raises(TypeError):
        Event(*args)
    with pytest.raises(TypeError, match="positional arguments"):
        new_event(*args)


def test_classes_it_cannot_build_keep_their_own_constructor() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        items: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(slots=True)
    class WithPostInit:
        x: int

        def __post_init__(self) -> None:
            self.x += 1

    class Plain:
        __slots__ = ("x",)

    # Anomaly's details default is a factory: the class itself, under either engine.
    for cls in (WithFactory, WithPostInit, Plain, Anomaly):
        assert implementation.slots_factory(cls) is cls


def test_a_complete_factory_takes_a_class_with_a_default_factory() -> None:
    """``slots_factory(Anomaly, complete=True)`` (what detectors' ``make`` uses): the same
    anomaly as the class makes from all nine values; fewer are refused (no default is
    filled, not even ``details``'s factory); the class itself under the reference engine."""
    factory = implementation.slots_factory(Anomaly, complete=True)
    args = ("rst_storm", "warning", 3, 10, 20, 1_704_067_200_000_000_000, "RSTs",
            {"count": 5}, "network")
    made = factory(*args)
    assert made == Anomaly(*args) and type(made) is Anomaly
    assert fields_of(made) == fields_of(Anomaly(*args))
    assert pickle.loads(pickle.dumps(made)) == made
    if implementation.compiled is None:
        assert factory is Anomaly
    else:
        with pytest.raises(TypeError):
            factory(*args[:8])
