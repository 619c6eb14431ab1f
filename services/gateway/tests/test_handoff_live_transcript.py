"""What the caller and the operator say while the operator is on the call reaches the console
live: the gateway transcribes each side's utterance, publishes it as a ``handoff_line`` event on
JetStream (real NATS; redacted like every event), and the console's own feed (the one behind
its SSE transcript) reads it while the operator is still talking, before any hand back."""

from __future__ import annotations

import asyncio
import functools
import struct
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from trunkline.bus import Bus
from trunkline.devservers import NatsServer
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.events import State
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.escalations import HandoffTexts, HumanSide, Sentiment
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeHumanLoop,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
    FakeTransport,
)
from trunkline.gateway.fillers import FillerCache
from trunkline.gateway.handoff import FRAME_BYTES, OperatorLeg
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.hitl import TicketState
from trunkline.gateway.peers.types import CallInfo, ContextResult
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.sink import EventSink
from trunkline.hitl.console.board import line_view
from trunkline.hitl.console.feed import JetStreamFeed
from trunkline.proto.events.v1 import events_pb2
from trunkline.state.fake import FakeCallStateStore
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.integration

SILENCE = bytes(FRAME_BYTES)


def voice(value: int) -> bytes:
    return struct.pack("<h", value) * (FRAME_BYTES // 2)


ASK, CALLER, OPERATOR = voice(1000), voice(3000), voice(6000)
HEARD = {
    1000: "I want to talk to a real person",
    3000: "my crown fell out",
    6000: "we can see you at three today, we will call you at 415 555 0100",
}


def heard(audio: bytes) -> str:
    for i in range(0, len(audio), 2):
        (sample,) = struct.unpack_from("<h", audio, i)
        if sample:
            return HEARD.get(sample, "")
    return ""


class Leg(OperatorLeg):
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def frames(self) -> AsyncIterator[bytes]:
        while (pcm := await self.incoming.get()) is not None:
            yield pcm

    async def send_caller_audio(self, pcm: bytes) -> None:
        return None

    async def close(self) -> None:
        self.incoming.put_nowait(None)


async def play(transport: FakeTransport, pcm: bytes, n: int) -> None:
    """``n`` caller frames on the real clock (the outbound clock ticks with them)."""
    for _ in range(n):
        transport.frame(pcm)
        await asyncio.sleep(0.02)


async def wait_for(transport: FakeTransport, condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await play(transport, SILENCE, 1)


def make_session(
    sink: EventSink, hitl: FakeHumanLoop, recorder: SpanRecorder
) -> tuple[CallSession, FakeTransport, FakeContext]:
    clock = SystemClock()
    env = PeerEnv(clock, recorder.provider.get_tracer("test"))
    transport = FakeTransport(clock.now)
    context = FakeContext(env)
    call = CallInfo("CAlive1", "acme", "acme-dental", "1.0.0", caller_address="+15550100")
    session = CallSession(
        call,
        transport,
        Peers(
            FakeTranscriber(env, heard),
            context,
            FakeLanguageModel(env, lambda text: "Sure."),
            FakeSynthesizer(env, frames_per_word=2),
        ),
        EnergyDetector(),
        sink,
        clock=clock,
        tracer=recorder.provider.get_tracer("gateway"),
        fillers=FillerCache(clock),
        config=SessionConfig(
            turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200)),
            greeting="Hello.",
        ),
        human=HumanSide(hitl, Sentiment(), texts=HandoffTexts(handoff="Please hold.")),
    )
    return session, transport, context


async def test_caller_and_operator_lines_reach_the_console_feed_while_they_talk(
    nats_server: NatsServer, span_recorder: SpanRecorder
) -> None:
    bus = await Bus.connect(nats_server.url, name="gateway-test")
    sink = EventSink(bus, FakeCallStateStore(), "gw-test")
    await sink.start()
    hitl = FakeHumanLoop()
    session, transport, context = make_session(sink, hitl, span_recorder)
    call = session.call
    task = asyncio.create_task(session.run())
    lines: list[tuple[float, events_pb2.HandoffLine]] = []

    async def console_reads() -> None:  # the console's feed for this call, as its SSE uses it
        since = datetime.now(UTC) - timedelta(minutes=1)
        async for event in JetStreamFeed(bus.client).events("acme", since, call.call_id):
            if isinstance(event.message, events_pb2.HandoffLine):
                lines.append((time.monotonic(), event.message))

    reader = asyncio.create_task(console_reads())

    frames = functools.partial(play, transport)
    until = functools.partial(wait_for, transport)
    try:
        await frames(SILENCE, 5)
        context.result = ContextResult(intent="human", intent_score=0.9)
        await frames(ASK, 10)
        await until(lambda: session.machine.state is State.HANDED_OFF)
        await until(lambda: len(hitl.escalations) == 1)
        hitl.update("t-1", TicketState.TAKEN_OVER, operator_id="op-7")
        leg = Leg()
        await session.attach_operator("t-1", leg)
        await frames(CALLER, 15)
        caller_done = time.monotonic()
        await frames(SILENCE, 30)  # the caller's pause ends their utterance
        for _ in range(15):
            leg.incoming.put_nowait(OPERATOR)
        for _ in range(30):
            leg.incoming.put_nowait(SILENCE)
        await until(lambda: len(lines) == 2)
        # still on the call with the operator: nothing waited for a hand back
        assert session.machine.state is State.HANDED_OFF
        views = [line_view(event) for _, event in lines]
        assert [(v.speaker, v.text) for v in views] == [
            ("caller", "my crown fell out"),
            # redacted like every event the gateway publishes
            ("operator", "we can see you at three today, we will call you at [PHONE]"),
        ]
        first = lines[0][1]
        assert (first.ticket_id, first.operator_id) == ("t-1", "op-7")
        assert first.context.tenant_id == "acme"
        assert first.line.spoken_at.seconds > 0
        # the caller's line was on the console within the pause that ended it plus a little
        assert lines[0][0] - caller_done < 2.0, lines[0][0] - caller_done
        hitl.update("t-1", TicketState.HANDED_BACK, operator_id="op-7", note="booked 3 pm")
        await until(lambda: session.machine.state is State.LISTENING)
    finally:
        transport.hang_up()
        await asyncio.wait_for(task, 10)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await bus.close()
