"""Run tcptrace-py and the peer tools over the real captures and compute every check.

A *check* is one kind of comparison (``zeek.history``, ``tshark_live.flow_id``...); each case of
it (one connection, one direction, one capture) agrees or not. :func:`agreement` returns
``{check: Row}`` with the count agreed, the total and the disagreeing cases (with a frame or
key to look at). Peers are not ground truth (../shared/captures/README.md): docs/conformance.md
says, for each known difference, which side the packets prove right.

Sources, each skipped when absent:
- labels: ../shared/scenarios/labels.json (mirrors ../shared/score_scenarios.py) and the
  project's own samples/expected.json;
- recorded peer outputs: ../shared/captures/expected/{zeek,tcptrace,tcptrace_csv,tshark};
- live runs of ``tshark`` and ``tcptrace`` (when installed) over every capture.

Everything is computed once per process (``functools.cache``), so the lifecycle tests and the
conformance table share one pass. ``python -m conformance.peers`` (from tests/) prints the
table; ``--update`` rewrites baseline.json.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

from tcptrace_py.diagnostics import CaptureError
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CAPTURES = SHARED / "captures"
EXPECTED = CAPTURES / "expected"
SCENARIOS = SHARED / "scenarios"
SAMPLES = REPO / "samples"
BASELINE = Path(__file__).resolve().parent / "baseline.json"

Record = dict[str, Any]

# --------------------------------------------------------------------------- label mapping
# Mirrors ../shared/score_scenarios.py (OPEN_MAP, CLOSE_MAP, norm_state) so the test suite
# judges exactly as the scorer does.
OPEN_MAP = {"never_established": {"not_established"},
            "three_way_handshake": {"three_way_handshake"},
            "simultaneous_open": {"simultaneous_open"},
            "self_connect": {"simultaneous_open", "self_connect"}}
CLOSE_MAP = {"graceful_fin_both_ways": {"graceful"}, "rst_by_client": {"rst_by_client"},
             "rst_by_server": {"rst_by_server"}, "refused": {"refused"},
             "unanswered": {"unanswered"}, "open_at_capture_end": {"open_at_capture_end"},
             "half_closed_at_capture_end": {"half_closed_at_capture_end"}}


def norm_state(s: str | None) -> set[str]:
    """Label state text -> acceptable RFC 9293 names (score_scenarios.norm_state)."""
    s = (s or "").upper().replace("-", "_")
    if s.startswith("N/A") or not s:
        return {"CLOSED", "LISTEN", "NONE", "UNKNOWN", "", "INACTIVE"}
    first = re.split(r"[ ,(]", s)[0]
    first = {"FIN_WAIT2": "FIN_WAIT_2", "SYN_RECV": "SYN_RECEIVED"}.get(first, first)
    ok = {first}
    if "GAVE UP IN LAST_ACK" in s:
        ok.add("LAST_ACK")
    if "REQUEST SOCKET EXPIRED" in s:
        ok |= {"SYN_RECEIVED"}
    if "ENDED EARLY" in s:
        ok |= {"CLOSED", "TIME_WAIT"}
    return ok


def sample_state_ok(want: str, got: str) -> bool:
    """samples/expected.json gives the kernel's ``ss`` state, CLOSED when it listed no socket.
    INACTIVE is observer-only (the endpoint sent nothing we saw): its real state may be
    CLOSED or LISTEN, so it matches those, as the scorer's "n/a" rule does."""
    return want == got or (got == "INACTIVE" and want in ("CLOSED", "LISTEN"))


def ep(ip: str, port: int | str) -> str:
    """Endpoint text as labels and peers write it: ``ip:port``, ``[v6]:port`` for IPv6
    (our records carry plain RFC 5952 addresses; tcptrace writes ``fd77::0001``, so every
    address is put in RFC 5952 form first)."""
    try:
        ip = str(ipaddress.ip_address(str(ip).strip("[]")))
    except ValueError:
        pass
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


def rec_eps(r: Record) -> tuple[str, str]:
    return ep(r["client_ip"], r["client_port"]), ep(r["server_ip"], r["server_port"])


