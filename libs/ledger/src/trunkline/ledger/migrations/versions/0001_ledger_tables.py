"""ledger tables: price tables, usage, costs, calls, processed events

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=128), nullable=False),
        sa.Column("agent_name", sa.String(length=128), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("answered_turns", sa.Integer(), nullable=False),
        sa.Column("goodbye", sa.Boolean(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("succeeded_tools", sa.Text(), nullable=False),
        sa.Column("marked_qualified", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("qualified", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "call_id", name=op.f("pk_calls")),
    )
    op.create_index(
        op.f("ix_calls_tenant_started_at"), "calls", ["tenant", "started_at"], unique=False
    )

    op.create_table(
        "price_tables",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rates_json", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_tables")),
        sa.UniqueConstraint("tenant", "version", name=op.f("uq_price_tables_tenant_version")),
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=128), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
    )
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=128), nullable=False),
        sa.Column("turn_index", sa.Integer(), nullable=True),
        sa.Column("agent_name", sa.String(length=128), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stt_ms", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("tts_characters", sa.BigInteger(), nullable=False),
        sa.Column("tts_ms", sa.BigInteger(), nullable=False),
        sa.Column("tools", sa.Text(), nullable=False),
        sa.Column("telephony_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage")),
        sa.UniqueConstraint("event_id", name=op.f("uq_usage_event_id")),
    )
    op.create_index(op.f("ix_usage_tenant_call_id"), "usage", ["tenant", "call_id"], unique=False)
    op.create_index(
        op.f("ix_usage_tenant_occurred_at"), "usage", ["tenant", "occurred_at"], unique=False
    )

    op.create_table(
        "costs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("usage_id", sa.Integer(), nullable=False),
        sa.Column("price_table_id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=128), nullable=False),
        sa.Column("agent_name", sa.String(length=128), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("component", sa.String(length=16), nullable=False),
        sa.Column("item", sa.String(length=128), nullable=False),
        sa.Column("quantity", sa.String(length=40), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("per", sa.Integer(), nullable=False),
        sa.Column("cost_picos", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(
            ["price_table_id"],
            ["price_tables.id"],
            name=op.f("fk_costs_price_table_id_price_tables"),
        ),
        sa.ForeignKeyConstraint(
            ["usage_id"], ["usage.id"], name=op.f("fk_costs_usage_id_usage"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_costs")),
        sa.UniqueConstraint(
            "usage_id", "component", "item", name=op.f("uq_costs_usage_id_component_item")
        ),
    )
    op.create_index(
        op.f("ix_costs_tenant_occurred_at"), "costs", ["tenant", "occurred_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_costs_tenant_occurred_at"), table_name="costs")

    op.drop_table("costs")
    op.drop_index(op.f("ix_usage_tenant_occurred_at"), table_name="usage")
    op.drop_index(op.f("ix_usage_tenant_call_id"), table_name="usage")

    op.drop_table("usage")
    op.drop_table("processed_events")
    op.drop_table("price_tables")
    op.drop_index(op.f("ix_calls_tenant_started_at"), table_name="calls")

    op.drop_table("calls")
