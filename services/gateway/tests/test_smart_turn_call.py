"""A call whose caller speaks a real (Piper-synthesized) phrase: the shared Silero model, the
session, the turn machine and the vendored Smart Turn model together end the turn at the short
silence, with the verdict traced and counted."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.turns import SemanticEndConfig, TurnConfig
from trunkline.gateway.end_of_turn import SmartTurnModel
from trunkline.gateway.fakes import (
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
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.vad import SileroDetector, SileroModel
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.integration

WAV = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio" / "hours-joe-16k.wav"
FRAME = 640
POLICY = RetryPolicy(timeout_s=5.0, backoff_s=0.1, max_backoff_s=0.2)


def phrase_frames() -> list[bytes]:
    with wave.open(str(WAV)) as w:
        pcm = bytes(w.readframes(w.getnframes()))
    return [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


async def test_a_finished_phrase_ends_at_the_short_silence() -> None:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    clock = FakeClock(1000.0)
    env = PeerEnv(clock, provider.get_tracer("test"))
    transport = FakeTransport(clock.now)
    sink = RecordingSink()
    # A long silence endpoint (3 s) so that even a slow inference on a busy machine is in time.
    turn = TurnConfig(
        endpoint=EndpointConfig(endpoint_ms=3000),
        semantic=SemanticEndConfig(after_ms=200, threshold=0.5),
    )
    session = CallSession(
        CallInfo("CA1", "acme", "support", "v3"),
        transport,
        Peers(
            FakeTranscriber(env, lambda audio: "when are you open", POLICY),
            FakeContext(env),
            FakeLanguageModel(env, lambda text: "We are open nine to five.", POLICY),
            FakeSynthesizer(env, frames_per_word=2, policy=POLICY),
        ),
        SileroDetector(SileroModel()),
        sink,
        clock=clock,
        tracer=provider.get_tracer("gateway"),
        metrics=GatewayMetrics(MeterProvider([reader]).get_meter("test")),
        fillers=FillerCache(clock, deadline_s=0.3),
        config=SessionConfig(turn=turn, greeting="Hello.", grounding_texts=("open nine to five",)),
        end_of_turn=SmartTurnModel(),
    )
    task = asyncio.create_task(session.run())

    async def frame(pcm: bytes, real_s: float = 0.0) -> None:
        clock.advance(0.02)
        transport.frame(pcm)
        for _ in range(20):
            await asyncio.sleep(0)
        if real_s:
            await asyncio.sleep(real_s)  # real time for the model's worker thread

    for _ in range(150):  # the greeting plays out over 3 s of line silence
        await frame(bytes(FRAME))
    assert len(sink.turns) == 1
    for pcm in phrase_frames():
        await frame(pcm)
    silent = 0
    while len(sink.turns) < 2 and silent < 140:  # 2.8 s of silence, below the 3 s endpoint
        await frame(bytes(FRAME), real_s=0.05)
        silent += 1
    transport.hang_up()
    await asyncio.wait_for(task, 10)

    assert len(sink.turns) == 2
    (span,) = [s for s in spans.get_finished_spans() if (s.attributes or {}).get("turn.committed")]
    assert (span.attributes or {})["turn.ended_by"] == "semantic"
    assert sink.turns[1].stage_s["endpointing"] < 2.9  # not the 3 s silence endpoint
    events = [e for s in spans.get_finished_spans() for e in s.events if e.name == "end_of_turn"]
    complete = [e for e in events if (e.attributes or {})["end_of_turn.outcome"] == "complete"]
    assert complete
    last = dict(complete[-1].attributes or {})
    probability, inference_ms = last["end_of_turn.probability"], last["end_of_turn.inference_ms"]
    assert isinstance(probability, float)
    assert probability >= 0.5
    assert isinstance(inference_ms, float)
    assert inference_ms > 0
