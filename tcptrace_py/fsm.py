"""The RFC 9293 TCP state machine, as a passive observer at the capture point replays it.

Theory of operation
-------------------
A capture shows segments, not sockets. We keep one :class:`EndpointMachine` per endpoint and
feed every segment twice: to its sender as a *send* input and to its receiver as a *receive*
input (``connection.py`` classifies the segment into an :class:`Input`). The machine looks the
pair (state, input) up in :data:`TRANSITIONS`, the one table of this module, and moves.

Rules:
  1. Every transition lives in :data:`TRANSITIONS`; no other module changes a state. A reader can
     check each row against RFC 9293 section 3.3.2 (state diagram) and 3.10 (event processing).
  2. The table does not know which role (client/server) it plays; the same rows serve both.
  3. A segment the table has no row for is *unexpected*: the state stays and an event records
     it. Nothing here raises (a trace analyser records and goes on).
  4. What an endpoint *sends* is evidence of its real state; what it *receives* is an
     assumption (the segment may be lost after the capture point). So send inputs may correct
     an earlier assumption (rows whose action is ``INFER``), e.g. a FIN retransmitted from
     CLOSED proves the final ACK never arrived, so the endpoint is in LAST_ACK.
  5. Time never comes from a clock: TIME_WAIT expiry is the ``TIMEOUT`` input, fed by the
     connection when packet time has passed its deadline.

States are named exactly as RFC 9293 names them. ``INACTIVE`` is observer-only (as Zeek's
TCP_ENDPOINT_INACTIVE): the endpoint has sent nothing we could see, so its real state (absent,
LISTEN or CLOSED) cannot be known.
"""

from __future__ import annotations

from enum import Enum


class TcpState(str, Enum):
    """Endpoint states: the eleven of RFC 9293 section 3.3.2 plus observer-only INACTIVE."""

    INACTIVE = "INACTIVE"
    """Observer-only: nothing sent by this endpoint seen yet; real state unknown."""
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECEIVED = "SYN_RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"


class Input(str, Enum):
    """What a segment means to one endpoint (classified by ``connection.py``)."""

    SEND_SYN = "send SYN"
    SEND_SYN_ACK = "send SYN-ACK"
    SEND_ACK = "send ACK/data"
    SEND_FIN = "send FIN"
    SEND_FIN_AGAIN = "send FIN again"
    """A FIN at the same sequence number as a FIN this endpoint already sent."""
    SEND_FIN_CROSSED = "send FIN not acking the peer's FIN"
    """A FIN whose ACK number does not cover the FIN the peer already sent: the endpoint closed
    before the peer's FIN reached it (the two FINs crossed: simultaneous close)."""
    SEND_RST = "send RST"
    SEND_AFTER_LOST_RST = "send after a RST that did not take"
    """ACK/data from an endpoint that obeyed a RST while ESTABLISHED, sent later than a segment
    crossing the RST could be: the RST never took effect (lost after the capture point, or
    answered by an RFC 5961 challenge ACK), so the endpoint is still synchronized."""
    SEND_CHALLENGE_ACK = "send challenge ACK"
    """A pure ACK from an endpoint that obeyed an in-window RST not at its RCV.NXT, whose ACK
    number is not the RST's sequence number: the RFC 5961 3.2 challenge ACK, sent instead of
    closing; the RST never took effect."""
    SEND_AFTER_CHALLENGED_RST = "send after its RST was challenged"
    """ACK/data from an endpoint whose RST the peer answered with a challenge ACK: the RST was
    not this endpoint's abort (injected by a third party), so it is still synchronized."""
    SEND_SYN_NEW_ISN = "send SYN with a new ISN, challenged"
    """A SYN with another ISN on an established connection that the peer answered with an ACK
    of that connection, not a SYN-ACK (RFC 5961 4 challenge ACK): no new incarnation."""
    SEND_SPLIT_SYN = "send its first SYN after ACKing the peer's"
    """A first SYN from an endpoint that had only acknowledged its peer's SYN while that peer
    waits in SYN_SENT: the split handshake (SYN / ACK / SYN / SYN-ACK / ACK)."""
    RECV_SYN = "receive SYN"
    RECV_SYN_ACK = "receive SYN-ACK"
    RECV_ACK = "receive ACK/data"
    RECV_ACK_OF_FIN = "receive ACK of our FIN"
    RECV_ACK_UNCONFIRMED = "receive ACK already ignored"
    """A handshake ACK identical to one the endpoint already ignored (it answered it with a
    SYN-ACK retransmission), so it is not taken as proof the handshake completed."""
    RECV_FIN = "receive FIN"
    RECV_FIN_ACK_OF_FIN = "receive FIN acking our FIN"
    RECV_RST = "receive RST"
    RECV_RST_OUT_OF_WINDOW = "receive out-of-window RST"
    """RFC 5961 section 3.2: a RST whose sequence number is outside the window is not obeyed."""
    RECV_RST_UNCONFIRMED = "receive RST sent into silence"
    """A RST from an endpoint whose last probes or retransmissions the receiver never
    answered (keep-alive to a dead peer, a path gone black): the receiver was not receiving,
    so whether this RST reached it cannot be known and its state is kept (rule 4)."""
    RECV_ICMP_ERROR = "receive ICMP error for its SYN"
    """An ICMP destination-unreachable or time-exceeded error quoting the endpoint's SYN, with
    no SYN sent after it (fed at the end of the connection: ``Connection.finalize``)."""
    RETRIES_EXHAUSTED = "retransmissions exhausted"
    """Observer-inferred: the endpoint's data went unanswered through RTO backoff, then it fell
    silent although the capture went on past its next retransmission's due time: it gave up
    (fed at the end of the connection: ``Connection.finalize``, rules in ``giveup.py``)."""
    INVALID_FLAGS = "invalid flag combination"
    NEW_INCARNATION = "new incarnation"
    """A SYN reopened the 4-tuple: the old connection's endpoints are done (RFC 9293 3.10.7.4)."""
    TIMEOUT = "2MSL timeout"


