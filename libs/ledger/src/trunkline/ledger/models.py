"""The ledger's tables (SQLAlchemy 2). The schema is owned by the Alembic migrations in
``migrations/versions``; a test checks that they build exactly these tables.

Money is stored exactly: ``cost_picos`` is an integer count of 10^-12 currency units, rates and
quantities are the decimal text they were priced with. Durations are integer milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on PostgreSQL (timestamptz) and SQLite (naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} given to the ledger (UTC expected)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime}


class PriceTableRow(Base):
    """One version of a tenant's price table, as loaded (the rates as JSON text)."""

    __tablename__ = "price_tables"
    __table_args__ = (UniqueConstraint("tenant", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime)
    currency: Mapped[str] = mapped_column(String(3))
    rates_json: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(512), default="")


class ProcessedEvent(Base):
    """Every event the ledger has applied: a redelivered event is skipped (idempotence)."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    tenant: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UsageRow(Base):
    """What one turn (or one call's telephony, or one component's cost entry) consumed."""

    __tablename__ = "usage"
    __table_args__ = (Index(None, "tenant", "call_id"), Index(None, "tenant", "occurred_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # "turn", "call_ended", "cost"
    tenant: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    turn_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    agent_name: Mapped[str] = mapped_column(String(128))
    agent_version: Mapped[str] = mapped_column(String(64))
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stt_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    tts_characters: Mapped[int] = mapped_column(BigInteger, default=0)
    tts_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    tools: Mapped[str] = mapped_column(Text, default="")  # tool names, comma-separated
    telephony_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    costs: Mapped[list[CostRow]] = relationship(cascade="all, delete-orphan")


class CostRow(Base):
    """One priced line of a usage row (denormalised for the report)."""

    __tablename__ = "costs"
    __table_args__ = (
        UniqueConstraint("usage_id", "component", "item"),
        Index(None, "tenant", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    usage_id: Mapped[int] = mapped_column(ForeignKey("usage.id", ondelete="CASCADE"))
    price_table_id: Mapped[int] = mapped_column(ForeignKey("price_tables.id"))
    tenant: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    agent_name: Mapped[str] = mapped_column(String(128))
    agent_version: Mapped[str] = mapped_column(String(64))
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    component: Mapped[str] = mapped_column(String(16))
    item: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[str] = mapped_column(String(40))
    unit: Mapped[str] = mapped_column(String(16))
    rate: Mapped[str] = mapped_column(String(40))
    per: Mapped[int] = mapped_column(Integer)
    cost_picos: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


class CallRow(Base):
    """One call: what the ledger saw of it, and its outcome once it ended."""

    __tablename__ = "calls"
    __table_args__ = (Index(None, "tenant", "started_at"),)

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    agent_name: Mapped[str] = mapped_column(String(128))
    agent_version: Mapped[str] = mapped_column(String(64))
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    answered_turns: Mapped[int] = mapped_column(Integer, default=0)
    goodbye: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    succeeded_tools: Mapped[str] = mapped_column(Text, default="")
    marked_qualified: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    qualified: Mapped[bool] = mapped_column(Boolean, default=False)
