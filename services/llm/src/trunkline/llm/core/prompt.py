"""Prompt compilation: agent spec + history + context block + tools + token budget → messages.

Pure: tokens are counted with the function the backend supplies (its own tokenizer). When the
prompt does not fit the budget, the oldest history goes first, then the lowest-ranked context
chunks; the system prompt and the new user turn are never cut.

Layout (``stable_prefix``, the default): what stays the same across the turns of a call comes
first (system prompt and tool instructions, then the history), what changes every turn last (the
context block as a system message, then the new user turn), so a backend's prefix cache (llama.cpp,
vLLM) reuses everything up to the previous turn. ``context_in_system`` is the old layout (context
block inside the first system message), kept for benchmarks: it re-evaluates the whole history
every turn.

A long call's history is bounded by :mod:`trunkline.llm.core.history` (``history_policy``): the
oldest turns are folded into one summary line (a system message right after the first one) in
blocks, so that prefix changes once every few turns rather than every turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from trunkline.agents import AgentSpec
from trunkline.llm.core.history import OFF, HistoryPolicy, compact_history
from trunkline.llm.core.tool_protocol import render_tool_instructions, to_text_protocol
from trunkline.llm.core.types import ChatMessage, GenerationRequest, SamplingParams, ToolSchema
from trunkline.redaction.injection import DATA_RULE, data_block, screen_json

ToolMode = Literal["native", "text"]
"""native: tools go as API tool schemas; text: the prompt teaches the ``<tool_call>`` protocol."""

PromptLayout = Literal["stable_prefix", "context_in_system"]
"""Where the per-turn context block goes (see the module docstring)."""

CountTokens = Callable[[str], int]


class PromptBudgetError(ValueError):
    """Even the system prompt and the new user turn alone exceed the token budget."""


@dataclass(frozen=True, slots=True)
class ContextChunk:
    """One retrieved passage, in rank order; ``citation`` is what the model cites (e.g. "1")."""

    citation: str
    source: str
    text: str


@dataclass(frozen=True, slots=True)
class PromptParts:
    """Everything one prompt is compiled from (the LanguageModel contract's ``Prompt``)."""

    system_prompt: str
    history: Sequence[ChatMessage]  # oldest first
    user_text: str | None  # the new turn; None when history already ends with it / tool results
    context: Sequence[ContextChunk] = ()  # rank order; the lowest go first if nothing else fits
    context_text: str = ""  # a block already rendered by the context service, used verbatim
    tools: Sequence[ToolSchema] = ()
    max_prompt_tokens: int = 1536
    sampling: SamplingParams = field(default_factory=SamplingParams)
    model: str | None = None
    label: str = "prompt"  # names the agent in errors


def prompt_from_spec(
    spec: AgentSpec,
    history: Sequence[ChatMessage],
    user_text: str | None,
    context: Sequence[ContextChunk] = (),
    caller_role: str = "caller",
) -> PromptParts:
    """The prompt parts of one turn of ``spec``: its tools filtered by the caller's role."""
    sampling = spec.model.sampling
    return PromptParts(
        system_prompt=spec.system_prompt,
        history=history,
        user_text=user_text,
        context=context,
        tools=tuple(
            ToolSchema(name=t.name, description=t.description, parameters=t.parameters)
            for t in spec.tools_for_role(caller_role)
        ),
        max_prompt_tokens=spec.token_budget.prompt_tokens,
        sampling=SamplingParams(
            max_tokens=sampling.max_reply_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            stop=sampling.stop,
        ),
        model=spec.model.name,
        label=f"agent {spec.ref}",
    )


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    request: GenerationRequest
    prompt_tokens: int  # as counted here (template overhead included per message)
    history_kept: int
    history_dropped: int
    context_kept: int
    context_dropped: int
    history_summarized: int = 0  # messages folded into the summary line (``history_policy``)


def render_context(chunks: Sequence[ContextChunk]) -> str:
    if not chunks:
        return ""
    lines = ["Facts for this question:"]
    lines += [f"[{c.citation}] ({c.source}) {c.text.strip()}" for c in chunks]
    return "\n".join(lines)


def _context_text(data: PromptParts, chunks: Sequence[ContextChunk]) -> str:
    """The turn's data (context block, chunks, live records): screened for injected
    instructions and fenced as data (``trunkline.redaction.injection``)."""
    parts = [data.context_text.strip(), render_context(chunks)]
    return data_block("\n\n".join(p for p in parts if p))[0]


def _screened(message: ChatMessage) -> ChatMessage:
    """A tool result is data too: its injected instructions are cut out."""
    if message.role != "tool" or not message.content:
        return message
    result = screen_json(message.content)
    return replace(message, content=result.text) if result.flagged else message


def _head(
    data: PromptParts, mode: ToolMode, layout: PromptLayout, context: str
) -> tuple[ChatMessage, ChatMessage | None]:
    """The first system message and the context message (None: no context, or inside the
    system message)."""
    parts = [data.system_prompt.strip(), DATA_RULE]
    if mode == "text" and data.tools:
        parts.append(render_tool_instructions(data.tools))
    if layout == "context_in_system" and context:
        parts.append(context)
    system = ChatMessage(role="system", content="\n\n".join(parts))
    if layout == "stable_prefix" and context:
        return system, ChatMessage(role="system", content=context)
    return system, None


def compile_prompt(
    data: PromptParts,
    count_tokens: CountTokens,
    *,
    tool_mode: ToolMode = "native",
    message_overhead: int = 4,
    layout: PromptLayout = "stable_prefix",
    history_policy: HistoryPolicy = OFF,
) -> CompiledPrompt:
    """Build the generation request for one turn within ``data.max_prompt_tokens``.

    ``message_overhead``: tokens the chat template adds around each message (role markers).
    ``history_policy``: how the oldest turns are folded into a summary (default: never; the
    history is only cut to the budget, oldest first).
    """
    budget = data.max_prompt_tokens
    tools = tuple(data.tools)

    def cost(message: ChatMessage) -> int:
        total = count_tokens(message.content) + message_overhead
        for call in message.tool_calls:
            total += count_tokens(f"{call.name} {call.arguments}")
        return total

    native_tool_cost = 0
    if tool_mode == "native":
        native_tool_cost = sum(
            count_tokens(
                json.dumps(
                    {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
                )
            )
            for t in tools
        )

    compact = compact_history(data.history, cost, count_tokens, history_policy)
    history = [_screened(m) for m in compact.history]
    if tool_mode == "text":
        history = list(to_text_protocol(history))
    tail = [ChatMessage(role="user", content=data.user_text)] if data.user_text is not None else []
    tail_cost = sum(cost(m) for m in tail)

    chunks = list(data.context)
    while True:
        system, context = _head(data, tool_mode, layout, _context_text(data, chunks))
        fixed = cost(system) + tail_cost + native_tool_cost
        if context is not None:
            fixed += cost(context)
        if fixed <= budget or not chunks:
            break
        chunks.pop()
    if fixed > budget:
        raise PromptBudgetError(
            f"{data.label}: system prompt, tools and the user turn need {fixed} tokens, "
            f"over the budget of {budget}"
        )

    summary: list[ChatMessage] = []
    used = fixed
    if compact.summary is not None and used + cost(compact.summary) <= budget:
        summary.append(compact.summary)
        used += cost(compact.summary)
    kept: list[ChatMessage] = []
    for message in reversed(history):
        size = cost(message)
        if used + size > budget:
            break
        kept.append(message)
        used += size
    kept.reverse()
    while kept and kept[0].role == "tool":  # its assistant tool call was trimmed away
        used -= cost(kept.pop(0))

    request = GenerationRequest(
        messages=(system, *summary, *kept, *([context] if context is not None else []), *tail),
        tools=tools,
        sampling=data.sampling,
        tool_choice="auto" if tools else "none",
        model=data.model,
    )
    return CompiledPrompt(
        request=request,
        prompt_tokens=used,
        history_kept=len(kept),
        history_dropped=len(history) - len(kept),
        context_kept=len(chunks),
        context_dropped=len(data.context) - len(chunks),
        history_summarized=compact.folded,
    )
