"""One-sided captures: only one direction of each connection was captured.

Asymmetric routing, a span port fed one direction, or ``tcpdump -Q out`` give captures in
which one side talks to silence. The seen side's own segments still prove the other side
answered (an ACK after its SYN, ACKs of sequence space never captured), so the analyzer must
say the capture is one-sided (``one_sided_capture``) rather than blame the network: no
``unanswered_syn`` for a SYN its sender went on to ACK, no ``close_wait_stuck`` for a side
never seen, no timeout claimed for retransmissions whose dup ACKs the capture lacks.

The one-sided captures are cut from the project's real-socket samples (each direction kept
in turn), so every case has a two-sided original with kernel ground truth.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from captures_util import pcap_bytes, tcp_frame

from tcptrace_py.analysis import AnalysisOptions
from tcptrace_py.capture import read_frames
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.engine import Engine
from tcptrace_py.flowtable import FlowTable
from tcptrace_py.options import Options

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
EXPECTED: dict[str, Any] = json.loads((SAMPLES / "expected.json").read_text())["samples"]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "captures"

# Samples whose connections all complete a handshake, carry data and close or reset.
CUT_SAMPLES = ("normal", "server_closes_first", "data_loss_retrans", "zero_window",
               "lost_final_ack", "half_close", "keepalive", "retransmission_timeout",
               "close_wait_stuck", "ipv6_normal", "synack_retransmission", "rst_abort")


def _sport(frame: bytes) -> int | None:
    """TCP source port of an Ethernet frame (IPv4 or IPv6, no options chains), else None."""
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800 and frame[23] == 6:
        return int(struct.unpack_from("!H", frame, 14 + (frame[14] & 0x0F) * 4)[0])
    if ethertype == 0x86DD and frame[20] == 6:
        return int(struct.unpack_from("!H", frame, 54)[0])
    return None


def cut(pcap: Path, keep_client: bool, client_ports: set[int], out: Path) -> Path:
    """Write the frames of ``pcap`` sent by clients (or by servers) to ``out``."""
    data = pcap.read_bytes()
    assert struct.unpack_from("<I", data, 0)[0] == 0xA1B2C3D4, "samples are µs pcap"
    frames = []
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16: off + 16 + incl]
        off += 16 + incl
        sport = _sport(frame)
        if sport is not None and (sport in client_ports) == keep_client:
            frames.append(((sec * 1_000_000 + usec) * 1000, frame, orig))
    out.write_bytes(pcap_bytes(frames, snaplen=200))
    return out


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def analyze(path: Path) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    engine = Engine()
    results = list(engine.run(str(path)))
    return ([r.record for r in results], [a for r in results for a in r.anomalies],
            list(engine.summary.anomalies))


@pytest.mark.parametrize("keep_client", [True, False], ids=["client_only", "server_only"])
@pytest.mark.parametrize("name", CUT_SAMPLES)
def test_one_direction_of_a_sample(name: str, keep_client: bool, tmp_path: Path) -> None:
    sample = EXPECTED[name]
    client_ports = {_port(c["client"]) for c in sample["connections"]}
    pcap = cut(SAMPLES / sample["pcap"], keep_client, client_ports, tmp_path / "cut.pcap")
    records, anomalies, _ = analyze(pcap)
    seen, missing = ("client", "server") if keep_client else ("server", "client")
    assert len(records) == len(sample["connections"])
    for rec in records:
        # The seen side's ACK after its SYN (or SYN-ACK) proves the handshake completed.
        assert rec["open"] == "three_way_handshake", rec
        assert rec[f"{missing}_packets"] == 0
    codes = [(a.code, a.details.get("by")) for a in anomalies]
    assert ("unanswered_syn", None) not in codes
    assert ("close_wait_stuck", missing) not in codes, "a side never seen cannot be stuck"
    assert ("retransmission_timeout", seen) not in codes, "its dup ACKs are not captured"
    assert "acks_of_unseen_data" not in {c for c, _ in codes}, "one_sided_capture counts them"
    one_sided = [a for a in anomalies if a.code == "one_sided_capture"]
    assert len(one_sided) == len(records)
    for a in one_sided:
        assert a.severity == "info" and a.category == "capture"
        assert (a.details["seen"], a.details["missing"]) == (seen, missing)
        assert a.details["answered_frame"] is not None or a.details["acks_of_unseen_data"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_two_sided_samples_are_never_one_sided(name: str) -> None:
    _, anomalies, _ = analyze(SAMPLES / EXPECTED[name]["pcap"])
    assert "one_sided_capture" not in {a.code for a in anomalies}


def test_unanswered_syns_stay_unanswered(tmp_path: Path) -> None:
    """Only SYNs from the client prove nothing about the server: still unanswered."""
    sample = EXPECTED["unanswered_syn"]
    client_ports = {_port(c["client"]) for c in sample["connections"]}
    pcap = cut(SAMPLES / sample["pcap"], True, client_ports, tmp_path / "cut.pcap")
    records, anomalies, _ = analyze(pcap)
    assert [r["close"] for r in records] == ["unanswered"]
    codes = {a.code: a for a in anomalies}
    assert codes["unanswered_syn"].severity == "error"
    assert "one_sided_capture" not in codes


def test_a_silent_peer_is_not_called_missing(tmp_path: Path) -> None:
    """Mid-stream keep-alives with one unchanging ACK number prove no peer traffic during the
    capture (the peer may be dead): no one_sided_capture, and the retries stay timeouts."""
    c, s = "10.0.0.1", "10.0.0.2"
    t = 1_700_000_000_000_000_000
    frames = [(t, tcp_frame(c, s, 40000, 80, 1000, 5000, 0x18, payload=b"x" * 100))]
    # The same data re-sent with exponential backoff, always acknowledging server byte 5000.
    for i, gap in enumerate((0.2, 0.4, 0.8, 1.6)):
        t += int(gap * 1e9)
        frames.append((t, tcp_frame(c, s, 40000, 80, 1000, 5000, 0x18, payload=b"x" * 100)))
        assert i < 4
    path = tmp_path / "silent.pcap"
    path.write_bytes(pcap_bytes(frames))
    records, anomalies, _ = analyze(path)
    codes = {a.code for a in anomalies}
    assert "one_sided_capture" not in codes
    assert "retransmission_timeout" in codes and "rto_backoff" in codes
    assert records[0]["open"] == "midstream"


def test_synack_not_captured_two_sided(tmp_path: Path) -> None:
    """A SYN-ACK lost by the capture (not by the network): the client's ACK after its SYN
    proves the handshake, so the connection opened with one, and no SYN went unanswered."""
    c, s = "10.0.0.1", "10.0.0.2"
    t = 1_700_000_000_000_000_000
    ms = 1_000_000
    frames = [
        (t, tcp_frame(c, s, 40001, 80, 100, 0, 0x02)),
        # (the server's SYN-ACK, seq 700, is missing from the capture)
        (t + 2 * ms, tcp_frame(c, s, 40001, 80, 101, 701, 0x10)),
        (t + 3 * ms, tcp_frame(c, s, 40001, 80, 101, 701, 0x18, payload=b"GET /")),
        (t + 5 * ms, tcp_frame(s, c, 80, 40001, 701, 106, 0x18, payload=b"200 OK")),
        (t + 6 * ms, tcp_frame(c, s, 40001, 80, 106, 707, 0x11)),
        (t + 8 * ms, tcp_frame(s, c, 80, 40001, 707, 107, 0x11)),
        (t + 9 * ms, tcp_frame(c, s, 40001, 80, 107, 708, 0x10)),
    ]
    path = tmp_path / "nosynack.pcap"
    path.write_bytes(pcap_bytes(frames))
    records, anomalies, _ = analyze(path)
    assert (records[0]["open"], records[0]["close"]) == ("three_way_handshake", "graceful")
    codes = {a.code for a in anomalies}
    assert "unanswered_syn" not in codes and "one_sided_capture" not in codes


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/captures not present")
def test_public_one_sided_captures() -> None:
    """suricata-verify's one-sided HTTP download (server side only, no SYN) and pcapplusplus'
    raw-IP capture (clients whose servers were not captured)."""
    onesided = SHARED / "suricata-verify" / "simple_http_download.onesided.nosyn.pcap"
    records, anomalies, _ = analyze(onesided)
    codes = {a.code for a in anomalies}
    assert "one_sided_capture" in codes and "close_wait_stuck" not in codes
    raw = SHARED / "pcapplusplus" / "raw_ip.pcap"
    records, anomalies, _ = analyze(raw)
    flagged = {a.flow_id for a in anomalies if a.code == "one_sided_capture"}
    assert flagged, "raw_ip.pcap has clients whose servers are not in the capture"
    for rec in records:
        if rec["flow_id"] in flagged:
            assert rec["open"] == "three_way_handshake" and rec["close"] != "unanswered"
    assert not [a for a in anomalies if a.code == "unanswered_syn" and a.flow_id in flagged]


# --------------------------------------------------------------------------- long one-sided
REPO = Path(__file__).resolve().parents[1]
SEG_BYTES = 1000


def write_one_sided_stream(path: Path, segments: int, hole_every: int) -> Path:
    """One connection seen from the client only (asymmetric routing): SYN, ACK, then
    ``segments`` data segments never acknowledged, every ``hole_every``-th one missing from
    the capture. Written with ``struct`` (fast enough for 10^5 segments in a test)."""
    rec = struct.Struct("<IIII")
    ip = struct.Struct("!BBHHHBBH4s4s")
    tcp = struct.Struct("!HHIIHHHH")
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    payload = b"x" * SEG_BYTES

    def frame(i: int, seq: int, flags: int, data: bytes) -> bytes:
        fr = eth + ip.pack(0x45, 0, 40 + len(data), i & 0xFFFF, 0x4000, 64, 6, 0, src, dst) \
            + tcp.pack(40000, 80, seq & 0xFFFFFFFF, 7777, (5 << 12) | flags, 502, 0, 0) + data
        us = i * 10
        return rec.pack(1_700_000_000 + us // 1_000_000, us % 1_000_000, len(fr), len(fr)) + fr

    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        out = [frame(0, 1000, 0x02, b""), frame(1, 1001, 0x10, b"")]
        for k in range(segments):
            if k % hole_every != hole_every - 1:
                out.append(frame(k + 2, 1001 + k * SEG_BYTES, 0x18, payload))
            if len(out) >= 20_000:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    return path


def test_one_sided_tracking_capped_counted_and_reported(tmp_path: Path) -> None:
    """Issue 18.2: a direction whose data is never acknowledged keeps at most
    max_unacked_segments segment records and max_holes holes (range set and Zeek blocks);
    what it forgets is counted in evidence_dropped and reported once per capture, and every
    other column is what the uncapped analysis gives."""
    segments, hole_every, max_segs, max_holes = 3000, 10, 256, 64
    path = write_one_sided_stream(tmp_path / "one_sided.pcap", segments, hole_every)
    capped = Options(analysis=AnalysisOptions(max_unacked_segments=max_segs,
                                              max_holes=max_holes))

    diag = Diagnostics()
    decode = Decoder(diag).decode
    table = FlowTable(capped)
    largest = [0, 0, 0]
    for no, ts, lt, data, wl in read_frames(path, diag):
        s = decode(lt, data, no, ts, wl)
        assert s is not None
        conn = table.on_segment(s, [])
        assert conn is not None
        snd = conn.analyzer._c
        largest = [max(largest[0], len(snd.order or ())), max(largest[1], len(snd.ranges)),
                   max(largest[2], len(conn.peer._eps[0].blocks))]
    assert largest[0] <= max_segs and largest[1] <= max_holes + 1 and largest[2] <= max_holes

    engine = Engine(capped)
    (res,) = list(engine.run(str(path)))
    (full,) = list(Engine(Options()).run(str(path)))
    rec = res.record
    data_segments = segments - segments // hole_every
    holes = (segments - 1) // hole_every  # missing segments below the last one seen
    assert rec["client_unique_bytes"] == data_segments * SEG_BYTES  # filled holes not counted
    assert rec["client_lost_segments"] == holes
    assert full.record["evidence_dropped"] == 0
    assert {k: v for k, v in rec.items() if k != "evidence_dropped"} == \
        {k: v for k, v in full.record.items() if k != "evidence_dropped"}
    dropped = engine.summary.tracking_dropped
    assert rec["evidence_dropped"] == dropped > data_segments - max_segs
    assert engine.summary.tracking_capped == 1
    warnings = [w for w in engine.diag.warnings if w.code == "tracking_capped"]
    assert len(warnings) == 1 and f"{dropped} unacknowledged segments and holes" in \
        warnings[0].message
    assert not any(w.code == "tracking_capped" for w in Engine(Options()).diag.warnings)


_ONE_SIDED_CHILD = textwrap.dedent("""
    import json, sys
    from tcptrace_py.engine import Engine

    def peak_mb():
        with open("/proc/self/status") as f:  # VmHWM: this process's own peak (not ru_maxrss)
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024

    for _ in Engine().run(sys.argv[2]):  # imports and caches into the baseline
        pass
    base = peak_mb()
    (res,) = list(Engine().run(sys.argv[1]))
    print(json.dumps({"base_mb": base, "peak_mb": peak_mb(),
                      "dropped": res.record["evidence_dropped"],
                      "unique": res.record["client_unique_bytes"]}))
