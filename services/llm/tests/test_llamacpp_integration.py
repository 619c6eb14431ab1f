"""The embedded llama.cpp backend with the real SmolLM2-135M-Instruct model."""

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from trunkline.agents import load_agent_spec
from trunkline.llm.backends import CallPolicy
from trunkline.llm.backends.llamacpp import LlamaCppBackend, LlamaCppConfig, smollm2_model_path
from trunkline.llm.core import (
    ChatMessage,
    Done,
    GenerationRequest,
    SamplingParams,
    TextDelta,
    compile_prompt,
    prompt_from_spec,
)

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[3] / "agents" / "acme-dental.yaml"


@pytest_asyncio.fixture
async def llama() -> AsyncIterator[LlamaCppBackend]:
    # a cold agent prompt on a loaded 2-core machine can take seconds: these are no latency tests
    policy = CallPolicy(first_token_timeout_s=60.0, retries=0)
    backend = LlamaCppBackend(LlamaCppConfig(smollm2_model_path(), n_ctx=2048), policy=policy)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()


def ask(text: str, max_tokens: int) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage("system", "You are brief."), ChatMessage("user", text)),
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=1),
    )


async def test_streams_text_then_done_with_exact_usage(llama: LlamaCppBackend) -> None:
    events = [e async for e in llama.generate(ask("Say hello to Ada.", 16))]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    done = events[-1]
    assert isinstance(done, Done)
    assert text.strip()
    assert "<|im_end|>" not in text
    assert done.usage is not None
    assert not done.usage.estimated
    assert 20 < done.usage.prompt_tokens < 60
    assert 0 < done.usage.completion_tokens <= 16
    assert done.finish_reason in ("stop", "length")
    assert done.ttft_s is not None
    assert done.ttft_s <= done.duration_s


async def test_closing_the_stream_stops_generation_within_a_token_or_so(
    llama: LlamaCppBackend,
) -> None:
    deltas = 0
    async with aclosing(llama.generate(ask("Tell a very long story about a dragon.", 400))) as s:
        async for event in s:
            assert isinstance(event, TextDelta)
            deltas += 1
            if deltas == 3:
                break
        started = time.perf_counter()
    stopped_in = time.perf_counter() - started
    # closing waits for the worker thread to leave the token loop: ~1 token (10-30 ms) of work
    assert stopped_in < 1.0, f"generation took {stopped_in:.2f}s to stop"
    done = [e async for e in llama.generate(ask("Say yes.", 4))][-1]
    assert isinstance(done, Done)
    assert done.usage is not None
    assert done.usage.completion_tokens <= 4


async def test_compiled_prompt_count_matches_the_model_prompt(llama: LlamaCppBackend) -> None:
    spec = load_agent_spec(SAMPLE)
    parts = prompt_from_spec(
        spec, [ChatMessage("assistant", spec.greeting)], "What are your opening hours?"
    )
    compiled = compile_prompt(
        parts,
        llama.count_tokens,
        tool_mode=llama.tool_mode,
        message_overhead=llama.message_overhead,
    )
    request = replace(compiled.request, sampling=replace(compiled.request.sampling, max_tokens=4))
    done = [e async for e in llama.generate(request)][-1]
    assert isinstance(done, Done)
    assert done.usage is not None
    assert abs(done.usage.prompt_tokens - compiled.prompt_tokens) <= 8
