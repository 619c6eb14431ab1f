"""A call session escalates and gets the call back, with fake peers, a fake hitl service and
a fake operator leg: the caller asks for a person, hears the hold message then hold audio, the
operator talks and hands back, the agent answers knowing what was said; no operator in time →
callback offer and the agent resumes; the operator ends the call; tool failures escalate."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.escalation import EscalationPolicy, Reason
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
    RecordingSink,
)
from trunkline.gateway.fillers import FillerCache
from trunkline.gateway.handoff import FRAME_BYTES, OperatorLeg, Outcome
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.hitl import TicketState
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo, ContextResult
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

SILENCE = bytes(FRAME_BYTES)
HUMAN = ContextResult(intent="human", intent_score=0.9)  # the context service: "a person"
CALL = CallInfo("CA9", "acme", "support", "v3", caller_address="+15550100")
POLICY = RetryPolicy(timeout_s=0.5, backoff_s=0.1, max_backoff_s=0.2)
TEXTS = HandoffTexts(
    handoff="Let me get a colleague for you. Please hold.",
    callback="Sorry, nobody is free. Shall a colleague call you back?",
    callback_accepted="Thank you. A colleague will call you back at {number}.",
    callback_declined="All right, no callback. How else can I help?",
    resume="Thanks for holding. I am back.",
    unavailable="Sorry, I cannot reach a colleague.",
)


def voice(value: int) -> bytes:
    return struct.pack("<h", value) * (FRAME_BYTES // 2)


ASK_PERSON, QUESTION, CALLER_TALKS, OPERATOR_TALKS = (
    voice(1000),
    voice(1200),
    voice(3000),
    voice(6000),
)
YES, NO, NUMBER = voice(1400), voice(1600), voice(1800)
FIRST_DIGITS, REST_DIGITS = voice(2000), voice(2200)
HEARD = {
    1000: "I want to talk to a real person",
    1200: "when is my appointment",
    3000: "my crown fell out",
    6000: "we booked you for three pm today",
    1400: "Yes please.",
    1600: "No thanks, I'll call again tomorrow.",
    1800: "Call me at four one five, five five five, zero one zero zero.",
    2000: "Yes, please call me back at four one five, five five five.",  # a pause ends the turn
    2200: "Zero one zero zero.",
}


def heard(audio: bytes) -> str:
    for i in range(0, len(audio), 2):
        (sample,) = struct.unpack_from("<h", audio, i)
        if sample:
            return HEARD.get(sample, "")
    return ""


class FakeLeg(OperatorLeg):
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.heard: list[bytes] = []
        self.closed = False

    async def frames(self) -> AsyncIterator[bytes]:
        while (pcm := await self.incoming.get()) is not None:
            yield pcm

    async def send_caller_audio(self, pcm: bytes) -> None:
        self.heard.append(pcm)

    async def close(self) -> None:
        self.closed = True
        self.incoming.put_nowait(None)


@dataclass
class Rig:
    clock: FakeClock
    transport: FakeTransport
    context: FakeContext
    llm: FakeLanguageModel
    tts: FakeSynthesizer
    hitl: FakeHumanLoop
    sink: RecordingSink
    session: CallSession
    task: asyncio.Task[object] | None = None

    async def settle(self) -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def frames(self, pcm: bytes, n: int) -> None:
        for _ in range(n):
            self.clock.advance(0.02)
            self.transport.frame(pcm)
            await self.settle()

    async def until(self, condition: object, max_frames: int = 600) -> None:
        for _ in range(max_frames):
            if condition():  # type: ignore[operator]
                return
            await self.frames(SILENCE, 1)
        raise AssertionError("condition not reached")

    async def say(self, pcm: bytes) -> None:
        await self.frames(pcm, 10)

    async def greeted(self) -> None:
        self.task = asyncio.create_task(self.session.run())
        await self.settle()
        await self.until(lambda: len(self.sink.turns) == 1)

    async def escalate(self, intent: ContextResult | None = None) -> None:
        """The caller asks for a person (``intent``: what the context service says of it) and
        the gateway escalates: one ticket more."""
        if intent is not None:
            self.context.result = intent
        before = len(self.hitl.escalations)
        await self.say(ASK_PERSON)
        await self.until(lambda: len(self.hitl.escalations) == before + 1)

    async def no_operator_in_time(self) -> None:
        """3.2 s on hold, past the operator timeout: the callback is offered, the agent
        listens again."""
        await self.frames(SILENCE, 160)
        await self.until(lambda: self.session.machine.state is State.LISTENING)

    async def hang_up(self) -> object:
        """The caller hangs up; the session's summary."""
        self.transport.hang_up()
        assert self.task is not None
        return await asyncio.wait_for(self.task, 5)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


