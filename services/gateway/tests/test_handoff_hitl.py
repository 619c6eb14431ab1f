"""A call escalates to the real hitl service (its gRPC server over a JetStream ticket store on
a real NATS): the gateway's gRPC client queues the ticket with the transcript and customer
record; an operator takes over (TakeOver) and hands back (HandBack) and the agent resumes
knowing what was said; with no operator in time the caller is offered a callback, the ticket
stays queued with it and the call stays up; a high-risk tool waits for a real approval. The
hold message's start after the caller's last word is measured on the wall clock (fake
STT/LLM/TTS: the platform's own time, not the models')."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from trunkline.bus import Bus
from trunkline.bus.streams import EVENTS
from trunkline.devservers import NatsServer
from trunkline.gateway.approvals import HitlApprover, Verdict
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
from trunkline.gateway.peers.hitl import ApprovalRequest
from trunkline.gateway.peers.types import CallInfo, ContextResult
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.hitl.events import TicketEvents
from trunkline.hitl.queue import TicketQueue, WallClock
from trunkline.hitl.server import HumanLoopService, register
from trunkline.hitl.store import JetStreamTicketStore
from trunkline.proto.common.v1 import handoff_pb2
from trunkline.proto.hitl.v1 import hitl_pb2, hitl_pb2_grpc
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.integration

SILENCE = bytes(FRAME_BYTES)
TEXTS = HandoffTexts(
    handoff="Let me get a colleague for you. Please hold.",
    callback="Sorry, nobody is free. Shall a colleague call you back?",
    callback_accepted="Thank you. A colleague will call you back at {number}.",
    callback_declined="All right, no callback.",
    resume="Thanks for holding. I am back.",
)


def voice(value: int) -> bytes:
    return struct.pack("<h", value) * (FRAME_BYTES // 2)


ASK, QUESTION, CALLER = voice(1000), voice(1200), voice(3000)
NUMBER, NO = voice(1800), voice(1600)
HEARD = {
    1000: "I want to talk to a real person",
    1200: "when is my appointment",
    3000: "hello?",
    1800: "Yes, call me at four one five, five five five, zero one zero zero.",
    1600: "No thanks.",
}


def heard(audio: bytes) -> str:
    for i in range(0, len(audio), 2):
        (sample,) = struct.unpack_from("<h", audio, i)
        if sample:
            return HEARD.get(sample, "")
    return ""


@dataclass
class Hitl:
    stub: hitl_pb2_grpc.HumanLoopStub
    client: GrpcHumanLoop


@pytest.fixture
async def hitl(nats_server: NatsServer) -> AsyncIterator[Hitl]:
    bus = await Bus.connect(nats_server.url, name="hitl-test")
    await bus.ensure_stream(EVENTS)
    clock = WallClock()
    queue = TicketQueue(
        JetStreamTicketStore(bus, bucket=f"T_{uuid.uuid4().hex[:10]}"),
        clock=clock,
        listeners=[TicketEvents(bus, clock.now)],
    )
    await queue.start()
    server = grpc.aio.server()
    register(server, HumanLoopService(queue))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Hitl(hitl_pb2_grpc.HumanLoopStub(channel), GrpcHumanLoop(channel))
    await channel.close()
    await server.stop(None)
    await queue.close()
    await bus.close()


class Call:
    """A live call on a real clock: the transport's outbound clock ticks every 20 ms."""

    def __init__(self, hitl: Hitl, recorder: SpanRecorder, operator_timeout_s: float) -> None:
        clock = SystemClock()
        env = PeerEnv(clock, recorder.provider.get_tracer("test"))
        self.transport = FakeTransport(clock.now)
        self.context = FakeContext(env)
        self.llm = FakeLanguageModel(env, lambda text: "Let me look into your appointment.")
        self.tts = FakeSynthesizer(env, frames_per_word=2)
        self.sink = RecordingSink()
        self.call = CallInfo(
            f"CA{uuid.uuid4().hex[:8]}", "acme", "acme-dental", "1.0.0", caller_address="+15550100"
        )
        side = HumanSide(
            hitl.client,
            Sentiment(),
            EscalationPolicy(),
            TEXTS,
            operator_timeout_s=operator_timeout_s,
        )
        self.session = CallSession(
            self.call,
            self.transport,
            Peers(FakeTranscriber(env, heard), self.context, self.llm, self.tts),
            EnergyDetector(),
            self.sink,
            clock=clock,
            tracer=recorder.provider.get_tracer("gateway"),
            fillers=FillerCache(clock),
            config=SessionConfig(
                turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200)),
                greeting="Hello, thanks for calling.",
            ),
            human=side,
        )
        self.task = asyncio.create_task(self.session.run())
        self.last_voice_at = 0.0

    async def frames(self, pcm: bytes, n: int) -> None:
        for _ in range(n):
            self.transport.frame(pcm)
            await asyncio.sleep(0.02)

    async def until(self, condition: object, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached")
            await self.frames(SILENCE, 1)

    async def say(self, pcm: bytes) -> None:
        await self.frames(pcm, 10)
        self.last_voice_at = time.monotonic()

    async def end(self) -> None:
        self.transport.hang_up()
        await asyncio.wait_for(self.task, 10)


async def test_escalate_operator_takes_over_and_hands_back(
    hitl: Hitl, span_recorder: SpanRecorder
) -> None:
    call = Call(hitl, span_recorder, operator_timeout_s=30.0)
    await call.until(lambda: len(call.sink.turns) == 1)
    call.context.result = ContextResult(intent="human", intent_score=0.86)
    sent_before = call.transport.sent_frames
    await call.say(ASK)
    # The hold message (the turn's reply) starts within a second of the caller's last word.
    await call.until(lambda: call.transport.sent_frames > sent_before, 2.0)
    hold_message_s = time.monotonic() - call.last_voice_at
    assert hold_message_s <= 1.0
    await call.until(lambda: call.session.machine.state is State.HANDED_OFF)
    handoffs = call.session.handoffs
    assert handoffs is not None
    await call.until(lambda: handoffs.handoff is not None and handoffs.handoff.ticket_id != "")
    assert handoffs.handoff is not None
    ticket_id = handoffs.handoff.ticket_id
    ctx = call_context(call.call)
    listed = await hitl.stub.ListQueue(hitl_pb2.ListQueueRequest(context=ctx))
    (ticket,) = [t for t in listed.tickets if t.ticket_id == ticket_id]
    assert ticket.state == hitl_pb2.TICKET_STATE_QUEUED
    texts = [e.text for e in ticket.escalation.transcript]
    assert "I want to talk to a real person" in texts
    assert ticket.escalation.customer.fields["caller_id"] == "+15550100"
    # An operator accepts: the gateway learns it from WaitDecision.
    accepted_at = time.monotonic()
    await hitl.stub.TakeOver(
        hitl_pb2.TakeOverRequest(context=ctx, ticket_id=ticket_id, operator_id="op-7")
    )
    await call.until(lambda: handoffs.handoff is not None and handoffs.handoff.phase == "talking")
    accept_s = time.monotonic() - accepted_at
    await hitl.stub.HandBack(
        hitl_pb2.HandBackRequest(
            context=ctx, ticket_id=ticket_id, operator_id="op-7", note="moved to 3 pm Friday"
        )
    )
    await call.until(lambda: call.session.machine.state is State.LISTENING)
    assert handoffs.results[-1].outcome is Outcome.HANDED_BACK
    call.context.result = ContextResult(confidence=0.9)
    await call.say(QUESTION)
    await call.until(lambda: len(call.llm.requests) == 1)
    history = [m.text for m in call.llm.requests[0].history]
    assert "(my colleague's note) moved to 3 pm Friday" in history
    await call.end()
    print(
        f"\nhold message after last word: {hold_message_s * 1000:.0f} ms; "
        f"TakeOver -> operator phase at the gateway: {accept_s * 1000:.0f} ms"
    )


@pytest.mark.parametrize("accepts", [True, False])
async def test_no_operator_in_time_offers_a_callback_and_keeps_the_ticket(
    hitl: Hitl, span_recorder: SpanRecorder, accepts: bool
) -> None:
    call = Call(hitl, span_recorder, operator_timeout_s=1.5)
    await call.until(lambda: len(call.sink.turns) == 1)
    call.context.result = ContextResult(intent="human", intent_score=0.9)
    await call.say(ASK)
    await call.until(lambda: call.session.machine.state is State.HANDED_OFF)
    await call.until(lambda: call.session.machine.state is State.LISTENING, 6.0)
    handoffs = call.session.handoffs
    assert handoffs is not None
    assert handoffs.results[-1].outcome is Outcome.TIMED_OUT
    ticket_id = handoffs.results[-1].ticket_id
    listed = await hitl.stub.ListQueue(
        hitl_pb2.ListQueueRequest(context=call_context(call.call), include_closed=True)
    )
    (ticket,) = [t for t in listed.tickets if t.ticket_id == ticket_id]
    assert ticket.state == hitl_pb2.TICKET_STATE_QUEUED  # the ticket stays
    assert ticket.HasField("callback")  # offered ...
    assert not ticket.callback.accepted  # ... and not accepted before the caller answers
    # The caller answers the question on the next turn; the ticket records the answer.
    await call.say(NUMBER if accepts else NO)
    await call.until(lambda: len(call.sink.turns) == 3)
    assert call.sink.turns[2].reply_source == "callback"

    async def answered() -> hitl_pb2.Ticket:
        for _ in range(100):
            listed = await hitl.stub.ListQueue(
                hitl_pb2.ListQueueRequest(context=call_context(call.call), include_closed=True)
            )
            (ticket,) = [t for t in listed.tickets if t.ticket_id == ticket_id]
            if ticket.callback.accepted == accepts and (not accepts or ticket.callback.number):
                return ticket
            await asyncio.sleep(0.05)
        raise AssertionError(f"the answer never reached the ticket: {ticket.callback}")

    ticket = await answered()
    assert ticket.callback.number == ("4155550100" if accepts else "")
    # The call is still up and the agent answers again.
    call.context.result = ContextResult(confidence=0.9)
    await call.say(QUESTION)
    await call.until(lambda: len(call.sink.turns) == 4)
    assert call.sink.turns[3].agent_text == "Let me look into your appointment."
    assert not call.task.done()
    await call.end()
    listed = await hitl.stub.ListQueue(
        hitl_pb2.ListQueueRequest(context=call_context(call.call), include_closed=True)
    )
    (ticket,) = [t for t in listed.tickets if t.ticket_id == ticket_id]
    # accepted: queued for the operator who calls back; declined: withdrawn with the call
    expected = hitl_pb2.TICKET_STATE_QUEUED if accepts else hitl_pb2.TICKET_STATE_CANCELLED
    assert ticket.state == expected


async def test_approval_round_trip_through_the_real_queue(hitl: Hitl) -> None:
    call = CallInfo(f"CA{uuid.uuid4().hex[:8]}", "acme", "acme-dental", "1.0.0")
    ctx = call_context(call)
    approver = HitlApprover(hitl.client, SystemClock())
    laps: list[float] = []
    for outcome, verdict in [
        (handoff_pb2.DECISION_OUTCOME_APPROVED, Verdict.APPROVED),
        (handoff_pb2.DECISION_OUTCOME_DENIED, Verdict.DENIED),
    ] * 5:
        request = ApprovalRequest(
            f"r-{uuid.uuid4().hex[:6]}", "issue_refund", '{"amount_usd": 80}', timeout_s=10.0
        )
        started = time.monotonic()
        task = asyncio.create_task(approver.decide(call, request))
        while True:  # the operator's console sees the ticket
            listed = await hitl.stub.ListQueue(hitl_pb2.ListQueueRequest(context=ctx))
            waiting = [t for t in listed.tickets if t.kind == hitl_pb2.TICKET_KIND_APPROVAL]
            if waiting:
                break
            await asyncio.sleep(0.002)
        seen = time.monotonic()
        await asyncio.sleep(0.05)  # the human's own time (not counted)
        decided = time.monotonic()
        await hitl.stub.Decide(
            hitl_pb2.DecideRequest(
                context=ctx, ticket_id=waiting[0].ticket_id, outcome=outcome, operator_id="op"
            )
        )
        decision = await task
        laps.append((seen - started) + (time.monotonic() - decided))
        assert decision.verdict is verdict
    laps.sort()
    print(
        f"\napproval round trip without the human: p50 {laps[4] * 1000:.1f} ms, "
        f"max {laps[-1] * 1000:.1f} ms over {len(laps)}"
    )
    assert laps[len(laps) // 2] <= 0.1
