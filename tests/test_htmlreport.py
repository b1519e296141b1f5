"""The HTML report (issue 19): its data, the CLI/API/batch entry points, and the page itself
in headless Chromium (tests/browser_util.py; those skip when Chromium or Playwright is
absent). Screenshots go to ``TCPTRACE_PY_SCREENSHOTS`` when set, for people to look at."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_util import launch
from captures_util import tcp_frame, write_pcap
from click.testing import CliRunner
from outputs_util import SCENARIOS, T0_NS, mixed_frames

import tcptrace_py
from tcptrace_py import plots
from tcptrace_py.analysis import flags as af
from tcptrace_py.capture import read_flow_segments, read_flows_segments
from tcptrace_py.cli import main
from tcptrace_py.events import Anomaly
from tcptrace_py.htmlreport import ReportLimits, build_html, choose_flows, json_for_script
from tcptrace_py.segment import ACK, FIN, PSH, RST, SYN

MS = 1_000_000
LOSS = SCENARIOS / "data_loss_retrans.pcap"
MANY = 250
"""Connections in the generated capture: more than the table's page of 100."""
HOSTILE = "</script><script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">&\u2028"


def many_frames(n: int = MANY) -> list[tuple[int, bytes]]:
    """``n`` short connections after the mixed capture's: handshake, a request, an answer of
    ``100 * (i % 37 + 1)`` bytes, both FINs; every seventh SYN is refused with a RST."""
    f: list[tuple[int, bytes]] = []
    for i in range(n):
        t = T0_NS + (4000 + i * 10) * MS
        c, s = f"10.1.{i // 200}.{i % 200 + 1}", "10.2.0.1"
        cp, sp = 30000 + i, 80 if i % 2 else 8080
        if i % 7 == 0:
            f += [(t, tcp_frame(c, s, cp, sp, 100, 0, SYN)),
                  (t + MS, tcp_frame(s, c, sp, cp, 0, 101, RST | ACK))]
            continue
        size = 100 * (i % 37 + 1)
        f += [(t, tcp_frame(c, s, cp, sp, 100, 0, SYN)),
              (t + MS, tcp_frame(s, c, sp, cp, 500, 101, SYN | ACK)),
              (t + 2 * MS, tcp_frame(c, s, cp, sp, 101, 501, ACK)),
              (t + 3 * MS, tcp_frame(c, s, cp, sp, 101, 501, PSH | ACK, payload=b"q" * 10)),
              (t + 4 * MS, tcp_frame(s, c, sp, cp, 501, 111, PSH | ACK, payload=b"r" * size)),
              (t + 5 * MS, tcp_frame(c, s, cp, sp, 111, 501 + size, FIN | ACK)),
              (t + 6 * MS, tcp_frame(s, c, sp, cp, 501 + size, 112, FIN | ACK)),
              (t + 7 * MS, tcp_frame(c, s, cp, sp, 112, 502 + size, ACK))]
    return f


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mixed capture (four fates, a retransmission, SACK) and MANY more connections."""
    return write_pcap(tmp_path_factory.mktemp("report") / "mixed.pcap",
                      mixed_frames() + many_frames())


@pytest.fixture(scope="module")
def result(capture: Path) -> tcptrace_py.AnalysisResult:
    return tcptrace_py.analyze(capture)


@pytest.fixture(scope="module")
def report(result: tcptrace_py.AnalysisResult, tmp_path_factory: pytest.TempPathFactory
           ) -> Path:
    return result.to_html(tmp_path_factory.mktemp("html") / "report.html")


def page_data(text: str, block: str = "report-data") -> Any:
    """The JSON of one ``<script type="application/json">`` block of a report."""
    m = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>', text,
                  re.S)
    assert m is not None, block
    return json.loads(m.group(1))


# --------------------------------------------------------------------------- data
def test_json_for_script_cannot_end_the_block() -> None:
    text = json_for_script({"k": HOSTILE, "n": [1, 2.5, None]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text
    assert json.loads(text) == {"k": HOSTILE, "n": [1, 2.5, None]}


def test_report_data(result: tcptrace_py.AnalysisResult, report: Path) -> None:
    """Every connection is in the table; detail is embedded for those with findings and
    the largest, each block parseable, with its ladder and both senders' graphs."""
    text = report.read_text(encoding="utf-8")
    data = page_data(text)
    recs = {r["flow_id"]: r for r in result.records}
    assert sorted(data["connections"]["flow_id"]) == sorted(recs)
    assert data["summary"]["connections"] == len(recs)
    assert len(data["findings"]) == len(result.all_anomalies)
    with_findings = {r.record["flow_id"] for r in result.results if r.anomalies}
    by_size = sorted(recs.values(), key=lambda r: (-(r["client_payload_bytes"] +
                                                     r["server_payload_bytes"]),
                                                   r["flow_id"]))
    want = with_findings | {r["flow_id"] for r in by_size[:20]}
    embedded = {int(m) for m in re.findall(r'id="flow-(\d+)"', text)}
    assert embedded == want
    assert data["detail"]["embedded"] == len(want)
    flow0 = page_data(text, "flow-0")
    assert [row[0] for row in flow0["ladder"]] == list(range(1, 14)) or \
        len(flow0["ladder"]) == recs[0]["client_packets"] + recs[0]["server_packets"]
    assert flow0["sender"] == "server"
    assert flow0["server"]["tsg"]["retx"]["c"]  # the retransmitted answer, classified
    assert flow0["server"]["tsg"]["sack"]["t"]
    assert {e[5] for e in flow0["events"]} >= {"ESTABLISHED"}


