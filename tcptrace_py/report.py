"""Report: a finished connection -> its flat record (the public JSON/DataFrame row).

The record is a plain dict of JSON-serialisable values with stable column names: identity
and lifecycle columns first (see :data:`LIFECYCLE_COLUMNS`), then the sequence-analysis
columns (``client_``/``server_`` prefixed, units in names) and the anomaly codes.
"""

from __future__ import annotations

from typing import Any

from tcptrace_py.connection import Connection
from tcptrace_py.facts import FACT_COLUMNS
from tcptrace_py.fsm import TcpState
from tcptrace_py.segment import TS_NS_MAX, TS_NS_MIN, addr_text, ts_or_none

_NS = 1_000_000_000

OPEN_VALUES = ("three_way_handshake", "simultaneous_open", "midstream", "not_established")
CLOSE_VALUES = ("graceful", "rst_by_client", "rst_by_server", "refused", "unanswered",
                "half_closed_at_capture_end", "open_at_capture_end")

# Column name -> kind, for sinks that need explicit types ("int", "int?", "float", "float?",
# "str", "category", "bool", "ts", "list").
LIFECYCLE_COLUMNS: dict[str, str] = {
    "flow_id": "int",
    "client_ip": "str",
    "client_port": "int",
    "server_ip": "str",
    "server_port": "int",
    "ip_version": "int",
    "roles_inferred": "bool",
    "incarnation": "int",
    "first_frame": "int",
    "last_frame": "int",
    "start_ts": "ts",
    "end_ts": "ts",
    "start_ts_ns": "int?",
    "end_ts_ns": "int?",
    "duration_s": "float",
    "open": "category",
    "close": "category",
    "client_state": "category",
    "server_state": "category",
    "conn_state": "category",
    "history": "str",
    "completeness": "int",
    "end_reason": "category",
    "syn_frame": "int?",
    "synack_frame": "int?",
    "handshake_ack_frame": "int?",
    "handshake_s": "float?",
    "handshake_inferred": "bool",
    "handshake_seen": "str",
    "client_fin_frame": "int?",
    "server_fin_frame": "int?",
    "rst_frame": "int?",
    "client_packets": "int",
    "server_packets": "int",
    "client_payload_bytes": "int",
    "server_payload_bytes": "int",
    "client_duplicate_frames": "int",
    "server_duplicate_frames": "int",
    "client_syn_count": "int",
    "server_syn_count": "int",
    "server_synack_count": "int",
    "client_rst_count": "int",
    "server_rst_count": "int",
    "events_dropped": "int",
    **FACT_COLUMNS,
}


def classify_open(conn: Connection) -> str:
    """How the connection opened, from what the capture shows."""
    if conn.pure_syn_sent[0] and (conn.pure_syn_sent[1] or conn.self_connect):
        return "simultaneous_open"
    if conn.handshake_done_frame >= 0 or handshake_answered(conn):
        return "three_way_handshake"
    if conn.pure_syn_sent[0] or conn.pure_syn_sent[1] or conn.synack_sent[0] or \
            conn.synack_sent[1]:
        return "not_established"
    return "midstream"


def handshake_answered(conn: Connection) -> bool:
    """The handshake completed though the capture lacks part of it: the client sent an ACK
    after its SYN (only a SYN-ACK makes a SYN_SENT client do that: RFC 9293 3.10.7.3), or,
    with the client's side missing from the capture, the server sent ACK or data after its
    SYN-ACK (it did so in ESTABLISHED, after the client's ACK)."""
    if conn.pure_syn_sent[0] and conn.answered_frame[0] >= 0:
        return True
    return bool(conn.synack_sent[1]) and conn.answered_frame[1] >= 0 and not conn.packets[0]


