"""Domain types of generation: messages, tool schemas and calls, the request, stream events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for. ``arguments`` is the JSON text the model produced."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a mapping; raise ``ValueError`` when they are not a JSON object."""
        try:
            value = json.loads(self.arguments) if self.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"tool call {self.name}: arguments are not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise ValueError(f"tool call {self.name}: arguments must be a JSON object")
        return value


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # set on role="tool": the call this result answers
    name: str | None = None  # the tool's name on role="tool"


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """What the model is told about a tool: name, description, JSON-schema parameters."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int = 160
    temperature: float = 0.3
    top_p: float = 0.9
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation. ``tool_choice``: "auto", "none", "required" or a tool's name."""

    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSchema, ...] = ()
    sampling: SamplingParams = SamplingParams()
    tool_choice: str = "auto"
    model: str | None = None


# --- stream events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text to speak. Never contains any part of a tool-call tag."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage. ``estimated`` when the backend had to count rather than be told.

    ``cached_prompt_tokens``: the part of ``prompt_tokens`` reused from the backend's prefix
    cache rather than evaluated (0 where the backend does not say).
    """

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    cached_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class PrefillResult:
    """What a prefill did: ``evaluated`` tokens now, ``reused`` already cached; ``completed``
    False when a generation took the model over first (or the backend cannot prefill)."""

    prompt_tokens: int
    evaluated: int
    reused: int
    completed: bool


@dataclass(frozen=True, slots=True)
class Stop:
    """Backend-side end marker: why generation stopped ("stop", "length", "tool_calls")."""

    reason: str


@dataclass(frozen=True, slots=True)
class Done:
    """The last event of every completed stream, added by the backend ABC."""

    finish_reason: str
    usage: Usage | None
    ttft_s: float | None  # request start → first text or tool call
    duration_s: float


GenerationEvent = TextDelta | ToolCallEvent | Done
"""What a consumer of ``LlmBackend.generate`` receives."""

BackendEvent = TextDelta | ToolCallEvent | Usage | Stop
"""What a backend's ``_impl`` yields."""
