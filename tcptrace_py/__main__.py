"""Entry point of the ``tcptrace-py`` console script and of ``python -m tcptrace_py``.

Why not ``tcptrace_py.cli:main`` directly: the console script imports its target module
before calling it, and importing the CLI (click, the engine, the detectors) is most of a
short run. The cyclic collector's young generation, collected every 700 allocations by
default, runs ~40 times during that import and frees almost nothing (a few hundred objects
of the tens of thousands it traverses again and again; raising the threshold instead still
leaves one pass over all of them). So the collector is off during the import, and what the
import made goes straight to the permanent generation (``gc.freeze``, which ``cli.main``
does first anyway): ~10 M instructions fewer, 3 % of a run on a tiny capture
(docs/benchmarks.md, "Start-up"). A library importing ``tcptrace_py.cli`` keeps the
interpreter's settings: only this entry point touches them.

For the same reason only this entry point tunes the C allocator (glibc): blocks up to
:data:`HEAP_BLOCK_BYTES` come from the heap and up to :data:`HEAP_KEEP_BYTES` of freed heap
stay in the process, instead of every freed mebibyte chunk going back to the kernel and
being faulted in again (``_engine.keep_heap``).
"""

from __future__ import annotations

import gc

HEAP_BLOCK_BYTES = 32 * 1024 * 1024
"""Largest block served from the heap: above the 16 MiB of the largest pcapng block."""

HEAP_KEEP_BYTES = 64 * 1024 * 1024
"""Freed heap kept for reuse rather than returned to the kernel."""


def main() -> None:
    """Run the command line (click exits the process with the command's status)."""
    gc.disable()
    try:
        from tcptrace_py.cli import main as cli_main
        from tcptrace_py.implementation import compiled
    finally:
        gc.freeze()
        gc.enable()
    if compiled is not None:
        compiled.keep_heap(HEAP_BLOCK_BYTES, HEAP_KEEP_BYTES)
    cli_main()


if __name__ == "__main__":
    main()
