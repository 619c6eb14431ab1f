"""Settings of the context process (env ``CONTEXT_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings


class ContextSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXT_", frozen=True, extra="ignore")

    service_name: str = "context"
    grpc_port: int = Field(default=50052, ge=0, lt=65536)
