"""LiveKit SIP (built by ``make install`` from the Go module proxy) on loopback.

``livekit-sip`` turns SIP calls into LiveKit room participants: it answers an INVITE, asks the
LiveKit server (over psrpc on the Redis both share: the server must be given the same Redis) which
inbound trunk the call matches and which dispatch rule names its room, joins that room and
bridges the call's RTP audio (G.711 and friends) to and from it.

Ports of its own: the SIP port (UDP and TCP, ``sip_port``) on ``host`` and an RTP range
(``rtp_ports``: even ports, one per call; LiveKit SIP binds them on every interface). Addresses
it announces (Contact, SDP) are ``host`` (``nat_1_to_1_ip``): no STUN, nothing public.

Health: a SIP ``OPTIONS`` over UDP answered (the SIP server is up; its Redis was reachable).
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from trunkline.devservers.gotools import find_tool
from trunkline.devservers.ports import LOOPBACK, RESERVED_PORTS, free_port
from trunkline.devservers.process import ManagedServer


@dataclass(frozen=True, slots=True)
class PortRange:
    """``start``..``end`` inclusive (LiveKit's ``rtp_port`` range)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 1024 <= self.start <= self.end < 65536:
            raise ValueError(f"bad port range {self.start}-{self.end}")

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


def free_udp_range(count: int, host: str = "0.0.0.0", attempts: int = 200) -> PortRange:
    """``count`` consecutive UDP ports (starting even) free on ``host`` right now (LiveKit SIP
    binds its RTP ports on every interface)."""
    for _ in range(attempts):
        start = free_port(LOOPBACK) & ~1
        if start + count >= 65536:
            continue
        ports = range(start, start + count)
        if RESERVED_PORTS.intersection(ports):
            continue
        if all(_udp_free(host, port) for port in ports):
            return PortRange(start, start + count - 1)
    raise RuntimeError(f"no {count} consecutive free UDP ports found on {host}")


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def redis_address(url: str) -> tuple[str, int]:
    """``host:port`` and database of a ``redis://`` URL (LiveKit's ``redis`` block)."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"not a redis:// URL: {url!r}")
    db = int(parts.path.lstrip("/") or 0)
    return f"{parts.hostname}:{parts.port or 6379}", db


def livekit_redis(url: str) -> dict[str, Any]:
    """The ``redis:`` block of the LiveKit server's and LiveKit SIP's configuration."""
    address, db = redis_address(url)
    return {"address": address, "db": db}


def livekit_sip_config(
    *,
    host: str,
    sip_port: int,
    rtp_ports: PortRange,
    redis_url: str,
    livekit_url: str,
    api_key: str,
    api_secret: str,
) -> dict[str, Any]:
    """LiveKit SIP's configuration (YAML is a superset of JSON: written as JSON)."""
    return {
        "api_key": api_key,
        "api_secret": api_secret,
        "ws_url": livekit_url,
        "redis": livekit_redis(redis_url),
        "sip_port": sip_port,
        "listen_ip": host,
        "nat_1_to_1_ip": host,
        "rtp_port": {"start": rtp_ports.start, "end": rtp_ports.end},
        "logging": {"level": "info", "json": False},
    }


def sip_options(host: str, port: int, timeout: float = 0.5) -> str:
    """Send one SIP ``OPTIONS`` over UDP; return the status line of the answer ('' if none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind((LOOPBACK if host == LOOPBACK else "", 0))
        local = sock.getsockname()[1]
        tag, branch, call = (secrets.token_hex(4), secrets.token_hex(6), secrets.token_hex(8))
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{local};branch=z9hG4bK{branch};rport\r\n"
            f"From: <sip:health@{host}:{local}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {call}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        try:
            sock.sendto(request.encode(), (host, port))
            data, _ = sock.recvfrom(4096)
        except OSError:
            return ""
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def sip_ready(host: str, port: int, timeout: float = 0.5) -> bool:
    return sip_options(host, port, timeout).startswith("SIP/2.0 ")


class LiveKitSipServer(ManagedServer):
    """``livekit-sip --config <file>`` as a child process, for the LiveKit server at
    ``livekit_url`` (its key pair) sharing the Redis at ``redis_url``. ``uri(number)`` is what a
    SIP phone dials."""

    def __init__(
        self,
        *,
        livekit_url: str,
        api_key: str,
        api_secret: str,
        redis_url: str,
        sip_port: int | None = None,
        rtp_ports: PortRange | None = None,
        rtp_port_count: int = 20,
        run_dir: Path | None = None,
        binary: Path | None = None,
        host: str = LOOPBACK,
        name: str = "livekit-sip",
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            name=name,
            host=host,
            port=sip_port if sip_port is not None else free_port(host),
            run_dir=run_dir,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
        )
        self.livekit_url = livekit_url
        self.api_key = api_key
        self.api_secret = api_secret
        self.redis_url = redis_url
        self.rtp_ports = rtp_ports if rtp_ports is not None else free_udp_range(rtp_port_count)
        self.binary = binary if binary is not None else find_tool("livekit-sip")

    @property
    def url(self) -> str:
        return f"sip:{self.host}:{self.port}"

    def uri(self, number: str) -> str:
        """The SIP URI that dials ``number`` here (UDP or TCP)."""
        return f"sip:{number}@{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return (self.run_dir or self._tmp) / f"{self.name}.yaml"

    def command(self) -> list[str]:
        config = livekit_sip_config(
            host=self.host,
            sip_port=self.port,
            rtp_ports=self.rtp_ports,
            redis_url=self.redis_url,
            livekit_url=self.livekit_url,
            api_key=self.api_key,
            api_secret=self.api_secret,
        )
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")
        self.config_path.chmod(0o600)  # holds the API secret
        return [str(self.binary), "--config", str(self.config_path)]

    def healthy(self) -> bool:
        return sip_ready(self.host, self.port)
