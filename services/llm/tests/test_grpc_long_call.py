"""A long call through the LanguageModel gRPC service with the real SmolLM2 model (llama.cpp):
with the history folded in blocks, the prompt tokens evaluated per turn stay bounded while the
tokens reused from the KV cache grow between folds, and every generation's span says both."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trunkline.agents import load_agent_spec
from trunkline.llm.backends import CallPolicy
from trunkline.llm.backends.llamacpp import LlamaCppBackend, LlamaCppConfig, smollm2_model_path
from trunkline.llm.convert import Limits
from trunkline.llm.core import HistoryPolicy
from trunkline.llm.server import LanguageModelService, ServingOptions
from trunkline.proto.common.v1 import call_pb2, knowledge_pb2
from trunkline.proto.llm.v1 import llm_pb2, llm_pb2_grpc

pytestmark = pytest.mark.integration

AGENTS = Path(__file__).resolve().parents[3] / "agents"
CONTEXT = call_pb2.CallContext(tenant_id="acme", call_id="long-call")
POLICY = HistoryPolicy(verbatim_tokens=160, fold_turns=3, summary_tokens=64)
QUESTIONS = (
    "Are you open on Saturday?",
    "How much is a check-up?",
    "Do you do teeth whitening?",
    "Is there parking near you?",
    "Can I bring my daughter too?",
    "Do you take dental insurance?",
    "What time do you close on Friday?",
    "Is the first visit longer?",
    "Can I pay by card?",
    "Where exactly are you?",
    "Do you have an emergency number?",
    "Thanks, can I book for Tuesday?",
)
FACTS = "[1] Acme Dental is open Monday to Friday 8 am to 6 pm and Saturday 9 am to 1 pm."


@pytest.fixture
def spans() -> Any:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider.get_tracer("test")
    provider.shutdown()


@pytest.fixture
async def backend(spans: Any) -> Any:
    """Closed after the server stopped (fixtures tear down in reverse order)."""
    llama = LlamaCppBackend(
        LlamaCppConfig(smollm2_model_path(), n_ctx=2048),
        policy=CallPolicy(first_token_timeout_s=300.0, total_timeout_s=600.0, retries=0),
        tracer=spans[1],
    )
    try:
        yield llama
    finally:
        await llama.aclose()


@pytest.mark.timeout(900)  # seconds on a quiet 2-core machine; minutes when it is shared
async def test_twelve_turns_evaluate_a_bounded_prompt_and_reuse_the_rest(
    spans: Any, backend: LlamaCppBackend, start_llm: Any
) -> None:
    exporter, tracer = spans
    await backend.start()
    limits = Limits(context_tokens=2048, default_max_tokens=12)
    servicer = LanguageModelService(backend, ServingOptions(limits, history=POLICY), tracer=tracer)
    servicer.mark_warm()
    stub = llm_pb2_grpc.LanguageModelStub(await start_llm(servicer))
    spec = load_agent_spec(AGENTS / "acme-dental.yaml")
    history = [llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content=spec.greeting)]
    turns = []
    for question in QUESTIONS:
        history.append(llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=question))
        request = llm_pb2.GenerateRequest(
            context=CONTEXT,
            prompt=llm_pb2.Prompt(
                system_prompt=spec.system_prompt,
                history=history,
                context_block=knowledge_pb2.ContextBlock(text=FACTS),
            ),
            sampling=llm_pb2.SamplingParams(max_tokens=8, temperature=0.0, seed=1),
        )
        done = [r async for r in stub.Generate(request)][-1].done
        usage = done.usage
        turns.append(
            {
                "prompt": usage.input_tokens,
                "reused": usage.cached_input_tokens,
                "evaluated": usage.input_tokens - usage.cached_input_tokens,
                "summarized": done.history_messages_summarized,
            }
        )
        history.append(llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content=done.text))

    assert turns[-1]["summarized"] > 0, "twelve turns are past the verbatim budget"
    summarized = [t["summarized"] for t in turns]
    assert summarized == sorted(summarized)
    folds = [i for i in range(1, len(turns)) if summarized[i] != summarized[i - 1]]
    assert len(folds) <= len(turns) // POLICY.fold_turns + 1
    # every turn after the first evaluates at most the summary, the verbatim budget, the context
    # block and the new turn (the system prompt is always reused), however long the call is
    first = turns[0]["evaluated"]
    bound = POLICY.summary_tokens + POLICY.verbatim_tokens + 120
    assert all(t["evaluated"] <= bound for t in turns[1:]), turns
    assert max(t["evaluated"] for t in turns[1:]) < first
    # between folds, only the last exchange, the context block and the new turn are evaluated,
    # and the reused part grows turn by turn
    steady = [i for i in range(1, len(turns)) if i not in folds]
    assert len(steady) >= 6
    assert all(turns[i]["evaluated"] <= 110 for i in steady), turns
    assert all(turns[i]["reused"] > turns[i - 1]["reused"] for i in steady), turns
    # the prompt stays bounded: without folding it would grow by every exchange
    assert turns[-1]["prompt"] <= first + POLICY.summary_tokens + POLICY.verbatim_tokens
    # what the caller sees in Usage, the generation's span says as evaluated vs cached
    generated = [s for s in exporter.get_finished_spans() if s.name == "llm.generate"]
    assert len(generated) == len(turns)
    for span, turn in zip(generated, turns, strict=True):
        attributes = dict(span.attributes or {})
        assert attributes["llm.prompt_tokens_evaluated"] == turn["evaluated"]
        assert attributes["llm.prompt_tokens_cached"] == turn["reused"]
    compiles = [s for s in exporter.get_finished_spans() if s.name == "llm.prompt_compile"]
    assert [dict(s.attributes or {})["llm.history_summarized"] for s in compiles] == summarized
    assert all(b >= a for a, b in pairwise(summarized))
