"""The LanguageModel gRPC service with the real SmolLM2 model (llama.cpp) on an in-process server:
readiness follows loading and warm-up, text streams with usage and timing, and a client that
cancels mid-stream stops the model within a token or two and frees it for the next request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from trunkline.agents import load_agent_spec
from trunkline.llm.__main__ import prepare
from trunkline.llm.backends.llamacpp import (
    Job,
    LlamaCppBackend,
    LlamaCppConfig,
    smollm2_model_path,
)
from trunkline.llm.convert import Limits
from trunkline.llm.server import LanguageModelService, ServingOptions
from trunkline.llm.settings import LlmSettings
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.llm.v1 import llm_pb2, llm_pb2_grpc

pytestmark = pytest.mark.integration

AGENTS = Path(__file__).resolve().parents[3] / "agents"
CONTEXT = call_pb2.CallContext(tenant_id="acme", call_id="call-1")
MODEL = "smollm2-135m-instruct"


class WatchedLlama(LlamaCppBackend):
    """Records when the worker thread put each piece of text and when it left the token loop."""

    def __init__(self, config: LlamaCppConfig) -> None:
        super().__init__(config)
        self.puts: list[float] = []
        self.ended = threading.Event()
        self.end: tuple[Any, float] | None = None

    def _generate(self, job: Job, cancel: threading.Event, put: Callable[[Any], None]) -> Any:
        self.ended.clear()

        def timed_put(item: Any) -> None:
            self.puts.append(time.perf_counter())
            put(item)

        end = super()._generate(job, cancel, timed_put)
        self.end = (end, time.perf_counter())
        self.ended.set()
        return end


def servicer_for(backend: LlamaCppBackend) -> LanguageModelService:
    limits = Limits(context_tokens=backend.config.n_ctx, default_max_tokens=64)
    return LanguageModelService(backend, ServingOptions(limits, model=MODEL))


def ask(text: str, max_tokens: int) -> llm_pb2.GenerateRequest:
    return llm_pb2.GenerateRequest(
        context=CONTEXT,
        prompt=llm_pb2.Prompt(
            system_prompt="You are brief.",
            history=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=text)],
        ),
        sampling=llm_pb2.SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=1),
    )


@pytest.fixture
async def llama() -> Any:
    backend = WatchedLlama(LlamaCppConfig(smollm2_model_path(), n_ctx=2048))
    try:
        yield backend
    finally:
        await backend.aclose()


async def test_serving_only_after_the_model_is_loaded_and_agents_warmed(
    llama: WatchedLlama, start_llm: Any
) -> None:
    settings = LlmSettings(agents_dir=AGENTS, warmup=True)
    servicer = servicer_for(llama)
    channel = await start_llm(servicer)
    stub = llm_pb2_grpc.LanguageModelStub(channel)
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
    statuses = aiter(watch)
    assert (await anext(statuses)).status == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.CountTokens(llm_pb2.CountTokensRequest(context=CONTEXT, text="hi"))
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE

    loading = asyncio.create_task(prepare(settings, servicer))
    assert (await anext(statuses)).status == health_pb2.HealthCheckResponse.SERVING
    assert loading.done()  # SERVING came only after loading and warming finished
    assert llama.loaded
    watch.cancel()

    spec = load_agent_spec(AGENTS / "acme-dental.yaml")
    tools = [
        llm_pb2.ToolSchema(name=t.name, description=t.description, parameters_json_schema="")
        for t in spec.tools_for_role("caller")
    ]
    responses = [
        r
        async for r in stub.Generate(
            llm_pb2.GenerateRequest(
                context=CONTEXT,
                prompt=llm_pb2.Prompt(
                    system_prompt=spec.system_prompt,
                    history=[
                        llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content=spec.greeting),
                        llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="When are you open?"),
                    ],
                    tools=tools,
                ),
                sampling=llm_pb2.SamplingParams(max_tokens=8, temperature=0.0),
            )
        )
    ]
    done = responses[-1].done
    assert done.usage.input_tokens > 300  # the agent prompt with its tool instructions
    assert 0 < done.usage.output_tokens <= 8


async def test_streams_text_with_usage_and_timing(llama: WatchedLlama, start_llm: Any) -> None:
    await llama.start()
    servicer = servicer_for(llama)
    servicer.mark_warm()
    stub = llm_pb2_grpc.LanguageModelStub(await start_llm(servicer))
    responses = [r async for r in stub.Generate(ask("Say hello to Ada.", 16))]
    kinds = [r.WhichOneof("event") for r in responses]
    assert kinds[-1] == "done"
    assert set(kinds[:-1]) == {"delta"}
    done = responses[-1].done
    text = "".join(r.delta.text for r in responses[:-1])
    assert text.strip()
    assert done.text == text
    assert done.model == MODEL
    assert done.finish_reason in (llm_pb2.FINISH_REASON_STOP, llm_pb2.FINISH_REASON_LENGTH)
    assert 20 < done.usage.input_tokens < 60
    assert 0 < done.usage.output_tokens <= 16
    compile_ns = done.prompt_compile_time.ToNanoseconds()
    assert 0 < compile_ns < done.time_to_first_token.ToNanoseconds()
    assert done.time_to_first_token.ToNanoseconds() <= done.total_time.ToNanoseconds()


async def test_cancel_mid_stream_stops_the_model_and_frees_it(
    llama: WatchedLlama, start_llm: Any
) -> None:
    await llama.start()
    servicer = servicer_for(llama)
    servicer.mark_warm()
    stub = llm_pb2_grpc.LanguageModelStub(await start_llm(servicer))
    call = stub.Generate(ask("Tell a very long story about a dragon.", 400))
    for _ in range(3):
        response = await call.read()
        assert response.WhichOneof("event") == "delta"
    cancelled_at = time.perf_counter()
    call.cancel()
    assert await call.code() == grpc.StatusCode.CANCELLED
    assert await asyncio.to_thread(llama.ended.wait, 10.0)
    assert llama.end is not None
    end, ended_at = llama.end
    after_cancel = sum(1 for t in llama.puts if t > cancelled_at)
    assert end.reason == "cancelled"
    assert end.completion_tokens < 400
    # the worker checks the cancel flag between tokens: at most a token or two after the cancel
    assert after_cancel <= 2, f"{after_cancel} pieces of text after the client cancelled"
    assert ended_at - cancelled_at < 1.0, f"stopped {ended_at - cancelled_at:.3f}s after cancel"

    # the model is free: the next request runs now, not after the 400 tokens asked before
    llama.puts.clear()
    responses = [r async for r in stub.Generate(ask("Say yes.", 4))]
    assert responses[-1].done.usage.output_tokens <= 4
    assert llama.end is not None
    assert llama.end[0].reason != "cancelled"


async def warm_stub(llama: WatchedLlama, start_llm: Any) -> llm_pb2_grpc.LanguageModelStub:
    await llama.start()
    servicer = servicer_for(llama)
    servicer.mark_warm()
    return llm_pb2_grpc.LanguageModelStub(await start_llm(servicer))


async def prefill(
    stub: llm_pb2_grpc.LanguageModelStub, prompt: llm_pb2.Prompt, sampling: llm_pb2.SamplingParams
) -> llm_pb2.PrefillResponse:
    request = llm_pb2.PrefillRequest(context=CONTEXT, prompt=prompt, sampling=sampling)
    response: llm_pb2.PrefillResponse = await stub.Prefill(request)
    return response


async def generate_usage(
    stub: llm_pb2_grpc.LanguageModelStub, prompt: llm_pb2.Prompt, sampling: llm_pb2.SamplingParams
) -> Any:
    request = llm_pb2.GenerateRequest(context=CONTEXT, prompt=prompt, sampling=sampling)
    responses = [r async for r in stub.Generate(request)]
    return responses[-1].done.usage


async def test_prefill_evaluates_the_known_prompt_and_generate_reuses_it(
    llama: WatchedLlama, start_llm: Any
) -> None:
    stub = await warm_stub(llama, start_llm)
    spec = load_agent_spec(AGENTS / "acme-dental.yaml")
    history = [
        llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content=spec.greeting),
        llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="When are you open?"),
        llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content="From eight to six."),
    ]
    prompt = llm_pb2.Prompt(system_prompt=spec.system_prompt, history=history)
    sampling = llm_pb2.SamplingParams(max_tokens=6, temperature=0.0)
    done = await prefill(stub, prompt, sampling)
    assert done.completed
    assert done.evaluated_tokens + done.reused_tokens == done.prompt_tokens - 1
    assert done.evaluated_tokens > 50  # a cold cache: the system prompt and the history
    assert done.total_time.ToNanoseconds() > 0

    prompt.history.append(llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="And Saturday?"))
    prompt.context_block.text = "[1] Saturday: 9 am to 1 pm."
    usage = await generate_usage(stub, prompt, sampling)
    assert usage.cached_input_tokens >= done.prompt_tokens - 3  # all but the reply header
    assert usage.input_tokens - usage.cached_input_tokens < 60  # context block and question


async def test_prefill_rejects_a_prompt_without_system_prompt(
    llama: WatchedLlama, start_llm: Any
) -> None:
    stub = await warm_stub(llama, start_llm)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Prefill(llm_pb2.PrefillRequest(context=CONTEXT, prompt=llm_pb2.Prompt()))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "system_prompt" in (error.value.details() or "")


async def test_a_prefill_with_the_context_block_leaves_only_the_question(
    llama: WatchedLlama, start_llm: Any
) -> None:
    stub = await warm_stub(llama, start_llm)
    spec = load_agent_spec(AGENTS / "acme-dental.yaml")
    prompt = llm_pb2.Prompt(
        system_prompt=spec.system_prompt,
        history=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content=spec.greeting)],
    )
    prompt.context_block.text = "[1] Parking is free behind the building.\n[2] Bus 4 stops outside."
    sampling = llm_pb2.SamplingParams(max_tokens=4, temperature=0.0)
    done = await prefill(stub, prompt, sampling)
    assert done.completed
    prompt.history.append(
        llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="Is there parking near the office?")
    )
    usage = await generate_usage(stub, prompt, sampling)
    assert usage.cached_input_tokens >= done.prompt_tokens - 3  # through the context block
    assert usage.input_tokens - usage.cached_input_tokens < 20  # the question and its header

    # read ahead with the turn so far: the final transcript leaves a few tokens to evaluate
    prompt.history[-1].content = "Is there parking"
    done = await prefill(stub, prompt, sampling)
    assert done.completed
    prompt.history[-1].content = "Is there parking near the office?"
    usage = await generate_usage(stub, prompt, sampling)
    assert usage.input_tokens - usage.cached_input_tokens <= 10  # " near the office?" + header
