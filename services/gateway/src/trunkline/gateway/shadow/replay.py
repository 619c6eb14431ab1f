"""The rollout's replay gate, the gateway's side: scenario turns answered headless by a candidate.

The operator (``trunkline.rollout.replay``) runs the conversation eval's scenarios through the
candidate by sending each caller turn as a ``ReplayTurnRequest`` on
:data:`~trunkline.bus.streams.REPLAY_TURNS` (queue group ``replay``). :class:`ReplayResponder`
answers it with the gateway's own turn pipeline as the candidate
(:class:`~trunkline.gateway.shadow.runner.HeadlessAgent`: reply planning, context, the LLM with
the replay's sampling seed, the grounding guard; tools in dry-run, no audio, the candidate's
own replies as the call's history) and replies with the turn as a ``turn`` event would report
it. Nobody hears the answer: it reaches only the operator's scoring. A turn that could not be
answered (a peer down, no answer in time, a spec that does not validate) replies with an error.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable

import grpc
from opentelemetry.trace import Tracer

from trunkline.agents import AgentSpec, AgentSpecError, parse_agent_spec
from trunkline.bus import BadPayloadError, BusBase, BusMessage, Subscription
from trunkline.bus.streams import REPLAY_QUEUE, REPLAY_TURNS
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.grpc_context import GrpcContext
from trunkline.gateway.peers.grpc_llm import GrpcLanguageModel
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.profile import AgentProfile, profile_of
from trunkline.gateway.records import TurnRecord
from trunkline.gateway.settings import GatewaySettings
from trunkline.gateway.shadow.runner import HeadlessAgent, ShadowPeers
from trunkline.gateway.sink import REPLY_SOURCES, tool_call_record
from trunkline.proto.common.v1 import call_pb2, usage_pb2
from trunkline.proto.events.v1 import events_pb2, replay_pb2

log = logging.getLogger(__name__)

PeersFor = Callable[[AgentProfile], ShadowPeers]
"""The context and llm peers of one agent profile (its retrieval settings, its model)."""


def grpc_peers(
    context: grpc.aio.Channel, llm: grpc.aio.Channel, clock: Clock, tracer: Tracer,
    timeout_s: float,
) -> PeersFor:  # fmt: skip
    """Peers over the gateway's own channels (no gateway metrics: no caller waits on these)."""
    env, policy = PeerEnv(clock, tracer), RetryPolicy(timeout_s=timeout_s)

    def peers_for(profile: AgentProfile) -> ShadowPeers:
        return ShadowPeers(
            GrpcContext(env, context, profile.retrieval, policy),
            GrpcLanguageModel(env, llm, profile, policy),
        )

    return peers_for


def replay_profile(spec: AgentSpec, seed: int) -> AgentProfile:
    """``spec`` with its LLM sampling seeded: the same calls replay the same way."""
    sampling = spec.model.sampling.model_copy(update={"seed": seed})
    model = spec.model.model_copy(update={"sampling": sampling})
    return profile_of(spec.model_copy(update={"model": model}))


def turn_completed(
    record: TurnRecord, reply: str, heard: str, context: call_pb2.CallContext
) -> events_pb2.TurnCompleted:
    """One answered turn, as the gateway's ``turn`` event reports a live one (no timing of
    audio: none was made)."""
    event = events_pb2.TurnCompleted(
        event_id=str(uuid.uuid4()),
        context=context,
        caller_transcript=heard,
        agent_reply=reply,
        agent_reply_generated=record.generated_text,
        usage=usage_pb2.Usage(
            input_tokens=record.prompt_tokens, output_tokens=record.completion_tokens
        ),
        cache_hit=record.cached,
        retrieval_confidence=record.retrieval_confidence,
        tool_calls=[tool_call_record(tool) for tool in record.tool_calls],
        reply_source=REPLY_SOURCES.get(record.reply_source, events_pb2.REPLY_SOURCE_UNSPECIFIED),
        intent=record.intent,
        grounded=record.grounded,
        guard_interventions=[
            events_pb2.GuardIntervention(
                clause=g.clause, unsupported=list(g.unsupported), action=g.action
            )
            for g in record.guard_interventions
        ],
        hang_up=record.hang_up,
    )
    event.occurred_at.GetCurrentTime()
    for citation in record.citations:
        event.citations.add(id=citation)
    return event


