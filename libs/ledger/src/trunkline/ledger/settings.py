"""Settings of the ledger process (env ``LEDGER_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings


class LedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", frozen=True, extra="ignore")

    service_name: str = "ledger"
    grpc_port: int = Field(default=50057, ge=0, lt=65536)
    nats_url: str = "nats://127.0.0.1:4222"
    nats_ca_file: Path | None = Field(default=None, description="CA for tls:// NATS")
    nats_creds_file: Path | None = Field(default=None, description="NATS credentials file")
    database_url: str = Field(
        default="sqlite:///ledger.db",
        description="SQLAlchemy URL: sqlite:///path (default) or postgresql+psycopg://...",
    )
    prices_dir: Path = Field(default=Path("prices"), description="one price table per tenant")
    agents_dir: Path | None = Field(
        default=None, description="agent specs: their qualified-outcome definitions"
    )
