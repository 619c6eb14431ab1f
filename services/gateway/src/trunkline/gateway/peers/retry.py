"""Deadlines and retries measured on an injected clock (a fake one in tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from trunkline.gateway.core.clock import Clock

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``timeout_s`` per attempt (for a stream: until its first item, and between items);
    ``max_attempts`` None retries until the caller cancels (a live call keeps trying)."""

    timeout_s: float = 2.0
    backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1`` (attempt counts from 1)."""
        return float(min(self.backoff_s * (2 ** (attempt - 1)), self.max_backoff_s))

    def exhausted(self, attempt: int) -> bool:
        return self.max_attempts is not None and attempt >= self.max_attempts


async def within(clock: Clock, seconds: float, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``; raise ``TimeoutError`` if ``seconds`` pass on ``clock`` first."""
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        done, _ = await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        work.cancel()
        timer.cancel()
        raise
    if work in done:
        timer.cancel()
        return work.result()
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    raise TimeoutError(f"no answer within {seconds:g}s")