def match_in_order(wanted: Iterable[tuple[str, str]],
                   records: list[Record]) -> list[Record | None]:
    """Pair each wanted (a, b) endpoint pair with the first unused record on that pair."""
    pool = list(records)
    out: list[Record | None] = []
    for a, b in wanted:
        hit = next((r for r in pool if set(rec_eps(r)) == {a, b}), None)
        if hit is not None:
            pool.remove(hit)
        out.append(hit)
    return out


# --------------------------------------------------------------------------- captures
def shared_captures() -> list[Path]:
    """Every capture of ../shared/captures/MANIFEST.tsv that exists."""
    manifest = CAPTURES / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    paths = [CAPTURES / r.split("\t")[0] for r in manifest.read_text().splitlines()[1:] if r]
    return [p for p in paths if p.exists()]


def scenario_labels() -> dict[str, Any]:
    p = SCENARIOS / "labels.json"
    return dict(json.loads(p.read_text())["scenarios"]) if p.exists() else {}


def sample_labels() -> dict[str, Any]:
    p = SAMPLES / "expected.json"
    return dict(json.loads(p.read_text())["samples"]) if p.exists() else {}


def all_captures() -> list[Path]:
    out = shared_captures()
    out += sorted(SCENARIOS.glob("*.pcap")) if SCENARIOS.exists() else []
    out += [SAMPLES / s["pcap"] for s in sample_labels().values() if (SAMPLES / s["pcap"]).exists()]
    return out


@cache
def analyze(path: Path) -> list[Record] | None:
    """Our records for one capture in flow_id order; None when the capture cannot be read."""
    try:
        recs = [r.record for r in Engine(Options(keep_events=False)).run(str(path))]
    except CaptureError:
        return None
    return sorted(recs, key=lambda r: int(r["flow_id"]))


# --------------------------------------------------------------------------- live peers
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / \
    "tcptrace-py-conformance"
"""Peer-tool outputs cached by (command, tool version, capture sha256): tshark's start-up costs
~0.9 s a file, so later runs take a second. Outside the repository; delete it at will."""


