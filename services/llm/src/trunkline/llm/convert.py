"""Proto -> domain for the LanguageModel contract: requests become the core's ``PromptParts``.

Every problem with a request raises :class:`BadRequestError` naming the field, answered
``INVALID_ARGUMENT`` by the server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import SchemaError  # type: ignore[import-untyped, unused-ignore]
from jsonschema.validators import validator_for  # type: ignore[import-untyped, unused-ignore]

from trunkline.llm.core import ChatMessage, PromptParts, Role, SamplingParams, ToolCall, ToolSchema
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.llm.v1 import llm_pb2

_ROLES: dict[int, Role] = {
    llm_pb2.ROLE_SYSTEM: "system",
    llm_pb2.ROLE_USER: "user",
    llm_pb2.ROLE_ASSISTANT: "assistant",
    llm_pb2.ROLE_TOOL: "tool",
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
MAX_STOPS = 8
CONTEXT_HEADING = "Facts for this question:"


class BadRequestError(ValueError):
    """The request breaks the contract; the message names the field and the problem."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What the service fills in for zero values: the model's window and the reply default."""

    context_tokens: int
    default_max_tokens: int


def sampling_params(params: llm_pb2.SamplingParams, limits: Limits) -> SamplingParams:
    defaults = SamplingParams()
    max_tokens = params.max_tokens or limits.default_max_tokens
    if max_tokens >= limits.context_tokens:
        raise BadRequestError(
            f"sampling.max_tokens {max_tokens} leaves no room for a prompt in the model's "
            f"context of {limits.context_tokens} tokens"
        )
    temperature = params.temperature if params.HasField("temperature") else defaults.temperature
    if not 0.0 <= temperature <= 2.0:
        raise BadRequestError(f"sampling.temperature {temperature:g} is outside 0 .. 2")
    top_p = params.top_p if params.HasField("top_p") else defaults.top_p
    if not 0.0 < top_p <= 1.0:
        raise BadRequestError(f"sampling.top_p {top_p:g} is outside (0, 1]")
    stops = tuple(s for s in params.stop if s)
    if len(stops) > MAX_STOPS:
        raise BadRequestError(f"sampling.stop has {len(stops)} strings; at most {MAX_STOPS}")
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=params.seed if params.HasField("seed") else None,
        stop=stops,
    )


def tool_schema(tool: llm_pb2.ToolSchema, where: str) -> ToolSchema:
    if not _TOOL_NAME.match(tool.name):
        raise BadRequestError(f"{where}.name {tool.name!r} must match [a-zA-Z0-9_-]{{1,64}}")
    text = tool.parameters_json_schema.strip()
    if not text:
        return ToolSchema(tool.name, tool.description, dict(_EMPTY_SCHEMA))
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestError(
            f"{where} ({tool.name}).parameters_json_schema is not JSON: {exc}"
        ) from exc
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise BadRequestError(
            f"{where} ({tool.name}).parameters_json_schema must be a JSON schema of an object "
            '({"type": "object", ...})'
        )
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise BadRequestError(
            f"{where} ({tool.name}).parameters_json_schema is not a valid JSON schema: "
            f"{exc.message}"
        ) from exc
    return ToolSchema(tool.name, tool.description, schema)


