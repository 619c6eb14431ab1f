"""The local stack's LiveKit server: built by ``make install`` (Go module proxy), on loopback
ports of its own, its webhook pointed at the gateway, and the gateway's ``GATEWAY_LIVEKIT_*``
settings. A caller joins a room named ``<tenant>.<agent>.<call id>`` with a token minted from
the key pair (``trunkline.gateway.livekit_dispatch.room_token``); LiveKit's ``room_started``
webhook sends the agent in. With LiveKit up, ``trunkline up`` prints the browser caller page
(``/livekit/call``) and the console's softphone, and links each page to the other.

LiveKit SIP (when built) runs beside it on a SIP port and an RTP port range of its own, sharing
the stack's Redis with the server (psrpc), and each of the local tenant's agents gets a SIP route
(``trunkline.gateway.livekit_sip``: an inbound trunk for ``sip_number``, the next number for the
next agent, and a dispatch rule
naming rooms ``<tenant>.<agent>._<caller>_<random>``); ``trunkline up`` prints the SIP URI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from trunkline.cli.plan import GATEWAY_HTTP, HITL_CONSOLE, LOOPBACK
from trunkline.cli.record import Component
from trunkline.devservers.livekit import LiveKitServer
from trunkline.devservers.livekit_sip import LiveKitSipServer, free_udp_range

LIVEKIT = "livekit"
LIVEKIT_SIP = "livekit-sip"
SIP_ROUTE_MODULE = "trunkline.gateway.livekit_sip"


def livekit_server(
    ports: Mapping[str, int], run_dir: Path, start_timeout: float, redis_url: str = ""
) -> LiveKitServer:
    """The server (not started); ``ToolMissingError`` when ``make install`` has not built it.
    With ``redis_url`` (the stack's Redis) LiveKit SIP can reach it."""
    return LiveKitServer(
        port=ports[LIVEKIT],
        rtc_tcp_port=ports["livekit-rtc-tcp"],
        rtc_udp_port=ports["livekit-rtc-udp"],
        webhook_urls=[f"http://{LOOPBACK}:{ports[GATEWAY_HTTP]}/livekit/webhook"],
        redis_url=redis_url,
        run_dir=run_dir,
        start_timeout=start_timeout,
    )


def livekit_sip_server(
    server: LiveKitServer,
    ports: Mapping[str, int],
    run_dir: Path,
    *,
    redis_url: str,
    rtp_ports: int,
    start_timeout: float,
) -> LiveKitSipServer:
    """LiveKit SIP for ``server`` (not started); ``ToolMissingError`` when not built."""
    return LiveKitSipServer(
        livekit_url=server.url,
        api_key=server.api_key,
        api_secret=server.api_secret,
        redis_url=redis_url,
        sip_port=ports[LIVEKIT_SIP],
        rtp_ports=free_udp_range(rtp_ports),
        run_dir=run_dir,
        start_timeout=start_timeout,
    )


def sip_component(sip: LiveKitSipServer) -> Component:
    return Component(
        LIVEKIT_SIP, "livekit", sip.port, sip.url, pid=sip.pid,
        log=str(sip.log_path), match=str(sip.binary),
    )  # fmt: skip


def sip_route_argv(tenant: str, agent: str, number: str) -> list[str]:
    """The gateway's SIP route maker (run with :func:`gateway_livekit_env`)."""
    return [sys.executable, "-m", SIP_ROUTE_MODULE, "--tenant", tenant, "--agent", agent,
            "--number", number, "--allow", f"{LOOPBACK}/32"]  # fmt: skip


def make_sip_route(
    server: LiveKitServer, tenant: str, agent: str, number: str, timeout: float
) -> str:
    """Create the SIP route on ``server``; its output (trunk and rule ids, JSON). Raises
    ``RuntimeError`` with what the route maker said when it failed."""
    env = {**os.environ, **gateway_livekit_env(server)}
    done = subprocess.run(
        sip_route_argv(tenant, agent, number), env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError((done.stderr or done.stdout).strip()[-2000:])
    return done.stdout.strip()


def agent_numbers(first: str, agents: Sequence[str]) -> list[tuple[str, str]]:
    """Each agent's SIP number: ``first`` for the first, then the numbers after it, in order
    ("+15550100", "+15550101", ...); the same width and ``+``."""
    plus, digits = ("+", first[1:]) if first.startswith("+") else ("", first)
    if not digits.isdigit():
        raise ValueError(f"a SIP number is digits with an optional leading + (got {first!r})")
    last = int(digits) + len(agents) - 1
    if len(str(last)) > len(digits):
        raise ValueError(f"{len(agents)} agents do not fit after {first!r}")
    return [(agent, f"{plus}{int(digits) + i:0{len(digits)}d}") for i, agent in enumerate(agents)]


def sip_lines(sip: LiveKitSipServer, number: str, tenant: str, agent: str) -> list[str]:
    """What ``trunkline up`` prints for SIP callers."""
    return [
        f"sip caller: {sip.uri(number)}   (UDP/TCP, G.711; to {tenant}/{agent}, rooms "
        f"{tenant}.{agent}._<caller>_<id>; RTP ports {sip.rtp_ports})"
    ]


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
