#!/usr/bin/env python3
"""Seeded generator of large, realistic TCP captures for benchmarks and robustness checks.

Why a generator and not a downloaded trace: the benchmark must be reproducible on any
machine (same seed -> byte-identical file), scale from 2 k to millions of packets, and
contain a known mix of behaviours that exercise every part of the analyzer (handshakes,
both close orders, resets, refusals, SYN backoff, fast retransmit with SACK, RTO,
zero-window probing, window scaling, timestamps, IPv6).

Theory of operation
-------------------
1. The capture point is a tap in the middle of each path.  Every connection draws two
   one-way delays: client<->tap (``dc_ns``) and tap<->server (``ds_ns``).  A reply to a
   packet the tap saw at ``t`` is seen at ``t + 2*dc_ns`` (client replies) or
   ``t + 2*ds_ns`` (server replies).  A segment lost *downstream* of the tap is seen once
   and then again as a retransmission (a real retransmission for the analyzer); a segment
   lost *upstream* is never seen and its retransmission fills a hole (out of order).
2. Each connection is built completely when it starts, as a time-sorted list of
   ``(ts_ns, frame)``; a heap merges the live connections by timestamp, so thousands of
   connections interleave while only the live ones (hundreds) are held in memory.
3. New connections arrive as a Poisson process (``ARRIVAL_RATE_PER_S``); with
   ``--live-connections N`` an arrival waits until fewer than N connections are live, so
   the capture grows in packets but not in concurrent connections.
4. Data transfer is flight-based (RFC 5681 slow start from an initial window of 10
   segments, RFC 6928), delayed ACKs every second full segment (RFC 1122 4.2.3.2, Linux
   40 ms delayed-ACK timer for a lone segment), fast retransmit after three duplicate
   ACKs carrying SACK blocks (RFC 2018), RTO retransmission for tail losses (RFC 6298,
   Linux's 200 ms minimum RTO).
5. Packets are written with ``struct`` and correct IPv4/TCP checksums (RFC 791, RFC 9293
   3.1; IPv6 pseudo-header RFC 8200 8.1); payload checksums come from a prefix-sum table
   so a packet costs a handful of microseconds.
6. All randomness comes from one ``random.Random(seed)``: same arguments, same bytes.

Usage::

    python bench/gen_capture.py --packets 200000 --seed 1 -o bench/out/200k.pcap
    python bench/gen_capture.py --packets 2000000 --seed 1 -o bench/out/2m.pcap
    python bench/gen_capture.py --packets 500000 --live-connections 50 -o bench/out/flat.pcap
    python bench/gen_capture.py --packets 0 --syn-flood 100000 -o bench/out/flood.pcap
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

# ---------------------------------------------------------------------------
# Constants (units in names)
# ---------------------------------------------------------------------------

#: Capture start, 2024-01-01T00:00:00Z: a fixed epoch keeps output byte-identical.
EPOCH_NS = 1_704_067_200 * 1_000_000_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

#: Mean new connections per second.  With mean connection lifetimes of ~1-3 s this keeps
#: a few hundred connections live at once, like a busy server's capture.
ARRIVAL_RATE_PER_S = 95.0

#: Linux's minimum RTO (TCP_RTO_MIN, 200 ms) and initial RTO (RFC 6298 2.1: 1 s).
RTO_MIN_NS = 200 * NS_PER_MS
SYN_RTO_NS = 1 * NS_PER_S
#: Linux delayed-ACK timer for a lone unacknowledged segment (TCP_DELACK_MIN, 40 ms).
DELACK_NS = 40 * NS_PER_MS
#: Initial congestion window in segments (RFC 6928).
INIT_CWND_SEGS = 10
#: Per-segment serialization gap on a ~100 Mbit/s bottleneck for a 1448-byte segment.
SEG_GAP_NS = 120_000
#: Host processing delay between receiving a segment and emitting the reply.
PROC_NS = 30_000

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

PCAP_LINKTYPE_ETHERNET = 1
PCAP_SNAPLEN_BYTES = 262_144

# Deterministic opaque payload (like TLS application data: no plaintext protocol for the
# dissectors to chew on); checksums of every prefix are precomputed.
_PAYLOAD_MAX_BYTES = 65_536
PAYLOAD = random.Random(0x7C9).randbytes(_PAYLOAD_MAX_BYTES)
_WORDS = struct.unpack(f"!{_PAYLOAD_MAX_BYTES // 2}H", PAYLOAD)
_PREFIX_SUM = [0]
for _w in _WORDS:
    _PREFIX_SUM.append(_PREFIX_SUM[-1] + _w)
del _w


def _payload_sum(n_bytes: int) -> int:
    """One's-complement partial sum (unfolded) of PAYLOAD[:n_bytes], odd byte padded."""
    s = _PREFIX_SUM[n_bytes >> 1]
    if n_bytes & 1:
        s += PAYLOAD[n_bytes - 1] << 8
    return s


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _words_sum(b: bytes) -> int:
    return sum(struct.unpack(f"!{len(b) // 2}H", b))


