"""Every public capture in shared/captures: our TCP segment count equals tshark's.

MANIFEST.tsv's ``tcp_packets`` column is tshark's count of frames with a TCP layer. Rows whose
``format`` is not a capture format must raise CaptureError with a one-line message. No known
differences from tshark remain; if one is found and we are right, list it in
``KNOWN_DIFFERENCES`` with the reason.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tcptrace_py.capture import read_frames
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import CaptureError, Diagnostics

SHARED = Path(__file__).resolve().parents[2] / "shared"
CAPTURES = SHARED / "captures"
READABLE_FORMATS = {"pcap", "pcapng", "gz"}

KNOWN_DIFFERENCES: dict[str, tuple[int, str]] = {}
"""file -> (our count, why tshark's count differs and we are right)."""


def _rows() -> list[dict[str, str]]:
    manifest = CAPTURES / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


ROWS = _rows()
pytestmark = pytest.mark.skipif(not ROWS, reason="shared/captures not present")


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_manifest_capture(row: dict[str, str]) -> None:
    path = CAPTURES / row["file"]
    diag = Diagnostics()
    if row["format"] not in READABLE_FORMATS:
        with pytest.raises(CaptureError) as exc:
            list(read_frames(path, diag))
        msg = str(exc.value)
        assert str(path) in msg and "\n" not in msg and "not a capture" in msg
        return
    dec = Decoder(diag)
    n = sum(1 for no, ts, lt, data, wl in read_frames(path, diag)
            if dec.decode(lt, data, no, ts, wl) is not None)
    expected = int(row["tcp_packets"])
    if row["file"] in KNOWN_DIFFERENCES:
        expected = KNOWN_DIFFERENCES[row["file"]][0]
    assert n == expected == diag.tcp_segments
    assert diag.frames == sum(diag.skipped.values()) + diag.tcp_segments
    assert not [w for w in diag.warnings if w.code in ("truncated_record", "bad_block_length",
                                                       "bad_record_length", "read_error")]
