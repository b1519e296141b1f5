#!/usr/bin/env python3
"""Worked example: the failed connections of a capture as a DataFrame, in two lines.

    python samples/failed_connections.py capture.pcap

"Failed" means the connection never carried data to its end: refused (SYN answered by RST),
unanswered (SYN never answered) or aborted by a RST. The two lines are the ``analyze`` call
and the filter; the rest is argument handling and printing.
"""

from __future__ import annotations

import sys

import pandas as pd

import tcptrace_py

FAILED = ["refused", "unanswered", "rst_by_client", "rst_by_server"]


def failed_connections(path: str) -> pd.DataFrame:
    flows = tcptrace_py.analyze(path).flows
    return flows[flows.close.isin(FAILED)]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} CAPTURE")
    failed = failed_connections(sys.argv[1])
    cols = ["flow_id", "client_ip", "client_port", "server_ip", "server_port", "close",
            "start_ts", "duration_s", "anomalies"]
    print(failed[cols].to_string(index=False) if len(failed) else "no failed connections")
