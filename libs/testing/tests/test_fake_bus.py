"""FakeBus behaves like the real bus for publish/subscribe/request and durable consumers."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from opentelemetry import trace

from trunkline.bus import BusBase, BusMessage, ConsumerSpec, Delivery, NoResponderError, StreamSpec
from trunkline.bus.streams import EVENTS, HITL_ESCALATIONS, event_subject
from trunkline.testing.fakes import FakeBus
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.unit


async def test_publish_subscribe_wildcards_queue_groups_and_trace(
    span_recorder: SpanRecorder,
) -> None:
    bus: BusBase = FakeBus()
    got: list[tuple[str, str, int]] = []

    async def handler(msg: BusMessage) -> None:
        current = trace.get_current_span().get_span_context()
        got.append((msg.subject, msg.decode(StringValue).value, current.trace_id))

    sub = await bus.subscribe("a.*.c", handler)
    queue_hits: list[str] = []

    async def member(msg: BusMessage) -> None:
        queue_hits.append(msg.subject)

    await bus.subscribe("a.>", member, queue="q")
    await bus.subscribe("a.>", member, queue="q")
    with trace.get_tracer("t").start_as_current_span("root") as root:
        await bus.publish("a.b.c", StringValue(value="x"))
    await bus.publish("a.b", StringValue(value="y"))
    assert got == [("a.b.c", "x", root.get_span_context().trace_id)]
    assert queue_hits == ["a.b.c", "a.b"]
    await sub.unsubscribe()
    await bus.publish("a.b.c", StringValue(value="z"))
    assert len(got) == 1


async def test_request_reply_and_no_responder() -> None:
    bus = FakeBus()

    async def echo(msg: BusMessage) -> StringValue:
        return StringValue(value=msg.decode(StringValue).value + "!")

    await bus.subscribe("svc.echo", echo)
    assert (await bus.request("svc.echo", StringValue(value="hi"), StringValue)).value == "hi!"
    with pytest.raises(NoResponderError):
        await bus.request("svc.none", StringValue(value="hi"), StringValue)


async def _take(bus: FakeBus, spec: ConsumerSpec, count: int) -> list[Delivery]:
    taken: list[Delivery] = []
    async with aclosing(bus.durable_messages(spec)) as deliveries:
        async for delivery in deliveries:
            taken.append(delivery)
            if len(taken) == count:
                break
    return taken


async def test_durable_consumer_acks_naks_and_dedup() -> None:
    bus = FakeBus()
    await bus.ensure_stream(EVENTS)
    with pytest.raises(LookupError):
        await bus.js_publish("elsewhere.x", StringValue(value="lost"))
    subjects = [event_subject("escalation", "t1", f"c{i}") for i in range(3)]
    for index, subject in enumerate(subjects):
        await bus.js_publish(subject, StringValue(value=str(index)), msg_id=f"id{index}")
    await bus.js_publish(subjects[0], StringValue(value="0"), msg_id="id0")
    await bus.js_publish(event_subject("turn", "t1", "c0"), StringValue(value="turn"))

    first = await _take(bus, HITL_ESCALATIONS, 2)
    assert [d.decode(StringValue).value for d in first] == ["0", "1"]
    await first[0].ack()
    await first[1].nak()
    rest = await _take(bus, HITL_ESCALATIONS, 2)
    assert [(d.decode(StringValue).value, d.num_delivered) for d in rest] == [("1", 2), ("2", 1)]
    await rest[0].term()
    await rest[1].ack()
    assert len(bus.acked(HITL_ESCALATIONS)) == 3

    # a new message wakes a waiting consumer
    waiting = asyncio.create_task(_take(bus, HITL_ESCALATIONS, 1))
    await bus.js_publish(subjects[1], StringValue(value="late"))
    (late,) = await asyncio.wait_for(waiting, 5)
    assert late.decode(StringValue).value == "late"


def test_event_subject_rejects_wildcards() -> None:
    with pytest.raises(ValueError, match="invalid subject token"):
        event_subject("turn", "t.1", "c")
    spec = StreamSpec("S", ("s.>",))
    assert spec.storage.value == "file"
