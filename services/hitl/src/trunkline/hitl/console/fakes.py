"""In-memory stand-ins for the console's tests: an event feed and a signaling peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from trunkline.hitl.console.board import KINDS, EventMessage
from trunkline.hitl.console.feed import EventFeed, FeedEvent, subject_filter
from trunkline.hitl.console.signaling import Signaling, SignalingError

_KIND_OF = {message_type: kind for kind, message_type in KINDS.items()}


class MemoryFeed(EventFeed):
    """Events kept in a list, filtered like the JetStream subjects; with ``follow`` the
    iterator waits for more after the last, else it ends there."""

    def __init__(self, follow: bool = False) -> None:
        self.events_: list[FeedEvent] = []
        self.follow = follow
        self._added = asyncio.Condition()

    async def add(self, message: EventMessage) -> None:
        async with self._added:
            self.events_.append(FeedEvent(_KIND_OF[type(message)], message))
            self._added.notify_all()

    async def events(
        self, tenant: str, since: datetime, call_id: str | None = None
    ) -> AsyncIterator[FeedEvent]:
        subject_filter(tenant, call_id)  # same validation as the real feed
        position = 0
        while True:
            while position < len(self.events_):
                event = self.events_[position]
                position += 1
                context = event.message.context
                if context.tenant_id == tenant and call_id in (None, context.call_id):
                    yield event
            if not self.follow:
                return
            async with self._added:
                await self._added.wait_for(lambda p=position: len(self.events_) > p)  # type: ignore[misc]

    async def call_exists(self, tenant: str, call_id: str) -> bool:
        return any(
            event.kind == "call_started"
            and event.message.context.tenant_id == tenant
            and event.message.context.call_id == call_id
            for event in self.events_
        )


class EchoSignaling(Signaling):
    """Records each offer; answers with a canned SDP, or fails with ``error``."""

    def __init__(self, error: SignalingError | None = None) -> None:
        self.offers: list[dict[str, Any]] = []
        self.error = error

    async def answer(self, offer: dict[str, Any]) -> dict[str, str]:
        self.offers.append(offer)
        if self.error is not None:
            raise self.error
        return {"sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", "type": "answer"}
