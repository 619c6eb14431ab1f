"""Wait until notified or until a timeout, whichever comes first.

A future and a timer per wait, no task: ``asyncio.wait_for(event.wait(), t)`` makes a task for
every wait, and the simulated caller waits like that every 10 ms and on every 20 ms frame it
plays; with 50 calls in one process that was a large share of the callers' own CPU.
"""

from __future__ import annotations

import asyncio


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Wakeup:
    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        """Wake every current waiter (a later ``wait`` is not woken by it)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _resolve(waiter)

    async def wait(self, seconds: float) -> None:
        """Return at the next ``notify`` or after ``seconds``."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        handle = loop.call_later(max(seconds, 0.0), _resolve, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)
