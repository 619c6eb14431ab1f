"""The local stack's LiveKit server: built by ``make install`` (Go module proxy), on loopback
ports of its own, its webhook pointed at the gateway, and the gateway's ``GATEWAY_LIVEKIT_*``
settings. A caller joins a room named ``<tenant>.<agent>.<call id>`` with a token minted from
the key pair (``trunkline.gateway.livekit_dispatch.room_token``); LiveKit's ``room_started``
webhook sends the agent in."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from trunkline.cli.plan import GATEWAY_HTTP, LOOPBACK
from trunkline.cli.record import Component
from trunkline.devservers.livekit import LiveKitServer

LIVEKIT = "livekit"


def livekit_server(ports: Mapping[str, int], run_dir: Path, start_timeout: float) -> LiveKitServer:
    """The server (not started); ``ToolMissingError`` when ``make install`` has not built it."""
    return LiveKitServer(
        port=ports[LIVEKIT],
        rtc_tcp_port=ports["livekit-rtc-tcp"],
        rtc_udp_port=ports["livekit-rtc-udp"],
        webhook_urls=[f"http://{LOOPBACK}:{ports[GATEWAY_HTTP]}/livekit/webhook"],
        run_dir=run_dir,
        start_timeout=start_timeout,
    )


def livekit_component(server: LiveKitServer) -> Component:
    return Component(
        LIVEKIT, "livekit", server.port, server.url, pid=server.pid,
        log=str(server.log_path), match=str(server.binary),
    )  # fmt: skip


def gateway_livekit_env(server: LiveKitServer) -> dict[str, str]:
    """The gateway's LiveKit settings: the server's URL and its one key pair."""
    return {
        "GATEWAY_LIVEKIT_URL": server.url,
        "GATEWAY_LIVEKIT_API_KEY": server.api_key,
        "GATEWAY_LIVEKIT_API_SECRET": server.api_secret,
    }
