"""Coverage-guided fuzz target (atheris/libFuzzer) for capture reading, decoding and the engine.

Why a second fuzzer beside the Hypothesis tests: Hypothesis runs a bounded number of
structured examples in CI; libFuzzer runs for hours and steers by coverage into branches
nobody thought to generate (tcptrace's own crash reports came from exactly such runs).

With the compiled engine built, both uses run through it (it is what the engine selects)
and each raw frame is also decoded by the reference decoder: the two must agree field for
field (differential fuzzing of the compiled decoder).

One input is used twice:
1. as a whole capture file (pcap, pcapng, compressed or garbage) through
   ``Engine.run(bytes)``, which drives ``read_frames`` -> ``Decoder`` -> flow table ->
   connections -> detectors -> records;
2. as one raw frame: the first byte picks a link type from :data:`LINKTYPES`, the rest is
   handed to ``Decoder.decode`` directly, so decoder paths are reached without libFuzzer
   first having to discover a valid capture header.

The invariants asserted (a failure is a finding, like a crash):
- nothing but ``CaptureError`` (an unreadable start) escapes;
- every frame read is either a TCP segment or a counted skip
  (``diag.frames == diag.tcp_segments + sum(diag.skipped.values())``);
- every TCP segment lands in exactly one connection record;
- the engine's connection count equals the records it yielded.

Run: see tests/fuzz/README.md.  Without atheris installed, ``TestOneInput`` is a plain
function (tests/test_fuzz_reader.py runs it over seed inputs in CI).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tcptrace_py.decode import Decoder  # noqa: E402
from tcptrace_py.diagnostics import CaptureError, Diagnostics  # noqa: E402
from tcptrace_py.engine import Engine  # noqa: E402
from tcptrace_py.implementation import compiled  # noqa: E402
from tcptrace_py.options import Options  # noqa: E402
from tcptrace_py.segment import FIELDS  # noqa: E402

LINKTYPES = (1, 0, 108, 101, 12, 14, 228, 229, 113, 276, 9, 50, 104, 239, 127, 105, 51, 147)
"""Every link type the decoder has a path for (fast or dpkt), plus one it does not (147)."""

FUZZ_OPTIONS = Options(max_connections=8, max_events_per_connection=16, keep_packets=True)
"""A tiny table so eviction paths are reached with small inputs."""


def check_capture(data: bytes) -> None:
    """Run the whole engine over ``data`` as a capture file and check the accounting."""
    engine = Engine(FUZZ_OPTIONS)
    try:
        results = list(engine.run(data, name="fuzz"))
    except CaptureError:
        return
    diag = engine.diag
    assert diag.frames == diag.tcp_segments + sum(diag.skipped.values()), (
        diag.frames, diag.tcp_segments, dict(diag.skipped))
    packets = sum(r.record["client_packets"] + r.record["server_packets"] for r in results)
    assert packets == diag.tcp_segments, (packets, diag.tcp_segments)
    assert engine.summary.connections == len(results)
    evicted = sum(1 for r in results if r.record["end_reason"] == "table_full")
    assert evicted == engine.summary.evicted_table_full


def check_frame(data: bytes) -> None:
    """Decode ``data[1:]`` as one frame of the link type picked by ``data[0]``; with the
    compiled engine built, its decoder must give the reference's segment and counters."""
    if not data:
        return
    linktype = LINKTYPES[data[0] % len(LINKTYPES)]
    diag = Diagnostics()
    seg = Decoder(diag).decode(linktype, data[1:], 1, 0, len(data) - 1)
    if seg is None:
        assert sum(diag.skipped.values()) == 1 and diag.tcp_segments == 0, dict(diag.skipped)
    else:
        assert diag.tcp_segments == 1 and not diag.skipped
        assert 0 <= seg.captured_payload <= seg.payload_len, (seg.captured_payload,
                                                              seg.payload_len)
    if compiled is not None:
        cdiag = Diagnostics()
        cseg = compiled.Decoder(Decoder(cdiag)).decode(linktype, data[1:], 1, 0,
                                                       len(data) - 1)
        assert _fields(cseg) == _fields(seg), (_fields(cseg), _fields(seg))
        assert (cdiag.tcp_segments, dict(cdiag.skipped), dict(cdiag.notes)) == (
            diag.tcp_segments, dict(diag.skipped), dict(diag.notes))


def _fields(seg: object) -> tuple[object, ...] | None:
    return None if seg is None else tuple(getattr(seg, f) for f in FIELDS)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name libFuzzer/atheris expect
    """One fuzz iteration (see the module docstring)."""
    check_capture(data)
    check_frame(data)


def main() -> None:
    import importlib

    atheris = importlib.import_module("atheris")  # optional: only this entry point needs it

    # Instrument the already imported project modules so libFuzzer gets Python coverage.
    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
