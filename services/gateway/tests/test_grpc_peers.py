"""The gRPC peer clients against in-test grpc.aio servicers built on the generated bases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from trunkline.agents import AgentSpecError
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.events import Message
from trunkline.gateway.peers.base import PeerEnv, PeerUnavailableError
from trunkline.gateway.peers.grpc_common import PeerError
from trunkline.gateway.peers.grpc_context import GrpcContext, reply_source, retrieval_options
from trunkline.gateway.peers.grpc_llm import GrpcLanguageModel, generate_request
from trunkline.gateway.peers.grpc_stt import GrpcTranscriber
from trunkline.gateway.peers.grpc_tts import GrpcSynthesizer
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import (
    CallInfo,
    Citation,
    ContextResult,
    LlmRequest,
    Prefilled,
    StoredAnswer,
    TextDelta,
    ToolCallRequested,
    ToolResult,
    ToolRound,
    Transcript,
    Usage,
)
from trunkline.gateway.profile import load_profiles, parse_profile
from trunkline.proto.common.v1 import audio_pb2, knowledge_pb2, tool_pb2, usage_pb2
from trunkline.proto.context.v1 import context_pb2, context_pb2_grpc
from trunkline.proto.events.v1 import events_pb2
from trunkline.proto.llm.v1 import llm_pb2, llm_pb2_grpc
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc
from trunkline.proto.tts.v1 import tts_pb2, tts_pb2_grpc
from trunkline.runtime import channel
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.integration

CALL = CallInfo("CA1", "acme", "acme-dental", "1.0.0", caller_role="caller")
FAST = RetryPolicy(timeout_s=2.0, backoff_s=0.01, max_attempts=3)
Ctx = grpc.aio.ServicerContext[Any, Any]

PROFILE = parse_profile(
    """
