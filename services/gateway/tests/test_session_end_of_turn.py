"""A call with the semantic end of turn: the verdict is dispatched, traced and counted, and a
'complete' one ends the turn at the short silence; the gateway shares one VAD model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer

from trunkline.gateway.app import Gateway, PeerChannels
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.turns import SemanticEndConfig, TurnConfig
from trunkline.gateway.end_of_turn import EndOfTurnDetector, EndOfTurnScore
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
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.profile import parse_profile
from trunkline.gateway.records import CallSink
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.settings import GatewaySettings
from trunkline.gateway.vad import SileroModel
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

VOICE = b"\x00\x10" * 320
SILENCE = b"\x00\x00" * 320
CALL = CallInfo("CA1", "acme", "support", "v3")
POLICY = RetryPolicy(timeout_s=0.5, backoff_s=0.1, max_backoff_s=0.2)


class FixedVerdict(EndOfTurnDetector):
    """Answers every check with one probability, at once (no thread: the clock is fake)."""

    def __init__(self, probability: float) -> None:
        self.value = probability
        self.audio: list[bytes] = []

    def probability(self, pcm: bytes) -> float:
        self.audio.append(pcm)
        return self.value

    async def score(self, pcm: bytes) -> EndOfTurnScore:
        return EndOfTurnScore(self.probability(pcm), 0.042)


@dataclass
class Call:
    clock: FakeClock
    transport: FakeTransport
    sink: RecordingSink
    session: CallSession
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    async def frames(self, pcm: bytes, n: int) -> None:
        for _ in range(n):
            self.clock.advance(0.02)
            self.transport.frame(pcm)
            for _ in range(30):
                await asyncio.sleep(0)

    async def until_turns(self, n: int) -> None:
        for _ in range(500):
            if len(self.sink.turns) >= n:
                return
            await self.frames(SILENCE, 1)
        raise AssertionError("turn not reached")

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            (dict(p.attributes or {}), getattr(p, "value", getattr(p, "count", None)))
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == name
            for p in metric.data.data_points
        ]


def make_call(detector: EndOfTurnDetector | None) -> Call:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    clock = FakeClock(1000.0)
    env = PeerEnv(clock, provider.get_tracer("test"))
    transport = FakeTransport(clock.now)
    sink = RecordingSink()
    turn = TurnConfig(
        endpoint=EndpointConfig(onset_frames=2, endpoint_ms=600),
        semantic=SemanticEndConfig(after_ms=200, threshold=0.5),
    )
    session = CallSession(
        CALL,
        transport,
        Peers(
            FakeTranscriber(env, lambda audio: "what are your hours", POLICY),
            FakeContext(env),
            FakeLanguageModel(env, lambda text: "We are open nine to five.", POLICY),
            FakeSynthesizer(env, frames_per_word=2, policy=POLICY),
        ),
        EnergyDetector(),
        sink,
        clock=clock,
        tracer=provider.get_tracer("gateway"),
        metrics=GatewayMetrics(MeterProvider([reader]).get_meter("test")),
        fillers=FillerCache(clock, deadline_s=0.3),
        config=SessionConfig(turn=turn, greeting="Hello.", grounding_texts=("open nine to five",)),
        end_of_turn=detector,
    )
    return Call(clock, transport, sink, session, spans, reader)


async def one_turn(call: Call) -> None:
    task = asyncio.create_task(call.session.run())
    await call.until_turns(1)  # the greeting
    await call.frames(VOICE, 10)
    await call.until_turns(2)
    call.transport.hang_up()
    await asyncio.wait_for(task, 5)


async def test_a_complete_verdict_ends_the_turn_at_the_short_silence() -> None:
    detector = FixedVerdict(0.9)
    call = make_call(detector)
    await one_turn(call)
    turn = call.sink.turns[1]
    assert turn.stage_s["endpointing"] == pytest.approx(0.18, abs=0.001)  # not 0.58
    assert len(detector.audio) == 1
    spans = call.spans.get_finished_spans()
    (span,) = [s for s in spans if s.name == "turn" and (s.attributes or {}).get("turn.committed")]
    assert (span.attributes or {})["turn.ended_by"] == "semantic"
    (event,) = [e for e in span.events if e.name == "end_of_turn"]
    assert event.attributes == {
        "end_of_turn.probability": 0.9,
        "end_of_turn.inference_ms": 42.0,
        "end_of_turn.outcome": "complete",
    }
    assert call.points("gateway.end_of_turn.verdicts") == [({"outcome": "complete"}, 1)]
    assert call.points("gateway.turns.ended") == [({"by": "semantic"}, 1)]
    assert call.points("gateway.end_of_turn.inference.duration") == [({}, 1)]


async def test_an_incomplete_verdict_leaves_the_turn_to_the_silence_endpoint() -> None:
    call = make_call(FixedVerdict(0.1))
    await one_turn(call)
    assert call.sink.turns[1].stage_s["endpointing"] == pytest.approx(0.58, abs=0.001)
    assert call.points("gateway.end_of_turn.verdicts") == [({"outcome": "incomplete"}, 1)]
    assert call.points("gateway.turns.ended") == [({"by": "silence"}, 1)]


class SlowVerdict(FixedVerdict):
    """Answers only when released: the first pause's check is still running at the second."""

    def __init__(self, probability: float) -> None:
        super().__init__(probability)
        self.release = asyncio.Event()
        self.cancelled = 0

    async def score(self, pcm: bytes) -> EndOfTurnScore:
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await super().score(pcm)