def handshake_seen(conn: Connection) -> str:
    """Which segments of the three-way handshake the capture holds: three marks, the client's
    SYN (``S``), the server's SYN-ACK (``S``) and the client's handshake ACK (``A``), each
    ``.`` when not captured: ``SSA`` all seen, ``.SA`` the capture began at the SYN-ACK,
    ``S.A`` the SYN-ACK was missed, ``...`` a connection picked up mid-stream. (``.``, not
    ``-``: a CSV cell starting with ``-`` would be escaped as a formula, export.py.)"""
    syn = "S" if conn.pure_syn_sent[0] else "."
    synack = "S" if conn.synack_sent[1] else "."
    # Without the SYN-ACK, the client's ACK after its SYN (only a SYN-ACK makes a SYN_SENT
    # client send one). Not in a simultaneous open, where the client may be ESTABLISHED
    # before its first ACK (whose frame the fast path does not record).
    ack = "A" if conn.handshake_done_frame >= 0 or (
        conn.pure_syn_sent[0] and not conn.pure_syn_sent[1]
        and conn.answered_frame[0] >= 0) else "."
    return syn + synack + ack


def classify_close(conn: Connection, open_kind: str) -> str:
    """How the connection ended (or stood at capture end)."""
    c_fin = conn.fin_frame[0] >= 0
    s_fin = conn.fin_frame[1] >= 0
    if conn.self_connect:
        s_fin = c_fin  # one socket: its FIN is sent and received by the same endpoint
    rst_sender = conn.first_rst_sender
    rst_frame = conn.first_rst_frame
    if open_kind == "not_established" and not conn.synack_sent[1] and not conn.packets[1] \
            and not rst_sender and not c_fin:
        return "unanswered"
    if rst_sender == "server" and not conn.synack_sent[1] and conn.pure_syn_sent[0] \
            and open_kind == "not_established":
        return "refused"
    if rst_sender:
        # A RST after both FINs is a footnote to a graceful close, not how it ended.
        fins_before_rst = (c_fin and conn.fin_frame[0] < rst_frame
                           and s_fin and conn.fin_frame[1] < rst_frame)
        if not fins_before_rst:
            return "rst_by_client" if rst_sender == "client" else "rst_by_server"
    if c_fin and s_fin:
        return "graceful"
    if c_fin or s_fin:
        return "half_closed_at_capture_end"
    return "open_at_capture_end"


def state_name(state: TcpState) -> str:
    return state.value


ADDR_TEXT_CACHE_MAX = 4096
"""Address texts :func:`cached_addr_text` remembers before starting over: captures repeat a
few servers and clients over many connections, and an IPv6 text costs ~20,000 instructions
(``ipaddress``); 4096 entries of ~100 bytes bound the memory, and a scan of many addresses
only pays a dict lookup more per miss."""

_addr_texts: dict[bytes, str] = {}


def cached_addr_text(addr: bytes) -> str:
    """``segment.addr_text(addr)``, remembered (a pure function of the packed address)."""
    text = _addr_texts.get(addr)
    if text is None:
        if len(_addr_texts) >= ADDR_TEXT_CACHE_MAX:
            _addr_texts.clear()
        text = _addr_texts[addr] = addr_text(addr)
    return text


RECORD_ROOM = 256
"""Columns a record is made with room for: more than the ~200 it has."""


def _new_record() -> dict[str, Any]:
    """An empty record dict with room for :data:`RECORD_ROOM` columns (the compiled engine's
    presized dict; the reference's plain one, which grows)."""
    return {}


