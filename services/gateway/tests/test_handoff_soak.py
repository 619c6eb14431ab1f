"""20 calls escalate to the real hitl service at once; operators take some over and hand them
back, leave others to time out (callback offered); the hitl service is restarted twice while
calls wait (its tickets live in JetStream). No call is dropped: every one gets the agent back,
answers again, and ends only when its caller hangs up."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from trunkline.bus import Bus
from trunkline.bus.streams import EVENTS
from trunkline.devservers import NatsServer
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.escalation import EscalationPolicy
from trunkline.gateway.core.events import State
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.escalations import HandoffTexts, HumanSide, Sentiment
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
from trunkline.gateway.handoff import FRAME_BYTES, Outcome
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.grpc_common import call_context
from trunkline.gateway.peers.grpc_hitl import GrpcHumanLoop
from trunkline.gateway.peers.types import CallInfo, ContextResult
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.hitl.queue import TicketQueue, WallClock
from trunkline.hitl.server import HumanLoopService, register
from trunkline.hitl.store import JetStreamTicketStore
from trunkline.proto.hitl.v1 import hitl_pb2, hitl_pb2_grpc
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.integration

CALLS = 20
SILENCE = bytes(FRAME_BYTES)
ASK = struct.pack("<h", 1000) * (FRAME_BYTES // 2)


ASKED = ["I want to talk to a real person"]  # what every caller says; changed after the handoffs


def heard(audio: bytes) -> str:
    return ASKED[-1] if any(audio) else ""


@dataclass
class HitlProcess:
    """The hitl service, restartable on one port over one JetStream bucket."""

    url: str
    bucket: str = field(default_factory=lambda: f"T_{uuid.uuid4().hex[:10]}")
    port: int = 0
    bus: Bus | None = None
    queue: TicketQueue | None = None
    server: grpc.aio.Server | None = None
    restarts: int = 0

    async def start(self) -> None:
        self.bus = await Bus.connect(self.url, name="hitl")
        await self.bus.ensure_stream(EVENTS)
        self.queue = TicketQueue(
            JetStreamTicketStore(self.bus, bucket=self.bucket), clock=WallClock()
        )
        await self.queue.start()
        self.server = grpc.aio.server()
        register(self.server, HumanLoopService(self.queue))
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)
        if self.queue is not None:
            await self.queue.close()
        if self.bus is not None:
            await self.bus.close()

    async def restart(self) -> None:
        await self.stop()
        self.restarts += 1
        await self.start()


async def retrying(method: Any, request: Any) -> None:
    """An operator's action, repeated while the hitl service restarts. A repeat of an action
    the cut call had already done is refused as done by this operator: that is success."""
    for attempt in range(50):
        try:
            await method(request)
            return
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            done_before = f"by operator {request.operator_id}" in details or (
                "is handed_back" in details and isinstance(request, hitl_pb2.HandBackRequest)
            )
            if attempt and exc.code() is grpc.StatusCode.FAILED_PRECONDITION and done_before:
                return
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise
            await asyncio.sleep(0.1 * (attempt + 1))


async def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)


async def operator(
    session: CallSession, stub: hitl_pb2_grpc.HumanLoopStub, delay: float, name: str
) -> None:
    """Accepts the call's ticket after ``delay`` (well within the 8 s timeout) and hands it back."""
    handoffs = session.handoffs
    assert handoffs is not None
    while handoffs.handoff is None or not handoffs.handoff.ticket_id:
        if handoffs.results:  # it ended without a ticket: the test's assertions say how
            return
        await asyncio.sleep(0.05)
    ticket = handoffs.handoff.ticket_id
    await asyncio.sleep(delay)
    ctx = call_context(session.call)
    take = hitl_pb2.TakeOverRequest(context=ctx, ticket_id=ticket, operator_id=name)
    await retrying(stub.TakeOver, take)
    await asyncio.sleep(0.3)
    back = hitl_pb2.HandBackRequest(context=ctx, ticket_id=ticket, operator_id=name, note=name)
    await retrying(stub.HandBack, back)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def hitl(nats_server: NatsServer) -> AsyncIterator[HitlProcess]:
    process = HitlProcess(nats_server.url, port=free_port())
    await process.start()
    yield process
    await process.stop()


