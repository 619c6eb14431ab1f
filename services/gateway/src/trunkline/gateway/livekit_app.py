"""The gateway's LiveKit side, put together when ``GATEWAY_LIVEKIT_URL`` is set: rooms dispatched
by webhook (``POST /livekit/webhook``, :mod:`~trunkline.gateway.livekit_dispatch`) and by LiveKit's
agent dispatch (one registered worker per API key, :mod:`~trunkline.gateway.livekit_worker`), and
the browser caller page (``/livekit/call``, :mod:`~trunkline.gateway.livekit_page`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from trunkline.gateway.livekit_dispatch import LiveKitDispatch, livekit_keys
from trunkline.gateway.livekit_page import LiveKitPage
from trunkline.gateway.livekit_worker import LiveKitWorker
from trunkline.gateway.settings import GatewaySettings, TenantConfig
from trunkline.gateway.web import GatewayWeb

log = logging.getLogger(__name__)


def with_livekit(
    app: web.Application,
    web_: GatewayWeb,
    settings: GatewaySettings,
    tenants: Mapping[str, TenantConfig],
) -> web.Application:
    """``app`` with the LiveKit routes and workers (started and stopped with it) when
    ``GATEWAY_LIVEKIT_URL`` is set; ``app`` unchanged otherwise."""
    if not settings.livekit_url:
        return app
    keys = livekit_keys(
        settings.livekit_api_key, settings.livekit_api_secret.get_secret_value(), tenants
    )
    dispatch = LiveKitDispatch(web_, settings.livekit_url, keys)
    dispatch.add_routes(app)
    LiveKitPage(
        dispatch, public_url=settings.livekit_public_url, softphone_url=settings.softphone_url
    ).add_routes(app)
    workers = [LiveKitWorker(dispatch, key) for key in keys.values()]

    async def start(_app: web.Application) -> None:
        for worker in workers:
            worker.start()

    async def stop(_app: web.Application) -> None:
        for worker in workers:
            await worker.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    log.info(
        "livekit rooms dispatched by webhook and agent dispatch",
        extra={"livekit_url": settings.livekit_url, "workers": len(workers)},
    )
    return app
