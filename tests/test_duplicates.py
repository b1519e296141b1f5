"""Duplicated frames (duplicates.py): copies of a frame are not retransmissions.

Captures are built here packet by packet, as the capture points that make copies do: NFLOG
logging one SYN three times at the same timestamp, a span port fed before and after a router
(TTL 64 then 63, a millisecond later, sometimes after later packets), and the reverse cases,
re-sends that are retransmissions although they look alike (a new IP ID, a newer TSval, an
identical IPv6 segment answering duplicate ACKs, an identical SYN-ACK a second later). Each
runs with the fast path on and off. Public captures: arkime/wireshark-retrans.pcap (copies
0.3-51 ms after their originals) and suricata-verify/debug-s13.pcap (a forged RST that is
byte-identical to the server's but not a copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from captures_util import opt_mss, opt_sack, opt_sack_perm, opt_ts, pcap_bytes, tcp_frame

from tcptrace_py.analysis import flags as AF
from tcptrace_py.engine import Engine, FlowResult
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, PSH, SYN

SHARED = Path(__file__).resolve().parents[2] / "shared" / "captures"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
C, S = "10.0.0.1", "10.0.0.2"
C6, S6 = "2001:db8::1", "2001:db8::2"


@dataclass
class Conv:
    """One connection's packets: each side numbers its IP IDs from its own counter."""

    ipv6: bool = False
    ip_id_zero: bool = False
    timestamps: bool = False
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    ids: list[int] = field(default_factory=lambda: [0x1000, 0x7000])
    tsval: list[int] = field(default_factory=lambda: [5000, 9000])

    def pkt(self, t_ms: float, client: bool, seq: int, ack: int, flags: int, *,
            payload: bytes = b"", ttl: int = 64, ip_id: int | None = None,
            tsval: int | None = None, options: bytes = b"") -> bytes:
        side = 0 if client else 1
        if ip_id is None:
            self.ids[side] += 1
            ip_id = self.ids[side]
        if tsval is None:
            tsval = self.tsval[side] + int(t_ms)
        opts = options + (opt_ts(tsval, 0) if self.timestamps else b"")
        src, dst = (C6, S6) if self.ipv6 else (C, S)
        if not client:
            src, dst = dst, src
        ip_kw: dict[str, Any] = ({"hop_limit": ttl} if self.ipv6 else
                                 {"ttl": ttl, "ip_id": 0 if self.ip_id_zero else ip_id})
        frame = tcp_frame(src, dst, 40000 if client else 80, 80 if client else 40000, seq,
                          ack, flags, payload=payload, options=opts, ipv6=self.ipv6, **ip_kw)
        self.frames.append((T0 + int(t_ms * MS), frame))
        return frame

    def copy(self, t_ms: float, frame: bytes, ttl_change: int = 0) -> None:
        """The same frame captured again (TTL lowered by a router hop when asked)."""
        if ttl_change:
            b = bytearray(frame)
            if self.ipv6:
                b[14 + 7] += ttl_change
            else:
                b[14 + 8] += ttl_change  # the IPv4 header checksum is not checked
            frame = bytes(b)
        self.frames.append((T0 + int(t_ms * MS), frame))

    def capture(self) -> bytes:
        return pcap_bytes(sorted(self.frames, key=lambda f: f[0]))


def run(data: bytes, **opts: Any) -> list[FlowResult]:
    return list(Engine(Options(keep_packets=True, **opts)).run(data))


def codes(res: FlowResult) -> list[str]:
    return sorted(a.code for a in res.anomalies)


def one_flow(data: bytes, fast_path: bool) -> FlowResult:
    results = run(data, fast_path=fast_path)
    assert len(results) == 1
    return results[0]