class ReplayResponder:
    """Answers replay turns; one :class:`HeadlessAgent` per (spec, seed), the last few kept.
    ``turn_timeout_s`` stays under the operator's request timeout
    (``ROLLOUT_REPLAY_TURN_TIMEOUT_S``, 60 s): a slow turn is answered with an error, not
    left unanswered."""

    def __init__(
        self,
        peers_for: PeersFor,
        *,
        clock: Clock,
        tracer: Tracer,
        turn_timeout_s: float = 45.0,
        keep_agents: int = 4,
    ) -> None:
        self.peers_for = peers_for
        self.clock = clock
        self.tracer = tracer
        self.turn_timeout_s = turn_timeout_s
        self.keep_agents = keep_agents
        self._agents: OrderedDict[str, HeadlessAgent] = OrderedDict()
        self.answered = 0

    def _agent(self, spec_json: str, seed: int) -> HeadlessAgent:
        key = hashlib.sha256(f"{seed}:{spec_json}".encode()).hexdigest()
        agent = self._agents.get(key)
        if agent is None:
            spec = parse_agent_spec(spec_json, source="ReplayTurnRequest.agent_spec_json")
            profile = replay_profile(spec, seed)
            agent = HeadlessAgent(
                profile, self.peers_for(profile), clock=self.clock, tracer=self.tracer,
                turn_timeout_s=self.turn_timeout_s,
            )  # fmt: skip
            self._agents[key] = agent
            while len(self._agents) > self.keep_agents:
                self._agents.popitem(last=False)
        self._agents.move_to_end(key)
        return agent

    async def answer(self, request: replay_pb2.ReplayTurnRequest) -> replay_pb2.ReplayTurnReply:
        ctx = request.context
        try:
            agent = self._agent(request.agent_spec_json, request.seed)
        except AgentSpecError as exc:
            return replay_pb2.ReplayTurnReply(error=f"invalid agent spec: {exc}")
        live = events_pb2.TurnCompleted(
            event_id=f"{ctx.call_id}:{ctx.turn_index}",
            context=ctx,
            caller_transcript=request.caller_transcript,
        )
        try:
            done = await agent.answer_turn(live, own_history=True)
        finally:
            if request.last:
                agent.forget(ctx.tenant_id, ctx.call_id)
        if done is None:
            return replay_pb2.ReplayTurnReply(error="the turn has no caller words")
        if done.error:
            return replay_pb2.ReplayTurnReply(error=done.error)
        self.answered += 1
        context = call_pb2.CallContext()
        context.CopyFrom(ctx)
        context.shadow = True
        return replay_pb2.ReplayTurnReply(
            turn=turn_completed(done.record, done.reply, request.caller_transcript, context)
        )

    async def handle(self, message: BusMessage) -> replay_pb2.ReplayTurnReply:
        try:
            request = message.decode(replay_pb2.ReplayTurnRequest)
        except BadPayloadError as exc:
            return replay_pb2.ReplayTurnReply(error=f"unreadable request: {exc}")
        return await self.answer(request)


async def answer_replays(
    bus: BusBase,
    settings: GatewaySettings,
    context: grpc.aio.Channel,
    llm: grpc.aio.Channel,
    *,
    clock: Clock,
    tracer: Tracer,
) -> Subscription | None:
    """The gateway process's responder over its own peer channels, when
    ``settings.replay_answers`` (None otherwise)."""
    if not settings.replay_answers:
        return None
    peers_for = grpc_peers(context, llm, clock, tracer, settings.peer_timeout_s)
    return await start_replays(bus, ReplayResponder(peers_for, clock=clock, tracer=tracer))


async def start_replays(bus: BusBase, responder: ReplayResponder) -> Subscription:
    """Answer replay turns on this bus (one gateway of the queue group gets each)."""
    log.info("answering replay turns on %s", REPLAY_TURNS)
    return await bus.subscribe(REPLAY_TURNS, responder.handle, queue=REPLAY_QUEUE)
