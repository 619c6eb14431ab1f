"""The console's event feed: one tenant's call events from the ``EVENTS`` JetStream stream.

Each browser view (the calls list, one call's live transcript) reads its own ordered, ephemeral
JetStream consumer filtered to the operator's tenant — ``trunkline.events.*.<tenant>.>`` or one
call's ``trunkline.events.*.<tenant>.<call_id>`` — from a start time, so a page opened mid-call
first replays what was said, then follows live. The tenant always comes from the operator's
session, never from the request, and it is part of the subject filter: another tenant's events
never reach the process's view code at all.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import api

from trunkline.bus import BadPayloadError, decode
from trunkline.bus.streams import EVENTS, EVENTS_PREFIX
from trunkline.hitl.console.board import KINDS, EventMessage

log = logging.getLogger(__name__)


def valid_token(token: str) -> bool:
    """True when ``token`` can be one NATS subject token (tenant, call id)."""
    return bool(token) and len(token) <= 200 and not any(c in token for c in ".*> \t\r\n")


@dataclass(frozen=True)
class FeedEvent:
    kind: str
    message: EventMessage


class EventFeed(abc.ABC):
    """Reads a tenant's events; implemented over JetStream (and by test fakes)."""

    @abc.abstractmethod
    def events(
        self, tenant: str, since: datetime, call_id: str | None = None
    ) -> AsyncIterator[FeedEvent]:
        """The tenant's events (one call's when ``call_id``) from ``since`` on, then live,
        until the consumer stops iterating."""

    @abc.abstractmethod
    async def call_exists(self, tenant: str, call_id: str) -> bool:
        """True when ``call_id`` is a call of ``tenant`` (its call_started event is kept)."""


def subject_filter(tenant: str, call_id: str | None = None) -> str:
    if not valid_token(tenant) or (call_id is not None and not valid_token(call_id)):
        raise ValueError(f"invalid tenant or call id: {tenant!r} {call_id!r}")
    return f"{EVENTS_PREFIX}.*.{tenant}.{call_id or '>'}"


class JetStreamFeed(EventFeed):
    """Ordered ephemeral consumers on the ``EVENTS`` stream, one per reader."""

    def __init__(self, client: NatsClient, idle_wait: float = 1.0) -> None:
        self._client = client
        self._idle_wait = idle_wait

    async def events(
        self, tenant: str, since: datetime, call_id: str | None = None
    ) -> AsyncIterator[FeedEvent]:
        js = self._client.jetstream()
        while True:
            try:
                subscription = await js.subscribe(
                    subject_filter(tenant, call_id),
                    stream=EVENTS.name,
                    ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.BY_START_TIME,
                    config=api.ConsumerConfig(opt_start_time=since),
                    inactive_threshold=30.0,
                )
                break
            except nats.js.errors.NotFoundError:
                # No EVENTS stream yet (nothing published on a fresh NATS): wait for it.
                await asyncio.sleep(self._idle_wait)
        try:
            while True:
                try:
                    msg = await subscription.next_msg(timeout=self._idle_wait)
                except nats.errors.TimeoutError:
                    continue
                except nats.errors.ConnectionClosedError:
                    return  # the process is shutting down
                event = _event(msg.subject, msg.data)
                if event is not None:
                    yield event
        finally:
            if not self._client.is_closed:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()

    async def call_exists(self, tenant: str, call_id: str) -> bool:
        if not valid_token(tenant) or not valid_token(call_id):
            return False
        js = self._client.jetstream()
        try:
            await js.get_last_msg(EVENTS.name, f"{EVENTS_PREFIX}.call_started.{tenant}.{call_id}")
        except nats.js.errors.NotFoundError:
            return False
        return True


def _event(subject: str, data: bytes) -> FeedEvent | None:
    parts = subject.split(".")
    kind = parts[2] if len(parts) == 5 else ""
    message_type = KINDS.get(kind)
    if message_type is None:
        return None  # a kind the console does not show (cost entries)
    try:
        return FeedEvent(kind, decode(data, message_type, subject))
    except BadPayloadError as exc:
        log.warning("console feed skips a bad event: %s", exc)
        return None
