"""Retransmission exhaustion: a side whose data went unanswered through RTO backoff and that
then fell silent gave up on the connection (fsm input ``RETRIES_EXHAUSTED``).

Why an inference: a stack that exhausts its retransmissions (RFC 9293 3.8.3 R2; Linux
``tcp_retries2``, 15 by default, ~924.6 s with a 200 ms RTO; an application's
``TCP_USER_TIMEOUT``) drops the connection without sending FIN or RST. The capture then
shows the retransmissions, their intervals doubling (RFC 6298 5.5) up to the stack's RTO cap,
and then nothing more from that side, although its timer would have fired again. When the
capture goes on past the moment the next retransmission was due and that side stays silent,
the connection is gone on that side; the peer, which never heard a thing, still holds it
(half-open, RFC 9293 3.5.2).

Rules (checked by :meth:`RetransmissionRun.give_up_ns`):
  1. The run is the side's data retransmissions since the peer last sent anything
     (``Connection.silent_probes`` counts the same segments, so a keep-alive or a
     zero-window probe in between breaks it), and the last of them is the connection's last
     segment.
  2. At least ``Options.give_up_min_retransmissions`` of them, with intervals (from the
     original transmission when known) that never shrink beyond timer jitter and that grew:
     the last at least ``GROWTH_MIN_RATIO`` times the first. Constant intervals are not a
     retransmission timer backing off.
  3. The next retransmission was due one backed-off RTO after the last: twice the last
     interval, at most ``Options.give_up_rto_max_s``. The capture's end (or the next packet
     of the capture, when the connection is emitted idle) must be later than that.
"""

from __future__ import annotations

GROWTH_MIN_RATIO = 1.5
"""The last interval over the first needed to call a run a backoff (RFC 6298 5.5 doubles;
timers fire late and stacks cap the RTO: 1.5 is what the retransmission detector uses)."""
JITTER_RATIO = 0.8
"""An interval may be this much shorter than the one before and still count as backing off
(timer jitter; Linux's RTO is recomputed from SRTT when an RTT sample comes in)."""
MAX_KEPT = 64
"""Retransmissions of a run kept as evidence (frames and times); more are only counted."""


class RetransmissionRun:
    """One side's trailing run of data retransmissions into the peer's silence (rule 1)."""

    __slots__ = ("count", "frames", "times_ns", "original_ts_ns", "original_frame",
                 "last_frame", "last_ts_ns", "prev_ts_ns", "first_interval_ns",
                 "last_interval_ns", "backing_off")

    def __init__(self) -> None:
        self.count = 0
        """Retransmissions in the run."""
        self.frames: list[int] = []
        """Their frames (the first ``MAX_KEPT``)."""
        self.times_ns: list[int] = []
        """Their times (the first ``MAX_KEPT``)."""
        self.original_ts_ns = -1
        """Time of the original transmission of the first one's data (-1 when unknown)."""
        self.original_frame = -1
        self.last_frame = -1
        self.last_ts_ns = -1
        self.prev_ts_ns = -1
        self.first_interval_ns = -1
        self.last_interval_ns = -1
        self.backing_off = True
        """No interval so far was shorter than ``JITTER_RATIO`` times the one before."""

    def add(self, frame: int, ts_ns: int, original_frame: int, since_original_ns: int) -> None:
        """One more data retransmission of the run."""
        if self.count == 0:
            if since_original_ns >= 0:
                self.original_ts_ns = ts_ns - since_original_ns
                self.original_frame = original_frame
                self._interval(since_original_ns)
        else:
            self._interval(ts_ns - self.last_ts_ns)
        self.count += 1
        if len(self.frames) < MAX_KEPT:
            self.frames.append(frame)
            self.times_ns.append(ts_ns)
        self.prev_ts_ns = self.last_ts_ns
        self.last_frame = frame
        self.last_ts_ns = ts_ns

    def _interval(self, ns: int) -> None:
        if self.last_interval_ns >= 0 and ns < JITTER_RATIO * self.last_interval_ns:
            self.backing_off = False
        if self.first_interval_ns < 0:
            self.first_interval_ns = ns
        self.last_interval_ns = ns

    def next_rto_ns(self, rto_max_ns: int) -> int:
        """When the next retransmission was due after the last one (rule 3)."""
        return min(2 * self.last_interval_ns, rto_max_ns)

    def give_up_ns(self, end_ns: int, min_retransmissions: int, rto_max_ns: int) -> int:
        """The time the sender gave up (its next retransmission was due), when rules 2 and 3
        hold and the capture runs past it (``end_ns``); -1 otherwise."""
        if self.count < min_retransmissions or not self.backing_off \
                or self.first_interval_ns <= 0 \
                or self.last_interval_ns < GROWTH_MIN_RATIO * self.first_interval_ns:
            return -1
        due = self.last_ts_ns + self.next_rto_ns(rto_max_ns)
        return due if end_ns > due else -1
