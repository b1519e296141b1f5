"""Plots: every kind produces a PNG, from the API and from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from outputs_util import SCENARIOS, write_mixed

import tcptrace_py
from tcptrace_py import plots
from tcptrace_py.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tcptrace_py.AnalysisResult:
    path = write_mixed(tmp_path_factory.mktemp("plots") / "mixed.pcap")
    return tcptrace_py.analyze(path, packets=True)


def _png(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_MAGIC


@pytest.mark.parametrize("kind", plots.FLOW_KINDS)
def test_flow_plot_kinds(result: tcptrace_py.AnalysisResult, tmp_path: Path,
                         kind: str) -> None:
    ax = plots.plot_flow(result, 0, kind)
    out = tmp_path / f"{kind}.png"
    ax.figure.savefig(out)
    _png(out)
    assert ax.get_title().startswith("flow 0")


def test_tsg_marks_retransmission_sack_and_fin(result: tcptrace_py.AnalysisResult) -> None:
    ax = plots.plot_flow(result, 0, "tsg")
    labels = set(ax.get_legend_handles_labels()[1])
    assert {"data segment", "retransmission", "SACK block", "FIN", "ACK"} <= labels
    assert "10.0.0.2:80 -> 10.0.0.1:40000" in ax.get_title()  # auto: the bigger sender


def test_flow_packets_and_rtt(result: tcptrace_py.AnalysisResult) -> None:
    fp = plots.flow_packets(result, 0)
    assert len(fp.segments) == 13  # the flow's segments only, UDP and other flows left out
    samples = plots.rtt_samples(fp, sender_client=True)
    # SYN acknowledged after 10 ms, the 100-byte request after 9 ms (frame 4 -> frame 5).
    assert [round(ms, 3) for _t, ms in samples] == [10.0, 9.0, 10.0]
    with pytest.raises(KeyError):
        plots.flow_packets(result, 42)


def test_plot_into_given_axes_and_from_path(result: tcptrace_py.AnalysisResult) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert plots.plot_flow(result.source, 1, "tsg", ax=ax) is ax
    assert plots.plot_timeline(result, ax=ax) is ax
    plt.close(fig)


def test_timeline(result: tcptrace_py.AnalysisResult, tmp_path: Path) -> None:
    ax = plots.plot_timeline(result)
    assert set(ax.get_legend_handles_labels()[1]) == {
        "graceful", "refused", "unanswered", "open_at_capture_end"}
    out = tmp_path / "timeline.png"
    ax.figure.savefig(out)
    _png(out)


@pytest.mark.parametrize("args", [["--flow", "0", "--kind", "tsg"],
                                  ["--flow", "0", "--kind", "rtt", "--direction", "client"],
                                  ["--flow", "0", "--kind", "throughput"],
                                  ["--flow", "0", "--kind", "window"],
                                  ["--kind", "timeline"]])
def test_cli_plot(result: tcptrace_py.AnalysisResult, tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "p.png"
    res = CliRunner().invoke(main, ["plot", str(result.source), *args, "-o", str(out)])
    assert res.exit_code == 0, res.output
    _png(out)


def test_cli_plot_errors(result: tcptrace_py.AnalysisResult, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["plot", str(result.source), "--kind", "tsg", "-o",
                               str(tmp_path / "x.png")])
    assert res.exit_code == 2  # tsg needs --flow
    res = runner.invoke(main, ["plot", str(result.source), "--flow", "9", "-o",
                               str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "flow_id 9" in res.stderr
    res = runner.invoke(main, ["plot", str(tmp_path / "none.pcap"), "--kind", "timeline",
                               "-o", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "Traceback" not in res.stderr


@pytest.mark.skipif(not SCENARIOS.is_dir(), reason="../shared/scenarios absent")
@pytest.mark.parametrize("pcap", sorted(SCENARIOS.glob("*.pcap")) if SCENARIOS.is_dir() else [],
                         ids=lambda p: p.stem)
def test_scenarios_plots(pcap: Path, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    res = tcptrace_py.analyze(pcap, packets=True)
    flow_id = int(res.flows["flow_id"].iloc[0])
    fig, axes = plt.subplots(5, 1, figsize=(8, 16))  # one savefig for all kinds: fast
    for ax, kind in zip(axes, plots.FLOW_KINDS, strict=False):
        assert plots.plot_flow(res, flow_id, kind, ax=ax) is ax
        assert ax.has_data() or kind != "tsg"  # every connection has a segment to draw
    plots.plot_timeline(res, ax=axes[-1])
    out = tmp_path / "all.png"
    fig.savefig(out, dpi=40)
    plt.close(fig)
    _png(out)


SAMPLE_LOSS = Path(__file__).resolve().parents[1] / "samples" / "data_loss_retrans.pcap"


@pytest.mark.skipif(not SAMPLE_LOSS.exists(), reason="samples/ absent")
def test_frame_window_keeps_the_whole_connections_origin(tmp_path: Path) -> None:
    """``--frames A-B`` / ``frames=(A, B)``: only that stretch is drawn, at the same times and
    relative sequence numbers as in the whole plot (the stretch lacks the SYNs)."""
    res = tcptrace_py.analyze(SAMPLE_LOSS, packets=True)
    whole = plots.flow_packets(res, 0)
    part = whole.stretch(40, 80)
    assert {s.frame for s, _c, _m in part.segments} == \
        {s.frame for s, _c, _m in whole.segments if 40 <= s.frame <= 80}
    assert part.t0_ns == whole.t0_ns and part.base_seq(True) == whole.base_seq(True)
    assert part.wscale(False) == whole.wscale(False) > 0
    times_whole = {s.frame: t for t, s, _c, _m in plots._times(whole)}
    for t, seg, _c, _m in plots._times(part):
        assert t == times_whole[seg.frame]
    ax = plots.plot_flow(res, 0, "tsg", frames=(40, 80))
    xs = [x for line in ax.get_lines() for x in line.get_xdata()]
    assert xs and min(xs) >= times_whole[min(times_whole, key=lambda f: abs(f - 40))] - 1e-9
    out = tmp_path / "w.png"
    cli = CliRunner().invoke(main, ["plot", str(SAMPLE_LOSS), "--flow", "0", "--frames",
                                    "40-80", "-o", str(out)])
    assert cli.exit_code == 0 and out.stat().st_size > 0
    cli = CliRunner().invoke(main, ["plot", str(SAMPLE_LOSS), "--flow", "0", "--frames",
                                    "900000-", "-o", str(out)])
    assert cli.exit_code == 2 and "no packet of flow 0 in frames 900000-" in cli.output
    cli = CliRunner().invoke(main, ["plot", str(SAMPLE_LOSS), "--kind", "timeline",
                                    "--frames", "1-5", "-o", str(out)])
    assert cli.exit_code == 2
    plots._plt().close("all")


SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"


@pytest.mark.skipif(not SAMPLES_DIR.exists(), reason="samples/ absent")
def test_plots_people_can_read() -> None:
    """Byte axes in kB/MB with the unit in the label, the throughput bin in ms, averages in
    kB/s, a large advertised window clipped instead of squashing the data, a note instead of
    an empty panel (issue 17 item 13)."""
    res = tcptrace_py.analyze(SAMPLES_DIR / "data_loss_retrans.pcap", packets=True)
    ax = plots.plot_flow(res, 0, "tsg")
    assert ax.get_ylabel() == "relative sequence number (kB)"
    assert ax.yaxis.get_major_formatter()(60_000, 0) == "60"
    labels = ax.get_legend_handles_labels()[1]
    assert "ACK + advertised window (clipped)" in labels
    window_line = next(line for line in ax.get_lines()
                       if line.get_label().startswith("ACK + advertised"))
    assert max(window_line.get_ydata()) > ax.get_ylim()[1]      # clipped, not squashing
    data_top = max(res.records[0]["client_unique_bytes"], 1)
    assert ax.get_ylim()[1] < 1.2 * data_top
    ax = plots.plot_flow(res, 0, "throughput")
    assert ax.get_ylabel() == "payload, 1.46 ms bins (MB/s)"
    assert any(lab.endswith("kB/s") for lab in ax.get_legend_handles_labels()[1])
    ax = plots.plot_flow(res, 0, "window")
    assert ax.get_ylabel() == "advertised window, bytes in flight (kB)"
    refused = tcptrace_py.analyze(SAMPLES_DIR / "refused.pcap", packets=True)
    ax = plots.plot_flow(refused, 0, "rtt", direction="server")
    assert [t.get_text() for t in ax.texts] == [
        "no RTT sample (no ACK acknowledged a segment sent once)"]
    plots._plt().close("all")


def test_timeline_shows_zero_length_connections_and_no_empty_panel(tmp_path: Path) -> None:
    """A one-packet connection (0 s) is still a visible bar; without RSTs there is no RST
    rate panel; with them there is."""
    from captures_util import tcp_frame, write_pcap

    from tcptrace_py.segment import ACK, FIN, SYN

    t0 = 1_700_000_000_000_000_000
    s = 1_000_000_000
    frames = [(t0, tcp_frame("10.0.0.1", "10.0.0.2", 4000, 80, 1, 0, SYN))]  # alone, 0 s
    frames += [(t0 + i * s, f) for i, f in enumerate([
        tcp_frame("10.0.0.1", "10.0.0.2", 4001, 80, 100, 0, SYN),
        tcp_frame("10.0.0.2", "10.0.0.1", 80, 4001, 500, 101, SYN | ACK),
        tcp_frame("10.0.0.1", "10.0.0.2", 4001, 80, 101, 501, ACK),
        tcp_frame("10.0.0.1", "10.0.0.2", 4001, 80, 101, 501, FIN | ACK),
        tcp_frame("10.0.0.2", "10.0.0.1", 80, 4001, 501, 102, FIN | ACK),
        tcp_frame("10.0.0.1", "10.0.0.2", 4001, 80, 102, 502, ACK)], 1)]
    pcap = write_pcap(tmp_path / "t.pcap", frames)
    ax = plots.plot_timeline(pcap)
    widths = sorted(p.get_width() for p in ax.patches)
    span = 6.0
    assert widths[0] >= span * plots.ZERO_LENGTH_MIN_FRACTION
    assert len(ax.figure.axes) == 1
    ax = plots.plot_timeline(SAMPLES_DIR / "rst_abort.pcap")
    assert len(ax.figure.axes) == 2
    plots._plt().close("all")
