"""One capture on several cores (``--jobs N``): workers split by connection, one output.

Each worker analyses only the segments of its own connections (``FlowTable.slot_lo/slot_hi``,
:func:`flowtable.slot_of`, a symmetric hash of the 4-tuple into ``SHARD_SLOTS`` slots, each
worker owning a range, so both directions and the ICMP errors quoting a connection reach one
worker; the calling process takes a smaller range, :data:`PARENT_SHARE`). The others only
advance its flow table's packet clock and sweep, so expiry runs at the same packet times in
every worker as in a single table, and each worker holds only its own live connections.

How the workers get their segments:

* A classic pcap file with the compiled engine (forked workers): the calling process alone
  reads the capture and fills one ring per other worker in memory shared with it
  (``_engine.Rings``, :func:`_rings`): the headers of the worker's segments, every frame
  left to the reference decoder whole (the worker's reference decoder then keeps the same
  state as one reading the file), and a tick (frame number and time) for another worker's
  segment only where it swept the tables or the calling process hands items over; every
  entry carries the table clock the frame found, which is the same in every table. The
  workers thus neither map nor decode the file (that was about a third of a worker's time
  on the 2 M-packet capture). Neither side waits for the other for long: a full ring makes
  the calling process read the workers' pipes meanwhile (a worker blocked on its pipe never
  empties its ring), and a worker whose ring ran dry sends what it has and a watermark
  (``("w", key, shard)``: none of its later items sorts before ``key``), after which the
  calling process runs ahead past :data:`RUN_AHEAD_ITEMS`.
* Otherwise (pcapng, the pure engine, workers started by forkserver) each worker reads the
  whole file itself and skips the other workers' segments: the compiled pcap and pcapng
  loops before building a segment (``_engine.Router``), the reference's flow table after
  decoding.

The output is the one ``--jobs 1`` gives, in the same order:

* Every item a worker produces carries a sort key saying where one engine would have
  produced it: ``(segment index, phase, ...)``. Within the segment, a sweep hands over its
  deferred incarnations (phase 0), its short timers in ``(deadline, flow)`` order (phase 1)
  and its idle connections in LRU order (phase 2) before the segment's own work (phase 3:
  new flow ids, incarnations it ended); the drain at capture end comes last. A flow is
  ordered by where its id was allocated (``(segment index, n)``), which is the order of
  flow ids. The parent merges the workers' streams by these keys (:func:`in_key_order`).
* Flow ids: a worker numbers its own connections; the parent numbers the allocations in
  merged order, which is Wireshark's ``tcp.stream`` order of one engine, and rewrites the
  records, anomalies, events and packet rows.
* Capture-wide detectors (RST storms, scans and floods, SYN-ACK trouble per server,
  truncation) do not run in the workers: each worker sends every connection's compact share
  (``Detector.summarize``) and the parent folds the shares in merged order, then runs
  ``on_end`` (``Detector.capture_wide``).
* Diagnostics come from the reading of worker 0, which reads every frame (counted once;
  other workers see the same frames or, with rings, only theirs); the ICMP counts of every
  worker are added and the capture-wide warnings are made from the summed counters.

Processes, not threads: the compiled engine holds the GIL. Worker 0 runs in the calling
process, pulled by the merge, so ``--jobs 2`` starts one process; while another worker's
batch is pending it computes its own items ahead (:class:`_RunAhead`) rather than wait.

Known limits, where one table's behaviour depends on connections of other shards: when the
connection table fills (``max_connections``, a SYN flood past 100 000 live connections) the
evictions differ (each worker evicts among its own; a warning says so); the LRU idle scan
stops at the first connection still active, so with timestamps going backwards across
connections one table may keep an idle connection a sweep longer; the memory of ended
4-tuples (TIME_WAIT reuse) is pruned when a table holds over 4096 of them, which a worker
reaches later than one table.
"""

from __future__ import annotations

import heapq
import multiprocessing as mp
import os
import pickle
import queue
import resource
import select
import signal
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

from tcptrace_py import implementation
from tcptrace_py.capture import capture_format, route_segments
from tcptrace_py.capture.source import SNIFF_BYTES, sniff_compression, source_name
from tcptrace_py.decode import Decoder
from tcptrace_py.detectors import DetectorSet
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.encoded import EncodedResult
from tcptrace_py.engine import (
    CaptureSummary,
    Engine,
    FlowResult,
    Source,
    capture_warnings,
)
from tcptrace_py.flowtable import SHARD_SLOTS
from tcptrace_py.options import Options
from tcptrace_py.outfile import write_all

END = 1 << 62
"""Segment index of the items of the capture-end drain (after every real segment)."""

SEND_AHEAD_BATCHES = 4
"""Batches a worker may have queued for the pipe while it analyses on (:class:`_Sender`):
a few MB at most, enough to ride out the parent's pauses on its other streams."""

RUN_AHEAD_ITEMS = 4096
"""Items the calling process may compute ahead of the merge while it waits for a worker
(:class:`_RunAhead`): a few thousand finished connections, tens of MB at most."""

PIPE_BYTES = 1 << 20
"""Buffer asked for each worker's pipe (Linux's default limit for an unprivileged process,
``/proc/sys/fs/pipe-max-size``): most of a batch fits, so a batch is one or two wake-ups."""

BATCH_ITEMS = 256
"""Items a worker process sends at once: large enough that pickling and the pipe cost little
per item, small enough that the parent's merge is not starved (a few hundred connections)."""

