"""Flow table: segments -> connections, incarnations of a 4-tuple, expiry by packet time.

Connections are keyed by the 4-tuple in either direction. A pure SYN whose sequence number
differs from the first sequence number its sender used in the current incarnation starts a
new incarnation (a new ``flow_id``), as Wireshark's ``tcp.stream`` does (packet-tcp.c: a SYN
with a different base sequence number opens a new conversation); a SYN retransmission (same
ISN) or the peer's SYN of a simultaneous open stays in the same connection, and so does the
first SYN of an endpoint that had only sent ACKs while its peer waits in SYN_SENT (the "split
handshake" SYN / ACK / SYN / SYN-ACK / ACK, Beardsley and Qian 2010).

A SYN with a new ISN while both ends are ESTABLISHED is *held* (``_reincarnate``) until its
receiver answers, because only the answer tells a new incarnation from an RFC 5961 section 4
challenge: a SYN-ACK (or RST) acknowledging it opens the new incarnation as above; anything
else (the challenge ACK, data of the connection) proves the receiver kept the connection, and
the SYN joins it (``Connection.on_challenged_syn``). Meanwhile the connection takes the full
path (``_full_path`` sees every segment). The held SYN's ``flow_id`` is reserved when it
arrives, so the numbering still follows ``tcp.stream`` (which opens a stream for every such
SYN); a challenged SYN leaves its number unused unless its sender re-sends it to open a new
connection later (a host that lost the connection resets at the challenge ACK, then its SYN
is retransmitted: ``tcp.stream`` holds both in one stream, so the new incarnation takes the
reserved number). At capture end or expiry, or when a full table evicts its connection, a
held SYN with no answer opens its new incarnation. An old incarnation ended by an answer
leaves through the next call that hands over finished connections (the sweep, a
reincarnation, an open, the drain).

Memory stays bounded: a connection leaves the table as soon as nothing can change it (closed
and past its linger or TIME_WAIT by packet time), when idle past the timeout, or, when the
table is full, oldest idle first with half-open ones preferred (SYN floods).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterator

from tcptrace_py.connection import Connection
from tcptrace_py.fastpath import steady_segment
from tcptrace_py.fsm import TcpState
from tcptrace_py.icmp import IcmpError
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, RST, SYN, TS_NS_MAX, Segment

_MASK = 0xFFFFFFFF

Key = tuple[bytes, int, bytes, int]

WELL_KNOWN_PORT_LIMIT = 1024
"""Ports below this are IANA system ports: the side using one is guessed to be the server."""

SWEEP_INTERVAL_NS = 1_000_000_000
"""Expiry is checked when packet time has advanced this much (1 s) since the last sweep."""

MAX_CLOCK_JUMP_NS = 86_400 * 1_000_000_000
"""A forward jump of packet time by more than a day is only trusted for expiry once the next
segment confirms it: one corrupt timestamp (seen in real pcapng files) must not expire every
live connection. A jump from a time the outputs can hold to one beyond ``TS_NS_MAX`` (2262:
a pcapng interface with a bad ``if_tsoffset``, interleaved with good ones) is never
confirmed: the good interfaces' connections would all expire mid-stream. A capture whose
times all lie beyond it still runs its clock on them (the first segment sets it)."""

_TIME_WAIT = TcpState.TIME_WAIT  # bound once: Enum class attribute lookups are slow (3.11)
_ESTABLISHED = TcpState.ESTABLISHED
_SYN_SENT = TcpState.SYN_SENT

EVICTION_SCAN = 64
"""When the table is full, how many of the oldest entries are searched for a half-open one."""

DEADLINE_SLACK = 1024
"""Entries the deadline heap may hold beyond twice its last compacted size before the
entries of connections that already left the table are dropped. Connections evicted by
``max_connections`` (a SYN flood) or closed early leave their entries behind until their
deadline passes (the 300 s attempt timeout: 6 M SYNs of a 20 k/s flood); compacting when
the heap doubles keeps it proportional to the live table at O(1) amortised cost per push,
and the slack keeps a small table from compacting on every push."""


def guess_client_is_src(seg: Segment) -> tuple[bool, bool]:
    """Decide roles from the first segment: (client_is_src, roles_inferred).

    The client is the sender of a pure SYN; the sender of a SYN-ACK is the server; otherwise
    the side on a well-known port, else the lower port, is guessed to be the server (as
    tcptrace and Zeek's heuristics do), and the record says the roles were inferred.
    """
    if seg.flags & SYN and not seg.flags & RST:
        return (not seg.flags & ACK), False
    s_known = seg.sport < WELL_KNOWN_PORT_LIMIT
    d_known = seg.dport < WELL_KNOWN_PORT_LIMIT
    if s_known != d_known:
        return d_known, True
    return seg.sport >= seg.dport, True


SHARD_MIX = 0x9E3779B1
"""Fibonacci-hashing multiplier (2**32 / golden ratio) of :func:`slot_of`: spreads the
xor of ports and address bytes, which clusters (one server port, sequential client ports),
over the slots."""

SHARD_SLOTS = 4096
"""Slots the 4-tuples hash to; a ``--jobs`` worker owns a range of them, so workers can
take unequal shares (tcptrace_py/parallel.py gives the parent, which also merges, less)
in steps of 1/4096. A power of two: the slot is a mask, not a division."""


def slot_of(src: bytes, sport: int, dst: bytes, dport: int) -> int:
    """The slot (``0 <= slot < SHARD_SLOTS``) of the connection of this 4-tuple: the
    worker owning the slot analyses it (``--jobs``).

    Symmetric (both directions of a connection, and an ICMP error quoting one of its
    segments, land on the same worker) and the same in every process (no salted ``hash``).
    The flow tables inline it (``FlowTable.on_segment``, ``_engine.FlowTableBase``): a few
    integer operations per segment, no call.
    """
    return (((sport ^ dport ^ ((src[-1] ^ dst[-1]) << 16)) * SHARD_MIX) >> 20) \
        & (SHARD_SLOTS - 1)


def _new_live_table() -> OrderedDict[Key, Connection]:
    """An empty ``FlowTable.live``: an ``OrderedDict`` here; the compiled engine's twin
    (``_engine.LiveTable``) keeps the order's links in the connections, so that moving one
    to the end (every segment) relinks two pointers instead of hashing its key twice."""
    return OrderedDict()


class DeadlineHeap:
    """The flow table's short timers (attempt, linger, TIME_WAIT): ``(deadline ns, flow_id,
    key)`` entries, popped in that order (a binary heap, :mod:`heapq`).

    Why a class and not the list itself: the compiled engine's twin
    (``_engine.DeadlineHeap``) keeps an entry as three C fields, 24 bytes against ~130 for
    a tuple and its two integers; 2m.pcap holds ~17 k entries at its memory peak. An entry's
    place is decided by its deadline, then its flow_id (one connection's entries share its
    key), so any heap pops the same entries in the same order."""

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Key]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, deadline_ns: int, flow_id: int, key: Key) -> None:
        heapq.heappush(self._heap, (deadline_ns, flow_id, key))

    def due(self, now_ns: int) -> bool:
        """Whether the earliest entry's deadline is at or before ``now_ns``."""
        return bool(self._heap) and self._heap[0][0] <= now_ns

    def pop(self) -> tuple[int, int, Key]:
        """The earliest entry, removed (IndexError when empty)."""
        return heapq.heappop(self._heap)

    def retain(self, keep: Callable[[int, Key], bool]) -> None:
        """Keep only the entries whose ``(flow_id, key)`` ``keep`` accepts."""
        self._heap = [e for e in self._heap if keep(e[1], e[2])]
        heapq.heapify(self._heap)


