"""Domain types exchanged with the peers (no protobuf here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trunkline.gateway.core.events import Message


@dataclass(frozen=True, slots=True)
class CallInfo:
    call_id: str
    tenant: str
    agent: str
    agent_version: str
    caller_role: str = "caller"
    caller_address: str = ""
    dialed: str = ""


@dataclass(frozen=True, slots=True)
class ContextResult:
    block: str = ""
    citations: tuple[str, ...] = ()
    cached_answer: str | None = None
    confidence: float = 0.0
    kb_version: str = ""
    token_count: int = 0


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool call the model made and the result it gets back (JSON text)."""

    call_id: str
    name: str
    arguments_json: str
    result_json: str


@dataclass(frozen=True, slots=True)
class ToolRound:
    """One generation round that ended in tool calls: what the model said, then the results."""

    text: str
    results: tuple[ToolResult, ...]


@dataclass(frozen=True, slots=True)
class LlmRequest:
    call: CallInfo
    user_text: str
    history: tuple[Message, ...]
    context: ContextResult = field(default_factory=ContextResult)
    tool_rounds: tuple[ToolRound, ...] = ()  # earlier rounds of this turn, oldest first


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallRequested:
    call_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    prompt_compile_s: float | None = None


LlmEvent = TextDelta | ToolCallRequested | Usage