PARENT_SHARE = 0.55
"""The calling process's share of the connections, relative to each other worker's: it also
unpickles the workers' results, merges, renumbers and (in the CLI) writes the output. First
measured on the 2 M-packet capture with ``--jobs 2`` (CPU seconds, bench/jobs_speedup.py):
equal shares, parent 13.1 against worker 11.0; at 0.9, 15.0-16.0 against 12.8-13.4; hence
0.75. Once workers stopped building other workers' segments (the compiled read loops):
instructions of ``tcptrace-py analyze 200k.pcap --format jsonl --jobs 2`` (callgrind,
parent / worker, millions) balance near 0.69 (0.75: 4,074 / 3,856; 0.7: 4,058 / 4,012;
0.65: 3,890 / 4,139), but CPU seconds on 2m.pcap balance higher (instructions miss
memory stalls, presumably the larger worker's) (load average 1.6-2.5, parent /
worker): 0.7: 7.3-7.6 / 8.4-8.7; 0.8: 7.6-7.9 / 7.9-8.3; 0.85: 8.5-8.7 / 8.1-8.9. With the
worker's sends in a thread (:class:`_Sender`), on an idle machine (load average 1.1-1.2):
0.8: parent 7.9-8.2 / worker 7.2-7.5 s; 0.7: 7.3-7.9 / 6.9-7.5 s, wall 7.9-8.5 s against
12.6-13.9 s for one engine. Hence 0.7 (41 % of the slots at ``--jobs 2``). Once the
reader refilled one buffer (no page faults; every process reads the capture in ~0.3 s of
CPU), the worker became the slower one: ``tcptrace-py analyze 2m.pcap --format jsonl -o
/dev/null --jobs 2``, parent / worker CPU s and wall: 0.7: 5.3 / 6.0, 6.3-6.4 s; 0.8:
5.3-5.6 / 5.6-6.0, 6.0-6.4 s; 0.9: 5.7-5.9 / 5.6-5.7, 6.3-6.5 s; 1.0: 5.7-6.0 / 5.0-5.2,
6.1-6.3 s (load average 1.0-1.4). Hence 0.8 (44 % of the slots). (bench/jobs_speedup.py's
parent hashes every record through ``json``, slower than the CLI's orjson, so its parent
is the slower one at any of these shares.) After this session's faster per-connection
path (compiled twins of the peer summaries, the connection's frame, compaction), the same
command: 0.8: parent 4.8 / worker 5.2 s; 0.9: 5.3 / 4.9 s; wall at 0.85 5.2-5.6 s against
5.6-5.7 s at 0.8 and 8.8-9.2 s for one engine. Hence 0.85 (46 % of the slots). Once the
calling process ran its own shard ahead instead of waiting for the worker's batches
(:class:`_RunAhead`; eighth session), in process (``os.times``), parent / worker CPU s and
wall: 0.8: 4.38-4.46 / 4.35-4.42, 4.51-4.54 s; 0.85: 4.72 / 4.26-4.38, 4.77 s; 0.9: 4.64 /
3.98-4.19, 4.69 s; 1.0: 4.59-4.80 / 3.72-4.01, 4.64-4.87 s. Hence 0.8 (44 % of the
slots). With the workers encoding their records (:class:`EncodedResult`) and this module
compiled, wall time over four runs each: 0.8: 3.91-4.37 s; 0.9: 3.98-4.85 s; 1.0:
4.24-4.79 s. Still 0.8. On the twelfth session's machine (another CPU), after the read
loop stopped boxing the times of other workers' frames, the calling process was the
lighter one: parent / worker CPU in process, ``analyze 2m.pcap --jobs 2``, runs on a noisy
machine (wall varied +-25 % between identical runs), median of the ratio: 0.8: 0.88 (8
runs); 0.9: 0.96 (10); 0.95: 1.04 (7); 1.0: 1.14 (4); 1.1: 1.21 (3). Hence 0.9 (47 % of
the slots), leaving the calling process a little slack for its start-up before the fork
and the summary after. The sixteenth session's memory work made each connection cheaper to
analyse but not the calling process's per-record work, and the balance moved back: the same
measure, median (runs): 0.9: 1.09 (10); 0.85: 1.08 (10); 0.8: 0.99 (13); 0.7: 0.84 (3).
Hence 0.8 (44 % of the slots) again. Once the calling process read the capture for every
worker (the rings, twenty-fourth session), it did more than its share: the same measure,
five runs each in turn: 0.45: 0.91; 0.55: 1.01; 0.65: 1.15. Hence 0.55 (35 % of the
slots)."""

ENGINE_NOTES = ("icmp_errors", "icmp_errors_unmatched")
"""``Diagnostics.notes`` that the engine (not the reader) counts, per worker."""

Item = tuple[Any, ...]
"""A worker's output: ``("a", key, shard, flow_id, live)`` (a flow id allocated),
``("r", key, shard, FlowResult, shares, live)`` (a connection finished),
``("w", key, shard)`` (a watermark: nothing of this worker sorts before ``key``) or
``("e", key, shard, diag, summary, evicted_half_open, end_ns, peak RSS KiB)`` (its end)."""


