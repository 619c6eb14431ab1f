"""The hang dump names what a pending task awaits, read from a watchdog thread."""

from __future__ import annotations

import asyncio

import pytest

from trunkline.testing import hang_dump

pytestmark = pytest.mark.unit


async def waiting_for_a_connection_that_never_closes(event: asyncio.Event) -> None:
    await event.wait()


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
    assert "await event.wait()" in err
