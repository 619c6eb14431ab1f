"""Settings of the hitl process (env ``HITL_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings


class HitlSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HITL_", frozen=True, extra="ignore")

    service_name: str = "hitl"
    grpc_port: int = Field(default=50055, ge=0, lt=65536)
    nats_url: str = "nats://127.0.0.1:4222"
    nats_ca_file: Path | None = Field(default=None, description="CA for tls:// NATS")
    nats_creds_file: Path | None = Field(default=None, description="NATS credentials file")