def exchange(cv: Conv, copies: dict[int, tuple[float, int]] | None = None) -> None:
    """Handshake, a request, a three-segment answer, both FINs. ``copies`` maps the index of
    a packet to (delay in ms, TTL change) of a copy of it."""
    copies = copies or {}
    sent: list[tuple[float, bytes]] = []

    def p(t: float, client: bool, seq: int, ack: int, flags: int, **kw: Any) -> None:
        sent.append((t, cv.pkt(t, client, seq, ack, flags, **kw)))

    p(0, True, 1000, 0, SYN, options=opt_mss(1460) + opt_sack_perm())
    p(20, False, 5000, 1001, SYN | ACK, options=opt_mss(1460) + opt_sack_perm())
    p(40, True, 1001, 5001, ACK)
    p(41, True, 1001, 5001, PSH | ACK, payload=b"G" * 100)
    p(60, False, 5001, 1101, ACK, payload=b"a" * 1000)
    p(61, False, 6001, 1101, ACK, payload=b"b" * 1000)
    p(62, False, 7001, 1101, PSH | ACK, payload=b"c" * 500)
    p(80, True, 1101, 6001, ACK)
    p(81, True, 1101, 7501, ACK)
    p(90, True, 1101, 7501, FIN | ACK)
    p(110, False, 7501, 1102, FIN | ACK)
    p(130, True, 1102, 7502, ACK)
    for i, (delay, ttl_change) in copies.items():
        t, frame = sent[i]
        cv.copy(t + delay, frame, ttl_change)


# Columns a copy may change: frames of the capture, not what the connection did.
FRAME_COLUMNS = {"client_packets", "server_packets", "client_payload_bytes",
                 "server_payload_bytes", "client_duplicate_frames", "server_duplicate_frames",
                 "last_frame", "first_frame", "history", "anomalies", "end_ts", "end_ts_ns",
                 "duration_s"}


def same_analysis(a: FlowResult, b: FlowResult) -> None:
    """Every column but the frame counts, and every finding but duplicate_frames, agree."""
    ra = {k: v for k, v in a.record.items()
          if k not in FRAME_COLUMNS and not k.endswith("_frame")}
    rb = {k: v for k, v in b.record.items()
          if k not in FRAME_COLUMNS and not k.endswith("_frame")}
    assert ra == rb
    assert [c for c in codes(b) if c != "duplicate_frames"] == codes(a)
    assert [(e.endpoint, e.kind, e.old_state, e.new_state) for e in b.events] == \
        [(e.endpoint, e.kind, e.old_state, e.new_state) for e in a.events]


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("ip_id_zero", [False, True])
def test_nflog_logs_one_syn_three_times(fast_path: bool, ip_id_zero: bool) -> None:
    """NFLOG in three chains: the SYN three times at one timestamp is one SYN, whatever its
    IP ID (Linux SYNs carry one; 0 takes the byte-identity rule)."""
    clean = Conv(ip_id_zero=ip_id_zero, timestamps=True)
    exchange(clean)
    cv = Conv(ip_id_zero=ip_id_zero, timestamps=True)
    exchange(cv, {0: (0, 0)})
    cv.copy(0, cv.frames[0][1])
    res = one_flow(cv.capture(), fast_path)
    rec = res.record
    assert rec["client_duplicate_frames"] == 2 and rec["server_duplicate_frames"] == 0
    assert rec["client_syn_retransmissions"] == 0 and rec["client_syn_count"] == 1
    assert rec["client_packets"] == 9 and rec["open"] == "three_way_handshake"
    dup = next(a for a in res.anomalies if a.code == "duplicate_frames")
    assert dup.details["frames"] == [2, 3] and dup.details["original_frames"] == [1, 1]
    # The SYN is its sender's first packet: no other IP ID shows that its IP IDs change, so
    # the copies are proven by their bytes either way.
    assert dup.details["identity"] == ["bytes"]
    same_analysis(one_flow(clean.capture(), fast_path), res)
    assert [r[5] for r in res.packets or [] if r[0] in (2, 3)] == [AF.DUPLICATE_FRAME] * 2


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("ipv6", [False, True])
def test_span_port_before_and_after_a_router(fast_path: bool, ipv6: bool) -> None:
    """Every packet seen twice, the copy a hop later (TTL - 1), 0.3-3 ms after, some after
    later packets of the same side: the analysis is the clean capture's, column for column
    (no retransmission, RTO, RTT or state change), plus one duplicate_frames finding."""
    clean = Conv(ipv6=ipv6, timestamps=True)
    exchange(clean)
    cv = Conv(ipv6=ipv6, timestamps=True)
    # Packets 4-6 are the server's answer 1 ms apart: their copies come 3 ms later, after
    # the later ones.
    exchange(cv, {i: (3.0 if i in (4, 5, 6) else 0.3, -1) for i in range(12)})
    res = one_flow(cv.capture(), fast_path)
    base = one_flow(clean.capture(), fast_path)
    same_analysis(base, res)
    rec = res.record
    assert rec["client_duplicate_frames"] == 7 and rec["server_duplicate_frames"] == 5
    assert rec["retransmissions"] == 0 and rec["server_rtt_samples"] == \
        base.record["server_rtt_samples"] > 0
    dup = next(a for a in res.anomalies if a.code == "duplicate_frames")
    assert dup.details["count"] == 12 and dup.details["ttl_changes"] == [-1]
    # IPv4: a side's first packet (SYN, SYN-ACK) has no other IP ID beside it yet, so its
    # copy is proven by its bytes, every later one by its IP ID.
    assert dup.details["identity"] == (["bytes"] if ipv6 else ["bytes", "ip_id"])


