"""Settings of the rollout operator process (env ``ROLLOUT_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings


class RolloutSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROLLOUT_", frozen=True, extra="ignore")

    service_name: str = "rollout"
    grpc_port: int = Field(default=50056, ge=0, lt=65536)
