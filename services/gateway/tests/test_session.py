from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.events import Message, State
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
    FakeTransport,
    RecordingSink,
)
from trunkline.gateway.fillers import FillerCache
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo, Citation, ContextResult, StoredAnswer
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

VOICE = b"\x00\x10" * 320
SILENCE = b"\x00\x00" * 320
CALL = CallInfo("CA1", "acme", "support", "v3")
POLICY = RetryPolicy(timeout_s=0.5, backoff_s=0.1, max_backoff_s=0.2)


@dataclass
class Rig:
    clock: FakeClock
    transport: FakeTransport
    stt: FakeTranscriber
    context: FakeContext
    llm: FakeLanguageModel
    tts: FakeSynthesizer
    sink: RecordingSink
    session: CallSession
    spans: InMemorySpanExporter
    task: asyncio.Task[object] | None = None

    async def settle(self) -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def frames(self, pcm: bytes, n: int) -> None:
        for _ in range(n):
            self.clock.advance(0.02)
            self.transport.frame(pcm)
            await self.settle()

    async def until(self, condition: object, max_frames: int = 500) -> None:
        for _ in range(max_frames):
            if condition():  # type: ignore[operator]
                return
            await self.frames(SILENCE, 1)
        raise AssertionError("condition not reached")

    async def hang_up(self) -> None:
        self.transport.hang_up()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
def rig(spans: InMemorySpanExporter) -> Rig:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    clock = FakeClock(1000.0)
    env = PeerEnv(clock, provider.get_tracer("test"))
    transport = FakeTransport(clock.now)
    stt = FakeTranscriber(env, lambda audio: "what are your hours", POLICY)
    context = FakeContext(env)
    llm = FakeLanguageModel(env, lambda text: "We are open nine to five. See you soon.", POLICY)
    tts = FakeSynthesizer(env, frames_per_word=2, policy=POLICY)
    sink = RecordingSink()
    config = SessionConfig(
        turn=TurnConfig(
            endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200),
            filler_after_s=0.6,
            filler_repeat_s=5.0,
        ),
        greeting="Hello, thanks for calling.",
        grounding_texts=("We are open nine to five.",),  # the agent's prompt: the guard's support
    )
    session = CallSession(
        CALL,
        transport,
        Peers(stt, context, llm, tts),
        EnergyDetector(),
        sink,
        clock=clock,
        tracer=provider.get_tracer("gateway"),
        fillers=FillerCache(clock, deadline_s=0.3),
        config=config,
    )
    return Rig(clock, transport, stt, context, llm, tts, sink, session, spans)


async def start(rig: Rig) -> None:
    rig.task = asyncio.create_task(rig.session.run())
    await rig.settle()


async def test_a_call_greets_answers_and_reports(rig: Rig) -> None:
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    assert rig.sink.turns[0].greeting
    assert rig.sink.turns[0].agent_text == "Hello, thanks for calling."
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await rig.hang_up()
    turn = rig.sink.turns[1]
    assert turn.user_text == "what are your hours"
    assert turn.agent_text == "We are open nine to five. See you soon."
    assert not turn.interrupted
    assert turn.voice_to_voice_s is not None
    assert 0.17 < turn.voice_to_voice_s < 0.25  # 200 ms of silence incl. the first frame
    stages = {"endpointing", "stt", "context", "llm_ttft", "llm_first_clause", "tts_ttfa"}
    assert stages <= set(turn.stage_s)
    assert turn.stage_s["llm_ttft"] <= turn.stage_s["llm_first_clause"]
    assert turn.completion_tokens > 0
    assert rig.llm.requests[0].history == (Message("agent", "Hello, thanks for calling."),)
    assert [kind for kind, _ in rig.sink.events] == [
        "call.started",
        "turn.completed",
        "turn.completed",
        "call.ended",
    ]
    assert State.SPEAKING in rig.sink.states
    assert rig.transport.closed
    names = [span.name for span in rig.spans.get_finished_spans()]
    assert names.count("call") == 1
    assert {"turn", "endpointing", "stt", "context", "llm", "tts", "prompt_compile"} <= set(names)
    call_span = next(s for s in rig.spans.get_finished_spans() if s.name == "call")
    trace_ids = {span.context.trace_id for span in rig.spans.get_finished_spans()}
    assert trace_ids == {call_span.context.trace_id}  # one trace per call


