"""A fake monotonic clock for time-based logic: time moves only when a test advances it."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    """``now()`` is monotonic seconds; ``sleep()`` resolves when ``advance()`` passes its deadline.

    Same shape as a real clock object (``now()`` + ``async sleep()``) so code under test takes a
    clock parameter and never calls ``time.monotonic``/``asyncio.sleep`` itself.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._order = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (cancelled ones excluded)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds`` (0 or less: just yield)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake, in deadline order, every sleep that is now due."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def advance_and_settle(self, seconds: float) -> None:
        """``advance()`` and then let the woken tasks run until they block again."""
        self.advance(seconds)
        for _ in range(10):
            await asyncio.sleep(0)