# ---------------------------------------------------------------------------
# Packet building
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class Endpoint:
    """One side of a connection: addressing templates, sequence state and options."""

    eth: bytes
    src: bytes
    dst: bytes
    sport: int
    dport: int
    v6: bool
    ttl: int
    isn: int
    mss: int
    wscale: int  # shift this endpoint applies to the windows it advertises (RFC 7323 2.3)
    ts_ok: bool
    sack_ok: bool
    rwnd_bytes: int
    ts_base: int
    ts_hz: int
    ip_id: int
    flow_label: int
    tcp_const: int = 0
    ip_const: int = 0
    snd_nxt: int = 0
    rcv_nxt: int = 0
    last_tsval: int = 0
    peer_tsval: int = 0

    def __post_init__(self) -> None:
        addr_sum = _words_sum(self.src) + _words_sum(self.dst)
        self.tcp_const = addr_sum + 6 + self.sport + self.dport
        self.ip_const = 0x4500 + 0x4000 + ((self.ttl << 8) | 6) + addr_sum
        self.snd_nxt = self.isn


@dataclass(slots=True)
class Flow:
    """A connection under construction: two endpoints and the frames emitted so far."""

    c: Endpoint
    s: Endpoint
    dc_ns: int
    ds_ns: int
    rng: random.Random
    snaplen: int
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    wscale_on: bool = False
    ts_on: bool = False
    sack_on: bool = False

    def peer(self, ep: Endpoint) -> Endpoint:
        return self.s if ep is self.c else self.c

    def rtt_ns(self) -> int:
        return 2 * (self.dc_ns + self.ds_ns)

    def reply_ns(self, replier: Endpoint) -> int:
        """Delay between the tap seeing a packet and seeing the reply from ``replier``."""
        return 2 * (self.dc_ns if replier is self.c else self.ds_ns) + PROC_NS

    def emit(
        self,
        ep: Endpoint,
        ts_ns: int,
        flags: int,
        seq: int,
        ack: int,
        plen: int = 0,
        win_bytes: int | None = None,
        sack: list[tuple[int, int]] | None = None,
        syn_opts: bool = False,
    ) -> None:
        """Build one Ethernet/IP/TCP frame with correct checksums and append it."""
        if syn_opts:
            opts = self._syn_options(ep, ts_ns, flags)
            win_raw = min(ep.rwnd_bytes, 65535)  # RFC 7323 2.2: SYN windows never scaled
        else:
            w = ep.rwnd_bytes if win_bytes is None else win_bytes
            win_raw = min(w >> ep.wscale if self.wscale_on else w, 65535)
            opts = b""
            if self.ts_on:
                opts = struct.pack("!BBBBII", 1, 1, 8, 10, self._tsval(ep, ts_ns), ep.peer_tsval)
            if sack and self.sack_on:
                blocks = sack[: (3 if self.ts_on else 4)]
                opts += struct.pack("!BBBB", 1, 1, 5, 2 + 8 * len(blocks))
                for left, right in blocks:
                    opts += struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF)
        if flags & TCP_RST and not flags & TCP_ACK:
            ack = 0
        if not flags & TCP_ACK and not flags & TCP_RST:
            ack = 0
        seq &= 0xFFFFFFFF
        ack &= 0xFFFFFFFF
        thl = 20 + len(opts)
        tcp_len = thl + plen
        offflags = ((thl >> 2) << 12) | flags
        s = (
            ep.tcp_const
            + tcp_len
            + (seq >> 16)
            + (seq & 0xFFFF)
            + (ack >> 16)
            + (ack & 0xFFFF)
            + offflags
            + win_raw
            + _payload_sum(plen)
        )
        if opts:
            s += _words_sum(opts)
        csum = ~_fold(s) & 0xFFFF
        tcp = (
            struct.pack("!HHIIHHHH", ep.sport, ep.dport, seq, ack, offflags, win_raw, csum, 0)
            + opts
            + PAYLOAD[:plen]
        )
        if ep.v6:
            ip = struct.pack(
                "!IHBB16s16s", 0x60000000 | ep.flow_label, tcp_len, 6, ep.ttl, ep.src, ep.dst
            )
        else:
            total = 20 + tcp_len
            ip_id = ep.ip_id
            ep.ip_id = (ip_id + 1) & 0xFFFF
            ipsum = ~_fold(ep.ip_const + total + ip_id) & 0xFFFF
            ip = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, total, ip_id, 0x4000, ep.ttl, 6, ipsum, ep.src, ep.dst
            )
        frame = ep.eth + ip + tcp
        if len(frame) > self.snaplen:
            # Keep the wire length in the record header: pack as (frame, wire_len) below.
            self.frames.append((ts_ns, frame[: self.snaplen] + struct.pack("!I", len(frame))))
        else:
            self.frames.append((ts_ns, frame))
        if self.ts_on or syn_opts:
            self.peer(ep).peer_tsval = ep.last_tsval

    def _tsval(self, ep: Endpoint, ts_ns: int) -> int:
        # RFC 7323 5.4: a clock between 1 ms and 1 s per tick; Linux uses 1 kHz.
        v = (ep.ts_base + (ts_ns - EPOCH_NS) * ep.ts_hz // NS_PER_S) & 0xFFFFFFFF
        ep.last_tsval = v
        return v

    def _syn_options(self, ep: Endpoint, ts_ns: int, flags: int) -> bytes:
        # Linux order: MSS, SACK_PERM, TS, NOP, WS; without timestamps (Windows-like):
        # MSS, NOP, WS, NOP, NOP, SACK_PERM.
        if ep.ts_ok:
            tsecr = ep.peer_tsval if flags & TCP_ACK else 0
            o = struct.pack("!BBH", 2, 4, ep.mss)
            o += struct.pack("!BB", 4, 2) if ep.sack_ok else struct.pack("!BB", 1, 1)
            o += struct.pack("!BBII", 8, 10, self._tsval(ep, ts_ns), tsecr)
            o += struct.pack("!BBBB", 1, 3, 3, ep.wscale)
            return o
        o = struct.pack("!BBH", 2, 4, ep.mss) + struct.pack("!BBBB", 1, 3, 3, ep.wscale)
        o += struct.pack("!BBBB", 1, 1, 4, 2) if ep.sack_ok else struct.pack("!I", 0x01010101)
        return o


# ---------------------------------------------------------------------------
# Connection behaviours
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class Hosts:
    """Address pools: many clients, a few servers, MACs of the two routers around the tap."""

    clients4: list[bytes]
    clients6: list[bytes]
    servers4: list[bytes]
    servers6: list[bytes]
    next_port: dict[bytes, int]
    mac_c: bytes = bytes.fromhex("020000000001")
    mac_s: bytes = bytes.fromhex("020000000002")


def make_hosts(rng: random.Random) -> Hosts:
    clients4 = [
        bytes([10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)])
        for _ in range(2000)
    ]
    clients6 = [bytes.fromhex("fd00000000000001") + rng.randbytes(8) for _ in range(300)]
    servers4 = [bytes([192, 0, 2, i]) for i in range(1, 41)] + [
        bytes([198, 51, 100, i]) for i in range(1, 21)
    ]
    servers6 = [
        bytes.fromhex("20010db8000000000000000000000000")[:15] + bytes([i]) for i in range(1, 21)
    ]
    return Hosts(clients4, clients6, servers4, servers6, {})


