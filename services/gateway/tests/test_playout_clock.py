"""The transport owns its pacing: reply audio goes out against the transport's outbound clock
(``Played`` ticks), so a transport that sends nothing while the caller is silent (WebRTC with DTX,
LiveKit) still plays the whole reply, on time."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace import TracerProvider

from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.events import State
from trunkline.gateway.core.pacer import Pacer
from trunkline.gateway.core.replies import GuardPolicy
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
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.pacing import playout_ticks
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

VOICE = b"\x00\x10" * 320
SILENCE = b"\x00\x00" * 320
REPLY = "We are open nine to five. See you soon."  # 9 words, 2 frames each: 18 frames


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


def session(clock: FakeClock, transport: FakeTransport, sink: RecordingSink) -> CallSession:
    tracer = TracerProvider().get_tracer("test")
    env = PeerEnv(clock, tracer)
    peers = Peers(
        FakeTranscriber(env, lambda audio: "what are your hours"),
        FakeContext(env),
        FakeLanguageModel(env, lambda text: REPLY),
        FakeSynthesizer(env, frames_per_word=2),
    )
    config = SessionConfig(
        turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200), lead_frames=3),
        greeting="Hello there.",
        guard=GuardPolicy(enabled=False),  # this is about pacing, not about facts
    )
    fillers = FillerCache(clock, deadline_s=0.3)
    return CallSession(
        CallInfo("CA1", "acme", "support", "v1"),
        transport,
        peers,
        EnergyDetector(),
        sink,
        clock=clock,
        tracer=tracer,
        fillers=fillers,
        config=config,
    )


async def test_a_reply_plays_fully_and_on_time_with_no_caller_frames_during_it() -> None:
    clock = FakeClock(1000.0)
    transport, sink = FakeTransport(clock.now), RecordingSink()
    call = session(clock, transport, sink)
    task = asyncio.create_task(call.run())
    await settle()

    async def tick() -> None:  # 20 ms of the transport's clock, nothing from the caller
        clock.advance(0.02)
        transport.tick()
        await settle()

    async def frame(pcm: bytes) -> None:
        clock.advance(0.02)
        transport.frame(pcm)
        await settle()

    # The greeting plays on ticks alone: the caller has sent nothing at all yet.
    for _ in range(20):
        await tick()
    assert len(sink.turns) == 1
    assert sink.turns[0].agent_text == "Hello there."
    assert transport.played
    assert transport.sent_frames == len(transport.played)

    for _ in range(10):
        await frame(VOICE)
    for _ in range(10):  # the 200 ms endpoint: the turn is committed on the 10th silent frame
        await frame(SILENCE)
    assert call.machine.state in (State.THINKING, State.SPEAKING)
    played_before = len(transport.played)
    committed_at = clock.now()
    ticks = 0
    while len(sink.turns) < 2:  # from here on the caller's side of the wire is mute
        await tick()
        ticks += 1
        assert ticks < 60, f"reply stalled: {len(transport.played) - played_before} frames played"
    turn = sink.turns[1]
    assert turn.agent_text == REPLY
    assert not turn.interrupted
    reply_frames = len(transport.played) - played_before
    assert reply_frames == 18  # every frame of the reply reached the far end
    assert transport.sent_frames == len(transport.played)
    # On time: the first frame on the tick of the commit (9 silent frames after the last voiced
    # one), one frame per 20 ms tick after that (3 sent ahead as lead), and the turn finished
    # when the last one played.
    assert turn.voice_to_voice_s is not None
    assert turn.voice_to_voice_s == pytest.approx(0.18, abs=0.001)
    assert reply_frames - 3 <= ticks <= reply_frames + 2
    assert clock.now() - committed_at == pytest.approx(ticks * 0.02)
    transport.hang_up()
    await asyncio.wait_for(task, 5)


def test_the_pacer_keeps_a_steady_schedule_and_limits_catch_up() -> None:
    pacer = Pacer(frame_s=0.02, max_catch_up=3)
    assert pacer.due(10.0) == 1  # the first frame is due at once
    pacer.take()
    assert pacer.due(10.019) == 0
    assert pacer.next_at() == pytest.approx(10.02)
    assert pacer.due(10.025) == 1  # late wake-ups do not shift the schedule
    pacer.take()
    assert pacer.next_at() == pytest.approx(10.04)
    assert pacer.due(10.065) == 2  # a short stall: both missed frames at once
    pacer.take(2)
    assert pacer.due(10.5) == 3  # a long stall: at most 3, the older debt is dropped
    assert pacer.skipped == 19  # 22 owed at 10.5 s (frames 4..25), 3 kept
    pacer.take(3)
    assert pacer.due(10.5) == 0
    assert pacer.next_at() == pytest.approx(10.52)
    with pytest.raises(ValueError, match="max_catch_up"):
        Pacer(max_catch_up=0)


async def test_playout_ticks_follow_the_clock_without_drift() -> None:
    clock = FakeClock(0.0)
    got: list[int] = []

    async def consume() -> None:
        async for played in playout_ticks(clock, Pacer(max_catch_up=4)):
            got.append(played.frames)

    task = asyncio.create_task(consume())
    await clock.advance_and_settle(0.0)
    for _ in range(50):  # one second in 20 ms steps
        await clock.advance_and_settle(0.02)
    assert sum(got) == 51  # the first at 0, then one every 20 ms: no drift
    assert max(got) <= 2  # (a float-rounded wake-up may land on the next step, never later)
    await clock.advance_and_settle(1.0)  # a one-second stall
    assert got[-1] == 4  # catch-up capped
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
