"""A transport's own outbound clock as ``Played`` events, merged into its event stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.pacer import Pacer
from trunkline.gateway.transports.base import Played, TransportEvent


async def playout_ticks(clock: Clock, pacer: Pacer) -> AsyncIterator[Played]:
    """One ``Played`` per due 20 ms frame (several at once after a stall, up to the pacer's
    catch-up limit), forever."""
    while True:
        frames = pacer.due(clock.now())
        if frames:
            pacer.take(frames)
            yield Played(frames)
        await clock.sleep(max(0.0, pacer.next_at() - clock.now()))


async def with_ticks(
    events: AsyncIterator[TransportEvent], ticks: AsyncIterator[Played]
) -> AsyncIterator[TransportEvent]:
    """``events`` with ``ticks`` interleaved as they come; ends when ``events`` ends."""
    queue: asyncio.Queue[TransportEvent | None] = asyncio.Queue()

    async def pump_ticks() -> None:
        async for tick in ticks:
            queue.put_nowait(tick)

    async def pump_events() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        finally:
            queue.put_nowait(None)

    tasks = [asyncio.create_task(pump_ticks()), asyncio.create_task(pump_events())]
    try:
        while (item := await queue.get()) is not None:
            yield item
        await tasks[1]  # re-raise a failure of the event source
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
