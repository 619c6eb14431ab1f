"""Stopping a task that swallows its first cancel, as nats-py's publish path does."""

from __future__ import annotations

import asyncio

import pytest

from trunkline.bus.tasks import stop

pytestmark = pytest.mark.unit


async def test_a_task_that_swallows_a_cancel_is_stopped() -> None:
    swallowed = 0

    async def like_nats_publish() -> None:
        nonlocal swallowed
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:  # nats-py Client._flush_pending
            swallowed += 1
        await asyncio.sleep(10)  # goes on: the next write, the next watch ...

    task = asyncio.create_task(like_nats_publish())
    await asyncio.sleep(0)
    assert await asyncio.wait_for(stop(task, recancel_s=0.05), 2) is None
    assert task.cancelled()
    assert swallowed == 1


async def test_what_the_task_raised_is_returned_and_a_finished_task_is_left_alone() -> None:
    async def fails() -> None:
        raise ValueError("dead watch")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    error = await stop(task)
    assert isinstance(error, ValueError)
    done = asyncio.create_task(asyncio.sleep(0, result=1))
    await done
    assert await stop(done) is None
    assert done.result() == 1
