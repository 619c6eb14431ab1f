"""A shadow runner reasons over what the caller said, and publishes it redacted (issue 13).

A live caller gives a phone number (and a card number) in one turn and asks for the number back
in the next. The gateway's sink publishes the turns redacted; its mirror sends the candidate a
copy that keeps the phone number (as the live pipeline keeps it in memory) but never the card.
The candidate's prompt history holds the number as said, its guard lets the read-back through,
and its published ``ShadowTurnResult`` holds ``[PHONE]`` only.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider

from trunkline.agents import parse_agent_spec
from trunkline.bus.shadow import Candidate, CandidateChange
from trunkline.bus.streams import SHADOW
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.events import Message
from trunkline.gateway.fakes import FakeContext, FakeLanguageModel
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.types import CallInfo, ContextResult
from trunkline.gateway.profile import profile_of
from trunkline.gateway.records import TurnRecord
from trunkline.gateway.shadow.mirror import ShadowMirror, ShadowTargets
from trunkline.gateway.shadow.runner import ShadowPeers, ShadowRunner
from trunkline.gateway.sink import EventSink
from trunkline.proto.events.v1 import events_pb2
from trunkline.state.fake import FakeCallStateStore
from trunkline.testing.fakes import FakeBus

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
AGENT = "acme-dental"
CALL = CallInfo("CA-shadow-pii", "acme", AGENT, "1.0.0")
PHONE = re.compile(r"415\D{0,3}555\D{0,3}0199")
CARD = re.compile(r"4539\D{0,3}1488\D{0,3}0343\D{0,3}6467")
SAID = (
    ("please text me at 415 555 0199 and my card is 4539 1488 0343 6467", "Sure, noted."),
    ("which number will you text", "I will text you at 415 555 0199."),
)


def read_back(history: tuple[Message, ...], text: str) -> str:
    """The candidate model's side: it answers from the history it was sent."""
    found = PHONE.search(" ".join(m.text for m in history if m.role == "user"))
    if "which number" not in text:
        return "Thanks, noted."
    return f"I will text you at {found.group(0)}." if found else "I have no number for you."


async def test_the_shadow_history_keeps_the_number_and_its_result_is_redacted() -> None:
    bus = FakeBus()
    await bus.ensure_stream(SHADOW)
    targets = ShadowTargets()
    candidate = Candidate(AGENT, "2.0.0", 100.0)
    targets.apply(CandidateChange(candidate.key, candidate))
    sink = EventSink(bus, FakeCallStateStore(), "gw-test", mirror=ShadowMirror(bus, targets))
    await sink.start()

    spec = yaml.safe_load((ROOT / "agents" / "acme-dental.yaml").read_text())
    spec["version"] = "2.0.0"
    spec["grounding"]["knowledge_answers"] = "llm"  # the guarded LLM answers
    env = PeerEnv(SystemClock(), TracerProvider().get_tracer("test"))
    llm = FakeLanguageModel(env, lambda text: read_back(llm.requests[-1].history, text))
    context = FakeContext(env, ContextResult(block="[1] We text when it is done.", confidence=0.6))
    runner = ShadowRunner(
        bus, profile_of(parse_agent_spec(yaml.safe_dump(spec))), ShadowPeers(context, llm),
        clock=SystemClock(), tracer=env.tracer,
    )  # fmt: skip
    task = asyncio.create_task(runner.run())
    try:
        for turn_id, (said, heard) in enumerate(SAID, start=1):
            await sink.turn_completed(TurnRecord(CALL, turn_id, user_text=said, agent_text=heard))
        for _ in range(500):
            if runner.answered == len(SAID):
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert runner.answered == len(SAID)

    # the live events: redacted, as before
    live = [events_pb2.TurnCompleted.FromString(p.data) for p in bus.on("trunkline.events.turn.>")]
    assert live[0].caller_transcript.startswith("please text me at [PHONE]")
    # the mirrored copy keeps the phone number for the candidate, never the card
    mirrored = [
        events_pb2.TurnCompleted.FromString(p.data) for p in bus.on("trunkline.shadow.turn.>")
    ]
    assert PHONE.search(mirrored[0].caller_transcript)
    assert "[CARD]" in mirrored[0].caller_transcript
    assert PHONE.search(mirrored[1].agent_reply)
    # the candidate's prompt history reads as the live call's did: the number as said ...
    second = llm.requests[-1]
    assert any(PHONE.search(m.text) for m in second.history if m.role == "user")
    assert all("[PHONE]" not in m.text for m in second.history)
    # ... its guard let the read-back through, and what it published holds the placeholder
    results = [
        events_pb2.ShadowTurnResult.FromString(p.data) for p in bus.on("trunkline.shadow.result.>")
    ]
    assert [r.failed for r in results] == [False, False]
    assert results[1].shadow_reply == "I will text you at [PHONE]."
    assert results[1].live_reply == "I will text you at [PHONE]."
    assert results[0].caller_transcript.startswith("please text me at [PHONE]")
    for published in bus.published:
        data = published.data.decode("utf-8", "replace")
        assert not CARD.search(data), published.subject
        if not published.subject.startswith("trunkline.shadow.turn."):
            assert not PHONE.search(data), published.subject