def test_detail_limits_are_kept_and_said(result: tcptrace_py.AnalysisResult) -> None:
    """A byte budget that fits one connection embeds the first (the worst finding) and
    names the rest; ``max_flow_packets`` leaves big connections out and names them."""
    full = page_data(build_html(result))
    first = build_html(result, limits=ReportLimits(detail_budget_bytes=1))
    data = page_data(first)
    assert data["detail"]["embedded"] == 0
    assert len(data["detail"]["over_budget"]) == full["detail"]["embedded"]
    small = build_html(result, limits=ReportLimits(largest=0, max_flow_packets=7))
    data = page_data(small)
    big = {r["flow_id"] for r in result.records
           if r["client_packets"] + r["server_packets"] > 7}
    assert set(data["detail"]["too_many_packets"]) == big
    assert not big & {int(m) for m in re.findall(r'id="flow-(\d+)"', small)}
    # At most max_connections built, the most severe first; the rest named.
    few = build_html(result, limits=ReportLimits(max_connections=3))
    data = page_data(few)
    embedded = [int(m) for m in re.findall(r'id="flow-(\d+)"', few)]
    assert len(embedded) == 3
    assert len(data["detail"]["over_budget"]) == full["detail"]["embedded"] - 3
    worst = max(result.results, key=lambda r: max(
        (("info", "warning", "error").index(a.severity) for a in r.anomalies), default=-1))
    assert worst.record["flow_id"] in embedded
    # Findings: at most N of a code listed, the rest counted by code.
    data = page_data(build_html(result, limits=ReportLimits(max_findings_per_code=2)))
    codes: dict[str, int] = {}
    for a in result.all_anomalies:
        codes[a.code] = codes.get(a.code, 0) + 1
    listed: dict[str, int] = {}
    for f in data["findings"]:
        listed[f["code"]] = listed.get(f["code"], 0) + 1
    assert listed == {c: min(n, 2) for c, n in codes.items()}
    assert data["findings_left_out"] == {c: n - 2 for c, n in codes.items() if n > 2}
    assert data["findings_left_out"]["connection_refused"] > 30