def make_call(
    client: GrpcHumanLoop, recorder: SpanRecorder, n: int
) -> tuple[CallSession, FakeTransport, FakeContext]:
    clock = SystemClock()
    env = PeerEnv(clock, recorder.provider.get_tracer("test"))
    transport = FakeTransport(clock.now)
    context = FakeContext(env, ContextResult(intent="human", intent_score=0.9))
    side = HumanSide(
        client,
        Sentiment(),
        EscalationPolicy(),
        HandoffTexts(
            handoff="Please hold.", callback="We will call you back.", resume="I am back."
        ),
        operator_timeout_s=8.0,
    )
    session = CallSession(
        CallInfo(f"CA{n:02d}{uuid.uuid4().hex[:6]}", "acme", "acme-dental", "1.0.0"),
        transport,
        Peers(
            FakeTranscriber(env, heard),
            context,
            FakeLanguageModel(env, lambda text: "Let me look into that."),
            FakeSynthesizer(env, frames_per_word=2),
        ),
        EnergyDetector(),
        RecordingSink(),
        clock=clock,
        tracer=recorder.provider.get_tracer("gateway"),
        fillers=FillerCache(clock),
        config=SessionConfig(
            turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200)),
            greeting="Hello.",
        ),
        human=side,
    )
    return session, transport, context


async def test_twenty_escalations_with_timeouts_and_hitl_restarts_drop_no_call(
    hitl: HitlProcess, span_recorder: SpanRecorder
) -> None:
    rng = random.Random(7)
    del ASKED[1:]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{hitl.port}")
    client = GrpcHumanLoop(channel)
    stub = hitl_pb2_grpc.HumanLoopStub(channel)
    calls = [make_call(client, span_recorder, n) for n in range(CALLS)]
    tasks = [asyncio.create_task(session.run()) for session, _, _ in calls]
    speaking: dict[int, int] = {}  # call -> voiced frames still to send
    stop = asyncio.Event()

    async def wire() -> None:  # every call's 20 ms clock
        while not stop.is_set():
            for i, (_, transport, _) in enumerate(calls):
                left = speaking.get(i, 0)
                transport.frame(ASK if left else SILENCE)
                speaking[i] = max(0, left - 1)
            await asyncio.sleep(0.02)

    wire_task = asyncio.create_task(wire())
    await asyncio.sleep(1.0)  # greetings
    for i in range(CALLS):
        speaking[i] = 10  # every caller asks for a person
    takers = set(rng.sample(range(CALLS), CALLS // 2))  # an operator comes for half of them

    operators = [
        asyncio.create_task(operator(calls[i][0], stub, rng.uniform(0.2, 1.5), f"op{i}"))
        for i in sorted(takers)
    ]
    await asyncio.sleep(1.5)
    await hitl.restart()  # while tickets wait and operators act
    await asyncio.sleep(1.5)
    await hitl.restart()
    await asyncio.wait_for(asyncio.gather(*operators), 30)
    await wait_for(  # every call gets the agent back
        lambda: all(
            s.machine.state is State.LISTENING and s.handoffs is not None and s.handoffs.results
            for s, _, _ in calls
        ),
        30,
    )
    outcomes = [
        s.handoffs.results[-1].outcome if s.handoffs and s.handoffs.results else None
        for s, _, _ in calls
    ]
    assert all(not t.done() for t in tasks), "a call ended before its caller hung up"
    for i, outcome in enumerate(outcomes):
        expected = Outcome.HANDED_BACK if i in takers else Outcome.TIMED_OUT
        assert outcome is expected, (i, outcome)
    # Each call answers again after the handoff.
    for _, _, context in calls:
        context.result = ContextResult(confidence=0.9)
    ASKED.append("My filling fell out yesterday")  # a question for the agent, not for a person
    for i in range(CALLS):
        speaking[i] = 10
    await wait_for(lambda: all(len(s.sink.turns) >= 3 for s, _, _ in calls), 20)  # type: ignore[attr-defined]
    stop.set()
    await wire_task
    for _, transport, _ in calls:
        transport.hang_up()
    summaries = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert hitl.restarts == 2
    assert [s.reason for s in summaries] == ["caller hung up"] * CALLS
    replies = [s.sink.turns[-1].agent_text for s, _, _ in calls]  # type: ignore[attr-defined]
    assert replies == ["Let me look into that."] * CALLS
    await channel.close()
