"""The ledger worker on real NATS JetStream: events in, exact rows out; a database that is
unavailable for a while loses nothing and never slows the publisher; redeliveries apply once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from google.protobuf.message import Message
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import generate_latest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trunkline.bus import Bus
from trunkline.bus.streams import (
    COST_LEDGER,
    COST_LEDGER_SHADOW,
    EVENTS,
    SHADOW,
    SHADOW_PREFIX,
    event_subject,
    shadow_subject,
)
from trunkline.devservers import NatsServer
from trunkline.ledger.facts import CallEndFact, Fact, TurnFact
from trunkline.ledger.metrics import LedgerMetrics
from trunkline.ledger.migrate import upgrade
from trunkline.ledger.models import CallRow, CostRow, UsageRow
from trunkline.ledger.prices import parse_price_table
from trunkline.ledger.pricing import from_picos
from trunkline.ledger.store import LedgerStore, make_engine
from trunkline.ledger.worker import LedgerWorker, RetryPolicy
from trunkline.proto.common.v1 import call_pb2, tool_pb2, usage_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.telemetry.prometheus import PrometheusReader, registry_for

from .conftest import ROOT, demo_call

pytestmark = pytest.mark.integration


def context(fact: Fact) -> call_pb2.CallContext:
    key = fact.call
    return call_pb2.CallContext(
        tenant_id=key.tenant,
        call_id=key.call_id,
        agent=call_pb2.AgentRef(name=key.agent_name, version=key.agent_version),
        shadow=key.shadow,
        turn_index=fact.turn_index if isinstance(fact, TurnFact) else 0,
    )


def event(fact: Fact) -> tuple[str, Message]:
    """The protobuf event the gateway publishes for ``fact`` (and its subject)."""
    key = fact.call
    if isinstance(fact, TurnFact):
        u = fact.usage
        turn = events_pb2.TurnCompleted(
            event_id=fact.event_id,
            context=context(fact),
            usage=usage_pb2.Usage(
                input_tokens=u.prompt_tokens,
                cached_input_tokens=u.cached_tokens,
                output_tokens=u.completion_tokens,
                audio_in_seconds=float(u.stt_seconds),
                characters=u.tts_characters,
            ),
            reply_source=events_pb2.ReplySource.Value(f"REPLY_SOURCE_{fact.reply_source.upper()}"),
            intent=fact.intent,
            hang_up=fact.hang_up,
        )
        for name in u.tools:
            turn.tool_calls.add(
                call=tool_pb2.ToolCall(id="t1", name=name),
                status=events_pb2.TOOL_CALL_STATUS_SUCCEEDED,
            )
        turn.occurred_at.FromDatetime(fact.occurred_at)
        return event_subject("turn", key.tenant, key.call_id), turn
    assert isinstance(fact, CallEndFact)
    ended = events_pb2.CallEnded(
        event_id=fact.event_id,
        context=context(fact),
        reason=events_pb2.END_REASON_AGENT_HANGUP,
        turn_count=fact.turn_count,
    )
    ended.duration.FromMilliseconds(int(fact.duration_seconds * 1000))
    ended.occurred_at.FromDatetime(fact.occurred_at)
    return event_subject("call_ended", key.tenant, key.call_id), ended


async def until(check: Callable[[], bool], limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_database_down_then_back_loses_nothing_and_applies_once(  # noqa: PLR0915
    nats_server: NatsServer, tmp_path: Path
) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    text = (ROOT / "prices" / "acme.yaml").read_text().replace("tenant: acme", f"tenant: {tenant}")
    db = tmp_path / "ledger.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    store = LedgerStore(engine, {tenant: parse_price_table(text, "acme.yaml")})
    store.sync_prices()
    reader = PrometheusReader()
    provider = MeterProvider(metric_readers=[reader])
    consumers = (  # this test's own durables, over this tenant's events only
        replace(COST_LEDGER, durable=f"ledger-{tenant}",
                filter_subject=f"trunkline.events.*.{tenant}.>"),
        replace(COST_LEDGER_SHADOW, durable=f"ledger-shadow-{tenant}",
                filter_subject=f"{SHADOW_PREFIX}.result.*.{tenant}.>"),
    )  # fmt: skip
    bus = await Bus.connect(nats_server.url, name="ledger-test")
    worker = LedgerWorker(
        bus, store, metrics=LedgerMetrics(provider.get_meter("t")), consumers=consumers,
        retry=RetryPolicy(first_s=0.05, max_s=0.2),
    )  # fmt: skip
    facts = demo_call(replace(demo_call()[0].call, tenant=tenant))

    # the database is locked by another writer: every ledger write fails
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    await bus.ensure_stream(EVENTS)
    await bus.ensure_stream(SHADOW)
    task = asyncio.create_task(worker.run())
    try:
        started = time.monotonic()
        for fact in facts:
            subject, message = event(fact)
            await bus.js_publish(subject, message, msg_id=fact.event_id)
        publish_s = time.monotonic() - started
        assert publish_s < 2.0  # the call's publishes never wait on the ledger
        await until(lambda: worker.write_failures >= 3 and worker.pending == len(facts))
        assert worker.applied == 0  # every event read, held in the buffer, none acked

        blocker.execute("ROLLBACK")  # the database is back
        blocker.close()
        await until(lambda: worker.applied == len(facts))
        with Session(engine) as session:
            costs = session.scalars(select(CostRow).where(CostRow.tenant == tenant)).all()
            call = session.get(CallRow, (tenant, facts[0].call.call_id))
        assert len(costs) == 20
        # the same hand-worked total as test_store: event floats became exact milliseconds
        assert sum((from_picos(c.cost_picos) for c in costs), Decimal(0)) == Decimal("0.0323491")
        assert call is not None
        assert (call.outcome, call.turns) == ("resolved", 5)

        # redelivered events (no Nats-Msg-Id: JetStream stores them again) change nothing
        for fact in facts[:3]:
            subject, message = event(fact)
            await bus.js_publish(subject, message)
        # a payload that is not an event is dropped, the worker goes on
        await bus.js_publish(event_subject("turn", tenant, "bad"), call_pb2.AgentRef(name="x" * 9))
        # a candidate's shadow turn is priced as shadow usage of the candidate version
        shadow = events_pb2.ShadowTurnResult(
            event_id=str(uuid.uuid4()),
            context=call_pb2.CallContext(
                tenant_id=tenant, call_id=facts[0].call.call_id, shadow=True, turn_index=1,
                agent=call_pb2.AgentRef(name="acme-dental", version="1.1.0"),
            ),
            usage=usage_pb2.Usage(input_tokens=1000, output_tokens=100),
        )  # fmt: skip
        await bus.js_publish(
            shadow_subject("result", "acme-dental", "1.1.0", tenant, facts[0].call.call_id), shadow
        )
        await until(lambda: worker.bad_events == 1 and worker.applied == len(facts) + 1)
        await asyncio.sleep(0.5)  # give a wrongly re-applied event time to show
        with Session(engine) as session:
            usage = session.scalar(
                select(func.count()).select_from(UsageRow).where(UsageRow.tenant == tenant)
            )
            shadow_cost = session.scalars(
                select(CostRow).where(CostRow.tenant == tenant, CostRow.shadow.is_(True))
            ).all()
        assert usage == 6 + 1
        # 1000 x 0.00015 / 1000 + 100 x 0.0006 / 1000
        assert sum(from_picos(c.cost_picos) for c in shadow_cost) == Decimal("0.00021")
        assert {c.agent_version for c in shadow_cost} == {"1.1.0"}

        # the rollout operator's cost_per_turn reads these two counters
        exposition = generate_latest(registry_for(reader)).decode()
        live = (
            f'agent="acme-dental",component="llm",shadow="false",tenant="{tenant}",version="1.0.0"'
        )
        assert f"ledger_cost_total{{{live}}}" in exposition
        turns = f'agent="acme-dental",shadow="false",tenant="{tenant}",version="1.0.0"'
        assert f"ledger_turns_total{{{turns}}} 5.0" in exposition
        assert "ledger_write_failures_total" in exposition
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()
        provider.shutdown()
        engine.dispose()
