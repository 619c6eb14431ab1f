"""Voice-to-voice, the stage histograms (LLM time to first token and tools among them), dropped
turns and replies carry the call's ``agent`` and ``version`` labels, so a p95 splits by agent
version (the rollout operator's queries, the Grafana panels, the alert rules)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.tools import ToolBook, ToolPolicy, ToolStatus
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
from trunkline.gateway.metrics import GatewayMetrics, version_labels
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo, ToolCallRequested
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.tools import ToolExecutor, ToolRunner
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

VOICE = b"\x00\x10" * 320
SILENCE = b"\x00\x00" * 320
POLICY = RetryPolicy(timeout_s=0.5, backoff_s=0.1, max_backoff_s=0.2)


async def _settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


async def one_call(
    call: CallInfo, metrics: GatewayMetrics, reply: str = "We are open nine to five."
) -> None:
    """A call of one caller turn (the model says ``reply``), the peers and the session sharing
    ``metrics``."""
    clock = FakeClock(1000.0)
    tracer = TracerProvider().get_tracer("test")
    env = PeerEnv(clock, tracer, metrics)
    transport = FakeTransport(clock.now)
    sink = RecordingSink()
    session = CallSession(
        call,
        transport,
        Peers(
            FakeTranscriber(env, lambda audio: "what are your hours", POLICY),
            FakeContext(env),
            FakeLanguageModel(env, lambda text: reply, POLICY),
            FakeSynthesizer(env, frames_per_word=2, policy=POLICY),
        ),
        EnergyDetector(),
        sink,
        clock=clock,
        tracer=tracer,
        fillers=FillerCache(clock, deadline_s=0.3),
        config=SessionConfig(
            turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200)),
            greeting="Hello.",
            grounding_texts=("We are open nine to five.",),
        ),
        metrics=metrics,
    )
    task = asyncio.create_task(session.run())

    async def frames(pcm: bytes, n: int) -> None:
        for _ in range(n):
            clock.advance(0.02)
            transport.frame(pcm)
            await _settle()

    async def until(turns: int) -> None:
        for _ in range(500):
            if len(sink.turns) >= turns:
                return
            await frames(SILENCE, 1)
        raise AssertionError(f"{turns} turns not reached")

    await _settle()
    await until(1)  # the greeting
    await frames(VOICE, 10)
    await until(2)
    transport.hang_up()
    await asyncio.wait_for(task, 5)


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


async def test_latency_series_split_by_agent_version() -> None:
    reader = InMemoryMetricReader()
    metrics = GatewayMetrics(MeterProvider([reader]).get_meter("test"))
    await one_call(CallInfo("CA1", "acme", "support", "1.0.0"), metrics)
    await one_call(CallInfo("CA2", "acme", "support", "1.1.0"), metrics)
    await one_call(CallInfo("CA3", "acme", "support", "1.1.0"), metrics)

    v2v = {(p.attributes["agent"], p.attributes["version"]): p.count for p in
           points(reader, "gateway.voice_to_voice.duration")}  # fmt: skip
    assert v2v == {("support", "1.0.0"): 1, ("support", "1.1.0"): 2}

    stages = points(reader, "gateway.stage.duration")
    ttft = {p.attributes["version"]: p.count for p in stages if p.attributes["stage"] == "llm_ttft"}
    assert ttft == {"1.0.0": 1, "1.1.0": 2}
    # every stage of a call is labelled: the session's own and the peers'
    for point in stages:
        assert {"agent", "version"} <= set(point.attributes), point.attributes
    named = {p.attributes["stage"] for p in stages}
    assert {"endpointing", "stt", "context", "llm_ttft", "llm", "tts_ttfa"} <= named

    replies = points(reader, "gateway.replies")
    assert {p.attributes["version"]: p.value for p in replies} == {"1.0.0": 1, "1.1.0": 2}


async def test_replies_count_under_the_source_that_made_the_reply() -> None:
    """A model reply the guard replaced is a fallback turn, not an "llm" one (the plan said llm)."""
    reader = InMemoryMetricReader()
    metrics = GatewayMetrics(MeterProvider([reader]).get_meter("test"))
    await one_call(CallInfo("CA1", "acme", "support", "1.0.0"), metrics)
    await one_call(
        CallInfo("CA2", "acme", "support", "1.0.0"), metrics, reply="We are open seven to eleven."
    )
    replies = {p.attributes["source"]: p.value for p in points(reader, "gateway.replies")}
    assert replies == {"llm": 1, "fallback": 1}


class EchoRunner(ToolRunner):
    async def _run(self, call: CallInfo, tool: ToolPolicy, arguments: dict[str, Any]) -> Any:
        return {"ok": True, **arguments}


async def test_the_tool_stage_is_labelled_by_agent_version() -> None:
    reader = InMemoryMetricReader()
    metrics = GatewayMetrics(MeterProvider([reader]).get_meter("test"))
    tool = ToolPolicy(name="lookup", endpoint="http://127.0.0.1:1/lookup")
    executor = ToolExecutor(
        ToolBook([tool], max_rounds=2), EchoRunner(), clock=FakeClock(1000.0),
        tracer=TracerProvider().get_tracer("test"), metrics=metrics,
    )  # fmt: skip
    for version in ("1.0.0", "1.1.0", "1.1.0"):
        call = CallInfo("CA1", "acme", "support", version)
        record = await executor.execute(call, ToolCallRequested("t1", "lookup", "{}"), 0)
        assert record.status is ToolStatus.SUCCEEDED

    tool_points = [p for p in points(reader, "gateway.stage.duration")
                   if p.attributes["stage"] == "tool"]  # fmt: skip
    assert {(p.attributes["agent"], p.attributes["version"]): p.count for p in tool_points} == {
        ("support", "1.0.0"): 1,
        ("support", "1.1.0"): 2,
    }


def test_the_rollout_operator_selects_the_series_by_these_labels() -> None:
    from trunkline.rollout.metrics import promql  # noqa: PLC0415
    from trunkline.rollout.resources import Metric, MetricName  # noqa: PLC0415

    for name in (MetricName.VOICE_TO_VOICE_P95_MS, MetricName.LLM_TTFT_P95_MS):
        metric = Metric.model_validate({"name": name.value, "thresholdRange": {"max": 800}})
        query = promql(metric, agent="support", version="1.1.0", window_s=60)
        for key, value in version_labels("support", "1.1.0").items():
            assert f'{key}="{value}"' in query, query
