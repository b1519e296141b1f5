"""Seed inputs for the fuzz target: small valid captures and frames that reach deep paths.

Run ``python tests/fuzz/seeds.py corpus/`` to write them as a starting corpus for atheris;
tests/test_fuzz_reader.py feeds the same seeds to ``TestOneInput`` in CI.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from captures_util import (  # noqa: E402
    ethernet,
    ip_packet,
    ipv6_ext,
    ipv6_frag,
    opt_mss,
    opt_sack,
    opt_sack_perm,
    opt_ts,
    opt_wscale,
    pcap_bytes,
    pcapng_bytes,
    tcp_frame,
    tcp_segment,
)

SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


def conversation(ipv6: bool = False, sport: int = 40000) -> list[bytes]:
    """A complete connection: handshake with options, data both ways, FIN close."""
    c, s = ("2001:db8::1", "2001:db8::2") if ipv6 else ("10.0.0.1", "10.0.0.2")
    isn_c, isn_s = 0xFFFFFF00, 1000  # client sequence numbers wrap during the transfer
    syn_opts = opt_mss(1460) + opt_sack_perm() + opt_ts(1, 0) + opt_wscale(7)
    return [
        tcp_frame(c, s, sport, 80, isn_c, 0, SYN, options=syn_opts, ipv6=ipv6),
        tcp_frame(s, c, 80, sport, isn_s, isn_c + 1, SYN | ACK, options=syn_opts, ipv6=ipv6),
        tcp_frame(c, s, sport, 80, isn_c + 1, isn_s + 1, ACK, ipv6=ipv6),
        tcp_frame(c, s, sport, 80, isn_c + 1, isn_s + 1, ACK | PSH, payload=b"G" * 300,
                  ipv6=ipv6),
        tcp_frame(s, c, 80, sport, isn_s + 1, (isn_c + 301) % 2**32, ACK | PSH,
                  payload=b"H" * 200, options=opt_ts(5, 1), ipv6=ipv6),
        tcp_frame(c, s, sport, 80, (isn_c + 301) % 2**32, isn_s + 201, ACK,
                  options=opt_sack([(isn_s + 1, isn_s + 101)]), ipv6=ipv6),
        tcp_frame(c, s, sport, 80, (isn_c + 301) % 2**32, isn_s + 201, FIN | ACK, ipv6=ipv6),
        tcp_frame(s, c, 80, sport, isn_s + 201, (isn_c + 302) % 2**32, FIN | ACK, ipv6=ipv6),
        tcp_frame(c, s, sport, 80, (isn_c + 302) % 2**32, isn_s + 202, ACK, ipv6=ipv6),
    ]


def seed_inputs() -> dict[str, bytes]:
    """Name -> input bytes (whole captures, and link-type-byte + frame inputs)."""
    conv = conversation()
    seg = tcp_segment(1234, 80, 1, 0, SYN, options=opt_mss(1460))
    ext = ipv6_ext(60, b"\x00" * 6) + ipv6_ext(44) + ipv6_frag(6)
    v6_ext = ethernet(ip_packet("2001:db8::1", "2001:db8::2", 6, seg, ipv6=True, ext=ext,
                                ext_first=0), 0x86DD)
    mpls = ethernet(b"\x00\x01\x00\x40" + b"\x00\x02\x01\x40"
                    + ip_packet("10.0.0.1", "10.0.0.2", 6, seg), 0x8847)
    return {
        "pcap_conversation": pcap_bytes(conv),
        "pcap_nsec_big_endian": pcap_bytes(conv, nanosecond=True, big_endian=True),
        "pcapng_v6": pcapng_bytes(conversation(ipv6=True), tsresol=9),
        "pcap_gzip": gzip.compress(pcap_bytes(conv), mtime=0),
        "pcap_reuse_rst": pcap_bytes(conv[:4] + [
            tcp_frame("10.0.0.2", "10.0.0.1", 80, 40000, 1201, 0, RST)] + conv),
        "pcap_qinq": pcap_bytes([tcp_frame("10.0.0.1", "10.0.0.2", 1, 2, 3, 4, SYN,
                                           vlans=(10, 20, 30), vlan_tpid=0x88A8)]),
        "frame_eth_v6_ext": bytes([0]) + v6_ext,
        "frame_eth_mpls": bytes([0]) + mpls,
        "frame_raw_ipv4": bytes([3]) + ip_packet("10.0.0.1", "10.0.0.2", 6, seg),
    }


def main(argv: list[str]) -> None:
    out = Path(argv[1] if len(argv) > 1 else "corpus")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seed_inputs().items():
        (out / name).write_bytes(data)
    print(f"wrote {len(seed_inputs())} seeds to {out}")


if __name__ == "__main__":
    main(sys.argv)