@pytest.mark.parametrize("fast_path", [True, False])
def test_late_copy_of_syn_is_not_a_new_syn(fast_path: bool) -> None:
    """A copy of the SYN after the connection is ESTABLISHED (arkime frame 10): one
    connection, no SYN retransmission, no state machine input."""
    clean = Conv()
    exchange(clean)
    cv = Conv()
    exchange(cv, {0: (50, 0), 1: (50.5, 0)})  # after the data, with the SYN-ACK's copy
    res = run(cv.capture(), fast_path=fast_path)
    assert len(res) == 1
    same_analysis(one_flow(clean.capture(), fast_path), res[0])
    assert res[0].record["client_syn_count"] == 1
    assert res[0].record["server_synack_count"] == 1


def resend_conv(delay_ms: float, *, new_ip_id: bool, **conv: Any) -> Conv:
    """Handshake and two data segments; the first re-sent ``delay_ms`` later."""
    cv = Conv(**conv)
    cv.pkt(0, True, 1000, 0, SYN)
    cv.pkt(20, False, 5000, 1001, SYN | ACK)
    cv.pkt(40, True, 1001, 5001, ACK)
    first = cv.pkt(41, True, 1001, 5001, ACK, payload=b"x" * 500)
    cv.pkt(41.01, True, 1501, 5001, PSH | ACK, payload=b"y" * 500)
    if new_ip_id:
        # A new IP ID (none with ip_id_zero) and a newer TSval (when timestamps are on).
        cv.pkt(41 + delay_ms, True, 1001, 5001, ACK, payload=b"x" * 500,
               tsval=5042 + int(delay_ms))
    else:
        cv.copy(41 + delay_ms, first)
    cv.pkt(300 + delay_ms, False, 5001, 2001, ACK)
    return cv


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("delay_ms", [0.005, 2.0, 250.0])
def test_resend_with_a_new_ip_id_is_a_retransmission(fast_path: bool,
                                                     delay_ms: float) -> None:
    """The same seq/ack/flags/length with a new IP ID is a retransmission, even 5 us later
    (the old rule called anything within 10 us a duplicate); the same frame is a copy."""
    res = one_flow(resend_conv(delay_ms, new_ip_id=True).capture(), fast_path)
    assert res.record["client_retransmitted_segments"] == 1
    assert res.record["client_duplicate_frames"] == 0
    assert "duplicate_frames" not in codes(res)
    copy = one_flow(resend_conv(delay_ms, new_ip_id=False).capture(), fast_path)
    assert copy.record["client_retransmitted_segments"] == 0
    assert copy.record["client_duplicate_frames"] == 1


@pytest.mark.parametrize("fast_path", [True, False])
def test_resend_with_ip_id_zero_and_a_newer_tsval_is_a_retransmission(fast_path: bool) -> None:
    """IP ID 0 on every packet: a re-send 2 ms later differing only in TSval is a
    retransmission; with the original's TSval (the same bytes) it is a copy."""
    cv = resend_conv(2.0, new_ip_id=True, ip_id_zero=True, timestamps=True)
    res = one_flow(cv.capture(), fast_path)
    assert res.record["client_retransmitted_segments"] == 1
    assert res.record["client_duplicate_frames"] == 0
    same = resend_conv(2.0, new_ip_id=False, ip_id_zero=True, timestamps=True)
    res = one_flow(same.capture(), fast_path)
    assert res.record["client_retransmitted_segments"] == 0
    assert res.record["client_duplicate_frames"] == 1
    assert next(a for a in res.anomalies
                if a.code == "duplicate_frames").details["identity"] == ["bytes"]


