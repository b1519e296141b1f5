"""Protocol facts of one connection users look for: ECN (RFC 3168) and TCP Fast Open (RFC 7413).

Neither changes a state or a sequence number, so they live apart from the replay: the
connection hands this class its SYN/SYN-ACK segments (``on_handshake``) and, behind one cheap
test (``seg.ecn or seg.flags & ECN_FLAGS``), every segment that carries an ECN mark
(``on_marked``). ``fastpath.steady_segment`` makes the same call: steady data and ACKs carry
CE, ECE and CWR all the time on an ECN connection.

Rules:
  1. ECN is negotiated when an ECN-setup SYN (ECE and CWR set, RFC 3168 6.1.1) is answered by
     an ECN-setup SYN-ACK (ECE set, CWR clear): mode ``classic``. A SYN with AE, CWR and ECE
     set answered by a SYN-ACK whose (AE, CWR, ECE) is 010, 011, 100 or 110 negotiates
     Accurate ECN (RFC 9768 3.1.1): mode ``accecn``. The last SYN before the SYN-ACK decides:
     a stack that retries its SYN without ECN (Linux after a lost ECN SYN, RFC 3168 6.1.1.1)
     did not ask on the retry.
  2. Counts per sending side: ``ect`` (IP ECN field ECT(0) or ECT(1)), ``ce`` (field 3,
     congestion experienced: a router marked it), ``ece`` and ``cwr`` (the TCP flags). ECE
     and CWR on a SYN or SYN-ACK are the negotiation, not an echo or a window reduction, so
     they are not counted (what the labelled scenario counts too); under Accurate ECN the
     AE, CWR and ECE bits are a counter of CE marks (the ACE field), not flags, and are not
     counted either.
  3. TCP Fast Open: the client's SYN carries data (``syn_data_bytes``) and the SYN-ACK
     acknowledges it when its ACK number is ISN + 1 + that length (RFC 7413 section 4.2; a
     server that refuses the cookie acknowledges ISN + 1 only and the client sends the data
     again after the handshake). ``tfo_option`` says what the SYN's Fast Open option held:
     an empty option asks for a cookie (kind 34, or the experimental kind 254 with magic
     0xF989, RFC 7413 section 4.1.1).
"""

from __future__ import annotations

from typing import Any

from tcptrace_py.segment import ACK, AE, CWR, ECE, SYN, Segment

ECN_FLAGS = ECE | CWR
"""TCP flags of the ECN feedback loop (RFC 3168 6.1)."""
ACE_FLAGS = AE | CWR | ECE
"""Accurate ECN's 3-bit ACE field (RFC 9768 3.2.2)."""
_ACCECN_SYNACK = frozenset({CWR, CWR | ECE, AE, AE | CWR})
"""SYN-ACK (AE, CWR, ECE) values that accept Accurate ECN (RFC 9768 3.1.1, table 2)."""
IP_ECN_CE = 3
"""IP ECN field value Congestion Experienced (RFC 3168 section 5)."""
TFO_OPTION_KIND = 34
TFO_EXPERIMENTAL_KIND = 254
TFO_EXPERIMENTAL_MAGIC = b"\xf9\x89"
_MASK = 0xFFFFFFFF

FACT_COLUMNS: dict[str, str] = {
    "ecn_negotiated": "bool",
    "ecn_mode": "str",
    "client_ecn_ect_segments": "int",
    "client_ecn_ce_segments": "int",
    "client_ecn_ece_segments": "int",
    "client_ecn_cwr_segments": "int",
    "server_ecn_ect_segments": "int",
    "server_ecn_ce_segments": "int",
    "server_ecn_ece_segments": "int",
    "server_ecn_cwr_segments": "int",
    "tfo_option": "str",
    "tfo_syn_data_bytes": "int",
    "tfo_syn_data_acked": "bool",
}
"""Record columns of this module and their kinds (see ``report.LIFECYCLE_COLUMNS``)."""


def tfo_option(seg: Segment) -> str:
    """What a SYN's Fast Open option holds: ``cookie_request`` (empty), ``cookie``, or ``""``
    when the SYN has none."""
    for kind, value in seg.other_options:
        if kind == TFO_OPTION_KIND:
            return "cookie" if value else "cookie_request"
        if kind == TFO_EXPERIMENTAL_KIND and value[:2] == TFO_EXPERIMENTAL_MAGIC:
            return "cookie" if value[2:] else "cookie_request"
    return ""