async def test_each_answer_is_offered_to_the_cache_with_its_turns_facts(rig: Rig) -> None:
    faq = Citation("faq#1", "faq", "faq.md", kb_version="3")
    rig.context.result = ContextResult(
        block="[faq#1] Open nine to five.",
        citations=("faq#1",),
        sources=(faq,),
        confidence=0.9,
        kb_version="faq=3",
    )
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.context.stored) == 1)
    assert rig.context.stored == [
        StoredAnswer(
            query="what are your hours",
            answer="We are open nine to five. See you soon.",
            citations=(faq,),
            kb_version="faq=3",
            generated="We are open nine to five. See you soon.",
            grounded=True,
            reply_source="llm",
            retrieval_confidence=0.9,
        )
    ]
    live = Citation("A-17", source_id="crm")
    rig.context.result = ContextResult(block="[A-17] x", sources=(live,), confidence=0.9)
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 3)
    await rig.hang_up()
    # every answered turn is offered with its facts: the context service decides
    assert len(rig.context.stored) == 2
    assert rig.context.stored[1].uses_live_data
    assert "context.store_answer" in [s.name for s in rig.spans.get_finished_spans()]


async def test_barge_in_clears_cancels_the_llm_and_keeps_what_was_heard(rig: Rig) -> None:
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    rig.llm.reply = lambda text: (
        "Our opening hours are from nine in the morning, until five in the evening, "
        "every single weekday of the year."
    )
    rig.llm.gate = asyncio.Event()  # the LLM stalls half-way: its stream is open at barge-in
    rig.llm.policy = RetryPolicy(timeout_s=60.0)
    rig.tts.frames_per_word = 5
    greeting_frames = rig.transport.sent_frames
    await rig.frames(VOICE, 10)
    await rig.until(lambda: rig.transport.sent_frames > greeting_frames + 20)
    await rig.frames(SILENCE, 5)
    sent_before = rig.transport.sent_frames
    await rig.frames(VOICE, 2)  # onset
    assert rig.transport.clears == 1
    assert rig.transport.sent_frames == sent_before + 1  # the tick before onset, none after
    await rig.frames(VOICE, 5)
    assert rig.transport.sent_frames == sent_before + 1
    assert rig.llm.cancelled == 1
    interrupted = rig.sink.turns[1]
    assert interrupted.interrupted
    assert interrupted.agent_text
    assert interrupted.agent_text != interrupted.generated_text
    assert interrupted.generated_text.startswith(interrupted.agent_text.split(",")[0])
    rig.llm.gate = None
    await rig.until(lambda: len(rig.sink.turns) == 3)
    assert rig.llm.requests[-1].history[-1] == Message(
        "agent", interrupted.agent_text, truncated=True
    )
    await rig.hang_up()


async def test_tts_outage_plays_the_filler_and_the_turn_completes_on_recovery(rig: Rig) -> None:
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    rig.tts.outage.down = True
    await rig.frames(VOICE, 10)
    await rig.until(lambda: rig.sink.states[-1] is State.THINKING)
    frames_before = rig.transport.sent_frames
    await rig.frames(SILENCE, 60)  # 1.2 s: past filler_after_s
    assert rig.transport.sent_frames > frames_before  # filler audio went out
    assert rig.tts.outage.calls > 2  # retried
    rig.tts.outage.down = False
    await rig.until(lambda: len(rig.sink.turns) == 2)
    turn = rig.sink.turns[1]
    assert turn.fillers >= 1
    assert turn.agent_text == "We are open nine to five. See you soon."
    await rig.hang_up()
    assert rig.sink.ended.is_set()


async def test_stt_outage_then_recovery(rig: Rig) -> None:
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    rig.stt.outage.failures = 3
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    assert rig.sink.turns[1].user_text == "what are your hours"
    assert rig.stt.outage.calls >= 4
    await rig.hang_up()


async def test_hanging_up_mid_reply_cancels_work_and_ends_the_call(rig: Rig) -> None:
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    rig.llm.gate = asyncio.Event()
    await rig.frames(VOICE, 10)
    await rig.until(lambda: rig.llm.requests != [])
    await rig.hang_up()
    assert rig.llm.cancelled == 1
    assert rig.sink.ended.is_set()
    assert all(span.end_time is not None for span in rig.spans.get_finished_spans())


async def test_after_each_turn_the_llm_prefills_the_history_the_next_turn_sends(rig: Rig) -> None:
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.until(lambda: len(rig.llm.prefills) == 1)
    greeting = Message("agent", "Hello, thanks for calling.")
    assert rig.llm.prefills == [(greeting,)]  # the greeting was heard: it is the history now
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await rig.until(lambda: len(rig.llm.prefills) == 2)
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 3)
    await rig.hang_up()
    # each prefill is exactly the history the next generation carries before its new turn
    assert rig.llm.prefills[0] == rig.llm.requests[0].history
    assert rig.llm.prefills[1] == rig.llm.requests[1].history
    assert rig.llm.prefills[1] == (
        greeting,
        Message("user", "what are your hours"),
        Message("agent", "We are open nine to five. See you soon."),
    )
    names = [span.name for span in rig.spans.get_finished_spans()]
    assert names.count("llm.prefill") >= 2


