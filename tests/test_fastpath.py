"""The steady-state fast path (fastpath.py) changes speed, never results.

Every capture the tests can reach is analysed twice, with ``Options.fast_path`` on and off,
and every output is compared: connection records, anomalies, events and the per-packet
table (whose analysis flags show each segment's classification). A generated capture with
loss, SACK, zero windows and resets checks the path is taken for most segments there.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from captures_util import opt_mss, opt_sack, opt_ts, opt_wscale, pcap_bytes, tcp_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tcptrace_py.engine as engine_module
import tcptrace_py.fastpath as fastpath
import tcptrace_py.flowtable as flowtable
from tcptrace_py.connection import Connection
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, PSH, SYN, Segment

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
_SKIP_SUFFIXES = (".tsv", ".json", ".md", ".py", ".txt", ".log", ".csv", ".long")


def _captures(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not p.name.endswith(_SKIP_SUFFIXES)
                  and "expected" not in p.parts and "__pycache__" not in p.parts)


def _outputs(source: Any, fast: bool) -> list[Any]:
    engine = Engine(Options(keep_packets=True, fast_path=fast))
    out: list[Any] = []
    try:
        for r in engine.run(source):
            out.append((r.record, r.anomalies, r.events, r.packets))
    except Exception as exc:  # a broken capture must fail the same way on both paths
        out.append(("error", type(exc).__name__, str(exc)))
    out.append(engine.summary.anomalies)
    return out


def _generated(packets: int, seed: int, snaplen: int | None = None) -> bytes:
    gen = sys.modules.get("gen_capture")
    if gen is None:
        spec = importlib.util.spec_from_file_location("gen_capture",
                                                      REPO / "bench" / "gen_capture.py")
        assert spec is not None and spec.loader is not None
        gen = importlib.util.module_from_spec(spec)
        sys.modules["gen_capture"] = gen  # dataclasses look their module up there
        spec.loader.exec_module(gen)
    buf = io.BytesIO()
    if snaplen is None:
        gen.generate(buf, packets, seed)
    else:
        gen.generate(buf, packets, seed, snaplen=snaplen)
    return buf.getvalue()


@pytest.mark.parametrize("path", _captures(REPO / "samples"), ids=lambda p: p.name)
def test_samples_same_with_and_without_fast_path(path: Path) -> None:
    assert _outputs(path, True) == _outputs(path, False)


SHARED_CAPTURES = _captures(SHARED / "captures") + _captures(SHARED / "scenarios")


@pytest.mark.skipif(not SHARED_CAPTURES, reason="../shared not present")
def test_shared_captures_same_with_and_without_fast_path() -> None:
    differ = [p.name for p in SHARED_CAPTURES if _outputs(p, True) != _outputs(p, False)]
    assert differ == []


@pytest.fixture()
def taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """[segments the fast path applied, segments it handed back] during the test."""
    counts = [0, 0]
    real = fastpath.steady_segment

    def counting(conn: Connection, seg: Segment) -> int:
        mask = real(conn, seg)
        counts[0 if mask >= 0 else 1] += 1
        return mask

    monkeypatch.setattr(flowtable, "steady_segment", counting)
    # The compiled flow table calls its compiled steady path directly: count through the
    # reference's routing, which looks ``steady_segment`` up in its module.
    monkeypatch.setattr(engine_module, "FlowTable", flowtable.ReferenceFlowTable)
    yield counts


def test_generated_capture_same_and_mostly_fast(taken: list[int]) -> None:
    data = _generated(30_000, seed=7)
    fast = _outputs(io.BytesIO(data), True)
    applied = taken[0]
    assert fast == _outputs(io.BytesIO(data), False)
    assert len(fast) > 100  # hundreds of connections of every kind
    # Bulk and request/response data between ESTABLISHED endpoints: most segments.
    assert applied > 0.7 * 30_000
    assert taken == [applied, taken[1]]  # the slow run never called it


def test_snaplen_capture_same_and_mostly_fast(taken: list[int]) -> None:
    """A capture taken with a snaplen (``tcpdump -s 96``: every payload cut) gives the same
    results on both paths, and its data segments stay on the fast path: only their count
    of cut payloads (``truncated_*``) differs from a full capture's."""
    data = _generated(20_000, 11, snaplen=96)
    fast = _outputs(io.BytesIO(data), True)
    applied = taken[0]
    assert fast == _outputs(io.BytesIO(data), False)
    assert applied > 0.7 * 20_000
    cut = sum(r[0]["client_truncated_pkts"] + r[0]["server_truncated_pkts"]
              for r in fast if isinstance(r, tuple) and isinstance(r[0], dict))
    assert cut > 0.4 * 20_000


