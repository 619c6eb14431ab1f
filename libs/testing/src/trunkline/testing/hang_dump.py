"""A pytest plugin that says what an asyncio test is waiting on when its setup, call or teardown
hangs: after ``TRUNKLINE_HANG_DUMP_S`` seconds (default 240, below pytest-timeout's 300 s) a
watchdog thread prints the stack of every pending task of every running event loop to stderr, so
a CI log shows the awaited fixture, connection or process, not only the main thread's frame
that pytest-timeout prints (``await`` chains are invisible there).

The watchdog only reads: it finds running loops through the garbage collector and calls
``Task.print_stack`` (a read of each task's coroutine frames); it cancels and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
from collections.abc import Generator, Iterator

import pytest

DUMP_AFTER_S = float(os.environ.get("TRUNKLINE_HANG_DUMP_S", "240"))


def running_loops() -> list[asyncio.AbstractEventLoop]:
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running()
    ]


def dump_tasks(where: str) -> None:
    out = sys.stderr
    print(f"\n==== {where}: still running after {DUMP_AFTER_S:.0f} s; asyncio tasks ====", file=out)
    for loop in running_loops():
        try:
            tasks = list(asyncio.all_tasks(loop))
        except RuntimeError as exc:  # the set changed while read: once more
            print(f"(tasks of {loop!r} unreadable: {exc})", file=out)
            continue
        print(f"-- {len(tasks)} tasks of {loop!r}", file=out)
        for task in tasks:
            try:  # one unreadable task (a Cython coroutine) must not end the dump
                print(f"- {task!r}", file=out)
                for line in await_chain(task.get_coro()):
                    print(line, file=out)
            except Exception as exc:  # a dump reads what it can
                print(f"  (unreadable: {exc!r})", file=out)
    out.flush()


def await_chain(coro: object, limit: int = 40) -> list[str]:
    """Where a suspended coroutine is, and what it awaits, down to the innermost awaitable
    (``Task.print_stack`` shows only the outermost frame of a suspended task)."""
    lines: list[str] = []
    for _ in range(limit):
        if coro is None:
            break
        frame = next(
            (getattr(coro, a) for a in ("cr_frame", "ag_frame", "gi_frame") if hasattr(coro, a)),
            None,
        )
        if frame is None:
            lines.append(f"  awaits {coro!r}")
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        coro = next(
            (
                getattr(coro, a)
                for a in ("cr_await", "ag_await", "gi_yieldfrom")
                if getattr(coro, a, None) is not None
            ),
            None,
        )
    return lines


@contextlib.contextmanager
def _watching(item: pytest.Item, phase: str) -> Iterator[None]:
    timer = threading.Timer(DUMP_AFTER_S, dump_tasks, args=(f"{item.nodeid} ({phase})",))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _watching(item, "setup"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _watching(item, "call"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    with _watching(item, "teardown"):
        return (yield)
