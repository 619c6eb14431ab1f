"""The gateway's side of shadow turns: each live turn of a sampled call goes to every candidate
version of its agent that is being shadowed, on that candidate's own subject.

:class:`ShadowTargets` is the set of shadowed candidates, kept current by :func:`follow` from
the ``shadow-candidates`` bucket the rollout operator writes. :class:`ShadowMirror` is called by
the event sink after a turn's ``TurnCompleted`` is published (off the audio path); a failed
mirror is logged and counted, never felt by the call.

The sink hands the mirror the turn as said; the mirrored copy keeps only the numbers the live
pipeline keeps in memory for the rest of the call (phone and account numbers the caller gave:
the candidate's prompt history must read as the live one did) and redacts every other personal
datum (:data:`MIRROR_REDACTS`). A shadow runner publishes its results fully redacted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from opentelemetry import metrics

from trunkline.bus import Bus, BusBase
from trunkline.bus.shadow import Candidate, CandidateChange, ShadowCandidates
from trunkline.bus.streams import SHADOW, shadow_subject
from trunkline.gateway.shadow.core import sampled
from trunkline.proto.events.v1 import events_pb2
from trunkline.redaction import Entity
from trunkline.redaction.messages import redact_message

log = logging.getLogger(__name__)

MIRROR_REDACTS = frozenset(set(Entity) - {Entity.PHONE, Entity.ACCOUNT})
"""What a mirrored turn never carries: a payment card (no pipeline reads one back), e-mail,
address, date of birth. Phone and account numbers stay, as in the live call's memory."""


class ShadowTargets:
    """Shadowed candidates by key (agent and version as one token)."""

    def __init__(self) -> None:
        self._by_key: dict[str, Candidate] = {}
        self.changed = asyncio.Event()

    def apply(self, change: CandidateChange) -> None:
        if change.candidate is None:
            self._by_key.pop(change.key, None)
        else:
            self._by_key[change.key] = change.candidate
        self.changed.set()

    def of(self, agent: str) -> list[Candidate]:
        return [c for c in self._by_key.values() if c.agent == agent]

    def __len__(self) -> int:
        return len(self._by_key)


async def follow(changes: AsyncIterator[CandidateChange], targets: ShadowTargets) -> None:
    """Apply every change of the candidates' bucket (``ShadowCandidates.watch()``) until
    cancelled."""
    async for change in changes:
        targets.apply(change)
        what = "removed" if change.candidate is None else f"{change.candidate.sample_percent:g}%"
        log.info("shadow candidate %s: %s", change.key, what)


class ShadowMirror:
    def __init__(
        self, bus: BusBase, targets: ShadowTargets, meter: metrics.Meter | None = None
    ) -> None:
        self.bus = bus
        self.targets = targets
        meter = meter or metrics.get_meter("trunkline.gateway")
        self.mirrored = meter.create_counter(
            "gateway.shadow.mirrored", description="live turns mirrored to a candidate version"
        )
        self.failures = meter.create_counter(
            "gateway.shadow.mirror_failures", description="mirrors that could not be published"
        )

    async def turn(self, event: events_pb2.TurnCompleted) -> int:
        """Mirror one live turn (redacted here, in place, down to :data:`MIRROR_REDACTS`);
        returns how many candidates it went to."""
        context = event.context
        if context.shadow:
            return 0
        if self.targets.of(context.agent.name):
            redact_message(event, only=MIRROR_REDACTS)
        agent = context.agent.name
        sent = 0
        for candidate in self.targets.of(agent):
            # the live version too, when it is shadowed as a rollout's baseline
            if not sampled(context.call_id, candidate.sample_percent):
                continue
            labels = {"agent": agent, "version": candidate.version}
            subject = shadow_subject(
                "turn", agent, candidate.version, context.tenant_id, context.call_id
            )
            try:
                await self.bus.js_publish(
                    subject, event, msg_id=f"{event.event_id}:{candidate.key}"
                )
            except Exception as exc:  # the live call never pays for its shadow
                log.warning("mirror of turn %s to %s failed: %r", event.event_id, subject, exc)
                self.failures.add(1, labels)
                continue
            self.mirrored.add(1, labels)
            sent += 1
        return sent


async def start_mirror(bus: Bus, tasks: list[asyncio.Task[None]]) -> ShadowMirror:
    """Declare the SHADOW stream, follow the candidates' bucket in a task (added to ``tasks``,
    for the caller to cancel at shutdown), and return the mirror for the event sink."""
    await bus.ensure_stream(SHADOW)
    targets = ShadowTargets()
    watch = follow(ShadowCandidates(bus).watch(), targets)
    tasks.append(asyncio.create_task(watch, name="shadow-targets"))
    return ShadowMirror(bus, targets)
