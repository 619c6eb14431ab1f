"""Shadow turns over a real NATS JetStream: the gateway's mirror, two candidates' shadow runners
(each its own durable consumer), their paired results, and the operator's metrics from them.

The runners are the real :class:`ShadowRunner` (the gateway's turn pipeline, headless) with
in-memory context and LLM peers; one candidate's every turn is slowed by 400 ms (the fault injection
``SHADOW_INJECT_DELAY_MS`` uses), which the analysis must see and the other must not.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from google.protobuf.duration_pb2 import Duration
from opentelemetry import trace

from trunkline.agents import parse_agent_spec
from trunkline.bus import Bus
from trunkline.bus.shadow import Candidate, ShadowCandidates, read_results
from trunkline.devservers import NatsServer
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.fakes import FakeContext, FakeLanguageModel
from trunkline.gateway.peers.base import ContextSource, PeerEnv
from trunkline.gateway.peers.types import ContextResult
from trunkline.gateway.profile import AgentProfile, profile_of
from trunkline.gateway.shadow.core import sampled
from trunkline.gateway.shadow.mirror import ShadowMirror, start_mirror
from trunkline.gateway.shadow.runner import DelayedContext, ShadowPeers, ShadowRunner
from trunkline.proto.common.v1 import call_pb2, timing_pb2, tool_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.rollout.analysis import Reading
from trunkline.rollout.resources import Metric, MetricName, ThresholdRange
from trunkline.rollout.shadows import BusLink, ShadowResultsSource

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
REPLY = "Let me check that for you."
METRICS = (
    Metric(name=MetricName.REPLY_TIME_DELTA_MS, threshold_range=ThresholdRange(max=200)),
    Metric(name=MetricName.VOICE_TO_VOICE_P95_MS, threshold_range=ThresholdRange(max=900)),
    Metric(name=MetricName.TOOL_CALL_AGREEMENT, threshold_range=ThresholdRange(min=0.9)),
    Metric(name=MetricName.COST_PER_TURN, threshold_range=ThresholdRange(max=1)),
)


def profile(agent: str, version: str) -> AgentProfile:
    data = yaml.safe_load((ROOT / "agents" / "acme-dental.yaml").read_text())
    data.update(name=agent, version=version)
    return profile_of(parse_agent_spec(yaml.safe_dump(data)))


def heard_lookup(account_id: str) -> events_pb2.ToolCallRecord:
    return events_pb2.ToolCallRecord(
        call=tool_pb2.ToolCall(
            id="heard_1_1",
            name="lookup_account",
            arguments_json=f'{{"account_id": "{account_id}"}}',
        ),
        status=events_pb2.TOOL_CALL_STATUS_SUCCEEDED,
    )


def live_turn(agent: str, call_id: str, index: int) -> events_pb2.TurnCompleted:
    def seconds(value: float) -> Duration:
        d = Duration()
        d.FromMilliseconds(round(value * 1000))
        return d

    turn = events_pb2.TurnCompleted(
        event_id=str(uuid.uuid4()),
        context=call_pb2.CallContext(
            tenant_id="acme", call_id=call_id, turn_index=index,
            agent=call_pb2.AgentRef(name=agent, version="1.0.0"),
            caller=call_pb2.Caller(role="caller"),
        ),
        caller_transcript=f"What is the balance on account 44172{index}?",
        agent_reply=f"Live reply {index}.",
        stt_confidence=0.9,
        stages=[
            timing_pb2.StageTiming(stage="context.resolve", duration=seconds(0.005)),
            timing_pb2.StageTiming(stage="llm.time_to_first_clause", duration=seconds(0.005)),
        ],
        # the spec's lookup_account is call_when_heard: the live gateway looked the account up
        tool_calls=[heard_lookup(f"44172{index}")],
    )  # fmt: skip
    turn.response_time.CopyFrom(seconds(0.5))
    return turn


@pytest_asyncio.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    connected = await Bus.connect(nats_server.url, name="shadow-test")
    try:
        yield connected
    finally:
        await connected.close()


def pick_calls(inside: int, outside: int) -> list[str]:
    """Call ids of which ``inside`` are sampled at 50 % and ``outside`` are not."""
    found: dict[bool, list[str]] = {True: [], False: []}
    while len(found[True]) < inside or len(found[False]) < outside:
        call_id = f"CA{uuid.uuid4().hex[:10]}"
        found[sampled(call_id, 50.0)].append(call_id)
    return found[True][:inside] + found[False][:outside]


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not {what} within {WAIT_S}s"
        await asyncio.sleep(0.05)


def runner(bus: Bus, agent: str, version: str, delay_s: float = 0.0) -> ShadowRunner:
    env = PeerEnv(SystemClock(), trace.get_tracer("test"))
    llm = FakeLanguageModel(env, lambda _text: REPLY)
    context: ContextSource = FakeContext(
        env, ContextResult(block="Acme Dental, 120 Main Street.", confidence=0.8)
    )
    if delay_s:
        context = DelayedContext(env, context, delay_s)
    return ShadowRunner(
        bus, profile(agent, version), ShadowPeers(context, llm), clock=SystemClock(),
        tracer=trace.get_tracer("test"),
    )  # fmt: skip


async def test_each_candidate_answers_its_own_sampled_turns_and_the_analysis_sees_the_delay(
    bus: Bus, nats_server: NatsServer
) -> None:
    agent = f"acme-{uuid.uuid4().hex[:6]}"
    candidates = ShadowCandidates(bus)
    tasks: list[asyncio.Task[None]] = []
    mirror: ShadowMirror = await start_mirror(bus, tasks)
    await candidates.put(Candidate(agent, "2.0.0", 100.0))
    await candidates.put(Candidate(agent, "3.0.0", 50.0))
    await until(lambda: len(mirror.targets.of(agent)) == 2, "both candidates listed")

    calls = pick_calls(4, 4)
    half = [c for c in calls if sampled(c, 50.0)]
    for call_id in calls:
        for index in (1, 2):
            sent = await mirror.turn(live_turn(agent, call_id, index))
            assert sent == (2 if call_id in half else 1)
    # another agent's turns and a shadow's own turn are never mirrored
    assert await mirror.turn(live_turn("someone-else", calls[0], 1)) == 0

    fast, slow = runner(bus, agent, "2.0.0"), runner(bus, agent, "3.0.0", delay_s=0.4)
    tasks += [asyncio.create_task(fast.run()), asyncio.create_task(slow.run())]
    link = BusLink(nats_server.url)
    try:
        await until(lambda: fast.answered == 2 * len(calls), "every turn answered by 2.0.0")
        await until(lambda: slow.answered == 2 * len(half), "the sampled turns answered by 3.0.0")

        results = {v: await shadow_results(bus, agent, v) for v in ("2.0.0", "3.0.0")}
        # one durable consumer per candidate: 2.0.0 saw every call, 3.0.0 exactly its half,
        # neither lost a turn to the other
        assert sorted(r.context.call_id for r in results["2.0.0"]) == sorted(calls * 2)
        assert sorted(r.context.call_id for r in results["3.0.0"]) == sorted(half * 2)
        # the second turn of a call is answered with the history the caller lived
        second = fast.peers.llm.requests[-1]  # type: ignore[attr-defined]
        assert [m.text for m in second.history] == [second.user_text.replace("2?", "1?"),
                                                    "Live reply 1."]  # fmt: skip

        source = ShadowResultsSource(link)
        readings: dict[str, dict[str, Reading]] = {}
        for version in ("2.0.0", "3.0.0"):
            readings[version] = await source.read_all(
                METRICS, agent=agent, version=version, window_s=300
            )
        fast_delta = readings["2.0.0"]["reply_time_delta_ms"].value
        slow_delta = readings["3.0.0"]["reply_time_delta_ms"].value
        assert fast_delta is not None
        assert slow_delta is not None
        assert fast_delta < 150, fast_delta
        assert 380 < slow_delta < 1000, slow_delta
        slow_v2v = readings["3.0.0"]["voice_to_voice_p95_ms"].value
        assert slow_v2v is not None
        assert slow_v2v > 880  # 500 ms heard live + the candidate's 400 ms more
        assert readings["2.0.0"]["tool_call_agreement"].value == 1.0
        assert readings["2.0.0"]["cost_per_turn"].value is None  # not measured: inconclusive

        await stop_shadowing(candidates, mirror, agent, tasks[-1], half[0])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.close()
        await candidates.remove(agent, "2.0.0")


async def stop_shadowing(
    candidates: ShadowCandidates,
    mirror: ShadowMirror,
    agent: str,
    slow_task: asyncio.Task[None],
    call_id: str,
) -> None:
    """Stopping 3.0.0 removes its entry and consumer; the gateway stops mirroring to it, and
    its runner stops by itself, leaving no consumer behind."""
    assert await candidates.consumer_exists(agent, "3.0.0")
    assert await candidates.remove(agent, "3.0.0")
    assert not await candidates.consumer_exists(agent, "3.0.0")
    await until(lambda: len(mirror.targets.of(agent)) == 1, "3.0.0 no longer listed")
    await until(slow_task.done, "the 3.0.0 runner stopped")
    assert slow_task.exception() is None
    assert not await candidates.consumer_exists(agent, "3.0.0")
    assert await mirror.turn(live_turn(agent, call_id, 3)) == 1
    assert not await candidates.remove(agent, "3.0.0")  # twice is harmless


async def shadow_results(bus: Bus, agent: str, version: str) -> list[events_pb2.ShadowTurnResult]:
    raw = await read_results(bus, agent, version, _minutes_ago(5))
    decoded = [events_pb2.ShadowTurnResult.FromString(r) for r in raw]
    assert decoded, f"no results of {version}"
    assert all(r.context.shadow for r in decoded)
    assert {r.context.agent.version for r in decoded} == {version}
    assert all(r.live_agent.version == "1.0.0" for r in decoded)
    assert all(not r.failed and r.shadow_reply == REPLY for r in decoded), decoded[0]
    assert all(r.tools_agree for r in decoded)
    return decoded


def _minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