def in_key_order(streams: list[Iterator[Item]]) -> Iterator[Item]:
    """``heapq.merge(*streams, key=itemgetter(1))``: the items of every stream by their
    sort key, a stream's own order kept, ties to the earlier stream. Why not
    ``heapq.merge``: it is a Python generator, a few hundred bytecodes for each of the
    ~50 k items of the 2 M-packet capture in the calling process, the one that reads for
    everyone; this one is compiled with the module (the same heap of
    ``[key, stream, item, next]``)."""
    if len(streams) == 2:
        yield from _two_way(streams[0], streams[1])
        return
    heap: list[list[Any]] = []
    for order, stream in enumerate(streams):
        advance = stream.__next__
        try:
            item = advance()
        except StopIteration:
            continue
        heap.append([item[1], order, item, advance])
    heapq.heapify(heap)
    while len(heap) > 1:
        top = heap[0]
        yield top[2]
        try:
            item = top[3]()
        except StopIteration:
            heapq.heappop(heap)
            continue
        top[0] = item[1]
        top[2] = item
        heapq.heapreplace(heap, top)
    if heap:
        top = heap[0]
        yield top[2]
        yield from _rest(top[3])


def _two_way(first: Iterator[Item], second: Iterator[Item]) -> Iterator[Item]:
    """:func:`in_key_order` of two streams (``--jobs 2``): one comparison of the two next
    keys per item, no heap (~50 k items on the 2 M-packet capture, in the calling
    process); ties to ``first``. Each stream is advanced when, and only when, the heap
    would advance it: after its item was taken."""
    a_next = first.__next__
    b_next = second.__next__
    a = _head(a_next)
    b = _head(b_next)
    while a is not None and b is not None:
        if b[1] < a[1]:
            yield b
            b = _head(b_next)
        else:
            yield a
            a = _head(a_next)
    if a is not None:
        yield a
        yield from _rest(a_next)
    elif b is not None:
        yield b
        yield from _rest(b_next)


def _head(advance: Callable[[], Item]) -> Item | None:
    """The next item ``advance`` gives, or None at its stream's end (items are tuples)."""
    try:
        return advance()
    except StopIteration:
        return None


def _rest(advance: Callable[[], Item]) -> Iterator[Item]:
    """The items ``advance`` has left (the last stream of :func:`in_key_order`: no heap)."""
    while True:
        try:
            yield advance()
        except StopIteration:
            return


COMPRESSED_PARENT_SHARE = {"gzip": 0.3, "zstd": 0.5, "bzip2": 0.05, "xz": 0.05}
""":data:`PARENT_SHARE` for a compressed capture read through the rings: the calling
process decompresses it for everyone, so it takes fewer connections (never none: its slot
range must not be empty). Measured on 2m.pcap compressed (``gzip -1``, ``zstd -1``; in
process, ``--jobs 2``, three runs of each share in turn, calling process / worker CPU):
gzip at 0.55 the calling process the busier (2.12-2.34 s against 1.71-2.00 s), at 0.15
the worker (2.22-2.68 s against 1.83-2.10 s), balanced between 0.25 and 0.35; zstd (the
faster to decompress) balanced near 0.5. bzip2 and xz decompress slower than a worker
analyses (200k.pcap: 2.5 s of bzip2 for 0.25 s of analysis), so the calling process keeps
almost nothing (docs/benchmarks.md, "Twenty-fifth session")."""

def parent_share(path: str) -> float:
    """The calling process's weight for a ``--jobs`` run that reads ``path`` through the
    rings: :data:`PARENT_SHARE`, or :data:`COMPRESSED_PARENT_SHARE` by the file's first
    bytes."""
    try:
        with open(path, "rb") as f:
            codec = sniff_compression(f.read(SNIFF_BYTES))
    except OSError:
        return PARENT_SHARE  # the reader reports it
    return PARENT_SHARE if codec is None else COMPRESSED_PARENT_SHARE[codec]


def shard_ranges(jobs: int, share: float | None = None) -> list[tuple[int, int]]:
    """Slot range ``[lo, hi)`` of each of ``jobs`` workers (worker 0, the calling process,
    weighted by ``share``, by default :data:`PARENT_SHARE`): consecutive, covering every
    slot."""
    weights = [PARENT_SHARE if share is None else share] + [1.0] * (jobs - 1)
    total = sum(weights)
    bounds = [0]
    acc = 0.0
    for w in weights:
        acc += w
        bounds.append(round(SHARD_SLOTS * acc / total))
    bounds[-1] = SHARD_SLOTS
    return list(zip(bounds, bounds[1:], strict=False))


def can_split(source: Source) -> bool:
    """True when ``source`` can be read by several processes: a path to a regular file."""
    if not isinstance(source, str | Path) or str(source) == "-":
        return False
    try:
        return Path(source).is_file()
    except OSError:
        return False


def engine_for(options: Options, jobs: int, source: Source, *,
               encode_lines: bool = False) -> Engine | ParallelEngine:
    """The engine to analyse ``source`` with ``jobs`` processes: a :class:`ParallelEngine`
    when ``jobs`` > 1 and the source is a file several processes can read, else one
    :class:`Engine` (standard input, a file object and bytes are read once; so is a run
    keeping the packets of chosen flows, ``Options.packet_flows``: flow ids are only known
    after the merge)."""
    if jobs > 1 and can_split(source) and not options.packet_flows:
        return ParallelEngine(options, jobs, encode_lines=encode_lines)
    return Engine(options, encode=_encoder(encode_lines))


def _encoder(encode_lines: bool) -> Any:
    """``Engine``'s ``encode`` for a run that streams records as lines (else None)."""
    return EncodedResult.of_connection if encode_lines else None