SERVER_PORTS = [443, 443, 443, 80, 80, 22, 8080, 5432, 3306, 25]


def new_flow(rng: random.Random, hosts: Hosts, v6: bool, snaplen: int) -> Flow:
    """Draw addresses, delays and option support for a new connection."""
    if v6:
        cip, sip = rng.choice(hosts.clients6), rng.choice(hosts.servers6)
    else:
        cip, sip = rng.choice(hosts.clients4), rng.choice(hosts.servers4)
    # Linux picks ephemeral ports from 32768-60999 with small strides per destination.
    port = hosts.next_port.get(cip, rng.randrange(32768, 61000))
    port = 32768 + (port - 32768 + rng.randrange(1, 8)) % (61000 - 32768)
    hosts.next_port[cip] = port
    sport = rng.choice(SERVER_PORTS)
    linux = rng.random() < 0.8
    ts_ok = linux
    sack_ok = rng.random() < 0.95
    # One-way delays: LAN-ish to intercontinental, log-uniform between 0.1 ms and 80 ms.
    dc = int(10 ** rng.uniform(-1, 1.9) * NS_PER_MS / 2)
    ds = int(10 ** rng.uniform(-1.3, 0.5) * NS_PER_MS / 2)
    eth_type = b"\x86\xdd" if v6 else b"\x08\x00"
    c = Endpoint(
        eth=hosts.mac_s + hosts.mac_c + eth_type,
        src=cip,
        dst=sip,
        sport=port,
        dport=sport,
        v6=v6,
        ttl=64 if linux else 128,
        isn=rng.getrandbits(32),
        mss=1460 if not v6 else 1440,
        wscale=7 if linux else 8,
        ts_ok=ts_ok,
        sack_ok=sack_ok,
        rwnd_bytes=rng.choice([64240, 65535, 131072, 262144]),
        ts_base=rng.getrandbits(32),
        ts_hz=1000,
        ip_id=rng.getrandbits(16),
        flow_label=rng.getrandbits(20),
    )
    s = Endpoint(
        eth=hosts.mac_c + hosts.mac_s + eth_type,
        src=sip,
        dst=cip,
        sport=sport,
        dport=port,
        v6=v6,
        ttl=64,
        isn=rng.getrandbits(32),
        mss=1460 if not v6 else 1440,
        wscale=rng.choice([7, 9, 10]),
        ts_ok=rng.random() < 0.97,
        sack_ok=True,
        rwnd_bytes=rng.choice([65160, 131072, 262144, 1048576]),
        ts_base=rng.getrandbits(32),
        ts_hz=1000,
        ip_id=rng.getrandbits(16),
        flow_label=rng.getrandbits(20),
    )
    return Flow(c=c, s=s, dc_ns=max(dc, 20_000), ds_ns=max(ds, 20_000), rng=rng, snaplen=snaplen)


