"""The openai backend's wire handling against canned vLLM-shaped SSE (httpx MockTransport)."""

import json
from collections.abc import Callable

import httpx
import pytest

from trunkline.llm.backends import BackendUnavailableError, CallPolicy, LlmError
from trunkline.llm.backends.openai import OpenAIBackend, OpenAIConfig, ToolCallAssembler
from trunkline.llm.core import (
    ChatMessage,
    Done,
    GenerationEvent,
    GenerationRequest,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSchema,
    Usage,
)

pytestmark = pytest.mark.unit

TOOL = ToolSchema("lookup_account", "Find.", {"type": "object", "properties": {}})


def sse(*chunks: dict[str, object]) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


def choice(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


VLLM_TOOL_STREAM = sse(
    choice({"role": "assistant", "content": ""}),
    choice({"content": "Let me check. "}),
    choice(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "lookup_account", "arguments": ""},
                }
            ]
        }
    ),
    choice({"tool_calls": [{"index": 0, "function": {"arguments": '{"account'}}]}),
    choice({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "lookup_account"}}]}),
    choice({"tool_calls": [{"index": 0, "function": {"arguments": '_id": "7"}'}}]}),
    choice({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
    choice({}, finish="tool_calls"),
    {"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}},
)


def backend(handler: Callable[[httpx.Request], httpx.Response], **config: object) -> OpenAIBackend:
    return OpenAIBackend(
        OpenAIConfig(base_url="http://llm.test/v1", **config),  # type: ignore[arg-type]
        transport=httpx.MockTransport(handler),
        policy=CallPolicy(retries=1, retry_backoff_s=0.0),
    )


async def run(b: OpenAIBackend, request: GenerationRequest) -> list[GenerationEvent]:
    await b.start()
    try:
        return [e async for e in b.generate(request)]
    finally:
        await b.aclose()


async def test_request_body_and_assembled_tool_calls_and_usage() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer k"
        seen.append(json.loads(request.content))
        return httpx.Response(200, content=VLLM_TOOL_STREAM)

    past_call = ToolCall("c0", "lookup_account", '{"account_id": "1"}')
    request = GenerationRequest(
        messages=(
            ChatMessage("system", "sys"),
            ChatMessage("assistant", "", tool_calls=(past_call,)),
            ChatMessage("tool", "ok", tool_call_id="c0", name="lookup_account"),
            ChatMessage("user", "account 7"),
        ),
        tools=(TOOL,),
        tool_choice="lookup_account",
        model="spec-model",
    )
    events = await run(backend(handler, api_key="k", model="served"), request)
    assert events[0] == TextDelta("Let me check. ")
    assert events[1:3] == [
        ToolCallEvent(ToolCall("call_a", "lookup_account", '{"account_id": "7"}')),
        ToolCallEvent(ToolCall("call_b", "lookup_account", "{}")),
    ]
    done = events[-1]
    assert isinstance(done, Done)
    assert done.usage == Usage(30, 9)
    assert done.finish_reason == "tool_calls"
    body = seen[0]
    assert body["model"] == "served"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup_account"}}
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_account",
                "description": "Find.",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    messages = body["messages"]
    assert isinstance(messages, list)
    assert messages[1] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "c0",
                "type": "function",
                "function": {"name": "lookup_account", "arguments": '{"account_id": "1"}'},
            }
        ],
    }
    assert messages[2] == {
        "role": "tool",
        "content": "ok",
        "tool_call_id": "c0",
        "name": "lookup_account",
    }


async def test_missing_usage_is_estimated() -> None:
    stream = sse(choice({"content": "Hi"}), choice({"content": " there"}), choice({}, "stop"))
    b = backend(lambda r: httpx.Response(200, content=stream))
    events = await run(b, GenerationRequest(messages=(ChatMessage("user", "hello you"),)))
    done = events[-1]
    assert isinstance(done, Done)
    assert done.usage == Usage(prompt_tokens=3 + 4, completion_tokens=2, estimated=True)


async def test_server_errors_are_retried_then_raised_and_client_errors_are_not() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(503, text="warming up")
        return httpx.Response(200, content=sse(choice({"content": "ok"}, "stop")))

    events = await run(backend(flaky), GenerationRequest(messages=(ChatMessage("user", "x"),)))
    assert events[0] == TextDelta("ok")
    assert calls["n"] == 2

    b = backend(lambda r: httpx.Response(400, text="bad model"))
    with pytest.raises(LlmError, match="HTTP 400: bad model"):
        await run(b, GenerationRequest(messages=(ChatMessage("user", "x"),)))

    b = backend(lambda r: httpx.Response(500, text="boom"))
    with pytest.raises(BackendUnavailableError, match="HTTP 500"):
        await run(b, GenerationRequest(messages=(ChatMessage("user", "x"),)))


async def test_error_event_and_garbage_in_the_stream_are_errors() -> None:
    b = backend(lambda r: httpx.Response(200, content=sse({"error": {"message": "oom"}})))
    with pytest.raises(LlmError, match="oom"):
        await run(b, GenerationRequest(messages=(ChatMessage("user", "x"),)))
    b = backend(lambda r: httpx.Response(200, content=b"data: {nope\n\n"))
    with pytest.raises(LlmError, match="not JSON"):
        await run(b, GenerationRequest(messages=(ChatMessage("user", "x"),)))


async def test_connection_refused_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(BackendUnavailableError, match="refused"):
        await run(backend(refuse), GenerationRequest(messages=(ChatMessage("user", "x"),)))


def test_assembler_keeps_a_repeated_name_once() -> None:
    a = ToolCallAssembler()
    for piece in ['{"a"', ": 1}"]:
        a.add({"index": 0, "id": "x", "function": {"name": "f", "arguments": piece}})
    assert a.complete() == [ToolCall("x", "f", '{"a": 1}')]
    assert a.complete() == []


async def test_ready_does_not_probe_the_server_while_a_stream_is_in_flight() -> None:
    probes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            probes.append(request.method)
            return httpx.Response(200, json={"data": []})
        return httpx.Response(200, content=sse(choice({"content": "a"}), choice({}, "stop")))

    b = backend(handler)
    await b.start()
    try:
        assert await b.ready()
        assert probes == ["GET"]
        stream = b.generate(GenerationRequest(messages=(ChatMessage("user", "hi"),)))
        assert await anext(stream) == TextDelta("a")
        # llama.cpp's server ends the stream in progress when another request arrives
        assert await b.ready()
        assert probes == ["GET"]
        rest = [e async for e in stream]
        assert isinstance(rest[-1], Done)
        assert await b.ready()
        assert probes == ["GET", "GET"]
    finally:
        await b.aclose()
