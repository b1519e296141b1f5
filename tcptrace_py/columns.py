"""The column reference: every column of every table, with its unit, meaning and the peer
tools' equivalent, defined once here.

Why one definition: about 180 flow columns (``client_tail_loss_probes``, ``client_idle_max_ms``,
``events_dropped``...) were documented nowhere, or in prose that drifted from the code.
``tcptrace-py columns`` prints this module, ``docs/columns.md`` is generated from it, and
tests/test_columns.py fails when a record, DataFrame or batch table has a column this module
does not define (or defines one that no longer exists).

Per-direction statistics are defined once without their ``client_``/``server_`` prefix
(``DIRECTION``) and expanded for both sides: ``client_X`` is what the client *sent* (tcptrace's
``a2b`` when the client is host a, Zeek's ``orig_*`` when the client is the originator).

Peer equivalents name the closest field of each tool; "~" marks a near match whose definition
differs (docs/sequence-analysis.md and docs/compat.md say how).

Kinds are frames.py's: int, int? (nullable), float (NaN when missing), bool, str, category,
ts (datetime64[ns, UTC]), list. A column's kind comes from report.LIFECYCLE_COLUMNS or from a
fresh SequenceAnalyzer's values (:func:`analysis_kinds`), never from here, so this module
cannot change a dtype.
"""

from __future__ import annotations

from tcptrace_py.lazy_dataclass import dataclass

