"""Runs the console's ASGI app with uvicorn inside the hitl process's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the hitl process's own shutdown stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningConsole:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    host: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, close open streams (SSE pages reconnect elsewhere), and return."""
        self.server.should_exit = True
        self.server.force_exit = True  # live event streams never finish on their own
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 10)


async def start_console_app(app: Starlette, host: str, port: int) -> RunningConsole:
    """Listen on ``host:port`` (0: any free port) and serve ``app`` until :meth:`stop`."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="console")
    while not server.started:
        if task.done():
            task.result()  # raises why it stopped
            raise RuntimeError("the console stopped at start-up")
        await asyncio.sleep(0.01)
    bound = sock.getsockname()[1]
    log.info("operator console listening on http://%s:%d", host, bound)
    return RunningConsole(server, task, int(bound), host)
