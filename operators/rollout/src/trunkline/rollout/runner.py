"""kopf in a thread of its own, with its own event loop.

kopf installs SIGTERM/SIGINT handlers when it runs in the main thread and, when it stops,
cancels every task of its loop that it did not start. Neither is wanted in a process whose main
loop belongs to someone else (the service shell, a test), so the operator runs here: started
with :meth:`OperatorThread.start` (:attr:`~OperatorThread.alive` once kopf watches), stopped
with :meth:`OperatorThread.stop` (kopf's stop flag, then join).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence

import kopf
from kubernetes import client

from trunkline.rollout.controller import Controller
from trunkline.rollout.handlers import build_registry, operator_settings


class OperatorThread:
    def __init__(
        self,
        controller: Controller,
        api: client.ApiClient,
        *,
        namespaces: Sequence[str] = (),
        on_exit: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.controller = controller
        self.api = api
        self.namespaces = tuple(namespaces)
        self.on_exit = on_exit
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kopf", daemon=True)

    async def _operate(self) -> None:
        try:
            await kopf.operator(
                registry=build_registry(self.controller, self.api),
                settings=operator_settings(),
                standalone=True,
                clusterwide=not self.namespaces,
                namespaces=self.namespaces,
                stop_flag=self._stop,
                ready_flag=self._ready,
            )
        finally:
            if self.on_exit is not None:
                await self.on_exit()  # e.g. HTTP sessions that live on this loop

    def _run(self) -> None:
        try:
            asyncio.run(self._operate())
        except BaseException as exc:  # reported through .error and .alive
            self.error = exc

    def start(self) -> None:
        """Start kopf; :meth:`wait_ready` or :attr:`alive` tell when it watches."""
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Block until kopf watches (True) or ``timeout`` passes / kopf ended (False)."""
        return self._ready.wait(timeout) and self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._ready.is_set() and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """Raise kopf's stop flag and wait for the thread; True when it ended in time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()