def shard_items(engine: Engine, source: Source, name: str | None,
                strict: bool, rings: Any = None) -> Iterator[Item]:
    """Run ``engine`` (built with ``shard=``) over ``source``; yield its items in key order.

    The loop of :meth:`Engine.run`, plus the bookkeeping of the sort keys (see the module
    docstring): where each flow id was allocated, and each finished connection's place.
    With ``rings`` (the compiled engine's ``Rings``, a classic pcap file), the calling
    process (shard 0) fills the other workers' rings as it reads, and another worker reads
    its ring instead of the file; such a worker yields a watermark ``("w", key, shard)``
    when its ring has been empty for a while: none of its later items sorts before ``key``.
    """
    assert engine.shard is not None
    shard = engine.shard[0]
    table = engine.table
    tags = table.sweep_tags
    assert tags is not None
    diag = engine.diag
    on_segment = table.on_segment
    finished: list[Any] = []
    alloc: dict[int, tuple[int, int]] = {}
    """Local flow id -> (segment index, n) of its allocation, while the flow is live."""
    decoder = Decoder(diag, icmp=True, strict=strict, source=source_name(source, name))
    icmp = decoder.icmp_errors
    assert icmp is not None
    last_ts = -1

    def result(key: tuple[Any, ...], conn: Any) -> Item:
        alloc.pop(conn.flow_id, None)
        return ("r", key, shard, engine._result(conn), engine.detectors.shares,
                len(table.live))

    allocated = table.allocated
    assert allocated is not None
    # Old incarnations a held SYN's answer ended wait in the table's ``_deferred`` until
    # its next sweep, open or new incarnation, which hands them over before anything else:
    # so handing them over at once, after this segment's own work, is one table's order
    # (another worker's open would have been that next step).
    deferred = table._deferred
    # With the compiled engine its pcap loop routes the segments itself (Engine.run), drops
    # those of other workers' connections before building them (after the clock and the
    # sweep saw them) and yields None only when this loop has work: finished connections,
    # allocated flow ids, deferred incarnations, ICMP errors. ``router.frame`` is then the
    # segment's frame. Other readers yield every segment.
    router = engine.router(finished, icmp)
    segments: Iterator[Any]
    wait = None
    if rings is not None and shard:
        compiled = implementation.compiled
        assert compiled is not None and router is not None
        segments = rings.segments(shard, compiled.Decoder(decoder), router)
        wait = compiled.RING_WAIT
    else:
        if rings is not None:
            router.rings = rings
        segments = route_segments(source, diag, decoder, router, strict=strict, name=name)
    i = 0
    for seg in segments:
        if wait is not None and seg is wait:
            # Everything up to the last routed segment is done: later items sort after
            # (that frame, 0), which sorts before every key of that frame.
            yield ("w", (router.frame, 0), shard)
            continue
        if icmp:
            engine._icmp(icmp)
        if seg is not None:
            ts_ns = seg.ts_ns
            if ts_ns > last_ts:
                last_ts = ts_ns
            on_segment(seg, finished)
            i = seg.frame  # frame numbers increase, the same in every worker
        elif router is not None:
            i = router.frame
        if not (finished or allocated or deferred):
            continue
        if deferred:
            table._hand_over(finished)
        # The sweep's connections (first in ``finished``, tagged) come before the
        # segment's own work: its new flow ids, then what it ended.
        n_tags = len(tags)
        if n_tags:
            for k in range(n_tags):
                tag = tags[k]
                if tag[0] == 0:
                    key: tuple[Any, ...] = (i, 0, alloc[tag[1]])
                elif tag[0] == 1:
                    key = (i, 1, tag[1], alloc[tag[2]])
                else:
                    key = (i, 2, tag[1])
                yield result(key, finished[k])
            tags.clear()
        if allocated:
            live = len(table.live)
            for j, fid in enumerate(allocated):
                alloc[fid] = (i, j)
                yield ("a", (i, 3, -1, j), shard, fid, live)
            allocated.clear()
        if finished:
            for k in range(n_tags, len(finished)):
                yield result((i, 3, k), finished[k])
            finished.clear()
    if icmp:
        engine._icmp(icmp)
    if router is not None and router.last_ts > last_ts:
        last_ts = router.last_ts
    end_ns = max(last_ts, diag.last_ts_ns or 0)
    if rings is not None:
        if shard:  # the calling process read every frame's time
            end_ns = rings.end_ns
            diag.last_ts_ns = rings.last_ts_ns
        else:
            rings.end(end_ns, diag.last_ts_ns)
    engine._finished = True
    engine.end_ns = end_ns
    for conn in table.drain(end_ns):
        phase = 0 if conn.end_reason == "new_incarnation" else 1
        yield result((END, phase, alloc.get(conn.flow_id, (END, 0))), conn)
    engine.close_summary()
    yield ("e", (END + 1,), shard, diag, engine.summary, table.evicted_half_open, end_ns,
           resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class _Sender:
    """Sends a worker's batches from a thread, up to :data:`SEND_AHEAD_BATCHES` behind.

    Why: the parent merges in capture order and reads a worker's pipe only when it needs
    that worker's next item, so a worker that is ahead would block on the full pipe (64 KiB,
    less than one batch) until the parent caught up: the two processes would take turns
    instead of running together. The thread blocks on the pipe instead (the write releases
    the GIL) while the worker analyses on. Batches are queued already pickled, with their
    records' JSON lines beside them (:func:`_write_message`): the thread holds the GIL only
    to hand the bytes to the pipe. A failed send (the parent is gone) is kept and raised in
    the worker at its next batch; the thread then drops what is queued, so the worker never
    waits on a full queue."""

    _DONE = object()

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.queue: queue.Queue[object] = queue.Queue(maxsize=SEND_AHEAD_BATCHES)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="jobs-sender", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        fd = self.pipe.fileno()
        while True:
            message = self.queue.get()
            if message is self._DONE:
                return
            if self.error is None:
                try:
                    _write_message(fd, *message)  # type: ignore[misc]
                except BaseException as exc:  # noqa: BLE001 - raised in the worker
                    self.error = exc

    def send(self, message: object, lines: list[bytes] | None = None) -> None:
        """Queue ``message`` (pickled now) and ``lines`` (sent as they are, after it)."""
        if self.error is not None:
            raise self.error
        self.queue.put((pickle.dumps(message, pickle.HIGHEST_PROTOCOL), lines or []))

    def close(self) -> None:
        """Wait until everything queued was sent (or dropped after a failed send)."""
        self.queue.put(self._DONE)
        self.thread.join()


def _lines_apart(batch: list[Item]) -> list[bytes]:
    """Take the JSON lines out of ``batch``'s results (``EncodedResult.line`` becomes
    empty, the line goes into the returned list, in the batch's order): they travel beside
    the pickled batch, not in it (:func:`_write_message`)."""
    lines: list[bytes] = []
    for item in batch:
        if item[0] == "r":
            res = item[3]
            if isinstance(res, EncodedResult) and res.line:
                lines.append(res.line)  # type: ignore[arg-type]
                res.line = b""  # not a line (every line holds "{...}\n")
    return lines


def _lines_back(batch: list[Item], sizes: list[int], blob: bytearray) -> None:
    """Undo :func:`_lines_apart` in the calling process: each result's line, in order, is
    its size's span of ``blob`` (a view, copied once when its flow id is spliced in)."""
    if not sizes:
        return
    view = memoryview(blob)
    start = 0
    k = 0
    for item in batch:
        if item[0] == "r":
            res = item[3]
            if isinstance(res, EncodedResult) and not res.line:
                end = start + sizes[k]
                res.line = view[start:end]
                start = end
                k += 1


MESSAGE_HEAD = struct.Struct("<QQ")
"""A message from a worker: the sizes of its pickled part and of its lines, then both."""


def _write_message(fd: int, pickled: bytes, lines: list[bytes]) -> None:
    """Write one message to a worker's pipe: :data:`MESSAGE_HEAD`, ``pickled`` (the batch
    and its lines' sizes), then the lines as they are (``os.writev``: no copy here).

    Why not the lines inside the pickle: each ~5 KB line was copied into pickle's growing
    buffer (and again as it grew), then out of the message by the parent's unpickling: on
    2m.pcap ~86 MB of lines a worker hands over, ~0.1 s of the two processes' time."""
    parts: list[Any] = [MESSAGE_HEAD.pack(len(pickled), sum(map(len, lines))), pickled]
    parts.extend(lines)
    write_all(fd, parts)


def _worker(path: str, options: Options, shard: tuple[int, int, int], strict: bool,
            name: str | None, pipe: Pipe, encode_lines: bool = False,
            rings: Any = None) -> None:
    """A worker process: its shard's items to ``pipe`` in batches (a watermark sends the
    batch at once: the calling process may be waiting for it); an exception as
    ``("x", exc)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does
    # A forked child inherits the parent's unflushed standard streams: never flush them.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    from tcptrace_py.gcpolicy import collector_paused

    sender = _Sender(pipe)
    batch: list[Item] = []
    try:
        try:
            with collector_paused():
                engine = Engine(options, shard=shard, encode=_encoder(encode_lines))
                for item in shard_items(engine, path, name, strict, rings):
                    batch.append(item)
                    if len(batch) >= BATCH_ITEMS or item[0] == "w":
                        _send_batch(sender, batch)
                        batch = []
            _send_batch(sender, batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
            try:
                pickle.dumps(exc)
            except Exception:  # noqa: BLE001 - unpicklable: say what it was
                exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            if sender.error is None:
                sender.send(("x", exc))
    finally:
        sender.close()
        pipe.close()


def _send_batch(sender: _Sender, batch: list[Item]) -> None:
    lines = _lines_apart(batch)
    sender.send((batch, [len(line) for line in lines]), lines)


class _WorkerStream:
    """A worker process's items, as its batches arrive (:meth:`items`).

    While the next batch has not arrived, ``idle`` runs the calling process's own shard
    ahead (:class:`_RunAhead`) instead of waiting. With rings (``Rings``) the worker needs
    the calling process to read on, so two more rules keep the two from waiting on each
    other: while a ring is full the calling process reads the workers' batches into
    :attr:`pending` (:meth:`take`, from :func:`_ring_waiter`), and after a worker's
    watermark (its ring ran dry) it runs ahead past :data:`RUN_AHEAD_ITEMS`, since the
    worker can say nothing more until the calling process has read further."""

    def __init__(self, pipe: Pipe, idle: _RunAhead | None = None) -> None:
        self.pipe = pipe
        self.idle = idle
        self.inbox = Inbox()
        self.pending: deque[list[Item]] = deque()
        self.arrived = _readiness(pipe)
        self.done = False
        """The worker's last batch (its ``"e"`` item) was read."""
        self.starved = False
        """The latest batch ended with a watermark."""

    def take(self) -> None:
        """Read the worker's next batch into :attr:`pending` (waits until it is whole)."""
        fd = self.pipe.fileno()
        try:
            with _recv_message(fd, self.inbox) as message:
                unpickled = pickle.loads(message)
            if unpickled[0] == "x":  # ("x", exc): the worker failed
                raise unpickled[1]
            batch, sizes = unpickled
            blob = self.inbox.lines(fd)
        except EOFError:
            raise RuntimeError("a --jobs worker process died") from None
        _lines_back(batch, sizes, blob)
        if batch and batch[-1][0] == "e":
            self.done = True
        self.pending.append(batch)

    def items(self) -> Iterator[Item]:
        idle = self.idle
        try:
            while True:
                if not self.pending:
                    if idle is not None:
                        force = self.starved
                        while not self.pending and not self.arrived() and idle.step(force):
                            pass
                    if not self.pending:
                        self.take()
                batch = self.pending.popleft()
                self.starved = bool(batch) and batch[-1][0] == "w"
                yield from batch
                if batch and batch[-1][0] == "e":
                    return
        finally:
            self.pipe.close()


class _WorkerLost(Exception):
    """A worker's failure (its exception, or its death) noticed while the calling process
    waited for room in its ring, that is, inside the capture reader: carried out of the
    reader as itself (the reader takes an OSError, EOFError or ValueError for damage of a
    compressed capture), then raised as the worker's (:meth:`ParallelEngine.run`)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _ring_waiter(streams: list[_WorkerStream]) -> Callable[[], None]:
    """What the calling process does while a worker's ring is full (``Rings.waiter``): read
    the batches the workers have sent (a worker blocked on its pipe would never empty its
    ring), else wait up to 1 ms for one."""
    poller = select.poll() if hasattr(select, "poll") else None
    if poller is not None:
        for stream in streams:
            poller.register(stream.pipe.fileno(), select.POLLIN)

    registered = {id(stream) for stream in streams}

    def wait() -> None:
        got = False
        for stream in streams:
            if stream.done:
                if poller is not None and id(stream) in registered:
                    registered.discard(id(stream))
                    poller.unregister(stream.pipe.fileno())
            elif stream.arrived():
                try:
                    stream.take()
                except Exception as exc:  # noqa: BLE001 - re-raised by ParallelEngine.run
                    raise _WorkerLost(exc) from None
                got = True
        if not got:
            if poller is not None:
                poller.poll(1)
            else:
                select.select([s.pipe.fileno() for s in streams if not s.done], [], [], 0.001)

    return wait


class Inbox:
    """One worker's receive buffer, kept for all its batches.

    Why: a new ``bytearray`` per batch (~1.3 MB on 2m.pcap) was zero-filled before the
    read filled it: ~75 MB of ``memset`` in the calling process for the batches of one
    worker (0.8 % of its instructions on 200k.pcap). The buffer grows to the largest batch
    and is read into again; the unpickled items copy what they keep. A batch's lines (see
    :func:`_write_message`) are read into a buffer of their own (:meth:`lines`), which the
    results' lines are views of until their flow ids are spliced in.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.lines_size = 0
        """The size of the lines after the pickled part :func:`_recv_message` returned."""

    def read(self, fd: int, size: int) -> memoryview:
        """``size`` bytes from ``fd`` (EOFError at the end of the pipe), as a view of the
        buffer that the next read overwrites: release it first (``with``)."""
        if len(self.buf) < size:
            self.buf = bytearray(size)
        view = memoryview(self.buf)[:size]
        _read_into(fd, view)
        return view

    def lines(self, fd: int) -> bytearray:
        """The lines that follow the message :func:`_recv_message` returned, in a new
        buffer (empty when there are none)."""
        blob = bytearray(self.lines_size)
        if self.lines_size:
            with memoryview(blob) as view:
                _read_into(fd, view)
        return blob


