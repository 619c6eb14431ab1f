"""JetStream over a real NATS server: streams in code, durable consumers survive restarts."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import aclosing
from datetime import timedelta

import pytest
from google.protobuf.wrappers_pb2 import StringValue

from trunkline.bus import Bus, ConsumerSpec, Delivery, StreamSpec
from trunkline.devservers import NatsServer

pytestmark = pytest.mark.integration


def _specs() -> tuple[StreamSpec, ConsumerSpec]:
    name = f"T{uuid.uuid4().hex[:12].upper()}"
    stream = StreamSpec(name=name, subjects=(f"{name.lower()}.>",), max_age=timedelta(hours=1))
    consumer = ConsumerSpec(
        stream=name,
        durable=f"{name.lower()}-reader",
        filter_subject=f"{name.lower()}.events.>",
        ack_wait=timedelta(seconds=30),
    )
    return stream, consumer


async def _take(bus: Bus, spec: ConsumerSpec, count: int) -> list[Delivery]:
    taken: list[Delivery] = []
    async with aclosing(bus.durable_messages(spec, batch=count)) as deliveries:
        async for delivery in deliveries:
            taken.append(delivery)
            if len(taken) == count:
                break
    return taken


async def test_ensure_stream_is_idempotent_and_updates(nats_server: NatsServer) -> None:
    stream, _ = _specs()
    bus = await Bus.connect(nats_server.url)
    try:
        await bus.ensure_stream(stream)
        await bus.ensure_stream(stream)
        longer = StreamSpec(stream.name, stream.subjects, max_age=timedelta(hours=2))
        await bus.ensure_stream(longer)
        info = await bus.client.jetstream().stream_info(stream.name)
        assert info.config.max_age == 7200
        assert info.config.subjects == list(stream.subjects)
    finally:
        await bus.close()


async def test_unacked_events_survive_consumer_and_server_restart(nats_server: NatsServer) -> None:
    stream, consumer = _specs()
    prefix = stream.subjects[0].removesuffix(">")
    bus = await Bus.connect(nats_server.url, name="producer")
    try:
        await bus.ensure_stream(stream)
        for index in range(10):
            await bus.js_publish(f"{prefix}events.e{index}", StringValue(value=f"e{index}"))
        # not captured by the consumer's filter
        await bus.js_publish(f"{prefix}other", StringValue(value="other"))

        first = await _take(bus, consumer, 4)
        assert [d.decode(StringValue).value for d in first] == ["e0", "e1", "e2", "e3"]
        for delivery in first:
            await delivery.ack()
    finally:
        await bus.close()

    await asyncio.to_thread(nats_server.restart)

    bus = await Bus.connect(nats_server.url, name="consumer-again")
    try:
        rest = await _take(bus, consumer, 6)
        assert [d.decode(StringValue).value for d in rest] == [f"e{i}" for i in range(4, 10)]
        assert all(d.num_delivered == 1 for d in rest)
        # a nak'ed delivery comes back, an acked one does not
        await rest[0].nak()
        for delivery in rest[1:]:
            await delivery.ack()
        again = await _take(bus, consumer, 1)
        assert again[0].decode(StringValue).value == "e4"
        assert again[0].num_delivered == 2
        await again[0].ack()
        pending = await bus.client.jetstream().consumer_info(stream.name, consumer.durable)
        assert pending.num_pending == 0
    finally:
        await bus.close()


async def test_msg_id_deduplicates(nats_server: NatsServer) -> None:
    stream, _ = _specs()
    prefix = stream.subjects[0].removesuffix(">")
    bus = await Bus.connect(nats_server.url)
    try:
        await bus.ensure_stream(stream)
        first = await bus.js_publish(f"{prefix}events.a", StringValue(value="a"), msg_id="m-1")
        second = await bus.js_publish(f"{prefix}events.a", StringValue(value="a"), msg_id="m-1")
        assert first == second
        info = await bus.client.jetstream().stream_info(stream.name)
        assert info.state.messages == 1
    finally:
        await bus.close()