def make_rig(spans: InMemorySpanExporter, **policy: object) -> Rig:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    clock = FakeClock(1000.0)
    env = PeerEnv(clock, provider.get_tracer("test"))
    transport = FakeTransport(clock.now)
    stt = FakeTranscriber(env, heard, POLICY)
    context = FakeContext(env)
    llm = FakeLanguageModel(env, lambda text: "Let me look into your appointment.", POLICY)
    tts = FakeSynthesizer(env, frames_per_word=2, policy=POLICY)
    hitl = FakeHumanLoop()
    side = HumanSide(
        hitl,
        Sentiment(),
        EscalationPolicy(**policy),  # type: ignore[arg-type]
        TEXTS,
        operator_timeout_s=3.0,
    )
    session = CallSession(
        CALL,
        transport,
        Peers(stt, context, llm, tts),
        EnergyDetector(),
        RecordingSink(),
        clock=clock,
        tracer=provider.get_tracer("gateway"),
        fillers=FillerCache(clock, deadline_s=0.3),
        config=SessionConfig(
            turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200)),
            greeting="Hello, thanks for calling.",
        ),
        human=side,
    )
    assert isinstance(session.sink, RecordingSink)
    return Rig(clock, transport, context, llm, tts, hitl, session.sink, session)


@pytest_asyncio.fixture
async def rig(spans: InMemorySpanExporter) -> Rig:
    """A call with the default escalation policy, greeted."""
    made = make_rig(spans)
    await made.greeted()
    return made


def loud(frames: list[bytes]) -> bool:
    return all(any(f) for f in frames)


async def test_person_request_hold_operator_hand_back(
    rig: Rig, spans: InMemorySpanExporter
) -> None:
    rig.context.result = ContextResult(intent="human", intent_score=0.86, confidence=0.1)
    await rig.say(ASK_PERSON)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    turn = rig.sink.turns[1]
    # The hold message is the turn's reply: no LLM ramble.
    assert turn.reply_source == "handoff"
    assert turn.agent_text == TEXTS.handoff
    assert turn.escalation is not None
    assert turn.escalation.reason is Reason.CALLER_REQUEST
    assert rig.llm.requests == []
    await rig.until(lambda: rig.session.machine.state is State.HANDED_OFF)
    await rig.until(lambda: len(rig.hitl.escalations) == 1)
    request = rig.hitl.escalations[0]
    assert request.reason == "caller_request"
    assert ("caller", "I want to talk to a real person") in [
        (line.speaker, line.text) for line in request.transcript
    ]
    assert request.customer["caller_id"] == "+15550100"
    # On hold: the hold audio plays, never silence, while the caller waits.
    before = len(rig.transport.played)
    await rig.frames(SILENCE, 50)
    assert loud(rig.transport.played[before + 5 :])
    # The operator accepts and joins.
    rig.hitl.update("t-1", TicketState.TAKEN_OVER, operator_id="op-7")
    leg = FakeLeg()
    await rig.session.attach_operator("t-1", leg)
    await rig.settle()
    await rig.frames(CALLER_TALKS, 15)
    await rig.frames(SILENCE, 30)
    assert CALLER_TALKS in leg.heard  # the caller's voice reaches the operator
    for _ in range(15):
        leg.incoming.put_nowait(OPERATOR_TALKS)
    for _ in range(30):
        leg.incoming.put_nowait(SILENCE)
    await rig.settle()
    before = len(rig.transport.played)
    await rig.frames(SILENCE, 50)
    assert OPERATOR_TALKS in rig.transport.played[before:]  # the operator reaches the caller
    assert rig.llm.requests == []  # the agent stays quiet
    rig.hitl.update("t-1", TicketState.HANDED_BACK, operator_id="op-7", note="booked 3 pm")
    await rig.until(lambda: rig.session.machine.state is State.LISTENING)
    # The agent resumes knowing what the person said.
    rig.context.result = ContextResult(confidence=0.9)
    await rig.say(QUESTION)
    await rig.until(lambda: len(rig.llm.requests) == 1)
    history = [m.text for m in rig.llm.requests[0].history]
    assert "my crown fell out" in history
    assert "(my colleague) we booked you for three pm today" in history
    assert "(my colleague's note) booked 3 pm" in history
    assert rig.tts.texts.count(TEXTS.resume) == 1
    await rig.hang_up()
    assert rig.hitl.cancelled == []
    events = [e.name for s in spans.get_finished_spans() for e in s.events]
    assert "escalation.decision" in events
    assert "handoff.finished" in events


