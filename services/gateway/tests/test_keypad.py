"""The keypad menu (issue 14): the pure decision per key, the turn machine saying a line at
once (cutting off a reply as a barge-in does), and a session with fake peers acting on a pressed
key: repeat the last reply (even mid-reply), say a line, hand the call to a person as an
outright request does (hold message, ticket with reason caller_request), hang up; a key the
menu does not name changes nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracer

from trunkline.agents.dtmf import KeyAction, MenuItem, menu_items
from trunkline.gateway.app import Gateway, PeerChannels
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.escalation import EscalationPolicy
from trunkline.gateway.core.events import (
    CancelWork,
    ClearPlayback,
    HandOff,
    InboundFrame,
    PlayoutTick,
    ReplyAudio,
    StartWork,
    State,
    TurnFinished,
    WorkDone,
)
from trunkline.gateway.core.keypad import KeypadMenu
from trunkline.gateway.core.turns import TurnConfig, TurnMachine
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
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.profile import load_profiles
from trunkline.gateway.records import CallSink, CallSummary
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.settings import GatewaySettings
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

MENU = menu_items(
    {"0": "person", "9": "repeat", "1": "say: We are open nine to five.", "#": "hang_up"}
)
REPLY = "Your appointment is on Tuesday at ten in the morning with Doctor Lee."
NO_PERSON = "Sorry, nobody can take your call now."
TEXTS = HandoffTexts(
    handoff="Let me get a colleague for you. Please hold.",
    callback="Shall a colleague call you back?",
    callback_accepted="Thank you. We will call you at {number}.",
    callback_declined="All right.",
    resume="I am back.",
    unavailable="Sorry, I cannot reach a colleague.",
)
VOICE = b"\x00\x10" * 320
SILENCE = b"\x00\x00" * 320
AGENTS = Path(__file__).resolve().parents[3] / "agents"
POLICY = RetryPolicy(timeout_s=0.5, backoff_s=0.1, max_backoff_s=0.2)


# ---- the pure decision -------------------------------------------------------------------


def test_each_key_decides_its_action() -> None:
    menu = KeypadMenu(MENU, person_available=True, no_person_line=NO_PERSON)
    person = menu.decide("0", REPLY)
    assert person is not None
    assert person.action is KeyAction.PERSON
    repeat = menu.decide("9", REPLY)
    assert repeat is not None
    assert (repeat.action, repeat.line) == (KeyAction.REPEAT, REPLY)
    say = menu.decide("1", REPLY)
    assert say is not None
    assert (say.action, say.line) == (
        KeyAction.SAY,
        "We are open nine to five.",
    )
    hang_up = menu.decide("#", REPLY)
    assert hang_up is not None
    assert hang_up.action is KeyAction.HANG_UP
    assert menu.decide("5", REPLY) is None  # not in the menu
    assert menu.decide("9", "  ") is None  # nothing said yet: nothing to repeat


def test_a_person_key_without_a_person_says_so() -> None:
    menu = KeypadMenu(MENU, person_available=False, no_person_line=NO_PERSON)
    decision = menu.decide("0", REPLY)
    assert decision is not None
    assert (decision.action, decision.line) == (KeyAction.SAY, NO_PERSON)
    assert "no human-in-the-loop" in decision.detail


# ---- the turn machine says a line at once -------------------------------------------------


def speaking_machine() -> TurnMachine:
    machine = TurnMachine(TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=100)))
    (start,) = [a for a in machine.greet(0.0) if isinstance(a, StartWork)]
    machine.handle(ReplyAudio(start.turn_id, 0, REPLY, b"\x01\x00" * 320 * 50, last=True), 0.0)
    machine.handle(WorkDone(start.turn_id), 0.0)
    for _ in range(5):  # a few frames of the reply play
        machine.handle(InboundFrame(SILENCE, 0.0, -90.0), 0.0)
        machine.handle(PlayoutTick(1), 0.0)
    assert machine.state is State.SPEAKING
    return machine


def test_interject_cuts_the_reply_off_and_starts_a_line_turn() -> None:
    machine = speaking_machine()
    assert machine.last_reply == REPLY  # what it is saying, whole
    actions = machine.interject(REPLY, 1.0)
    kinds = [type(a) for a in actions]
    assert ClearPlayback in kinds  # what plays stops, as on a barge-in
    finished = next(a for a in actions if isinstance(a, TurnFinished))
    assert finished.interrupted
    start = next(a for a in actions if isinstance(a, StartWork))
    assert (start.line, start.speculative, start.greeting) == (REPLY, False, False)
    assert machine.state is State.THINKING
    assert CancelWork not in kinds  # the greeting's work was done: nothing to cancel
    assert machine.last_reply == REPLY  # the whole reply, not the few words heard


def test_interject_does_nothing_while_a_person_has_the_call() -> None:
    machine = speaking_machine()
    machine.handle(HandOff(), 1.0)
    assert machine.interject("anything", 1.0) == []
    assert machine.interject("", 1.0) == []


# ---- a session acting on keys ------------------------------------------------------------


@dataclass
class Rig:
    clock: FakeClock
    transport: FakeTransport
    tts: FakeSynthesizer
    sink: RecordingSink
    session: CallSession
    hitl: FakeHumanLoop | None
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

    async def greeted(self) -> None:
        self.task = asyncio.create_task(self.session.run())
        await self.settle()
        await self.until(lambda: len(self.sink.turns) == 1)

    async def ask(self) -> None:
        """The caller asks; the reply starts playing."""
        await self.frames(VOICE, 10)
        await self.until(lambda: self.session.machine.state is State.SPEAKING)


def make_rig(*, person: bool, menu: dict[str, MenuItem] = MENU) -> Rig:
    tracer = TracerProvider().get_tracer("test")
    clock = FakeClock(1000.0)
    env = PeerEnv(clock, tracer)
    transport = FakeTransport(clock.now)
    tts = FakeSynthesizer(env, frames_per_word=2, policy=POLICY)
    hitl = FakeHumanLoop() if person else None
    side = None
    if hitl is not None:
        side = HumanSide(hitl, Sentiment(), EscalationPolicy(), TEXTS, operator_timeout_s=3.0)
    session = CallSession(
        CallInfo("CA1", "acme", "support", "v3"),
        transport,
        Peers(
            FakeTranscriber(env, lambda audio: "when is my appointment", POLICY),
            FakeContext(env),
            FakeLanguageModel(env, lambda text: REPLY, POLICY),
            tts,
        ),
        EnergyDetector(),
        RecordingSink(),
        clock=clock,
        tracer=tracer,
        fillers=FillerCache(clock, deadline_s=0.3),
        config=SessionConfig(
            turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200)),
            greeting="Hello, thanks for calling.",
            grounding_texts=(REPLY,),
            keypad=menu,
            keypad_no_person=NO_PERSON,
        ),
        human=side,
    )
    assert isinstance(session.sink, RecordingSink)
    return Rig(clock, transport, tts, session.sink, session, hitl)


async def end(rig: Rig) -> None:
    rig.transport.hang_up()
    assert rig.task is not None
    await asyncio.wait_for(rig.task, 5)


async def test_repeat_mid_reply_cuts_it_off_and_says_it_whole_again() -> None:
    rig = make_rig(person=False)
    await rig.greeted()
    await rig.ask()
    clears = rig.transport.clears
    rig.transport.press("9")
    await rig.until(lambda: len(rig.sink.turns) == 3)
    await end(rig)
    assert rig.transport.clears == clears + 1  # the reply playing stopped at once
    interrupted, repeated = rig.sink.turns[1], rig.sink.turns[2]
    assert interrupted.interrupted
    assert interrupted.agent_text != REPLY
    assert (repeated.reply_source, repeated.agent_text) == ("keypad", REPLY)
    assert not repeated.interrupted
    assert rig.tts.texts[-1] == REPLY  # synthesised again, whole (first in two clauses)
    assert rig.tts.texts.count(REPLY) == 1
    assert rig.session.keypresses == ["9"]


async def test_say_key_speaks_its_line_and_the_call_goes_on() -> None:
    rig = make_rig(person=False)
    await rig.greeted()
    rig.transport.press("1")
    await rig.until(lambda: len(rig.sink.turns) == 2)
    assert rig.sink.turns[1].agent_text == "We are open nine to five."
    assert rig.session.machine.history[-1].text == "We are open nine to five."
    await rig.frames(VOICE, 10)  # the caller talks on: a normal turn
    await rig.until(lambda: len(rig.sink.turns) == 3)
    await end(rig)
    assert rig.sink.turns[2].agent_text == REPLY


async def test_an_unknown_key_changes_nothing() -> None:
    rig = make_rig(person=False)
    await rig.greeted()
    rig.transport.press("5")
    await rig.frames(SILENCE, 30)
    assert len(rig.sink.turns) == 1
    assert rig.session.machine.state is State.LISTENING
    await end(rig)
    assert rig.session.keypresses == ["5"]


async def test_hang_up_key_ends_the_call() -> None:
    rig = make_rig(person=False)
    await rig.greeted()
    await rig.ask()
    rig.transport.press("#")
    assert rig.task is not None
    summary = await asyncio.wait_for(rig.task, 5)
    assert isinstance(summary, CallSummary)
    assert summary.reason == "the caller pressed # to hang up"


async def test_person_key_hands_off_as_an_outright_request() -> None:
    rig = make_rig(person=True)
    await rig.greeted()
    await rig.ask()
    rig.transport.press("0")
    await rig.until(lambda: rig.session.machine.state is State.HANDED_OFF)
    assert rig.hitl is not None
    hitl = rig.hitl
    await rig.until(lambda: len(hitl.escalations) == 1)
    request = hitl.escalations[0]
    assert request.reason == "caller_request"
    assert "pressed 0" in request.detail
    await rig.until(lambda: TEXTS.handoff in rig.tts.texts)  # the hold message is announced
    rig.transport.press("9")  # keys do nothing while a person has the call
    await rig.frames(SILENCE, 20)
    assert REPLY not in rig.tts.texts  # (the reply was synthesised in clauses, never whole)
    await end(rig)


async def test_person_key_without_a_person_says_the_agent_keeps_helping() -> None:
    rig = make_rig(person=False)
    await rig.greeted()
    rig.transport.press("0")
    await rig.until(lambda: len(rig.sink.turns) == 2)
    await end(rig)
    assert rig.sink.turns[1].agent_text == NO_PERSON
    assert rig.session.machine.state is not State.HANDED_OFF


def test_the_sample_agents_menu_reaches_its_calls() -> None:
    profiles = load_profiles(AGENTS)
    gateway = Gateway(
        GatewaySettings(),
        profiles,
        cast(CallSink, None),  # not used by the configuration methods
        cast(PeerChannels, None),
        clock=SystemClock(),
        tracer=NoOpTracer(),
    )
    dental = profiles["acme-dental"]
    config = gateway.session_config(dental)
    assert config.keypad["0"] == MenuItem(KeyAction.PERSON)
    assert config.keypad["9"] == MenuItem(KeyAction.REPEAT)
    assert config.keypad_no_person == dental.escalation.unavailable_message