def test_fast_path_off_never_calls_it(taken: list[int]) -> None:
    _outputs(io.BytesIO(_generated(2_000, seed=3)), False)
    assert taken == [0, 0]


# ------------------------------------------------------------------ random conversations
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
STEPS = ("data", "data", "data", "ack", "ack", "ack_all", "resend", "ahead", "one_byte",
         "zero_window", "small_window", "sack", "dup_ack", "idle", "ack_unseen", "ack_behind",
         "wrap_jump", "fill_window", "keepalive", "window_probe", "stall", "odd_seq_ack",
         "snap", "sack_blocks", "sack_blocks")


@st.composite
def conversations(draw: st.DrawFn) -> bytes:
    """A handshake, then random segments between two ESTABLISHED endpoints: mostly what the
    fast path takes, mixed with everything that must make it hand the segment back."""
    isn = [draw(st.sampled_from([0, 2**32 - 1, 2**32 - 3000, 2**31, 12345])) for _ in "cs"]
    nxt = [(isn[0] + 1) % 2**32, (isn[1] + 1) % 2**32]  # next byte each side sends
    acked = list(nxt)  # highest ACK each side has sent for the other's bytes (by side)
    ts = 1_700_000_000 * 1_000_000_000
    hosts = ("10.0.0.1", "10.0.0.2")
    ports = (40000, 80)
    opts_ts = draw(st.booleans())
    frames: list[tuple[int, bytes] | tuple[int, bytes, int]] = []

    def emit(side: int, seq: int, ack: int, flags: int, n: int = 0, window: int = 65535,
             options: bytes = b"") -> None:
        if opts_ts and not options:
            options = b"\x01\x01" + opt_ts(ts // 1_000_000 % 2**32, 7)
        frames.append((ts, tcp_frame(hosts[side], hosts[1 - side], ports[side],
                                     ports[1 - side], seq % 2**32, ack % 2**32, flags,
                                     window=window, payload=b"d" * n, options=options)))

    emit(0, isn[0], 0, SYN, options=opt_mss(1460) + opt_wscale(7))
    ts += 1_000_000
    emit(1, isn[1], nxt[0], SYN | ACK, options=opt_mss(1460) + opt_wscale(7))
    ts += 1_000_000
    emit(0, nxt[0], nxt[1], ACK)
    for _ in range(draw(st.integers(1, 60))):
        side = draw(st.integers(0, 1))
        peer = 1 - side
        ts += draw(st.sampled_from([0, 1_000, 200_000, 5_000_000]))
        step = draw(st.sampled_from(STEPS))
        n = draw(st.sampled_from([2, 100, 1448, 3000]))
        ack = acked[side]
        if step == "data":
            emit(side, nxt[side], ack, ACK | PSH, n)
            nxt[side] += n
        elif step == "ack":
            acked[side] = draw(st.integers(min(acked[side], nxt[peer]), nxt[peer]))
            emit(side, nxt[side], acked[side], ACK)
        elif step == "ack_all":
            acked[side] = nxt[peer]
            emit(side, nxt[side], acked[side], ACK, window=draw(st.sampled_from([1, 65535])))
        elif step == "resend":
            back = draw(st.integers(1, 3000))
            emit(side, nxt[side] - back, ack, ACK, min(n, back))
        elif step == "ahead":
            emit(side, nxt[side] + draw(st.integers(1, 3000)), ack, ACK, n)
        elif step == "one_byte":
            emit(side, nxt[side], ack, ACK, 1)
            nxt[side] += 1
        elif step == "zero_window":
            emit(side, nxt[side], ack, ACK, 0, window=0)
        elif step == "small_window":
            emit(side, nxt[side], ack, ACK, draw(st.sampled_from([0, 100])), window=3)
        elif step == "sack":
            left = nxt[peer] + 100
            emit(side, nxt[side], ack, ACK, options=b"\x01\x01" + opt_sack([(left % 2**32,
                                                                         (left + 500) % 2**32)]))
        elif step == "sack_blocks":
            # Duplicate ACKs carrying up to four SACK blocks, some a D-SACK (RFC 2883 section
            # 4: a first block below the ACK, or one inside the second block).
            kind = draw(st.sampled_from(["plain", "below", "inside"]))
            base = nxt[peer]
            blocks = [(base + 1000 * i, base + 1000 * i + 500)
                      for i in range(1, draw(st.integers(1, 3)) + 1)]
            if kind == "below":
                low = ack - draw(st.integers(1, 3000))
                blocks = [(low, low + draw(st.integers(1, 1000)))] + blocks[:3]
            elif kind == "inside":
                blocks = [(blocks[0][0] + 100, blocks[0][0] + 200)] + blocks
            for _ in range(draw(st.integers(1, 4))):
                emit(side, nxt[side], ack, ACK, options=b"\x01\x01" + opt_sack(
                    [(left % 2**32, right % 2**32) for left, right in blocks[:4]]))
        elif step == "dup_ack":
            emit(side, nxt[side], ack, ACK)
            emit(side, nxt[side], ack, ACK)
        elif step == "idle":
            ts += draw(st.sampled_from([3_000_000_000, 80_000_000_000]))
            emit(side, nxt[side] - 1, ack, ACK)  # a keep-alive after idle
        elif step == "ack_unseen":
            emit(side, nxt[side], nxt[peer] + draw(st.sampled_from([1, 5000])), ACK,
                 window=draw(st.sampled_from([0, 65535])))
        elif step == "odd_seq_ack":
            # A new ACK on a 0-byte segment whose sequence number is not SND.NXT.
            acked[side] = draw(st.integers(min(acked[side], nxt[peer]), nxt[peer]))
            emit(side, nxt[side] - draw(st.integers(1, 3)), acked[side], ACK)
        elif step == "ack_behind":
            emit(side, nxt[side], acked[side] - 10, ACK)
        elif step == "fill_window":
            # The peer acknowledges everything with a 384-byte window (3 << 7); this side
            # then sends exactly up to its edge: a window-full mark.
            acked[peer] = nxt[side]
            emit(peer, nxt[peer], acked[peer], ACK, window=3)
            ts += 1_000
            emit(side, nxt[side], ack, ACK, 384)
            nxt[side] += 384
        elif step == "keepalive":
            acked[peer] = nxt[side]
            emit(peer, nxt[peer], acked[peer], ACK)
            ts += draw(st.sampled_from([1_000, 2_000_000_000]))
            emit(side, nxt[side] - 1, ack, ACK)  # 0 bytes at SND.NXT - 1, all acknowledged
            ts += 1_000
            emit(peer, nxt[peer], acked[peer], ACK)
        elif step == "window_probe":
            acked[peer] = nxt[side]
            emit(peer, nxt[peer], acked[peer], ACK, window=0)
            ts += 200_000_000
            emit(side, nxt[side] - 1, ack, ACK)  # Linux's 0-byte probe at SND.UNA - 1
        elif step == "snap":
            # Data cut by the snaplen: in the payload, in the options, or inside the fixed
            # TCP header (after the flags, or after the window).
            # A pure ACK (n = 0) cut in its options has its whole payload: only the cut
            # header tells the full path to count it.
            n = draw(st.sampled_from([0, n]))
            if not n:  # the peer sends, and the cut ACK acknowledges it: a steady segment
                emit(peer, nxt[peer], acked[peer], ACK | PSH, 100)
                nxt[peer] += 100
                ts += 1_000
                ack = acked[side] = nxt[peer]
            emit(side, nxt[side], ack, ACK | PSH if n else ACK, n,
                 options=b"" if n or opts_ts else opt_mss(1460) + opt_wscale(7))
            nxt[side] += n
            at, frame = frames.pop()[:2]
            keep = 34 + draw(st.sampled_from([14, 16, 24, 20 + (12 if opts_ts else 0) + 1]))
            frames.append((at, frame[:keep], len(frame)))
        elif step == "stall":
            emit(side, nxt[side], ack, ACK, window=0)  # this side's receive window closes
            ts += 2_500_000_000
            emit(side, nxt[side], ack, ACK | PSH, n)  # and reopens with new data
            nxt[side] += n
        else:  # a sequence jump over 2**31: unwrapping must agree too
            emit(side, nxt[side] + 2**31 + 5, ack, ACK, n)
    if draw(st.booleans()):
        emit(0, nxt[0], acked[0], FIN | ACK)
        ts += 1_000_000
        emit(1, nxt[1], nxt[0] + 1, FIN | ACK)
    return pcap_bytes(frames)


@FUZZ
@given(conversations())
def test_random_conversations_same_with_and_without_fast_path(data: bytes) -> None:
    assert _outputs(data, True) == _outputs(data, False)