@pytest.mark.parametrize("fast_path", [True, False])
def test_identical_ipv6_resend_after_dup_acks_is_a_fast_retransmission(fast_path: bool) -> None:
    """IPv6 without timestamps: a fast retransmission is byte-identical to its original and
    may come within milliseconds on a LAN; the peer's duplicate ACKs before it say so."""
    cv = Conv(ipv6=True)
    cv.pkt(0, True, 1000, 0, SYN, options=opt_sack_perm())
    cv.pkt(0.1, False, 5000, 1001, SYN | ACK, options=opt_sack_perm())
    cv.pkt(0.2, True, 1001, 5001, ACK)
    lost = cv.pkt(1.0, True, 1001, 5001, ACK, payload=b"a" * 500)
    for i in range(1, 5):
        cv.pkt(1.0 + i * 0.01, True, 1001 + 500 * i, 5001, ACK, payload=b"b" * 500)
    for i in range(1, 4):
        cv.pkt(1.2 + i * 0.01, False, 5001, 1001, ACK,
               options=b"\x01\x01" + opt_sack([(1501, 1501 + 500 * i)]))
    cv.copy(1.5, lost)  # the same bytes, answering the dup ACKs
    cv.pkt(1.7, False, 5001, 3501, ACK)
    res = one_flow(cv.capture(), fast_path)
    assert res.record["client_duplicate_frames"] == 0
    assert res.record["client_fast_retransmissions"] == 1


@pytest.mark.parametrize("fast_path", [True, False])
def test_identical_synack_a_second_later_is_a_retransmission(fast_path: bool) -> None:
    """Linux SYN-ACKs carry IP ID 0 and, without timestamps, repeat byte for byte: one a
    second later is the retransmission timer's, not a copy."""
    cv = Conv(ip_id_zero=True)
    cv.pkt(0, True, 1000, 0, SYN)
    synack = cv.pkt(20, False, 5000, 1001, SYN | ACK)
    cv.copy(1020, synack)
    cv.pkt(1040, True, 1001, 5001, ACK)
    res = one_flow(cv.capture(), fast_path)
    assert res.record["server_syn_retransmissions"] == 1
    assert res.record["server_duplicate_frames"] == 0


def test_memory_is_bounded_per_direction() -> None:
    """Only the last ``duplicate_memory_segments`` segments of a side are remembered: a copy
    after more later segments than that is no longer recognised (it reads as a retransmission
    of old data), one within them is."""
    def capture() -> bytes:
        cv = Conv()
        cv.pkt(0, True, 1000, 0, SYN)
        cv.pkt(20, False, 5000, 1001, SYN | ACK)
        cv.pkt(40, True, 1001, 5001, ACK)
        first = cv.pkt(41, True, 1001, 5001, ACK, payload=b"x" * 100)
        for i in range(1, 4):
            cv.pkt(41 + i * 0.1, True, 1001 + 100 * i, 5001, ACK, payload=b"y" * 100)
        cv.copy(42, first)
        return cv.capture()

    small = run(capture(), duplicate_memory_segments=2)[0].record
    assert small["client_duplicate_frames"] == 0 and small["client_retransmitted_segments"] == 1
    default = run(capture())[0].record
    assert default["client_duplicate_frames"] == 1
    assert default["client_retransmitted_segments"] == 0


@pytest.mark.parametrize("fast_path", [True, False])
def test_wireshark_retrans_capture(fast_path: bool) -> None:
    """arkime/wireshark-retrans.pcap: 108 frames, 27 distinct packets, each seen 2-4 times
    (copies 5 us to 51 ms later, the original's IP ID and checksum; frame 10 is the SYN again
    after the data). Before, it read as 48 retransmissions with RTOs, excessive
    retransmissions, a lost final ACK and no RTT at all."""
    path = SHARED / "arkime" / "wireshark-retrans.pcap"
    if not path.exists():
        pytest.skip("shared captures not available")
    results = list(Engine(Options(fast_path=fast_path)).run(path))
    assert len(results) == 1
    res = results[0]
    rec = res.record
    assert (rec["client_duplicate_frames"], rec["server_duplicate_frames"]) == (48, 33)
    assert (rec["client_packets"], rec["server_packets"]) == (64, 44)
    assert rec["retransmissions"] == 0 and rec["client_syn_count"] == 1
    assert rec["open"] == "three_way_handshake" and rec["close"] == "graceful"
    assert rec["client_rtt_samples"] > 0 and rec["server_rtt_samples"] > 0
    assert codes(res) == ["duplicate_frames"]
    dup = res.anomalies[0]
    assert dup.details["count"] == 81 and dup.details["frames"][:5] == [2, 3, 5, 7, 9]
    assert dup.details["original_frames"][:5] == [1, 1, 4, 6, 8]


