"""The garbage collector of a gateway process, set once the process is ready (no I/O).

What a gateway loads at start (the VAD model, gRPC and protobuf, OpenTelemetry, aiohttp, the
agent profiles: a few hundred thousand objects) lives as long as the process, yet every full
collection walks all of it while every call's audio waits (the event loop is one thread).
:func:`freeze_startup_heap` moves it out of the collector's sight (``gc.freeze``), so later
collections walk only what the calls allocate.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then freeze everything alive; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
