"""What is stored and exported is redacted; what the live call reasons over is not (issue 13).

A caller gives a phone number in one turn and asks for it back two turns later. The history the
next turns send to the LLM holds the number as the caller said it (process memory), the agent
reads it back and the guard lets it through (a value the caller gave in this call is support
for the rest of the call), while the events on the bus and the call state hold ``[PHONE]``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace

import pytest
from opentelemetry.sdk.trace import TracerProvider

from trunkline.bus.streams import EVENTS
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.events import Message
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
    FakeTransport,
)
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.types import CallInfo, ContextResult
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.sink import EventSink
from trunkline.proto.events.v1 import events_pb2
from trunkline.state.fake import FakeCallStateStore
from trunkline.testing.clock import FakeClock
from trunkline.testing.fakes import FakeBus

pytestmark = pytest.mark.unit

VOICE = b"\x00\x10" * 320
SILENCE = b"\x00\x00" * 320
CALL = CallInfo("CA-pii", "acme", "support", "v3")
SAID = [
    "please text me at 415 555 0199 when the refund is done",
    "and how long does a refund take",
    "which number will you text",
]
NUMBER = re.compile(r"415\D{0,3}555\D{0,3}0199")


def read_back(history: tuple[Message, ...], text: str) -> str:
    """The model's side: it answers from the history it was sent."""
    if "which number" not in text:
        return "Refunds take five business days."
    for message in reversed(history):
        found = NUMBER.search(message.text) if message.role == "user" else None
        if found:
            return f"I will text you at {found.group(0)}."
    return "I do not have a number for you."


async def test_later_turns_use_the_number_the_caller_gave_while_sinks_hold_placeholders() -> None:
    clock = FakeClock(1000.0)
    env = PeerEnv(clock, TracerProvider().get_tracer("test"))
    transport = FakeTransport(clock.now)
    turn = iter(SAID)
    stt = FakeTranscriber(env, lambda audio: next(turn))
    context = FakeContext(env)
    context.result = ContextResult(block="[1] Refunds take five business days.", confidence=0.5)
    llm = FakeLanguageModel(env, lambda text: read_back(llm.requests[-1].history, text))
    tts = FakeSynthesizer(env, frames_per_word=2)
    bus, store = FakeBus(), FakeCallStateStore()
    sink = EventSink(bus, store, "gw-test")
    await sink.start()
    config = SessionConfig(
        turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200)),
        greeting="Hello, thanks for calling.",
        grounding_texts=("Refunds take five business days.",),
    )
    session = CallSession(
        CALL,
        transport,
        Peers(stt, context, llm, tts),
        EnergyDetector(),
        sink,
        clock=clock,
        tracer=env.tracer,
        config=config,
    )
    # the LLM answers (not the knowledge passage), under the guard
    session.pipeline.replies = replace(session.pipeline.replies, extractive=False)

    async def frames(pcm: bytes, n: int) -> None:
        for _ in range(n):
            clock.advance(0.02)
            transport.frame(pcm)
            for _ in range(30):
                await asyncio.sleep(0)

    def turns() -> list[events_pb2.TurnCompleted]:
        published = bus.on("trunkline.events.turn.>")
        return [events_pb2.TurnCompleted.FromString(p.data) for p in published]

    async def until_turns(n: int) -> None:
        for _ in range(800):
            if len(turns()) >= n:
                return
            await frames(SILENCE, 1)
        raise AssertionError(f"{len(turns())} turns, wanted {n}")

    task = asyncio.create_task(session.run())
    await until_turns(1)  # the greeting
    for n in (2, 3, 4):
        await frames(VOICE, 10)
        await until_turns(n)
    transport.hang_up()
    await asyncio.wait_for(task, 5)

    # the live call: the third turn's prompt history holds the number as said ...
    last = llm.requests[-1]
    assert any("415 555 0199" in m.text for m in last.history if m.role == "user")
    assert all("[PHONE]" not in m.text for m in last.history)
    # ... and the caller hears it read back (the guard takes it as said in this call)
    assert "I will text you at 415 555 0199." in " ".join(tts.texts)
    final = turns()[-1]
    assert final.grounded
    assert not final.guard_interventions
    # the sinks: every event and the call state in the store hold the placeholder only
    assert final.agent_reply == "I will text you at [PHONE]."
    assert turns()[1].caller_transcript.startswith("please text me at [PHONE]")
    for published in bus.published:
        assert not NUMBER.search(published.data.decode("utf-8", "replace")), published.subject
    state = await store.get("acme", "CA-pii")
    assert state is not None
    assert state.history
    assert not NUMBER.search(state.model_dump_json())
    assert "[PHONE]" in state.model_dump_json()
    assert EVENTS.name in bus.streams


async def test_the_agent_never_reads_a_card_number_back(caplog: pytest.LogCaptureFixture) -> None:
    """A card the caller gave is no support for the guard: the clause repeating it is held back
    (on the local stack SmolLM2 answered 'The card number 1488033436467 is correct.')."""
    clock = FakeClock(1000.0)
    env = PeerEnv(clock, TracerProvider().get_tracer("test"))
    transport = FakeTransport(clock.now)
    stt = FakeTranscriber(env, lambda audio: "My card number is 4539. 14880, 64667.")
    context = FakeContext(env)
    context.result = ContextResult(block="[1] We accept all major cards.", confidence=0.5)
    # bare digits, no word saying what they are (as SmolLM2 answered on the stack)
    llm = FakeLanguageModel(env, lambda text: "Thanks. 4539, 14880, 64667 is noted.")
    tts = FakeSynthesizer(env, frames_per_word=2)
    bus, store = FakeBus(), FakeCallStateStore()
    sink = EventSink(bus, store, "gw-test")
    await sink.start()
    config = SessionConfig(
        turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200)),
        greeting="Hello.",
        grounding_texts=("We accept all major cards.",),
    )
    session = CallSession(
        CALL, transport, Peers(stt, context, llm, tts), EnergyDetector(), sink,
        clock=clock, tracer=env.tracer, config=config,
    )  # fmt: skip
    session.pipeline.replies = replace(session.pipeline.replies, extractive=False)

    async def frames(pcm: bytes, n: int) -> None:
        for _ in range(n):
            clock.advance(0.02)
            transport.frame(pcm)
            for _ in range(30):
                await asyncio.sleep(0)

    caplog.set_level(logging.INFO, "trunkline.gateway.pipeline")
    task = asyncio.create_task(session.run())
    for _ in range(200):
        if bus.on("trunkline.events.turn.>"):
            break
        await frames(SILENCE, 1)
    await frames(VOICE, 10)
    for _ in range(800):
        if len(bus.on("trunkline.events.turn.>")) >= 2:
            break
        await frames(SILENCE, 1)
    transport.hang_up()
    await asyncio.wait_for(task, 5)
    spoken = " ".join(tts.texts)
    assert "1488" not in spoken
    assert "Thanks." in spoken  # the clause before it was said
    turn = events_pb2.TurnCompleted.FromString(bus.on("trunkline.events.turn.>")[-1].data)
    assert turn.guard_interventions
    assert all("1488" not in g.clause for g in turn.guard_interventions)  # redacted there too
    assert "[CARD]" in turn.guard_interventions[0].clause
    held = [r.getMessage() for r in caplog.records if "held back" in r.getMessage()]
    assert held  # logged (before any log filter) without the digits: the pipeline knows them
    assert not any(re.search(r"14880|64667", line) for line in held), held
    for published in bus.published:  # the generated reply, the clause, the facts: none
        data = published.data.decode("utf-8", "replace")
        assert not re.search(r"4539|14880|64667", data), (published.subject, data)