async def test_a_newer_pause_cancels_the_check_of_an_older_one() -> None:
    detector = SlowVerdict(0.9)
    call = make_call(detector)
    task = asyncio.create_task(call.session.run())
    await call.until_turns(1)
    await call.frames(VOICE, 10)
    await call.frames(SILENCE, 3)  # a pause: its check waits on the model
    await call.frames(VOICE, 5)  # the caller goes on
    await call.frames(SILENCE, 1)  # a second pause: the first check is stale
    assert detector.cancelled == 1
    detector.release.set()
    await call.until_turns(2)
    call.transport.hang_up()
    await asyncio.wait_for(task, 5)
    assert len(detector.audio) == 1  # only the second pause was scored
    assert call.points("gateway.turns.ended") == [({"by": "semantic"}, 1)]


async def test_without_a_detector_the_silence_endpoint_decides() -> None:
    call = make_call(None)
    await one_turn(call)
    assert call.sink.turns[1].stage_s["endpointing"] == pytest.approx(0.58, abs=0.001)
    assert call.points("gateway.end_of_turn.verdicts") == []


# ---- the gateway's wiring -----------------------------------------------------------------

SPEC = "name: a\nversion: '1'\nsystem_prompt: You help.\ngreeting: Hi.\n"
ON = parse_profile(SPEC + "turn_taking: {semantic_end_of_turn: true, threshold: 0.7}\n")
OFF = parse_profile(SPEC.replace("name: a", "name: b"))
VAD = SileroModel()


def gateway(detector: EndOfTurnDetector | None = None, **settings: Any) -> Gateway:
    return Gateway(
        GatewaySettings(**settings),
        {"a": ON, "b": OFF},
        cast(CallSink, None),
        cast(PeerChannels, None),
        clock=SystemClock(),
        tracer=NoOpTracer(),
        vad=VAD,
        end_of_turn=detector,
    )


def test_the_agent_and_the_settings_switch_it() -> None:
    detector = FixedVerdict(0.5)
    gw = gateway(detector, smart_turn_after_ms=160)
    assert gw.session_config(ON).turn.semantic == SemanticEndConfig(
        after_ms=160, threshold=0.7, min_speech_ms=600
    )
    assert gw.session_config(OFF).turn.semantic is None
    off = gateway(detector, smart_turn=False)
    assert off.end_of_turn is None
    assert off.session_config(ON).turn.semantic is None


def test_the_spec_rejects_a_bad_threshold() -> None:
    from trunkline.agents import AgentSpecError  # noqa: PLC0415

    with pytest.raises(AgentSpecError, match="threshold"):
        parse_profile(SPEC + "turn_taking: {semantic_end_of_turn: true, threshold: 1.5}\n")


def test_the_short_silence_must_come_before_the_endpoint() -> None:
    from pydantic import ValidationError  # noqa: PLC0415

    with pytest.raises(ValidationError, match="smart_turn_after_ms must be below endpoint_ms"):
        GatewaySettings(endpoint_ms=300, smart_turn_after_ms=300)


def test_every_call_gets_its_own_detector_over_the_one_vad_model() -> None:
    gw = gateway(FixedVerdict(0.5))
    first, second = gw.detector(), gw.detector()
    assert first is not second
    assert first._model is VAD
    assert second._model is VAD
    loaded = Gateway(
        GatewaySettings(smart_turn=False),
        {"b": OFF},
        cast(CallSink, None),
        cast(PeerChannels, None),
        clock=SystemClock(),
        tracer=NoOpTracer(),
    )
    assert isinstance(loaded.vad, SileroModel)  # loaded once, at start
    assert loaded.detector()._model is loaded.detector()._model is loaded.vad
    assert loaded.end_of_turn is None