@cache
def _version(tool: str) -> str:
    try:
        p = subprocess.run([tool, "-v"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() \
        else "?"


def _run(cmd: list[str]) -> str | None:
    path = Path(cmd[cmd.index("-r") + 1])
    key = hashlib.sha256("\0".join([*cmd[:-1], _version(cmd[0])]).encode()
                         + hashlib.sha256(path.read_bytes()).digest()).hexdigest()
    cached = CACHE_DIR / f"{key}.json"
    if cached.exists():
        return cast("str | None", json.loads(cached.read_text())["stdout"])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = p.stdout if p.returncode == 0 else None
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps({"cmd": cmd, "stdout": out}))
    except OSError:
        pass  # a read-only home only costs time
    return out


@dataclass
class TsharkRun:
    """Live two-pass ``tshark -2 -T fields`` output (frame.number, tcp.stream, tcp.len,
    tcp.completeness): two passes so that tcp.completeness is the stream's final value, the
    definition of our ``completeness`` column."""

    stream_of: dict[int, int] = field(default_factory=dict)
    """frame number -> tcp.stream (TCP frames only)."""
    packets: dict[int, int] = field(default_factory=dict)
    payload_bytes: dict[int, int] = field(default_factory=dict)
    completeness: dict[int, int] = field(default_factory=dict)


def _tshark(path: Path) -> TsharkRun | None:
    out = _run(["tshark", "-n", "-2", "-Y", "tcp", "-T", "fields", "-e", "frame.number", "-e",
                "tcp.stream", "-e", "tcp.len", "-e", "tcp.completeness", "-r", str(path)])
    if out is None:
        return None
    run = TsharkRun()
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 4 or not parts[1]:
            continue
        # A frame may carry several TCP layers (tunnels): take the first, as we decode it.
        frame, stream = int(parts[0]), int(parts[1].split(",")[0])
        run.stream_of[frame] = stream
        run.packets[stream] = run.packets.get(stream, 0) + 1
        run.payload_bytes[stream] = run.payload_bytes.get(stream, 0) + int(
            parts[2].split(",")[0] or "0")
        if parts[3]:
            run.completeness[stream] = int(parts[3].split(",")[0])
    return run


def _tcptrace_csv(path: Path) -> str | None:
    return _run(["tcptrace", "-n", "--csv", "-l", "-r", str(path)])


FULL = os.environ.get("CONFORMANCE_FULL") == "1"
"""tshark costs ~0.9 s a file (start-up), so by default it runs live only on the scenarios and
samples (~40 files); the shared captures are covered by TShark 4.0.17's recorded per-stream
output. CONFORMANCE_FULL=1 also runs it live on every shared capture (``tshark_live_shared``)."""


@cache
def live_runs() -> tuple[dict[Path, TsharkRun | None], dict[Path, str | None]]:
    """tshark and tcptrace over the captures, two at a time (the machine has 2 cores)."""
    caps = all_captures()
    shared = set(shared_captures())
    ts_caps = caps if FULL else [c for c in caps if c not in shared]
    ts: dict[Path, TsharkRun | None] = {}
    tt: dict[Path, str | None] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        if shutil.which("tshark"):
            ts = dict(zip(ts_caps, pool.map(_tshark, ts_caps), strict=True))
        if shutil.which("tcptrace"):
            tt = dict(zip(caps, pool.map(_tcptrace_csv, caps), strict=True))
    return ts, tt


# --------------------------------------------------------------------------- parsers
def parse_tcptrace_csv(text: str) -> list[dict[str, str]]:
    """``tcptrace -n --csv -l`` output -> one dict per connection (header names as keys)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("conn_#")), None)
    if start is None:
        return []
    rows = csv.reader(io.StringIO("\n".join(lines[start:])))
    header = [h.strip() for h in next(rows)]
    return [{k: v.strip() for k, v in zip(header, row, strict=False)} for row in rows if row]


def parse_tcptrace_long(text: str) -> tuple[int, list[dict[str, Any]]]:
    """``tcptrace -l`` long output -> (connections traced, per connection a/b and fields)."""
    m = re.search(r"(\d+) TCP connections? traced", text)
    count = int(m.group(1)) if m else 0
    conns: list[dict[str, Any]] = []
    pat = re.compile(r"([A-Za-z#/_ -]+?):\s+(\d+/\d+|[\d.]+|Y|N)")
    cur: dict[str, Any] | None = None
    for line in text.splitlines():
        if mm := re.match(r"\s+host a:\s+(\S+)", line):
            cur = {"a": mm.group(1), "a2b": {}, "b2a": {}}
            conns.append(cur)
        elif (mm := re.match(r"\s+host b:\s+(\S+)", line)) and cur is not None:
            cur["b"] = mm.group(1)
        elif cur is not None:
            found = pat.findall(line)
            if len(found) == 2 and found[0][0].strip() == found[1][0].strip():
                key = found[0][0].strip()
                cur["a2b"].setdefault(key, found[0][1])
                cur["b2a"].setdefault(key, found[1][1])
    return count, conns


def parse_zeek(log: Path) -> list[dict[str, str]]:
    """Rows (history, conn_state, ids where given) of the first baseline section of a log."""
    rows: list[dict[str, str]] = []
    cols: list[str] | None = None
    for line in log.read_text().splitlines():
        if line.startswith("# === baseline") and rows:
            break
        if line.startswith("#fields"):
            cols = line.split("\t")[1:]
            continue
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if cols is None:
            if "history" in fields:
                cols = fields
            continue
        row = dict(zip(cols, fields, strict=False))
        if row.get("proto", "tcp") == "tcp" and "history" in row:
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- checks
@dataclass
class Row:
    """One check's tally."""

    agreed: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, ok: bool, what: str) -> None:
        self.total += 1
        if ok:
            self.agreed += 1
        else:
            self.misses.append(what)


Table = dict[str, Row]


def _rel(p: Path) -> str:
    for base in (CAPTURES, SHARED, REPO):
        if p.is_relative_to(base):
            return str(p.relative_to(base))
    return str(p)


def check_scenario_labels(t: Table) -> None:
    for name, sc in sorted(scenario_labels().items()):
        check_scenario(t, name, sc)


