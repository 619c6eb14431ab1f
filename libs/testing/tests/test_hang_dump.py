"""The hang dump names what a pending task awaits, read from a watchdog thread."""

from __future__ import annotations

import asyncio

import pytest

from trunkline.testing import hang_dump

pytestmark = pytest.mark.unit


async def waiting_for_a_connection_that_never_closes(event: asyncio.Event) -> None:
    await event.wait()


async def a_fixture_teardown(event: asyncio.Event) -> None:
    await waiting_for_a_connection_that_never_closes(event)


class Unreadable:
    """An awaitable whose iterator cannot even be named (as a Cython coroutine's frames cannot
    be read)."""

    def __await__(self) -> Unreadable:
        return self

    def __iter__(self) -> Unreadable:
        return self

    def __next__(self) -> None:
        return None  # a bare yield: the task polls it again

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


async def test_a_pending_task_is_dumped_with_its_stack(capsys: pytest.CaptureFixture[str]) -> None:
    event = asyncio.Event()
    task = asyncio.create_task(waiting_for_a_connection_that_never_closes(event))
    await asyncio.sleep(0)
    await asyncio.to_thread(hang_dump.dump_tasks, "tests/x.py::test (teardown)")
    event.set()
    await task
    err = capsys.readouterr().err
    assert "tests/x.py::test (teardown): still running after" in err
    assert "waiting_for_a_connection_that_never_closes" in err
    assert "asyncio/locks.py" in err  # where Event.wait waits


async def test_the_whole_await_chain_is_dumped_and_an_unreadable_task_does_not_end_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = asyncio.Event()

    async def unreadable() -> None:
        await Unreadable()

    odd = asyncio.create_task(unreadable())
    task = asyncio.create_task(a_fixture_teardown(event))
    await asyncio.sleep(0)
    await asyncio.to_thread(hang_dump.dump_tasks, "tests/x.py::test (teardown)")
    event.set()
    await task
    odd.cancel()
    err = capsys.readouterr().err
    assert "(unreadable: RuntimeError('no repr'))" in err
    # the outer frame, the frame it awaits, and the Event's wait inside it
    assert "in a_fixture_teardown" in err
    assert "in waiting_for_a_connection_that_never_closes" in err
    assert "in wait" in err
    assert err.index("in a_fixture_teardown") < err.index("in wait")