def _read_into(fd: int, view: memoryview) -> None:
    """Fill ``view`` from ``fd`` (EOFError at the end of the pipe; ``view`` released)."""
    size = len(view)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            view.release()
            raise EOFError
        got += n


def _recv_message(fd: int, inbox: Inbox) -> memoryview:
    """The pickled part of one message :func:`_write_message` wrote, read into ``inbox``'s
    buffer; the size of the lines behind it in ``inbox.lines_size`` (read them with
    :meth:`Inbox.lines` before the next message).

    Why not ``Connection.recv_bytes``: it asks ``os.read`` for the whole remainder on every
    read, so each pipe-sized piece of a ~1.3 MB batch allocated (and the kernel zeroed)
    a buffer of the remainder's size, then copied the piece into a ``BytesIO`` and the
    whole into new bytes: on 2m.pcap ~0.2 G instructions and as many page faults in the
    calling process. Here the batch is read in place, once, into a buffer kept for the
    next one (:class:`Inbox`)."""
    with inbox.read(fd, MESSAGE_HEAD.size) as head:
        size, inbox.lines_size = MESSAGE_HEAD.unpack(head)
    return inbox.read(fd, size)


def _widen(pipe: Pipe) -> None:
    """Give a worker's pipe a 1 MiB buffer where Linux allows (``F_SETPIPE_SZ``; the
    default 64 KiB is a twentieth of a batch, so each batch took ~20 wake-ups of the two
    processes). Elsewhere, or when refused, the default stays."""
    try:
        import fcntl
    except ImportError:
        return
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is None:
        return
    try:
        fcntl.fcntl(pipe.fileno(), setsize, PIPE_BYTES)
    except OSError:
        pass