def test_forged_rst_with_another_ttl_is_not_a_copy() -> None:
    """suricata-verify/debug-s13.pcap: a RST with TTL 59 (a middlebox forging the server)
    and the server's own RST (TTL 123) 1.9 ms later, same bytes and IP ID 0: two RSTs."""
    path = SHARED / "suricata-verify" / "debug-s13.pcap"
    if not path.exists():
        pytest.skip("shared captures not available")
    rec = next(iter(Engine().run(path))).record
    assert rec["server_rst_count"] == 3 and rec["server_duplicate_frames"] == 0


@pytest.mark.parametrize("fast_path", [True, False])
def test_identical_ipv6_dup_acks_answering_data_are_dup_acks(fast_path: bool) -> None:
    """IPv6, no timestamps, no SACK: a receiver's duplicate ACKs are byte-identical, each
    answering an out-of-order segment from the peer that came in between: dup ACKs."""
    cv = Conv(ipv6=True)
    cv.pkt(0, True, 1000, 0, SYN)
    cv.pkt(0.1, False, 5000, 1001, SYN | ACK)
    cv.pkt(0.2, True, 1001, 5001, ACK)
    cv.pkt(1.0, True, 1001, 5001, ACK, payload=b"a" * 500)  # lost after the capture point
    for i in range(1, 4):
        cv.pkt(1.0 + i * 0.5, True, 1001 + 500 * i, 5001, ACK, payload=b"b" * 500)
        cv.pkt(1.1 + i * 0.5, False, 5001, 1001, ACK)  # identical each time
    res = one_flow(cv.capture(), fast_path)
    assert res.record["server_duplicate_frames"] == 0
    assert res.record["server_dup_acks"] == 3  # all repeat the SYN-ACK's ACK number


@pytest.mark.parametrize("fast_path", [True, False])
def test_identical_ipv6_tail_loss_probe_on_a_lan_is_a_retransmission(fast_path: bool) -> None:
    """IPv6, no timestamps, RTT 0.2 ms: Linux probes the tail 2 SRTT + 2 ms after it, the
    same bytes 3 ms later with no dup ACK before it. Within 10 ms, but beyond twice the
    path's RTT plus Linux's 2 ms floor: a probe, not a copy."""
    cv = Conv(ipv6=True)
    cv.pkt(0, True, 1000, 0, SYN)
    cv.pkt(0.2, False, 5000, 1001, SYN | ACK)
    cv.pkt(0.4, True, 1001, 5001, ACK)
    cv.pkt(1.0, True, 1001, 5001, ACK, payload=b"a" * 500)
    cv.pkt(1.2, False, 5001, 1501, ACK)  # RTT sample 0.2 ms
    tail = cv.pkt(2.0, True, 1501, 5001, PSH | ACK, payload=b"b" * 500)
    cv.copy(5.0, tail)  # the probe
    cv.pkt(5.2, False, 5001, 2001, ACK)
    res = one_flow(cv.capture(), fast_path)
    assert res.record["client_duplicate_frames"] == 0
    assert res.record["client_retransmitted_segments"] == 1
    # The same re-send 0.3 ms after the original (a span port's copy) is a copy.
    cv.frames = [f for f in cv.frames if f[0] != T0 + int(5.0 * MS)]
    cv.copy(3.0, tail)  # a span port's copy 1 ms later: sooner than any probe
    res = one_flow(cv.capture(), fast_path)
    assert res.record["client_duplicate_frames"] == 1
    assert res.record["client_retransmitted_segments"] == 0


