"""What the local stack runs: its components, their ports and each service's environment (pure)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from trunkline.config import TURN_TAKING
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
    ServiceSpec("ledger", "trunkline.ledger", "LEDGER_", nats=True),  # the cost ledger worker
    ServiceSpec(
        "gateway",
        "trunkline.gateway",
        "GATEWAY_",
        peers=("stt", "context", "llm", "tts", "hitl"),
        nats=True,
        redis=True,
    ),
    ServiceSpec("rollout", "trunkline.rollout", "ROLLOUT_", nats=True),
)
"""In start order: the gateway after the peers it checks for readiness."""

GATEWAY_HTTP = "gateway-http"
"""The gateway's media-stream / webhook HTTP port (``ws://.../twilio/stream``)."""

HITL_CONSOLE = "hitl-console"
"""The hitl process's operator console and browser softphone (HTTP)."""

CRM = "crm"
CRM_FILE = "crm.json"
CRM_MODULE = "trunkline.cli.samplecrm"
CRM_SPEC_ORIGIN = "http://127.0.0.1:8090"
"""Where the agent specs in the repository say the demo CRM is (``samplecrm``'s default port).

The stack starts the CRM on a free port instead, and the services read a rendered copy of the
agent specs (``<run dir>/agents/``) in which every tool ``endpoint`` and live-source
``base_url`` on this origin points at the CRM the stack started (:func:`rebase_agent`). The
files in ``agents/`` stay valid as they are (tests and hand-run services read them directly)."""

JAEGER_PORTS = ("jaeger-otlp", "jaeger-query", "jaeger-query-grpc")
"""Jaeger all-in-one: OTLP/gRPC in (every service exports there; Jaeger forwards each span to
the OTLP sink, which writes ``spans.jsonl``), the query API + UI over HTTP, the query API over
gRPC."""

LIVEKIT_PORTS = ("livekit", "livekit-rtc-tcp", "livekit-rtc-udp", "livekit-sip")
"""The LiveKit server: signalling (HTTP/WebSocket), RTC over TCP, RTC over one UDP port. Its
webhook posts to the gateway's ``/livekit/webhook`` (rooms ``<tenant>.<agent>.<call id>``).
LiveKit SIP: its SIP port (UDP and TCP); its RTP ports are a range found free at start."""