class ProtocolFacts:
    """ECN and Fast Open facts of one connection; sides are 0 (client) and 1 (server)."""

    __slots__ = ("ect", "ce", "ece", "cwr", "ecn_syn", "ecn_mode", "tfo_option",
                 "syn_data_bytes", "syn_seq", "syn_data_acked")

    def __init__(self) -> None:
        self.ect = [0, 0]
        """Segments sent ECT(0) or ECT(1) by [client, server]."""
        self.ce = [0, 0]
        """Segments sent by [client, server] that arrived here marked CE."""
        self.ece = [0, 0]
        """Non-SYN segments with ECE (the receiver echoing a CE mark) by [client, server]."""
        self.cwr = [0, 0]
        """Non-SYN segments with CWR (the sender reduced its window) by [client, server]."""
        self.ecn_syn = [0, 0]
        """(AE, CWR, ECE) bits of the last SYN sent by [client, server] (rule 1)."""
        self.ecn_mode = ""
        """``classic`` or ``accecn`` once negotiated (rule 1)."""
        self.tfo_option = ""
        """The client's first SYN's Fast Open option (rule 3)."""
        self.syn_data_bytes = 0
        """Payload bytes on the client's first SYN carrying data."""
        self.syn_seq = -1
        """Raw sequence number of that SYN (-1: none)."""
        self.syn_data_acked = False
        """A SYN-ACK acknowledged the SYN and its data."""

    def on_handshake(self, seg: Segment, side: int) -> None:
        """A SYN or SYN-ACK sent by ``side`` (rules 1 and 3)."""
        flags = seg.flags
        if flags & ACK:
            asked = self.ecn_syn[1 - side]
            if asked == ACE_FLAGS and flags & ACE_FLAGS in _ACCECN_SYNACK:
                self.ecn_mode = "accecn"
            elif asked & ECN_FLAGS == ECN_FLAGS and flags & ACE_FLAGS == ECE:
                self.ecn_mode = "classic"
            if side == 1 and self.syn_seq >= 0 and \
                    seg.ack == (self.syn_seq + 1 + self.syn_data_bytes) & _MASK:
                self.syn_data_acked = True
            return
        self.ecn_syn[side] = flags & ACE_FLAGS
        if side == 0:
            if not self.tfo_option and seg.other_options:
                self.tfo_option = tfo_option(seg)
            if seg.payload_len and self.syn_seq < 0:
                self.syn_seq = seg.seq
                self.syn_data_bytes = seg.payload_len

    def on_marked(self, seg: Segment, side: int) -> None:
        """A segment with an IP ECN codepoint or ECE/CWR (rule 2)."""
        ecn = seg.ecn
        if ecn == IP_ECN_CE:
            self.ce[side] += 1
        elif ecn:
            self.ect[side] += 1
        flags = seg.flags
        if flags & ECN_FLAGS and not flags & SYN and self.ecn_mode != "accecn":
            if flags & ECE:
                self.ece[side] += 1
            if flags & CWR:
                self.cwr[side] += 1

    def add_columns(self, rec: dict[str, Any]) -> None:
        """Add :data:`FACT_COLUMNS` to a record."""
        rec["ecn_negotiated"] = bool(self.ecn_mode)
        rec["ecn_mode"] = self.ecn_mode
        # Literal keys, not prefix + name: a record is built for every connection.
        ect, ce, ece, cwr = self.ect, self.ce, self.ece, self.cwr
        rec["client_ecn_ect_segments"] = ect[0]
        rec["client_ecn_ce_segments"] = ce[0]
        rec["client_ecn_ece_segments"] = ece[0]
        rec["client_ecn_cwr_segments"] = cwr[0]
        rec["server_ecn_ect_segments"] = ect[1]
        rec["server_ecn_ce_segments"] = ce[1]
        rec["server_ecn_ece_segments"] = ece[1]
        rec["server_ecn_cwr_segments"] = cwr[1]
        rec["tfo_option"] = self.tfo_option
        rec["tfo_syn_data_bytes"] = self.syn_data_bytes
        rec["tfo_syn_data_acked"] = self.syn_data_acked


# The compiled engine's twin (tcptrace_py/implementation.py, tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import twin  # noqa: E402

ProtocolFacts = twin(ProtocolFacts, "ProtocolFactsBase")  # type: ignore[misc]
