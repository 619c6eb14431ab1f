"""What one scenario call was seen to do: the gateway's turn events and the caller's side. Pure.

A :class:`CallDriver` (``trunkline.evaluation.runner``) fills these from wherever it runs the
call (the local stack over the Twilio protocol, a cluster, a replay); scoring reads only these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ToolCallSeen:
    name: str
    arguments: dict[str, object]
    status: str  # "succeeded", "forbidden", ... (events/v1 ToolCallStatus, lower case)
    result_json: str = ""


@dataclass(frozen=True, slots=True)
class Intervention:
    """A clause the gateway's grounding guard held back."""

    clause: str
    unsupported: tuple[str, ...]
    action: str


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """One ``turn.completed`` event, as plain data."""

    occurred_at: float  # epoch seconds
    caller_transcript: str
    reply: str  # as the caller heard it
    generated: str = ""
    truncated: bool = False
    reply_source: str = ""  # "llm", "deflection", ... ("" unspecified)
    intent: str = ""
    grounded: bool = False
    interventions: tuple[Intervention, ...] = ()
    hang_up: bool = False
    tool_calls: tuple[ToolCallSeen, ...] = ()
    cache_hit: bool = False
    retrieval_confidence: float = 0.0
    citations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TurnSeen:
    """One scenario turn: the events the gateway published for it (usually one; a turn the
    gateway split in two has two) and what the simulated caller measured and heard."""

    events: tuple[TurnEvent, ...]
    answered: bool  # the caller heard agent speech after this turn
    voice_to_voice_ms: float | None  # caller's last voiced frame -> first voiced agent frame
    reply_heard: str | None = None  # the reply audio transcribed back (None: not transcribed)
    escalated: bool = False  # an escalation event was published during this turn

    @property
    def caller_transcript(self) -> str:
        return " ".join(e.caller_transcript for e in self.events if e.caller_transcript)

    @property
    def reply(self) -> str:
        return " ".join(e.reply.strip() for e in self.events if e.reply.strip())

    @property
    def reply_sources(self) -> tuple[str, ...]:
        return tuple(e.reply_source for e in self.events)

    @property
    def intents(self) -> tuple[str, ...]:
        return tuple(e.intent for e in self.events if e.intent)

    @property
    def hang_up(self) -> bool:
        return any(e.hang_up for e in self.events)

    @property
    def tool_calls(self) -> tuple[ToolCallSeen, ...]:
        return tuple(c for e in self.events for c in e.tool_calls)

    @property
    def grounded(self) -> bool | None:
        """The gateway's word: every spoken clause passed its guard (None: no event)."""
        return all(e.grounded for e in self.events) if self.events else None

    @property
    def interventions(self) -> tuple[Intervention, ...]:
        return tuple(i for e in self.events for i in e.interventions)


@dataclass(frozen=True, slots=True)
class CallSeen:
    call_id: str
    turns: tuple[TurnSeen, ...]  # one per scenario turn spoken (fewer when the call ended early)
    greeting: str = ""
    end_reason: str = ""  # CallEnded reason: "agent_hangup", "caller_hangup", ... ("": none seen)
    ended_by: str = "caller"  # the simulated caller's view: "caller" or why the server ended it
    error: str | None = None  # the call could not be run at all
    extra: dict[str, object] = field(default_factory=dict)  # driver-specific facts for the report


def assign_events(
    turn_starts: Sequence[float], events: Sequence[TurnEvent]
) -> tuple[list[TurnEvent], list[list[TurnEvent]]]:
    """Split a call's turn events into those before the caller first spoke (the greeting) and
    those of each caller turn: an event belongs to the last turn that started before it was
    published (``turn_starts``: epoch seconds the caller started each turn, ascending). An
    event marked as the greeting is the greeting wherever it falls."""
    before: list[TurnEvent] = []
    per_turn: list[list[TurnEvent]] = [[] for _ in turn_starts]
    for event in sorted(events, key=lambda e: e.occurred_at):
        index = -1
        for i, start in enumerate(turn_starts):
            if start <= event.occurred_at:
                index = i
        if index < 0 or event.reply_source == "greeting":
            before.append(event)
        else:
            per_turn[index].append(event)
    return before, per_turn
