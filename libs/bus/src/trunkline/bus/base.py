"""The bus interface: implemented by :class:`trunkline.bus.Bus` and the in-memory ``FakeBus``."""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import TypeVar

from google.protobuf.message import Message

from trunkline.bus.delivery import BusMessage, Delivery
from trunkline.bus.specs import ConsumerSpec, StreamSpec

M = TypeVar("M", bound=Message)

Handler = Callable[[BusMessage], Awaitable[Message | None]]
"""Handles one message; a returned message is sent as the reply when the sender asked for one."""


class ConsumerDeletedError(RuntimeError):
    """The durable consumer being read (or its stream) was deleted while it was read.
    :meth:`BusBase.durable_messages` stops with it rather than re-create the consumer behind
    its owner's back (a shadow candidate's consumer is deleted on purpose when the rollout stops
    shadowing it); a caller that wants it back calls ``durable_messages`` again."""


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def unsubscribe(self) -> None: ...


class BusBase(abc.ABC):
    """Publish/subscribe/request over NATS core, and JetStream for events that must survive."""

    @abc.abstractmethod
    async def publish(
        self, subject: str, message: Message, headers: Mapping[str, str] | None = None
    ) -> None:
        """Fire and forget; the current trace context travels in the headers."""

    @abc.abstractmethod
    async def request(
        self,
        subject: str,
        message: Message,
        reply_type: type[M],
        timeout: float = 2.0,  # noqa: ASYNC109
        headers: Mapping[str, str] | None = None,
    ) -> M:
        """Send and wait for one reply of ``reply_type``; TimeoutError when none comes."""

    @abc.abstractmethod
    async def subscribe(
        self, subject: str, handler: Handler, queue: str | None = None
    ) -> Subscription:
        """Run ``handler`` for each message on ``subject`` (wildcards allowed), inside a
        consumer span continuing the publisher's trace. With ``queue``, one member of the
        group gets each message."""

    @abc.abstractmethod
    async def ensure_stream(self, spec: StreamSpec) -> None:
        """Create the stream, or update it to ``spec``; idempotent."""

    @abc.abstractmethod
    async def js_publish(
        self,
        subject: str,
        message: Message,
        headers: Mapping[str, str] | None = None,
        msg_id: str | None = None,
    ) -> int:
        """Publish into a stream and wait for it to be stored; returns the stream sequence.
        A repeated ``msg_id`` within the stream's duplicate window is stored once."""

    @abc.abstractmethod
    def durable_messages(
        self, spec: ConsumerSpec, batch: int = 10
    ) -> AsyncGenerator[Delivery, None]:
        """Messages of the durable consumer ``spec`` (created if missing), not yet acked,
        forever; stop by breaking out of the loop. Raises :class:`ConsumerDeletedError` when
        the consumer is deleted while it is read."""

    @abc.abstractmethod
    async def close(self) -> None: ...
