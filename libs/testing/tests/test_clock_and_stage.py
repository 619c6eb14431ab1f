"""FakeClock wakes sleepers only when advanced; run_stage drives async-iterator stages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from trunkline.testing.clock import FakeClock
from trunkline.testing.stage import run_stage

pytestmark = pytest.mark.unit


async def test_sleep_resolves_only_when_advanced_in_deadline_order() -> None:
    clock = FakeClock(start=100.0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(f"{name}@{clock.now()}")

    tasks = [asyncio.create_task(sleeper("late", 2.0)), asyncio.create_task(sleeper("early", 1.0))]
    await asyncio.sleep(0)
    assert clock.sleepers == 2
    await clock.advance_and_settle(0.5)
    assert woke == []
    await clock.advance_and_settle(1.0)
    assert woke == ["early@101.5"]
    await clock.advance_and_settle(10.0)
    await asyncio.gather(*tasks)
    assert woke == ["early@101.5", "late@111.5"]
    assert clock.now() == clock.monotonic() == 111.5


async def test_cancelled_sleep_and_no_going_back() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    clock.advance(5)
    with pytest.raises(ValueError, match="monotonic"):
        clock.advance(-1)
    await clock.sleep(0)


async def doubler(items: AsyncIterator[int]) -> AsyncIterator[int]:
    async for item in items:
        yield item * 2


async def forever(items: AsyncIterator[int]) -> AsyncIterator[int]:
    async for item in items:
        yield item
    await asyncio.Event().wait()
    yield -1


async def test_run_stage_collects_outputs() -> None:
    assert await run_stage(doubler, [1, 2, 3]) == [2, 4, 6]
    assert await run_stage(doubler, [1, 2, 3], limit=2) == [2, 4]


async def test_run_stage_times_out_with_partial_outputs() -> None:
    with pytest.raises(TimeoutError, match=r"outputs so far: \[7\]"):
        await run_stage(forever, [7], timeout=0.05)