def test_unreadable_source_and_non_finite_evidence(capture: Path) -> None:
    """A capture that cannot be read twice (a pipe) gives a report without detail that
    says so; NaN or infinite evidence becomes null instead of breaking the page's JSON."""
    import io

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            chunk = self.data.read(len(b))
            b[:len(chunk)] = chunk
            return len(chunk)

    res = tcptrace_py.analyze(io.BufferedReader(Pipe(capture.read_bytes())))
    data = page_data(build_html(res))
    assert data["detail"]["embedded"] == 0
    assert len(data["detail"]["unreadable"]) == len(choose_flows(res.results, ReportLimits()))
    a = Anomaly("x", "info", 0, 1, 1, 0, "s", {"ratio": float("nan"), "l": [float("inf"), 1.5]})
    res.results[0].anomalies.append(a)
    data = page_data(build_html(res))
    (mine,) = [f for f in data["findings"] if f["code"] == "x"]
    assert mine["details"] == {"ratio": None, "l": [None, 1.5]}


def test_read_flows_segments_is_one_pass_of_read_flow_segments(
        result: tcptrace_py.AnalysisResult, capture: Path) -> None:
    recs = result.records[:40]
    many = read_flows_segments(capture, recs)
    for rec in recs:
        one = list(read_flow_segments(capture, rec, rec["last_frame"]))
        assert [(s.frame, fc) for s, fc in many[rec["flow_id"]]] == \
            [(s.frame, fc) for s, fc in one]


@pytest.mark.skipif(not (SCENARIOS / "port_reuse_time_wait.pcap").exists(),
                    reason="no ../shared scenarios")
def test_read_flows_segments_tells_incarnations_apart() -> None:
    path = SCENARIOS / "port_reuse_time_wait.pcap"
    res = tcptrace_py.analyze(path)
    many = read_flows_segments(path, res.records)
    assert len(res.records) >= 2
    for rec in res.records:
        frames = [s.frame for s, _fc in many[rec["flow_id"]]]
        assert frames == [s.frame for s, _ in read_flow_segments(path, rec,
                                                                 rec["last_frame"])]
        assert frames[0] == rec["first_frame"] and frames[-1] == rec["last_frame"]


@pytest.mark.skipif(not LOSS.exists(), reason="no ../shared scenarios")
def test_tsg_series_classes_are_the_analysis_flags() -> None:
    """Each retransmitted data segment of the tsg carries the class its analysis flags say
    (a real Linux bulk transfer with SACK-driven fast retransmissions)."""
    res = tcptrace_py.analyze(LOSS, packets=True)
    fp = plots.flow_packets(res, 0)
    sender = fp.sender_is_client("auto")
    s = plots.tsg_series(fp, sender)
    masks = {row[0]: row[5] for row in res.packet_rows()}
    want = {f: plots.retransmission_class(m) for f, m in masks.items()
            if m & af.RETRANSMISSION}
    got = {r[3]: r[4] for r in s.retx}
    assert got and got == {f: c for f, c in want.items() if f in got}
    assert len(got) == res.records[0]["server_retransmitted_segments"]
    assert "fast" in got.values()
    assert plots.retransmission_class(af.RETRANSMISSION | af.RTO_RETRANSMISSION) == "rto"
    assert plots.retransmission_class(af.RETRANSMISSION | af.FAST_RETRANSMISSION |
                                      af.SPURIOUS_RETRANSMISSION) == "spurious"
    assert plots.retransmission_class(af.DUP_ACK) is None


# --------------------------------------------------------------------------- entry points
def test_cli_report(capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", str(capture), "-o", str(out), "--largest", "0",
                                    "--title", "my capture"])
    assert res.exit_code == 0, res.output
    data = page_data(out.read_text(encoding="utf-8"))
    assert data["title"] == "my capture"
    assert data["detail"]["limits"]["largest"] == 0
    res = CliRunner().invoke(main, ["report", str(capture), "-o", str(out),
                                    "--max-detail-mb", "0"])
    assert res.exit_code == 0
    assert page_data(out.read_text(encoding="utf-8"))["detail"]["embedded"] == 0
    bad = tmp_path / "bad.pcap"
    bad.write_text("not a capture")
    res = CliRunner().invoke(main, ["report", str(bad), "-o", str(tmp_path / "b.html")])
    assert res.exit_code == 2 and "not a capture" in res.stderr
    assert not (tmp_path / "b.html").exists()
    res = CliRunner().invoke(main, ["report", str(capture), "-o", str(tmp_path)])
    assert res.exit_code == 2


