"""The ledger on SQLite: migrations up and down, exact cost rows, idempotence, outcomes, report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session

from trunkline.ledger.facts import Fact, TurnFact
from trunkline.ledger.migrate import current, downgrade, head, upgrade
from trunkline.ledger.models import Base, CallRow, CostRow, UsageRow
from trunkline.ledger.outcomes import QualifiedRule
from trunkline.ledger.prices import PriceTable, PriceTableError, parse_price_table
from trunkline.ledger.pricing import from_picos
from trunkline.ledger.report import UnknownTenantError, build_report, to_csv, to_table
from trunkline.ledger.store import LedgerStore, make_engine
from trunkline.ledger.synthetic import synthetic_calls

from .conftest import DEMO, DEMO_START, demo_call, escalated_call

pytestmark = pytest.mark.unit

LEDGER_TABLES = {"price_tables", "processed_events", "usage", "costs", "calls"}


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine)
    return engine


def store_for(engine: Engine, tables: dict[str, PriceTable]) -> LedgerStore:
    def rule(agent: str, _version: str) -> QualifiedRule:
        return QualifiedRule(
            defined=True, tool="book_appointment" if agent == "acme-dental" else None
        )

    store = LedgerStore(engine, tables, rule)
    store.sync_prices()
    return store


def test_migrations_go_up_and_down_and_match_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert current(engine) is None
    upgrade(engine)
    assert current(engine) == head()
    assert set(inspect(engine).get_table_names()) >= LEDGER_TABLES
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    downgrade(engine, "base")
    assert current(engine) is None
    assert not LEDGER_TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)  # and up again on the same database
    assert current(engine) == head()


def test_a_demo_calls_cost_rows_are_usage_times_price(
    engine: Engine, tables: dict[str, PriceTable], demo_facts: list[Fact]
) -> None:
    store = store_for(engine, tables)
    store.apply(demo_facts)
    rates = tables["acme"].at(DEMO_START)
    with Session(engine) as session:
        costs = session.scalars(select(CostRow).order_by(CostRow.id)).all()
        usage = {u.id: u for u in session.scalars(select(UsageRow))}
    assert len(costs) == 20  # 2 + 5 + 5 + 5 (no cached tokens, a tool) + 2 + telephony
    for row in costs:
        used = usage[row.usage_id]
        expected_quantity = {
            ("stt", "audio"): Decimal(used.stt_ms).scaleb(-3),
            ("llm", "prompt"): Decimal(used.prompt_tokens - used.cached_tokens),
            ("llm", "cached"): Decimal(used.cached_tokens),
            ("llm", "completion"): Decimal(used.completion_tokens),
            ("tts", "characters"): Decimal(used.tts_characters),
            ("tool", "lookup_account"): Decimal(1),
            ("telephony", "minutes"): Decimal(2),  # 94.32 s: two started minutes
        }[(row.component, row.item)]
        expected_rate = {
            "stt": rates.stt.per_second, "tts": rates.tts.per_character,
            "prompt": rates.llm.prompt_per_1k, "cached": rates.llm.cached_per_1k,
            "completion": rates.llm.completion_per_1k, "lookup_account": Decimal("0.0005"),
            "telephony": rates.telephony.per_minute,
        }[row.item if row.component in ("llm", "tool") else row.component]  # fmt: skip
        assert Decimal(row.quantity) == expected_quantity
        assert Decimal(row.rate) == expected_rate
        assert from_picos(row.cost_picos) == expected_quantity * expected_rate / row.per
    # worked by hand from prices/acme.yaml: 0.002536 + 0.0037554 + 0.0018527 + 0.005485
    # + 0.00172 (turns) + 0.017 (telephony, 2 minutes)
    assert sum((from_picos(r.cost_picos) for r in costs), Decimal(0)) == Decimal("0.0323491")


def test_a_redelivered_event_is_applied_once(
    engine: Engine, tables: dict[str, PriceTable], demo_facts: list[Fact]
) -> None:
    store = store_for(engine, tables)
    first = store.apply(demo_facts)
    again = store.apply(demo_facts[:3])
    mixed = store.apply([*demo_facts[2:], *escalated_call("other")])
    assert (len(first), len(again), len(mixed)) == (6, 0, 3)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(UsageRow)) == 6 + 2
        call = session.get(CallRow, ("acme", DEMO.call_id))
        assert call is not None
        assert (call.turns, call.answered_turns, call.goodbye) == (5, 4, True)
        assert (call.outcome, call.qualified) == ("resolved", False)  # no booking: not qualified


def test_an_escalation_after_the_end_changes_the_outcome(
    engine: Engine, tables: dict[str, PriceTable]
) -> None:
    store = store_for(engine, tables)
    turn, end, late = escalated_call("esc-1")
    store.apply([turn, end])
    with Session(engine) as session:
        assert session.get(CallRow, ("acme", "esc-1")).outcome == "abandoned"  # type: ignore[union-attr]
    store.apply([late])
    with Session(engine) as session:
        assert session.get(CallRow, ("acme", "esc-1")).outcome == "escalated"  # type: ignore[union-attr]


def test_an_unpriced_tenant_keeps_its_usage(engine: Engine, tables: dict[str, PriceTable]) -> None:
    store = store_for(engine, tables)
    facts = demo_call(DEMO.__class__("globex", "g-1", "volt-energy", "1.0.0"))
    applied = store.apply(facts)
    assert all(a.unpriced for a in applied)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(UsageRow)) == 6
        assert session.scalar(select(func.count()).select_from(CostRow)) == 0


def test_changed_rates_under_an_old_version_label_are_refused(
    engine: Engine, tables: dict[str, PriceTable]
) -> None:
    store_for(engine, tables)
    text = (Path(tables["acme"].source)).read_text().replace("0.0004", "0.0005")
    changed = {"acme": parse_price_table(text, "prices/acme.yaml")}
    with pytest.raises(PriceTableError, match="version '2026-01' of tenant 'acme' was stored"):
        LedgerStore(engine, changed).sync_prices()


def test_report_per_agent_version(engine: Engine, tables: dict[str, PriceTable]) -> None:
    store = store_for(engine, tables)
    facts = list(synthetic_calls(200, tenant="acme", start=DEMO_START))
    store.apply(facts)
    report = build_report(engine, "acme", DEMO_START, DEMO_START + timedelta(days=2))
    assert [(v.agent, v.version) for v in report.versions] == [
        ("acme-dental", "1.0.0"), ("acme-dental", "1.1.0"),
    ]  # fmt: skip
    assert sum(v.calls for v in report.versions) == 200
    turns = [f for f in facts if isinstance(f, TurnFact)]
    assert sum(v.turns for v in report.versions) == len(turns)
    with Session(engine) as session:
        stored = sum(from_picos(p) for p in session.scalars(select(CostRow.cost_picos)))
        qualified = session.scalar(select(func.count()).where(CallRow.qualified.is_(True)))
    assert sum(v.total for v in report.versions) == stored
    assert sum(v.qualified for v in report.versions) == qualified
    for v in report.versions:
        assert sum(v.outcomes.values()) == v.calls
        assert v.per_qualified == v.total / v.qualified
    csv_text = to_csv(report)
    assert csv_text.splitlines()[0].startswith("agent,version,calls,turns,resolved")
    assert len(csv_text.splitlines()) == 3
    assert "acme-dental" in to_table(report)
    empty = build_report(engine, "acme", DEMO_START - timedelta(days=9), DEMO_START)
    assert empty.versions == []
    with pytest.raises(UnknownTenantError, match="tenant 'initech' is unknown to the ledger"):
        build_report(engine, "initech", DEMO_START, datetime.now(UTC))
