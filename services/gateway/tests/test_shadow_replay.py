"""The gateway's side of the rollout's replay gate: a scenario turn answered headless as the
candidate in the request (its spec, the replay's seed), its own replies as the call's history,
the answer reported as a ``turn`` event; what cannot be answered is an error, not a reply."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from trunkline.agents import load_agent_spec
from trunkline.gateway.core.events import Message
from trunkline.gateway.fakes import FakeContext, FakeLanguageModel
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.types import ContextResult
from trunkline.gateway.profile import AgentProfile
from trunkline.gateway.shadow.replay import ReplayResponder
from trunkline.gateway.shadow.runner import ShadowPeers
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.events.v1 import events_pb2, replay_pb2
from trunkline.testing.clock import FakeClock

KNOWN = ContextResult(block="Acme Dental, 120 Main Street.", confidence=0.8)
"""What the context service answers: the agent's own domain (nothing is deflected)."""
pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


class Peers:
    def __init__(self) -> None:
        self.env = PeerEnv(FakeClock(100.0), TracerProvider().get_tracer("test"))
        self.profiles: list[AgentProfile] = []
        self.llm = FakeLanguageModel(self.env, lambda text: "We are closed on Sunday.")

    def __call__(self, profile: AgentProfile) -> ShadowPeers:
        self.profiles.append(profile)
        return ShadowPeers(FakeContext(self.env, KNOWN), self.llm)


def request(text: str, index: int, *, last: bool = False, spec_json: str = "") -> (
    replay_pb2.ReplayTurnRequest
):  # fmt: skip
    spec = load_agent_spec(ROOT / "agents" / "acme-dental.yaml")
    return replay_pb2.ReplayTurnRequest(
        agent_spec_json=spec_json or spec.model_copy(update={"version": "1.1.0"}).model_dump_json(),
        seed=11,
        context=call_pb2.CallContext(
            tenant_id="acme",
            call_id="replay-1",
            turn_index=index,
            caller=call_pb2.Caller(role="caller"),
            agent=call_pb2.AgentRef(name="acme-dental", version="1.1.0"),
            shadow=True,
        ),
        caller_transcript=text,
        last=last,
    )


async def test_turns_are_answered_as_the_candidate_with_its_own_history() -> None:
    peers = Peers()
    responder = ReplayResponder(peers, clock=peers.env.clock, tracer=peers.env.tracer)
    first = await responder.answer(request("Are you open on Sunday?", 1))
    assert first.error == ""
    turn = first.turn
    assert turn.agent_reply == "We are closed on Sunday."
    assert turn.caller_transcript == "Are you open on Sunday?"
    assert turn.reply_source == events_pb2.REPLY_SOURCE_LLM
    assert turn.context.shadow
    assert turn.context.agent.version == "1.1.0"
    (profile,) = peers.profiles
    assert (profile.version, profile.model.sampling.seed) == ("1.1.0", 11)
    await responder.answer(request("And on Saturday?", 2, last=True))
    history = peers.llm.requests[-1].history
    assert history[-2:] == (  # the candidate's own answer, not a live one
        Message("user", "Are you open on Sunday?"),
        Message("agent", "We are closed on Sunday."),
    )
    assert len(peers.profiles) == 1  # one headless agent per (spec, seed)
    assert responder.answered == 2
    again = await responder.answer(request("Are you open on Sunday?", 1))
    assert again.error == ""
    assert peers.llm.requests[-1].history == ()  # the call was forgotten at its last turn


async def test_what_cannot_be_answered_is_an_error() -> None:
    peers = Peers()
    responder = ReplayResponder(peers, clock=peers.env.clock, tracer=peers.env.tracer)
    bad = await responder.answer(request("Hi", 1, spec_json='{"name": "acme-dental"}'))
    assert bad.error.startswith("invalid agent spec:")
    assert not bad.HasField("turn")
    peers.llm.outage.down = True
    peers_down = ReplayResponder(peers, clock=peers.env.clock, tracer=peers.env.tracer,
                                 turn_timeout_s=5.0)  # fmt: skip
    failed = await peers_down.answer(request("Are you open on Sunday?", 1))
    assert failed.error
    assert not failed.HasField("turn")