def check_scenario(t: Table, name: str, sc: dict[str, Any]) -> None:
    """One labelled scenario, judged as ../shared/score_scenarios.py judges it."""
    pcap = SCENARIOS / sc.get("pcap", name + ".pcap")
    exp = sc["expected"]
    recs = analyze(pcap) or []
    t.setdefault("labels.conn_count", Row()).add(
        len(recs) == exp["tcp_connections"], f"{name}: {len(recs)} != {exp['tcp_connections']}")
    conns = exp["connections"]
    for c, r in zip(conns, match_in_order([(c["client"], c["server"]) for c in conns], recs),
                    strict=True):
        where = f"{name} {c['client']}"
        sym = c["open"] in ("simultaneous_open", "self_connect")
        swapped = r is not None and rec_eps(r)[0] != c["client"]
        if r is None:
            for k in ("open", "close", "client_state", "server_state"):
                t.setdefault(f"labels.{k}", Row()).add(False, f"{where}: no record")
            continue
        cs, ss = ((r["server_state"], r["client_state"]) if swapped
                  else (r["client_state"], r["server_state"]))
        roles_ok = not swapped or sym
        t.setdefault("labels.open", Row()).add(
            roles_ok and r["open"] in OPEN_MAP.get(c["open"], {c["open"]}),
            f"{where}: open {r['open']} vs {c['open']}")
        t.setdefault("labels.close", Row()).add(
            roles_ok and (r["close"] in CLOSE_MAP.get(c["close"], {c["close"]})
                          or (swapped and sym)),
            f"{where}: close {r['close']} vs {c['close']}")
        t.setdefault("labels.client_state", Row()).add(
            str(cs).upper() in norm_state(c["final_state"]["client"]),
            f"{where}: client_state {cs} vs {c['final_state']['client']}")
        t.setdefault("labels.server_state", Row()).add(
            str(ss).upper() in norm_state(c["final_state"]["server"]),
            f"{where}: server_state {ss} vs {c['final_state']['server']}")


def sample_results() -> list[tuple[str, int, str, str, str, bool]]:
    """(sample, connection index, field, want, got, ok) for every labelled sample field."""
    out = []
    for name, sc in sorted(sample_labels().items()):
        recs = analyze(SAMPLES / sc["pcap"]) or []
        out.append((name, -1, "tcp_connections", str(sc["tcp_connections"]), str(len(recs)),
                    len(recs) == sc["tcp_connections"]))
        conns = sc["connections"]
        for i, (c, r) in enumerate(zip(conns, match_in_order(
                [(c["client"], c["server"]) for c in conns], recs), strict=True)):
            for k in ("open", "close", "client_state", "server_state"):
                got = "<no record>" if r is None else str(r[k])
                if r is not None and rec_eps(r)[0] != c["client"] and k.endswith("_state") \
                        and c["client"] != c["server"]:
                    got = str(r["server_state" if k == "client_state" else "client_state"])
                ok = r is not None and (sample_state_ok(c[k], got) if k.endswith("_state")
                                        else got == c[k])
                out.append((name, i, k, str(c[k]), got, ok))
    return out


def check_sample_labels(t: Table) -> None:
    for name, i, k, want, got, ok in sample_results():
        check = "samples.conn_count" if i < 0 else f"samples.{k}"
        t.setdefault(check, Row()).add(ok, f"{name}#{i}: {k} {got} vs {want}")


def check_zeek(t: Table) -> None:
    for log in sorted((EXPECTED / "zeek").glob("*.conn.log")):
        name = log.name[: -len(".conn.log")]
        recs = analyze(CAPTURES / "zeek" / name)
        if recs is None:
            continue
        for row in parse_zeek(log):
            if "id.orig_h" in row:
                want = {ep(row["id.orig_h"], row["id.orig_p"]), ep(row["id.resp_h"],
                                                                    row["id.resp_p"])}
                hits = [r for r in recs if set(rec_eps(r)) == want]
            else:
                hits = recs
            r = hits[0] if len(hits) == 1 else None
            where = f"zeek/{name} {row.get('id.orig_h', '')}:{row.get('id.orig_p', '')}"
            t.setdefault("zeek.history", Row()).add(
                r is not None and r["history"] == row["history"],
                f"{where}: history {r and r['history']} vs {row['history']}")
            if "conn_state" in row:
                t.setdefault("zeek.conn_state", Row()).add(
                    r is not None and r["conn_state"] == row["conn_state"],
                    f"{where}: conn_state {r and r['conn_state']} vs {row['conn_state']}")


