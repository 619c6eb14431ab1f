"""Stopping a task that talks to NATS.

nats-py swallows a cancel that lands in its publish path (``Client._flush_pending``:
``except asyncio.CancelledError: pass``), so a task cancelled while it subscribes, requests or
publishes can go on as if nothing happened, and ``task.cancel(); await task`` then waits
forever. It hung a hitl teardown once in a few full test runs under load: the ticket watch,
cancelled while it re-subscribed after a NATS restart, was found waiting for its next write.
:func:`stop` cancels again until the task is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

RECANCEL_S = 0.5


async def stop(task: asyncio.Task[Any], *, recancel_s: float = RECANCEL_S) -> BaseException | None:
    """Cancel ``task`` (again every ``recancel_s`` while it runs) and wait for its end; returns
    what it raised other than its cancellation (None when it was cancelled or returned). A
    cancel of the caller itself propagates."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=recancel_s)
    with contextlib.suppress(asyncio.CancelledError):
        return task.exception()
    return None