def test_copy_of_an_ack_after_a_reordered_older_ack_takes_the_full_path() -> None:
    """The fast path takes no pure ACK that acknowledges nothing new: after an older ACK
    arrived late (reordered), a copy of the newest ACK repeats SND.UNA with an ACK number
    other than the sender's last, and is a copy to look up, not a steady segment."""
    cv = Conv()
    cv.pkt(0, True, 1000, 0, SYN)
    cv.pkt(20, False, 5000, 1001, SYN | ACK)
    cv.pkt(40, True, 1001, 5001, ACK)
    for i in range(4):
        cv.pkt(41 + i * 0.1, True, 1001 + 500 * i, 5001, ACK, payload=b"d" * 500)
    newest = cv.pkt(60, False, 5001, 3001, ACK, ip_id=0x7102)
    cv.pkt(60.1, False, 5001, 1501, ACK, ip_id=0x7101)  # sent first, reordered before the tap
    cv.copy(60.3, newest)
    cv.pkt(61, True, 3001, 5001, ACK, payload=b"e" * 500)
    cv.pkt(80, False, 5001, 3501, ACK)
    results = [one_flow(cv.capture(), fast) for fast in (True, False)]
    for res in results:
        assert res.record["server_duplicate_frames"] == 1
        assert res.record["server_pure_acks"] == 3
    assert results[0].record == results[1].record
    assert results[0].packets == results[1].packets


@pytest.mark.parametrize("fast_path", [True, False])
def test_syn_copy_50_ms_later_is_a_copy_and_1_s_later_a_retransmission(fast_path: bool) -> None:
    """IPv6 (no IP ID): a SYN seen again 50 ms later by a second mirror, before the SYN-ACK,
    is a copy (the SYN timer's first re-send waits 1 s); the same SYN 1 s later is that
    re-send."""
    def capture(delay_ms: float) -> bytes:
        cv = Conv(ipv6=True)
        syn = cv.pkt(0, True, 1000, 0, SYN, options=opt_mss(1440))
        cv.copy(delay_ms, syn, -1)
        cv.pkt(delay_ms + 20, False, 5000, 1001, SYN | ACK, options=opt_mss(1440))
        cv.pkt(delay_ms + 40, True, 1001, 5001, ACK)
        return cv.capture()

    copy = one_flow(capture(50), fast_path).record
    assert (copy["client_duplicate_frames"], copy["client_syn_retransmissions"]) == (1, 0)
    resent = one_flow(capture(1000), fast_path).record
    assert (resent["client_duplicate_frames"], resent["client_syn_retransmissions"]) == (0, 1)


# -- the compiled twin of original_of --------------------------------------------------------
def _ring_segment(spec: tuple[int, ...]) -> Any:
    from tcptrace_py.segment import Segment

    seq, ack, flags, plen, tsval, ip_id, ts, window, checksum, ttl = spec
    return Segment(1, T0 + ts * MS, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 40000, 80,
                   seq, ack, flags, window, plen, tsval=tsval, ip_id=ip_id, ttl=ttl,
                   checksum=checksum)


