"""``python -m trunkline.gateway``: the gateway process.

The gRPC side (GatewayAdmin + health) listens at once; the media-stream web app starts as soon
as NATS is connected and the ``EVENTS`` stream declared (calls need their sink). Ready when the
web app listens, every gRPC peer (stt, context, llm, tts, hitl) reports SERVING, the NATS
connection is up and Redis answers PING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import httpx
from aiohttp import web
from opentelemetry import metrics, trace
from redis.asyncio import Redis
from redis.exceptions import RedisError

from trunkline.bus import Bus
from trunkline.gateway.app import Gateway, PeerChannels, load_tenants
from trunkline.gateway.calls import LiveCalls
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.profile import load_profiles
from trunkline.gateway.server import GATEWAY_ADMIN, GatewayAdminService, register
from trunkline.gateway.settings import GatewaySettings
from trunkline.gateway.sink import EventSink
from trunkline.gateway.web import GatewayWeb
from trunkline.runtime import channel, peers_serving, run, serve
from trunkline.state import CallStateStore

log = logging.getLogger("trunkline.gateway")


async def main() -> None:
    settings = GatewaySettings.load()
    profiles = load_profiles(settings.agents_path)
    tenants = load_tenants(settings)
    clock = SystemClock()
    tracer = trace.get_tracer("trunkline.gateway")  # follows the provider serve() installs
    gateway_metrics = GatewayMetrics(metrics.get_meter("trunkline.gateway"))
    redis = Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    store = CallStateStore(redis, settings.state_ttl_seconds)
    channels = PeerChannels(
        stt=channel(settings.stt_addr, settings),
        context=channel(settings.context_addr, settings),
        llm=channel(settings.llm_addr, settings),
        tts=channel(settings.tts_addr, settings),
    )
    calls = LiveCalls()
    http = httpx.AsyncClient()  # tool calls; one pool for every call
    bus_task = asyncio.ensure_future(Bus.connect(settings.nats_url, name="gateway"))
    runner: list[web.AppRunner] = []

    async def start_web() -> None:
        bus = await bus_task
        sink = EventSink(bus, store, settings.gateway_id)
        await sink.start()
        gateway = Gateway(
            settings,
            profiles,
            sink,
            channels,
            clock=clock,
            tracer=tracer,
            metrics=gateway_metrics,
            calls=calls,
            http=http,
        )
        sock = socket.create_server((settings.http_host, settings.http_port))
        port = sock.getsockname()[1]
        media = GatewayWeb(
            tenants,
            gateway.run_call,
            clock=clock,
            public_url=settings.public_base(port),
            metrics=gateway_metrics,
        )
        app_runner = web.AppRunner(media.app())
        await app_runner.setup()
        runner.append(app_runner)
        await web.SockSite(app_runner, sock).start()
        log.info("media streams listening", extra={"addr": f"{settings.http_host}:{port}"})

    web_task = asyncio.create_task(start_web(), name="media-web")

    async def redis_ok() -> bool:
        try:
            return bool(await redis.ping())
        except (RedisError, OSError):
            return False

    async def ready() -> bool:
        if not web_task.done() or web_task.cancelled() or web_task.exception() is not None:
            return False
        if not bus_task.result().is_connected or not await redis_ok():
            return False
        return await peers_serving(settings.peer_addrs.values())

    async def close_clients() -> None:
        web_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await web_task
        for app_runner in runner:
            await app_runner.cleanup()  # closes the media sockets: their calls end
        bus_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await (await bus_task).close()
        await channels.close()
        await redis.aclose()
        await http.aclose()

    servicer = GatewayAdminService(calls)
    await serve(
        settings,
        lambda server: register(server, servicer),
        services=[GATEWAY_ADMIN],
        ready=ready,
        on_shutdown=[close_clients],
    )


if __name__ == "__main__":
    raise SystemExit(run(main))
