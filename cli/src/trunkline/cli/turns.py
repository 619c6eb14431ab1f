"""What the agent said, from the gateway's ``turn.completed`` events on NATS.

:class:`TurnFeed` subscribes to ``trunkline.events.turn.<tenant>.*`` and keeps each call's
``TurnCompleted`` events in arrival order; its :meth:`TurnFeed.agent_text` is the simulated
caller's ``agent_text`` hook. The greeting is a turn with no caller transcript; caller turn ``i``
is the ``i``-th turn after it that heard the caller.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from trunkline.bus import BusBase, BusMessage, Subscription
from trunkline.bus.streams import EVENTS_PREFIX
from trunkline.proto.events.v1 import events_pb2

STAGES = (
    ("turn.endpointing", "endpoint"),
    ("stt.final", "stt"),
    ("context.resolve", "context"),
    ("llm.prompt_compile", "prompt"),
    ("llm.time_to_first_token", "llm ttft"),
    ("tts.time_to_first_audio", "tts ttfa"),
    ("turn.response", "v2v@gw"),
)
"""``TurnCompleted.stages`` names and their short column titles, in pipeline order."""


def stage_ms(event: events_pb2.TurnCompleted) -> dict[str, float]:
    """The event's stage timings in milliseconds, by stage name."""
    return {s.stage: s.duration.seconds * 1000 + s.duration.nanos / 1e6 for s in event.stages}


@dataclass(frozen=True, slots=True)
class HeardTurn:
    caller: str  # what STT heard
    agent: str  # what the caller heard of the reply
    generated: str  # what the LLM produced
    truncated: bool
    stages_ms: dict[str, float]
    source: str = ""  # where the reply came from: "llm", "knowledge", "cache", "goodbye", ...
    grounded: bool = False  # every spoken clause passed the grounding guard
    hang_up: bool = False  # the agent ended the call after this reply


def reply_source(event: events_pb2.TurnCompleted) -> str:
    """``REPLY_SOURCE_KNOWLEDGE`` -> ``knowledge`` ("" when unspecified)."""
    if not event.reply_source:
        return ""
    return events_pb2.ReplySource.Name(event.reply_source).removeprefix("REPLY_SOURCE_").lower()


def heard(event: events_pb2.TurnCompleted) -> HeardTurn:
    return HeardTurn(
        caller=event.caller_transcript,
        agent=event.agent_reply,
        generated=event.agent_reply_generated,
        truncated=event.truncated,
        stages_ms=stage_ms(event),
        source=reply_source(event),
        grounded=event.grounded,
        hang_up=event.hang_up,
    )


class TurnFeed:
    """The ``turn.completed`` events of a tenant's calls, as they arrive."""

    def __init__(self, bus: BusBase, tenant: str) -> None:
        self.bus = bus
        self.tenant = tenant
        self.events: dict[str, list[events_pb2.TurnCompleted]] = defaultdict(list)
        self._arrived = asyncio.Event()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        subject = f"{EVENTS_PREFIX}.turn.{self.tenant}.*"
        self._subscription = await self.bus.subscribe(subject, self._on_event)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_event(self, message: BusMessage) -> None:
        event = message.decode(events_pb2.TurnCompleted)
        self.events[event.context.call_id].append(event)
        self._arrived.set()

    def turns(self, call_id: str) -> list[HeardTurn]:
        """Every turn of the call so far, the greeting included."""
        return [heard(e) for e in self.events.get(call_id, [])]

    def caller_turns(self, call_id: str) -> list[HeardTurn]:
        """The turns that answered the caller (the greeting and empty turns left out)."""
        return [t for t in self.turns(call_id) if t.caller]

    async def wait_for(self, call_id: str, count: int, timeout_s: float) -> list[HeardTurn]:
        """The call's turns once there are at least ``count`` (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout_s):
            while len(self.events.get(call_id, [])) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.turns(call_id)

    async def agent_text(self, call_id: str, index: int) -> str | None:
        """The simulated caller's ``agent_text`` hook: the reply to caller turn ``index`` as the
        caller heard it (``[cut off]`` marks a barge-in), waiting for its event."""
        while True:
            found = self.caller_turns(call_id)
            if index < len(found):
                turn = found[index]
                return f"{turn.agent} [cut off]" if turn.truncated else turn.agent
            self._arrived.clear()
            await self._arrived.wait()
