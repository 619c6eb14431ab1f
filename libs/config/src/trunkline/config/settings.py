"""The settings base class and the peer-address type."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def parse_peer(value: str) -> str:
    """Validate a ``host:port`` peer address and return it unchanged."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"peer address {value!r} is not host:port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"peer address {value!r} has an invalid port")
    return value


PeerAddress = Annotated[str, AfterValidator(parse_peer)]
"""A ``host:port`` address of another Trunkline service (``<PEER>_ADDR``)."""


class ServiceSettings(BaseSettings):
    """Fields every service process has. Subclasses set ``model_config`` with their env prefix.

    Example::

        class SttSettings(ServiceSettings):
            model_config = SettingsConfigDict(env_prefix="STT_")
            backend: Literal["whisper", "riva"] = "whisper"
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = "trunkline"
    host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, lt=65536)
    metrics_port: int = Field(default=0, ge=0, lt=65536, description="0 disables /metrics")
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/gRPC collector, e.g. 127.0.0.1:4317; None: no export"
    )
    otlp_insecure: bool = Field(
        default=True, description="plaintext OTLP; false: TLS (otlp_ca_file, else system CAs)"
    )
    otlp_ca_file: Path | None = Field(default=None, description="CA bundle for OTLP over TLS")
    otlp_headers: SecretStr | None = Field(
        default=None, description="OTLP request headers, 'key=value,key2=value2' (a token)"
    )
    log_level: str = "INFO"
    log_json: bool = True
    drain_seconds: float = Field(default=10.0, ge=0)
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)

    @classmethod
    def load(cls) -> Self:
        """Read the settings from the environment once; raise a clear error when invalid."""
        return cls()

    @property
    def grpc_bind(self) -> str:
        return f"{self.host}:{self.grpc_port}"
