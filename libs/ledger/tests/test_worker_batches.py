"""The worker's writer on the in-memory bus: batches written and acked; an event the store
refuses for a reason other than an outage is dropped alone, the others are written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trunkline.bus.streams import COST_LEDGER, event_subject
from trunkline.ledger.facts import Fact
from trunkline.ledger.migrate import upgrade
from trunkline.ledger.models import UsageRow
from trunkline.ledger.prices import PriceTable
from trunkline.ledger.store import Applied, LedgerStore, make_engine
from trunkline.ledger.worker import LedgerWorker
from trunkline.proto.common.v1 import call_pb2, usage_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.testing.fakes import FakeBus

pytestmark = pytest.mark.unit


class PickyStore(LedgerStore):
    """Refuses the event ``poison`` as a pricing bug would (not a database outage)."""

    def apply(self, facts: Sequence[Fact]) -> list[Applied]:
        if any(fact.event_id == "poison" for fact in facts):
            raise ArithmeticError("0.1 x 0.1 / 3 is not exact")
        return super().apply(facts)


def turn(event_id: str, index: int) -> events_pb2.TurnCompleted:
    return events_pb2.TurnCompleted(
        event_id=event_id,
        context=call_pb2.CallContext(
            tenant_id="acme", call_id="c1", turn_index=index,
            agent=call_pb2.AgentRef(name="acme-dental", version="1.0.0"),
        ),
        usage=usage_pb2.Usage(input_tokens=100, output_tokens=10, characters=40),
    )  # fmt: skip


async def test_a_poison_event_is_dropped_alone(
    tmp_path: Path, tables: dict[str, PriceTable]
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine)
    store = PickyStore(engine, tables)
    store.sync_prices()
    bus = FakeBus()
    worker = LedgerWorker(bus, store, consumers=(COST_LEDGER,))
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.05)  # the worker declares the streams
        for index, event_id in enumerate(("t0", "poison", "t2", "t3")):
            await bus.js_publish(event_subject("turn", "acme", "c1"), turn(event_id, index))
        for _ in range(200):
            if len(bus.acked(COST_LEDGER)) == 4:
                break
            await asyncio.sleep(0.05)
        assert len(bus.acked(COST_LEDGER)) == 4  # settled: three acked, the poison terminated
        assert (worker.applied, worker.bad_events, worker.pending) == (3, 1, 0)
        with Session(engine) as session:
            ids = set(session.scalars(select(UsageRow.event_id)))
            assert session.scalar(select(func.count()).select_from(UsageRow)) == 3
        assert ids == {"t0", "t2", "t3"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        engine.dispose()
