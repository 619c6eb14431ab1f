"""A durable consumer deleted while it is read (a stopped shadow candidate's, or by hand) ends
the read with a clear error instead of spinning on JetStream's 503 answers, and is not
re-created behind its owner's back; reading again re-creates it. Real NATS server."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import aclosing
from datetime import timedelta

import nats.js.errors
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from trunkline.bus import Bus, ConsumerDeletedError, ConsumerSpec, Delivery, StreamSpec
from trunkline.devservers import NatsServer

pytestmark = pytest.mark.integration


async def test_a_deleted_consumer_ends_the_read_and_is_not_recreated(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"T{uuid.uuid4().hex[:12].upper()}"
    stream = StreamSpec(name=name, subjects=(f"{name.lower()}.>",), max_age=timedelta(hours=1))
    consumer = ConsumerSpec(
        stream=name, durable=f"{name.lower()}-reader", filter_subject=f"{name.lower()}.events.>"
    )
    subject = f"{name.lower()}.events.one"
    bus = await Bus.connect(nats_server.url)
    js = bus.client.jetstream()
    try:
        await bus.ensure_stream(stream)
        await bus.js_publish(subject, StringValue(value="first"))
        got: list[str] = []

        async def read() -> None:
            async with aclosing(bus.durable_messages(consumer, fetch_wait=0.2)) as deliveries:
                async for delivery in deliveries:
                    got.append(delivery.decode(StringValue).value)
                    await delivery.ack()
                    await js.delete_consumer(name, consumer.durable)  # e.g. the operator

        caplog.set_level(logging.INFO, logger="trunkline.bus.nats_bus")
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConsumerDeletedError, match=rf"{consumer.durable}.*{name}.*deleted"):
            await asyncio.wait_for(read(), 10)
        assert asyncio.get_running_loop().time() - started < 5
        assert got == ["first"]
        assert not [r for r in caplog.records if "paused" in r.getMessage()]  # no 503 loop
        with pytest.raises(nats.js.errors.NotFoundError):  # not re-created by the read
            await js.consumer_info(name, consumer.durable)

        await bus.js_publish(subject, StringValue(value="second"))
        taken: list[Delivery] = []
        async with aclosing(bus.durable_messages(consumer, fetch_wait=0.2)) as deliveries:
            async for delivery in deliveries:  # reading again re-creates it, from the start
                taken.append(delivery)
                await delivery.ack()
                if len(taken) == 2:
                    break
        assert [d.decode(StringValue).value for d in taken] == ["first", "second"]
    finally:
        await bus.close()