def _readiness(pipe: Pipe) -> Callable[[], bool]:
    """Whether ``pipe`` has a batch (or its end) to read, without waiting.

    Why not ``pipe.poll()``: it builds a selector on each call (~18 us), and the run-ahead
    loop asks once per item it computes ahead (~9 k times on the 2 M-packet capture). A
    ``select.poll`` object registered once answers in ~1 us. A pipe's connection buffers
    nothing itself, so its descriptor being readable is what ``poll()`` reports."""
    if not hasattr(select, "poll"):
        return pipe.poll
    poller = select.poll()
    poller.register(pipe.fileno(), select.POLLIN)
    check = poller.poll
    return lambda: bool(check(0))


class _RunAhead:
    """The calling process's own items, which it can compute ahead of the merge.

    Why: the merge needs the items of every worker in capture order. When the calling
    process (worker 0) has got further through the capture than another worker, the
    merge waits for that worker's next batch; with nothing else to do, the calling process
    would idle while the worker catches up, then the worker would idle while the calling
    process catches up with its backlog (each took ~0.7 s of 5.4 s on the 2 M-packet
    capture). Instead, while a worker's batch is pending, the calling process analyses
    its own connections on and keeps their items here, up to :data:`RUN_AHEAD_ITEMS`.
    The merge takes them in the same order, so the output is unchanged."""

    def __init__(self, items: Iterator[Item]) -> None:
        self.items = items
        self.ahead: deque[Item] = deque()
        self.done = False

    def __iter__(self) -> _RunAhead:
        return self

    def __next__(self) -> Item:
        if self.ahead:
            return self.ahead.popleft()
        return next(self.items)

    def step(self, force: bool = False) -> bool:
        """Compute one more item ahead; False when full (unless ``force``) or finished
        (then wait)."""
        if self.done or (len(self.ahead) >= RUN_AHEAD_ITEMS and not force):
            return False
        try:
            self.ahead.append(next(self.items))
        except StopIteration:
            self.done = True
            return False
        return True


