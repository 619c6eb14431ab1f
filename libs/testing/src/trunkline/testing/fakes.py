"""In-memory fakes of the platform's interfaces, for unit tests."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from trunkline.bus import (
    BusBase,
    BusMessage,
    ConsumerSpec,
    Delivery,
    Handler,
    NoResponderError,
    StreamSpec,
    Subscription,
    decode,
    subject_matches,
)
from trunkline.telemetry.propagation import inject_headers

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Published:
    """One message that went through the fake bus (core or JetStream)."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    jetstream: bool = False

    def decode(self, message_type: type[M]) -> M:
        return decode(self.data, message_type, self.subject)


@dataclass
class _Stored:
    sequence: int
    published: Published


@dataclass
class _Consumer:
    spec: ConsumerSpec
    acked: set[int] = field(default_factory=set)
    delivered: dict[int, int] = field(default_factory=dict)
    in_flight: set[int] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class _FakeSubscription(Subscription):
    def __init__(self, bus: FakeBus, entry: tuple[str, Handler, str | None]) -> None:
        self._bus = bus
        self._entry = entry

    async def unsubscribe(self) -> None:
        if self._entry in self._bus._subscribers:
            self._bus._subscribers.remove(self._entry)


class FakeBus(BusBase):
    """Delivers synchronously to in-memory subscribers; keeps every message in ``published``.

    JetStream: streams capture subjects like the real server (messages on no stream's
    subjects are rejected), durable consumers remember acks, ``nak`` redelivers at once (the
    delay is not simulated), ``term`` drops, and a delivery never settled stays in flight (no
    ``ack_wait`` timer); duplicate ``msg_id`` values are stored once.
    """

    def __init__(self) -> None:
        self.published: list[Published] = []
        self.streams: dict[str, StreamSpec] = {}
        self._subscribers: list[tuple[str, Handler, str | None]] = []
        self._stored: dict[str, list[_Stored]] = {}
        self._consumers: dict[tuple[str, str], _Consumer] = {}
        self._msg_ids: dict[str, set[str]] = {}
        self._sequence = itertools.count(1)
        self._queue_turn = itertools.count()
        self.closed = False
        self._tracer = trace.get_tracer("trunkline.testing.fakebus")

    def on(self, subject: str) -> list[Published]:
        """What was published on subjects matching ``subject`` (wildcards allowed)."""
        return [p for p in self.published if subject_matches(subject, p.subject)]

    async def publish(
        self, subject: str, message: Message, headers: Mapping[str, str] | None = None
    ) -> None:
        self._check_open()
        with self._tracer.start_as_current_span(f"{subject} publish", kind=SpanKind.PRODUCER):
            item = Published(subject, message.SerializeToString(), inject_headers(headers))
        self.published.append(item)
        await self._deliver(item, reply=None)

    async def request(
        self,
        subject: str,
        message: Message,
        reply_type: type[M],
        timeout: float = 2.0,  # noqa: ASYNC109
        headers: Mapping[str, str] | None = None,
    ) -> M:
        self._check_open()
        item = Published(subject, message.SerializeToString(), inject_headers(headers))
        self.published.append(item)
        answers = await asyncio.wait_for(self._deliver(item, reply="_INBOX.fake"), timeout)
        if not answers:
            raise NoResponderError(f"nobody answers on {subject!r}")
        return decode(answers[0].SerializeToString(), reply_type, subject)

    async def _deliver(self, item: Published, reply: str | None) -> list[Message]:
        answers: list[Message] = []
        picked_queues: set[str] = set()
        matching = [entry for entry in self._subscribers if subject_matches(entry[0], item.subject)]
        for pattern, handler, queue in matching:
            if queue is not None:
                if queue in picked_queues:
                    continue
                members = [e for e in matching if e[2] == queue]
                if members[next(self._queue_turn) % len(members)] != (pattern, handler, queue):
                    continue
                picked_queues.add(queue)
            incoming = BusMessage(item.subject, item.data, dict(item.headers), reply)
            with self._tracer.start_as_current_span(
                f"{item.subject} process", context=incoming.context, kind=SpanKind.CONSUMER
            ):
                answer = await handler(incoming)
            if answer is not None:
                answers.append(answer)
        return answers

    async def subscribe(
        self, subject: str, handler: Handler, queue: str | None = None
    ) -> Subscription:
        self._check_open()
        entry = (subject, handler, queue)
        self._subscribers.append(entry)
        return _FakeSubscription(self, entry)

    async def ensure_stream(self, spec: StreamSpec) -> None:
        self.streams[spec.name] = spec
        self._stored.setdefault(spec.name, [])
        self._msg_ids.setdefault(spec.name, set())

    async def js_publish(
        self,
        subject: str,
        message: Message,
        headers: Mapping[str, str] | None = None,
        msg_id: str | None = None,
    ) -> int:
        self._check_open()
        stream = next(
            (
                s
                for s in self.streams.values()
                if any(subject_matches(p, subject) for p in s.subjects)
            ),
            None,
        )
        if stream is None:
            raise LookupError(f"no stream captures {subject!r}")
        stored = self._stored[stream.name]
        if msg_id is not None and msg_id in self._msg_ids[stream.name]:
            return stored[-1].sequence if stored else 0
        with self._tracer.start_as_current_span(f"{subject} publish", kind=SpanKind.PRODUCER):
            item = Published(subject, message.SerializeToString(), inject_headers(headers), True)
        sequence = next(self._sequence)
        stored.append(_Stored(sequence, item))
        if msg_id is not None:
            self._msg_ids[stream.name].add(msg_id)
        self.published.append(item)
        for consumer in self._consumers.values():
            if consumer.spec.stream == stream.name:
                consumer.changed.set()
        await self._deliver(item, reply=None)
        return sequence

    def _consumer(self, spec: ConsumerSpec) -> _Consumer:
        if spec.stream not in self.streams:
            raise LookupError(f"stream {spec.stream!r} does not exist")
        key = (spec.stream, spec.durable)
        if key not in self._consumers:
            self._consumers[key] = _Consumer(spec)
        return self._consumers[key]

    def _pending(self, consumer: _Consumer) -> list[_Stored]:
        spec = consumer.spec
        return [
            s
            for s in self._stored[spec.stream]
            if s.sequence not in consumer.acked
            and (spec.max_deliver < 0 or consumer.delivered.get(s.sequence, 0) < spec.max_deliver)
            and (
                spec.filter_subject is None
                or subject_matches(spec.filter_subject, s.published.subject)
            )
        ]

    async def durable_messages(
        self, spec: ConsumerSpec, batch: int = 10
    ) -> AsyncGenerator[Delivery, None]:
        consumer = self._consumer(spec)
        while not self.closed:
            consumer.changed.clear()
            pending = [s for s in self._pending(consumer) if s.sequence not in consumer.in_flight]
            if not pending:
                await consumer.changed.wait()
                continue
            for stored in pending[:batch]:
                consumer.delivered[stored.sequence] = consumer.delivered.get(stored.sequence, 0) + 1
                yield self._delivery(consumer, stored)

    def _delivery(self, consumer: _Consumer, stored: _Stored) -> Delivery:
        sequence = stored.sequence
        inflight = consumer.in_flight
        inflight.add(sequence)

        async def ack() -> None:
            inflight.discard(sequence)
            consumer.acked.add(sequence)

        async def nak(delay: float | None) -> None:
            inflight.discard(sequence)
            consumer.changed.set()

        async def term() -> None:
            inflight.discard(sequence)
            consumer.acked.add(sequence)

        return Delivery(
            subject=stored.published.subject,
            data=stored.published.data,
            headers=dict(stored.published.headers),
            num_delivered=consumer.delivered[sequence],
            stream_sequence=sequence,
            _ack=ack,
            _nak=nak,
            _term=term,
        )

    def acked(self, spec: ConsumerSpec) -> set[int]:
        """Stream sequences the durable ``spec`` acked (or terminated)."""
        return set(self._consumer(spec).acked)

    async def close(self) -> None:
        self.closed = True
        for consumer in self._consumers.values():
            consumer.changed.set()

    def _check_open(self) -> None:
        if self.closed:
            raise ConnectionError("bus is closed")
