"""Defaults of ``trunkline call`` (env ``TRUNKLINE_CALL_*``; flags override them)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from trunkline.cli.caller.dial import TokenIn


class CallSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRUNKLINE_CALL_", frozen=True, extra="ignore")

    url: str = Field(default="ws://127.0.0.1:8080/twilio/stream", description="media stream URL")
    webhook: str | None = Field(default=None, description="TwiML webhook URL (dial as Twilio)")
    twilio_auth_token: SecretStr | None = None
    tenant: str = "demo"
    agent: str = "support"
    token: SecretStr | None = None
    stream_secret: SecretStr | None = None
    token_in: TokenIn = "parameters"
    tts_addr: str | None = None
    caller_voice: str = "auto"
    agent_voice: str = ""
    speaking_rate: float = Field(default=0.0, ge=0)
