"""Prints the conformance agreement table in pytest's terminal summary when it was computed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# tests/ on sys.path so the conformance package and tests/captures_util import everywhere.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from conformance import peers

    if peers.agreement.cache_info().currsize:
        terminalreporter.write_sep("-", "conformance agreement (tests/conformance/baseline.json)")
        terminalreporter.write(peers.render(peers.agreement()))
