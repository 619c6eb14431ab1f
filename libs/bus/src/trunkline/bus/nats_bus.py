"""The NATS/JetStream implementation of :class:`~trunkline.bus.base.BusBase`."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from trunkline.bus.base import BusBase, ConsumerDeletedError, Handler, Subscription
from trunkline.bus.delivery import BusMessage, Delivery, decode
from trunkline.bus.specs import ConsumerSpec, StreamSpec
from trunkline.telemetry.propagation import inject_headers

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

MSG_ID_HEADER = "Nats-Msg-Id"


class NoResponderError(ConnectionError):
    """A request found nobody subscribed to its subject."""


def backoff_delay(attempt: int, base: float, cap: float, jitter: float = 0.2) -> float:
    """Exponential backoff for reconnect ``attempt`` (0, 1, ...): base * 2^n, capped, +-jitter."""
    delay: float = min(cap, base * (2 ** min(attempt, 30)))
    return delay * (1 + random.uniform(-jitter, jitter))  # jitter, not cryptographic


class _NatsSubscription(Subscription):
    def __init__(self, sub: Any) -> None:
        self._sub = sub

    async def unsubscribe(self) -> None:
        await self._sub.unsubscribe()


def tls_options(ca_file: Path | None, creds_file: Path | None) -> dict[str, Any]:
    """nats-py connect options for a CA file (TLS) and a credentials file; missing files fail
    here with their path, not later inside the reconnect loop."""
    options: dict[str, Any] = {}
    if ca_file is not None:
        if not ca_file.is_file():
            raise FileNotFoundError(f"NATS CA file {ca_file} does not exist")
        options["tls"] = ssl.create_default_context(cafile=str(ca_file))
    if creds_file is not None:
        if not creds_file.is_file():
            raise FileNotFoundError(f"NATS credentials file {creds_file} does not exist")
        options["user_credentials"] = str(creds_file)
    return options


class Bus(BusBase):
    """A NATS connection that reconnects forever and carries the trace in message headers."""

    def __init__(self, client: NatsClient, tracer_provider: trace.TracerProvider | None = None):
        self._nc = client
        self._js = client.jetstream()
        self._tracer = trace.get_tracer("trunkline.bus", tracer_provider=tracer_provider)
        self._connected = asyncio.Event()
        if client.is_connected:
            self._connected.set()

    @classmethod
    async def connect(
        cls,
        servers: str | list[str],
        *,
        name: str = "trunkline",
        connect_timeout: float = 2.0,
        reconnect_base: float = 0.1,
        reconnect_max: float = 2.0,
        pending_bytes: int = 8 * 1024 * 1024,
        tracer_provider: trace.TracerProvider | None = None,
        tls_ca_file: Path | None = None,
        creds_file: Path | None = None,
    ) -> Bus:
        """Connect, retrying forever with exponential backoff (also for the first connect).

        ``tls_ca_file``: verify the server's TLS certificate against this CA (``tls://`` URLs;
        the system CAs when None). ``creds_file``: a NATS credentials file (user JWT + nkey seed).

        While disconnected, publishes are buffered (up to ``pending_bytes``) and sent after
        the reconnect; subscriptions are restored by the client.
        """
        holder: list[Bus] = []

        def pick_server(servers_: list[Any], _info: dict[str, Any]) -> tuple[Any, float]:
            server = min(servers_, key=lambda s: s.reconnects)
            return server, backoff_delay(server.reconnects, reconnect_base, reconnect_max)

        async def on_disconnect() -> None:
            if not client.is_closed:
                log.warning("bus %s disconnected from NATS; reconnecting", name)
            if holder:
                holder[0]._connected.clear()

        async def on_reconnect() -> None:
            log.info("bus %s reconnected to NATS at %s", name, client.connected_url)
            if holder:
                holder[0]._connected.set()

        async def on_error(exc: Exception) -> None:
            log.debug("bus %s: NATS client error: %r", name, exc)

        async def on_closed() -> None:
            log.info("bus %s closed", name)

        client = NatsClient()
        await client.connect(
            servers,
            name=name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            connect_timeout=connect_timeout,  # type: ignore[arg-type]
            reconnect_time_wait=reconnect_base,  # type: ignore[arg-type]
            reconnect_to_server_handler=pick_server,
            pending_size=pending_bytes,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            error_cb=on_error,
            closed_cb=on_closed,
            **tls_options(tls_ca_file, creds_file),
        )
        bus = cls(client, tracer_provider)
        holder.append(bus)
        return bus

    @property
    def client(self) -> NatsClient:
        """The underlying nats-py client, for what this class does not wrap."""
        return self._nc

    @property
    def is_connected(self) -> bool:
        return bool(self._nc.is_connected)

    async def wait_connected(self) -> None:
        await self._connected.wait()

    @contextmanager
    def _producer_span(self, subject: str, operation: str) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            f"{subject} {operation}",
            kind=SpanKind.PRODUCER if operation == "publish" else SpanKind.CLIENT,
            attributes={"messaging.system": "nats", "messaging.destination.name": subject},
        ) as span:
            yield span

    async def publish(
        self, subject: str, message: Message, headers: Mapping[str, str] | None = None
    ) -> None:
        with self._producer_span(subject, "publish"):
            await self._nc.publish(
                subject, message.SerializeToString(), headers=inject_headers(headers)
            )

    async def request(
        self,
        subject: str,
        message: Message,
        reply_type: type[M],
        timeout: float = 2.0,  # noqa: ASYNC109
        headers: Mapping[str, str] | None = None,
    ) -> M:
        with self._producer_span(subject, "request"):
            try:
                reply = await self._nc.request(
                    subject,
                    message.SerializeToString(),
                    timeout=timeout,
                    headers=inject_headers(headers),
                )
            except nats.errors.NoRespondersError as exc:
                raise NoResponderError(f"nobody answers on {subject!r}") from exc
            except nats.errors.TimeoutError as exc:
                raise TimeoutError(f"no reply on {subject!r} within {timeout}s") from exc
        return decode(reply.data, reply_type, subject)

    async def subscribe(
        self, subject: str, handler: Handler, queue: str | None = None
    ) -> Subscription:
        async def on_message(msg: Msg) -> None:
            incoming = BusMessage(msg.subject, msg.data, dict(msg.headers or {}), msg.reply or None)
            with self._tracer.start_as_current_span(
                f"{msg.subject} process",
                context=incoming.context,
                kind=SpanKind.CONSUMER,
                attributes={"messaging.system": "nats", "messaging.destination.name": subject},
            ):
                try:
                    answer = await handler(incoming)
                except Exception:
                    log.exception("handler for %s failed", msg.subject)
                    return
                if answer is not None and incoming.reply:
                    await self._nc.publish(
                        incoming.reply, answer.SerializeToString(), headers=inject_headers()
                    )

        sub = await self._nc.subscribe(subject, queue=queue or "", cb=on_message)
        return _NatsSubscription(sub)

    async def ensure_stream(self, spec: StreamSpec) -> None:
        config = api.StreamConfig(
            name=spec.name,
            description=spec.description or None,
            subjects=list(spec.subjects),
            retention=api.RetentionPolicy(spec.retention.value),
            storage=api.StorageType(spec.storage.value),
            max_age=spec.max_age.total_seconds(),
            duplicate_window=spec.duplicate_window.total_seconds(),
        )
        try:
            await self._js.stream_info(spec.name)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(config)
            log.info("created stream %s on %s", spec.name, ", ".join(spec.subjects))
            return
        await self._js.update_stream(config)

    async def ensure_consumer(self, spec: ConsumerSpec) -> None:
        """Create the durable consumer, or update it to ``spec``; idempotent."""
        config = api.ConsumerConfig(
            name=spec.durable,
            durable_name=spec.durable,
            description=spec.description or None,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            filter_subject=spec.filter_subject,
            ack_wait=spec.ack_wait.total_seconds(),
            max_deliver=spec.max_deliver,
        )
        await self._js.add_consumer(spec.stream, config)

    async def _consumer_exists(self, spec: ConsumerSpec) -> bool:
        """False when the consumer or its stream is known to be gone (True when unsure)."""
        try:
            await self._js.consumer_info(spec.stream, spec.durable)
        except nats.js.errors.NotFoundError:
            return False
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
            return True
        return True

    async def js_publish(
        self,
        subject: str,
        message: Message,
        headers: Mapping[str, str] | None = None,
        msg_id: str | None = None,
    ) -> int:
        with self._producer_span(subject, "publish") as span:
            carried = inject_headers(headers)
            if msg_id is not None:
                carried[MSG_ID_HEADER] = msg_id
            ack = await self._js.publish(subject, message.SerializeToString(), headers=carried)
            span.set_attribute("messaging.nats.stream_sequence", ack.seq)
            return int(ack.seq)

    async def durable_messages(
        self, spec: ConsumerSpec, batch: int = 10, fetch_wait: float = 1.0
    ) -> AsyncGenerator[Delivery, None]:
        """Pull from the durable consumer; survives reconnects. Wrap in ``contextlib.aclosing``
        to release the pull subscription as soon as the loop ends."""
        await self.ensure_consumer(spec)
        sub = await self._js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
        try:
            while True:
                try:
                    messages = await sub.fetch(batch, timeout=fetch_wait)
                except TimeoutError:  # nats.errors.TimeoutError, and the bare asyncio one
                    continue  # nats-py's fetch raises when a busy loop ate its whole deadline
                except nats.js.errors.NotFoundError:
                    await self.ensure_consumer(spec)
                    continue
                except nats.js.errors.ServiceUnavailableError:
                    # No responder for the pull: the consumer (or its stream) is gone, or
                    # JetStream is briefly unavailable (then wait, never spin on the 503s).
                    if not await self._consumer_exists(spec):
                        raise ConsumerDeletedError(
                            f"durable consumer {spec.durable!r} of stream {spec.stream!r} was "
                            "deleted while it was read; not re-created (read it again to "
                            "re-create it)"
                        ) from None
                    await asyncio.sleep(fetch_wait)
                    continue
                except (nats.errors.Error, nats.js.errors.Error) as exc:
                    if self._nc.is_closed:
                        raise
                    log.info("fetch from %s paused: %r", spec.durable, exc)
                    await self._connected.wait()
                    continue
                for msg in messages:
                    yield _delivery(msg)
        finally:
            if not self._nc.is_closed:
                await sub.unsubscribe()

    async def close(self) -> None:
        if not self._nc.is_closed:
            await self._nc.close()


def _delivery(msg: Msg) -> Delivery:
    async def ack() -> None:
        await msg.ack_sync()

    async def nak(delay: float | None) -> None:
        await msg.nak(delay=delay)

    async def term() -> None:
        await msg.term()

    metadata = msg.metadata
    return Delivery(
        subject=msg.subject,
        data=msg.data,
        headers=dict(msg.headers or {}),
        num_delivered=int(metadata.num_delivered or 1),
        stream_sequence=int(metadata.sequence.stream) if metadata.sequence else 0,
        _ack=ack,
        _nak=nak,
        _term=term,
    )