def _dir_cols(r: Record, a: str) -> tuple[str, str]:
    """Column prefixes for tcptrace's a2b and b2a given host a's endpoint."""
    return ("client_", "server_") if rec_eps(r)[0] == a else ("server_", "client_")


# tcptrace csv column stem -> our column suffix, where the definitions match
# (docs/sequence-analysis.md): packets per direction, unique bytes, retransmitted data packets.
TCPTRACE_FIELDS = {"total_packets": "packets", "unique_bytes_sent": "unique_bytes",
                   "rexmt_data_pkts": "rexmt_data_pkts"}


def _compare_tcptrace_csv(t: Table, prefix: str, label: str, recs: list[Record],
                          rows: list[dict[str, str]]) -> None:
    t.setdefault(f"{prefix}.conn_count", Row()).add(
        len(rows) == len(recs), f"{label}: tcptrace {len(rows)} vs {len(recs)}")
    for row, r in zip(rows, match_in_order(
            [(ep(row["host_a"], row["port_a"]), ep(row["host_b"], row["port_b"]))
             for row in rows], recs), strict=True):
        a = ep(row["host_a"], row["port_a"])
        for stem, ours in TCPTRACE_FIELDS.items():
            for d, col in zip(("a2b", "b2a"), _dir_cols(r, a) if r else ("", ""), strict=True):
                want = row.get(f"{stem}_{d}", "")
                got = r.get(col + ours) if r else None
                t.setdefault(f"{prefix}.{ours}", Row()).add(
                    r is not None and str(got) == want,
                    f"{label} conn {row['conn_#']} {d}: {ours} {got} vs {want}")


def check_tcptrace_recorded(t: Table) -> None:
    for f in sorted((EXPECTED / "tcptrace_csv").rglob("*.csv")):
        cap = CAPTURES / str(f.relative_to(EXPECTED / "tcptrace_csv"))[: -len(".csv")]
        recs = analyze(cap)
        rows = parse_tcptrace_csv(f.read_text())
        if recs is None or not rows:
            continue
        _compare_tcptrace_csv(t, "tcptrace_csv", _rel(cap), recs, rows)
    for f in sorted((EXPECTED / "tcptrace").glob("*.long")):
        cap = CAPTURES / "tcptrace" / f.name[: -len(".long")]
        recs = analyze(cap)
        if recs is None:
            continue
        count, conns = parse_tcptrace_long(f.read_text())
        t.setdefault("tcptrace_long.conn_count", Row()).add(
            count == len(recs), f"{_rel(cap)}: tcptrace {count} vs {len(recs)}")
        for c, r in zip(conns, match_in_order([(c["a"], c["b"]) for c in conns], recs),
                        strict=True):
            for d, col in zip(("a2b", "b2a"), _dir_cols(r, c["a"]) if r else ("", ""),
                              strict=True):
                for label, ours in (("total packets", "packets"),
                                    ("unique bytes sent", "unique_bytes"),
                                    ("rexmt data pkts", "rexmt_data_pkts")):
                    want = c[d].get(label)
                    got = r.get(col + ours) if r else None
                    t.setdefault(f"tcptrace_long.{ours}", Row()).add(
                        str(got) == want, f"{_rel(cap)} {c['a']} {d}: {ours} {got} vs {want}")


