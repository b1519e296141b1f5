"""Evidence records kept by the sequence analysis: frozen, slotted, one docstring per field.

Detectors (issue 10) turn these into anomalies; exports show them as they are. Every list that
holds them is capped by ``AnalysisOptions.max_evidence_items``.
"""

from __future__ import annotations

from typing import Any

from tcptrace_py.lazy_dataclass import dataclass

NONE_YET: tuple[()] = ()
"""What an evidence list of a connection holds until its first item: one shared empty tuple.
Most connections never fill most of their lists, and an empty list each was 16 allocations
and ~1 KB of every live connection (7 % of the peak RSS on the 2 M-packet bench capture).
The code that adds the first item puts a list in its place; readers only iterate, index
and test these, which a tuple serves alike."""


def evidence_list(owner: object, name: str) -> list[Any]:
    """``owner``'s evidence list ``name`` to add to: a list put in place of ``NONE_YET`` at
    the first item."""
    lst = getattr(owner, name)
    if type(lst) is not list:
        lst = list(lst)
        setattr(owner, name, lst)
    return lst

RETRANSMISSION_KINDS = ("syn", "synack", "fin", "rto", "fast", "tail_loss_probe", "spurious",
                        "other")
"""Values of :attr:`Retransmission.kind`."""


@dataclass(frozen=True, slots=True)
class Retransmission:
    """One retransmitted segment (data, SYN, SYN-ACK or FIN) with its original transmission."""

    frame: int
    """Frame of the retransmission."""
    ts_ns: int
    """Its timestamp, integer nanoseconds since the epoch."""
    sender: str
    """``client`` or ``server``."""
    kind: str
    """``syn``/``synack``/``fin`` for control segments; for data ``rto`` (timer expiry),
    ``fast`` (dup ACKs or SACK evidence), ``tail_loss_probe`` (Linux TLP, RFC 8985 section 7),
    ``spurious`` (original already acknowledged, or a later D-SACK proved it), ``other``."""
    original_frame: int
    """Frame of the first transmission of that sequence space (-1 if it is no longer known)."""
    since_original_ns: int
    """Time since the first transmission (-1 when unknown)."""
    seq: int
    """Relative sequence number (0 = ISN, or first byte - 1 when no SYN was seen)."""
    payload_len: int
    """Payload bytes of the retransmission."""
    trigger: str = ""
    """The cause as seen on the wire, whatever ``kind`` says: ``rto``, ``fast`` or
    ``tail_loss_probe`` (a spurious or FIN retransmission still had a trigger)."""
    interval_ns: int = -1
    """Time since the previous transmission of the same sequence space (-1 when unknown)."""
    spurious: bool = False
    """Proven unnecessary: the data had been acknowledged, or a D-SACK reported it."""


@dataclass(frozen=True, slots=True)
class ZeroWindowPeriod:
    """A stretch during which one side advertised a zero receive window."""

    side: str
    """Side that advertised the zero window (the receiver): ``client`` or ``server``."""
    start_frame: int
    """First segment advertising window 0."""
    start_ts_ns: int
    """Its timestamp."""
    end_frame: int
    """First segment from the same side opening the window again (-1 if it never did)."""
    end_ts_ns: int
    """Its timestamp (-1 if the window never reopened in the capture)."""
    probes: int
    """Zero-window probes the other side sent into this period."""


@dataclass(frozen=True, slots=True)
class ZeroWindowProbe:
    """A probe into a zero window (RFC 9293 section 3.8.6.1)."""

    frame: int
    """Frame of the probe."""
    ts_ns: int
    """Its timestamp."""
    sender: str
    """Side that probed."""
    style: str
    """``one_byte`` (1 byte at SND.NXT, classic) or ``linux_zero_byte`` (0 bytes at
    SND.UNA - 1, what Linux's tcp_xmit_probe_skb sends)."""
    seq: int
    """Relative sequence number of the probe."""
    answered_by_frame: int = -1
    """Frame of the ACK that answered it (-1 if none seen)."""


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A keep-alive probe (RFC 9293 section 3.8.4): 0 or 1 byte at SND.NXT - 1, idle link."""

    frame: int
    """Frame of the probe."""
    ts_ns: int
    """Its timestamp."""
    sender: str
    """Side that probed."""
    payload_len: int
    """0 (Linux, BSD) or 1 (the garbage byte of older stacks)."""
    idle_ns: int
    """Time since the sender's previous segment."""
    answered_by_frame: int = -1
    """Frame of the peer's ACK that answered it (-1 if none seen)."""


@dataclass(frozen=True, slots=True)
class WindowFull:
    """A data segment that filled the receiver's advertised window exactly."""

    frame: int
    """Frame of the data segment."""
    ts_ns: int
    """Its timestamp."""
    sender: str
    """Side that filled the window (the data sender)."""
    seq: int
    """Relative sequence number of the segment."""
    window_bytes: int
    """The receiver's last advertised (scaled) window."""