class Action(str, Enum):
    """What a table row means, for events and reports."""

    OK = "ok"
    """A normal step of the protocol."""
    RETRANSMISSION = "retransmission"
    """A repeat of something already sent (SYN, SYN-ACK, FIN)."""
    INFER = "infer"
    """The segment proves a state the capture did not show (rule 4)."""
    UNEXPECTED = "unexpected"
    """Not valid in this state; recorded, state kept."""
    IGNORED = "ignored"
    """Valid-looking but not obeyed (out-of-window RST, segment after close)."""


S = TcpState
I = Input  # noqa: E741 - short alias keeps the table readable
A = Action

Row = tuple[Action, TcpState, str]

_RST_CLOSES = "RFC 9293 3.10.7.4: an acceptable RST closes the connection"
_SENT_RST = "the endpoint aborted or has no connection (RFC 9293 3.10.7.1 / 3.6)"

TRANSITIONS: dict[tuple[TcpState, Input], Row] = {
    # --- INACTIVE: nothing sent by this endpoint seen yet (observer-only) ---
    (S.INACTIVE, I.SEND_SYN): (A.OK, S.SYN_SENT, "active OPEN: SYN sent (RFC 9293 3.5)"),
    (S.INACTIVE, I.SEND_SYN_ACK): (A.OK, S.SYN_RECEIVED,
                                   "passive OPEN: LISTEN got a SYN and answered SYN-ACK"),
    (S.INACTIVE, I.SEND_ACK): (A.INFER, S.ESTABLISHED,
                               "sends ACK/data: synchronized before the capture showed it"),
    (S.INACTIVE, I.SEND_FIN): (A.INFER, S.FIN_WAIT_1,
                               "sends FIN: was synchronized before the capture showed it"),
    (S.INACTIVE, I.SEND_FIN_AGAIN): (A.INFER, S.FIN_WAIT_1, "sends FIN again"),
    (S.INACTIVE, I.SEND_RST): (A.OK, S.CLOSED, _SENT_RST),
    (S.INACTIVE, I.RECV_SYN): (A.OK, S.INACTIVE,
                               "SYN arrives; LISTEN, CLOSED or absent: unknown until it answers"),
    (S.INACTIVE, I.RECV_SYN_ACK): (A.OK, S.INACTIVE, "SYN-ACK arrives; its SYN was not captured"),
    (S.INACTIVE, I.RECV_ACK): (A.OK, S.INACTIVE, "nothing proves its state yet"),
    (S.INACTIVE, I.RECV_ACK_OF_FIN): (A.OK, S.INACTIVE, "nothing proves its state yet"),
    (S.INACTIVE, I.RECV_ACK_UNCONFIRMED): (A.OK, S.INACTIVE, "nothing proves its state yet"),
    (S.INACTIVE, I.RECV_FIN): (A.INFER, S.CLOSE_WAIT,
                               "peer closes a connection that was synchronized before the capture"),
    (S.INACTIVE, I.RECV_FIN_ACK_OF_FIN): (A.INFER, S.CLOSE_WAIT, "peer closes"),
    (S.INACTIVE, I.RECV_RST): (A.OK, S.CLOSED, _RST_CLOSES),
    (S.INACTIVE, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.INACTIVE, "RFC 5961 3.2"),
    # --- CLOSED ---
    (S.CLOSED, I.SEND_SYN): (A.OK, S.SYN_SENT, "active OPEN again on the same 4-tuple"),
    (S.CLOSED, I.SEND_SYN_ACK): (A.INFER, S.SYN_RECEIVED,
                                 "SYN-ACK from a closed endpoint: it had a pending handshake"),
    (S.CLOSED, I.SEND_ACK): (A.UNEXPECTED, S.CLOSED, "ACK/data sent after the connection closed"),
    (S.CLOSED, I.SEND_FIN): (A.UNEXPECTED, S.CLOSED, "FIN sent after the connection closed"),
    (S.CLOSED, I.SEND_AFTER_LOST_RST): (A.INFER, S.ESTABLISHED,
                                        "sends again well after the peer's RST: the RST never "
                                        "took effect (lost after the capture point, or not "
                                        "exact and answered by a challenge ACK, RFC 5961 3.2), "
                                        "so it is still synchronized (half-open, RFC 9293 "
                                        "3.5.2)"),
    (S.CLOSED, I.SEND_CHALLENGE_ACK): (A.INFER, S.ESTABLISHED,
                                       "answers an in-window RST that was not at its RCV.NXT "
                                       "with a challenge ACK (RFC 5961 3.2): the RST did not "
                                       "close it, it is still synchronized"),
    (S.CLOSED, I.SEND_AFTER_CHALLENGED_RST): (A.INFER, S.ESTABLISHED,
                                              "sends ACK/data after the peer challenged its "
                                              "RST (RFC 5961 3.2): that RST was not its abort "
                                              "(injected), it is still synchronized"),
    (S.CLOSED, I.SEND_FIN_AGAIN): (A.INFER, S.LAST_ACK,
                                   "FIN retransmitted: the final ACK never reached it "
                                   "(lost after the capture point), so it is in LAST_ACK"),
    (S.CLOSED, I.SEND_RST): (A.OK, S.CLOSED,
                             "RST for a segment of a connection that no longer exists "
                             "(RFC 9293 3.10.7.1)"),
    (S.CLOSED, I.RECV_SYN): (A.OK, S.CLOSED, "SYN to a closed endpoint"),
    (S.CLOSED, I.RECV_SYN_ACK): (A.IGNORED, S.CLOSED, "SYN-ACK after close"),
    (S.CLOSED, I.RECV_ACK): (A.IGNORED, S.CLOSED, "segment after close"),
    (S.CLOSED, I.RECV_ACK_OF_FIN): (A.IGNORED, S.CLOSED, "segment after close"),
    (S.CLOSED, I.RECV_ACK_UNCONFIRMED): (A.IGNORED, S.CLOSED, "segment after close"),
    (S.CLOSED, I.RECV_FIN): (A.IGNORED, S.CLOSED, "FIN after close"),
    (S.CLOSED, I.RECV_FIN_ACK_OF_FIN): (A.IGNORED, S.CLOSED, "FIN after close"),
    (S.CLOSED, I.RECV_RST): (A.IGNORED, S.CLOSED, "RST after close"),
    (S.CLOSED, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.CLOSED, "RST after close"),
    # --- LISTEN (only entered by explicit inference; kept for completeness) ---
    (S.LISTEN, I.RECV_SYN): (A.OK, S.LISTEN, "SYN arrives at a listener"),
    (S.LISTEN, I.SEND_SYN_ACK): (A.OK, S.SYN_RECEIVED, "passive OPEN (RFC 9293 3.10.7.2)"),
    (S.LISTEN, I.SEND_RST): (A.OK, S.LISTEN, "RST for an unacceptable segment (RFC 9293 3.10.7.2)"),
    (S.LISTEN, I.SEND_SYN): (A.OK, S.SYN_SENT, "SEND on a listener: active OPEN"),
    # --- SYN_SENT ---
    (S.SYN_SENT, I.SEND_SYN): (A.RETRANSMISSION, S.SYN_SENT,
                               "SYN retransmitted: no SYN-ACK yet (RFC 6298 5, RFC 9293 3.8.1)"),
    (S.SYN_SENT, I.RECV_SYN): (A.OK, S.SYN_RECEIVED,
                               "simultaneous open: SYN crossed ours (RFC 9293 3.5, figure 8)"),
    (S.SYN_SENT, I.RECV_SYN_ACK): (A.OK, S.ESTABLISHED,
                                   "SYN-ACK acknowledges our SYN (RFC 9293 3.10.7.3)"),
    (S.SYN_SENT, I.SEND_SYN_ACK): (A.INFER, S.SYN_RECEIVED,
                                   "simultaneous open: the peer's SYN was not captured"),
    (S.SYN_SENT, I.SEND_ACK): (A.INFER, S.ESTABLISHED,
                               "sends ACK/data: the SYN-ACK it got was not captured"),
    (S.SYN_SENT, I.SEND_FIN): (A.INFER, S.FIN_WAIT_1,
                               "sends FIN: established, the SYN-ACK was not captured"),
    (S.SYN_SENT, I.SEND_FIN_AGAIN): (A.INFER, S.FIN_WAIT_1, "sends FIN again"),
    (S.SYN_SENT, I.SEND_RST): (A.OK, S.CLOSED, "the client aborts its connection attempt"),
    (S.SYN_SENT, I.RECV_RST): (A.OK, S.CLOSED,
                               "RST acknowledging our SYN: connection refused (RFC 9293 3.10.7.3)"),
    (S.SYN_SENT, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.SYN_SENT,
                                             "RST not acknowledging our SYN is ignored "
                                             "(RFC 9293 3.10.7.3)"),
    (S.SYN_SENT, I.TIMEOUT): (A.INFER, S.CLOSED,
                              "connection attempt abandoned: every SYN went unanswered and the "
                              "client gives up after its retries (RFC 9293 3.8.3 R2; Linux "
                              "tcp_syn_retries)"),
    (S.SYN_SENT, I.RECV_ICMP_ERROR): (A.INFER, S.CLOSED,
                                      "an ICMP error (destination unreachable, time exceeded) "
                                      "answered its SYN and no SYN followed: the attempt ended "
                                      "there (RFC 1122 4.2.3.9; Linux tcp_v4_err/tcp_v6_err "
                                      "close a SYN_SENT socket on the error)"),
    (S.SYN_SENT, I.RECV_ACK): (A.UNEXPECTED, S.SYN_SENT,
                               "segment without SYN or RST in SYN-SENT is dropped "
                               "(RFC 9293 3.10.7.3)"),
    (S.SYN_SENT, I.RECV_FIN): (A.UNEXPECTED, S.SYN_SENT, "FIN in SYN-SENT is dropped"),
    # --- SYN_RECEIVED ---
    (S.SYN_RECEIVED, I.SEND_SYN_ACK): (A.RETRANSMISSION, S.SYN_RECEIVED,
                                       "SYN-ACK retransmitted: the handshake ACK has not arrived"),
    (S.SYN_RECEIVED, I.SEND_SYN): (A.RETRANSMISSION, S.SYN_RECEIVED,
                                   "SYN retransmitted during a simultaneous open"),
    (S.SYN_RECEIVED, I.RECV_SYN): (A.OK, S.SYN_RECEIVED,
                                   "the peer retransmitted its SYN; a SYN-ACK will follow"),
    (S.SYN_RECEIVED, I.RECV_ACK): (A.OK, S.ESTABLISHED,
                                   "handshake ACK: connection established (RFC 9293 3.10.7.4)"),
    (S.SYN_RECEIVED, I.RECV_ACK_UNCONFIRMED): (A.IGNORED, S.SYN_RECEIVED,
                                               "an identical ACK already failed to complete the "
                                               "handshake: not taken as proof"),
    (S.SYN_RECEIVED, I.RECV_SYN_ACK): (A.OK, S.ESTABLISHED,
                                       "simultaneous open completes (RFC 9293 figure 8)"),
    (S.SYN_RECEIVED, I.SEND_ACK): (A.INFER, S.ESTABLISHED,
                                   "sends ACK/data: the handshake completed"),
    (S.SYN_RECEIVED, I.SEND_FIN): (A.OK, S.FIN_WAIT_1, "CLOSE in SYN-RECEIVED (RFC 9293 3.10.4)"),
    (S.SYN_RECEIVED, I.SEND_FIN_AGAIN): (A.OK, S.FIN_WAIT_1, "CLOSE in SYN-RECEIVED"),
    (S.SYN_RECEIVED, I.RECV_FIN): (A.OK, S.CLOSE_WAIT,
                                   "FIN acknowledging our SYN: established, then peer closes"),
    (S.SYN_RECEIVED, I.RECV_FIN_ACK_OF_FIN): (A.OK, S.CLOSE_WAIT, "peer closes"),
    (S.SYN_RECEIVED, I.SEND_RST): (A.OK, S.CLOSED, _SENT_RST),
    (S.SYN_RECEIVED, I.RECV_RST): (A.OK, S.CLOSED,
                                   "RST in SYN-RECEIVED: connection removed "
                                   "(a passive open returns to LISTEN, RFC 9293 3.10.7.4)"),
    (S.SYN_RECEIVED, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.SYN_RECEIVED, "RFC 5961 3.2"),
    # --- ESTABLISHED ---
    (S.ESTABLISHED, I.SEND_ACK): (A.OK, S.ESTABLISHED, "data transfer"),
    (S.ESTABLISHED, I.RECV_ACK): (A.OK, S.ESTABLISHED, "data transfer"),
    (S.ESTABLISHED, I.RECV_ACK_UNCONFIRMED): (A.OK, S.ESTABLISHED, "data transfer"),
    (S.ESTABLISHED, I.SEND_FIN): (A.OK, S.FIN_WAIT_1, "active CLOSE: FIN sent (RFC 9293 3.6)"),
    (S.ESTABLISHED, I.SEND_FIN_AGAIN): (A.OK, S.FIN_WAIT_1, "active CLOSE: FIN sent"),
    (S.ESTABLISHED, I.RECV_FIN): (A.OK, S.CLOSE_WAIT, "passive close: peer's FIN (RFC 9293 3.6)"),
    (S.ESTABLISHED, I.RECV_FIN_ACK_OF_FIN): (A.OK, S.CLOSE_WAIT, "passive close: peer's FIN"),
    (S.ESTABLISHED, I.SEND_SYN_ACK): (A.INFER, S.SYN_RECEIVED,
                                      "SYN-ACK retransmitted: the handshake ACK never reached it "
                                      "(lost after the capture point)"),
    (S.ESTABLISHED, I.SEND_SYN): (A.INFER, S.SYN_SENT,
                                  "SYN retransmitted: the SYN-ACK never reached it"),
    (S.ESTABLISHED, I.RECV_SYN): (A.UNEXPECTED, S.ESTABLISHED,
                                  "SYN in a synchronized state: challenge ACK (RFC 5961 4)"),
    (S.ESTABLISHED, I.SEND_SPLIT_SYN): (A.INFER, S.SYN_SENT,
                                        "split handshake (Beardsley and Qian 2010): it ACKed "
                                        "the peer's SYN without a SYN of its own, now sends "
                                        "one: a simultaneous open (RFC 9293 3.5), not "
                                        "synchronized yet"),
    (S.ESTABLISHED, I.SEND_SYN_NEW_ISN): (A.IGNORED, S.ESTABLISHED,
                                          "a SYN with a new ISN the peer answered with a "
                                          "challenge ACK (RFC 5961 4), not a SYN-ACK: not a "
                                          "new connection (injected, or from a host that lost "
                                          "it: its next segments tell)"),
    (S.ESTABLISHED, I.RECV_SYN_ACK): (A.OK, S.ESTABLISHED,
                                      "duplicate SYN-ACK: re-acknowledged (RFC 9293 3.10.7.4)"),
    (S.ESTABLISHED, I.SEND_RST): (A.OK, S.CLOSED, "abort: RST sent (RFC 9293 3.10.5)"),
    (S.ESTABLISHED, I.RECV_RST): (A.OK, S.CLOSED, _RST_CLOSES),
    (S.ESTABLISHED, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.ESTABLISHED, "RFC 5961 3.2"),
    # --- FIN_WAIT_1 ---
    (S.FIN_WAIT_1, I.SEND_ACK): (A.OK, S.FIN_WAIT_1, "ACKs the peer's data"),
    (S.FIN_WAIT_1, I.SEND_FIN_AGAIN): (A.RETRANSMISSION, S.FIN_WAIT_1, "FIN retransmitted"),
    (S.FIN_WAIT_1, I.SEND_FIN): (A.UNEXPECTED, S.FIN_WAIT_1, "a second FIN at another sequence"),
    (S.FIN_WAIT_1, I.RECV_ACK): (A.OK, S.FIN_WAIT_1, "peer data or ACK not covering our FIN"),
    (S.FIN_WAIT_1, I.RECV_ACK_UNCONFIRMED): (A.OK, S.FIN_WAIT_1, "ACK not covering our FIN"),
    (S.FIN_WAIT_1, I.RECV_ACK_OF_FIN): (A.OK, S.FIN_WAIT_2, "our FIN is acknowledged"),
    (S.FIN_WAIT_1, I.RECV_FIN): (A.OK, S.CLOSING,
                                 "simultaneous close: FIN crossed ours (RFC 9293 figure 13)"),
    (S.FIN_WAIT_1, I.RECV_FIN_ACK_OF_FIN): (A.OK, S.TIME_WAIT,
                                            "FIN that also acknowledges our FIN "
                                            "(RFC 9293 3.10.7.4, FIN bit)"),
    (S.FIN_WAIT_1, I.SEND_RST): (A.OK, S.CLOSED, _SENT_RST),
    (S.FIN_WAIT_1, I.RECV_RST): (A.OK, S.CLOSED, _RST_CLOSES),
    (S.FIN_WAIT_1, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.FIN_WAIT_1, "RFC 5961 3.2"),
    (S.FIN_WAIT_1, I.RECV_SYN_ACK): (A.OK, S.FIN_WAIT_1, "duplicate SYN-ACK"),
    # --- FIN_WAIT_2 ---
    (S.FIN_WAIT_2, I.SEND_ACK): (A.OK, S.FIN_WAIT_2, "ACKs the peer's data (half-close)"),
    (S.FIN_WAIT_2, I.RECV_ACK): (A.OK, S.FIN_WAIT_2, "peer keeps sending (half-close)"),
    (S.FIN_WAIT_2, I.RECV_ACK_OF_FIN): (A.OK, S.FIN_WAIT_2, "peer keeps sending (half-close)"),
    (S.FIN_WAIT_2, I.RECV_ACK_UNCONFIRMED): (A.OK, S.FIN_WAIT_2, "peer keeps sending"),
    (S.FIN_WAIT_2, I.RECV_FIN): (A.OK, S.TIME_WAIT, "peer's FIN: enter TIME-WAIT"),
    (S.FIN_WAIT_2, I.RECV_FIN_ACK_OF_FIN): (A.OK, S.TIME_WAIT, "peer's FIN: enter TIME-WAIT"),
    (S.FIN_WAIT_2, I.SEND_FIN_AGAIN): (A.INFER, S.FIN_WAIT_1,
                                       "FIN retransmitted: the ACK of it never reached it"),
    (S.FIN_WAIT_2, I.SEND_RST): (A.OK, S.CLOSED, _SENT_RST),
    (S.FIN_WAIT_2, I.RECV_RST): (A.OK, S.CLOSED, _RST_CLOSES),
    (S.FIN_WAIT_2, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.FIN_WAIT_2, "RFC 5961 3.2"),
    # --- CLOSE_WAIT ---
    (S.CLOSE_WAIT, I.SEND_ACK): (A.OK, S.CLOSE_WAIT, "still sending after the peer's FIN"),
    (S.CLOSE_WAIT, I.RECV_ACK): (A.OK, S.CLOSE_WAIT, "peer ACKs our data"),
    (S.CLOSE_WAIT, I.RECV_ACK_UNCONFIRMED): (A.OK, S.CLOSE_WAIT, "peer ACKs our data"),
    (S.CLOSE_WAIT, I.RECV_FIN): (A.RETRANSMISSION, S.CLOSE_WAIT, "peer retransmitted its FIN"),
    (S.CLOSE_WAIT, I.RECV_FIN_ACK_OF_FIN): (A.RETRANSMISSION, S.CLOSE_WAIT,
                                            "peer retransmitted its FIN"),
    (S.CLOSE_WAIT, I.SEND_FIN): (A.OK, S.LAST_ACK, "CLOSE after the peer's FIN (RFC 9293 3.6)"),
    (S.CLOSE_WAIT, I.SEND_FIN_AGAIN): (A.OK, S.LAST_ACK, "CLOSE after the peer's FIN"),
    (S.CLOSE_WAIT, I.SEND_FIN_CROSSED): (A.INFER, S.FIN_WAIT_1,
                                         "its FIN does not acknowledge the peer's FIN: it "
                                         "closed before that FIN arrived (simultaneous close, "
                                         "RFC 9293 figure 13); the peer's FIN is delivered "
                                         "when the endpoint acknowledges it"),
    (S.CLOSE_WAIT, I.SEND_RST): (A.OK, S.CLOSED, _SENT_RST),
    (S.CLOSE_WAIT, I.RECV_RST): (A.OK, S.CLOSED, _RST_CLOSES),
    (S.CLOSE_WAIT, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.CLOSE_WAIT, "RFC 5961 3.2"),
    # --- CLOSING ---
    (S.CLOSING, I.SEND_ACK): (A.OK, S.CLOSING, "ACKs the peer's FIN"),
    (S.CLOSING, I.SEND_FIN_AGAIN): (A.RETRANSMISSION, S.CLOSING, "FIN retransmitted"),
    (S.CLOSING, I.RECV_ACK): (A.OK, S.CLOSING, "ACK not covering our FIN"),
    (S.CLOSING, I.RECV_ACK_UNCONFIRMED): (A.OK, S.CLOSING, "ACK not covering our FIN"),
    (S.CLOSING, I.RECV_ACK_OF_FIN): (A.OK, S.TIME_WAIT, "our FIN is acknowledged: TIME-WAIT"),
    (S.CLOSING, I.RECV_FIN): (A.RETRANSMISSION, S.CLOSING, "peer retransmitted its FIN"),
    (S.CLOSING, I.RECV_FIN_ACK_OF_FIN): (A.OK, S.TIME_WAIT, "peer's FIN acks ours: TIME-WAIT"),
    (S.CLOSING, I.SEND_RST): (A.OK, S.CLOSED, _SENT_RST),
    (S.CLOSING, I.RECV_RST): (A.OK, S.CLOSED, _RST_CLOSES),
    (S.CLOSING, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.CLOSING, "RFC 5961 3.2"),
    # --- LAST_ACK ---
    (S.LAST_ACK, I.SEND_ACK): (A.OK, S.LAST_ACK, "ACK while waiting for the last ACK"),
    (S.LAST_ACK, I.SEND_FIN_AGAIN): (A.RETRANSMISSION, S.LAST_ACK,
                                     "FIN retransmitted in LAST-ACK: the final ACK is missing"),
    (S.LAST_ACK, I.RECV_ACK): (A.OK, S.LAST_ACK, "ACK not covering our FIN"),
    (S.LAST_ACK, I.RECV_ACK_UNCONFIRMED): (A.OK, S.LAST_ACK, "ACK not covering our FIN"),
    (S.LAST_ACK, I.RECV_ACK_OF_FIN): (A.OK, S.CLOSED, "final ACK: connection closed"),
    (S.LAST_ACK, I.RECV_FIN): (A.RETRANSMISSION, S.LAST_ACK, "peer retransmitted its FIN"),
    (S.LAST_ACK, I.RECV_FIN_ACK_OF_FIN): (A.OK, S.CLOSED, "peer's FIN acks ours: closed"),
    (S.LAST_ACK, I.SEND_RST): (A.OK, S.CLOSED, _SENT_RST),
    (S.LAST_ACK, I.RECV_RST): (A.OK, S.CLOSED, _RST_CLOSES),
    (S.LAST_ACK, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.LAST_ACK, "RFC 5961 3.2"),
    # --- TIME_WAIT ---
    (S.TIME_WAIT, I.SEND_ACK): (A.OK, S.TIME_WAIT, "re-ACK of a retransmitted FIN"),
    (S.TIME_WAIT, I.RECV_ACK): (A.OK, S.TIME_WAIT, "late ACK in TIME-WAIT"),
    (S.TIME_WAIT, I.RECV_ACK_OF_FIN): (A.OK, S.TIME_WAIT, "late ACK in TIME-WAIT"),
    (S.TIME_WAIT, I.RECV_ACK_UNCONFIRMED): (A.OK, S.TIME_WAIT, "late ACK in TIME-WAIT"),
    (S.TIME_WAIT, I.RECV_FIN): (A.RETRANSMISSION, S.TIME_WAIT,
                                "peer retransmitted its FIN: re-ACK, restart 2MSL "
                                "(RFC 9293 3.10.7.4)"),
    (S.TIME_WAIT, I.RECV_FIN_ACK_OF_FIN): (A.RETRANSMISSION, S.TIME_WAIT,
                                           "peer retransmitted its FIN: re-ACK, restart 2MSL"),
    (S.TIME_WAIT, I.SEND_FIN_AGAIN): (A.INFER, S.CLOSING,
                                      "FIN retransmitted: the ACK of our FIN never arrived"),
    (S.TIME_WAIT, I.SEND_RST): (A.OK, S.CLOSED, "RST from TIME-WAIT"),
    (S.TIME_WAIT, I.RECV_RST): (A.OK, S.CLOSED,
                                "RST in TIME-WAIT ends it (Linux default, tcp_rfc1337=0)"),
    (S.TIME_WAIT, I.RECV_RST_OUT_OF_WINDOW): (A.IGNORED, S.TIME_WAIT, "RFC 5961 3.2"),
    (S.TIME_WAIT, I.RECV_SYN): (A.OK, S.TIME_WAIT,
                                "SYN in TIME-WAIT (a new incarnation when acceptable, RFC 6191)"),
    (S.TIME_WAIT, I.TIMEOUT): (A.OK, S.CLOSED, "2MSL elapsed (RFC 9293 3.10.8)"),
}