async def test_a_failed_prefill_is_only_logged_and_the_call_goes_on(rig: Rig) -> None:
    rig.llm.outage.down = True  # prefills fail; generations too until it is back
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.settle()
    rig.llm.outage.down = False
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await rig.hang_up()
    assert len(rig.llm.prefills) == 1  # the one after the greeting failed, this one ran
    assert rig.llm.prefills[0][-1] == Message("agent", "We are open nine to five. See you soon.")
    assert rig.sink.turns[1].agent_text == "We are open nine to five. See you soon."
    failed = [s for s in rig.spans.get_finished_spans() if s.name == "llm.prefill"]
    assert any("llm.prefill_failed" in (s.attributes or {}) for s in failed)


async def test_a_long_utterance_is_read_ahead_into_the_llm_before_the_caller_stops(
    rig: Rig,
) -> None:
    hours = ContextResult(block="[1] Open nine to five.", citations=("faq#1",), confidence=0.8)
    rig.context.result = hours
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.until(lambda: len(rig.llm.prefills) == 1)  # after the greeting: no context
    assert rig.llm.prefill_contexts == [None]
    await rig.frames(VOICE, 30)  # 600 ms of speech: one read-ahead at 400 ms
    await rig.until(lambda: len(rig.llm.prefills) == 2)
    assert len(rig.stt.seen) == 1
    assert len(rig.stt.seen[0]) < 30 * len(VOICE)  # the utterance so far, not the whole
    assert rig.context.queries == ["what are your hours"]
    assert rig.llm.prefill_contexts[1] == hours
    assert rig.llm.prefill_partials == ["", "what are your hours"]  # the turn so far too
    assert rig.llm.prefills[1] == (Message("agent", "Hello, thanks for calling."),)
    assert rig.llm.requests == []  # nothing generated, nothing said while they speak
    assert len(rig.sink.turns) == 1
    await rig.frames(SILENCE, 12)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await rig.hang_up()
    assert rig.llm.requests[0].context == hours  # the turn's own lookup, same result
    # the turn's lookup names the items the read-ahead's prefill put in the LLM's cache
    assert rig.context.preferred == [(), ("faq#1",)]
    assert rig.sink.turns[1].agent_text == "We are open nine to five. See you soon."
    names = [span.name for span in rig.spans.get_finished_spans()]
    assert "prefetch" in names
    # the read-ahead's peer calls are labelled apart from the turn's STT and context
    assert {"read_ahead_stt", "read_ahead_context"} <= set(names)
    assert names.count("stt") == 1


async def test_the_turn_cancels_a_read_ahead_still_in_flight(rig: Rig) -> None:
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    rig.llm.prefill_gate = asyncio.Event()  # read-ahead prefills hang until released
    await rig.frames(VOICE, 35)  # a read-ahead starts at 600 ms of speech and hangs
    await rig.until(lambda: rig.llm.prefill_waiting == 1)
    await rig.frames(SILENCE, 12)  # the pause starts the turn: the read-ahead is cancelled
    await rig.until(lambda: len(rig.sink.turns) == 2)
    assert rig.llm.prefill_cancelled == 1  # (the prefill after this turn now waits at the gate)
    await rig.hang_up()
    assert rig.sink.turns[1].agent_text == "We are open nine to five. See you soon."


async def test_citation_markers_the_model_copies_are_not_spoken_nor_kept_as_heard(
    rig: Rig,
) -> None:
    rig.llm.reply = lambda text: "[1] We are open nine to five."
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await rig.hang_up()
    turn = rig.sink.turns[1]
    assert turn.agent_text == "We are open nine to five."
    assert turn.generated_text == "[1] We are open nine to five."
    assert "[1]" not in " ".join(rig.tts.texts)


async def test_dropped_turns_and_every_stage_reach_the_metrics(
    rig: Rig,
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415

    from trunkline.gateway.metrics import GatewayMetrics  # noqa: PLC0415

    reader = InMemoryMetricReader()
    rig.session.metrics = GatewayMetrics(MeterProvider([reader]).get_meter("test"))
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.frames(VOICE, 10)
    await rig.frames(SILENCE, 3)  # a pause: the turn's work starts speculatively
    await rig.frames(VOICE, 10)  # ... and the caller goes on
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await rig.hang_up()
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "gateway.turns.dropped"
        for point in metric.data.data_points
    ]
    dropped_labels = {"reason": "speech resumed", "agent": "support", "version": "v3"}
    assert [(p.attributes, p.value) for p in points] == [(dropped_labels, 1)]
    dropped = [s for s in rig.spans.get_finished_spans() if s.attributes.get("turn.dropped")]
    assert [s.attributes["turn.dropped"] for s in dropped] == ["speech resumed"]
    stages = {
        point.attributes["stage"]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "gateway.stage.duration"
        for point in metric.data.data_points
    }
    # the session's own; stt, context, llm_ttft and tts_ttfa come from the peers' PeerEnv.metrics
    assert stages == {"endpointing", "prompt_compile", "llm_first_clause"}