def test_batch_report_index(capture: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from tcptrace_py.batch_cli import batch

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(capture, inputs / "a.pcap")
    hostile = 'b<img src=x onerror="window.pwned=1">.pcap'
    shutil.copy(capture, inputs / hostile)
    (inputs / "broken.pcap").write_text("not a capture")
    res = CliRunner().invoke(batch, [str(inputs), "-o", str(tmp_path / "out"), "-j", "1",
                                     "--report", "-q"])
    assert res.exit_code == 1, res.output  # the broken capture failed
    reports = tmp_path / "out" / "reports"
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert "<img" not in index
    data = page_data(index)
    rows = {Path(c["name"]).name: c for c in data["captures"]}
    assert set(rows) == {"a.pcap", hostile, "broken.pcap"}
    assert rows["broken.pcap"]["href"] is None and "not a capture" in rows["broken.pcap"][
        "error"]
    assert re.fullmatch(r"b_img_src_x_onerror__window\.pwned_1__\.pcap-[0-9a-f]{8}\.html",
                        rows[hostile]["href"])
    for name in ("a.pcap", hostile):
        page = reports / rows[name]["href"]
        assert page_data(page.read_text(encoding="utf-8"))["summary"]["connections"] == \
            rows[name]["connections"] == MANY + 4


def test_analyze_does_not_import_the_report(capture: Path) -> None:
    """Start-up stays lean: analyze (API and CLI) never imports the report code."""
    code = ("import sys, tcptrace_py\n"
            f"tcptrace_py.analyze({str(capture)!r})\n"
            "from tcptrace_py.cli import main\n"
            "try:\n"
            f"    main(['analyze', {str(capture)!r}, '--format', 'jsonl', '-q'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "assert 'tcptrace_py.htmlreport' not in sys.modules, 'imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


# --------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with launch(str(tmp_path_factory.mktemp("profile"))) as context:
        yield context


class Page:
    """A report opened in a new tab, with what it logged and requested."""

    def __init__(self, context: Any, path: Path, width: int = 1920, height: int = 1080):
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page = page = context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.on("console", lambda m: self.errors.append(m.text) if m.type in
                ("error", "warning") else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("dialog", self._dialog)
        self.url = path.resolve().as_uri()
        page.goto(self.url)
        page.wait_for_selector("#conn-table tbody tr")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def flows_shown(self) -> list[int]:
        return [int(x) for x in self.page.eval_on_selector_all(
            "#conn-table tbody tr", "rows => rows.map(r => r.dataset.flow)")]

    def view(self, plot: str) -> list[float]:
        view: list[float] = json.loads(
            self.page.get_attribute(f"[data-plot={plot}] canvas", "data-view"))
        return view

    def close(self) -> None:
        self.page.close()


def _shot(png: bytes, name: str) -> None:
    where = os.environ.get("TCPTRACE_PY_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        (Path(where) / name).write_bytes(png)


def test_page_loads_without_errors_or_network(browser: Any, report: Path) -> None:
    p = Page(browser, report)
    p.page.eval_on_selector("#conn-table tbody tr", "r => r.click()")
    p.page.wait_for_selector("[data-plot=tsg] canvas")
    assert p.errors == []
    assert p.requests == [p.url]  # the file itself, nothing else
    assert p.page.title() == "mixed.pcap - tcptrace-py report"
    # What was left out of the detail is said where it is seen first.
    data = page_data(report.read_text(encoding="utf-8"))
    note = p.page.inner_text("#left-out")
    assert f"embedded for {data['detail']['embedded']} of {MANY + 4} connections" in note
    # Every embedded connection opens without an error (IPv6, midstream, refused,
    # unanswered: connections with no data, no ACK or one packet).
    text = report.read_text(encoding="utf-8")
    for fid in sorted(int(m) for m in re.findall(r'id="flow-(\d+)"', text)):
        p.page.evaluate(f"window.tcptraceReport.openFlow({fid})")
        assert p.page.get_attribute("#detail", "data-flow") == str(fid)
        assert p.page.locator("[data-plot=tsg] canvas").count() == 1
    assert p.errors == []
    p.close()


def test_table_sorts_filters_and_pages(browser: Any, report: Path,
                                       result: tcptrace_py.AnalysisResult) -> None:
    recs = result.records
    p = Page(browser, report)
    assert p.flows_shown() == sorted(r["flow_id"] for r in recs)[:100]
    assert "1 of 3" in p.page.inner_text("#page-label")
    p.page.click("#page-next")
    assert p.flows_shown() == sorted(r["flow_id"] for r in recs)[100:200]
    # Sort by payload bytes: largest first, ties by flow id.
    p.page.click("th[data-key=bytes]")
    want = sorted(recs, key=lambda r: (-(r["client_payload_bytes"] + r["server_payload_bytes"]),
                                       r["flow_id"]))
    assert p.flows_shown() == [r["flow_id"] for r in want][:100]
    p.page.click("th[data-key=bytes]")  # again: ascending
    want = sorted(recs, key=lambda r: (r["client_payload_bytes"] + r["server_payload_bytes"],
                                       r["flow_id"]))
    assert p.flows_shown() == [r["flow_id"] for r in want][:100]
    p.page.click("th[data-key=flow_id]")
    # Filters: close, host, port, state, finding; they combine.
    p.page.select_option("#f-close", "refused")
    assert sorted(p.flows_shown()) == sorted(r["flow_id"] for r in recs
                                             if r["close"] == "refused")
    p.page.select_option("#f-close", "")
    p.page.fill("#f-host", "10.0.0.")
    assert sorted(p.flows_shown()) == sorted(
        r["flow_id"] for r in recs if "10.0.0." in r["client_ip"] + " " + r["server_ip"])
    p.page.fill("#f-host", "")
    p.page.fill("#f-port", "8080")
    assert sorted(p.flows_shown()) == sorted(
        r["flow_id"] for r in recs if 8080 in (r["client_port"], r["server_port"]))[:100]
    p.page.fill("#f-port", "")
    p.page.select_option("#f-state", "TIME_WAIT")
    state = sorted(r["flow_id"] for r in recs if "TIME_WAIT" in
                   (r["client_state"], r["server_state"]))
    assert sorted(p.flows_shown()) == state[:100]
    p.page.select_option("#f-state", "")
    p.page.select_option("#f-anomaly", "(any finding)")
    assert sorted(p.flows_shown()) == sorted(r["flow_id"] for r in recs if r["anomalies"])
    assert p.errors == []
    p.close()


def _drag(page: Any, selector: str, frm: tuple[float, float], to: tuple[float, float]) -> None:
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + box["width"] * frm[0], box["y"] + box["height"] * frm[1])
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * to[0], box["y"] + box["height"] * to[1],
                    steps=5)
    page.mouse.up()


def test_click_shows_graphs_and_a_graph_zooms(browser: Any, report: Path) -> None:
    p = Page(browser, report)
    p.page.click("#conn-table tbody tr[data-flow='0']")
    for plot in ("lifecycle", "tsg", "rtt", "throughput", "window"):
        assert p.page.is_visible(f"[data-plot={plot}] canvas"), plot
    assert int(p.page.get_attribute("[data-plot=tsg] canvas", "data-drawn") or 0) > 5
    assert "tcp.stream eq 0" in p.page.inner_text("#detail")
    assert p.page.locator("#transitions tr").count() > 4
    assert p.page.locator("table.ladder tr[data-frame]").count() == 13
    home = p.view("tsg")
    _drag(p.page, "[data-plot=tsg] canvas", (0.3, 0.2), (0.6, 0.8))
    zoomed = p.view("tsg")
    assert zoomed[1] - zoomed[0] < (home[1] - home[0]) / 2
    assert zoomed[3] - zoomed[2] < (home[3] - home[2])
    p.page.dblclick("[data-plot=tsg] canvas")
    assert p.view("tsg") == home
    p.page.locator("[data-plot=rtt] canvas").scroll_into_view_if_needed()
    box = p.page.locator("[data-plot=rtt] canvas").bounding_box()
    p.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    before = p.view("rtt")
    p.page.mouse.wheel(0, -300)
    p.page.wait_for_function(  # the wheel event is delivered asynchronously
        "v => document.querySelector('[data-plot=rtt] canvas').dataset.view !== v",
        arg=json.dumps(before))
    after = p.view("rtt")
    assert after[1] - after[0] < before[1] - before[0]
    # A connection whose detail is not embedded says so and how to get it.
    p.page.select_option("#f-anomaly", "(none)")
    p.page.click("th[data-key=bytes]")
    p.page.click("th[data-key=bytes]")  # ascending: the smallest are not embedded
    p.page.eval_on_selector("#conn-table tbody tr", "r => r.click()")
    assert "tcptrace-py flow CAPTURE" in p.page.inner_text("#no-detail")
    assert p.errors == []
    p.close()


def _variance(png: bytes) -> tuple[float, int]:
    """Pixel variance of a screenshot's grey levels and its count of saturated (coloured or
    black) pixels: a plot with only axes and grid has few of the latter."""
    image = pytest.importorskip("PIL.Image")
    import io

    img = image.open(io.BytesIO(png)).convert("RGB")
    raw = img.tobytes()
    px = list(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
    grey = [(r + g + b) / 3 for r, g, b in px]
    mean = sum(grey) / len(grey)
    var = sum((v - mean) ** 2 for v in grey) / len(grey)
    inked = sum(1 for r, g, b in px if max(r, g, b) - min(r, g, b) > 60 or max(r, g, b) < 80)
    return var, inked


@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768)])
def test_screenshots_show_non_empty_plots(browser: Any, report: Path,
                                          size: tuple[int, int]) -> None:
    p = Page(browser, report, *size)
    p.page.click("#conn-table tbody tr[data-flow='0']")
    _shot(p.page.screenshot(full_page=False), f"top-{size[0]}.png")
    for plot in ("tsg", "lifecycle", "throughput", "window"):
        canvas = p.page.locator(f"[data-plot={plot}] canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box["width"] > 300 and box["width"] <= size[0]
        # The plot area only (inside the axes' margins).
        png = p.page.screenshot(clip={"x": box["x"] + 80, "y": box["y"] + 12,
                                      "width": box["width"] - 96, "height": box["height"] - 50})
        _shot(png, f"{plot}-{size[0]}.png")
        var, inked = _variance(png)
        assert var > 20 and inked > 200, (plot, var, inked)
    assert p.errors == []
    p.close()


def test_hostile_file_name_cannot_inject(browser: Any, capture: Path, tmp_path: Path) -> None:
    """A capture named like markup: its name shows as text, no script of it runs, the
    JSON blocks stay whole."""
    name = '<img src=x onerror="window.pwned=1">"&<script>window.pwned=2</script>.pcap'
    evil = tmp_path / name.replace("/", "_")
    shutil.copy(capture, evil)
    out = tmp_path / "evil.html"
    res = CliRunner().invoke(main, ["report", str(evil), "-o", str(out), "--largest", "1"])
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    assert "<img" not in text and "<script>window" not in text
    assert page_data(text)["title"] == evil.name
    p = Page(browser, out)
    assert p.page.inner_text("#title") == evil.name
    assert p.page.evaluate("window.pwned === undefined")
    p.page.click("#conn-table tbody tr[data-flow='0']")
    assert p.page.evaluate("window.pwned === undefined")
    assert p.page.locator("img").count() == 0
    assert p.dialogs == [] and p.errors == []
    assert p.requests == [p.url]
    p.close()


@pytest.mark.skipif(not LOSS.exists(), reason="no ../shared scenarios")
def test_lossy_transfer_retransmissions_found_zoomed_and_classified(
        browser: Any, tmp_path: Path) -> None:
    """Done-when of issue 19: in the report of a real lossy bulk transfer with SACK (Linux
    kernel sockets) a person finds the retransmissions (table column, the tsg's list), zooms
    to one and reads its class and frame in the graph."""
    res = tcptrace_py.analyze(LOSS, packets=True)
    (rec,) = res.records
    retx = [row for row in res.packet_rows() if row[5] & af.RETRANSMISSION and row[6]]
    out = res.to_html(tmp_path / "loss.html")
    p = Page(browser, out)
    row = p.page.locator("#conn-table tbody tr[data-flow='0'] td").nth(7)
    assert row.inner_text().replace(",", "") == str(len(retx))
    p.page.click("#conn-table tbody tr[data-flow='0']")
    options = p.page.eval_on_selector_all("#retx-jump option",
                                          "os => os.map(o => o.textContent)")[1:]
    from_server = [row for row in retx if not row[3]]  # the bulk sender's: the tsg's
    assert len(options) == len(from_server) == rec["server_retransmitted_segments"]
    first = from_server[0]
    cls = plots.retransmission_class(first[5])
    assert cls == "fast"
    assert options[0].startswith(f"frame {first[0]} · fast")
    home = p.view("tsg")
    p.page.select_option("#retx-jump", index=1)
    view = p.view("tsg")
    assert view[1] - view[0] < (home[1] - home[0]) / 10
    t = (first[1] - rec["start_ts_ns"]) / 1e9
    assert view[0] < t < view[1]
    # Hover the retransmission's bar: the tip names its frame and class.
    canvas = p.page.locator("[data-plot=tsg] canvas")
    box = canvas.bounding_box()
    data = page_data(out.read_text(encoding="utf-8"), "flow-0")["server"]["tsg"]["retx"]
    k = data["f"].index(first[0])
    y_mid = (data["l"][k] + data["h"][k]) / 2
    pw, ph = box["width"] - 78 - 14, box["height"] - 10 - 36
    x = box["x"] + 78 + (t - view[0]) / (view[1] - view[0]) * pw
    y = box["y"] + 10 + ph - (y_mid - view[2]) / (view[3] - view[2]) * ph
    p.page.mouse.move(x, y)
    tip = p.page.inner_text("[data-plot=tsg] .tip")
    assert f"frame {first[0]} fast retransmission" in tip
    _shot(canvas.screenshot(), "loss-tsg-zoomed.png")
    assert p.errors == []
    p.close()


def test_batch_index_page(browser: Any, tmp_path: Path) -> None:
    """The index lists captures as text and links only to files beside it."""
    from tcptrace_py.htmlreport import index_html

    entries: list[dict[str, Any]] = [
        {"name": HOSTILE, "href": "javascript:window.pwned=1", "connections": 3,
         "findings": {"error": 2}, "error": None},
        {"name": "b.pcap", "href": None, "connections": None, "findings": {},
         "error": "<b>not a capture</b>"}]
    out = tmp_path / "index.html"
    out.write_text(index_html(entries), encoding="utf-8")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    cells = page.eval_on_selector_all("#index td", "tds => tds.map(t => t.textContent)")
    assert HOSTILE in cells and "failed: <b>not a capture</b>" in cells
    href = page.get_attribute("#index a", "href")
    assert href == "./" + "javascript%3Awindow.pwned%3D1"  # a file name, not a scheme
    assert page.evaluate("window.pwned === undefined")
    assert errors == []
    page.close()
