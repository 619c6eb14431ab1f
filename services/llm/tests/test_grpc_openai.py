"""The LanguageModel gRPC service over the ``openai`` backend, against llama.cpp's own
OpenAI-compatible server (``python -m llama_cpp.server``): the path vLLM takes in production."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from trunkline.llm.__main__ import prepare
from trunkline.llm.backends.factory import build_backend, served_model
from trunkline.llm.convert import Limits
from trunkline.llm.server import LanguageModelService, ServingOptions
from trunkline.llm.settings import LlmSettings
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.llm.v1 import llm_pb2, llm_pb2_grpc

pytestmark = pytest.mark.integration

CONTEXT = call_pb2.CallContext(tenant_id="acme", call_id="call-1")
ASK = llm_pb2.GenerateRequest(
    context=CONTEXT,
    prompt=llm_pb2.Prompt(
        system_prompt="You are brief.",
        history=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="Say hello.")],
    ),
    sampling=llm_pb2.SamplingParams(model="agent-model", max_tokens=12, temperature=0.0, seed=3),
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def servicer_for(settings: LlmSettings) -> LanguageModelService:
    limits = Limits(settings.context_size, settings.default_max_tokens)
    options = ServingOptions(limits, model=served_model(settings))
    return LanguageModelService(build_backend(settings), options)


async def test_generate_streams_through_the_openai_backend(
    llama_server: str, start_llm: Any
) -> None:
    settings = LlmSettings(backend="openai", openai_base_url=llama_server, model="smollm2")
    servicer = servicer_for(settings)
    await prepare(settings.model_copy(update={"warmup": False}), servicer)
    try:
        stub = llm_pb2_grpc.LanguageModelStub(await start_llm(servicer))
        responses = [r async for r in stub.Generate(ASK)]
        done = responses[-1].done
        deltas = "".join(r.delta.text for r in responses[:-1])
        assert deltas.strip(), done
        assert done.text == deltas
        assert done.model == "smollm2"  # LLM_MODEL: the name the server serves
        assert done.finish_reason in (llm_pb2.FINISH_REASON_STOP, llm_pb2.FINISH_REASON_LENGTH)
        assert 1 <= done.usage.output_tokens <= 12
        assert done.usage.input_tokens > 0
        assert done.time_to_first_token.ToNanoseconds() <= done.total_time.ToNanoseconds()
    finally:
        await servicer.backend.aclose()


async def test_a_server_that_does_not_answer_keeps_the_service_not_serving(
    start_llm: Any,
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/v1"
    settings = LlmSettings(backend="openai", openai_base_url=down, warmup=False)
    servicer = servicer_for(settings)
    loading = asyncio.create_task(prepare(settings, servicer))
    try:
        channel = await start_llm(servicer)
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await anext(aiter(llm_pb2_grpc.LanguageModelStub(channel).Generate(ASK)))
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "llm backend openai is not ready" in (error.value.details() or "")
        assert not loading.done()
    finally:
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
        await servicer.backend.aclose()