# Retransmissions exhausted (an observer inference, giveup.py): a synchronized endpoint that
# sends data ends the connection without FIN or RST (RFC 9293 3.8.3 R2: "close the
# connection" once R2 is reached; RFC 1122 4.2.3.5; Linux tcp_write_timeout -> tcp_write_err
# -> tcp_done sends nothing). The peer is not told: it keeps its state (half-open, 3.5.2).
_GAVE_UP = ("its data went unanswered through RTO backoff and no retransmission came "
            "when the next was due: it gave up and closed without FIN "
            "or RST (RFC 9293 3.8.3 R2; Linux tcp_retries2, TCP_USER_TIMEOUT); the peer was "
            "not told (half-open, RFC 9293 3.5.2)")
for _state in (S.ESTABLISHED, S.FIN_WAIT_1, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK):
    TRANSITIONS[(_state, I.RETRIES_EXHAUSTED)] = (A.INFER, S.CLOSED, _GAVE_UP)

# A new incarnation of the 4-tuple ends whatever the old one was doing: the endpoint that
# accepted or sent the new SYN has forgotten the old connection (RFC 9293 3.10.7.4; RFC 6191).
for _state in TcpState:
    if _state not in (S.CLOSED, S.INACTIVE):
        TRANSITIONS[(_state, I.NEW_INCARNATION)] = (
            A.OK, S.CLOSED, "a new SYN reopened the 4-tuple: this incarnation is over")
    TRANSITIONS[(_state, I.RECV_RST_UNCONFIRMED)] = (
        A.IGNORED, _state, "the receiver stopped answering before this RST: its delivery is "
        "unknown (peer gone or path black), so its state is kept (rule 4)")
    # Invalid flag combinations never move a state (RFC 9293 3.10.7: such segments are dropped).
    TRANSITIONS[(_state, I.INVALID_FLAGS)] = (A.UNEXPECTED, _state,
                                              "invalid flag combination: dropped")


