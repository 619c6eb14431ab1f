"""A transport's own outbound clock as ``Played`` events, merged into its event stream.

:class:`PlayoutClock` is one 20 ms clock for every call of a process: one task wakes on each
frame boundary of a shared grid and hands each call's :class:`Pacer` (started on that grid) its
due frames, straight into the call's event queue. The same schedule, the same catch-up limit
and the same ``skipped`` count as a task per call sleeping on its own pacer
(:func:`playout_ticks`), without a timer, a task and a queue hop per call every 20 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable

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


Deliver = Callable[[Played], None]


class PlayoutClock:
    """The process's shared outbound clock (one per web app; not a module global)."""

    def __init__(self, clock: Clock, frame_s: float = 0.02) -> None:
        if frame_s <= 0:
            raise ValueError(f"frame_s must be positive (got {frame_s})")
        self.clock = clock
        self.frame_s = frame_s
        self._origin: float | None = None
        self._calls: dict[int, tuple[Pacer, Deliver]] = {}
        self._next_id = 0
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._calls)

    def _next_tick(self, now: float) -> float:
        assert self._origin is not None
        k = math.floor((now - self._origin) / self.frame_s + 1e-9) + 1
        return self._origin + k * self.frame_s

    def subscribe(self, pacer: Pacer, deliver: Deliver) -> Callable[[], None]:
        """From the next tick on, ``deliver(Played(n))`` whenever ``pacer`` has ``n`` frames
        due; returns the call that stops it. Must be called in the event loop."""
        now = self.clock.now()
        if self._origin is None:
            self._origin = now
            pacer.start_at(now)  # the first call's first frame is due at once
        else:
            pacer.start_at(self._next_tick(now))
        self._next_id += 1
        key = self._next_id
        self._calls[key] = (pacer, deliver)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

        def unsubscribe() -> None:
            self._calls.pop(key, None)

        return unsubscribe

    async def _run(self) -> None:
        while self._calls:
            now = self.clock.now()
            for pacer, deliver in list(self._calls.values()):
                frames = pacer.due(now)
                if frames:
                    pacer.take(frames)
                    deliver(Played(frames))
            await self.clock.sleep(max(0.0, self._next_tick(now) - self.clock.now()))
        self._task = None

    async def close(self) -> None:
        """Stop the clock task (calls still subscribed get no more ticks)."""
        self._calls.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def with_clock(
    events: AsyncIterator[TransportEvent], playout: PlayoutClock, pacer: Pacer
) -> AsyncIterator[TransportEvent]:
    """``events`` with the shared clock's ticks for ``pacer`` interleaved as they come; ends
    when ``events`` ends (the call leaves the clock then)."""
    queue: asyncio.Queue[TransportEvent | None] = asyncio.Queue()

    async def pump_events() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(pump_events())
    unsubscribe = playout.subscribe(pacer, queue.put_nowait)
    try:
        while (item := await queue.get()) is not None:
            yield item
        await task  # re-raise a failure of the event source
    finally:
        unsubscribe()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
