"""Backend for any OpenAI-compatible chat server (vLLM in production) over httpx + SSE.

Streams ``/chat/completions`` with ``stream_options.include_usage``; native tools, with
``tool_calls`` deltas assembled across chunks by index; closing the stream closes the HTTP
response, which is how the server learns to stop. Servers that send no usage (llama.cpp's)
get an estimate, marked ``Usage.estimated``.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from trunkline.llm.backends.base import BackendUnavailableError, LlmBackend, LlmError
from trunkline.llm.core.types import (
    BackendEvent,
    ChatMessage,
    GenerationRequest,
    Stop,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)


@dataclass(frozen=True, slots=True)
class OpenAIConfig:
    base_url: str  # up to and including /v1, e.g. http://vllm:8000/v1
    model: str | None = None  # the served model name; None: the request's (agent spec's) model
    api_key: str | None = None
    connect_timeout_s: float = 2.0
    chars_per_token: float = 4.0  # for count_tokens: the server's tokenizer is not local
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # vendor options (vLLM etc.)


def message_to_wire(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        if not message.content:
            del wire["content"]  # OpenAI and vLLM allow null, llama.cpp's server only absent
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.role == "tool":
        wire["tool_call_id"] = message.tool_call_id or ""
        if message.name:
            wire["name"] = message.name
    return wire


def request_to_wire(request: GenerationRequest, model: str | None) -> dict[str, Any]:
    sampling = request.sampling
    body: dict[str, Any] = {
        "model": model or request.model or "default",
        "messages": [message_to_wire(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
    }
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if request.tools and request.tool_choice != "none":
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                },
            }
            for t in request.tools
        ]
        if request.tool_choice in ("auto", "required"):
            body["tool_choice"] = request.tool_choice
        else:
            body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
    return body


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class ToolCallAssembler:
    """Joins streamed ``tool_calls`` deltas by index: id and name arrive once (some servers
    repeat them), the arguments arrive in pieces."""

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}
        self._emitted = 0

    def add(self, delta: Mapping[str, Any]) -> None:
        index = int(delta.get("index", 0))
        call = self._calls.setdefault(index, _PartialCall())
        if delta.get("id") and not call.id:
            call.id = str(delta["id"])
        function = delta.get("function") or {}
        if function.get("name") and not call.name:
            call.name = str(function["name"])
        if function.get("arguments"):
            call.arguments += str(function["arguments"])

    def complete(self) -> list[ToolCall]:
        """The calls not returned before, in index order; call once the stream says so."""
        ready = sorted(self._calls.items())[self._emitted :]
        self._emitted += len(ready)
        return [
            ToolCall(id=c.id or f"call_{i}", name=c.name, arguments=c.arguments or "{}")
            for i, c in ready
        ]


class OpenAIBackend(LlmBackend):
    name = "openai"
    tool_mode = "native"
    message_overhead = 4

    def __init__(
        self,
        config: OpenAIConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._streaming = 0  # generations in flight

    async def start(self) -> None:
        if self._client is not None:
            return
        headers = {"Accept": "text/event-stream"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        self._client = httpx.AsyncClient(
            base_url=self.config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(None, connect=self.config.connect_timeout_s),
            transport=self._transport,
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ready(self) -> bool:
        """Whether the server answers ``GET /models`` (for health checks).

        Not probed while a generation streams: that stream already shows the server answers,
        and llama.cpp's server ends the stream in progress when any other request arrives.
        """
        if self._client is None:
            return False
        if self._streaming:
            return True
        try:
            response = await self._client.get("/models")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / self.config.chars_per_token) if text else 0

    async def _impl(self, request: GenerationRequest) -> AsyncGenerator[BackendEvent, None]:
        if self._client is None:
            raise RuntimeError("openai backend is not started")
        body = {**request_to_wire(request, self.config.model), **self.config.extra_body}
        assembler = ToolCallAssembler()
        usage: Usage | None = None
        reason = "stop"
        pieces = 0
        self._streaming += 1
        try:
            async with self._client.stream("POST", "/chat/completions", json=body) as response:
                await _check_status(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = _decode(data)
                    if chunk.get("usage"):
                        reported = chunk["usage"]
                        details = reported.get("prompt_tokens_details") or {}
                        usage = Usage(
                            prompt_tokens=int(reported.get("prompt_tokens", 0)),
                            completion_tokens=int(reported.get("completion_tokens", 0)),
                            cached_prompt_tokens=int(details.get("cached_tokens") or 0),
                        )
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            pieces += 1
                            yield TextDelta(str(delta["content"]))
                        for part in delta.get("tool_calls") or []:
                            pieces += 1
                            assembler.add(part)
                        if choice.get("finish_reason"):
                            reason = str(choice["finish_reason"])
                            for call in assembler.complete():
                                yield ToolCallEvent(call)
        except httpx.TransportError as exc:
            raise BackendUnavailableError(f"openai backend {self.config.base_url}: {exc}") from exc
        finally:
            self._streaming -= 1
        for call in assembler.complete():  # a server that never sent finish_reason
            yield ToolCallEvent(call)
        if usage is None:
            prompt = sum(
                self.count_tokens(m.content) + self.message_overhead for m in request.messages
            )
            usage = Usage(prompt_tokens=prompt, completion_tokens=pieces, estimated=True)
        yield usage
        yield Stop(reason)


def _decode(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise LlmError(f"openai backend: a stream event is not JSON: {data[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise LlmError(f"openai backend: a stream event is not an object: {data[:200]!r}")
    if "error" in chunk:
        raise LlmError(f"openai backend: server error in stream: {chunk['error']}")
    return chunk


async def _check_status(response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    text = (await response.aread()).decode("utf-8", "replace")[:300]
    message = f"openai backend: HTTP {response.status_code}: {text}"
    if response.status_code == 429 or response.status_code >= 500:
        raise BackendUnavailableError(message)
    raise LlmError(message)