RING_BYTES = 2 << 20
"""Each other worker's ring (``Rings``): ~17 k of its segments' headers (~120 bytes each)
or ticks, about a millisecond of the calling process's reading ahead of the worker; a power
of two holding four of the largest frames (the smallest such). Its pages count in the
resident set of both processes. 2, 4 and 8 MiB ran alike on 2m.pcap (``--jobs 2``, six
runs each in turn: wall median 1.75, 1.76 and 1.84 s)."""


def _rings(path: str, name: str | None, ranges: list[tuple[int, int]]) -> Any:
    """The compiled engine's rings for the workers after the first (see ``Rings``) when
    the calling process reads ``path`` with the compiled pcap loop (a classic pcap file,
    compressed or not); else None, and every worker reads the file itself. Call before
    forking: the mapping is shared with the children."""
    compiled = implementation.compiled
    if compiled is None or len(ranges) > 256 or capture_format(path, name) != "pcap":
        return None  # (a slot's owner is a byte in the rings: 256 workers at most)
    import mmap

    count = len(ranges) - 1
    owners = [0] * SHARD_SLOTS
    for k, (lo, hi) in enumerate(ranges):
        owners[lo:hi] = [k] * (hi - lo)
    mapping = mmap.mmap(-1, compiled.Rings.mapping_bytes(count, RING_BYTES))
    return compiled.Rings(mapping, count, RING_BYTES, owners)


def start_method() -> str:
    """fork while this process runs no other thread (cheapest: the analysis stack is already
    imported), else forkserver (forking a threaded process is unsafe)."""
    methods = mp.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


