"""Hostile file names (issue 18.10): CSV formula injection and terminal escape sequences."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptrace_py.batch_cli import batch
from tcptrace_py.cli import main
from tcptrace_py.export import csv_safe_text, printable

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
ESC = "\x1b"
TITLE = f"{ESC}]0;pwned\x07"  # an OSC sequence that retitles the terminal
RED = f"{ESC}[31m"


def _cli(*args: str | Path) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res.exit_code, res.stdout, res.stderr


def test_csv_cells_that_look_like_formulas_are_escaped(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture named ``=cmd|calc.pcap`` must not reach a spreadsheet as a formula (OWASP:
    a leading ``'``), in flows and anomalies CSV alike; other cells are unchanged."""
    monkeypatch.chdir(tmp_path)
    evil = Path("=cmd|' ,A1!calc.pcap")
    plus = Path("+1.pcap")
    shutil.copy(SAMPLES / "refused.pcap", evil)
    shutil.copy(SAMPLES / "normal.pcap", plus)
    for cmd in ("analyze", "anomalies"):
        code, out, _ = _cli(cmd, evil, plus, "--format", "csv")
        assert code == 0
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows
        captures = {r["capture"] for r in rows}
        assert captures <= {"'" + str(evil), "'" + str(plus)}, captures
        assert not any(v.startswith(("=", "+", "@")) for r in rows for v in r.values() if v)
    code, out, _ = _cli("analyze", SAMPLES / "normal.pcap", "--format", "csv")
    assert "'" not in out  # nothing to escape in an ordinary capture
    assert csv_safe_text("-2") == "'-2" and csv_safe_text(-2) == -2
    assert csv_safe_text("10.0.0.1") == "10.0.0.1"


def test_escape_sequences_in_names_are_shown_escaped(tmp_path: Path) -> None:
    """Errors, warnings and the table's capture column show a file name's control
    characters escaped (rich escapes markup, not control characters)."""
    bad = tmp_path / f"notes{TITLE}.pcap"
    bad.write_text("not a capture\n")
    code, out, err = _cli("analyze", bad)
    assert code == 2 and ESC not in err and "\\x1b]0;pwned\\x07" in err
    cut = tmp_path / f"cut{RED}.pcap"
    cut.write_bytes((SAMPLES / "normal.pcap").read_bytes()[:-7])  # damaged: a warning
    good = tmp_path / f"ok{RED}.pcap"
    shutil.copy(SAMPLES / "refused.pcap", good)
    code, out, err = _cli("analyze", cut, good)
    assert code == 0 and "warning" in err
    assert ESC not in err and ESC not in out
    assert "\\x1b[31m" in err and "\\x1b[31m" in out
    assert printable("a\nb", keep="\n") == "a\nb" and printable("a\x07") == "a\\x07"


def test_batch_failure_lines_escaped(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / f"broken{RED}.pcap").write_text("not a capture\n")
    res = CliRunner().invoke(batch, [str(d), "-o", str(tmp_path / "out"), "-j", "1"])
    assert res.exit_code == 1
    assert "failed" in res.stderr and ESC not in res.stderr and "\\x1b[31m" in res.stderr