""")

ONE_SIDED_SMALL = 30_000
ONE_SIDED_LARGE = 120_000
ONE_SIDED_GROWTH_BOUND_MB = 4.0
"""Peak RSS difference allowed between a ONE_SIDED_SMALL- and a ONE_SIDED_LARGE-segment
one-sided connection (default caps; a hole every 50 segments, so 600 and 2,400 holes, both
under ``max_holes``): both runs reach ``max_unacked_segments`` (16,384 records, ~4.5 MB).
Measured: ~0.5 MB. Before the caps every unacknowledged segment stayed (~280 B, plus a Zeek
reassembly block per segment: ~36 MB for the 90 k extra segments, and a quadratic block
insertion that took 568 s for 100 k segments)."""


def test_one_sided_memory_flat_in_segments(tmp_path: Path) -> None:
    warm = write_one_sided_stream(tmp_path / "warm.pcap", 2000, 50)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    peaks = {}
    for n in (ONE_SIDED_SMALL, ONE_SIDED_LARGE):
        path = write_one_sided_stream(tmp_path / f"one_sided_{n}.pcap", n, 50)
        out = subprocess.run([sys.executable, "-c", _ONE_SIDED_CHILD, str(path), str(warm)],
                             capture_output=True, text=True, check=True, env=env, timeout=600)
        peaks[n] = json.loads(out.stdout)
        assert peaks[n]["unique"] == (n - n // 50) * SEG_BYTES
        assert peaks[n]["dropped"] > 0
    growth = peaks[ONE_SIDED_LARGE]["peak_mb"] - peaks[ONE_SIDED_SMALL]["peak_mb"]
    assert growth < ONE_SIDED_GROWTH_BOUND_MB, peaks


def _cap_dump(path: str, fast: bool) -> str:
    """Every output of ``path`` with a 64-segment unacknowledged cap, as comparable text."""
    opts = Options(fast_path=fast, keep_packets=True,
                   analysis=AnalysisOptions(max_unacked_segments=64))
    engine = Engine(opts)
    out: list[Any] = [(r.record, r.anomalies, r.events, r.packets)
                      for r in engine.run(path)]
    return repr([*out, engine.summary.anomalies, engine.summary.tracking_dropped])


def test_unacked_cap_same_on_every_path(tmp_path: Path) -> None:
    """The cap also applies on the steady path (fastpath.steady_segment and its compiled
    twin): a two-sided connection whose receiver keeps acknowledging only the first segment
    gives the same results with the fast path on or off, in this process's engine and in
    the pure-Python reference (TCPTRACE_PY_PURE=1, in a subprocess)."""
    c, s = "10.0.0.1", "10.0.0.2"
    t = 1_700_000_000 * 10**9
    frames = [(t, tcp_frame(c, s, 40000, 80, 100, 0, 0x02)),
              (t + 1000, tcp_frame(s, c, 80, 40000, 900, 101, 0x12)),
              (t + 2000, tcp_frame(c, s, 40000, 80, 101, 901, 0x10))]
    for k in range(400):
        t += 10_000
        frames.append((t, tcp_frame(c, s, 40000, 80, 101 + 100 * k, 901, 0x10,
                                    payload=b"d" * 100)))
        if k % 50 == 49:  # the receiver acknowledges the first segment only, again
            frames.append((t + 1, tcp_frame(s, c, 80, 40000, 901, 201, 0x10)))
    path = tmp_path / "stuck.pcap"
    path.write_bytes(pcap_bytes(frames))
    here = [_cap_dump(str(path), True), _cap_dump(str(path), False)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TCPTRACE_PY_PURE": "1"}
    code = ("import sys; sys.path.insert(0, 'tests'); from test_one_sided import _cap_dump; "
            "print(_cap_dump(sys.argv[1], True)); print(_cap_dump(sys.argv[1], False))")
    pure = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True,
                          timeout=300).stdout.splitlines()
    assert here[0] == here[1] == pure[0] == pure[1]
    (res,) = list(Engine(Options(analysis=AnalysisOptions(max_unacked_segments=64)))
                  .run(str(path)))
    assert res.record["evidence_dropped"] > 300
