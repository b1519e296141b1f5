"""Link types tcptrace reads (FDDI, token ring, SLIP, ATM RFC 1483) and unsupported ones.

Issue 15 item 13: every link type tcptrace's tcpdump.c decodes is decoded here too, and a link
type nobody decodes is a warning on stderr in every output format (before, jsonl said nothing
and gave 0 connections with exit 0), an error (exit 2) with ``--strict``. The captures are
written here: a whole handshake + data + close conversation wrapped in each link layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from captures_util import tcp_packet, write_pcap
from click.testing import CliRunner

from tcptrace_py import iter_flows
from tcptrace_py.cli import main
from tcptrace_py.diagnostics import CaptureError
from tcptrace_py.segment import ACK, FIN, PSH, SYN

CLIENT, SERVER = "192.0.2.1", "198.51.100.2"
LLC_SNAP_IPV4 = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
MAC_A, MAC_B = b"\x00\x10\x20\x30\x40\x50", b"\x00\x60\x70\x80\x90\xa0"


def conversation() -> list[tuple[bool, bytes]]:
    """(from_client, IPv4 packet) of a complete connection: handshake, request, answer, FINs."""
    c, s = 1000, 5000
    req, resp = b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nhello"

    def cli(seq: int, ack: int, flags: int, payload: bytes = b"") -> tuple[bool, bytes]:
        return True, tcp_packet(CLIENT, SERVER, 40000, 80, seq, ack, flags, payload=payload)

    def srv(seq: int, ack: int, flags: int, payload: bytes = b"") -> tuple[bool, bytes]:
        return False, tcp_packet(SERVER, CLIENT, 80, 40000, seq, ack, flags, payload=payload)

    return [
        cli(c, 0, SYN), srv(s, c + 1, SYN | ACK), cli(c + 1, s + 1, ACK),
        cli(c + 1, s + 1, ACK | PSH, req), srv(s + 1, c + 1 + len(req), ACK | PSH, resp),
        cli(c + 1 + len(req), s + 1 + len(resp), ACK | FIN),
        srv(s + 1 + len(resp), c + 2 + len(req), ACK | FIN),
        cli(c + 2 + len(req), s + 2 + len(resp), ACK),
    ]


def fddi(from_client: bool, pkt: bytes) -> bytes:
    """FDDI: frame control (LLC, async), destination, source, then LLC/SNAP."""
    dst, src = (MAC_B, MAC_A) if from_client else (MAC_A, MAC_B)
    return b"\x50" + dst + src + LLC_SNAP_IPV4 + pkt


def token_ring(from_client: bool, pkt: bytes) -> bytes:
    """802.5: AC, FC, destination, source; the server's frames carry a 4-byte routing
    information field (source address top bit set), the client's none."""
    if from_client:
        return b"\x10\x40" + MAC_B + MAC_A + LLC_SNAP_IPV4 + pkt
    src = bytes([MAC_B[0] | 0x80]) + MAC_B[1:]
    return b"\x10\x40" + MAC_A + src + b"\x04\x00\x00\x00" + LLC_SNAP_IPV4 + pkt


def slip(from_client: bool, pkt: bytes) -> bytes:
    """libpcap's 16-byte SLIP pseudo-header (direction byte first), then IP."""
    return (b"\x00" if from_client else b"\x01") + b"\x00" * 15 + pkt


def atm_rfc1483(from_client: bool, pkt: bytes) -> bytes:
    return LLC_SNAP_IPV4 + pkt


@pytest.mark.parametrize(("linktype", "wrap"), [
    (10, fddi), (6, token_ring), (8, slip), (100, atm_rfc1483), (11, atm_rfc1483)])
def test_link_types_tcptrace_reads_are_decoded(tmp_path: Path, linktype: int,
                                               wrap: object) -> None:
    path = tmp_path / f"lt{linktype}.pcap"
    frames = [(i * 1_000_000, wrap(fc, pkt))  # type: ignore[operator]
              for i, (fc, pkt) in enumerate(conversation())]
    write_pcap(path, frames, linktype)
    recs = list(iter_flows(path))
    assert len(recs) == 1
    rec = recs[0]
    assert (rec["client_ip"], rec["client_port"], rec["server_port"]) == (CLIENT, 40000, 80)
    assert (rec["open"], rec["close"]) == ("three_way_handshake", "graceful")
    assert (rec["client_packets"], rec["server_packets"]) == (5, 3)
    assert (rec["client_payload_bytes"], rec["server_payload_bytes"]) == (18, 24)


def run(*args: str | Path) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture()
def unsupported(tmp_path: Path) -> Path:
    """The same conversation under LINKTYPE_USER0 (147): nothing can decode it."""
    path = tmp_path / "user0.pcap"
    write_pcap(path, [(i * 1_000_000, pkt) for i, (_, pkt) in enumerate(conversation())], 147)
    return path


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv", "zeek"])
def test_unsupported_link_type_warns_in_every_format(unsupported: Path, fmt: str) -> None:
    for command in ("analyze", "anomalies"):
        code, out, err = run(command, unsupported, "--format", fmt)
        assert code == 0
        assert "link type 147 is not supported" in err and str(unsupported) in err
        assert err.count("link type 147") == 1, "one warning per link type, not per frame"
    if fmt == "jsonl":
        assert out.strip() == ""


def test_unsupported_link_type_is_exit_2_with_strict(unsupported: Path) -> None:
    for fmt in ("jsonl", "table"):
        code, out, err = run("analyze", unsupported, "--format", fmt, "--strict")
        assert code == 2 and "link type 147 is not supported" in err
        assert "Traceback" not in err
    code, _, err = run("analyze", unsupported, "--format", "jsonl", "--quiet")
    assert code == 0 and err == ""


def test_unsupported_link_type_api(unsupported: Path) -> None:
    with pytest.raises(CaptureError, match="link type 147"):
        list(iter_flows(unsupported, strict=True))
    from tcptrace_py import analyze

    res = analyze(unsupported)
    assert len(res.flows) == 0
    assert [w.code for w in res.diagnostics.warnings] == ["unsupported_linktype"]
    assert res.diagnostics.skipped["unsupported_linktype"] == 8


def test_supported_link_types_do_not_warn(tmp_path: Path) -> None:
    path = tmp_path / "fddi.pcap"
    write_pcap(path, [(i * 1_000_000, fddi(fc, pkt))
                      for i, (fc, pkt) in enumerate(conversation())], 10)
    code, out, err = run("analyze", path, "--format", "jsonl", "--strict")
    assert code == 0 and err == "" and len([json.loads(x) for x in out.splitlines()]) == 1