def check_tshark_recorded(t: Table) -> None:
    for f in sorted((EXPECTED / "tshark").rglob("*.json")):
        cap = CAPTURES / str(f.relative_to(EXPECTED / "tshark"))[: -len(".json")]
        recs = analyze(cap)
        if recs is None:
            continue
        by_first = {int(r["first_frame"]): r for r in recs}
        for st in json.loads(f.read_text())["streams"]:
            r = by_first.get(int(st["first_frame"]))
            where = f"{_rel(cap)} stream {st['stream']} (frame {st['first_frame']})"
            t.setdefault("tshark.flow_id", Row()).add(
                r is not None and r["flow_id"] == st["stream"],
                f"{where}: flow_id {r and r['flow_id']}")
            got_p = r and r["client_packets"] + r["server_packets"]
            t.setdefault("tshark.packets", Row()).add(
                got_p == st["packets"], f"{where}: packets {got_p} vs {st['packets']}")
            got_b = r and r["client_payload_bytes"] + r["server_payload_bytes"]
            t.setdefault("tshark.payload_bytes", Row()).add(
                got_b == st["payload_bytes"],
                f"{where}: payload {got_b} vs {st['payload_bytes']}")


def check_tshark_live(t: Table) -> None:
    ts, _ = live_runs()
    shared = set(shared_captures())
    for cap, run in ts.items():
        recs = analyze(cap)
        if run is None or recs is None:
            continue
        pre = "tshark_live_shared" if cap in shared else "tshark_live"
        t.setdefault(f"{pre}.conn_count", Row()).add(
            len(run.packets) == len(recs), f"{_rel(cap)}: {len(recs)} vs {len(run.packets)}")
        for r in recs:
            where = f"{_rel(cap)} flow {r['flow_id']}"
            first = run.stream_of.get(int(r["first_frame"]))
            last = run.stream_of.get(int(r["last_frame"]))
            t.setdefault(f"{pre}.flow_id", Row()).add(
                first == last == r["flow_id"],
                f"{where}: frames {r['first_frame']}/{r['last_frame']} in streams {first}/{last}")
            n = r["client_packets"] + r["server_packets"]
            t.setdefault(f"{pre}.packets", Row()).add(
                first is not None and run.packets.get(first) == n,
                f"{where}: packets {n} vs {first is not None and run.packets.get(first)}")
            b = r["client_payload_bytes"] + r["server_payload_bytes"]
            t.setdefault(f"{pre}.payload_bytes", Row()).add(
                first is not None and run.payload_bytes.get(first) == b,
                f"{where}: payload {b} vs {first is not None and run.payload_bytes.get(first)}")
            want = run.completeness.get(first) if first is not None else None
            t.setdefault(f"{pre}.completeness", Row()).add(
                want == r["completeness"], f"{where}: completeness {r['completeness']} vs {want}")


def check_tcptrace_live(t: Table) -> None:
    _, tt = live_runs()
    for cap, out in tt.items():
        recs = analyze(cap)
        rows = parse_tcptrace_csv(out) if out else []
        if recs is None or not rows:
            continue
        _compare_tcptrace_csv(t, "tcptrace_live", _rel(cap), recs, rows)


@cache
def agreement() -> Table:
    """Every check over every available source: {check: Row}, sorted by name."""
    t: Table = {}
    check_scenario_labels(t)
    check_sample_labels(t)
    if EXPECTED.exists():
        check_zeek(t)
        check_tcptrace_recorded(t)
        check_tshark_recorded(t)
    check_tshark_live(t)
    check_tcptrace_live(t)
    return dict(sorted(t.items()))


def render(t: Table) -> str:
    """The agreement table as Markdown."""
    lines = ["| check | agreed | total | % |", "| --- | ---: | ---: | ---: |"]
    for name, row in t.items():
        pct = 100.0 * row.agreed / row.total if row.total else 100.0
        lines.append(f"| {name} | {row.agreed} | {row.total} | {pct:.1f} |")
    return "\n".join(lines) + "\n"


def write_baseline(t: Table) -> None:
    BASELINE.write_text(json.dumps({k: {"agreed": v.agreed, "total": v.total}
                                    for k, v in t.items()}, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":  # cd tests && python -m conformance.peers [--update] [-v]
    table = agreement()
    sys.stdout.write(render(table))
    if "-v" in sys.argv:
        for name, row in table.items():
            for miss in row.misses:
                sys.stdout.write(f"{name}: {miss}\n")
    if "--update" in sys.argv:
        write_baseline(table)
