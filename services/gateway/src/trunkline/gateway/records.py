"""What the gateway reports about a call: domain records that the sink turns into NATS events
and Redis state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from trunkline.gateway.core.escalation import EscalationDecision
from trunkline.gateway.core.events import Message, State
from trunkline.gateway.core.tools import ToolStatus
from trunkline.gateway.peers.hitl import Line
from trunkline.gateway.peers.types import CallInfo, ContextResult


@dataclass(frozen=True, slots=True)
class ToolRecord:
    """One tool call of a turn and what became of it (the result as the model got it)."""

    call_id: str
    name: str
    arguments_json: str
    status: ToolStatus
    result_json: str
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class GuardRecord:
    """A clause the grounding guard held back: its unsupported facts and what was done."""

    clause: str
    unsupported: tuple[str, ...]
    action: str  # "dropped" or "fallback"


@dataclass(slots=True)
class TurnRecord:
    call: CallInfo
    turn_id: int
    user_text: str = ""
    agent_text: str = ""  # what the caller heard
    generated_text: str = ""  # what the LLM produced
    interrupted: bool = False
    greeting: bool = False
    stage_s: dict[str, float] = field(default_factory=dict)
    voice_to_voice_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # of prompt_tokens, from the LLM's prefix cache (priced less)
    tts_audio_s: float = 0.0
    caller_audio_s: float = 0.0
    fillers: int = 0
    cached: bool = False
    retrieval_confidence: float = 0.0
    citations: tuple[str, ...] = ()
    context: ContextResult | None = None  # the turn's Resolve result (None: not resolved)
    tool_calls: list[ToolRecord] = field(default_factory=list)
    # Where the spoken reply came from: "llm", "knowledge", "cache", "deflection", "goodbye",
    # "small_talk", "repeat", "fallback", "greeting" (ReplySource in events.proto).
    reply_source: str = "llm"
    intent: str = ""  # "question", "out_of_domain", "goodbye", "small_talk", "unclear"
    grounded: bool = False  # every spoken clause passed the grounding guard
    guard_interventions: list[GuardRecord] = field(default_factory=list)
    hang_up: bool = False  # the agent ends the call after this reply
    stt_confidence: float = 1.0  # the final transcript's confidence (0..1)
    escalation: EscalationDecision | None = None  # the turn escalated the call (why)


@dataclass(frozen=True, slots=True)
class CallSummary:
    call: CallInfo
    reason: str
    turns: int
    duration_s: float


class CallSink(ABC):
    """Where call facts go (JetStream events and Redis state in production; a list in tests).
    The session calls it from a background worker: a slow sink never stalls the audio loop."""

    @abstractmethod
    async def call_started(self, call: CallInfo, transport: str) -> None: ...

    @abstractmethod
    async def state_changed(self, call: CallInfo, state: State, history: list[Message]) -> None: ...

    @abstractmethod
    async def turn_completed(self, record: TurnRecord) -> None: ...

    @abstractmethod
    async def call_ended(self, summary: CallSummary) -> None: ...

    async def handoff_line(  # noqa: B027 (optional: a sink without a live transcript ignores it)
        self, call: CallInfo, ticket_id: str, operator_id: str, line: Line, spoken_at: float
    ) -> None:
        """A line the caller or the operator said while an operator was on the call
        (``spoken_at``: wall-clock seconds), as soon as it was transcribed."""
