"""One message from a durable JetStream consumer, or from a plain subscription."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from trunkline.telemetry.propagation import extract_context

M = TypeVar("M", bound=Message)


class BadPayloadError(ValueError):
    """The payload is not a valid message of the expected type."""


def decode(data: bytes, message_type: type[M], subject: str = "") -> M:
    """Parse ``data`` as ``message_type``; a clear error instead of a half-filled message."""
    message = message_type()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        name = message_type.DESCRIPTOR.full_name
        raise BadPayloadError(f"payload on {subject!r} is not a valid {name}: {exc}") from exc
    return message


@dataclass(frozen=True)
class BusMessage:
    """A message given to a ``subscribe`` handler."""

    subject: str
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    reply: str | None = None

    @property
    def context(self) -> Context:
        """The publisher's trace context."""
        return extract_context(self.headers)

    def decode(self, message_type: type[M]) -> M:
        return decode(self.data, message_type, self.subject)


AckAction = Callable[[], Awaitable[None]]
NakAction = Callable[[float | None], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """A JetStream message from a durable consumer; settle it with ack, nak or term."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    num_delivered: int
    stream_sequence: int
    _ack: AckAction = field(repr=False)
    _nak: NakAction = field(repr=False)
    _term: AckAction = field(repr=False)

    @property
    def context(self) -> Context:
        """The publisher's trace context."""
        return extract_context(self.headers)

    def decode(self, message_type: type[M]) -> M:
        return decode(self.data, message_type, self.subject)

    async def ack(self) -> None:
        """Done: never deliver it again."""
        await self._ack()

    async def nak(self, delay: float | None = None) -> None:
        """Not now: deliver it again (after ``delay`` seconds)."""
        await self._nak(delay)

    async def term(self) -> None:
        """Never process it: no redelivery (poison message)."""
        await self._term()

    @contextmanager
    def process_span(self, tracer: trace.Tracer | None = None) -> Iterator[Span]:
        """A consumer span, child of the publisher's, current for the block."""
        tracer = tracer or trace.get_tracer("trunkline.bus")
        with tracer.start_as_current_span(
            f"{self.subject} process",
            context=self.context,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": self.subject,
                "messaging.nats.num_delivered": self.num_delivered,
            },
        ) as span:
            yield span
