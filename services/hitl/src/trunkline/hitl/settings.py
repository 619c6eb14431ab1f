"""Settings of the hitl process (env ``HITL_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings


class HitlSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HITL_", frozen=True, extra="ignore")

    service_name: str = "hitl"
    grpc_port: int = Field(default=50055, ge=0, lt=65536)
    nats_url: str = "nats://127.0.0.1:4222"
    nats_ca_file: Path | None = Field(default=None, description="CA for tls:// NATS")
    nats_creds_file: Path | None = Field(default=None, description="NATS credentials file")
    tickets_bucket: str = Field(
        default="HITL_TICKETS", description="JetStream key-value bucket holding the tickets"
    )
    tickets_keep_s: float = Field(
        default=7 * 86400.0, gt=0, description="How long a ticket is kept after its last change"
    )
    escalation_timeout_s: float = Field(
        default=600.0, gt=0, description="An escalation waits this long for an operator"
    )
    approval_timeout_s: float = Field(
        default=60.0, gt=0, description="An undecided approval expires (= denied) after this"
    )
    claim_timeout_s: float = Field(
        default=30.0, gt=0, description="A claimed, unaccepted ticket goes back to the queue"
    )
    callback_keep_s: float = Field(
        default=86400.0, gt=0, description="A ticket with an accepted callback stays this long"
    )
    summary_backend: Literal["extractive", "llm"] = Field(
        default="extractive",
        description="extractive: the caller's telling sentences (embedded, no model); llm: an "
        "OpenAI-compatible server (vLLM on GPU nodes) at summary_llm_url, extractive on failure",
    )
    summary_llm_url: str = Field(
        default="",
        description="OpenAI-compatible base URL for llm summaries, e.g. http://vllm:8000/v1",
    )
    summary_llm_model: str = Field(default="", description="Model name for llm summaries")
    summary_llm_timeout_s: float = Field(default=2.0, gt=0)
    join_url: str = Field(
        default="",
        description="Where an operator's softphone joins a taken-over call (the gateway's WebRTC "
        "signaling endpoint), returned by TakeOver",
    )
    join_secret: SecretStr | None = Field(
        default=None,
        description="Shared with the gateway: signs TakeOver's short-lived join tokens (none "
        "issued when unset)",
    )
    join_token_ttl_s: float = Field(default=120.0, gt=0)
