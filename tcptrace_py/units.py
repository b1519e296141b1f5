"""Numbers for people: durations and instants as a reader takes them in at a glance.

Why: ``0.175047 s`` or ``163872.000412 s`` make the reader count digits; ``175 ms`` and
``1 d 21 h`` do not. Records, DataFrames and an anomaly's ``details`` keep the exact values;
only text meant to be read (finding summaries, the terminal) goes through here.

Rules:

1. Below a minute, three significant digits in the largest unit that keeps the number at 1
   or more: ``1.02 s``, ``175 ms``, ``42.0 ms``, ``3.50 µs``, ``12 ns`` (nanoseconds are
   whole: the captures' resolution).
2. From a minute on, the two largest calendar units, rounded to the smaller one:
   ``2 min 5 s``, ``3 h 12 min``, ``2 d 3 h``.
3. A list shares one unit, chosen by its largest value, at that value's precision
   (``retries after 1.00, 2.00, 4.00 s``), so the values compare at a glance; more
   decimals only when a value would otherwise read as 0 (``0.5, 200.0 ms``).
4. Instants are ISO 8601 dates and times, UTC unless asked for local time, to the
   microsecond (``2026-11-21 09:41:06.798866 UTC``).

Pure functions: no clock, no locale (the local time zone is the operating system's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

__all__ = ["instant", "seconds", "seconds_list", "time_of_day"]

SIGNIFICANT_DIGITS = 3
"""Digits of a duration below a minute: enough to tell 175 ms from 178 ms, few enough to
read at once (a capture's timestamps are rarely better than 10 µs anyway)."""

_SUB_SECOND = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
_CALENDAR = ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s"))


def _decimals(value: float) -> int:
    """Decimals that give SIGNIFICANT_DIGITS to a value in [1, 1000)."""
    return max(0, SIGNIFICANT_DIGITS - 1 - int(math.floor(math.log10(value))))


def _sub_minute_unit(value: float) -> tuple[float, str]:
    for scale, unit in _SUB_SECOND:
        if value >= scale:
            # 999.96 ms rounds to "1000 ms": take the next unit up instead.
            scaled = value / scale
            if unit != "s" and round(scaled, _decimals(scaled)) >= 1000:
                return scale * 1000, _SUB_SECOND[_SUB_SECOND.index((scale, unit)) - 1][1]
            return scale, unit
    return 1e-9, "ns"


def seconds(value: float) -> str:
    """A duration in seconds as text (rules 1 and 2); NaN or None-like: ``n/a``."""
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf s" if value > 0 else "-inf s"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v == 0:
        return "0 s"
    if v >= 59.95:  # would print as "60.0 s"
        whole = round(v)
        for i, (size, unit) in enumerate(_CALENDAR[:-1]):
            if whole >= size:
                small_size, small_unit = _CALENDAR[i + 1]
                total_small = round(v / small_size)
                big, small = divmod(total_small, size // small_size)
                text = f"{big} {unit}"
                return sign + (text + f" {small} {small_unit}" if small else text)
    scale, unit = _sub_minute_unit(v)
    if unit == "ns":
        return f"{sign}{round(v * 1e9)} ns"
    scaled = v / scale
    return f"{sign}{scaled:.{_decimals(max(scaled, 1.0))}f} {unit}"


def seconds_list(values: Sequence[float]) -> str:
    """Several durations sharing one unit (rule 3): ``0.60, 1.20, 2.40, 4.81 s``."""
    if not values:
        return ""
    top = max(abs(v) for v in values)
    if top == 0:
        return ", ".join("0" for _ in values) + " s"
    if top >= 59.95:
        return ", ".join(seconds(v) for v in values)
    scale, unit = _sub_minute_unit(top)
    if unit == "ns":
        return ", ".join(f"{round(v * 1e9)}" for v in values) + " ns"
    places = _decimals(max(top / scale, 1.0))
    smallest = min((abs(v) / scale for v in values if v), default=0.0)
    if smallest and round(smallest, places) == 0:  # would read as 0: show its first digit
        places = min(3, -int(math.floor(math.log10(smallest))))
    return ", ".join(f"{v / scale:.{places}f}" for v in values) + f" {unit}"


UNKNOWN_TIME = "n/a"
"""An instant that cannot be shown: null in the record (a timestamp outside 1970-2262,
segment.TS_NS_MIN..TS_NS_MAX, which the capture's warnings count)."""


def _moment(ts_s: float, local: bool) -> datetime | None:
    try:
        utc = datetime.fromtimestamp(ts_s, tz=timezone.utc)
        return utc.astimezone() if local else utc
    except (OverflowError, OSError, ValueError):  # beyond year 9999, or before year 1
        return None


def instant(ts_s: float | None, local: bool = False) -> str:
    """``2026-11-21 09:41:06.798866 UTC`` (rule 4; local: the zone's abbreviation);
    ``n/a`` for a missing time."""
    moment = None if ts_s is None else _moment(ts_s, local)
    if moment is None:
        return UNKNOWN_TIME
    zone = (moment.tzname() or "") if local else "UTC"
    return f"{moment:%Y-%m-%d %H:%M:%S.%f} {zone}".rstrip()


def time_of_day(ts_s: float | None, local: bool = False, with_date: bool = False) -> str:
    """``09:41:06.798`` (milliseconds: a table column), or ``11-21 09:41:06`` when rows span
    several days (``with_date``); ``n/a`` for a missing time."""
    moment = None if ts_s is None else _moment(ts_s, local)
    if moment is None:
        return UNKNOWN_TIME
    if with_date:
        return f"{moment:%m-%d %H:%M:%S}"
    return f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"
