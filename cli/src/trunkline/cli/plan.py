"""What the local stack runs: its components, their ports and each service's environment (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from trunkline.devservers.ports import RESERVED_PORTS

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    """One Trunkline process of the stack: ``python -m <module>`` configured by ``<PREFIX>_*``."""

    name: str
    module: str
    prefix: str
    peers: tuple[str, ...] = ()
    nats: bool = False
    redis: bool = False


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("stt", "trunkline.stt", "STT_"),
    ServiceSpec("context", "trunkline.context", "CONTEXT_"),
    ServiceSpec("llm", "trunkline.llm", "LLM_"),
    ServiceSpec("tts", "trunkline.tts", "TTS_"),
    ServiceSpec("hitl", "trunkline.hitl", "HITL_", nats=True),
    ServiceSpec(
        "gateway",
        "trunkline.gateway",
        "GATEWAY_",
        peers=("stt", "context", "llm", "tts", "hitl"),
        nats=True,
        redis=True,
    ),
    ServiceSpec("rollout", "trunkline.rollout", "ROLLOUT_"),
)
"""In start order: the gateway after the peers it checks for readiness."""

GATEWAY_HTTP = "gateway-http"
"""The gateway's media-stream / webhook HTTP port (``ws://.../twilio/stream``)."""

PORT_NAMES: tuple[str, ...] = (
    "nats",
    "nats-monitor",
    "redis",
    "otlp-sink",
    GATEWAY_HTTP,
    *(f"{spec.name}" for spec in SERVICES),
    *(f"{spec.name}-metrics" for spec in SERVICES),
)


def allocate_ports(
    names: Iterable[str], base_port: int | None, free_port: Callable[[], int]
) -> dict[str, int]:
    """One port per name: consecutive from ``base_port`` (skipping the standard NATS/Redis
    ports), or each a fresh free port; never the same port twice."""
    ports: dict[str, int] = {}
    used: set[int] = set()
    candidate = base_port
    for name in names:
        if candidate is None:
            port = free_port()
            while port in used:
                port = free_port()
        else:
            while candidate in RESERVED_PORTS or candidate in used:
                candidate += 1
            if candidate >= 65536:
                raise ValueError(f"base port {base_port} leaves too few ports for the stack")
            port = candidate
            candidate += 1
        used.add(port)
        ports[name] = port
    return ports


@dataclass(frozen=True)
class AppConfig:
    """What the stack serves: the agent specs, the tenants the gateway admits, where the
    knowledge lives. Paths are absolute (services run with the caller's working directory)."""

    agents_dir: Path
    tenants_file: Path
    milvus_uri: str
    peer_timeout_s: float = 8.0
    """The gateway's deadline per peer attempt. The embedded llama.cpp model generates one reply
    at a time and cannot stop a prompt evaluation half-way, so on a busy 2-core machine a retry
    after a short deadline only queues a second generation behind the first: the caller hears
    the filler meanwhile, and the turn completes when the first token comes."""
    llm_first_token_timeout_s: float = 15.0


def app_env(spec: ServiceSpec, ports: Mapping[str, int], app: AppConfig) -> dict[str, str]:
    """The agent/tenant/data settings of ``spec`` (empty for a service that needs none)."""
    p = spec.prefix
    if spec.name == "gateway":
        return {
            f"{p}HTTP_HOST": LOOPBACK,
            f"{p}HTTP_PORT": str(ports[GATEWAY_HTTP]),
            f"{p}AGENTS_PATH": str(app.agents_dir),
            f"{p}TENANTS_FILE": str(app.tenants_file),
            f"{p}PEER_TIMEOUT_S": str(app.peer_timeout_s),
        }
    if spec.name == "llm":
        return {
            f"{p}AGENTS_DIR": str(app.agents_dir),
            f"{p}FIRST_TOKEN_TIMEOUT_S": str(app.llm_first_token_timeout_s),
        }
    if spec.name == "context":
        return {f"{p}AGENTS_DIR": str(app.agents_dir), f"{p}MILVUS_URI": app.milvus_uri}
    return {}


def service_env(
    spec: ServiceSpec,
    ports: Mapping[str, int],
    *,
    nats_url: str,
    redis_url: str,
    otlp_endpoint: str,
    drain_seconds: float,
    log_json: bool = True,
    app: AppConfig | None = None,
) -> dict[str, str]:
    """The environment variables that configure ``spec`` inside the stack."""
    p = spec.prefix
    env = {
        f"{p}SERVICE_NAME": spec.name,
        f"{p}HOST": LOOPBACK,
        f"{p}GRPC_PORT": str(ports[spec.name]),
        f"{p}METRICS_PORT": str(ports[f"{spec.name}-metrics"]),
        f"{p}OTLP_ENDPOINT": otlp_endpoint,
        f"{p}LOG_JSON": "true" if log_json else "false",
        f"{p}DRAIN_SECONDS": str(drain_seconds),
    }
    for peer in spec.peers:
        env[f"{p}{peer.upper()}_ADDR"] = f"{LOOPBACK}:{ports[peer]}"
    if spec.nats:
        env[f"{p}NATS_URL"] = nats_url
    if spec.redis:
        env[f"{p}REDIS_URL"] = redis_url
    if app is not None:
        env.update(app_env(spec, ports, app))
    return env
