"""The local stack's LiveKit server: built by ``make install`` (Go module proxy), on loopback
ports of its own, its webhook pointed at the gateway, and the gateway's ``GATEWAY_LIVEKIT_*``
settings. A caller joins a room named ``<tenant>.<agent>.<call id>`` with a token minted from
the key pair (``trunkline.gateway.livekit_dispatch.room_token``); LiveKit's ``room_started``
webhook sends the agent in. With LiveKit up, ``trunkline up`` prints the browser caller page
(``/livekit/call``) and the console's softphone, and links each page to the other."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from trunkline.cli.plan import GATEWAY_HTTP, HITL_CONSOLE, LOOPBACK
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


def call_page_url(ports: Mapping[str, int]) -> str:
    """The gateway's LiveKit caller page (served by the gateway's web app)."""
    return f"http://{LOOPBACK}:{ports[GATEWAY_HTTP]}/livekit/call"


def softphone_url(ports: Mapping[str, int]) -> str:
    """The console's WebRTC softphone page; empty when the stack runs no console."""
    return f"http://{LOOPBACK}:{ports[HITL_CONSOLE]}/softphone" if HITL_CONSOLE in ports else ""


def linked_pages_env(service: str, ports: Mapping[str, int]) -> dict[str, str]:
    """What links the two caller pages (LiveKit up): the gateway's page offers the softphone
    (``GATEWAY_SOFTPHONE_URL``), the console's softphone offers the LiveKit page
    (``HITL_CONSOLE_LIVEKIT_CALL_URL``)."""
    if service == "gateway" and softphone_url(ports):
        return {"GATEWAY_SOFTPHONE_URL": softphone_url(ports)}
    if service == "hitl":
        return {"HITL_CONSOLE_LIVEKIT_CALL_URL": call_page_url(ports)}
    return {}


def page_lines(ports: Mapping[str, int], tenant: str, agents: tuple[str, ...]) -> list[str]:
    """The lines ``trunkline up`` prints for browser callers (LiveKit up): the caller page, with
    the local tenant and its first agent filled in, and the console's softphone."""
    query = f"?tenant={tenant}" + (f"&agent={agents[0]}" if agents else "")
    lines = [f"livekit caller page: {call_page_url(ports)}{query}   (agents: {', '.join(agents)})"]
    if softphone_url(ports):
        lines.append(f"console softphone: {softphone_url(ports)}")
    return lines
