"""Contract tests of the openai backend against llama.cpp's own OpenAI-compatible server.

The server runs with ``--chat_format chatml-function-calling`` (SmolLM2's template has no tool
support). Proved here: SSE text streaming, finish reasons, the usage fallback (this server sends
no usage chunk even with ``include_usage``), a forced tool call (``tool_choice`` naming the
function: the server constrains the arguments by grammar) assembled from its streamed deltas,
the tool-result round trip accepted on the wire, and cancellation by closing the response.
SmolLM2 does not choose tools by itself reliably, so ``tool_choice="auto"`` is not asserted.
"""

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest
import pytest_asyncio

from trunkline.llm.backends.llamacpp import smollm2_model_path
from trunkline.llm.backends.openai import OpenAIBackend, OpenAIConfig
from trunkline.llm.core import (
    ChatMessage,
    Done,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    TextDelta,
    ToolCallEvent,
    ToolSchema,
)

pytestmark = pytest.mark.integration

LOOKUP = ToolSchema(
    "lookup_account",
    "Look up a patient account by its number.",
    {
        "type": "object",
        "properties": {"account_id": {"type": "string", "pattern": "^[0-9]{1,8}$"}},
        "required": ["account_id"],
    },
)


@pytest_asyncio.fixture
async def openai(llama_server: str) -> AsyncIterator[OpenAIBackend]:
    backend = OpenAIBackend(OpenAIConfig(base_url=llama_server, model="smollm2"))
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()


def request(*messages: ChatMessage, max_tokens: int = 24, **kw: object) -> GenerationRequest:
    return GenerationRequest(
        messages=messages,
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=3),
        **kw,  # type: ignore[arg-type]
    )


async def run(backend: OpenAIBackend, req: GenerationRequest) -> list[GenerationEvent]:
    return [e async for e in backend.generate(req)]


async def test_streams_text_and_reports_estimated_usage(openai: OpenAIBackend) -> None:
    assert await openai.ready()
    events = await run(openai, request(ChatMessage("user", "Say hello."), max_tokens=12))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    done = events[-1]
    assert isinstance(done, Done)
    assert len(deltas) >= 1
    assert "".join(d.text for d in deltas).strip()
    assert done.finish_reason in ("stop", "length")
    assert done.ttft_s is not None
    assert done.usage is not None
    assert done.usage.estimated  # llama_cpp.server sends no usage chunk in streams
    assert 1 <= done.usage.completion_tokens <= 12


async def test_forced_tool_call_is_assembled_and_its_result_round_trips(
    openai: OpenAIBackend,
) -> None:
    asked = ChatMessage("user", "Please look up account 12345.")
    events = await run(
        openai, request(asked, max_tokens=40, tools=(LOOKUP,), tool_choice="lookup_account")
    )
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    done = events[-1]
    assert isinstance(done, Done)
    assert done.finish_reason == "tool_calls"
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "lookup_account"
    assert call.id
    arguments = call.parsed_arguments()  # whole JSON, assembled from many deltas
    assert arguments["account_id"].isdigit()

    result = ChatMessage(
        "tool", json.dumps({"balance_usd": 40}), tool_call_id=call.id, name="lookup_account"
    )
    follow = await run(
        openai,
        request(
            asked,
            ChatMessage("assistant", "", tool_calls=(call,)),
            result,
            tools=(LOOKUP,),
            tool_choice="none",
        ),
    )
    assert isinstance(follow[-1], Done)
    assert follow[-1].finish_reason in ("stop", "length")
    assert not [e for e in follow if isinstance(e, ToolCallEvent)]


async def test_closing_the_stream_frees_the_server(llama_server: str) -> None:
    # ban the end-of-turn token so the first generation would run for all 1500 tokens
    from llama_cpp import Llama  # noqa: PLC0415

    eos = Llama(str(smollm2_model_path()), vocab_only=True, verbose=False).token_eos()
    endless = OpenAIBackend(
        OpenAIConfig(base_url=llama_server, extra_body={"logit_bias": {str(eos): -100}})
    )
    quick = OpenAIBackend(OpenAIConfig(base_url=llama_server))
    await endless.start()
    await quick.start()
    try:
        long_req = request(ChatMessage("user", "Count to one thousand."), max_tokens=1500)
        seen = 0
        async with aclosing(endless.generate(long_req)) as stream:
            async for event in stream:
                assert isinstance(event, TextDelta)
                seen += 1
                if seen == 3:
                    break
        started = time.perf_counter()
        events = await run(quick, request(ChatMessage("user", "Say yes."), max_tokens=4))
        waited = time.perf_counter() - started
        assert isinstance(events[-1], Done)
        # 1500 tokens take ~15-25 s here; a server still generating would hold the model lock
        assert waited < 8.0, f"server still busy {waited:.1f}s after the stream was closed"
    finally:
        await endless.aclose()
        await quick.aclose()
