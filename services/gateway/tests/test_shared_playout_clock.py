"""One outbound clock for every call of a process: each call's pacer keeps its own steady
schedule, catch-up limit and count of dropped slots, on the shared 20 ms grid."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from trunkline.gateway.core.pacer import Pacer
from trunkline.gateway.transports.base import AudioIn, Played, TransportEvent
from trunkline.gateway.transports.pacing import PlayoutClock, with_clock
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit


async def test_calls_get_their_frames_on_one_grid_without_drift_and_with_capped_catch_up() -> None:
    clock = FakeClock(100.0)
    playout = PlayoutClock(clock)
    first, second = Pacer(max_catch_up=4), Pacer(max_catch_up=4)
    got: dict[str, list[int]] = {"first": [], "second": []}
    stop_first = playout.subscribe(first, lambda p: got["first"].append(p.frames))
    await clock.advance_and_settle(0.0)
    assert got["first"] == [1]  # the first call's first frame at once
    await clock.advance_and_settle(0.013)  # mid-frame: the second call joins
    stop_second = playout.subscribe(second, lambda p: got["second"].append(p.frames))
    await clock.advance_and_settle(0.0)
    assert got["second"] == []  # its schedule starts on the next tick of the grid
    for _ in range(50):  # a second in steps that do not fall on the grid
        await clock.advance_and_settle(0.02)
    assert sum(got["first"]) == 51  # the first at 0 then one every 20 ms: no drift
    assert sum(got["second"]) == 50
    assert max(got["first"] + got["second"]) <= 2
    assert second.next_at() == pytest.approx(100.02 + 50 * 0.02)  # on the grid
    await clock.advance_and_settle(1.0)  # a one-second stall of the clock's task
    assert got["first"][-1] == got["second"][-1] == 4  # catch-up capped ...
    assert first.skipped == second.skipped == 46  # ... and the older debt counted as dropped
    stop_first()
    before = len(got["first"])
    for _ in range(5):
        await clock.advance_and_settle(0.02)
    assert len(got["first"]) == before  # a call that left gets nothing more
    assert len(got["second"]) > 0
    stop_second()
    await clock.advance_and_settle(0.02)
    await clock.advance_and_settle(0.02)
    assert clock.sleepers == 0  # no call: the clock's task has ended
    assert len(playout) == 0


async def test_with_clock_merges_ticks_into_the_event_stream_and_leaves_at_the_end() -> None:
    clock = FakeClock(0.0)
    playout = PlayoutClock(clock)
    inbound: asyncio.Queue[TransportEvent | None] = asyncio.Queue()

    async def source() -> AsyncIterator[TransportEvent]:
        while (event := await inbound.get()) is not None:
            yield event

    seen: list[TransportEvent] = []

    async def consume() -> None:
        async for event in with_clock(source(), playout, Pacer()):
            seen.append(event)

    task = asyncio.create_task(consume())
    await clock.advance_and_settle(0.0)
    inbound.put_nowait(AudioIn(b"\x00" * 640, 0.0))
    await clock.advance_and_settle(0.02)
    await clock.advance_and_settle(0.02)
    assert [type(e) for e in seen] == [Played, AudioIn, Played, Played]
    inbound.put_nowait(None)  # the caller's stream ends
    await asyncio.wait_for(task, 1)
    assert len(playout) == 0
    await playout.close()