class ParallelEngine:
    """:class:`Engine`'s interface (:meth:`run`, :attr:`summary`, :attr:`diag`) over
    ``jobs`` workers; the results are those of one engine (see the module docstring)."""

    def __init__(self, options: Options | None = None, jobs: int = 2,
                 diag: Diagnostics | None = None, *, encode_lines: bool = False) -> None:
        if jobs < 2:
            raise ValueError("ParallelEngine needs jobs >= 2 (use Engine)")
        if options is not None and options.packet_flows:
            raise ValueError("packet_flows names flow ids, known only after the merge: "
                             "use Engine")
        self.options = options or Options()
        self.jobs = jobs
        self.encode_lines = encode_lines
        """Yield :class:`EncodedResult` objects (records as JSON lines), not ``FlowResult``."""
        self.diag = diag or Diagnostics()
        self.summary = CaptureSummary(self.diag)
        self.detectors = DetectorSet(self.options, self.diag)
        self._finished = False
        self.worker_peak_rss_kib: list[int] = []
        """Peak resident set of each worker process (KiB, ``getrusage``), after :meth:`run`
        (worker 0 is the calling process: its peak so far)."""

    def finish(self, end_ns: int | None = None, *,
               name: str | None = None) -> Iterator[FlowResult]:
        """Nothing: :meth:`run` finishes the capture (an interrupted run keeps what it had
        handed over; the workers are stopped)."""
        return iter(())

    def run(self, source: Source, *, name: str | None = None,
            strict: bool = False) -> Iterator[FlowResult]:
        """Yield each connection's result in the order and with the flow ids of
        :meth:`Engine.run`; capture-wide ones in :attr:`summary` at the end."""
        if not can_split(source):
            raise ValueError("ParallelEngine reads a capture file by path")
        path = str(source)
        method = start_method()
        ctx: Any = mp.get_context(method)
        sys.stdout.flush()
        sys.stderr.flush()
        procs = []
        pipes: list[Pipe] = []
        streams: list[Iterator[Item]]
        ranges = shard_ranges(self.jobs)
        rings = None
        if method == "fork":
            ring_ranges = shard_ranges(self.jobs, parent_share(path))
            rings = _rings(path, name, ring_ranges)
            if rings is not None:
                ranges = ring_ranges
        try:
            for k in range(1, self.jobs):
                recv, send = ctx.Pipe(duplex=False)
                _widen(recv)
                proc = ctx.Process(target=_worker, args=(path, self.options, (k, *ranges[k]),
                                                         strict, name, send, self.encode_lines,
                                                         rings),
                                   daemon=True)
                proc.start()
                send.close()
                procs.append(proc)
                pipes.append(recv)
            local = Engine(self.options, self.diag, shard=(0, *ranges[0]),
                           encode=_encoder(self.encode_lines))
            own = _RunAhead(shard_items(local, path, name, strict, rings))
            workers = [_WorkerStream(pipe, own) for pipe in pipes]
            if rings is not None:
                rings.waiter = _ring_waiter(workers)
            streams = [own] + [worker.items() for worker in workers]
            try:
                yield from self._merge(streams, name)
            except _WorkerLost as lost:
                raise lost.error from None
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
                proc.join()

    def _merge(self, streams: list[Iterator[Item]], name: str | None) -> Iterator[FlowResult]:
        gids: list[dict[int, int]] = [{} for _ in range(self.jobs)]
        """Per worker: local flow id -> flow id, from allocation to result (a dict per
        worker: no key tuple to make and hash per item)."""
        ended: list[dict[int, int]] = [{} for _ in range(self.jobs)]
        """The same for incarnations a new SYN ended (a ``time_wait_reuse`` of the next
        incarnation names them as ``previous_flow_id``)."""
        next_id = 0
        live = [0] * self.jobs
        peak = 0
        total = CaptureSummary(self.diag)
        evicted_half_open = 0
        end_ns = 0
        fold = self.detectors.fold
        for item in in_key_order(streams):
            kind = item[0]
            shard = item[2]
            if kind == "w":
                continue  # a watermark: nothing to hand over
            if kind == "a":
                gids[shard][item[3]] = next_id
                next_id += 1
                live[shard] = item[4]
                now = sum(live)
                if now > peak:
                    peak = now
            elif kind == "r":
                res: FlowResult | EncodedResult = item[3]
                live[shard] = item[5]
                encoded = isinstance(res, EncodedResult)
                if encoded:
                    local, end_reason = res.flow_id, res.end_reason  # type: ignore[union-attr]
                else:
                    local, end_reason = res.record["flow_id"], res.record.get("end_reason")
                flow_id = gids[shard].pop(local)
                if end_reason == "new_incarnation":
                    ended[shard][local] = flow_id
                shares = item[4]
                if shares:  # (fold keeps every finding of a connection without shares)
                    kept = fold(shares, res.anomalies)
                    if kept is not res.anomalies:
                        res.anomalies = kept
                        codes = sorted({a.code for a in kept})
                        if encoded:
                            res.set_anomaly_codes(codes)  # type: ignore[union-attr]
                        else:
                            res.record["anomalies"] = codes
                if encoded and not res.anomalies:  # _renumber's common case, inlined
                    res.set_flow_id(flow_id)  # type: ignore[union-attr]
                else:
                    _renumber(res, local, flow_id, ended[shard])
                yield res  # type: ignore[misc]  # an EncodedResult when encode_lines
            else:
                diag: Diagnostics = item[3]
                summary: CaptureSummary = item[4]
                self.worker_peak_rss_kib.append(item[7])
                if shard:
                    for note in ENGINE_NOTES:
                        if diag.notes.get(note):
                            self.diag.notes[note] += diag.notes[note]
                else:
                    end_ns = item[6]
                total.connections += summary.connections
                total.tracking_capped += summary.tracking_capped
                total.tracking_dropped += summary.tracking_dropped
                total.evicted_table_full += summary.evicted_table_full
                evicted_half_open += item[5]
        total.peak_live_connections = peak
        self.summary.connections = total.connections
        self.summary.tracking_capped = total.tracking_capped
        self.summary.tracking_dropped = total.tracking_dropped
        self.summary.evicted_table_full = total.evicted_table_full
        self.summary.peak_live_connections = peak
        capture_warnings(self.diag, self.options, self.summary, evicted_half_open, name)
        if total.evicted_table_full:
            self.diag.warn(name or "capture",
                           f"with --jobs {self.jobs} each worker evicts among its own "
                           "connections when the table is full: which connections were "
                           "emitted early may differ from --jobs 1", code="jobs_table_full")
        self.summary.anomalies = self.detectors.on_end(end_ns, self.diag)
        self._finished = True


def _renumber(res: FlowResult | EncodedResult, local: int, flow_id: int,
              ended: dict[int, int]) -> None:
    """Give a worker's result (local flow id ``local``) the flow id of one engine (records,
    anomalies, events, packet rows; a ``time_wait_reuse``'s ``previous_flow_id``, looked up
    in ``ended``: that worker's ended incarnations, local id -> flow id)."""
    if isinstance(res, EncodedResult):
        res.set_flow_id(flow_id)
    else:
        res.record["flow_id"] = flow_id
    set_attr = object.__setattr__  # Event and Anomaly are frozen: rewritten in place
    for a in res.anomalies:
        if a.flow_id == local:
            set_attr(a, "flow_id", flow_id)
        prev = a.details.get("previous_flow_id") if a.code == "time_wait_reuse" else None
        if prev is not None:
            a.details["previous_flow_id"] = ended.pop(prev, prev)
    for e in res.events:
        set_attr(e, "flow_id", flow_id)
    if res.packets:
        assert not isinstance(res, EncodedResult)
        res.packets = [(r[0], r[1], flow_id, *r[3:]) for r in res.packets]