def tool_schemas(tools: list[llm_pb2.ToolSchema] | Any) -> tuple[ToolSchema, ...]:
    out = tuple(tool_schema(t, f"prompt.tools[{i}]") for i, t in enumerate(tools))
    names = [t.name for t in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadRequestError(f"prompt.tools: duplicate tool names: {', '.join(duplicates)}")
    return out


def _tool_call(call: Any, where: str) -> ToolCall:
    if not call.id or not call.name:
        raise BadRequestError(f"{where}: a tool call needs an id and a name")
    domain = ToolCall(id=call.id, name=call.name, arguments=call.arguments_json or "{}")
    try:
        domain.parsed_arguments()
    except ValueError as exc:
        raise BadRequestError(f"{where}: {exc}") from exc
    return domain


def chat_message(message: llm_pb2.ChatMessage, where: str) -> ChatMessage:
    role = _ROLES.get(message.role)
    if role is None:
        raise BadRequestError(f"{where}.role must be set (ROLE_SYSTEM/USER/ASSISTANT/TOOL)")
    if message.tool_calls and role != "assistant":
        raise BadRequestError(f"{where}: only ROLE_ASSISTANT messages carry tool_calls")
    if role == "tool" and not message.tool_call_id:
        raise BadRequestError(f"{where}: a ROLE_TOOL message needs tool_call_id")
    calls = tuple(
        _tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(message.tool_calls)
    )
    return ChatMessage(
        role=role,
        content=message.content,
        tool_calls=calls,
        tool_call_id=(message.tool_call_id or None) if role == "tool" else None,
        name=(message.tool_name or None) if role == "tool" else None,
    )


def context_text(block: Any) -> str:
    """The context service's block (its lines already carry their citations), with a heading."""
    text = str(block.text).strip()
    return f"{CONTEXT_HEADING}\n{text}" if text else ""


def agent_label(context: call_pb2.CallContext) -> str:
    agent = context.agent
    if agent.name:
        return f"agent {agent.name}@{agent.version}" if agent.version else f"agent {agent.name}"
    return "prompt"


def prefill_parts(
    prompt: llm_pb2.Prompt,
    sampling: SamplingParams,
    limits: Limits,
    *,
    model: str | None,
    label: str,
) -> PromptParts:
    """The known part of a call's next prompt: system prompt, tools, the history as it stands
    (possibly empty), the context block when the caller looked it up ahead (the stable layout
    puts it right before the new turn) and, when the history ends with a ROLE_USER message, the
    new turn as far as it was heard (the final transcript usually extends it)."""
    history = _history(prompt)
    user_text = history.pop().content if history and history[-1].role == "user" else None
    return _parts(prompt, history, user_text, sampling, limits, model=model, label=label)


def prompt_parts(
    prompt: llm_pb2.Prompt,
    sampling: SamplingParams,
    limits: Limits,
    *,
    model: str | None,
    label: str,
) -> PromptParts:
    """The core's prompt parts for one request.

    The last history message is the turn to answer: a caller turn (ROLE_USER) is passed as the
    new turn, which budgeting never drops; a tool result stays the last history message.
    """
    history = _history(prompt)
    if not history:
        raise BadRequestError("prompt.history is empty: there is no turn to answer")
    last = history[-1]
    if last.role not in ("user", "tool"):
        raise BadRequestError(
            f"prompt.history[{len(history) - 1}] is ROLE_{last.role.upper()}; the last message "
            "must be the caller's turn (ROLE_USER) or a tool result (ROLE_TOOL)"
        )
    user_text = history.pop().content if last.role == "user" else None
    return _parts(prompt, history, user_text, sampling, limits, model=model, label=label)


def _history(prompt: llm_pb2.Prompt) -> list[ChatMessage]:
    if not prompt.system_prompt.strip():
        raise BadRequestError("prompt.system_prompt is empty")
    return [chat_message(m, f"prompt.history[{i}]") for i, m in enumerate(prompt.history)]


def _parts(
    prompt: llm_pb2.Prompt,
    history: list[ChatMessage],
    user_text: str | None,
    sampling: SamplingParams,
    limits: Limits,
    *,
    model: str | None,
    label: str,
) -> PromptParts:
    window = limits.context_tokens - sampling.max_tokens
    return PromptParts(
        system_prompt=prompt.system_prompt,
        history=tuple(history),
        user_text=user_text,
        context_text=context_text(prompt.context_block),
        tools=tool_schemas(prompt.tools),
        max_prompt_tokens=min(prompt.max_prompt_tokens or window, window),
        sampling=sampling,
        model=model,
        label=label,
    )