name: acme-dental
version: 1.0.0
system_prompt: You are Ava.
greeting: Hi, this is Ava.
model: {name: smollm2, sampling: {temperature: 0.3, max_reply_tokens: 64, seed: 7}}
token_budget: {prompt_tokens: 1024}
voice: {name: en_US-joe-medium, speaking_rate: 1.1}
tools:
  - {name: lookup_account, description: Look up., allowed_roles: [caller],
     parameters: {type: object, properties: {id: {type: string}}}, endpoint: http://x}
  - {name: issue_refund, description: Refund., allowed_roles: [operator], endpoint: http://x}
retrieval: {top_k: 3, rank_mode: embedded, token_budget: 300, data_sources: [faq]}
"""
)


@asynccontextmanager
async def serving(
    add: Callable[[Any, grpc.aio.Server], None], servicer: object
) -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server()
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    chan = channel(f"127.0.0.1:{port}")
    try:
        yield chan
    finally:
        await chan.close()
        await server.stop(None)


def env(recorder: SpanRecorder) -> PeerEnv:
    return PeerEnv(SystemClock(), recorder.provider.get_tracer("test"))


# ---- STT ------------------------------------------------------------------------------------


class Stt(stt_pb2_grpc.SpeechToTextServicer):
    """Answers each request as it comes: a flush with a partial covering the audio so far
    ("heard N bytes" at the end of the text), the end of the utterance with a final."""

    def __init__(self) -> None:
        self.requests: list[stt_pb2.StreamingRecognizeRequest] = []
        self.fail_first: grpc.StatusCode | None = None
        self.always_fail: grpc.StatusCode | None = None
        self.calls = 0
        self.text = "what are your hours"
        self.finished = asyncio.Event()

    async def StreamingRecognize(  # noqa: N802
        self, request_iterator: AsyncIterator[stt_pb2.StreamingRecognizeRequest], context: Ctx
    ) -> AsyncIterator[stt_pb2.StreamingRecognizeResponse]:
        self.calls += 1
        fail = self.always_fail or (self.fail_first if self.calls == 1 else None)
        audio = bytearray()
        async for request in request_iterator:
            self.requests.append(request)
            if request.WhichOneof("request") == "audio":
                audio += request.audio
            elif fail is not None:  # at the flush, when the client is done writing (a status
                # while it still writes reaches it as INTERNAL, which it retries)
                await asyncio.sleep(0.05)  # its write of the flush has completed
                await context.abort(fail, "test")
            elif request.WhichOneof("request") == "control":
                final = request.control.action == stt_pb2.CONTROL_ACTION_END_OF_UTTERANCE
                text = f"{self.text} ({len(audio)})" if any(audio) else ""  # silence: no text
                transcript = stt_pb2.Transcript(is_final=final, text=text, confidence=0.9)
                transcript.processing_time.FromMilliseconds(42)
                transcript.audio_duration.FromNanoseconds(len(audio) * 31_250)
                yield stt_pb2.StreamingRecognizeResponse(transcript=transcript)
        self.finished.set()
        yield stt_pb2.StreamingRecognizeResponse(summary=stt_pb2.RecognitionSummary())


def kinds(requests: list[stt_pb2.StreamingRecognizeRequest]) -> list[str]:
    return [
        stt_pb2.ControlAction.Name(r.control.action)
        if r.HasField("control")
        else str(r.WhichOneof("request"))
        for r in requests
    ]


async def test_stt_streams_the_utterance_and_returns_the_final(span_recorder: SpanRecorder) -> None:
    servicer = Stt()
    audio = bytes(range(256)) * 50  # 12800 bytes: 4 chunks of 100 ms
    async with serving(stt_pb2_grpc.add_SpeechToTextServicer_to_server, servicer) as chan:
        stt = GrpcTranscriber(
            env(span_recorder),
            chan,
            language="en-US",
            phrase_hints=("Acme Dental", "Saturday"),
            phrase_boost=6.0,
        )
        heard = await stt.transcribe(CALL, audio)
        await stt.close()
        await asyncio.wait_for(servicer.finished.wait(), 2)  # the stream ends in the background
    assert heard == Transcript("what are your hours (12800)", pytest.approx(0.9))
    first, *rest = servicer.requests
    assert first.context.tenant_id == "acme"
    assert first.context.call_id == "CA1"
    assert first.config.audio_format.encoding == audio_pb2.AUDIO_ENCODING_PCM16
    assert first.config.audio_format.sample_rate_hz == 16000
    assert first.config.language == "en-US"
    assert list(first.config.phrase_hints) == ["Acme Dental", "Saturday"]
    assert first.config.phrase_boost == 6.0
    assert first.config.partial_results
    assert b"".join(r.audio for r in rest) == audio
    # the audio, a flush answered by a partial, then at close the end of the utterance
    assert kinds(rest) == ["audio"] * 4 + [
        "CONTROL_ACTION_FLUSH",
        "CONTROL_ACTION_END_OF_UTTERANCE",
    ]
    span = span_recorder.named("stt")
    assert span.attributes is not None
    assert span.attributes["stt.processing_ms"] == 42.0


async def test_stt_one_stream_per_utterance_fed_only_the_new_audio(
    span_recorder: SpanRecorder,
) -> None:
    servicer = Stt()
    speech = bytes(range(1, 201)) * 64  # 12800 bytes
    async with serving(stt_pb2_grpc.add_SpeechToTextServicer_to_server, servicer) as chan:
        stt = GrpcTranscriber(env(span_recorder), chan)
        read_ahead = await stt.transcribe(CALL, speech[:6400], "read_ahead_stt")
        turn = await stt.transcribe(CALL, speech)  # the same utterance, grown
        assert servicer.calls == 1
        next_one = await stt.transcribe(CALL, speech[::-1])  # the caller's next utterance
        await asyncio.wait_for(servicer.finished.wait(), 2)  # the first stream was ended
        await stt.close()
        await asyncio.sleep(0.1)
    assert (read_ahead.text, turn.text, next_one.text) == (
        "what are your hours (6400)",
        "what are your hours (12800)",
        "what are your hours (12800)",
    )
    assert servicer.calls == 2
    first_stream = kinds(servicer.requests[1:8])  # each 100 ms of audio was sent once
    flush, end = "CONTROL_ACTION_FLUSH", "CONTROL_ACTION_END_OF_UTTERANCE"
    assert first_stream == ["audio", "audio", flush, "audio", "audio", flush, end]


async def test_stt_no_final_is_no_speech(span_recorder: SpanRecorder) -> None:
    async with serving(stt_pb2_grpc.add_SpeechToTextServicer_to_server, Stt()) as chan:
        heard = await GrpcTranscriber(env(span_recorder), chan).transcribe(CALL, bytes(640))
    assert heard == Transcript("", 0.0)


async def test_stt_retries_unavailable_then_succeeds(span_recorder: SpanRecorder) -> None:
    servicer = Stt()
    servicer.fail_first = grpc.StatusCode.UNAVAILABLE
    async with serving(stt_pb2_grpc.add_SpeechToTextServicer_to_server, servicer) as chan:
        heard = await GrpcTranscriber(env(span_recorder), chan, policy=FAST).transcribe(
            CALL, b"\x01\x00" * 320
        )
    assert heard.text == "what are your hours (640)"
    assert servicer.calls == 2
    attributes = span_recorder.named("stt").attributes or {}
    assert attributes["attempts"] == 2
    assert [e.name for e in span_recorder.named("stt").events] == ["attempt failed"]


@pytest.mark.parametrize(
    ("code", "error", "calls"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, PeerUnavailableError, 3),
        (grpc.StatusCode.DEADLINE_EXCEEDED, PeerUnavailableError, 3),
        (grpc.StatusCode.INVALID_ARGUMENT, PeerError, 1),
    ],
)
async def test_stt_status_mapping(
    span_recorder: SpanRecorder, code: grpc.StatusCode, error: type[Exception], calls: int
) -> None:
    servicer = Stt()
    servicer.always_fail = code
    async with serving(stt_pb2_grpc.add_SpeechToTextServicer_to_server, servicer) as chan:
        with pytest.raises(error):
            await GrpcTranscriber(env(span_recorder), chan, policy=FAST).transcribe(
                CALL, b"\x01\x00" * 320
            )
    assert servicer.calls == calls


# ---- context --------------------------------------------------------------------------------


class Context(context_pb2_grpc.ContextServiceServicer):
    def __init__(self, response: context_pb2.ResolveResponse) -> None:
        self.response = response
        self.requests: list[context_pb2.ResolveRequest] = []
        self.stores: list[context_pb2.StoreAnswerRequest] = []

    async def Resolve(  # noqa: N802
        self, request: context_pb2.ResolveRequest, context: Ctx
    ) -> context_pb2.ResolveResponse:
        self.requests.append(request)
        return self.response

    async def StoreAnswer(  # noqa: N802
        self, request: context_pb2.StoreAnswerRequest, context: Ctx
    ) -> context_pb2.StoreAnswerResponse:
        self.stores.append(request)
        if request.policy.uses_live_data:
            return context_pb2.StoreAnswerResponse(stored=False, reason="uses_live_data")
        return context_pb2.StoreAnswerResponse(stored=True, entry_id=f"e{len(self.stores)}")


def stage(kind: context_pb2.ResolveStage.ValueType, ms: int) -> context_pb2.StageReport:
    report = context_pb2.StageReport(stage=kind, count_in=8, count_out=4)
    report.duration.FromMilliseconds(ms)
    return report


async def test_context_block_with_stage_spans(span_recorder: SpanRecorder) -> None:
    block = knowledge_pb2.ContextBlock(
        text="[faq#1] Open 8 to 6.\n\n[A-17] Balance 20 USD.",
        citations=[
            knowledge_pb2.Citation(
                id="faq#1", knowledge_base="faq", source_id="faq.md", kb_version="3", score=0.8
            ),
            knowledge_pb2.Citation(id="A-17", source_id="crm"),
        ],
        token_count=7,
    )
    response = context_pb2.ResolveResponse(
        context_block=block,
        retrieval_confidence=0.8,
        kb_version="faq=3",
        stages=[
            stage(context_pb2.RESOLVE_STAGE_CACHE_LOOKUP, 2),
            stage(context_pb2.RESOLVE_STAGE_SEMANTIC_SEARCH, 5),
            stage(context_pb2.RESOLVE_STAGE_RANK, 3),
        ],
    )
    servicer = Context(response)
    async with serving(context_pb2_grpc.add_ContextServiceServicer_to_server, servicer) as chan:
        result = await GrpcContext(env(span_recorder), chan, PROFILE.retrieval).resolve(
            CALL, "when are you open", {"account_id": "441729"}
        )
    faq = Citation("faq#1", "faq", "faq.md", score=pytest.approx(0.8), kb_version="3")  # type: ignore[arg-type]
    assert result == ContextResult(
        block="[faq#1] Open 8 to 6.\n\n[A-17] Balance 20 USD.",
        citations=("faq#1", "A-17"),
        confidence=pytest.approx(0.8),  # type: ignore[arg-type]
        kb_version="faq=3",
        token_count=7,
        sources=(faq, Citation("A-17", source_id="crm")),
    )
    assert result.uses_live_data
    request = servicer.requests[0]
    assert request.query == "when are you open"
    assert [(e.key, e.value) for e in request.entities] == [("account_id", "441729")]
    assert request.options.top_k == 3
    assert request.options.token_budget == 300
    assert request.options.rank_mode == context_pb2.RANK_MODE_EMBEDDED
    assert list(request.options.knowledge_bases) == ["faq"]
    parent = span_recorder.named("context")
    children = [s for s in span_recorder.spans() if s.name.startswith("context.")]
    assert [s.name for s in children] == [
        "context.cache_lookup",
        "context.semantic_search",
        "context.rank",
    ]
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id
    search = children[1]
    assert search.end_time is not None
    assert search.start_time is not None
    assert search.end_time - search.start_time == 5_000_000
    assert children[0].end_time == search.start_time


async def test_context_cache_hit_carries_the_answer(span_recorder: SpanRecorder) -> None:
    hit = context_pb2.CacheHit(answer="We open at 8.", similarity=0.97)
    servicer = Context(context_pb2.ResolveResponse(cache_hit=hit))
    async with serving(context_pb2_grpc.add_ContextServiceServicer_to_server, servicer) as chan:
        result = await GrpcContext(env(span_recorder), chan).resolve(CALL, "hours?")
    assert result.cached_answer == "We open at 8."
    assert result.confidence == pytest.approx(0.97)


async def test_store_answer_sends_the_turn_and_reports_refusals(
    span_recorder: SpanRecorder,
) -> None:
    call = replace(CALL, caller_role="customer")
    answer = StoredAnswer(
        query="when are you open",
        answer="We open at 8.",
        citations=(Citation("faq#1", "faq", "faq.md", "Hours", "kb://faq", 0.5, "3"),),
        kb_version="faq=3",
        generated="We open at 8.",
        grounded=True,
        reply_source="knowledge",
        tool_calls=0,
        retrieval_confidence=0.75,
    )
    servicer = Context(context_pb2.ResolveResponse())
    async with serving(context_pb2_grpc.add_ContextServiceServicer_to_server, servicer) as chan:
        source = GrpcContext(env(span_recorder), chan)
        assert await source.store_answer(call, answer)
        assert not await source.store_answer(call, replace(answer, uses_live_data=True))
    request = servicer.stores[0]
    assert request.context.tenant_id == "acme"
    assert request.context.call_id == "CA1"
    assert request.context.caller.role == "customer"
    assert (request.context.agent.name, request.context.agent.version) == ("acme-dental", "1.0.0")
    assert not request.context.shadow
    assert (request.query, request.answer, request.kb_version) == (
        "when are you open",
        "We open at 8.",
        "faq=3",
    )
    assert [
        (c.id, c.knowledge_base, c.source_id, c.title, c.uri, c.kb_version)
        for c in request.citations
    ] == [("faq#1", "faq", "faq.md", "Hours", "kb://faq", "3")]
    assert request.citations[0].score == pytest.approx(0.5)
    assert not request.policy.uses_live_data
    facts = request.facts
    assert (facts.generated, facts.grounded, facts.interrupted, facts.human_written) == (
        "We open at 8.",
        True,
        False,
        False,
    )
    assert facts.reply_source == events_pb2.REPLY_SOURCE_KNOWLEDGE
    assert facts.retrieval_confidence == pytest.approx(0.75)
    assert servicer.stores[1].facts.uses_live_data
    assert reply_source("small_talk") == events_pb2.REPLY_SOURCE_SMALL_TALK
    assert reply_source("no-such-source") == events_pb2.REPLY_SOURCE_UNSPECIFIED
    assert servicer.stores[1].policy.uses_live_data
    spans = [s for s in span_recorder.spans() if s.name == "context.store_answer"]
    assert [s.attributes["cache.stored"] for s in spans if s.attributes] == [True, False]
    assert spans[1].attributes is not None
    assert spans[1].attributes["cache.refused"] == "uses_live_data"


async def test_context_empty_or_unimplemented_is_an_empty_context(
    span_recorder: SpanRecorder,
) -> None:
    servicer = Context(context_pb2.ResolveResponse())
    async with serving(context_pb2_grpc.add_ContextServiceServicer_to_server, servicer) as chan:
        assert await GrpcContext(env(span_recorder), chan).resolve(CALL, "hi") == ContextResult()
    bare = context_pb2_grpc.ContextServiceServicer()  # every RPC answers UNIMPLEMENTED
    async with serving(context_pb2_grpc.add_ContextServiceServicer_to_server, bare) as chan:
        assert await GrpcContext(env(span_recorder), chan).resolve(CALL, "hi") == ContextResult()


# ---- LLM ------------------------------------------------------------------------------------


class Llm(llm_pb2_grpc.LanguageModelServicer):
    def __init__(self) -> None:
        self.requests: list[llm_pb2.GenerateRequest] = []
        self.prefills: list[llm_pb2.PrefillRequest] = []
        self.hold = asyncio.Event()
        self.held = False
        self.cancelled = asyncio.Event()

    async def Generate(  # noqa: N802
        self, request: llm_pb2.GenerateRequest, context: Ctx
    ) -> AsyncIterator[llm_pb2.GenerateResponse]:
        self.requests.append(request)
        try:
            yield llm_pb2.GenerateResponse(delta=llm_pb2.TextDelta(text="We open"))
            if self.held:
                await self.hold.wait()
            yield llm_pb2.GenerateResponse(delta=llm_pb2.TextDelta(text=" at 8."))
            call = tool_pb2.ToolCall(id="t1", name="lookup_account", arguments_json='{"id":"7"}')
            yield llm_pb2.GenerateResponse(tool_call=call)
            done = llm_pb2.GenerateDone(
                finish_reason=llm_pb2.FINISH_REASON_STOP,
                usage=usage_pb2.Usage(input_tokens=120, output_tokens=5),
                model="smollm2",
            )
            done.prompt_compile_time.FromMilliseconds(3)
            done.time_to_first_token.FromMilliseconds(61)
            yield llm_pb2.GenerateResponse(done=done)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def Prefill(  # noqa: N802
        self, request: llm_pb2.PrefillRequest, context: Ctx
    ) -> llm_pb2.PrefillResponse:
        self.prefills.append(request)
        return llm_pb2.PrefillResponse(
            prompt_tokens=300, evaluated_tokens=40, reused_tokens=259, completed=True
        )


def llm_request() -> LlmRequest:
    history = (
        Message("agent", "Hi, this is Ava."),
        Message("user", "hello"),
        Message("agent", "How can I", truncated=True),
    )
    context = ContextResult(block="[faq#1] Open 8 to 6.", citations=("faq#1",))
    return LlmRequest(CALL, "when do you open", history, context)


async def test_llm_streams_deltas_tools_and_usage(span_recorder: SpanRecorder) -> None:
    servicer = Llm()
    async with serving(llm_pb2_grpc.add_LanguageModelServicer_to_server, servicer) as chan:
        model = GrpcLanguageModel(env(span_recorder), chan, PROFILE)
        events = [event async for event in model.generate(llm_request())]
    assert events == [
        TextDelta("We open"),
        TextDelta(" at 8."),
        ToolCallRequested("t1", "lookup_account", '{"id":"7"}'),
        Usage(prompt_tokens=120, completion_tokens=5, prompt_compile_s=0.003),
    ]
    request = servicer.requests[0]
    assert request.context.agent.name == "acme-dental"
    assert request.context.agent.version == "1.0.0"
    prompt = request.prompt
    assert prompt.system_prompt == "You are Ava."
    assert [(m.role, m.content, m.truncated) for m in prompt.history] == [
        (llm_pb2.ROLE_ASSISTANT, "Hi, this is Ava.", False),
        (llm_pb2.ROLE_USER, "hello", False),
        (llm_pb2.ROLE_ASSISTANT, "How can I", True),
        (llm_pb2.ROLE_USER, "when do you open", False),
    ]
    assert prompt.context_block.text == "[faq#1] Open 8 to 6."
    assert [c.id for c in prompt.context_block.citations] == ["faq#1"]
    assert [t.name for t in prompt.tools] == ["lookup_account"]  # the caller may not refund
    assert '"id"' in prompt.tools[0].parameters_json_schema
    assert prompt.max_prompt_tokens == 1024
    assert request.sampling.max_tokens == 64
    assert request.sampling.seed == 7
    assert request.sampling.temperature == pytest.approx(0.3)
    attributes = span_recorder.named("llm").attributes or {}
    assert attributes["llm.prompt_compile_ms"] == 3.0
    assert attributes["llm.server_ttft_ms"] == 61.0
    assert "llm_ttft_ms" in attributes


async def test_llm_prefill_sends_what_the_next_generate_sends_before_its_turn(
    span_recorder: SpanRecorder,
) -> None:
    servicer = Llm()
    request = llm_request()
    async with serving(llm_pb2_grpc.add_LanguageModelServicer_to_server, servicer) as chan:
        model = GrpcLanguageModel(env(span_recorder), chan, PROFILE)
        done = await model.prefill(CALL, request.history)
        _ = [event async for event in model.generate(request)]
    assert done == Prefilled(evaluated_tokens=40, reused_tokens=259, completed=True)
    prefill, generate = servicer.prefills[0], servicer.requests[0]
    assert prefill.context == generate.context
    assert prefill.sampling == generate.sampling
    assert prefill.prompt.system_prompt == generate.prompt.system_prompt
    assert list(prefill.prompt.tools) == list(generate.prompt.tools)
    assert list(prefill.prompt.history) == list(generate.prompt.history)[:-1]  # not the turn
    assert not prefill.prompt.HasField("context_block")
    attributes = span_recorder.named("llm.prefill").attributes or {}
    assert attributes["llm.prefill_evaluated"] == 40
    async with serving(llm_pb2_grpc.add_LanguageModelServicer_to_server, servicer) as chan:
        model = GrpcLanguageModel(env(span_recorder), chan, PROFILE)
        await model.prefill(CALL, request.history, request.context, partial="when do")
    ahead = servicer.prefills[1].prompt
    assert list(ahead.history)[:-1] == list(generate.prompt.history)[:-1]
    assert (ahead.history[-1].role, ahead.history[-1].content) == (llm_pb2.ROLE_USER, "when do")
    assert ahead.context_block == generate.prompt.context_block


async def test_llm_prefill_failure_returns_none(span_recorder: SpanRecorder) -> None:
    chan = channel("127.0.0.1:1")  # nothing listens: UNAVAILABLE
    try:
        model = GrpcLanguageModel(env(span_recorder), chan, PROFILE, FAST)
        assert await model.prefill(CALL, llm_request().history) is None
    finally:
        await chan.close()
    attributes = span_recorder.named("llm.prefill").attributes or {}
    assert str(attributes["llm.prefill_failed"]).startswith("PeerUnavailableError")


async def test_llm_close_cancels_generation(span_recorder: SpanRecorder) -> None:
    servicer = Llm()
    servicer.held = True
    async with serving(llm_pb2_grpc.add_LanguageModelServicer_to_server, servicer) as chan:
        model = GrpcLanguageModel(env(span_recorder), chan, PROFILE)
        async with aclosing(model.generate(llm_request())) as stream:
            assert await anext(stream) == TextDelta("We open")
        await asyncio.wait_for(servicer.cancelled.wait(), 5)


async def test_llm_unavailable_is_retried(span_recorder: SpanRecorder) -> None:
    # nothing listens on this port: UNAVAILABLE on every attempt
    chan = channel("127.0.0.1:1")
    try:
        model = GrpcLanguageModel(env(span_recorder), chan, PROFILE, FAST)
        with pytest.raises(PeerUnavailableError):
            async for _ in model.generate(llm_request()):
                pass
    finally:
        await chan.close()
    events = span_recorder.named("llm").events
    assert [e.name for e in events].count("attempt failed") == 3


# ---- TTS ------------------------------------------------------------------------------------


class Tts(tts_pb2_grpc.TextToSpeechServicer):
    def __init__(self) -> None:
        self.requests: list[tts_pb2.StreamingSynthesizeRequest] = []
        self.hold = asyncio.Event()
        self.held = False
        self.cancelled = asyncio.Event()

    async def StreamingSynthesize(  # noqa: N802
        self, request_iterator: AsyncIterator[tts_pb2.StreamingSynthesizeRequest], context: Ctx
    ) -> AsyncIterator[tts_pb2.StreamingSynthesizeResponse]:
        try:
            async for request in request_iterator:
                self.requests.append(request)
                if request.WhichOneof("request") != "text":
                    continue
                clause = request.text.clause_id
                # 1 s of audio in chunks of odd sizes: 641 + 640*48 + 639 bytes
                sizes = [641, *([640] * 48), 639]
                for seq, size in enumerate(sizes):
                    chunk = tts_pb2.AudioChunk(clause_id=clause, sequence=seq, audio=b"\x05" * size)
                    yield tts_pb2.StreamingSynthesizeResponse(audio=chunk)
                    if self.held and seq == 0:
                        await self.hold.wait()
                done = tts_pb2.ClauseDone(clause_id=clause, chunk_count=len(sizes))
                done.time_to_first_audio.FromMilliseconds(70)
                yield tts_pb2.StreamingSynthesizeResponse(clause_done=done)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def test_tts_streams_clause_audio_as_whole_samples(span_recorder: SpanRecorder) -> None:
    servicer = Tts()
    async with serving(tts_pb2_grpc.add_TextToSpeechServicer_to_server, servicer) as chan:
        tts = GrpcSynthesizer(env(span_recorder), chan, PROFILE.voice)
        chunks = [pcm async for pcm in tts.synthesize(CALL, "We open at eight.")]
    assert all(len(c) % 2 == 0 for c in chunks)
    assert b"".join(chunks) == b"\x05" * 32000
    config, text = servicer.requests
    assert config.context.tenant_id == "acme"
    assert config.config.voice == "en_US-joe-medium"
    assert config.config.speaking_rate == pytest.approx(1.1)
    assert config.config.audio_format.sample_rate_hz == 16000
    assert text.text.text == "We open at eight."
    attributes = span_recorder.named("tts").attributes or {}
    assert attributes["tts.server_ttfa_ms"] == 70.0


async def test_tts_close_cancels_the_clause(span_recorder: SpanRecorder) -> None:
    servicer = Tts()
    servicer.held = True
    async with serving(tts_pb2_grpc.add_TextToSpeechServicer_to_server, servicer) as chan:
        tts = GrpcSynthesizer(env(span_recorder), chan)
        async with aclosing(tts.synthesize(CALL, "We open at eight.")) as stream:
            assert len(await anext(stream)) == 640
        await asyncio.wait_for(servicer.cancelled.wait(), 5)


class ReplyTts(tts_pb2_grpc.TextToSpeechServicer):
    """Like the tts service: reads requests in its own task, so a cancel overtakes the audio
    of the clause in progress (each clause: 10 chunks of 20 ms, 10 ms apart)."""

    def __init__(self) -> None:
        self.streams: list[list[str]] = []  # per stream: what came in ("text:..." / "cancel:...")

    async def StreamingSynthesize(  # noqa: N802
        self, request_iterator: AsyncIterator[tts_pb2.StreamingSynthesizeRequest], context: Ctx
    ) -> AsyncIterator[tts_pb2.StreamingSynthesizeResponse]:
        seen: list[str] = []
        self.streams.append(seen)
        texts: asyncio.Queue[str | None] = asyncio.Queue()
        cancelled = asyncio.Event()

        async def read() -> None:
            async for request in request_iterator:
                match request.WhichOneof("request"):
                    case "text":
                        seen.append(f"text:{request.text.text}")
                        texts.put_nowait(request.text.clause_id)
                    case "cancel":
                        seen.append(f"cancel:{request.cancel.reason}")
                        cancelled.set()
            texts.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (clause := await texts.get()) is not None:
                for seq in range(10):
                    if cancelled.is_set():
                        cancelled.clear()
                        ack = tts_pb2.SynthesisCancelled(clause_ids=[clause])
                        yield tts_pb2.StreamingSynthesizeResponse(cancelled=ack)
                        break
                    chunk = tts_pb2.AudioChunk(clause_id=clause, sequence=seq, audio=bytes(640))
                    yield tts_pb2.StreamingSynthesizeResponse(audio=chunk)
                    await asyncio.sleep(0.01)
                else:
                    done = tts_pb2.ClauseDone(clause_id=clause, chunk_count=10)
                    yield tts_pb2.StreamingSynthesizeResponse(clause_done=done)
        finally:
            reader.cancel()


async def test_tts_one_stream_per_reply_its_clauses_in_order_and_cancel_on_barge_in(
    span_recorder: SpanRecorder,
) -> None:
    servicer = ReplyTts()
    async with serving(tts_pb2_grpc.add_TextToSpeechServicer_to_server, servicer) as chan:
        tts = GrpcSynthesizer(env(span_recorder), chan)
        reply = tts.reply(CALL)
        first = b"".join([pcm async for pcm in reply.say("We open at eight.")])
        second = b"".join([pcm async for pcm in reply.say("On Saturdays too.")])
        reply.close()  # its clauses are done: the stream goes
        assert (len(first), len(second)) == (6400, 6400)
        assert servicer.streams == [["text:We open at eight.", "text:On Saturdays too."]]

        cut_off = tts.reply(CALL)  # the caller barges in after the first chunk
        async with aclosing(cut_off.say("Our prices start at fifty dollars.")) as audio:
            assert len(await anext(audio)) == 640
        again = b"".join([pcm async for pcm in cut_off.say("Go ahead.")])  # the stream goes on
        cut_off.close()
    assert len(again) == 6400
    assert servicer.streams[1] == [
        "text:Our prices start at fifty dollars.",
        "cancel:barge-in",
        "text:Go ahead.",
    ]


SAMPLE = Path(__file__).parents[3] / "agents" / "acme-dental.yaml"


def test_the_sample_agent_loads_as_a_profile() -> None:
    agents = SAMPLE.parent
    profile = load_profiles(agents)["acme-dental"]
    assert profile.greeting.startswith("Thank you for calling Acme Dental")
    assert profile.filler_text == "One moment, please."
    assert [t.name for t in profile.tools_for_role("caller")] == [
        "lookup_account",
        "book_appointment",
    ]
    assert retrieval_options(profile.retrieval).rank_mode == context_pb2.RANK_MODE_EMBEDDED
    # the STT vocabulary: the spec's texts and the knowledge beside it (agents/acme-dental/)
    vocabulary = profile.stt.vocabulary
    assert vocabulary[:2] == ("Acme Dental", "Monday")
    assert {"Saturday", "Ava", "Teeth whitening"} <= set(vocabulary)
    assert "Teeth whitening" not in parse_profile(SAMPLE.read_text()).stt.vocabulary
    with pytest.raises(AgentSpecError):
        parse_profile("name: x\nversion: 1\nsystem_prompt: s\ngreeting: g\ntypo_key: 1\n")


def test_tool_rounds_follow_the_user_turn_as_assistant_calls_and_tool_results() -> None:
    results = (ToolResult("t1", "lookup_account", '{"account_id":"7"}', '{"name":"Dana"}'),)
    request = replace(llm_request(), tool_rounds=(ToolRound("Let me check.", results),))
    history = generate_request(PROFILE, request).prompt.history
    assert [m.role for m in history[-3:]] == [
        llm_pb2.ROLE_USER,
        llm_pb2.ROLE_ASSISTANT,
        llm_pb2.ROLE_TOOL,
    ]
    asked, answer = history[-2], history[-1]
    assert asked.content == "Let me check."
    assert [(c.id, c.name, c.arguments_json) for c in asked.tool_calls] == [
        ("t1", "lookup_account", '{"account_id":"7"}')
    ]
    assert (answer.tool_call_id, answer.tool_name, answer.content) == (
        "t1",
        "lookup_account",
        '{"name":"Dana"}',
    )


async def test_cancelling_the_turn_task_cancels_the_generate_rpc(
    span_recorder: SpanRecorder,
) -> None:
    """Speculative work dropped when speech resumes: the task is cancelled mid-stream."""
    servicer = Llm()
    servicer.held = True
    async with serving(llm_pb2_grpc.add_LanguageModelServicer_to_server, servicer) as chan:
        model = GrpcLanguageModel(env(span_recorder), chan, PROFILE)
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in model.generate(llm_request()):
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.wait_for(servicer.cancelled.wait(), 5)
