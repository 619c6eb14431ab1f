"""``python -m trunkline.gateway``: the gateway process.

The gRPC side (GatewayAdmin + health) listens at once; the media-stream web app starts as soon
as NATS is connected and the ``EVENTS`` stream declared (calls need their sink). Ready when the
web app listens, every gRPC peer (stt, context, llm, tts, hitl) reports SERVING, the NATS
connection is up and Redis answers PING.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from typing import Any

import httpx
from aiohttp import web
from opentelemetry import metrics, trace
from redis.asyncio import Redis
from redis.exceptions import RedisError

from trunkline.bus import Bus
from trunkline.gateway.agent_source import AgentSource
from trunkline.gateway.app import (
    Gateway,
    PeerChannels,
    load_tenants,
    tenant_configs,
    transcript_policies,
)
from trunkline.gateway.calls import LiveCalls
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.heap import freeze_startup_heap
from trunkline.gateway.livekit_app import with_livekit
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.server import GATEWAY_ADMIN, GatewayAdminService, register
from trunkline.gateway.settings import GatewaySettings
from trunkline.gateway.shadow.mirror import start_mirror
from trunkline.gateway.shadow.replay import answer_replays
from trunkline.gateway.sink import EventSink
from trunkline.gateway.tools.redis_limits import RedisRateLimiter
from trunkline.gateway.tools.security import BusAuditSink
from trunkline.gateway.transcripts import with_transcripts
from trunkline.gateway.transfer import TwilioCallControl, twilio_accounts
from trunkline.gateway.web import GatewayWeb
from trunkline.runtime import channel, peers_serving, run, serve
from trunkline.state import CallStateStore

log = logging.getLogger("trunkline.gateway")


def redis_options(settings: GatewaySettings) -> dict[str, Any]:
    """Timeouts, and the CA of a ``rediss://`` Redis (GATEWAY_REDIS_CA_FILE)."""
    options: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    if settings.redis_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_ca_file)
    return options


async def drain_calls(webs: list[GatewayWeb]) -> None:
    """SIGTERM: no new calls; the drain lasts until the live ones end (GATEWAY_DRAIN_SECONDS at
    most: size it to the longest call you let finish)."""
    await asyncio.gather(*(media.drain() for media in webs))


async def redis_ok(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except (RedisError, OSError):
        return False


async def main() -> None:
    settings = GatewaySettings.load()
    agents = AgentSource(settings)
    profiles = await agents.start()
    tenants = load_tenants(settings)
    clock = SystemClock()
    tracer = trace.get_tracer("trunkline.gateway")  # follows the provider serve() installs
    gateway_metrics = GatewayMetrics(metrics.get_meter("trunkline.gateway"))
    redis = Redis.from_url(settings.redis_url, **redis_options(settings))
    store = CallStateStore(redis, settings.state_ttl_seconds)
    channels = PeerChannels(
        stt=channel(settings.stt_addr, settings),
        context=channel(settings.context_addr, settings),
        llm=channel(settings.llm_addr, settings),
        tts=channel(settings.tts_addr, settings),
        hitl=channel(settings.hitl_addr, settings),
    )
    calls = LiveCalls()
    http = httpx.AsyncClient()  # tool calls; one pool for every call
    bus_task = asyncio.ensure_future(
        Bus.connect(
            settings.nats_url,
            name="gateway",
            tls_ca_file=settings.nats_ca_file,
            creds_file=settings.nats_creds_file,
        )
    )
    runner: list[web.AppRunner] = []
    webs: list[GatewayWeb] = []

    async def start_web() -> None:
        bus = await bus_task
        sink = EventSink(
            bus,
            store,
            settings.gateway_id,
            await start_mirror(bus, agents.tasks) if settings.shadow_mirror else None,
        )
        await asyncio.gather(  # and the rollout's replay gate, over the same peers
            sink.start(),
            answer_replays(bus, settings, channels.context, channels.llm, clock=clock,
                           tracer=tracer),
        )  # fmt: skip
        gateway = Gateway(
            settings,
            profiles,
            with_transcripts(sink, settings.transcripts_url, transcript_policies(settings)),
            channels,
            clock=clock,
            tracer=tracer,
            metrics=gateway_metrics,
            calls=calls,
            http=http,
            audit=BusAuditSink(bus),
            tool_limits=RedisRateLimiter(redis),  # per-tenant tool limits across replicas
        )
        sock = socket.create_server((settings.http_host, settings.http_port))
        port = sock.getsockname()[1]
        media = GatewayWeb(
            tenants,
            gateway.run_call,
            clock=clock,
            public_url=settings.public_base(port),
            metrics=gateway_metrics,
            operator_calls=gateway.calls,  # an operator's WebRTC leg joins its ticket's call
            join_secret=(
                settings.join_secret.get_secret_value().encode() if settings.join_secret else None
            ),
        )
        webs.append(media)
        app_runner = web.AppRunner(  # the LiveKit webhook too, when GATEWAY_LIVEKIT_URL is set
            with_livekit(media.app(), media, settings, tenant_configs(settings))
        )
        await app_runner.setup()
        runner.append(app_runner)
        await web.SockSite(app_runner, sock).start()
        log.info("media streams listening", extra={"addr": f"{settings.http_host}:{port}"})
        log.info("startup heap frozen", extra={"objects": freeze_startup_heap()})

    web_task = asyncio.create_task(start_web(), name="media-web")

    async def ready() -> bool:
        if not web_task.done() or web_task.cancelled() or web_task.exception() is not None:
            return False
        if not bus_task.result().is_connected or not await redis_ok(redis):
            return False
        return await peers_serving(settings.peer_addrs.values())

    async def close_clients() -> None:
        agents.close()  # its watch and the shadow mirror's
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

    servicer = GatewayAdminService(  # Transfer redirects Twilio calls through its REST API
        calls,
        TwilioCallControl(http, twilio_accounts(tenant_configs(settings)), settings.twilio_api_url),
    )
    await serve(
        settings,
        lambda server: register(server, servicer),
        services=[GATEWAY_ADMIN],
        ready=ready,
        on_shutdown=[close_clients],
        drained=functools.partial(drain_calls, webs),
    )


if __name__ == "__main__":
    raise SystemExit(run(main))
