"""Bus over a real NATS server: publish/subscribe/request carry the trace; reconnects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from trunkline.bus import Bus, BusMessage, NoResponderError
from trunkline.devservers import NatsServer
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus(nats_server: NatsServer, span_recorder: SpanRecorder) -> AsyncIterator[Bus]:
    connected = await Bus.connect(
        nats_server.url, name="test", tracer_provider=span_recorder.provider
    )
    yield connected
    await connected.close()


def _subject() -> str:
    return f"test.{uuid.uuid4().hex}"


async def test_subscriber_continues_the_publishers_trace(
    bus: Bus, span_recorder: SpanRecorder
) -> None:
    subject = _subject()
    seen: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    async def handler(msg: BusMessage) -> None:
        span = trace.get_current_span().get_span_context()
        await seen.put((msg.decode(StringValue).value, span.trace_id))

    await bus.subscribe(subject, handler)
    with trace.get_tracer("test").start_as_current_span("root") as root:
        await bus.publish(subject, StringValue(value="hello"))
    value, trace_id = await asyncio.wait_for(seen.get(), 5)
    assert value == "hello"
    assert trace_id == root.get_span_context().trace_id

    producer = span_recorder.named(f"{subject} publish")
    consumer = span_recorder.named(f"{subject} process")
    assert producer.kind is SpanKind.PRODUCER
    assert consumer.kind is SpanKind.CONSUMER
    assert producer.parent is not None
    assert producer.parent.span_id == root.get_span_context().span_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id


async def test_request_reply_and_no_responder(bus: Bus) -> None:
    subject = _subject()

    async def upper(msg: BusMessage) -> StringValue:
        return StringValue(value=msg.decode(StringValue).value.upper())

    await bus.subscribe(subject, upper, queue="workers")
    reply = await bus.request(subject, StringValue(value="abc"), StringValue, timeout=5)
    assert reply.value == "ABC"
    with pytest.raises(NoResponderError):
        await bus.request(_subject(), StringValue(value="x"), StringValue, timeout=5)


async def test_publish_succeeds_after_server_restart(nats_server: NatsServer) -> None:
    subject = _subject()
    publisher = await Bus.connect(nats_server.url, name="publisher")
    listener = await Bus.connect(nats_server.url, name="listener")
    got: asyncio.Queue[str] = asyncio.Queue()

    async def handler(msg: BusMessage) -> None:
        await got.put(msg.decode(StringValue).value)

    try:
        await listener.subscribe(subject, handler)
        await listener.client.flush()
        # Core NATS delivers at most once: the baseline is probed until the subscription is
        # seen live (it failed once in CI under load), then one publish must cross the restart.
        assert await _first_delivery(publisher, subject, got) == "before"

        await asyncio.to_thread(nats_server.restart)
        await asyncio.wait_for(publisher.wait_connected(), 15)
        await asyncio.wait_for(listener.wait_connected(), 15)
        await listener.client.flush()
        while not got.empty():  # a repeated baseline probe that also arrived
            assert got.get_nowait() == "before"

        await publisher.publish(subject, StringValue(value="after"))
        assert await asyncio.wait_for(got.get(), 10) == "after"
        assert publisher.is_connected
    finally:
        await publisher.close()
        await listener.close()


async def _first_delivery(bus: Bus, subject: str, got: asyncio.Queue[str]) -> str:
    for _ in range(10):
        await bus.publish(subject, StringValue(value="before"))
        await bus.client.flush()
        try:
            return await asyncio.wait_for(got.get(), 1)
        except TimeoutError:
            continue
    raise AssertionError(f"nothing delivered on {subject} in 10 tries")