__all__ = ["DIRECTION", "FLOW", "OTHER_TABLES", "Column", "analysis_kinds", "flow_columns",
           "table_columns"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: what it holds and where the peer tools show the same thing."""

    name: str
    """Column name (for DIRECTION: without the client_/server_ prefix)."""
    unit: str
    """Unit of the values ("" for names, flags and categories)."""
    meaning: str
    """What the value is, in one or two sentences."""
    tcptrace: str = ""
    """tcptrace ``-l`` (long output) label, per direction."""
    tshark: str = ""
    """tshark/Wireshark display field."""
    zeek: str = ""
    """Zeek conn.log field."""


def _c(name: str, unit: str, meaning: str, tcptrace: str = "", tshark: str = "",
       zeek: str = "") -> Column:
    return Column(name, unit, meaning, tcptrace, tshark, zeek)


FLOW: tuple[Column, ...] = (
    _c("flow_id", "", "Connection number, from 0 in order of first packet; a new incarnation "
       "of a 4-tuple (a SYN with a new ISN) gets a new one.", "", "tcp.stream", "~uid"),
    _c("client_ip", "", "Client address (the SYN's sender; else guessed, see roles_inferred).",
       "host a", "ip.src / ipv6.src", "id.orig_h"),
    _c("client_port", "", "Client TCP port.", "host a port", "tcp.srcport", "id.orig_p"),
    _c("server_ip", "", "Server address.", "host b", "ip.dst / ipv6.dst", "id.resp_h"),
    _c("server_port", "", "Server TCP port.", "host b port", "tcp.dstport", "id.resp_p"),
    _c("ip_version", "", "IP version of the connection: 4 or 6.", "", "ip.version", ""),
    _c("roles_inferred", "", "True when no SYN said who the client is: the side on a "
       "well-known port (else the lower port) was taken as the server."),
    _c("incarnation", "count", "How many earlier connections used this 4-tuple in the "
       "capture (0 for the first)."),
    _c("first_frame", "frame", "Frame number (Wireshark's, from 1) of the first packet.",
       "", "frame.number"),
    _c("last_frame", "frame", "Frame number of the last packet.", "", "frame.number"),
    _c("start_ts", "UTC", "Time of the first packet (epoch seconds in json/jsonl, "
       "datetime64[ns, UTC] in frames, rounded to the microsecond); null when that time lies "
       "outside 1970-2262 (a pcapng interface's bad if_tsoffset/if_tsresol: warning "
       "timestamp_out_of_range).", "first packet", "frame.time_epoch", "ts"),
    _c("end_ts", "UTC", "Time of the last packet (null as start_ts).", "last packet",
       "frame.time_epoch"),
    _c("start_ts_ns", "ns", "start_ts in exact integer nanoseconds since the epoch (null "
       "as start_ts)."),
    _c("end_ts_ns", "ns", "end_ts in exact integer nanoseconds since the epoch (null as "
       "end_ts)."),
    _c("duration_s", "s", "Last packet time minus first packet time; null when only one of "
       "the two lies outside 1970-2262 (both outside: the interval of one interface's "
       "timestamps, kept).", "elapsed time", "", "duration"),
    _c("open", "", "How the connection opened: three_way_handshake, simultaneous_open, "
       "midstream (no handshake in the capture) or not_established."),
    _c("close", "", "How it ended: graceful, rst_by_client, rst_by_server, refused, "
       "unanswered, half_closed_at_capture_end or open_at_capture_end.", "complete / reset",
       "", "~conn_state"),
    _c("client_state", "", "The client endpoint's final RFC 9293 state as a passive observer "
       "replays it (INACTIVE: nothing sent by it seen)."),
    _c("server_state", "", "The server endpoint's final RFC 9293 state."),
    _c("conn_state", "", "Zeek's connection state (S0, SF, REJ, RSTO...), by Zeek's rules.",
       "", "", "conn_state"),
    _c("history", "", "Zeek's history string (ShADadFf...), by Zeek's rules.", "", "",
       "history"),
    _c("completeness", "bitmask", "Wireshark's tcp.completeness (1 SYN, 2 SYN-ACK, 4 ACK, "
       "8 data, 16 FIN, 32 RST).", "", "tcp.completeness"),
    _c("end_reason", "", "Why the engine handed the connection over: capture_end, closed, "
       "time_wait_expired, idle_timeout, attempt_timeout, new_incarnation or table_full."),
    _c("syn_frame", "frame", "Frame of the client's first SYN (<NA> when not seen)."),
    _c("synack_frame", "frame", "Frame of the first SYN-ACK."),
    _c("handshake_ack_frame", "frame", "Frame of the ACK that completed the handshake."),
    _c("handshake_s", "s", "SYN to handshake-completing ACK (NaN without a complete "
       "handshake).", "", "~tcp.analysis.initial_rtt"),
    _c("handshake_inferred", "", "True when open is three_way_handshake but the capture "
       "lacks some of its three segments (later segments prove the handshake happened)."),
    _c("handshake_seen", "", "Which handshake segments the capture holds: one mark each for "
       "SYN, SYN-ACK and ACK, '.' for a missing one (SSA all, .SA no SYN, S.A no SYN-ACK).",
       "", "~tcp.completeness"),
    _c("client_fin_frame", "frame", "Frame of the client's first FIN."),
    _c("server_fin_frame", "frame", "Frame of the server's first FIN."),
    _c("rst_frame", "frame", "Frame of the first RST, from either side."),
    _c("client_payload_bytes", "bytes", "TCP payload bytes of the client's frames, "
       "retransmissions and duplicated frames included.", "actual data bytes", "", "~orig_bytes"),
    _c("server_payload_bytes", "bytes", "TCP payload bytes the server sent.",
       "actual data bytes", "", "~resp_bytes"),
    _c("client_syn_count", "packets", "Pure SYNs (without ACK) the client sent."),
    _c("server_syn_count", "packets", "Pure SYNs the server sent (simultaneous open)."),
    _c("server_synack_count", "packets", "SYN-ACKs the server sent."),
    _c("client_rst_count", "packets", "RSTs the client sent."),
    _c("server_rst_count", "packets", "RSTs the server sent."),
    _c("client_duplicate_frames", "packets", "Frames of the client that were copies of an "
       "earlier frame (same IP ID, or the same bytes moments apart): a capture artifact, "
       "kept out of every statistic and finding."),
    _c("server_duplicate_frames", "packets", "Frames of the server that were copies of an "
       "earlier frame."),
    _c("events_dropped", "count", "State-machine events not kept because the connection's "
       "event list was full (Options.max_events_per_connection)."),
    _c("retransmissions", "packets", "Retransmitted segments, both sides (data, SYN, SYN-ACK "
       "and FIN re-sends).", "~rexmt data pkts (a2b + b2a)",
       "count of tcp.analysis.retransmission"),
    _c("window_scaling", "", "True when both SYNs carried the window-scale option "
       "(RFC 7323: only then are windows scaled)."),
    _c("evidence_dropped", "count", "Evidence items (retransmissions, zero-window periods...) "
       "not kept because a per-connection list was full (max_evidence_items)."),
    _c("ecn_negotiated", "", "ECN was negotiated (ecn_mode not empty); the last SYN before "
       "the SYN-ACK decides."),
    _c("ecn_mode", "", "classic (RFC 3168 6.1.1 setup SYN and SYN-ACK), accecn (Accurate "
       "ECN, RFC 9768 3.1.1) or empty."),
    _c("tfo_option", "", "The client SYN's TCP Fast Open option: cookie_request, cookie or "
       "empty (RFC 7413).", "", "tcp.options.tfo"),
    _c("tfo_syn_data_bytes", "bytes", "Payload bytes on the client's SYN (TFO data)."),
    _c("tfo_syn_data_acked", "", "The SYN-ACK acknowledged that data (ACK = ISN + 1 + "
       "length)."),
    _c("anomalies", "", "Codes of the connection's findings (a list in json/jsonl, comma-joined "
       "in csv/parquet/frames); see `tcptrace-py codes`."),
)
"""Columns of a flow record that are not per-direction statistics, in record order."""

_PKTS = "count of tcp.analysis."

DIRECTION: tuple[Column, ...] = (
    _c("packets", "packets", "Frames of segments this side sent, copies included (see "
       "*_duplicate_frames).", "total packets", "", "orig_pkts / "
       "resp_pkts"),
    _c("ack_pkts", "packets", "Segments with the ACK flag.", "ack pkts sent"),
    _c("pure_acks", "packets", "ACKs without payload, SYN, FIN or RST that were neither "
       "probes nor keep-alives.", "pure acks sent"),
    _c("rst_pkts", "packets", "RST segments.", ""),
    _c("data_pkts", "packets", "Segments with payload.", "actual data pkts"),
    _c("data_bytes", "bytes", "Payload bytes, retransmissions included.", "actual data bytes"),
    _c("unique_bytes", "bytes", "Payload bytes of distinct sequence space (no retransmission, "
       "no zero-window probe).", "unique bytes sent", "", "~orig_bytes / resp_bytes"),
    _c("retransmitted_segments", "packets", "Segments re-sending sequence space already sent "
       "(data, SYN, FIN).", "", _PKTS + "retransmission"),
    _c("rexmt_data_pkts", "packets", "Retransmitted segments carrying payload.",
       "rexmt data pkts"),
    _c("rexmt_data_bytes", "bytes", "Payload bytes re-sent (the overlap with data already "
       "sent).", "rexmt data bytes"),
    _c("syn_pkts", "packets", "Segments with SYN (SYN-ACKs included).", "SYN/FIN pkts sent"),
    _c("fin_pkts", "packets", "Segments with FIN.", "SYN/FIN pkts sent"),
    _c("syn_retransmissions", "packets", "SYN or SYN-ACK re-sends (same ISN)."),
    _c("fin_retransmissions", "packets", "FIN re-sends (same sequence number)."),
    _c("rto_retransmissions", "packets", "Retransmissions caused by the retransmission "
       "timer (none of fast, TLP, spurious rules applied)."),
    _c("fast_retransmissions", "packets", "Retransmissions after duplicate ACKs or SACK "
       "blocks above the segment (RFC 5681, RFC 6675).", "",
       _PKTS + "fast_retransmission"),
    _c("tail_loss_probes", "packets", "First re-sends of the last segment within the TLP "
       "timeout (Linux TLP, RFC 8985 section 7)."),
    _c("spurious_retransmissions", "packets", "Retransmissions of data already acknowledged, "
       "or later covered by a D-SACK (RFC 2883).", "",
       _PKTS + "spurious_retransmission"),
    _c("out_of_order_pkts", "packets", "Segments filling a hole below the highest sequence "
       "sent (never captured before).", "outoforder pkts", _PKTS + "out_of_order"),
    _c("lost_segments", "count", "Gaps: segments starting beyond the highest sequence sent "
       "(data lost before the capture point).", "", _PKTS + "lost_segment"),
    _c("missed_bytes", "bytes", "Bytes of those gaps.", "missed data", "", "~missed_bytes"),
    _c("acks_of_unseen_data", "packets", "ACKs of sequence space the other side's captured "
       "segments never covered.", "", _PKTS + "ack_lost_segment"),
    _c("dup_acks", "packets", "Duplicate ACKs sent (RFC 5681: pure ACK, same ACK and window, "
       "data outstanding).", "~duplicate acks", _PKTS + "duplicate_ack"),
    _c("triple_dup_acks", "count", "Runs of three or more duplicate ACKs.", "triple dupacks"),
    _c("sack_pkts", "packets", "Segments carrying SACK blocks.", "sack pkts sent"),
    _c("dsack_pkts", "packets", "Segments carrying a D-SACK (RFC 2883).", "dsack pkts sent"),
    _c("max_sack_blocks", "count", "Most SACK blocks in one segment.", "max sack blks/ack"),
    _c("zero_window_advs", "packets", "Segments advertising a zero window.", "zero win adv",
       _PKTS + "zero_window"),
    _c("zero_window_probes", "packets", "Zero-window probes sent.", "zwnd probe pkts",
       _PKTS + "zero_window_probe"),
    _c("zero_window_probe_bytes", "bytes", "Payload of those probes.", "zwnd probe bytes"),
    _c("zero_window_probe_acks", "packets", "ACKs answering the other side's probes.", "",
       _PKTS + "zero_window_probe_ack"),
    _c("keepalives", "packets", "Keep-alive probes (0 or 1 byte at SND.NXT-1, nothing "
       "outstanding).", "", _PKTS + "keep_alive"),
    _c("keepalive_acks", "packets", "ACKs answering the other side's keep-alives.", "",
       _PKTS + "keep_alive_ack"),
    _c("window_updates", "packets", "Pure ACKs changing only the (non-zero) window.", "",
       _PKTS + "window_update"),
    _c("window_full", "packets", "Data segments filling the receiver's advertised window "
       "exactly.", "", _PKTS + "window_full"),
    _c("pushed_pkts", "packets", "Data segments with PSH.", "~pushed data pkts"),
    _c("mss_bytes", "bytes", "MSS option of this side's SYN (-1: none).", "mss requested",
       "tcp.options.mss_val"),
    _c("window_scale", "shift", "Window-scale shift of this side's SYN (-1: none).",
       "adv wind scale", "tcp.options.wscale.shift"),
    _c("sack_permitted", "", "This side's SYN offered SACK.", "req sack",
       "tcp.options.sack_perm"),
    _c("timestamps", "", "This side's SYN carried the timestamps option.", "req 1323 ws/ts",
       "tcp.options.timestamp.tsval"),
    _c("initial_window_bytes", "bytes", "Payload sent before the first acknowledgment of "
       "data (the first flight).", "initial window (bytes)"),
    _c("initial_window_pkts", "packets", "Data segments of that first flight.",
       "initial window (pkts)"),
    _c("segment_min_bytes", "bytes", "Smallest payload of a data segment (<NA>: no data).",
       "min segm size"),
    _c("segment_max_bytes", "bytes", "Largest payload (<NA>: no data).", "max segm size"),
    _c("segment_avg_bytes", "bytes", "data_bytes / data_pkts (NaN: no data).",
       "avg segm size"),
    _c("window_min_bytes", "bytes", "Smallest advertised window, scaled (<NA>: no window "
       "seen: only RSTs, or the snaplen cut the field).", "min win adv"),
    _c("window_max_bytes", "bytes", "Largest advertised window, scaled.", "max win adv"),
    _c("window_avg_bytes", "bytes", "Mean advertised window over this side's segments.",
       "avg win adv"),
    _c("idle_max_ms", "ms", "Longest gap between two consecutive segments of this side "
       "(NaN: fewer than two).", "idletime max"),
    _c("throughput_bytes_per_s", "bytes/s", "unique_bytes over the connection's duration "
       "(NaN when the duration is 0).", "throughput"),
    _c("truncated_bytes", "bytes", "Payload bytes the snaplen cut off.", "truncated data"),
    _c("truncated_pkts", "packets", "Segments cut by the snaplen.", "truncated packets"),
    _c("tso_supersegments", "packets", "Segments larger than the peer's MSS (TSO/GRO on the "
       "capturing host)."),
    _c("rtt_samples", "count", "RTT samples: ACKs exactly acknowledging a segment sent once "
       "(Karn).", "RTT samples"),
    _c("rtt_ambiguous_acks", "count", "ACKs of retransmitted data, not sampled (Karn's "
       "rule, RFC 6298 section 3)."),
    _c("rtt_min_ms", "ms", "Smallest RTT sample of data this side sent (NaN: none).",
       "RTT min", "~min of tcp.analysis.ack_rtt"),
    _c("rtt_avg_ms", "ms", "Mean RTT sample.", "RTT avg"),
    _c("rtt_max_ms", "ms", "Largest RTT sample.", "RTT max"),
    _c("rtt_stdev_ms", "ms", "Sample standard deviation of the RTT samples (NaN: fewer than "
       "two).", "RTT stdev"),
    _c("handshake_rtt_ms", "ms", "Client: SYN to SYN-ACK; server: SYN-ACK to the handshake "
       "ACK, from the last (re)transmission.", "RTT from 3WHS"),
    _c("srtt_ms", "ms", "Smoothed RTT at the end (RFC 6298; NaN before the first sample)."),
    _c("rttvar_ms", "ms", "RTT variation at the end (RFC 6298)."),
    _c("rto_ms", "ms", "Retransmission timeout the RFC 6298 estimator ends with (1 s before a "
       "sample, min RTO 1 s by default)."),
    _c("rexmit_interval_min_ms", "ms", "Shortest time between two transmissions of the same "
       "sequence space (NaN: no retransmission).", "min retr time"),
    _c("rexmit_interval_max_ms", "ms", "Longest such time.", "max retr time"),
    _c("rexmit_interval_avg_ms", "ms", "Mean of those times.", "avg retr time"),
    _c("rto_backoff_ratio_avg", "ratio", "Mean ratio of consecutive timer intervals of one "
       "segment (2.0: RFC 6298 5.5 doubling; NaN: no repeated timeout)."),
    _c("ecn_ect_segments", "packets", "Segments sent with the IP ECN field ECT(0) or "
       "ECT(1).", "", "ip.dsfield.ecn"),
    _c("ecn_ce_segments", "packets", "Segments that reached the capture point marked CE (a "
       "router signalled congestion).", "", "ip.dsfield.ecn == 3"),
    _c("ecn_ece_segments", "packets", "Non-SYN segments with ECE (echoing CE marks; 0 under "
       "Accurate ECN).", "", "tcp.flags.ece"),
    _c("ecn_cwr_segments", "packets", "Non-SYN segments with CWR (congestion window "
       "reduced; 0 under Accurate ECN).", "", "tcp.flags.cwr"),
    _c("isn", "", "Initial sequence number of this side's SYN (-1: no SYN seen).", "",
       "tcp.seq_raw of the SYN"),
    _c("midstream", "", "True when this side's first segment was not a SYN (picked up "
       "mid-stream: sequence numbers relative to the first byte seen)."),
)
"""Per-direction statistics, without the prefix, in record order (analysis.sequence)."""

_SIDE = {"client": ("client", "a2b", "orig"), "server": ("server", "b2a", "resp")}

OTHER_TABLES: dict[str, tuple[Column, ...]] = {
    "anomalies": (
        _c("capture", "", "Input file (several inputs, batch)."),
        _c("code", "", "Stable snake_case finding code (`tcptrace-py codes`).", "", "",
           "weird.log name"),
        _c("severity", "", "info, warning or error (ordered).", "", "_ws.expert.severity"),
        _c("category", "", "network, capture, protocol or lifecycle."),
        _c("flow_id", "", "Connection (<NA>: capture-wide finding).", "", "tcp.stream"),
        _c("first_frame", "frame", "First frame of the evidence."),
        _c("last_frame", "frame", "Last frame of the evidence."),
        _c("ts", "UTC", "Time of the first evidence frame (exact; ts_ns in json/jsonl); null "
           "outside 1970-2262."),
        _c("summary", "", "One line for people (durations in a reader's units)."),
        _c("details", "", "Structured evidence, JSON text (json.loads); exact values."),
    ),
    "events": (
        _c("capture", "", "Input file (several inputs, batch)."),
        _c("flow_id", "", "Connection."),
        _c("frame", "frame", "Frame of the segment (or timer) causing the event."),
        _c("ts", "UTC", "Its time (null outside 1970-2262)."),
        _c("endpoint", "", "client or server: whose state machine moved."),
        _c("kind", "", "transition, unexpected, ignored or timeout."),
        _c("old_state", "", "RFC 9293 state before."),
        _c("new_state", "", "RFC 9293 state after."),
        _c("direction", "", "sent or received: the segment as this endpoint saw it."),
        _c("flags", "", "TCP flags of the segment (S, SA, FA, R...)."),
        _c("seq", "", "Relative sequence number of the segment."),
        _c("ack", "", "Relative acknowledgment number."),
        _c("payload_len", "bytes", "Payload of the segment."),
        _c("reason", "", "The transition table's explanation, citing RFC 9293."),
    ),
    "packets": (
        _c("frame", "frame", "Frame number.", "", "frame.number"),
        _c("ts", "UTC", "Frame time (null outside 1970-2262).", "", "frame.time_epoch"),
        _c("flow_id", "", "Connection.", "", "tcp.stream"),
        _c("from_client", "", "True when the client sent it."),
        _c("tcp_flags", "bitmask", "TCP flag bits (FIN 1, SYN 2, RST 4, PSH 8, ACK 16...).",
           "", "tcp.flags"),
        _c("flags", "", "The same as letters."),
        _c("analysis_flags", "bitmask", "Per-packet analysis bits (analysis/flags.py)."),
        _c("analysis", "", "Those bits by name (retransmission, dup_ack, zero_window...).",
           "", "tcp.analysis.flags"),
        _c("payload_len", "bytes", "TCP payload length.", "", "tcp.len"),
    ),
    "captures": (
        _c("path", "", "Absolute path of the capture."),
        _c("capture_id", "", "First 16 hex digits of the SHA-1 of the path (partition key)."),
        _c("size_bytes", "bytes", "File size when analysed."),
        _c("mtime_ns", "ns", "File modification time when analysed (resume key)."),
        _c("frames", "count", "Frames read."),
        _c("tcp_segments", "count", "TCP segments decoded."),
        _c("connections", "count", "Connections found."),
        _c("anomalies", "count", "Findings written."),
        _c("events", "count", "Events written."),
        _c("warnings", "count", "Warnings about the capture (damage, ...)."),
        _c("first_warning", "", "The first of them."),
        _c("status", "", "ok or failed."),
        _c("failure", "", "When failed: transient (disk full, out of memory, missing module, "
           "worker lost: a rerun retries it) or permanent (the capture itself: skipped "
           "until it changes or --force)."),
        _c("error", "", "Why it failed, one line naming the file."),
        _c("elapsed_s", "s", "Wall time of the worker on this capture."),
        _c("cpu_s", "s", "CPU time of the worker on this capture."),
    ),
}
"""The other tables: ``result.anomalies``/``events``/``packets`` and the batch ``captures``
table (each batch table also starts with ``capture``, the input's path)."""


def _expand(col: Column, side: str) -> Column:
    who, tt_dir, zeek_side = _SIDE[side]
    peers_tt = f"{col.tcptrace} ({tt_dir})" if col.tcptrace else ""
    zeek = col.zeek
    if " / " in zeek:  # orig_x / resp_x
        parts = zeek.split(" / ")
        zeek = parts[0] if zeek_side == "orig" else parts[1]
    tshark = f"{col.tshark}, frames from the {who}" if col.tshark.startswith(_PKTS) \
        else col.tshark
    return Column(f"{side}_{col.name}", col.unit, f"{who.capitalize()}'s: {col.meaning}",
                  peers_tt, tshark, zeek)


def flow_columns() -> list[Column]:
    """Every column of a flow record (and of ``result.flows``), in record order: the
    lifecycle columns (report.LIFECYCLE_COLUMNS; ``client_packets`` and its kin are there and
    also per-direction statistics), then the analysis columns (analysis.sequence)."""
    from tcptrace_py.analysis.sequence import DIRECTION_COLUMNS
    from tcptrace_py.report import LIFECYCLE_COLUMNS

    defined = {c.name: c for c in FLOW}
    for side in ("client", "server"):
        defined.update((f"{side}_{c.name}", _expand(c, side)) for c in DIRECTION)
    order = list(LIFECYCLE_COLUMNS) + ["retransmissions"]
    order += [f"{side}_{n}" for side in ("client", "server") for n in DIRECTION_COLUMNS]
    order += ["window_scaling", "evidence_dropped", "anomalies"]
    return [defined[n] for n in dict.fromkeys(order)]


def table_columns(table: str) -> list[Column]:
    """Columns of ``flows``, ``anomalies``, ``events``, ``packets`` or ``captures``."""
    if table == "flows":
        return flow_columns()
    return list(OTHER_TABLES[table])


def analysis_kinds() -> dict[str, str]:
    """frames.py kinds of the sequence-analysis columns, from a fresh analyzer's values
    (a new analysis column gets a dtype without editing frames.py)."""
    from tcptrace_py.analysis import AnalysisOptions, SequenceAnalyzer
    from tcptrace_py.analysis.sequence import NULLABLE_INT_COLUMNS

    out: dict[str, str] = {}
    for name, value in SequenceAnalyzer(AnalysisOptions()).columns().items():
        if isinstance(value, bool):
            out[name] = "bool"
        elif isinstance(value, int):
            out[name] = "int"
        elif value is None and name.split("_", 1)[1] in NULLABLE_INT_COLUMNS:
            out[name] = "int?"
        else:  # float, or None for figures without a sample (no RTT sample, no data)
            out[name] = "float"
    return out


def flow_kinds() -> dict[str, str]:
    """Kind of every flow column (report.LIFECYCLE_COLUMNS, analysis_kinds, anomalies)."""
    from tcptrace_py.report import LIFECYCLE_COLUMNS

    return {**LIFECYCLE_COLUMNS, **analysis_kinds(), "anomalies": "list"}


TABLE_NAMES = ("flows", "anomalies", "events", "packets", "captures")


def table_kinds(table: str) -> dict[str, str]:
    """frames.py kinds of a table's columns (the batch tables add ``capture``: str)."""
    if table == "flows":
        return flow_kinds()
    from tcptrace_py import batch, frames

    schema = {"anomalies": frames.ANOMALY_SCHEMA, "events": frames.EVENT_SCHEMA,
              "packets": frames.PACKET_SCHEMA,
              "captures": batch.CAPTURE_COLUMN_KINDS}[table]
    return {"capture": "str", **schema} if table in ("anomalies", "events") else dict(schema)


def rows(table: str) -> list[dict[str, str]]:
    """The reference of one table as plain rows (``tcptrace-py columns --format json``)."""
    kinds = table_kinds(table)
    return [{"column": c.name, "kind": kinds.get(c.name, ""), "unit": c.unit,
             "meaning": c.meaning, "tcptrace": c.tcptrace, "tshark": c.tshark,
             "zeek": c.zeek} for c in table_columns(table)]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """docs/columns.md: every table's columns (``tcptrace-py columns --format markdown``)."""
    lines = [
        "# Column reference",
        "",
        "Generated by `tcptrace-py columns --format markdown` from `tcptrace_py/columns.py`;",
        "do not edit (tests/test_columns.py checks that this file is current and that every",
        "column of every table is defined). Kinds are frames.py's (docs/outputs.md: int, int?",
        "nullable, float NaN when missing, bool, str, category, ts = datetime64[ns, UTC],",
        "list). `client_X` is what the client sent (tcptrace a2b when the client is host a,",
        "Zeek orig_ when the client is the originator); `server_X` the other direction.",
        "`~` marks a peer field whose definition differs (docs/sequence-analysis.md,",
        "docs/compat.md). Batch tables start with `capture` (the input's path).",
    ]
    for table in TABLE_NAMES:
        lines += ["", f"## {table}", "",
                  "| column | kind | unit | meaning | tcptrace -l | tshark | Zeek conn.log |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows(table):
            lines.append("| " + " | ".join(_md_cell(r[k]) for k in (
                "column", "kind", "unit", "meaning", "tcptrace", "tshark", "zeek")) + " |")
    return "\n".join(lines) + "\n"
