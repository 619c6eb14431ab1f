"""The LiveKit server (built by ``make install`` from the Go module proxy) on loopback.

Only the ports it is given are opened: the HTTP/WebSocket signalling port, one RTC TCP port and
one UDP port for media (LiveKit multiplexes every peer on a single UDP port when ``udp_port`` is
set), so several stacks and tests can run side by side. ICE candidates are loopback only
(``node_ip`` 127.0.0.1, no STUN). One API key pair is configured (``api_key``/``api_secret``;
tokens for rooms are minted with ``livekit-api``). With ``redis_url`` the server keeps its state
in that Redis and serves psrpc over it: LiveKit SIP (``livekit_sip``) needs that, sharing the Redis.

Health: ``GET {http_url}/`` answers ``OK`` once the server is up.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trunkline.devservers.gotools import find_tool
from trunkline.devservers.livekit_sip import livekit_redis
from trunkline.devservers.ports import LOOPBACK, free_port
from trunkline.devservers.process import ManagedServer


def livekit_config(
    *,
    host: str,
    port: int,
    rtc_tcp_port: int,
    rtc_udp_port: int,
    keys: dict[str, str],
    webhook_urls: Sequence[str] = (),
    redis_url: str = "",
) -> dict[str, Any]:
    """The server's configuration (YAML is a superset of JSON: written as JSON). With
    ``webhook_urls`` LiveKit posts room and participant events (``room_started``,
    ``participant_joined``, ...) to each, signed with the first API key: the gateway's
    ``POST /livekit/webhook`` dispatches rooms from them."""
    config: dict[str, Any] = {
        "port": port,
        "bind_addresses": [host],
        "rtc": {
            "tcp_port": rtc_tcp_port,
            "udp_port": rtc_udp_port,
            "use_external_ip": False,
            "node_ip": host,
            "enable_loopback_candidate": True,
        },
        "keys": dict(keys),
        "logging": {"level": "info", "json": False},
        "room": {"empty_timeout": 60, "departure_timeout": 10},
    }
    if redis_url:
        config["redis"] = livekit_redis(redis_url)
    if webhook_urls:
        config["webhook"] = {"api_key": next(iter(keys)), "urls": list(webhook_urls)}
    return config


def livekit_ready(http_url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{http_url}/", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class LiveKitServer(ManagedServer):
    """``livekit-server --config <file>`` as a child process. ``url`` is the ``ws://`` URL
    clients and the SDK connect to; ``http_url`` the same port over HTTP (health, Twirp API)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        rtc_tcp_port: int | None = None,
        rtc_udp_port: int | None = None,
        api_key: str = "trunkline",
        api_secret: str | None = None,
        webhook_urls: Sequence[str] = (),
        redis_url: str = "",
        run_dir: Path | None = None,
        binary: Path | None = None,
        host: str = LOOPBACK,
        name: str = "livekit",
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            name=name,
            host=host,
            port=port if port is not None else free_port(host),
            run_dir=run_dir,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
        )
        self.rtc_tcp_port = rtc_tcp_port if rtc_tcp_port is not None else free_port(host)
        self.rtc_udp_port = rtc_udp_port if rtc_udp_port is not None else free_port(host)
        self.api_key = api_key
        # LiveKit refuses secrets shorter than 32 characters.
        self.api_secret = api_secret if api_secret is not None else secrets.token_hex(24)
        self.webhook_urls = list(webhook_urls)
        self.redis_url = redis_url
        self.binary = binary if binary is not None else find_tool("livekit-server")

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return (self.run_dir or self._tmp) / f"{self.name}.yaml"

    def command(self) -> list[str]:
        config = livekit_config(
            host=self.host,
            port=self.port,
            rtc_tcp_port=self.rtc_tcp_port,
            rtc_udp_port=self.rtc_udp_port,
            keys={self.api_key: self.api_secret},
            webhook_urls=self.webhook_urls,
            redis_url=self.redis_url,
        )
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")
        self.config_path.chmod(0o600)  # holds the API secret
        return [str(self.binary), "--config", str(self.config_path)]

    def healthy(self) -> bool:
        return livekit_ready(self.http_url)
