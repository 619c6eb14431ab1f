"""Settings of a shadow runner process (env ``SHADOW_*``; the rollout operator's Deployment
sets them), read once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from trunkline.config import PeerAddress, ServiceSettings


class ShadowSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SHADOW_", frozen=True, extra="ignore")

    service_name: str = "shadow-runner"
    grpc_port: int = Field(default=50057, ge=0, lt=65536)
    agent: str = Field(min_length=1, description="the candidate's agent name")
    version: str = Field(min_length=1, description="the candidate version")
    durable: str = Field(default="", description="informational: the consumer is derived")
    sample_percent: float = Field(default=100.0, gt=0.0, le=100.0, description="informational")
    nats_url: str = "nats://127.0.0.1:4222"
    nats_ca_file: Path | None = Field(default=None, description="CA for tls:// NATS")
    nats_creds_file: Path | None = Field(default=None, description="NATS credentials file")
    context_addr: PeerAddress = "127.0.0.1:50052"
    llm_addr: PeerAddress = "127.0.0.1:50053"
    peer_timeout_s: float = Field(default=10.0, gt=0)
    tools_dry_run: bool = Field(
        default=True, description="must be true: a shadow never calls a tool's endpoint"
    )
    agent_spec: str = Field(
        default="",
        description="the candidate's agent spec as JSON (the operator's Deployment sets it); "
        "empty: from agents_source",
    )
    agents_source: Literal["files", "cluster"] = "files"
    agents_path: Path = Field(
        default=Path("agents"), description="files: the candidate's YAML file, or a folder"
    )
    agents_namespace: str = "default"
    kubeconfig: Path | None = None
    inject_delay_ms: int = Field(
        default=0,
        ge=0,
        le=60_000,
        description="fault injection: extra delay before each turn's context lookup",
    )
    turn_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _dry_run(self) -> Self:
        if not self.tools_dry_run:
            raise ValueError("SHADOW_TOOLS_DRY_RUN=false: shadow runners only run tools dry")
        return self