def _new_flow_index() -> dict[Key, Connection]:
    """An empty ``FlowTable._by_dir``: a dict here; the compiled engine's twin is a hash
    table of C keys (``_engine.FlowIndex``) the per-segment lookup reads without a tuple."""
    return {}


class FlowTable:
    """Live connections, keyed by 4-tuple; emits finished ones through :meth:`on_segment`."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.live: OrderedDict[Key, Connection] = _new_live_table()
        """Live connections by normalised key, least recently active first (idle expiry and
        eviction under ``max_connections`` follow this order)."""
        self._by_dir: dict[Key, Connection] = _new_flow_index()
        """The same connections under both directional keys (src, sport, dst, dport): a
        segment finds its connection with the tuple it carries, without the ordering compare
        that builds the normalised key (~120 ns of the per-segment path). Kept in step with
        ``live`` by :meth:`_add` and :meth:`_remove`."""
        self.next_flow_id = 0
        self._deadlines = DeadlineHeap()
        """(deadline ns, flow_id, key) of connections waiting for a short timer (attempt,
        linger, TIME_WAIT); entries of connections gone from ``live`` are skipped when
        popped and dropped by :meth:`_push_deadline` when they pile up."""
        self._deadlines_compact_at = DEADLINE_SLACK
        self._last_sweep_ns = -1
        self._clock_ns = -1
        """Packet clock driving expiry: the latest trusted segment time."""
        self._jump_pending = False
        self.evicted_table_full = 0
        self.evicted_half_open = 0
        self.peak_live = 0
        self._held: dict[Key, tuple[int, list[Segment]]] = {}
        """Per 4-tuple: (reserved flow_id, SYNs) of a SYN with a new ISN on an established
        connection, waiting for its receiver's answer (see the module docstring)."""
        self._reserved = -1
        """flow_id the next :meth:`_open` takes instead of a new one (a released held SYN)."""
        self._challenged: dict[Key, tuple[int, int, int]] = {}
        """Per 4-tuple: (reserved flow_id, raw seq, ts_ns) of the last challenged SYN: a new
        incarnation opened by a re-send of it takes that flow_id (pruned on sweeps)."""
        self._deferred: list[Connection] = []
        """Old incarnations a held SYN's answer ended in :meth:`_full_path`, which has no
        ``finished`` list: handed over by the next method that has one."""
        self._last_end: dict[Key, tuple[int, str, str]] = {}
        """Per 4-tuple: (last ts, client state, server state) of the last emitted incarnation,
        kept only for 4-tuples still within TIME_WAIT reach (pruned on sweeps)."""
        self.slot_lo = 0
        self.slot_hi = 0
        """In a ``--jobs`` worker (see tcptrace_py/parallel.py), ``slot_hi > 0``: this table
        routes only the segments whose :func:`slot_of` is in ``[slot_lo, slot_hi)``, after
        the packet clock and the sweep saw every segment, so expiry runs at the same packet
        times in every worker as in one table. 0: every segment."""
        self.allocated: list[int] | None = None
        """In a worker: the flow ids allocated since the caller last cleared it (the parent
        numbers the flows of every worker in the order of their allocations)."""
        self.sweep_tags: list[tuple[int, ...]] | None = None
        """In a worker (``slot_hi > 0``): for each connection :meth:`_sweep` hands over, its
        place in the sweep's order (see :meth:`_sweep`), so the parent can interleave the
        workers' sweeps as one table's sweep would have ordered them."""

    @staticmethod
    def key_of(seg: Segment) -> Key:
        a = (seg.src, seg.sport)
        b = (seg.dst, seg.dport)
        return (seg.src, seg.sport, seg.dst, seg.dport) if a <= b else \
            (seg.dst, seg.dport, seg.src, seg.sport)

    def on_segment(self, seg: Segment, finished: list[Connection]) -> Connection | None:
        """Route one segment; connections that finish are appended to ``finished``. None
        when the segment belongs to another worker's slots (``slot_hi > 0``)."""
        ts = seg.ts_ns
        clock = self._clock_ns
        if ts > clock:
            if ts - clock <= MAX_CLOCK_JUMP_NS or clock < 0 or (
                    self._jump_pending and (ts <= TS_NS_MAX or clock > TS_NS_MAX)):
                self._clock_ns = clock = ts
                self._jump_pending = False
            else:
                self._jump_pending = True
        else:
            self._jump_pending = False
        if clock - self._last_sweep_ns >= SWEEP_INTERVAL_NS:
            self._sweep(clock, finished)
        hi = self.slot_hi
        if hi:
            slot = (((seg.sport ^ seg.dport ^ ((seg.src[-1] ^ seg.dst[-1]) << 16))
                     * SHARD_MIX) >> 20) & (SHARD_SLOTS - 1)  # slot_of, inlined
            if slot < self.slot_lo or slot >= hi:
                return None  # another worker's connection
        conn = self._by_dir.get((seg.src, seg.sport, seg.dst, seg.dport))
        if conn is not None:
            key = conn.key
            if seg.flags & (SYN | ACK | RST) == SYN and self._new_incarnation(conn, seg):
                conn = self._reincarnate(conn, key, seg, finished)
            else:
                self.live.move_to_end(key)
                if conn.steady and steady_segment(conn, seg) >= 0:
                    return conn  # still steady: both ESTABLISHED, nothing for the checks below
        else:
            key = self.key_of(seg)
            conn = self._open(key, seg, finished, previous=None)
        return self._full_path(conn, key, seg)

    def _reincarnate(self, conn: Connection, key: Key, seg: Segment,
                     finished: list[Connection]) -> Connection:
        """A SYN with a new ISN on a live 4-tuple: the old incarnation ends, a new one opens.

        Unless both ends are ESTABLISHED: then the SYN is held until its receiver answers (RFC
        5961 4 challenge or new incarnation, see the module docstring).
        """
        if self._deferred and finished is not self._deferred:
            self._hand_over(finished)
        held = self._held.get(key) if self._held else None
        if held is not None:
            first = held[1][0]
            if seg.src == first.src and seg.sport == first.sport and seg.seq == first.seq:
                held[1].append(seg)  # its re-send waits with it (_full_path skips it)
                return conn
            # Another ISN: the held SYN was a new attempt after all, and this one is judged
            # against the incarnation it opened.
            self._release(key, finished)
            conn = self._by_dir[(seg.src, seg.sport, seg.dst, seg.dport)]
            if not self._new_incarnation(conn, seg):
                return conn
            return self._reincarnate(conn, key, seg, finished)
        if self._reserved < 0 and conn.client.state is _ESTABLISHED and \
                conn.server.state is _ESTABLISHED and not conn.self_connect:
            self._held[key] = (self.next_flow_id, [seg])
            if self.allocated is not None:
                self.allocated.append(self.next_flow_id)
            self.next_flow_id += 1
            conn.steady = False  # every segment to _full_path until the answer
            return conn
        conn.finalize(seg.ts_ns)
        conn.end_incarnation(seg)
        conn.end_reason = "new_incarnation"
        self._remove(key)
        self._remember_end(key, conn)
        finished.append(conn)
        return self._open(key, seg, finished, previous=conn)

    def _full_path(self, conn: Connection, key: Key, seg: Segment) -> Connection:
        """Replay a segment through the connection's full path, then schedule its timers."""
        if self._held and key in self._held:
            if seg is self._held[key][1][-1]:
                return conn  # a SYN _reincarnate just held
            conn = self._on_held(conn, key, seg)
            conn.on_segment(seg)
            if key in self._held:
                conn.steady = False  # still waiting for the answer: no steady path
        else:
            conn.on_segment(seg)
        # Both ends ESTABLISHED (most segments of a capture): neither done nor in TIME_WAIT,
        # so the checks below cannot fire; testing that first skips a method call per segment.
        if conn.client.state is _ESTABLISHED and conn.server.state is _ESTABLISHED:
            return conn
        if conn.is_done() or conn.client.state is _TIME_WAIT or \
                conn.server.state is _TIME_WAIT:
            self._push_deadline(conn.quiet_deadline_ns(), conn.flow_id, key)
            if not conn.compacted:
                # Closing: it may wait out TIME_WAIT here; drop its per-segment history.
                conn.compact()
        elif conn.packets[0] + conn.packets[1] == 1:
            # A new connection: if it stays an unanswered attempt, the attempt timeout (not the
            # hour-long idle timeout) lets it go; the sweep re-reads the real deadline.
            self._push_deadline(conn.quiet_deadline_ns(), conn.flow_id, key)
        return conn

    def _push_deadline(self, deadline_ns: int, flow_id: int, key: Key) -> None:
        heap = self._deadlines
        heap.push(deadline_ns, flow_id, key)
        if len(heap) > self._deadlines_compact_at:
            self._compact_deadlines()

    def _compact_deadlines(self) -> None:
        """Drop entries whose connection left the table (evicted, ended, or its 4-tuple
        reused by a later incarnation): the sweep would skip them anyway, so the pop order
        of the rest, and every result, is unchanged."""
        live = self.live

        def in_table(flow_id: int, key: Key) -> bool:
            return (c := live.get(key)) is not None and c.flow_id == flow_id

        self._deadlines.retain(in_table)
        self._deadlines_compact_at = 2 * len(self._deadlines) + DEADLINE_SLACK

    def on_icmp(self, err: IcmpError) -> bool:
        """Give an ICMP error to the live connection of the segment it quotes; False when no
        live connection has that 4-tuple (its segment was never captured, or long gone)."""
        conn = self._by_dir.get((err.src, err.sport, err.dst, err.dport))
        if conn is None:
            return False
        conn.on_icmp(err)
        return True

    def _on_held(self, conn: Connection, key: Key, seg: Segment) -> Connection:
        """A segment (not a held SYN) on a 4-tuple with a held SYN; returns the connection it
        belongs to.

        From the SYN's sender it is the established connection's own segment (its real
        sender going on). From the receiver, an ACK of the SYN (SYN-ACK, or RST refusing it)
        releases it as a new incarnation; anything else is the connection answering as
        itself, RFC 5961 4, and the SYNs join it.
        """
        flow_id, syns = self._held[key]
        first = syns[0]
        if seg.src == first.src and seg.sport == first.sport:
            return conn
        if seg.flags & ACK and seg.ack == (first.seq + 1) & _MASK:
            self._release(key, self._deferred)
            return self._by_dir[(seg.src, seg.sport, seg.dst, seg.dport)]
        del self._held[key]
        self._challenged[key] = (flow_id, first.seq, seg.ts_ns)
        conn.on_challenged_syn(syns, seg)
        return conn

    def _hand_over(self, finished: list[Connection]) -> None:
        """Give the deferred old incarnations (see :attr:`_deferred`) to ``finished``."""
        finished.extend(self._deferred)
        self._deferred.clear()

    def _release(self, key: Key, finished: list[Connection]) -> None:
        """Open the new incarnation a held SYN started, under the flow_id reserved for it."""
        flow_id, syns = self._held.pop(key)
        self._reserved = flow_id  # taken by the first SYN's _open
        for syn in syns:
            self.on_segment(syn, finished)

    def _new_incarnation(self, conn: Connection, seg: Segment) -> bool:
        from_client = conn.is_from_client(seg)
        side = 0 if from_client or conn.self_connect else 1
        base = conn.base_seq[side]
        if base < 0 or seg.seq == base:
            return False
        snd, rcv = (conn.client, conn.server) if side == 0 else (conn.server, conn.client)
        # Split handshake: its first SYN, after only ACKs, to a peer still in SYN_SENT joins
        # the peer's attempt (RFC 9293 3.10.7.3: a SYN in SYN-SENT is a simultaneous open).
        return not (snd.iss < 0 and rcv.state is _SYN_SENT and not conn.payload_bytes[side])

    def _open(self, key: Key, seg: Segment, finished: list[Connection],
              previous: Connection | None) -> Connection:
        if self._deferred and finished is not self._deferred:
            self._hand_over(finished)
        client_is_src, inferred = guess_client_is_src(seg)
        challenged = self._challenged.pop(key, None) if self._challenged else None
        if self._reserved >= 0:
            flow_id, self._reserved = self._reserved, -1
        elif challenged is not None and challenged[1] == seg.seq \
                and seg.flags & (SYN | ACK | RST) == SYN:
            flow_id = challenged[0]
        else:
            flow_id = self.next_flow_id
            self.next_flow_id += 1
            if self.allocated is not None:
                self.allocated.append(flow_id)
        conn = Connection(flow_id, key, seg, client_is_src, inferred, self.options)
        if previous is not None:
            conn.incarnation = previous.incarnation + 1
            conn.previous_end_ts_ns = previous.last_ts_ns
            conn.previous_states = previous.client.state.value, previous.server.state.value
            if previous.previous_states is None:
                conn.previous_states = (previous.client.state.value,
                                        previous.server.state.value)
        else:
            last = self._last_end.pop(key, None)
            if last is not None:
                conn.incarnation = 1
                conn.previous_end_ts_ns = last[0]
                conn.previous_states = (last[1], last[2])
        self._add(key, conn)
        if len(self.live) > self.peak_live:
            self.peak_live = len(self.live)
        if len(self.live) > self.options.max_connections:
            self._evict_one(key, finished)
        return conn

    def _add(self, key: Key, conn: Connection) -> None:
        self.live[key] = conn
        by_dir = self._by_dir
        by_dir[key] = conn
        by_dir[(key[2], key[3], key[0], key[1])] = conn

    def _remove(self, key: Key) -> Connection:
        conn = self.live.pop(key)
        by_dir = self._by_dir
        del by_dir[key]
        by_dir.pop((key[2], key[3], key[0], key[1]), None)  # absent for a self-connect
        return conn

    def _remember_end(self, key: Key, conn: Connection) -> None:
        # Only 4-tuples that may see a TIME_WAIT reuse are remembered (bounded by the sweep).
        # The states' names as ``_value_`` (an Enum member's ``value`` is a property: ~2 k
        # instructions each, called for most connections).
        self._last_end[key] = (conn.last_ts_ns, conn.client.state._value_,
                               conn.server.state._value_)

    def _evict_one(self, keep: Key, finished: list[Connection]) -> None:
        victim_key: Key | None = None
        for i, (k, c) in enumerate(self.live.items()):
            if i >= EVICTION_SCAN:
                break
            if k != keep and c.handshake_done_frame < 0:
                victim_key = k
                self.evicted_half_open += 1
                break
        if victim_key is None:
            victim_key = next(iter(self.live))
            if victim_key == keep:
                return
        conn = self._remove(victim_key)
        conn.end_reason = "table_full"
        self.evicted_table_full += 1
        finished.append(conn)
        if self._held and victim_key in self._held:
            # Its held SYN opens the new incarnation it reserved a flow_id for, as at expiry:
            # its frames stay in a connection and the numbering stays tcp.stream's.
            self._remember_end(victim_key, conn)
            self._release(victim_key, finished)

    def _sweep(self, now_ns: int, finished: list[Connection]) -> None:
        """Hand over what packet time ``now_ns`` ended: deferred old incarnations, then
        the short timers in deadline order, then the idle connections, least recently
        active first.

        In a worker (``sweep_tags`` set) each handed-over connection gets its place in that
        order: ``(0, flow_id)``, ``(1, deadline, flow_id)`` (the heap entry that ended it)
        or ``(2, last_frame)`` (its LRU place: the frame that last moved it).
        """
        self._last_sweep_ns = now_ns
        tags = self.sweep_tags
        if self._deferred:
            if tags is not None:
                tags.extend((0, c.flow_id) for c in self._deferred)
            self._hand_over(finished)
        live = self.live
        heap = self._deadlines
        while heap.due(now_ns):
            entry = heap.pop()
            if tags is not None:
                done = len(finished)
                self._sweep_entry(now_ns, entry, finished)
                tags.extend((1, entry[0], entry[1]) for _ in range(len(finished) - done))
            else:
                self._sweep_entry(now_ns, entry, finished)
        idle_ns = self.options.idle_timeout_ns
        while live:
            key, conn = next(iter(live.items()))
            if now_ns - conn.last_ts_ns < idle_ns:
                break
            done = len(finished)
            if self._held and key in self._held:
                self._release(key, finished)
            else:
                conn.finalize(now_ns)
                conn.end_reason = "idle_timeout"
                self._remove(key)
                finished.append(conn)
            if tags is not None:
                tags.extend((2, conn.last_frame) for _ in range(len(finished) - done))
        if self._challenged:
            horizon = now_ns - self.options.attempt_timeout_ns
            self._challenged = {k: v for k, v in self._challenged.items() if v[2] >= horizon}
        # Forget ended 4-tuples once a reuse could no longer hit their TIME_WAIT.
        if len(self._last_end) > 4096:
            horizon = now_ns - self.options.time_wait_ns
            self._last_end = {k: v for k, v in self._last_end.items() if v[0] >= horizon}

    def _sweep_entry(self, now_ns: int, entry: tuple[int, int, Key],
                     finished: list[Connection]) -> None:
        """One deadline-heap entry due at ``now_ns`` (see :meth:`_sweep`)."""
        live = self.live
        heap = self._deadlines
        _, flow_id, key = entry
        conn = live.get(key)
        if conn is None or conn.flow_id != flow_id:
            return
        deadline = conn.quiet_deadline_ns()
        if deadline > now_ns:
            # Idle-timeout deadlines are the LRU scan's job; keep the heap for the short
            # timers (linger, TIME_WAIT, attempts) so it stays small.
            if deadline < conn.last_ts_ns + self.options.idle_timeout_ns:
                heap.push(deadline, flow_id, key)
            return
        if self._held and key in self._held:
            self._release(key, finished)  # never answered: its new incarnation opens
            return
        conn.check_timers(now_ns)
        if conn.is_done() or conn.time_wait_expired:
            conn.end_reason = "time_wait_expired" if conn.time_wait_expired else "closed"
        else:
            conn.finalize(now_ns)
            conn.end_reason = "attempt_timeout" if conn.is_attempt() else "idle_timeout"
        self._remove(key)
        self._remember_end(key, conn)
        finished.append(conn)

    def drain(self, end_ns: int) -> Iterator[Connection]:
        """At capture end: every live connection, in flow_id order."""
        released: list[Connection] = []
        for key in list(self._held):
            self._release(key, released)  # no answer came: each opens its new incarnation
        yield from self._deferred + released
        self._deferred.clear()
        conns = sorted(self.live.values(), key=lambda c: c.flow_id, reverse=True)
        self.live.clear()
        self._by_dir.clear()
        while conns:
            # Popped, not iterated: a connection handed over is not held here, so the
            # drain's memory falls as it goes instead of keeping every finished
            # connection (and what finalizing made) until the last.
            conn = conns.pop()
            conn.finalize(end_ns)
            yield conn


ReferenceDeadlineHeap = DeadlineHeap
"""The pure-Python heap, whichever engine runs (the twin's tests compare against it)."""

# The compiled engine's twin (tcptrace_py/implementation.py, tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import compiled as _compiled  # noqa: E402
from tcptrace_py.implementation import twin  # noqa: E402

if _compiled is not None:
    _new_flow_index = _compiled.FlowIndex  # noqa: F811
    _new_live_table = _compiled.LiveTable  # noqa: F811
    DeadlineHeap = _compiled.DeadlineHeap  # type: ignore[misc]  # noqa: F811

ReferenceFlowTable = FlowTable
"""The pure-Python class, whichever engine runs (tests patch the steady path through it)."""
FlowTable = twin(FlowTable, "FlowTableBase")  # type: ignore[misc]