def flow_record(conn: Connection, anomaly_codes: list[str] | None = None) -> dict[str, Any]:
    """The flat record of a finished connection."""
    open_kind = classify_open(conn)
    syn_frame = synack_frame = rst_frame = None
    syn_ts = 0
    for p in conn.notable:
        if p.flags & 0x02 and not p.flags & 0x10 and syn_frame is None and \
                p.sender == "client":
            syn_frame = p.frame
            syn_ts = p.ts_ns  # the first notable packet of that frame (one per segment)
        elif p.flags & 0x02 and p.flags & 0x10 and synack_frame is None:
            synack_frame = p.frame
    if conn.first_rst_frame >= 0:
        rst_frame = conn.first_rst_frame
    seen = handshake_seen(conn)
    handshake_s = None
    if conn.handshake_done_frame >= 0 and syn_frame is not None:
        handshake_s = (conn.handshake_done_ts_ns - syn_ts) / _NS
    # Times no output can hold (segment.TS_NS_MIN..TS_NS_MAX: a pcapng interface's bad
    # if_tsoffset) are null; the duration stays when both ends are such times (one
    # interface's units are consistent), not when only one is (its offset is not).
    start_ns, end_ns = ts_or_none(conn.first_ts_ns), ts_or_none(conn.last_ts_ns)
    duration_s = ((conn.last_ts_ns - conn.first_ts_ns) / _NS
                  if (start_ns is None) == (end_ns is None) else None)
    # One dict with room for every column: grown from a literal, it was resized five times
    # (a fifth of the record's dict work). Keys go in in the columns' order.
    rec: dict[str, Any] = _new_record()
    rec["flow_id"] = conn.flow_id
    rec["client_ip"] = cached_addr_text(conn.client_addr)
    rec["client_port"] = conn.client_port
    rec["server_ip"] = cached_addr_text(conn.server_addr)
    rec["server_port"] = conn.server_port
    rec["ip_version"] = 4 if len(conn.client_addr) == 4 else 6
    rec["roles_inferred"] = conn.roles_inferred
    rec["incarnation"] = conn.incarnation
    rec["first_frame"] = conn.first_frame
    rec["last_frame"] = conn.last_frame
    rec["start_ts"] = None if start_ns is None else start_ns / _NS
    rec["end_ts"] = None if end_ns is None else end_ns / _NS
    rec["start_ts_ns"] = start_ns
    rec["end_ts_ns"] = end_ns
    rec["duration_s"] = duration_s
    rec["open"] = open_kind
    rec["close"] = classify_close(conn, open_kind)
    rec["client_state"] = conn.client.state._value_  # state_name(), without a call
    rec["server_state"] = conn.server.state._value_
    rec["conn_state"] = conn.peer.conn_state()
    rec["history"] = conn.peer.history()
    rec["completeness"] = conn.peer.completeness()
    rec["end_reason"] = conn.end_reason
    rec["syn_frame"] = syn_frame
    rec["synack_frame"] = synack_frame
    rec["handshake_ack_frame"] = (conn.handshake_done_frame if conn.handshake_done_frame >= 0
                                  else None)
    rec["handshake_s"] = handshake_s
    # ``open`` says three_way_handshake when later segments prove the handshake; these say
    # whether the capture showed it or it was inferred, and which segments it holds.
    rec["handshake_inferred"] = open_kind == "three_way_handshake" and seen != "SSA"
    rec["handshake_seen"] = seen
    rec["client_fin_frame"] = conn.fin_frame[0] if conn.fin_frame[0] >= 0 else None
    rec["server_fin_frame"] = conn.fin_frame[1] if conn.fin_frame[1] >= 0 else None
    rec["rst_frame"] = rst_frame
    rec["client_packets"] = conn.packets[0]
    rec["server_packets"] = conn.packets[1]
    rec["client_payload_bytes"] = conn.payload_bytes[0]
    rec["server_payload_bytes"] = conn.payload_bytes[1]
    rec["client_duplicate_frames"] = conn.duplicate_frames[0]
    rec["server_duplicate_frames"] = conn.duplicate_frames[1]
    rec["client_syn_count"] = conn.pure_syn_sent[0]
    rec["server_syn_count"] = conn.pure_syn_sent[1]
    rec["server_synack_count"] = conn.synack_sent[1]
    rec["client_rst_count"] = conn.rst_count[0]
    rec["server_rst_count"] = conn.rst_count[1]
    rec["events_dropped"] = conn.events_dropped
    conn.facts.add_columns(rec)
    conn.analyzer.add_columns(rec)
    holes = conn.peer.holes_filled
    if holes:  # Zeek reassembly holes filled to stay within max_holes: tracking dropped too
        rec["evidence_dropped"] += holes
    rec["anomalies"] = list(anomaly_codes or [])
    return rec


# The compiled engine's presized dict (tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import compiled as _compiled  # noqa: E402

reference_flow_record = flow_record
if _compiled is not None:
    _new_record = _compiled.new_record  # noqa: F811
    # Its twin: the same record, the connection's fields read in C (tests/test_report_twin.py).
    flow_record = _compiled.FlowRecord(reference_flow_record, _addr_texts,  # noqa: F811
                                       cached_addr_text, TS_NS_MIN, TS_NS_MAX)
