"""Detectors: findings with evidence. (Framework being written; see issue 10.)"""

from __future__ import annotations

from typing import Any

from tcptrace_py.connection import Connection
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.events import Anomaly
from tcptrace_py.options import Options


class DetectorSet:
    """All enabled detectors, fed every finished connection and the capture end."""

    def __init__(self, options: Options) -> None:
        self.options = options

    def on_connection(self, conn: Connection) -> list[Anomaly]:
        return []

    def on_record(self, conn: Connection, record: dict[str, Any]) -> None:
        return None

    def on_end(self, end_ns: int, diag: Diagnostics) -> list[Anomaly]:
        return []