def test_original_of_twin_is_the_reference() -> None:
    """``duplicates.original_of`` compiled (the ring scan on C fields) against the reference,
    on rings whose segments share few values, so copies, near-copies (another window,
    checksum, TTL or time) and every rule's branch come up."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tcptrace_py import duplicates, implementation

    if implementation.compiled is None:
        pytest.skip("compiled engine not built or not selected")
    assert duplicates.original_of is not duplicates.reference_original_of
    field = st.tuples(st.integers(0, 1), st.just(0), st.sampled_from([0x10, 0x18, 0x11, 0x02]),
                      st.sampled_from([0, 100]), st.sampled_from([-1, 7]),
                      st.sampled_from([0, 5, 6]), st.integers(0, 40), st.sampled_from([10, 11]),
                      st.just(0), st.sampled_from([63, 64, 66]))

    @settings(max_examples=2000, deadline=None)
    @given(st.lists(field, min_size=1, max_size=8), field,
           st.sampled_from([5 * MS, 50 * MS]), st.sampled_from([-1, T0 + 3 * MS]),
           st.sampled_from([-1, T0 + 20 * MS]), st.sampled_from([-1, 0.5 * MS, 4 * MS]),
           st.booleans())
    def check(ring: list[tuple[int, ...]], new: tuple[int, ...], weak: int, loss: int,
              peer_last: int, min_rtt: float, seg_in_ring: bool) -> None:
        recent = [_ring_segment(s) for s in ring]
        seg = recent[0] if seg_in_ring else _ring_segment(new)
        args = (seg, recent, weak, 1000 * MS, loss, peer_last, min_rtt)
        want = duplicates.reference_original_of(*args)
        got = duplicates.original_of(*args)
        if want is None:
            assert got is None
        else:
            assert got is not None and got[0] is want[0] and got[1] == want[1]

    check()


def test_packed_ring_is_the_reference() -> None:
    """A connection's ring keeps each segment packed in a C record where its fields fit and
    holds the Segment where one does not (SACK blocks, a time or frame number beyond C's
    range, a sequence number or checksum no header carries). Rings mixing both kinds find
    what the reference finds, and the original rebuilt from a packed record has the
    frame, time and TTL the finding reports."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tcptrace_py import duplicates, implementation
    from tcptrace_py.segment import Segment

    if implementation.compiled is None:
        pytest.skip("compiled engine not built or not selected")
    packed = implementation.compiled.original_of_packed
    spec = st.tuples(
        st.sampled_from([1, 2, 2**32 + 1]),  # frame
        st.sampled_from([0, 3, 40, 2**64 // MS]),  # time, ms after T0 (last: beyond 2**63 ns)
        st.sampled_from([0, 2**32 - 1, 2**32]),  # seq
        st.sampled_from([0, 1]),  # ack
        st.sampled_from([ACK, ACK | PSH, SYN, ACK | FIN]),
        st.sampled_from([0, 100, 70_000]),  # payload length (GRO: beyond 16 bits)
        st.sampled_from([-1, 7, 2**32 - 1]),  # TSval
        st.sampled_from([-1, 0, 5]),  # IP ID
        st.sampled_from([-1, 10, 65535]),  # window
        st.sampled_from([0, 65535, 70_000]),  # checksum
        st.sampled_from([0, 3]),  # urgent
        st.sampled_from([63, 64, 255]),  # TTL
        st.sampled_from([(), ((1, 2),), ((1, 3),)]),  # SACK blocks
    )

    def segment(v: tuple[Any, ...]) -> Any:
        frame, ts, seq, ack, flags, plen, tsval, ip_id, win, csum, urg, ttl, sack = v
        return Segment(frame, T0 + ts * MS, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 40000,
                       80, seq, ack, flags, win, plen, urgent=urg, sack=sack, tsval=tsval,
                       ip_id=ip_id, ttl=ttl, checksum=csum)

    @settings(max_examples=3000, deadline=None)
    @given(st.lists(spec, min_size=1, max_size=8), spec, st.integers(0, 7),
           st.sampled_from([5 * MS, 50 * MS]), st.sampled_from([-1, T0 + 3 * MS]),
           st.sampled_from([-1, T0 + 20 * MS]), st.sampled_from([-1, 0.5 * MS]))
    def check(ring: list[tuple[Any, ...]], new: tuple[Any, ...], copy_of: int, weak: int,
              loss: int, peer_last: int, min_rtt: float) -> None:
        recent = [segment(v) for v in ring]
        # Half the time the new segment copies one of the ring, with a later time.
        base = ring[copy_of % len(ring)]
        seg = segment(new if copy_of % 2 else (new[0], new[1]) + base[2:])
        args = (seg, recent, weak, 1000 * MS, loss, peer_last, min_rtt)
        want = duplicates.reference_original_of(*args)
        got = packed(*args)
        if want is None:
            assert got is None
            return
        assert got is not None and got[1] == want[1]
        orig, ref = got[0], want[0]
        assert (orig.frame, orig.ts_ns, orig.ttl, orig.seq, orig.ack, orig.flags,
                orig.payload_len, orig.tsval, orig.ip_id, orig.window, orig.checksum,
                orig.urgent, orig.sack) == (
            ref.frame, ref.ts_ns, ref.ttl, ref.seq, ref.ack, ref.flags, ref.payload_len,
            ref.tsval, ref.ip_id, ref.window, ref.checksum, ref.urgent, ref.sack)

    check()
