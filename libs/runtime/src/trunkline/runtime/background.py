"""A client connected in the background, so a service can listen (NOT_SERVING) meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Connecting(Generic[T]):
    """Runs ``connect()`` as a task; :meth:`get` is the client once connected, else None.

    Typical use: ``bus = Connecting(lambda: Bus.connect(url))``; the ready check asks
    ``bus.get() is not None and bus.get().is_connected``; a shutdown hook calls
    ``await bus.close(lambda b: b.close())``. Create it inside the running event loop.
    """

    def __init__(self, connect: Callable[[], Awaitable[T]], name: str = "connect") -> None:
        self._task: asyncio.Task[T] = asyncio.ensure_future(connect())
        self._task.set_name(name)

    def get(self) -> T | None:
        """The connected client, or None while connecting (or when connecting failed)."""
        if not self._task.done() or self._task.cancelled() or self._task.exception() is not None:
            return None
        return self._task.result()

    def error(self) -> BaseException | None:
        """Why connecting failed, if it did."""
        if not self._task.done() or self._task.cancelled():
            return None
        return self._task.exception()

    async def close(self, close: Callable[[T], Awaitable[None]]) -> None:
        """Stop connecting, or close the client with ``close`` once it is connected."""
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            return
        client = self.get()
        if client is not None:
            await close(client)