async def test_the_guard_holds_back_an_invented_fact_and_speaks_the_best_passage(
    rig: Rig,
) -> None:
    rig.context.result = ContextResult(
        block="[1] ## Saturday\nOn Saturday we are open from 9 am to 1 pm.",
        citations=("faq#2",),
        confidence=0.4,  # below confident_at: the LLM answers, under the guard
    )
    rig.stt.texts = lambda audio: "what are your hours on saturday"
    rig.llm.reply = lambda text: "Sure. On Saturday we are open until 12:30 PM. Come by!"
    # The agent's knowledge strategy is the LLM (else the passage would answer at once).
    rig.session.pipeline.replies = replace(rig.session.pipeline.replies, extractive=False)
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await rig.hang_up()
    turn = rig.sink.turns[1]
    assert turn.agent_text == "Sure. To be precise: On Saturday we are open from 9 am to 1 pm."
    assert "12:30" not in turn.agent_text
    assert (turn.reply_source, turn.grounded) == ("fallback", False)
    [held] = turn.guard_interventions
    assert held.unsupported == ("time:12:30",)
    assert "12:30" in held.clause
    assert "guard" in turn.stage_s
    # Offered to the context service, which alone decides, as not grounded: never cached.
    assert [(a.grounded, a.reply_source) for a in rig.context.stored] in ([], [(False, "fallback")])
    events = [e for s in rig.spans.get_finished_spans() for e in s.events]
    assert any(e.name == "guard.held_back" for e in events)


async def test_a_goodbye_is_answered_and_the_agent_hangs_up_after_it_played(rig: Rig) -> None:
    rig.context.result = ContextResult(confidence=0.1, intent="goodbye", intent_score=0.9)
    rig.stt.texts = lambda audio: "thanks that is all goodbye"
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.frames(VOICE, 10)
    await rig.until(rig.sink.ended.is_set)
    assert rig.task is not None
    summary = await asyncio.wait_for(rig.task, 5)
    assert summary.reason.startswith("agent hung up")
    turn = rig.sink.turns[1]
    assert (turn.reply_source, turn.intent, turn.hang_up) == ("goodbye", "goodbye", True)
    assert turn.agent_text == "Thank you for calling. Goodbye!"
    assert not rig.llm.requests  # no LLM for a goodbye
    assert rig.transport.closed


async def test_an_out_of_domain_question_is_deflected_without_the_llm(rig: Rig) -> None:
    rig.context.result = ContextResult(confidence=0.2, intent="out_of_domain", intent_score=0.8)
    rig.stt.texts = lambda audio: "who won the football world cup in 1966"
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await rig.hang_up()
    turn = rig.sink.turns[1]
    assert (turn.reply_source, turn.intent, turn.grounded) == ("deflection", "out_of_domain", True)
    assert not rig.llm.requests
    assert [a.reply_source for a in rig.context.stored] in ([], ["deflection"])


async def test_the_agent_may_read_back_the_account_number_the_caller_gave(rig: Rig) -> None:
    """The caller's number is support for the agent repeating it; nothing else they said is."""
    rig.context.result = ContextResult(block="[1] Accounts have six digits.", confidence=0.6)
    rig.stt.texts = lambda audio: "please look up account number 441 729"
    rig.llm.reply = lambda text: "Let me check account 441 729 for you."
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    rig.stt.texts = lambda audio: "is my balance 45 dollars"
    rig.llm.reply = lambda text: "Yes, your balance is 45 dollars."
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 3)
    await rig.hang_up()
    echoed, guessed = rig.sink.turns[1], rig.sink.turns[2]
    assert (echoed.reply_source, echoed.grounded) == ("llm", True)
    assert echoed.agent_text == "Let me check account 441 729 for you."
    assert (guessed.reply_source, guessed.grounded) == ("fallback", False)
    assert guessed.guard_interventions[0].unsupported == ("number:45",)


async def test_dtmf_keys_reach_the_session_and_the_call_goes_on(rig: Rig) -> None:
    await start(rig)
    await rig.until(lambda: len(rig.sink.turns) == 1)
    rig.transport.press("1")
    rig.transport.press("#")
    await rig.frames(VOICE, 10)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await rig.hang_up()
    assert rig.session.keypresses == ["1", "#"]
    assert rig.sink.turns[1].agent_text == "We are open nine to five. See you soon."
    call_span = next(s for s in rig.spans.get_finished_spans() if s.name == "call")
    keys = [(e.attributes or {})["digit"] for e in call_span.events if e.name == "dtmf"]
    assert keys == ["1", "#"]