PORT_NAMES: tuple[str, ...] = (
    "nats",
    "nats-monitor",
    "redis",
    "otlp-sink",
    *JAEGER_PORTS,
    CRM,
    GATEWAY_HTTP,
    HITL_CONSOLE,
    *(f"{spec.name}" for spec in SERVICES),
    *(f"{spec.name}-metrics" for spec in SERVICES),
    *LIVEKIT_PORTS,
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
    peer_timeout_s: float = TURN_TAKING.peer_timeout_s
    """The gateway's deadline per peer attempt (default shared with the chart and the settings:
    ``trunkline.config.defaults``). The embedded llama.cpp model generates one reply
    at a time and cannot stop a prompt evaluation half-way, so on a busy 2-core machine a retry
    after a short deadline only queues a second generation behind the first: the caller hears
    the filler meanwhile, and the turn completes when the first token comes."""
    llm_first_token_timeout_s: float = 15.0
    llm_library_dir: Path | None = None
    ledger_database_url: str = ""
    """The cost ledger's database (``LEDGER_DATABASE_URL``): ``<run dir>/ledger.db``."""
    transcripts_url: str = ""
    """The encrypted transcript store (``GATEWAY_TRANSCRIPTS_URL``): ``<run dir>/transcripts.db``;
    empty: none (unredacted transcripts are never stored)."""
    prices_dir: Path | None = None
    """Per-tenant price tables (``LEDGER_PRICES_DIR``, ``prices/`` in the repository)."""
    """A llama.cpp build for this CPU (``LLM_LIBRARY_DIR``, see
    ``trunkline.llm.backends.cpubuild``); None: the wheel's."""
    console_operators_file: Path | None = None
    """Who may log in to the console (``HITL_CONSOLE_OPERATORS_FILE``, written by the stack)."""
    join_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    """Signs operators' join tokens (hitl's ``TakeOver``) and checks them (the gateway's
    ``/webrtc/operator``): ``HITL_JOIN_SECRET`` = ``GATEWAY_JOIN_SECRET``, one per stack."""
    llm_threads_batch: int = 2
    """Threads evaluating prompts (``LLM_THREADS_BATCH``): between the caller's last word and the
    first clause nothing else runs, so the prompt takes both cores; tokens are generated on one
    (``LLM_THREADS`` 1), leaving the other to TTS, which speaks the first clause meanwhile, except
    the first tokens (``LLM_FIRST_TOKENS_THREADS``): TTS waits for that first clause."""
    endpoint_ms: int = TURN_TAKING.endpoint_ms
    """Silence that ends the caller's turn (``GATEWAY_ENDPOINT_MS``): most of voice-to-voice
    latency. Counted from the first silent frame, which the gateway's quiet-frame rule puts
    20-60 ms after the caller's last sound, so a turn ends ~400 ms after it. At 300 the pause
    between two sentences of one turn ("Sorry to interrupt. | Do you take ...": 280-320 ms in
    the simulated caller's voice) ended the turn and the agent started answering half a
    question (README, knobs)."""
    speculative_start: bool = TURN_TAKING.speculative_start
    """Start STT/context/LLM/TTS before the endpoint (``GATEWAY_SPECULATIVE_START``)..."""
    speculate_after_ms: int = TURN_TAKING.speculate_after_ms
    """...after this much silence (``GATEWAY_SPECULATE_AFTER_MS``; 20: the first silent frame).
    Work started for a pause the caller then talks through is cancelled (the LLM stream is
    closed), but an LLM that cannot stop a prompt evaluation still spends it: a longer delay
    trades latency for fewer wasted generations."""


def app_env(spec: ServiceSpec, ports: Mapping[str, int], app: AppConfig) -> dict[str, str]:
    """The agent/tenant/data settings of ``spec`` (empty for a service that needs none)."""
    p = spec.prefix
    if spec.name == "gateway":
        transcripts = {f"{p}TRANSCRIPTS_URL": app.transcripts_url} if app.transcripts_url else {}
        return {
            **transcripts,
            f"{p}HTTP_HOST": LOOPBACK,
            f"{p}HTTP_PORT": str(ports[GATEWAY_HTTP]),
            f"{p}AGENTS_PATH": str(app.agents_dir),
            f"{p}TENANTS_FILE": str(app.tenants_file),
            f"{p}PEER_TIMEOUT_S": str(app.peer_timeout_s),
            f"{p}ENDPOINT_MS": str(app.endpoint_ms),
            f"{p}SPECULATIVE_START": "true" if app.speculative_start else "false",
            f"{p}SPECULATE_AFTER_MS": str(app.speculate_after_ms),
            f"{p}JOIN_SECRET": app.join_secret,
        }
    if spec.name == "llm":
        env = {
            f"{p}AGENTS_DIR": str(app.agents_dir),
            f"{p}FIRST_TOKEN_TIMEOUT_S": str(app.llm_first_token_timeout_s),
            f"{p}THREADS_BATCH": str(app.llm_threads_batch),
            f"{p}FIRST_TOKENS_THREADS": str(app.llm_threads_batch),
        }
        if app.llm_library_dir is not None:
            env[f"{p}LIBRARY_DIR"] = str(app.llm_library_dir)
        return env
    if spec.name == "context":
        return {f"{p}AGENTS_DIR": str(app.agents_dir), f"{p}MILVUS_URI": app.milvus_uri}
    if spec.name == "hitl":  # the console's softphone relays its offers to the gateway
        return {
            f"{p}CONSOLE_HOST": LOOPBACK,
            f"{p}CONSOLE_PORT": str(ports[HITL_CONSOLE]),
            f"{p}CONSOLE_GATEWAY_URL": f"http://{LOOPBACK}:{ports[GATEWAY_HTTP]}",
            f"{p}JOIN_SECRET": app.join_secret,
            **(
                {f"{p}CONSOLE_OPERATORS_FILE": str(app.console_operators_file)}
                if app.console_operators_file is not None
                else {}
            ),
        }
    if spec.name == "rollout":  # no Prometheus here: the analysis reads the shadow results
        return {f"{p}METRICS_SOURCE": "shadow"}
    if spec.name == "ledger":
        env = {f"{p}AGENTS_DIR": str(app.agents_dir)}
        if app.ledger_database_url:
            env[f"{p}DATABASE_URL"] = app.ledger_database_url
        if app.prices_dir is not None:
            env[f"{p}PRICES_DIR"] = str(app.prices_dir)
        return env
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


# -- the demo CRM -------------------------------------------------------------------------------


def crm_data(agents_dir: Path) -> Path | None:
    """The first ``<agent>/crm.json`` in the agents folder: the stack serves it as the CRM."""
    found = sorted(agents_dir.glob(f"*/{CRM_FILE}"))
    return found[0] if found else None


def crm_files(agents_dir: Path) -> list[Path]:
    """Every ``<agent>/crm.json`` in the agents folder: one CRM serves all their accounts."""
    return sorted(agents_dir.glob(f"*/{CRM_FILE}"))


def crm_argv(python: str, port: int, data: Path | Sequence[Path]) -> list[str]:
    files = [data] if isinstance(data, Path) else list(data)
    argv = [python, "-m", CRM_MODULE, "--host", LOOPBACK, "--port", str(port)]
    return argv + [arg for file in files for arg in ("--data", str(file))]


def _rebase(url: str, old: str, new: str) -> str:
    parts = urlsplit(url)
    if f"{parts.scheme}://{parts.netloc}" != old:
        return url
    return new.rstrip("/") + url[len(old) :]


def rebase_agent(spec: Mapping[str, Any], old_origin: str, new_origin: str) -> dict[str, Any]:
    """A copy of one agent spec (YAML data) whose tool endpoints and live-source base URLs on
    ``old_origin`` (``http://host:port``) are on ``new_origin`` instead; the rest unchanged."""
    data = dict(spec)
    tools = data.get("tools")
    if isinstance(tools, list):
        data["tools"] = [
            {**t, "endpoint": _rebase(str(t["endpoint"]), old_origin, new_origin)}
            if isinstance(t, dict) and "endpoint" in t
            else t
            for t in tools
        ]
    retrieval = data.get("retrieval")
    if isinstance(retrieval, dict) and isinstance(retrieval.get("live_sources"), list):
        data["retrieval"] = {
            **retrieval,
            "live_sources": [
                {**s, "base_url": _rebase(str(s["base_url"]), old_origin, new_origin)}
                if isinstance(s, dict) and "base_url" in s
                else s
                for s in retrieval["live_sources"]
            ],
        }
    return data
