"""The text tool-call protocol for models without native tool calling (llama.cpp backend).

The prompt asks the model to answer a tool call with exactly::

    <tool_call>{"name": "lookup_account", "arguments": {"account_id": "12345"}}</tool_call>

:class:`ToolCallStreamParser` turns the model's streamed text into spoken text and tool calls.
It holds back any suffix that could still become ``<tool_call>``, so no part of a tag ever
reaches the spoken text, and it reports a call it cannot parse instead of speaking it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from trunkline.llm.core.types import ChatMessage, TextDelta, ToolCall, ToolCallEvent, ToolSchema

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
TOOL_RESPONSE_OPEN = "<tool_response>"  # a small model may echo one: dropped, never spoken
TOOL_RESPONSE_CLOSE = "</tool_response>"
_CLOSE_OF = {TOOL_CALL_OPEN: TOOL_CALL_CLOSE, TOOL_RESPONSE_OPEN: TOOL_RESPONSE_CLOSE}
MAX_CALL_CHARS = 8192


@dataclass(frozen=True, slots=True)
class MalformedToolCall:
    """A ``<tool_call>`` whose body could not be used; never spoken, reported instead."""

    raw: str
    reason: str


ParsedItem = TextDelta | ToolCallEvent | MalformedToolCall


def render_tool_instructions(tools: Sequence[ToolSchema]) -> str:
    """The system-prompt section that teaches the model the protocol and lists the tools."""
    if not tools:
        return ""
    lines = [
        "You can call tools. To call one, reply with only this, on one line:",
        f'{TOOL_CALL_OPEN}{{"name": "<tool name>", "arguments": {{...}}}}{TOOL_CALL_CLOSE}',
        "Tools:",
    ]
    for tool in tools:
        schema = json.dumps(dict(tool.parameters), separators=(",", ":"), sort_keys=True)
        lines.append(f"- {tool.name}: {tool.description} Arguments (JSON schema): {schema}")
    return "\n".join(lines)


def _call_text(call: ToolCall) -> str:
    try:
        arguments: Any = call.parsed_arguments()
    except ValueError:
        arguments = call.arguments
    body = json.dumps({"name": call.name, "arguments": arguments}, separators=(",", ":"))
    return f"{TOOL_CALL_OPEN}{body}{TOOL_CALL_CLOSE}"


def to_text_protocol(messages: Iterable[ChatMessage]) -> tuple[ChatMessage, ...]:
    """Rewrite native tool-call history for a model that only knows text.

    An assistant message's tool calls become ``<tool_call>`` text in its content; a tool result
    becomes a user message wrapped in ``<tool_response>`` (many chat templates reject role "tool").
    """
    out: list[ChatMessage] = []
    for message in messages:
        if message.role == "assistant" and message.tool_calls:
            calls = "".join(_call_text(c) for c in message.tool_calls)
            content = f"{message.content}{calls}" if message.content else calls
            out.append(ChatMessage(role="assistant", content=content))
        elif message.role == "tool":
            body = json.dumps({"name": message.name or "", "content": message.content})
            out.append(ChatMessage(role="user", content=f"<tool_response>{body}</tool_response>"))
        else:
            out.append(message)
    return tuple(out)


def _partial_open_suffix(text: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of an opening tag."""
    for size in range(min(len(text), len(TOOL_RESPONSE_OPEN) - 1), 0, -1):
        if any(tag.startswith(text[-size:]) for tag in _CLOSE_OF):
            return size
    return 0


def _first_open(text: str) -> tuple[int, str]:
    found = [(i, tag) for tag in _CLOSE_OF if (i := text.find(tag)) >= 0]
    return min(found) if found else (-1, "")


def _strip_fence(body: str) -> str:
    body = body.strip()
    if body.startswith("```"):
        body = body.removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    return body


class ToolCallStreamParser:
    """Incremental parser: ``feed`` text as it streams, then ``finish`` once at the end.

    ``known_tools``: when given, a call naming another tool is reported as malformed.
    """

    def __init__(
        self,
        new_id: Callable[[], str],
        known_tools: Iterable[str] | None = None,
    ) -> None:
        self._new_id = new_id
        self._known = frozenset(known_tools) if known_tools is not None else None
        self._buf = ""
        self._open = ""  # the tag we are inside, "" outside any

    def feed(self, text: str) -> list[ParsedItem]:
        self._buf += text
        out: list[ParsedItem] = []
        while True:
            if not self._open:
                start, tag = _first_open(self._buf)
                if start < 0:
                    keep = _partial_open_suffix(self._buf)
                    speak = self._buf[: len(self._buf) - keep]
                    if speak:
                        out.append(TextDelta(speak))
                    self._buf = self._buf[len(self._buf) - keep :]
                    return out
                if start > 0:
                    out.append(TextDelta(self._buf[:start]))
                self._buf = self._buf[start + len(tag) :]
                self._open = tag
            close = _CLOSE_OF[self._open]
            end = self._buf.find(close)
            if end < 0:
                if len(self._buf) > MAX_CALL_CHARS:
                    out.append(MalformedToolCall(self._buf[:200], f"{self._open} too long"))
                    self._buf = ""
                    self._open = ""
                return out
            if self._open == TOOL_CALL_OPEN:
                out.append(self._parse(self._buf[:end]))
            self._buf = self._buf[end + len(close) :]
            self._open = ""

    def finish(self) -> list[ParsedItem]:
        """Flush at end of stream. An unclosed call is used if its JSON is complete.

        A trailing fragment that could only have become a tag (e.g. ``"<tool_"``) is dropped.
        """
        out: list[ParsedItem] = []
        if self._open == TOOL_CALL_OPEN and self._buf.strip():
            out.append(self._parse(self._buf))
        elif not self._open and self._buf:
            keep = _partial_open_suffix(self._buf)
            if len(self._buf) > keep:
                out.append(TextDelta(self._buf[: len(self._buf) - keep]))
        self._buf = ""
        self._open = ""
        return out

    def _parse(self, body: str) -> ParsedItem:
        text = _strip_fence(body)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return MalformedToolCall(body, f"not JSON: {exc.msg}")
        if not isinstance(value, dict):
            return MalformedToolCall(body, "not a JSON object")
        name = value.get("name")
        if not isinstance(name, str) or not name:
            return MalformedToolCall(body, "missing tool name")
        if self._known is not None and name not in self._known:
            return MalformedToolCall(body, f"unknown tool {name!r}")
        arguments = value.get("arguments", value.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                return MalformedToolCall(body, "arguments are not JSON")
        if not isinstance(arguments, dict):
            return MalformedToolCall(body, "arguments must be a JSON object")
        encoded = json.dumps(arguments, separators=(",", ":"))
        return ToolCallEvent(ToolCall(id=self._new_id(), name=name, arguments=encoded))
