"""``python -m trunkline.gateway``: the gateway process.

Ready when every gRPC peer (stt, context, llm, tts, hitl) reports SERVING, the NATS connection
is up and Redis answers PING.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from trunkline.bus import Bus
from trunkline.gateway.server import GATEWAY_ADMIN, GatewayAdminService, register
from trunkline.gateway.settings import GatewaySettings
from trunkline.runtime import Connecting, peers_serving, run, serve


async def main() -> None:
    settings = GatewaySettings.load()
    bus = Connecting(lambda: Bus.connect(settings.nats_url, name="gateway"), name="nats")
    redis: Redis[Any] = Redis.from_url(
        settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
    )

    async def redis_ok() -> bool:
        try:
            return bool(await redis.ping())
        except (RedisError, OSError):
            return False

    async def ready() -> bool:
        client = bus.get()
        if client is None or not client.is_connected or not await redis_ok():
            return False
        return await peers_serving(settings.peer_addrs.values())

    async def close_clients() -> None:
        await bus.close(lambda client: client.close())
        await redis.aclose()  # type: ignore[attr-defined, unused-ignore]  # stubs predate aclose

    servicer = GatewayAdminService()
    await serve(
        settings,
        lambda server: register(server, servicer),
        services=[GATEWAY_ADMIN],
        ready=ready,
        on_shutdown=[close_clients],
    )


if __name__ == "__main__":
    raise SystemExit(run(main))
