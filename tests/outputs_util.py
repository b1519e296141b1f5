"""A small mixed capture for the output tests (frames, export, CLI, plots).

Four connections with different fates plus one UDP frame, written with captures_util:

* flow to 10.0.0.2:80 -- handshake, a request, a two-segment answer whose second segment is
  retransmitted (with a SACK block for it before), both FINs: ``graceful``;
* 10.0.0.1:40001 -> 10.0.0.3:443 -- SYN answered by RST-ACK: ``refused``;
* 10.0.0.4:40002 -> 10.0.0.2:22 -- SYN sent three times, never answered: ``unanswered``;
* IPv6 2001:db8::1:5000 <-> 2001:db8::2:6000 -- data mid-stream, no SYN: ``midstream``.
"""

from __future__ import annotations

from pathlib import Path

from captures_util import ethernet, ip_packet, opt_sack, tcp_frame, write_pcap

from tcptrace_py.segment import ACK, FIN, PSH, RST, SYN

T0_NS = 1_700_000_000_000_000_000
MS = 1_000_000

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCENARIOS = SHARED / "scenarios"


def mixed_frames() -> list[tuple[int, bytes]]:
    """(ts_ns, frame) pairs of the mixed capture, in capture order."""
    f: list[tuple[int, bytes]] = []

    def add(t_ms: float, frame: bytes) -> None:
        f.append((T0_NS + int(t_ms * MS), frame))

    c, s = "10.0.0.1", "10.0.0.2"
    cs, ss = 1000, 5000
    add(0, tcp_frame(c, s, 40000, 80, cs, 0, SYN))
    add(10, tcp_frame(s, c, 80, 40000, ss, cs + 1, SYN | ACK))
    add(20, tcp_frame(c, s, 40000, 80, cs + 1, ss + 1, ACK))
    add(21, tcp_frame(c, s, 40000, 80, cs + 1, ss + 1, PSH | ACK, payload=b"G" * 100))
    add(30, tcp_frame(s, c, 80, 40000, ss + 1, cs + 101, ACK, payload=b"a" * 1000))
    # Second answer segment lost after the capture point; the third one arrives.
    add(31, tcp_frame(s, c, 80, 40000, ss + 1001, cs + 101, ACK, payload=b"b" * 1000))
    add(32, tcp_frame(s, c, 80, 40000, ss + 2001, cs + 101, PSH | ACK, payload=b"c" * 500))
    add(40, tcp_frame(c, s, 40000, 80, cs + 101, ss + 1001, ACK,
                      options=b"\x01\x01" + opt_sack([(ss + 2001, ss + 2501)])))
    add(45, ethernet(ip_packet("10.0.0.9", "10.0.0.10", 17, b"\x00" * 16)))  # UDP: skipped
    add(250, tcp_frame(s, c, 80, 40000, ss + 1001, cs + 101, ACK, payload=b"b" * 1000))
    add(260, tcp_frame(c, s, 40000, 80, cs + 101, ss + 2501, ACK))
    add(300, tcp_frame(c, s, 40000, 80, cs + 101, ss + 2501, FIN | ACK))
    add(310, tcp_frame(s, c, 80, 40000, ss + 2501, cs + 102, FIN | ACK))
    add(320, tcp_frame(c, s, 40000, 80, cs + 102, ss + 2502, ACK))
    # Refused.
    add(400, tcp_frame(c, "10.0.0.3", 40001, 443, 7000, 0, SYN))
    add(401, tcp_frame("10.0.0.3", c, 443, 40001, 0, 7001, RST | ACK))
    # Unanswered, SYN retransmitted by the client's timer (1 s, then 2 s).
    for t in (500, 1500, 3500):
        add(t, tcp_frame("10.0.0.4", s, 40002, 22, 9000, 0, SYN))
    # IPv6, picked up mid-stream.
    a6, b6 = "2001:db8::1", "2001:db8::2"
    add(3600, tcp_frame(a6, b6, 5000, 6000, 100, 200, PSH | ACK, payload=b"x" * 10, ipv6=True))
    add(3610, tcp_frame(b6, a6, 6000, 5000, 200, 110, ACK, ipv6=True))
    return f


def write_mixed(path: Path) -> Path:
    """Write the mixed capture as a classic pcap and return its path."""
    return write_pcap(path, mixed_frames())
