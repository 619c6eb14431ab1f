"""Drive an async-iterator stage with a fixed list of inputs and collect what it yields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
InT = TypeVar("InT")
OutT = TypeVar("OutT")


async def feed(items: Iterable[T]) -> AsyncIterator[T]:
    """An async iterator over ``items`` that yields control between items."""
    for item in items:
        yield item
        await asyncio.sleep(0)


async def run_stage(
    stage: Callable[[AsyncIterator[InT]], AsyncIterable[OutT]],
    inputs: Iterable[InT],
    *,
    timeout: float = 5.0,  # noqa: ASYNC109
    limit: int | None = None,
) -> list[OutT]:
    """Run ``stage(feed(inputs))`` to completion and return its outputs in order.

    Stops early after ``limit`` outputs. Raises ``TimeoutError`` when the stage neither
    finishes nor reaches ``limit`` within ``timeout`` seconds.
    """
    outputs: list[OutT] = []

    async def drain() -> None:
        async for output in stage(feed(inputs)):
            outputs.append(output)
            if limit is not None and len(outputs) >= limit:
                return

    try:
        await asyncio.wait_for(drain(), timeout)
    except TimeoutError as exc:
        raise TimeoutError(
            f"stage did not finish within {timeout}s; outputs so far: {outputs!r}"
        ) from exc
    return outputs
