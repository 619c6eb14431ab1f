"""Starts the console inside the hitl process: settings (env ``HITL_CONSOLE_*``), its own NATS
connection for the event feed, the in-process ticket queue, the gateway's signaling URL.

    console = await start_console(ConsoleSettings.load(), nats, queue_getter, join_secret)
    ...
    await console.stop()
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from trunkline.bus import Bus
from trunkline.bus.tasks import stop as stop_task
from trunkline.hitl.console.app import Console, ConsoleConfig
from trunkline.hitl.console.desk import Desk
from trunkline.hitl.console.feed import JetStreamFeed
from trunkline.hitl.console.operators import OperatorBook
from trunkline.hitl.console.server import RunningConsole, start_console_app
from trunkline.hitl.console.signaling import GatewaySignaling
from trunkline.hitl.queue import TicketQueue

log = logging.getLogger(__name__)


class ConsoleSettings(BaseSettings):
    """The console's settings (env ``HITL_CONSOLE_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="HITL_CONSOLE_", frozen=True, extra="ignore")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8086, ge=0, lt=65536, description="0: any free port")
    operators_file: Path | None = Field(
        default=None, description="YAML of operators (id, tenant, password_hash); none: no login"
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs the session cookie; unset: a random one (sessions end on restart)",
    )
    https_only: bool = Field(default=False, description="Secure cookie (behind TLS)")
    gateway_url: str = Field(
        default="",
        description="The gateway's web app, whose /webrtc/offer and /webrtc/operator answer SDP "
        "offers, e.g. http://127.0.0.1:8080; empty: the softphone and Talk are off",
    )
    lookback_s: float = Field(default=7200.0, gt=0, description="Calls shown from this far back")
    livekit_call_url: str = Field(
        default="",
        description="The gateway's LiveKit caller page as browsers reach it (e.g. "
        "http://127.0.0.1:8080/livekit/call); set: the softphone offers it too",
    )

    @classmethod
    def load(cls) -> ConsoleSettings:
        return cls()


@dataclass
class ConsoleProcess:
    running: RunningConsole
    bus: Bus
    http: httpx.AsyncClient

    @property
    def url(self) -> str:
        return self.running.url

    async def stop(self) -> None:
        await self.running.stop()
        await self.http.aclose()
        await self.bus.close()


async def start_console(
    settings: ConsoleSettings,
    bus: Bus,
    queue: TicketQueue | Callable[[], TicketQueue | None] | None,
    join_secret: bytes | None = None,
    join_ttl_s: float = 120.0,
) -> ConsoleProcess:
    """Serve the console on ``settings.host:port``; ``bus`` is its own connection (closed by
    :meth:`ConsoleProcess.stop`). A bad operators file fails here, naming file and line."""
    operators = (
        OperatorBook.load(settings.operators_file)
        if settings.operators_file is not None
        else OperatorBook([])
    )
    if not len(operators):
        log.warning("console: no operators configured (HITL_CONSOLE_OPERATORS_FILE): no login")
    if settings.session_secret is None:
        log.warning("console: HITL_CONSOLE_SESSION_SECRET unset; sessions end with the process")
        secret = secrets.token_urlsafe(32)
    else:
        secret = settings.session_secret.get_secret_value()
    http = httpx.AsyncClient()
    console = Console(
        ConsoleConfig(
            session_secret=secret,
            https_only=settings.https_only,
            lookback=timedelta(seconds=settings.lookback_s),
            livekit_call_url=settings.livekit_call_url,
        ),
        operators,
        JetStreamFeed(bus.client),
        Desk(queue, join_secret=join_secret, join_ttl_s=join_ttl_s) if queue is not None else None,
        GatewaySignaling(http, settings.gateway_url) if settings.gateway_url else None,
    )
    running = await start_console_app(console.app(), settings.host, settings.port)
    return ConsoleProcess(running, bus, http)


class ConsoleTask:
    """The console started in the background: connect its bus (retrying), then serve; a bad
    operators file is logged and the console stays off (the hitl RPCs go on)."""

    def __init__(
        self,
        settings: ConsoleSettings,
        connect: Callable[[], Awaitable[Bus]],
        queue: Callable[[], TicketQueue | None],
        join_secret: bytes | None = None,
        join_ttl_s: float = 120.0,
    ) -> None:
        self.process: ConsoleProcess | None = None
        self._task = asyncio.create_task(
            self._start(settings, connect, queue, join_secret, join_ttl_s), name="console-start"
        )

    async def _start(
        self,
        settings: ConsoleSettings,
        connect: Callable[[], Awaitable[Bus]],
        queue: Callable[[], TicketQueue | None],
        join_secret: bytes | None,
        join_ttl_s: float,
    ) -> None:
        bus = await connect()
        try:
            self.process = await start_console(settings, bus, queue, join_secret, join_ttl_s)
        except Exception:
            log.exception("the operator console could not start")
            await bus.close()

    async def stop(self) -> None:
        error = await stop_task(self._task)  # again until done: nats-py can swallow a cancel
        if error is not None:
            raise error
        if self.process is not None:
            await self.process.stop()
