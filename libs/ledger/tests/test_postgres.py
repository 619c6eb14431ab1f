"""The ledger on a real PostgreSQL 16 server (the ``pgserver`` wheel, started per test):
migrations up and down, exact cost rows, idempotence, the report."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from trunkline.ledger.facts import Fact
from trunkline.ledger.migrate import current, downgrade, head, upgrade
from trunkline.ledger.models import Base, CallRow, CostRow
from trunkline.ledger.prices import PriceTable
from trunkline.ledger.pricing import from_picos
from trunkline.ledger.report import build_report
from trunkline.ledger.store import LedgerStore, make_engine
from trunkline.ledger.synthetic import synthetic_calls

from .conftest import DEMO, DEMO_START

pytestmark = pytest.mark.integration

LEDGER_TABLES = {"price_tables", "processed_events", "usage", "costs", "calls"}


def test_postgres_migrations_costs_idempotence_and_report(
    postgres_url: str, tables: dict[str, PriceTable], demo_facts: list[Fact]
) -> None:
    engine = make_engine(postgres_url)
    assert engine.dialect.name == "postgresql"
    try:
        upgrade(engine)
        assert current(engine) == head()
        assert set(inspect(engine).get_table_names()) >= LEDGER_TABLES
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []

        store = LedgerStore(engine, tables)
        store.sync_prices()
        assert len(store.apply(demo_facts)) == 6
        assert store.apply(demo_facts) == []  # redelivered: nothing changes
        with Session(engine) as session:
            costs = session.scalars(select(CostRow).where(CostRow.call_id == DEMO.call_id)).all()
            call = session.get(CallRow, ("acme", DEMO.call_id))
        assert len(costs) == 20
        for row in costs:
            assert from_picos(row.cost_picos) == Decimal(row.quantity) * Decimal(row.rate) / row.per
        # the same hand-worked total as on SQLite (test_store)
        assert sum((from_picos(r.cost_picos) for r in costs), Decimal(0)) == Decimal("0.0323491")
        assert call is not None
        assert call.started_at == DEMO_START + timedelta(seconds=15)
        assert (call.outcome, call.end_reason, call.duration_ms) == (
            "resolved", "agent_hangup", 94320,
        )  # fmt: skip

        store.apply(list(synthetic_calls(100, tenant="acme", start=DEMO_START)))
        report = build_report(engine, "acme", DEMO_START, DEMO_START + timedelta(days=1))
        with Session(engine) as session:
            picos = session.scalar(select(func.sum(CostRow.cost_picos)))
        assert picos is not None
        assert sum(v.total for v in report.versions) == from_picos(int(picos))
        assert sum(v.calls for v in report.versions) == 101

        downgrade(engine, "base")
        assert current(engine) is None
        assert not LEDGER_TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
