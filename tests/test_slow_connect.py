"""slow_connect (detectors/connect.py; issue 15 item 9): a handshake completed only after
SYN or SYN-ACK retries gets a warning naming the retries, their schedule and the delay.

Captures: tcptrace's own ``6syns.dmp.gz`` (two connects whose SYNs were retried by a BSD-like
stack: 6, 12, 24 s, then 6 s), the project's ``synack_retransmission.pcap`` sample (a SYN-ACK
re-sent *after* the handshake ACK: the connect was not slow) and conversations written here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from captures_util import ethernet, pcap_bytes, tcp_packet

from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, PSH, SYN

REPO = Path(__file__).resolve().parents[1]
SIX_SYNS = REPO.parent / "shared" / "captures" / "tcptrace" / "6syns.dmp.gz"
CLIENT, SERVER = "192.0.2.1", "198.51.100.2"
T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def findings(source: Any, code: str = "slow_connect") -> list[Any]:
    engine = Engine(Options())
    out = [a for r in engine.run(source) for a in r.anomalies]
    return [a for a in out if a.code == code]


@pytest.mark.skipif(not SIX_SYNS.exists(), reason="shared captures absent")
def test_6syns() -> None:
    first, second = sorted(findings(SIX_SYNS), key=lambda a: a.first_frame)
    assert first.severity == "warning"
    d = first.details
    assert (d["syn_retries"], d["syn_frames"], d["synack_retries"]) == (3, [1, 2, 3, 4], 0)
    assert [round(g) for g in d["syn_intervals_s"]] == [6, 12, 24]
    assert d["extra_delay_s"] == pytest.approx(41.997537)
    assert d["handshake_s"] == pytest.approx(43.002382)
    assert "SYN retried 3 time(s) after 6.0, 12.0, 24.0 s" in first.summary
    assert (first.first_frame, first.last_frame) == (1, 6)
    d = second.details
    assert (d["syn_retries"], d["syn_frames"], d["handshake_ack_frame"]) == (1, [20, 21], 23)
    assert d["extra_delay_s"] == pytest.approx(5.981408)
    assert d["syn_pattern"] == "bsd"


def conversation(client_times_s: list[float], synack_times_s: list[float],
                 ack_s: float) -> bytes:
    """SYNs at ``client_times_s``, SYN-ACKs at ``synack_times_s``, the client's handshake ACK
    at ``ack_s``, then a request, its answer and a close."""
    c, s = 100, 900
    events: list[tuple[float, bytes]] = []
    for t in client_times_s:
        events.append((t, tcp_packet(CLIENT, SERVER, 40000, 80, c, 0, SYN)))
    for t in synack_times_s:
        events.append((t, tcp_packet(SERVER, CLIENT, 80, 40000, s, c + 1, SYN | ACK)))
    rest = [
        tcp_packet(CLIENT, SERVER, 40000, 80, c + 1, s + 1, ACK),
        tcp_packet(CLIENT, SERVER, 40000, 80, c + 1, s + 1, ACK | PSH, payload=b"hi"),
        tcp_packet(SERVER, CLIENT, 80, 40000, s + 1, c + 3, ACK | PSH, payload=b"yo"),
        tcp_packet(CLIENT, SERVER, 40000, 80, c + 3, s + 3, ACK | FIN),
        tcp_packet(SERVER, CLIENT, 80, 40000, s + 3, c + 4, ACK | FIN),
        tcp_packet(CLIENT, SERVER, 40000, 80, c + 4, s + 4, ACK),
    ]
    events += [(ack_s + i * 0.001, p) for i, p in enumerate(rest)]
    events.sort(key=lambda e: e[0])
    return pcap_bytes([(T0 + int(t * S), ethernet(p)) for t, p in events])


def test_linux_syn_retries_then_answered() -> None:
    """Two SYNs lost on the way (Linux: retries after 1 and 2 s), the third answered."""
    (a,) = findings(io.BytesIO(conversation([0.0, 1.0, 3.0], [3.0005], 3.001)))
    assert "SYN retried 2 time(s) after 1.0, 2.0 s (linux_exponential)" in a.summary
    assert a.details["extra_delay_s"] == pytest.approx(3.0)
    assert a.details["handshake_s"] == pytest.approx(3.001)
    # Not: a SYN logged twice 2 ms apart (below min_extra_delay_s), nor SYNs never answered
    # (unanswered_syn's finding).
    assert findings(io.BytesIO(conversation([0.0, 0.002], [0.003], 0.004))) == []
    syns = [(T0 + k * S, ethernet(tcp_packet(CLIENT, SERVER, 40000, 80, 100, 0, SYN)))
            for k in (0, 1, 3)]
    assert findings(io.BytesIO(pcap_bytes(syns))) == []
    assert findings(io.BytesIO(pcap_bytes(syns)), "unanswered_syn")


def test_synack_lost_after_the_capture_point() -> None:
    """The SYN-ACK is lost after the capture point: the client retries its SYN after 1 s and
    the server answers it with a SYN-ACK retransmission. The overlapping retries cost 1 s,
    not 2."""
    (a,) = findings(io.BytesIO(conversation([0.0, 1.0], [0.0005, 1.0005], 1.001)))
    d = a.details
    assert (d["syn_retries"], d["synack_retries"]) == (1, 1)
    assert d["extra_delay_s"] == pytest.approx(1.0005)
    assert "SYN retried 1 time(s)" in a.summary and "SYN-ACK retried 1 time(s)" in a.summary
    # A SYN-ACK re-sent *after* the handshake ACK (lost after the capture point) did not
    # delay the client's connect (the project's real-socket sample).
    sample = REPO / "samples" / "synack_retransmission.pcap"
    assert findings(sample, "synack_retransmission"), "the sample re-sends its SYN-ACK"
    assert findings(sample) == []


def test_handshake_ack_lost_before_the_capture_point() -> None:
    """Only the SYN-ACK is retried (the client's first ACK never reached the capture point):
    the connect still took a second more."""
    (a,) = findings(io.BytesIO(conversation([0.0], [0.0005, 1.0005], 1.001)))
    assert (a.details["syn_retries"], a.details["synack_retries"]) == (0, 1)
    assert a.details["extra_delay_s"] == pytest.approx(1.0)
