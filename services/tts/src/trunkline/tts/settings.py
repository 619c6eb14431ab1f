"""Settings of the tts process (env ``TTS_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings


class TtsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TTS_", frozen=True, extra="ignore")

    service_name: str = "tts"
    grpc_port: int = Field(default=50054, ge=0, lt=65536)
