"""Headless Chromium for the HTML report's tests, driven by Playwright's Python package with
the system's browser (Debian's ``chromium``: ``playwright install`` downloads a browser build,
which this project never does). Tests using :func:`launch` skip cleanly when either is absent.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
"""Flags that work in a container as root with no display and no network: no sandbox (root),
no GPU, and none of the browser's own background requests (so "no network request" is about
the page only)."""


def chromium_path() -> str | None:
    """The system Chromium (``TCPTRACE_PY_CHROMIUM`` overrides), or None."""
    env = os.environ.get("TCPTRACE_PY_CHROMIUM")
    if env:
        return env if os.path.exists(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def launch(profile_dir: str) -> Iterator[Any]:
    """A Playwright browser context on the system Chromium with a fresh profile in
    ``profile_dir`` (``--user-data-dir``); skips the test when Chromium or the
    ``playwright`` package is missing."""
    exe = chromium_path()
    if exe is None:
        pytest.skip("no chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="no playwright package (pip install playwright)")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile_dir, executable_path=exe, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1920, "height": 1080})
        try:
            yield context
        finally:
            context.close()
