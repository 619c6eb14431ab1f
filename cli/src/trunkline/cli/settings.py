"""Settings of the ``trunkline`` command (env ``TRUNKLINE_STACK_*``; flags override them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from trunkline.config import TURN_TAKING


class StackSettings(BaseSettings):
    """How ``trunkline stack`` runs the local stack."""

    model_config = SettingsConfigDict(env_prefix="TRUNKLINE_STACK_", frozen=True, extra="ignore")

    run_dir: Path = Path(".run")
    base_port: int | None = Field(
        default=None, ge=1024, lt=65000, description="None: every port chosen free"
    )
    nats_url: str | None = Field(
        default=None, description="reuse this NATS instead of starting one"
    )
    redis_url: str | None = Field(
        default=None, description="reuse this Redis instead of starting one"
    )
    start_timeout: float = Field(default=120.0, gt=0, description="seconds to reach SERVING")
    drain_seconds: float = Field(default=5.0, ge=0)
    stop_timeout: float = Field(default=15.0, gt=0, description="SIGTERM to SIGKILL, seconds")
    agents_dir: Path = Field(default=Path("agents"), description="agent spec YAMLs to serve")
    prices_dir: Path = Field(default=Path("prices"), description="per-tenant price tables")
    llm_library_dir: Path = Field(
        default=Path("build/llama-cpu"),
        description="llama.cpp built for this CPU by `make install` (tools/llama_build.py); the "
        "llm loads it where present and where the CPU has the flags it needs",
    )
    peer_timeout_s: float = Field(
        default=TURN_TAKING.peer_timeout_s,
        gt=0,
        description="gateway deadline per peer attempt (embedded models)",
    )
    tenant: str = Field(
        default="acme", pattern=r"^[a-z0-9][a-z0-9_-]*$", description="the local tenant"
    )
    sip_number: str = Field(
        default="+15550100",
        pattern=r"^\+?[0-9]{3,15}$",
        description="the number LiveKit SIP answers for the local tenant's first agent (the next "
        "numbers: the other agents, in name order)",
    )
    sip_rtp_ports: int = Field(
        default=20, ge=2, le=1000, description="LiveKit SIP RTP port range (an even port per call)"
    )
