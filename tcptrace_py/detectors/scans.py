"""Scan and flood detectors: many failed connection attempts seen together.

Each failed attempt is already reported on its own connection (``connection_refused``,
``unanswered_syn``, ``half_open``); these capture-wide findings say what the attempts have
in common, which is what an operator asks first when a capture holds thousands of them:

* ``port_scan``: one source address probed many distinct targets (address and port) and
  most probes failed: refused, never answered, or a SYN-ACK the source abandoned without
  completing the handshake (what a SYN scan does with open ports). A connect() scan's
  successful handshakes are counted as open targets but do not make a scan by themselves:
  health checkers and load balancers complete handshakes to many servers.
* ``syn_flood``: one server endpoint left connection attempts from many sources unanswered.
  Spoofed floods send each SYN once from a random source, so the share of attempts with a
  single SYN is part of the evidence; real clients behind a dead server retry theirs.

Memory is bounded whatever the capture: sources and servers are kept in LRU tables of
``max_tracked`` entries (a spoofed flood's sources, each seen once, push each other out
while a scanner, active all along, stays), and each entry keeps at most ``max_targets``
distinct targets or sources, all entries together at most ``max_keys``, and counts the rest.
Addresses stay packed until a finding is written (about 4 us per attempt under a flood).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from tcptrace_py.connection import Connection
from tcptrace_py.detectors.base import NS_PER_S, Code, Detector, Param, ParamValue, register
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.events import Anomaly
from tcptrace_py.options import Options
from tcptrace_py.report import classify_close, classify_open
from tcptrace_py.segment import addr_text, endpoint_text

OUTCOMES = ("refused", "unanswered", "abandoned", "open")
"""What a probe found: refused (RST), unanswered (no reply), abandoned (SYN-ACK, then the
source gave up or reset: a SYN scan's open port) and open (handshake completed, no data)."""
_FAILED = ("refused", "unanswered", "abandoned")
_SAMPLE = 20


def probe_outcome(conn: Connection) -> str | None:
    """The outcome of a connection attempt that carried no data, else None."""
    if not conn.pure_syn_sent[0] or conn.self_connect or conn.payload_bytes[0] \
            or conn.payload_bytes[1]:
        return None
    open_kind = classify_open(conn)
    close = classify_close(conn, open_kind)
    if close in ("refused", "unanswered"):
        return close
    if conn.handshake_done_frame < 0:
        return "abandoned" if conn.synack_sent[1] else None
    return "open"


_OUTCOME_INDEX = {o: i for i, o in enumerate(OUTCOMES)}
Target = tuple[bytes, int]
"""A probe target: packed server address and port (text only when reported)."""


class Probe(NamedTuple):
    """What the detector keeps of one connection attempt (its ``--jobs`` share)."""

    outcome: str
    client_addr: bytes
    server_addr: bytes
    server_port: int
    first_frame: int
    first_ts_ns: int
    last_frame: int
    last_ts_ns: int
    single_syn: bool
    """The client sent exactly one SYN (spoofed flood sources do)."""


class _Entry:
    """What one tracked source (or server) was seen doing. Keys stay packed (bytes, ports)
    and become text only in a finding: most entries of a flood never make one."""

    __slots__ = ("keys", "overflow", "outcomes", "first_frame", "last_frame", "first_ts_ns",
                 "last_ts_ns", "single_syn")

    def __init__(self) -> None:
        self.keys: set[Any] = set()
        """Distinct targets (for a source) or source addresses (for a server), at most
        max_targets."""
        self.overflow = 0
        """Attempts whose target/source was not kept once ``keys`` was full."""
        self.outcomes = [0, 0, 0, 0]
        """Attempts by outcome, in the order of OUTCOMES."""
        self.first_frame = -1
        self.last_frame = -1
        self.first_ts_ns = -1
        self.last_ts_ns = -1
        self.single_syn = 0

    def add(self, key: Any, conn: Probe, outcome: str, budget: _Budget) -> None:
        keys = self.keys
        if key not in keys:
            if len(keys) < budget.per_entry and budget.left > 0:
                keys.add(key)
                budget.left -= 1
            else:
                self.overflow += 1
        self.outcomes[_OUTCOME_INDEX[outcome]] += 1
        if self.first_frame < 0 or conn.first_frame < self.first_frame:
            self.first_frame = conn.first_frame
            self.first_ts_ns = conn.first_ts_ns
        if conn.last_frame > self.last_frame:
            self.last_frame = conn.last_frame
            self.last_ts_ns = conn.last_ts_ns
        if conn.single_syn:
            self.single_syn += 1

    def count(self, outcome: str) -> int:
        return self.outcomes[_OUTCOME_INDEX[outcome]]

    @property
    def failed(self) -> int:
        return sum(self.count(o) for o in _FAILED)

    @property
    def distinct(self) -> int:
        """Distinct keys (a lower bound once keys overflowed)."""
        return len(self.keys)


class _Budget:
    """Distinct keys all entries may still remember (``max_keys``), and per entry."""

    __slots__ = ("left", "per_entry")

    def __init__(self, total: int, per_entry: int) -> None:
        self.left = total
        self.per_entry = per_entry


def _touch(table: OrderedDict[Any, _Entry], key: Any, limit: int, budget: _Budget) -> _Entry:
    entry = table.get(key)
    if entry is None:
        if len(table) >= limit:
            budget.left += len(table.popitem(last=False)[1].keys)
        entry = table[key] = _Entry()
    else:
        table.move_to_end(key)
    return entry


@register
class Scans(Detector):
    """Port scans (one source, many failed targets) and SYN floods (one server, many
    unanswered sources), capture-wide."""

    name = "scan"
    params = (
        Param("min_targets", 20, "Distinct targets (address and port) one source must have "
              "probed, most of them failed, for a port scan. Clients retrying one service, or "
              "a few replicas of it, stay far below; nmap's fastest scan probes 100 ports."),
        Param("min_failed_share", 0.5, "Share of the source's probes that failed (refused, "
              "unanswered, abandoned after the SYN-ACK) for a port scan: a scan finds mostly "
              "closed or filtered ports, a health checker mostly open ones."),
        Param("min_sources", 50, "Distinct sources whose attempts to one server went "
              "unanswered for a SYN flood (fewer are clients of a server that is down)."),
        Param("min_attempts", 100, "Unanswered attempts to one server for a SYN flood."),
        Param("max_tracked", 10_000, "Sources and servers tracked at once (LRU); bounds memory "
              "under floods of spoofed sources."),
        Param("max_targets", 65_536, "Distinct targets (or sources) remembered per entry; "
              "beyond, attempts are counted but not told apart (the evidence says the count "
              "is capped). The default lets a scan of every port of a host be counted."),
        Param("max_keys", 500_000, "Distinct targets and sources remembered over all "
              "entries (an evicted entry gives its share back): bounds the detector's memory "
              "to about 40 MB whatever the capture, e.g. a flood of a million spoofed sources."),
    )
    codes = (
        Code("port_scan", "warning", "network",
             "One source probed many targets and most probes failed (refused, unanswered, or "
             "a SYN-ACK abandoned as SYN scans do): targets, hosts, ports, outcomes, rate."),
        Code("syn_flood", "warning", "network",
             "Connection attempts from many sources to one server went unanswered: a SYN "
             "flood (spoofed sources send one SYN each) or a server that stopped answering; "
             "sources, attempts, rate, the share of single-SYN attempts."),
    )

    capture_wide = True  # sources and servers are tracked over every connection

    def __init__(self, values: Mapping[str, ParamValue], options: Options) -> None:
        super().__init__(values, options)
        self.sources: OrderedDict[bytes, _Entry] = OrderedDict()
        self.servers: OrderedDict[Target, _Entry] = OrderedDict()
        self.limit = int(self.p["max_tracked"])
        self.budget = _Budget(int(self.p["max_keys"]), int(self.p["max_targets"]))

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        if not self.sharded:
            probe = self.summarize(conn)
            if probe is not None:
                self.fold(probe, [])
        return ()

    def summarize(self, conn: Connection) -> Probe | None:
        outcome = probe_outcome(conn)
        if outcome is None:
            return None
        return Probe(outcome, conn.client_addr, conn.server_addr, conn.server_port,
                     conn.first_frame, conn.first_ts_ns, conn.last_frame, conn.last_ts_ns,
                     conn.pure_syn_sent[0] == 1)

    def fold(self, share: Any, anomalies: list[Anomaly]) -> list[Anomaly]:
        probe: Probe = share
        outcome = probe.outcome
        target = (probe.server_addr, probe.server_port)
        budget = self.budget
        _touch(self.sources, probe.client_addr, self.limit, budget).add(target, probe,
                                                                         outcome, budget)
        if outcome == "unanswered":
            _touch(self.servers, target, self.limit, budget).add(probe.client_addr, probe,
                                                                  outcome, budget)
        return anomalies

    def on_end(self, end_ns: int, diag: Diagnostics) -> Iterable[Anomaly]:
        out: list[Anomaly] = []
        for source, e in sorted(self.sources.items(), key=lambda kv: kv[1].first_frame):
            probes = sum(e.outcomes)
            if e.distinct < int(self.p["min_targets"]) or \
                    e.failed < float(self.p["min_failed_share"]) * probes:
                continue
            ports = sorted({port for _addr, port in e.keys})
            hosts = sorted({addr_text(addr) for addr, _port in e.keys})
            span_ns = e.last_ts_ns - e.first_ts_ns
            kind = ("vertical" if len(hosts) == 1 else
                    "horizontal" if len(ports) == 1 else "mixed")
            outcomes = {o: e.count(o) for o in OUTCOMES}
            details = {
                "source": addr_text(source),
                "kind": kind,
                "probes": probes,
                "targets": e.distinct,
                "targets_capped": e.overflow > 0,
                "hosts": len(hosts),
                "ports": len(ports),
                "outcomes": outcomes,
                "span_s": round(span_ns / NS_PER_S, 6),
                "rate_per_s": round(probes / (span_ns / NS_PER_S), 1) if span_ns > 0 else None,
                "sample_ports": ports[:_SAMPLE],
                "sample_hosts": hosts[:_SAMPLE],
            }
            capped = "+" if e.overflow else ""
            where = (f"{len(ports)}{capped} ports of {hosts[0]}" if kind == "vertical"
                     else f"port {ports[0]} on {len(hosts)}{capped} hosts"
                     if kind == "horizontal"
                     else f"{len(ports)} ports on {len(hosts)} hosts")
            out.append(self.make(
                "port_scan", None, e.first_frame, e.last_frame, e.first_ts_ns,
                f"{details['source']} probed {where}: {outcomes['refused']} refused, "
                f"{outcomes['unanswered']} unanswered, {outcomes['abandoned']} abandoned "
                f"after SYN-ACK, {outcomes['open']} open", details))
        for (addr, port), e in sorted(self.servers.items(), key=lambda kv: kv[1].first_frame):
            attempts = e.count("unanswered")
            if e.distinct < int(self.p["min_sources"]) or attempts < int(self.p["min_attempts"]):
                continue
            server = endpoint_text(addr, port)
            span_ns = e.last_ts_ns - e.first_ts_ns
            single_share = round(e.single_syn / attempts, 3)
            details = {
                "server": server,
                "attempts": attempts,
                "sources": e.distinct,
                "sources_capped": e.overflow > 0,
                "single_syn_share": single_share,
                "span_s": round(span_ns / NS_PER_S, 6),
                "rate_per_s": round(attempts / (span_ns / NS_PER_S), 1) if span_ns > 0
                else None,
                "sample_sources": sorted(addr_text(a) for a in e.keys)[:_SAMPLE],
            }
            spoofed = single_share >= 0.9
            out.append(self.make(
                "syn_flood", None, e.first_frame, e.last_frame, e.first_ts_ns,
                f"{attempts} connection attempts from {e.distinct}"
                f"{'+' if e.overflow else ''} sources to {server} never answered"
                + (" (single SYNs: spoofed sources)" if spoofed
                   else " (clients retried: the server or a firewall dropped them)"),
                details))
        return out


# The compiled engine's twin of probe_outcome (tcptrace_py/_engine.pyx): the same tests on
# the connection's C fields.
from tcptrace_py.implementation import compiled as _compiled  # noqa: E402

reference_probe_outcome = probe_outcome
if _compiled is not None:
    probe_outcome = _compiled.probe_outcome  # noqa: F811
