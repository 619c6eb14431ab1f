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
    shadow: bool = False  # a shadow runner or replay: nobody hears the result


@dataclass(frozen=True, slots=True)
class Transcript:
    """What STT heard in one utterance, and how sure it is (0 .. 1; the backend's own scale:
    Whisper's mean token probability, Riva's confidence). Empty text: no speech."""

    text: str
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class Citation:
    """One item of a context block; live data (a CRM or billing record) has no knowledge base."""

    id: str
    knowledge_base: str = ""
    source_id: str = ""
    title: str = ""
    uri: str = ""
    score: float = 0.0
    kb_version: str = ""

    @property
    def live(self) -> bool:
        return not self.knowledge_base


@dataclass(frozen=True, slots=True)
class ContextResult:
    block: str = ""
    citations: tuple[str, ...] = ()
    cached_answer: str | None = None
    confidence: float = 0.0
    kb_version: str = ""
    token_count: int = 0
    sources: tuple[Citation, ...] = ()  # the citations in full (``citations`` are their ids)
    intent: str = ""  # the agent's closest example phrase's intent (context service)
    intent_score: float = 0.0

    @property
    def uses_live_data(self) -> bool:
        """The block carries live records (set algebra with a CRM, billing...)."""
        return any(c.live for c in self.sources)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A finished turn's answer offered to the semantic cache, with the context it came from
    and what the turn did: the context service alone decides whether it is stored."""

    query: str  # the final transcript sent to Resolve
    answer: str  # what the caller heard
    citations: tuple[Citation, ...]
    kb_version: str
    uses_live_data: bool = False  # the context block carried live records
    generated: str = ""  # the whole reply as generated
    interrupted: bool = False
    grounded: bool = False  # every spoken clause passed the grounding guard
    reply_source: str = "llm"  # TurnRecord.reply_source
    human_written: bool = False
    tool_calls: int = 0
    retrieval_confidence: float = 0.0


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
    cached_prompt_tokens: int = 0  # of prompt_tokens, taken from the model's prefix cache


@dataclass(frozen=True, slots=True)
class Prefilled:
    """What an LLM prefill did: tokens evaluated now, tokens already cached, whether it got
    through before a generation took the model over."""

    evaluated_tokens: int
    reused_tokens: int
    completed: bool


LlmEvent = TextDelta | ToolCallRequested | Usage