# Members the per-segment methods below use, bound once: a member read off its Enum class
# costs ~0.2 us (EnumType attribute lookup), a module global a few ns.
_INACTIVE = S.INACTIVE
_ESTABLISHED = S.ESTABLISHED
_TIME_WAIT = S.TIME_WAIT
_RECV_RST = I.RECV_RST
_RETRANSMISSION = A.RETRANSMISSION


def lookup(state: TcpState, inp: Input) -> Row:
    """The table row for (state, input); a missing row is an unexpected segment (rule 3)."""
    row = TRANSITIONS.get((state, inp))
    if row is None:
        return (A.UNEXPECTED, state, f"{inp.value} is not expected in {state.value}")
    return row


class EndpointMachine:
    """One endpoint's state and the RFC 9293 variables a passive observer can follow."""

    __slots__ = ("state", "iss", "snd_max", "fin_seq", "fin_sent", "entered_ns",
                 "time_wait_since_ns", "synack_after_ack", "handshake_ack", "peer_fin_pending",
                 "reset_in_established_ns")

    def __init__(self) -> None:
        self.state: TcpState = _INACTIVE
        self.iss: int = -1
        """Initial send sequence number (raw), -1 until this endpoint's SYN is seen."""
        self.snd_max: int = -1
        """Highest raw sequence number sent so far plus length (mod 2**32), -1 if unknown."""
        self.fin_seq: int = -1
        """Raw sequence number of this endpoint's FIN, -1 until one is sent."""
        self.fin_sent: bool = False
        self.entered_ns: int = 0
        """Packet time the current state was entered."""
        self.time_wait_since_ns: int = -1
        """Packet time TIME_WAIT was (re)started, -1 when not in TIME_WAIT."""
        self.synack_after_ack: bool = False
        """It retransmitted a SYN-ACK after a handshake ACK reached it (that ACK was lost)."""
        self.handshake_ack: int = -1
        """Ack number of the first handshake ACK it received, -1 if none yet."""
        self.peer_fin_pending: bool = False
        """The peer's FIN crossed this endpoint's own FIN and has not been acknowledged yet."""
        self.reset_in_established_ns: int = -1
        """Packet time it obeyed a RST while ESTABLISHED (-1 otherwise, or once it moved on):
        what it sends long after that proves the RST did not take (SEND_AFTER_LOST_RST)."""

    def apply(self, inp: Input, ts_ns: int) -> Row:
        """Move by the table and return the row used (the caller records the event)."""
        row = lookup(self.state, inp)
        new_state = row[1]
        if new_state is _TIME_WAIT and (self.state is not _TIME_WAIT
                                        or row[0] is _RETRANSMISSION):
            # Entering TIME_WAIT, or a retransmitted FIN restarting its 2MSL timer. Nothing
            # else restarts it (RFC 9293 3.10.7.4 TIME-WAIT: "the only thing that can arrive
            # in this state is a retransmission of the remote FIN ... restart the 2 MSL
            # timeout"; Linux tcp_timewait_state_process reschedules only then): the
            # endpoint's own final ACK or a late ACK must not extend it.
            self.time_wait_since_ns = ts_ns
        elif new_state is not self.state:
            self.time_wait_since_ns = -1
        if new_state is not self.state:
            self.reset_in_established_ns = (
                ts_ns if inp is _RECV_RST and self.state is _ESTABLISHED else -1)
            self.entered_ns = ts_ns
            self.state = new_state
        return row


def transitions_markdown() -> str:
    """:data:`TRANSITIONS` as a Markdown table (docs/state-machine.md is generated from it)."""
    lines = ["| state | input | action | next state | why |", "| --- | --- | --- | --- | --- |"]
    states = list(TcpState)
    inputs = list(Input)
    for (state, inp), (action, new, reason) in sorted(
            TRANSITIONS.items(), key=lambda kv: (states.index(kv[0][0]), inputs.index(kv[0][1]))):
        lines.append(f"| `{state.value}` | {inp.value} | {action.value} | `{new.value}` | "
                     f"{reason.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m tcptrace_py.fsm --markdown
    import sys

    if sys.argv[1:] == ["--markdown"]:
        sys.stdout.write(transitions_markdown())
    else:
        sys.stderr.write("usage: python -m tcptrace_py.fsm --markdown\n")
        raise SystemExit(2)


# The compiled engine's twin (tcptrace_py/implementation.py, tcptrace_py/_engine.pyx): the
# same fields as C fields, for the replay's compiled steps; ``apply`` stays this one.
from tcptrace_py.implementation import twin  # noqa: E402

EndpointMachine = twin(EndpointMachine, "EndpointMachineBase")  # type: ignore[misc]