async def test_no_operator_callback_offer_and_the_call_stays_up(rig: Rig) -> None:
    await rig.escalate(HUMAN)
    await rig.no_operator_in_time()  # 3.2 s on hold: past the operator timeout
    # offered, not accepted: the caller was asked, nobody answered yet
    assert rig.hitl.callbacks == [("t-1", False, "")]
    assert rig.hitl.cancelled == []
    assert TEXTS.callback in rig.tts.texts
    assert rig.session.handoffs is not None
    assert rig.session.handoffs.results[0].outcome is Outcome.TIMED_OUT
    rig.context.result = ContextResult(confidence=0.9)
    await rig.say(QUESTION)  # no answer to the offer: the caller moved on
    await rig.until(lambda: len(rig.sink.turns) == 3)
    assert rig.sink.turns[2].agent_text == "Let me look into your appointment."
    assert TEXTS.callback in [m.text for m in rig.llm.requests[0].history]  # it knows it asked
    await rig.say(YES)  # too late: the question was answered by moving on
    await rig.until(lambda: len(rig.sink.turns) == 4)
    assert rig.sink.turns[3].reply_source != "callback"
    assert rig.hitl.callbacks == [("t-1", False, "")]
    assert rig.task is not None
    assert not rig.task.done()
    await rig.hang_up()
    assert rig.hitl.cancelled == ["t-1"]  # never accepted: withdrawn when the call ends


async def test_asking_for_a_person_instead_of_answering_the_callback_escalates_again(
    rig: Rig,
) -> None:
    await rig.escalate()
    await rig.no_operator_in_time()  # the caller is asked
    await rig.say(ASK_PERSON)  # "I want to talk to a real person": no answer, a new request
    await rig.until(lambda: len(rig.hitl.escalations) == 2)
    assert rig.sink.turns[2].reply_source == "handoff"
    assert rig.hitl.callbacks == [("t-1", False, "")]  # the offer stays unaccepted
    await rig.hang_up()
    assert "t-1" in rig.hitl.cancelled  # withdrawn with the call; t-2 waited on hold


@pytest.mark.parametrize(
    ("answer", "recorded", "reply"),
    [
        (YES, ("t-1", True, ""), TEXTS.callback_accepted.format(number="this number")),
        (
            NUMBER,
            ("t-1", True, "4155550100"),
            TEXTS.callback_accepted.format(number="4 1 5, 5 5 5, 0 1 0 0"),
        ),
        (NO, ("t-1", False, ""), TEXTS.callback_declined),
    ],
)
async def test_the_caller_is_asked_about_a_callback_and_the_ticket_records_the_answer(
    rig: Rig,
    spans: InMemorySpanExporter,
    answer: bytes,
    recorded: tuple[str, bool, str],
    reply: str,
) -> None:
    await rig.escalate(HUMAN)
    await rig.no_operator_in_time()  # the caller is asked
    assert rig.hitl.callbacks == [("t-1", False, "")]
    rig.context.result = ContextResult(intent="small_talk", intent_score=0.9, confidence=0.9)
    await rig.say(answer)
    await rig.until(lambda: len(rig.sink.turns) == 3)
    turn = rig.sink.turns[2]
    assert (turn.reply_source, turn.agent_text) == ("callback", reply)
    assert turn.escalation is None
    assert rig.llm.requests == []  # the agent's own words, no LLM
    assert "context" not in turn.stage_s  # nor the context service
    await rig.until(lambda: len(rig.hitl.callbacks) == 2)
    assert rig.hitl.callbacks[1] == recorded
    assert len(rig.hitl.escalations) == 1
    events = {
        e.name: dict(e.attributes or {}) for s in spans.get_finished_spans() for e in s.events
    }
    assert events["callback.answer"]["accepted"] is recorded[1]
    await rig.hang_up()
    # the hitl service keeps a ticket whose callback was accepted; the gateway withdraws it
    assert rig.hitl.cancelled == ["t-1"]


async def test_operator_ends_the_call(rig: Rig) -> None:
    await rig.escalate(HUMAN)
    rig.hitl.update("t-1", TicketState.TAKEN_OVER, operator_id="op")
    rig.hitl.update("t-1", TicketState.ENDED, operator_id="op")
    await rig.until(lambda: rig.task is not None and rig.task.done())
    assert rig.task is not None
    summary = rig.task.result()
    assert summary.reason.startswith("handed off")  # type: ignore[attr-defined]


async def test_caller_hangs_up_on_hold_withdraws_the_ticket(rig: Rig) -> None:
    await rig.escalate(HUMAN)
    await rig.hang_up()
    assert rig.hitl.cancelled == ["t-1"]


async def test_without_a_trigger_the_call_never_escalates(rig: Rig) -> None:
    # "Are you a real person?" is small talk, not a request for one.
    rig.context.result = ContextResult(intent="small_talk", intent_score=0.9, confidence=0.9)
    await rig.say(QUESTION)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    rig.context.result = ContextResult(intent="human", intent_score=0.5, confidence=0.9)
    await rig.say(QUESTION)
    await rig.until(lambda: len(rig.sink.turns) == 3)
    assert rig.hitl.escalations == []
    assert rig.session.machine.state is State.LISTENING
    await rig.hang_up()


