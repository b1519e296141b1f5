"""Finished connections as the JSON lines a jsonl stream writes (``EncodedResult``).

Why a module of its own: the command line streams JSON lines with one process as with
``--jobs`` workers (tcptrace_py/parallel.py, which loads multiprocessing), and the engine
hands such results over when asked (``Engine(encode=EncodedResult.of_connection)``): the
compiled engine then writes each line from the connection's fields without building the
record dict (``export.flow_line``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tcptrace_py.events import Anomaly, Event
from tcptrace_py.export import flow_line, held_line
from tcptrace_py.implementation import compiled as _compiled

if TYPE_CHECKING:
    from tcptrace_py.connection import Connection
    from tcptrace_py.engine import FlowResult, PacketRow

_LINE_HEAD = b'{"flow_id":'
"""How a record's JSON line begins (``export.dumps_line`` keeps the record's key order)."""


def spliced_flow_id(line: bytes | memoryview, old: int, new: int) -> bytes | None:
    """``line`` with its leading flow id ``old`` written as ``new``, or None when the line
    does not begin ``{"flow_id":OLD`` followed by ``,`` or ``}`` (the layout
    ``export.dumps_line`` writes). What a ``--jobs`` merge does to every record it renumbers
    (a worker's line arrives as a view of the batch it came in: ``parallel._lines_back``):
    the compiled engine's twin (``_engine.spliced_flow_id``) copies the line once."""
    old_text = b"%d" % old
    end = len(_LINE_HEAD) + len(old_text)
    view = memoryview(line)
    if bytes(view[:end + 1]) in (_LINE_HEAD + old_text + b",", _LINE_HEAD + old_text + b"}"):
        return b"".join((_LINE_HEAD, b"%d" % new, view[end:]))
    return None


reference_spliced_flow_id = spliced_flow_id
"""The reference, kept under its own name for the twin test (tests/test_jobs.py)."""
if _compiled is not None:
    spliced_flow_id = _compiled.spliced_flow_id  # noqa: F811


class EncodedResult:
    """A finished connection whose record travels as the JSON line a jsonl sink writes
    (``export.dumps_line``: UTF-8 bytes with the newline), encoded in the process that
    analysed the connection.

    Why: the calling process unpickled every other worker's record (a dict of ~200 columns)
    only to encode it again for the output: ~25 us a connection, its largest cost beyond
    its own shard (2m.pcap, eighth session). Encoding where the record is made moves that
    work to the worker and sends bytes that unpickle in a copy. The line is then patched,
    never rebuilt: the merged flow id is spliced in, and the rare connection whose findings
    a capture-wide detector changed is decoded and encoded again, which gives the same text
    (JSON decoding and encoding keep every value the line holds). Bytes, not a string:
    orjson writes bytes, and a string was decoded in the worker, encoded by pickle, decoded
    again by the parent's unpickling and encoded once more for the output, four passes over
    each ~5 KB line (37 M of the 3,068 M instructions of 200k.pcap with ``--jobs 2``,
    both processes, thirteenth session).

    The command line asks for it (``Engine(encode=EncodedResult.of_connection)``, or
    ``ParallelEngine(encode_lines=True)``) when it streams JSON lines of every connection;
    :attr:`record` decodes the line for any other reader. Made by :meth:`of_connection`,
    the line is ``export.flow_line``'s, which the compiled engine writes from the
    connection's fields without building the record dict (~45 % less work per record:
    fourteenth session, docs/benchmarks.md).

    It carries the record and the findings (the stream's lines and its anomaly summary),
    not the connection's event log nor packet rows, which that stream never writes (packet
    rows are only kept for chosen flows, which a ``--jobs`` run does not serve). The
    ``analyze`` command keeps no events (``keep_events=False``), so this only states what
    the stream needs; with events kept (an API caller's ``Options``), pickling them was
    most of the transport: 200k.pcap's results pickled in 71 ms and unpickled in 111 ms
    with their events, 27 and 15 ms without (twelfth session).
    """

    __slots__ = ("line", "flow_id", "end_reason", "codes", "anomalies")

    events: tuple[Event, ...] = ()
    """Never carried (see above): empty."""
    packets: list[PacketRow] | None = None
    """Never carried (see above): None."""

    def __init__(self, line: bytes | memoryview, flow_id: int, end_reason: str | None,
                 codes: list[str], anomalies: list[Anomaly]) -> None:
        self.line = line
        """The JSON line (bytes; in a ``--jobs`` merge, a worker's line is a view of its
        batch until :meth:`set_flow_id` gives it its merged flow id)."""
        self.flow_id = flow_id
        self.end_reason = end_reason
        self.codes = codes
        """The record's ``anomalies`` column (the codes of :attr:`anomalies`)."""
        self.anomalies = anomalies

    @classmethod
    def of_connection(cls, conn: Connection, codes: list[str],
                      anomalies: list[Anomaly]) -> EncodedResult:
        """The result of a finished connection whose findings are ``anomalies`` (their
        codes, sorted: ``codes``), its line written by ``export.flow_line`` (in C by the
        compiled engine): what ``Engine(encode=...)`` hands over."""
        make = _make if cls is EncodedResult and _make is not None else cls
        return make(flow_line(conn, codes), conn.flow_id, conn.end_reason, codes, anomalies)

    @classmethod
    def of(cls, res: FlowResult) -> EncodedResult:
        rec = res.record
        return cls(held_line(rec), rec["flow_id"], rec.get("end_reason"), rec["anomalies"],
                   res.anomalies)

    def __reduce__(self) -> tuple[Any, ...]:
        return (EncodedResult, (self.line, self.flow_id, self.end_reason, self.codes,
                                self.anomalies))

    @property
    def record(self) -> dict[str, Any]:
        """The record, decoded from the line (a new dict at each access)."""
        line = self.line
        return json.loads(line if isinstance(line, bytes)  # type: ignore[no-any-return]
                          else bytes(line))

    def set_flow_id(self, flow_id: int) -> None:
        line = spliced_flow_id(self.line, self.flow_id, flow_id)
        if line is None:  # not the layout dumps_line writes: rebuild it
            rec = self.record
            rec["flow_id"] = flow_id
            line = held_line(rec)
        self.line = line
        self.flow_id = flow_id

    def set_anomaly_codes(self, codes: list[str]) -> None:
        if codes == self.codes:
            return  # the line already says so (the common case: nothing was dropped)
        rec = self.record
        rec["anomalies"] = codes
        self.line = held_line(rec)
        self.codes = codes


_make: Callable[..., EncodedResult] | None = None
"""``EncodedResult(...)`` with the compiled engine: its slots written directly
(``_engine.SlotsFactory``; ``__init__`` only stores its arguments). A Python ``__init__``
call was ~2.4 k instructions, once per connection of a jsonl stream."""
if _compiled is not None:
    _make = _compiled.SlotsFactory(EncodedResult, EncodedResult.__slots__, ())
