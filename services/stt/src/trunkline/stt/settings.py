"""Settings of the stt process (env ``STT_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings


class SttSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STT_", frozen=True, extra="ignore")

    service_name: str = "stt"
    grpc_port: int = Field(default=50051, ge=0, lt=65536)