async def test_a_second_escalation_plays_the_rendered_hold_message(rig: Rig) -> None:
    await rig.escalate(HUMAN)
    await rig.no_operator_in_time()  # no operator: callback, the agent resumes
    assert TEXTS.handoff in rig.tts.texts  # rendered whole once, kept for the next time
    before = len(rig.tts.texts)
    await rig.escalate()
    assert rig.sink.turns[-1].agent_text == TEXTS.handoff
    assert rig.sink.turns[-1].reply_source == "handoff"
    assert rig.tts.texts[before:] == []  # no TTS on the way to the hold
    await rig.hang_up()


async def test_callback_ticket_taken_while_the_caller_is_still_on(rig: Rig) -> None:
    await rig.escalate(HUMAN)
    await rig.no_operator_in_time()  # no operator in time: callback offered, the agent resumes
    assert rig.hitl.callbacks == [("t-1", False, "")]
    # An operator picks the callback ticket while the caller is still on the line.
    rig.hitl.update("t-1", TicketState.TAKEN_OVER, operator_id="op-2")
    await rig.until(lambda: rig.session.machine.state is State.HANDED_OFF)
    handoffs = rig.session.handoffs
    assert handoffs is not None
    assert handoffs.handoff is not None
    assert handoffs.handoff.ticket_id == "t-1"
    assert handoffs.handoff.phase == "talking"
    assert len(rig.hitl.escalations) == 1  # the same ticket, no new escalation
    rig.hitl.update("t-1", TicketState.HANDED_BACK, operator_id="op-2", note="called back")
    await rig.until(lambda: rig.session.machine.state is State.LISTENING)
    assert [r.outcome for r in handoffs.results] == [Outcome.TIMED_OUT, Outcome.HANDED_BACK]
    await rig.hang_up()


async def test_an_outright_request_plays_the_ready_hold_message_without_waiting_for_context(
    rig: Rig,
) -> None:
    # the greeting played: the hold message is rendered meanwhile
    await rig.until(lambda: TEXTS.handoff in rig.tts.texts)
    rig.context.result = ContextResult(intent="small_talk", intent_score=0.9)  # never asked
    await rig.say(ASK_PERSON)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    turn = rig.sink.turns[1]
    assert (turn.reply_source, turn.agent_text, turn.intent) == ("handoff", TEXTS.handoff, "human")
    assert turn.escalation is not None
    assert turn.escalation.reason is Reason.CALLER_REQUEST
    assert "context" not in turn.stage_s
    assert rig.context.queries == []  # the context service was not waited for
    assert rig.tts.texts.count(TEXTS.handoff) == 1  # the clip rendered after the greeting
    await rig.until(lambda: len(rig.hitl.escalations) == 1)
    await rig.hang_up()


async def test_a_question_still_resolves_its_context(rig: Rig) -> None:
    rig.context.result = ContextResult(confidence=0.9)
    await rig.say(QUESTION)
    await rig.until(lambda: len(rig.sink.turns) == 2)
    assert rig.context.queries == ["when is my appointment"]
    assert rig.hitl.escalations == []
    await rig.hang_up()


async def test_an_answer_given_just_before_hanging_up_is_recorded(rig: Rig) -> None:
    await rig.escalate()
    await rig.no_operator_in_time()  # the caller is asked
    await rig.say(NUMBER)
    await rig.until(lambda: rig.session.machine.state is State.SPEAKING)
    await rig.hang_up()  # during the confirmation: the turn never finishes
    assert rig.hitl.callbacks == [("t-1", False, ""), ("t-1", True, "4155550100")]
    assert rig.hitl.cancelled == ["t-1"]  # after the answer: the hitl service keeps it


async def test_a_number_dictated_over_two_turns_is_put_together(rig: Rig) -> None:
    await rig.escalate()
    await rig.no_operator_in_time()  # the caller is asked
    await rig.say(FIRST_DIGITS)
    await rig.until(lambda: len(rig.hitl.callbacks) == 2)
    assert rig.hitl.callbacks[1] == ("t-1", True, "415555")
    await rig.say(REST_DIGITS)  # (the real stack's caller paused at the comma, as people do)
    await rig.until(lambda: len(rig.hitl.callbacks) == 3)
    assert rig.hitl.callbacks[2] == ("t-1", True, "4155550100")
    turn = rig.sink.turns[-1]
    assert turn.reply_source == "callback"
    assert "4 1 5, 5 5 5, 0 1 0 0" in turn.agent_text
    assert rig.llm.requests == []
    await rig.hang_up()