def handshake(f: Flow, t: int) -> int:
    """SYN, SYN/ACK, ACK (RFC 9293 3.5); returns the tap time of the final ACK."""
    c, s = f.c, f.s
    f.emit(c, t, TCP_SYN, c.isn, 0, syn_opts=True)
    c.snd_nxt = c.isn + 1
    t += f.reply_ns(s)
    # Options are in force only if both sides offered them (RFC 7323 2.2, 3.2; RFC 2018 2).
    f.wscale_on = True
    f.ts_on = c.ts_ok and s.ts_ok
    f.sack_on = c.sack_ok and s.sack_ok
    s.ts_ok = f.ts_on
    s.sack_ok = f.sack_on
    s.rcv_nxt = c.snd_nxt
    f.emit(s, t, TCP_SYN | TCP_ACK, s.isn, s.rcv_nxt, syn_opts=True)
    s.snd_nxt = s.isn + 1
    c.rcv_nxt = s.snd_nxt
    t += f.reply_ns(c)
    f.emit(c, t, TCP_ACK, c.snd_nxt, c.rcv_nxt)
    return t


def transfer(
    f: Flow,
    snd: Endpoint,
    rcv: Endpoint,
    t: int,
    nbytes: int,
    loss_down: float = 0.0,
    loss_up: float = 0.0,
    zero_window: bool = False,
) -> int:
    """Send ``nbytes`` from ``snd`` to ``rcv`` starting at tap time ``t``; return the tap
    time of the last ACK.  Flight-based slow start, delayed ACKs, SACK dup ACKs, fast
    retransmit and RTO recovery (see module docstring, rule 4)."""
    rng = f.rng
    mss = min(snd.mss, rcv.mss) - (12 if f.ts_on else 0)
    cwnd = INIT_CWND_SEGS
    rwnd_segs = max(2, rcv.rwnd_bytes // mss)
    sent = 0
    rs_delay = f.reply_ns(rcv)
    sr_delay = f.reply_ns(snd)
    last_ack_t = t
    zw_done = not zero_window
    while sent < nbytes:
        # -- build the flight ------------------------------------------------------------
        n_segs = min(cwnd, rwnd_segs)
        flight: list[tuple[int, int, int, int]] = []  # (tap_ts, seq, len, fate)
        ts = t
        for _ in range(n_segs):
            if sent >= nbytes:
                break
            ln = min(mss, nbytes - sent)
            r = rng.random()
            fate = 2 if r < loss_up else (1 if r < loss_up + loss_down else 0)
            flight.append((ts, snd.snd_nxt, ln, fate))
            snd.snd_nxt += ln
            sent += ln
            ts += SEG_GAP_NS * ln // 1448 + rng.randrange(0, 20_000)
        last = len(flight) - 1
        # -- the tap sees what was not lost upstream; the receiver what was not lost at all
        pending = 0
        held: dict[int, int] = {}  # out-of-order segments buffered by the receiver
        dup_times: list[int] = []
        ack_t = t
        for i, (ts_i, seq, ln, fate) in enumerate(flight):
            psh = TCP_PSH if (i == last and sent >= nbytes) else 0
            if fate != 2:
                f.emit(snd, ts_i, TCP_ACK | psh, seq, snd.rcv_nxt, ln)
            if fate != 0:
                continue
            at = ts_i + rs_delay
            if seq == rcv.rcv_nxt:
                rcv.rcv_nxt += ln
                while rcv.rcv_nxt in held:
                    rcv.rcv_nxt += held.pop(rcv.rcv_nxt)
                pending += 1
                if pending >= 2 or psh or held == {} and dup_times:
                    f.emit(rcv, at, TCP_ACK, rcv.snd_nxt, rcv.rcv_nxt)
                    pending = 0
                    ack_t = at
            elif seq > rcv.rcv_nxt:
                held[seq] = ln
                # RFC 5681 4.2: an out-of-order segment triggers an immediate duplicate ACK;
                # RFC 2018 4: the first SACK block reports the most recently received data.
                blocks = _sack_blocks(held, seq)
                f.emit(rcv, at, TCP_ACK, rcv.snd_nxt, rcv.rcv_nxt, sack=blocks)
                dup_times.append(at)
                ack_t = at
        end_t = flight[-1][0] if flight else t
        # -- recovery of lost segments ---------------------------------------------------
        lost = [(seq, ln) for (_, seq, ln, fate) in flight if fate != 0]
        if lost:
            if len(dup_times) >= 3:
                # Fast retransmit (RFC 5681 3.2): 3rd dup ACK reaches the sender.
                rt = max(dup_times[2] + sr_delay, end_t + SEG_GAP_NS)
            else:
                # RTO (RFC 6298 5.5): Linux min RTO + RTT from the first lost send.
                rt = max(flight[0][0] + RTO_MIN_NS + f.rtt_ns(), end_t + SEG_GAP_NS)
            for seq, ln in lost:
                f.emit(snd, rt, TCP_ACK, seq, snd.rcv_nxt, ln)
                at = rt + rs_delay
                if seq == rcv.rcv_nxt:
                    rcv.rcv_nxt += ln
                    while rcv.rcv_nxt in held:
                        rcv.rcv_nxt += held.pop(rcv.rcv_nxt)
                else:
                    held[seq] = ln
                f.emit(
                    rcv,
                    at,
                    TCP_ACK,
                    rcv.snd_nxt,
                    rcv.rcv_nxt,
                    sack=_sack_blocks(held, seq) if held else None,
                )
                ack_t = at
                rt += SEG_GAP_NS
            pending = 0
            cwnd = max(2, cwnd // 2)  # RFC 5681 3.2 step 2 (simplified)
        else:
            cwnd = min(cwnd * 2, 2000)
        if pending:
            # Lone segment: Linux's delayed-ACK timer fires.
            ack_t = max(end_t + rs_delay + DELACK_NS, ack_t)
            f.emit(rcv, ack_t, TCP_ACK, rcv.snd_nxt, rcv.rcv_nxt)
        last_ack_t = ack_t
        t = ack_t + sr_delay
        # -- zero-window episode: receiver's application stops reading -----------------
        if not zw_done and sent >= nbytes // 3 and sent < nbytes:
            zw_done = True
            t = _zero_window(f, snd, rcv, ack_t)
    return last_ack_t


def _sack_blocks(held: dict[int, int], newest: int) -> list[tuple[int, int]]:
    """Coalesce buffered out-of-order segments into SACK blocks, newest block first."""
    ranges: list[list[int]] = []
    for seq in sorted(held):
        end = seq + held[seq]
        if ranges and ranges[-1][1] == seq:
            ranges[-1][1] = end
        else:
            ranges.append([seq, end])
    first = [r for r in ranges if r[0] <= newest < r[1]]
    rest = [r for r in reversed(ranges) if not (r[0] <= newest < r[1])]
    return [(a, b) for a, b in first + rest]


def _zero_window(f: Flow, snd: Endpoint, rcv: Endpoint, t: int) -> int:
    """Receiver advertises a zero window; sender probes with exponential backoff
    (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17) until a window update; returns resume time."""
    rng = f.rng
    f.emit(rcv, t + 1000, TCP_ACK, rcv.snd_nxt, rcv.rcv_nxt, win_bytes=0)
    probe_t = t + f.reply_ns(snd) + RTO_MIN_NS
    interval = RTO_MIN_NS
    for _ in range(rng.randrange(1, 5)):
        # Linux probes with an out-of-window zero-length ACK at snd_una - 1.
        f.emit(snd, probe_t, TCP_ACK, snd.snd_nxt - 1, snd.rcv_nxt)
        f.emit(rcv, probe_t + f.reply_ns(rcv), TCP_ACK, rcv.snd_nxt, rcv.rcv_nxt, win_bytes=0)
        interval *= 2
        probe_t += interval
    upd = probe_t - interval // 2
    f.emit(rcv, upd, TCP_ACK, rcv.snd_nxt, rcv.rcv_nxt)  # window update
    return upd + f.reply_ns(snd)


def close(f: Flow, first: Endpoint, t: int) -> int:
    """Graceful close (RFC 9293 3.6) initiated by ``first``; the peer either ACKs and then
    sends its FIN later, or combines ACK and FIN."""
    second = f.peer(first)
    f.emit(first, t, TCP_FIN | TCP_ACK, first.snd_nxt, first.rcv_nxt)
    first.snd_nxt += 1
    second.rcv_nxt = first.snd_nxt
    t += f.reply_ns(second)
    if f.rng.random() < 0.5:
        f.emit(second, t, TCP_ACK, second.snd_nxt, second.rcv_nxt)
        t += f.rng.randrange(100_000, 50 * NS_PER_MS)
    f.emit(second, t, TCP_FIN | TCP_ACK, second.snd_nxt, second.rcv_nxt)
    second.snd_nxt += 1
    first.rcv_nxt = second.snd_nxt
    t += f.reply_ns(first)
    f.emit(first, t, TCP_ACK, first.snd_nxt, first.rcv_nxt)
    return t


def exchanges(
    f: Flow,
    t: int,
    n: int,
    resp_max: int,
    resp_min: int = 0,
    loss_down: float = 0.0,
    loss_up: float = 0.0,
) -> int:
    """``n`` request/response rounds; response sizes are heavy-tailed (Pareto-ish)."""
    rng = f.rng
    for _ in range(n):
        req = rng.randrange(60, 1200)
        if rng.random() < 0.05:
            req = rng.randrange(2000, 60000)  # an upload
        t = transfer(f, f.c, f.s, t + rng.randrange(0, 2 * NS_PER_MS), req)
        resp = max(resp_min, min(int(rng.paretovariate(1.2) * 600), resp_max))
        # The server ACKs the request, then its response follows (application latency).
        t = transfer(
            f, f.s, f.c, t + PROC_NS + rng.randrange(0, 5 * NS_PER_MS), resp, loss_down, loss_up
        )
        t += rng.randrange(50_000, 80 * NS_PER_MS)  # think time
    return t


KINDS: list[tuple[str, float]] = [
    ("complete", 0.62),
    ("reset", 0.08),
    ("refused", 0.06),
    ("unanswered", 0.04),
    ("lossy", 0.08),
    ("bulk", 0.03),
    ("zero_window", 0.025),
    ("half_open_tail", 0.045),
]

#: Probability that a finished exchange idles (HTTP keep-alive) before the close, and the
#: idle range in seconds: keeps hundreds of connections live at once, as on a real server.
KEEPALIVE_IDLE_P = 0.7
KEEPALIVE_IDLE_S = (0.5, 15.0)


def _idle(rng: random.Random, t: int) -> int:
    if rng.random() < KEEPALIVE_IDLE_P:
        t += int(rng.uniform(*KEEPALIVE_IDLE_S) * NS_PER_S)
    return t


def build_connection(
    rng: random.Random, hosts: Hosts, t: int, snaplen: int
) -> tuple[str, list[tuple[int, bytes]]]:
    """Build one connection of a randomly drawn kind, starting at tap time ``t``."""
    r = rng.random()
    kind = KINDS[-1][0]
    for name, p in KINDS:
        if r < p:
            kind = name
            break
        r -= p
    f = new_flow(rng, hosts, rng.random() < 0.10, snaplen)
    c, s = f.c, f.s
    if kind == "refused":
        # Closed port: RST/ACK with seq 0 acknowledging the SYN (RFC 9293 3.5.2, case 1).
        f.emit(c, t, TCP_SYN, c.isn, 0, syn_opts=True)
        f.emit(s, t + f.reply_ns(s), TCP_RST | TCP_ACK, 0, c.isn + 1, win_bytes=0)
    elif kind == "unanswered":
        # Linux SYN retransmissions: initial RTO 1 s, doubled each time (RFC 6298 5.5).
        rto = SYN_RTO_NS
        for _ in range(rng.randrange(2, 5)):
            f.emit(c, t, TCP_SYN, c.isn, 0, syn_opts=True)
            t += rto + rng.randrange(0, 3 * NS_PER_MS)
            rto *= 2
    else:
        t = handshake(f, t)
        if kind == "complete":
            t = exchanges(f, t, rng.randrange(1, 6), 400_000)
            t = _idle(rng, t)
            t = close(f, c if rng.random() < 0.6 else s, t + rng.randrange(0, 20 * NS_PER_MS))
        elif kind == "reset":
            t = exchanges(f, t, rng.randrange(0, 3), 100_000)
            who = c if rng.random() < 0.5 else s
            flags = TCP_RST | TCP_ACK if rng.random() < 0.7 else TCP_RST
            f.emit(who, t + rng.randrange(0, 100 * NS_PER_MS), flags, who.snd_nxt, who.rcv_nxt)
        elif kind == "lossy":
            t = exchanges(
                f, t, rng.randrange(1, 4), 100_000, resp_min=10_000, loss_down=0.03, loss_up=0.01
            )
            t = _idle(rng, t)
            t = close(f, c if rng.random() < 0.5 else s, t)
        elif kind == "bulk":
            t = transfer(f, c, s, t, rng.randrange(100, 400))
            size = rng.randrange(300, 1800) * 1448
            t = transfer(f, s, c, t, size, loss_down=0.001 if rng.random() < 0.5 else 0.0)
            t = close(f, s, t)
        elif kind == "zero_window":
            t = transfer(f, c, s, t, rng.randrange(100, 400))
            t = transfer(f, s, c, t, rng.randrange(100, 400) * 1448, zero_window=True)
            t = close(f, c, t)
        else:  # half_open_tail: data then silence (idle keep-open, never closed)
            t = exchanges(f, t, 1, 50_000)
    f.frames.sort(key=lambda x: x[0])
    return kind, f.frames


def _syn_flood(
    rng: random.Random, n: int, t: int, rate_per_s: float
) -> Iterator[tuple[int, bytes]]:
    """``n`` SYNs from random spoofed sources and ports to one server, never answered."""
    hosts = Hosts([], [], [], [], {})
    dst = bytes([192, 0, 2, 80])
    gap_ns = int(NS_PER_S / rate_per_s)
    for _ in range(n):
        src = bytes([100, 64 | rng.randrange(64), rng.randrange(256), rng.randrange(1, 255)])
        ep = Endpoint(
            eth=hosts.mac_s + hosts.mac_c + b"\x08\x00",
            src=src,
            dst=dst,
            sport=rng.randrange(1024, 65536),
            dport=80,
            v6=False,
            ttl=rng.randrange(40, 250),
            isn=rng.getrandbits(32),
            mss=1460,
            wscale=7,
            ts_ok=False,
            sack_ok=False,
            rwnd_bytes=rng.choice([512, 1024, 5840, 64240]),
            ts_base=0,
            ts_hz=1000,
            ip_id=rng.getrandbits(16),
            flow_label=0,
        )
        f = Flow(c=ep, s=ep, dc_ns=0, ds_ns=0, rng=rng, snaplen=PCAP_SNAPLEN_BYTES)
        f.emit(ep, t, TCP_SYN, ep.isn, 0, syn_opts=True)
        yield f.frames[0]
        t += rng.randrange(1, 2 * gap_ns)


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


@dataclass
class Stats:
    """What was written: the sidecar ``.meta.json`` and the tests read it."""

    packets: int = 0
    flood_packets: int = 0
    connections: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    max_live_connections: int = 0
    duration_s: float = 0.0
    bytes_written: int = 0


def generate(
    out: BinaryIO,
    packets: int,
    seed: int = 1,
    live_cap: int | None = None,
    syn_flood: int = 0,
    flood_rate_per_s: float = 20_000.0,
    snaplen: int = PCAP_SNAPLEN_BYTES,
    arrival_rate_per_s: float = ARRIVAL_RATE_PER_S,
) -> Stats:
    """Write a pcap with exactly ``packets`` connection packets plus ``syn_flood`` SYNs."""
    rng = random.Random(seed)
    hosts = make_hosts(rng)
    stats = Stats()
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, PCAP_LINKTYPE_ETHERNET))
    written = 4 + 20
    # heap entries: (ts_ns, tiebreak (-1 for the flood), index into frames, frames)
    heap: list[tuple[int, int, int, list[tuple[int, bytes]]]] = []
    tiebreak = 0
    flood_it: Iterator[tuple[int, bytes]] | None = None
    flood_left = syn_flood
    if syn_flood:
        flood_it = _syn_flood(
            random.Random(seed ^ 0x5F100D), syn_flood, EPOCH_NS + NS_PER_S, flood_rate_per_s
        )
        first = next(flood_it)
        heap.append((first[0], -1, 0, [first]))
    next_arrival = EPOCH_NS
    live = 0
    normal = 0
    chunk: list[bytes] = []
    pack_rec = struct.Struct("<IIII").pack
    last_ts = EPOCH_NS
    while normal < packets or flood_left:
        # Start every connection that arrives before the next packet due.
        while (
            normal < packets
            and (not heap or next_arrival <= heap[0][0])
            and (live_cap is None or live < live_cap)
        ):
            kind, frames = build_connection(rng, hosts, next_arrival, snaplen)
            stats.kinds[kind] = stats.kinds.get(kind, 0) + 1
            stats.connections += 1
            heapq.heappush(heap, (frames[0][0], tiebreak, 0, frames))
            tiebreak += 1
            live += 1
            stats.max_live_connections = max(stats.max_live_connections, live)
            next_arrival += int(rng.expovariate(arrival_rate_per_s) * NS_PER_S) + 1
        if not heap:
            break
        ts, tb, idx, frames = heap[0]
        if live_cap is not None and live >= live_cap and next_arrival < ts:
            next_arrival = ts  # rule 3: an arrival waits for a free slot
        is_flood = tb == -1
        if not is_flood and normal >= packets:
            heapq.heappop(heap)  # capture ends: drop the rest of this connection
            live -= 1
            continue
        ts_w, frame = frames[idx]
        ts_w = max(ts_w, last_ts)
        last_ts = ts_w
        if len(frame) > snaplen:  # truncated: wire length was appended by Flow.emit
            wire = struct.unpack("!I", frame[-4:])[0]
            frame = frame[:-4]
        else:
            wire = len(frame)
        us = (ts_w - EPOCH_NS) // 1000
        chunk.append(
            pack_rec(EPOCH_NS // NS_PER_S + us // 1_000_000, us % 1_000_000, len(frame), wire)
        )
        chunk.append(frame)
        written += 16 + len(frame)
        if is_flood:
            flood_left -= 1
            stats.flood_packets += 1
            assert flood_it is not None
            nxt = next(flood_it, None)
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt[0], -1, 0, [nxt]))
        else:
            normal += 1
            if idx + 1 < len(frames):
                heapq.heapreplace(heap, (frames[idx + 1][0], tb, idx + 1, frames))
            else:
                heapq.heappop(heap)
                live -= 1
        if len(chunk) >= 8192:
            out.write(b"".join(chunk))
            chunk.clear()
    out.write(b"".join(chunk))
    stats.packets = normal + stats.flood_packets
    stats.duration_s = round((last_ts - EPOCH_NS) / NS_PER_S, 6)
    stats.bytes_written = written
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--packets",
        type=int,
        default=200_000,
        help="packets of connection traffic (exact; SYN-flood packets are extra)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("-o", "--output", required=True, help="pcap file to write")
    p.add_argument(
        "--live-connections",
        type=int,
        default=None,
        metavar="N",
        help="never more than N connections live at once (memory-flatness runs)",
    )
    p.add_argument(
        "--syn-flood",
        type=int,
        default=0,
        metavar="N",
        help="add N never-answered SYNs from random sources/ports (20 k/s from t=1 s)",
    )
    p.add_argument(
        "--snaplen",
        type=int,
        default=PCAP_SNAPLEN_BYTES,
        help="truncate captured frames to this many bytes (wire length kept)",
    )
    p.add_argument("--no-meta", action="store_true", help="do not write OUTPUT.meta.json")
    a = p.parse_args(argv)
    if (
        a.packets < 0
        or a.syn_flood < 0
        or (a.live_connections is not None and a.live_connections < 1)
    ):
        p.error("counts must be non-negative and --live-connections at least 1")
    out_path = Path(a.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "wb") as fh:
        stats = generate(
            fh, a.packets, a.seed, a.live_connections, a.syn_flood, snaplen=max(64, a.snaplen)
        )
    meta = {
        "seed": a.seed,
        "requested_packets": a.packets,
        "syn_flood": a.syn_flood,
        "live_connections_cap": a.live_connections,
        **stats.__dict__,
    }
    if not a.no_meta:
        Path(str(out_path) + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
