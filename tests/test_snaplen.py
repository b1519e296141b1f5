"""Captures taken with a small snaplen: headers cut, connections still whole.

tcpdump's old default snaplen of 68 bytes leaves an IPv6 packet (Ethernet 14 + IPv6 40) only
14 bytes of its TCP header: ports, sequence and acknowledgment numbers, data offset and flags,
but not the window. Those bytes are all the state machine needs, so such a capture must give
the same connections and lifecycles as the full one, with the cut reported, rather than skip
every frame as a truncated header.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from captures_util import pcap_bytes, tcp_frame

from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.engine import Engine
from tcptrace_py.segment import ACK, PSH

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
EXPECTED: dict[str, Any] = json.loads((SAMPLES / "expected.json").read_text())["samples"]


def resnap(src: Path, snaplen: int, out: Path) -> Path:
    """``editcap -s snaplen``: every record cut to ``snaplen`` bytes, wire length kept."""
    data = src.read_bytes()
    frames = []
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, off)
        frames.append(((sec * 1_000_000 + usec) * 1000, data[off + 16: off + 16 + incl][:snaplen],
                       orig))
        off += 16 + incl
    out.write_bytes(pcap_bytes(frames, snaplen=snaplen))
    return out


def _decode(frame: bytes) -> tuple[Any, Diagnostics]:
    diag = Diagnostics()
    return Decoder(diag).decode(1, frame, 1, 0, len(frame)), diag


def test_ipv6_header_cut_after_the_flags() -> None:
    full = tcp_frame("2001:db8::1", "2001:db8::2", 40000, 443, 1000, 2000, ACK | PSH,
                     window=4321, payload=b"x" * 10, ipv6=True)
    seg, diag = _decode(full[:68])
    assert seg is not None and diag.skipped == {}
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags) == (40000, 443, 1000, 2000,
                                                                   ACK | PSH)
    assert (seg.window, seg.payload_len, seg.captured_payload) == (-1, 10, 0)
    assert seg.header_truncated and seg.truncated
    seg, _ = _decode(full[:70])  # two more bytes: the window is there
    assert seg is not None and seg.window == 4321 and seg.header_truncated


def test_fewer_than_fourteen_tcp_bytes_is_a_truncated_header() -> None:
    full = tcp_frame("2001:db8::1", "2001:db8::2", 40000, 443, 1000, 2000, ACK, ipv6=True)
    seg, diag = _decode(full[:64])
    assert seg is None and diag.skipped == {"truncated_header": 1}


@pytest.mark.parametrize("snaplen", [68, 70])
def test_ipv6_sample_at_a_small_snaplen_keeps_its_lifecycle(snaplen: int,
                                                            tmp_path: Path) -> None:
    sample = EXPECTED["ipv6_normal"]
    full = list(Engine().run(str(SAMPLES / sample["pcap"])))
    cut_path = resnap(SAMPLES / sample["pcap"], snaplen, tmp_path / "cut.pcap")
    engine = Engine()
    cut = list(engine.run(str(cut_path)))
    keys = ("client_ip", "client_port", "server_ip", "server_port", "open", "close",
            "client_state", "server_state", "client_packets", "server_packets",
            "client_payload_bytes", "server_payload_bytes")
    assert [{k: r.record[k] for k in keys} for r in cut] == \
        [{k: r.record[k] for k in keys} for r in full]
    rec = cut[0].record
    assert (rec["client_state"], rec["server_state"]) == (
        sample["connections"][0]["client_state"], sample["connections"][0]["server_state"])
    # Every segment had its header cut, and the capture says so; nothing is called a fault.
    assert rec["client_truncated_pkts"] + rec["server_truncated_pkts"] == \
        rec["client_packets"] + rec["server_packets"]
    found = [a for r in cut for a in r.anomalies] + engine.summary.anomalies
    assert [a.code for a in found] == ["truncated_frames"]
    if snaplen == 68:  # no window field at all: no window statistics are made up
        for side in ("client", "server"):
            assert rec[f"{side}_window_max_bytes"] is None  # missing, not a 0 window
            assert rec[f"{side}_zero_window_advs"] == 0 and rec[f"{side}_window_updates"] == 0
    else:
        assert rec["client_window_max_bytes"] > 0 and rec["server_window_max_bytes"] > 0
