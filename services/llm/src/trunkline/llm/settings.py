"""Settings of the llm process (env ``LLM_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings


class LlmSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LLM_", frozen=True, extra="ignore")

    service_name: str = "llm"
    grpc_port: int = Field(default=50053, ge=0, lt=65536)
