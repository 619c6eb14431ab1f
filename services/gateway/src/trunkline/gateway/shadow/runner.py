"""The shadow runner: a candidate agent version answering mirrored live turns, headless.

Each mirrored ``TurnCompleted`` runs through the gateway's own :class:`TurnPipeline` (reply
planning, context, LLM, grounding guard, tools) as the candidate, with the live turn's
transcript in place of STT, no audio at all (:class:`NoAudio` synthesises nothing, and the
runner has no transport: it cannot speak to a caller) and tools in dry-run (:class:`DryRunTools`
answers with the live turn's result for the same call, else a dry-run marker; nothing is ever
sent to a tool's endpoint). The call's history is the one the caller lived: each live turn's
transcript and the reply the caller heard. The result, paired with the live turn (reply time,
tool calls), is published as a ``ShadowTurnResult`` on the candidate's result subject, redacted
as every event is (the mirrored turn keeps the caller's phone and account numbers: the
candidate's history, in memory, reads as the live call's did).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import metrics
from opentelemetry.trace import Tracer

from trunkline.bus import BadPayloadError, Bus, BusBase, ConsumerDeletedError, Delivery
from trunkline.bus.shadow import ShadowCandidates
from trunkline.bus.streams import candidate_token, shadow_subject, shadow_turns
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.events import Event, Message, ReplyAudio, StartWork
from trunkline.gateway.core.tools import ToolPolicy
from trunkline.gateway.peers.base import ContextSource, LanguageModel, PeerEnv, Synthesizer
from trunkline.gateway.peers.base import Transcriber as TranscriberBase
from trunkline.gateway.peers.grpc_common import call_context
from trunkline.gateway.peers.types import CallInfo, ContextResult, StoredAnswer, Transcript
from trunkline.gateway.pipeline import Peers, TurnPipeline
from trunkline.gateway.profile import AgentProfile, reply_policy
from trunkline.gateway.records import TurnRecord
from trunkline.gateway.shadow.core import (
    live_stages,
    live_tools,
    reply_time_s,
    tool_call,
    tools_agree,
)
from trunkline.gateway.sink import REPLY_SOURCES, STAGE_NAMES
from trunkline.gateway.tools import ToolExecutor, tool_book
from trunkline.gateway.tools.base import ToolRunner
from trunkline.proto.common.v1 import call_pb2, usage_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.redaction.messages import redact_message

log = logging.getLogger(__name__)


class MirroredTranscriber(TranscriberBase):
    """ "Hears" the live turn's final transcript (set before each turn); no audio is read."""

    def __init__(self, env: PeerEnv) -> None:
        super().__init__(env)
        self.heard = Transcript("")

    async def _transcribe(self, call: CallInfo, audio: bytes) -> Transcript:
        return self.heard


class NoAudio(Synthesizer):
    """A shadow never makes a sound: every clause synthesises to nothing."""

    async def _synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]:
        nothing: tuple[bytes, ...] = ()
        for pcm in nothing:  # an async generator with no items
            yield pcm


class DryRunTools(ToolRunner):
    """Tools in dry-run: the live turn's result for the same tool and arguments (the world as
    the live call saw it), else ``{"dry_run": true}``. No request ever leaves the runner."""

    def __init__(self) -> None:
        self.live: dict[tuple[str, str], Any] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def remember(self, turn: events_pb2.TurnCompleted) -> None:
        for record in turn.tool_calls:
            key = (record.call.name, tool_call("", record.call.arguments_json).arguments)
            try:
                self.live[key] = json.loads(record.result_json or "null")
            except json.JSONDecodeError:
                self.live[key] = record.result_json

    async def _run(self, call: CallInfo, tool: ToolPolicy, arguments: dict[str, Any]) -> Any:
        self.calls.append((tool.name, arguments))
        key = (tool.name, json.dumps(arguments, sort_keys=True, separators=(",", ":")))
        if key in self.live:
            return self.live[key]
        return {"dry_run": True, "tool": tool.name}


class DelayedContext(ContextSource):
    """Fault injection for rollout drills: ``inner`` with ``delay_s`` before each lookup
    (``SHADOW_INJECT_DELAY_MS``), i.e. a candidate whose every turn is that much slower (each
    turn resolves its context first, whether the LLM answers or not)."""

    def __init__(self, env: PeerEnv, inner: ContextSource, delay_s: float) -> None:
        super().__init__(env, inner.policy)
        self.inner = inner
        self.delay_s = delay_s

    async def _resolve(
        self,
        call: CallInfo,
        query: str,
        entities: Mapping[str, str],
        prefer_first: tuple[str, ...] = (),
    ) -> ContextResult:
        await asyncio.sleep(self.delay_s)
        return await self.inner.resolve(call, query, entities, prefer_first)

    async def _store_answer(self, call: CallInfo, answer: StoredAnswer) -> bool:
        return await self.inner.store_answer(call, answer)


class ShadowMeters:
    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("trunkline.shadow")
        self.turns = meter.create_counter(
            "shadow.turns", description="mirrored turns answered, by outcome"
        )
        self.reply_time = meter.create_histogram(
            "shadow.reply_time", unit="s", description="transcript to first reply clause"
        )
        self.live_reply_time = meter.create_histogram(
            "shadow.live_reply_time", unit="s", description="the paired live turns' reply time"
        )
        self.tool_agreement = meter.create_counter(
            "shadow.tool_agreement", description="turns whose tool calls agree with live"
        )


@dataclass
class _Call:
    pipeline: TurnPipeline
    heard: MirroredTranscriber
    tools: DryRunTools
    history: list[Message] = field(default_factory=list)
    last_used: float = 0.0


@dataclass(frozen=True)
class ShadowPeers:
    context: ContextSource
    llm: LanguageModel


@dataclass(frozen=True)
class Answered:
    """One turn answered headless: the call, what the pipeline recorded, the reply's clauses
    joined, and why it failed ("" when it did not)."""

    info: CallInfo
    record: TurnRecord
    reply: str
    error: str


class HeadlessAgent:
    """One agent version answering turns headless, per call: the gateway's own
    :class:`TurnPipeline` with a transcript in place of STT, no audio and tools in dry-run.
    The shadow runner feeds it mirrored live turns; a replay (``trunkline.gateway.shadow.replay``)
    feeds it scenario turns."""

    def __init__(
        self,
        profile: AgentProfile,
        peers: ShadowPeers,
        *,
        clock: Clock,
        tracer: Tracer,
        max_tool_rounds: int = 2,
        turn_timeout_s: float = 30.0,
        idle_call_s: float = 900.0,
        read_ahead: bool = True,
    ) -> None:
        self.profile = profile
        self.peers = peers
        self.clock = clock
        self.tracer = tracer
        self.env = PeerEnv(clock, tracer)
        self.max_tool_rounds = max_tool_rounds
        self.turn_timeout_s = turn_timeout_s
        self.idle_call_s = idle_call_s
        self.read_ahead = read_ahead
        self._calls: dict[tuple[str, str], _Call] = {}

    def _call(self, live: events_pb2.TurnCompleted) -> tuple[CallInfo, _Call]:
        ctx = live.context
        info = CallInfo(
            call_id=ctx.call_id,
            tenant=ctx.tenant_id,
            agent=self.profile.name,
            agent_version=self.profile.version,
            caller_role=ctx.caller.role or "caller",
            caller_address=ctx.caller.address,
            shadow=True,
        )
        key = (ctx.tenant_id, ctx.call_id)
        state = self._calls.get(key)
        if state is None:
            self._forget_idle()
            heard = MirroredTranscriber(self.env)
            tools = DryRunTools()
            profile = self.profile
            executor = ToolExecutor(
                tool_book(profile, self.max_tool_rounds), tools, clock=self.clock,
                tracer=self.tracer,
            )  # fmt: skip
            peers = Peers(stt=heard, context=self.peers.context, llm=self.peers.llm,
                          tts=NoAudio(self.env))  # fmt: skip
            pipeline = TurnPipeline(
                peers,
                info,
                clock=self.clock,
                tracer=self.tracer,
                greeting=profile.greeting,
                tools=executor,
                entity_names=profile.retrieval.entity_names,
                replies=reply_policy(profile),
                grounding_texts=(profile.system_prompt,),
            )
            state = _Call(pipeline, heard, tools)
            self._calls[key] = state
        state.last_used = self.clock.now()
        return info, state

    def _forget_idle(self) -> None:
        now = self.clock.now()
        for key in [k for k, c in self._calls.items() if now - c.last_used > self.idle_call_s]:
            del self._calls[key]

    async def answer_turn(
        self, live: events_pb2.TurnCompleted, *, own_history: bool = False
    ) -> Answered | None:
        """The answer to one turn (None for a turn with no caller words, e.g. the greeting).
        The call's history goes on with the reply the caller heard (``live.agent_reply``), or
        with this agent's own reply (``own_history``: a replay, where no one else answered)."""
        text = live.caller_transcript.strip()
        if not text:
            return None
        info, state = self._call(live)
        state.heard.heard = Transcript(text, live.stt_confidence or 1.0)
        state.tools.remember(live)
        record = TurnRecord(info, turn_id=live.context.turn_index)
        clauses: list[str] = []

        def emit(event: Event) -> None:
            if isinstance(event, ReplyAudio) and event.last:
                clauses.append(event.text)

        history = tuple(state.history)
        work = StartWork(live.context.turn_index, b"", history, speculative=False)
        error = ""
        with self.tracer.start_as_current_span(
            "shadow.turn",
            attributes={"agent": f"{info.agent}@{info.agent_version}", "call_id": info.call_id},
        ):
            try:
                async with asyncio.timeout(self.turn_timeout_s):
                    if self.read_ahead:  # as the live gateway reads ahead while the caller speaks
                        await state.pipeline.prefetch(b"", history)
                    await state.pipeline.run(work, record, emit)  # timed: what the caller waits
            except TimeoutError:
                error = f"no answer within {self.turn_timeout_s:g}s"
            except Exception as exc:  # a failed shadow turn is a result, not a crash
                error = f"{type(exc).__name__}: {exc}"
        reply = " ".join(clauses)
        state.history.append(Message("user", text))
        if own_history:
            state.history.append(Message("agent", reply))
        else:
            state.history.append(Message("agent", live.agent_reply, truncated=live.truncated))
        return Answered(info, record, reply, error)

    def forget(self, tenant: str, call_id: str) -> None:
        """Drop a finished call's pipeline and history."""
        self._calls.pop((tenant, call_id), None)


class ShadowRunner:
    """Answers one candidate version's mirrored turns; :meth:`run` reads its durable consumer."""

    def __init__(
        self,
        bus: BusBase,
        profile: AgentProfile,
        peers: ShadowPeers,
        *,
        clock: Clock,
        tracer: Tracer,
        meters: ShadowMeters | None = None,
        max_tool_rounds: int = 2,
        turn_timeout_s: float = 30.0,
        idle_call_s: float = 900.0,
        read_ahead: bool = True,
    ) -> None:
        """``read_ahead``: before each turn, the work the live gateway does while the caller
        is still speaking (context and an LLM prefill of the prompt so far), untimed, so the
        timed part compares with the live turn's."""
        self.bus = bus
        self.profile = profile
        self.peers = peers
        self.agent = HeadlessAgent(
            profile, peers, clock=clock, tracer=tracer, max_tool_rounds=max_tool_rounds,
            turn_timeout_s=turn_timeout_s, idle_call_s=idle_call_s, read_ahead=read_ahead,
        )  # fmt: skip
        self.meters = meters or ShadowMeters()
        self.consumer = shadow_turns(profile.name, profile.version)
        self.answered = 0

    async def answer(self, live: events_pb2.TurnCompleted) -> events_pb2.ShadowTurnResult | None:
        """The candidate's answer to one mirrored live turn (None for a turn with no caller
        words, e.g. the greeting)."""
        done = await self.agent.answer_turn(live)
        if done is None:
            return None
        return self._result(live, done.info, done.record, done.reply, done.error)

    def _result(
        self,
        live: events_pb2.TurnCompleted,
        info: CallInfo,
        record: TurnRecord,
        reply: str,
        error: str,
    ) -> events_pb2.ShadowTurnResult:
        shadow_stages = {STAGE_NAMES.get(k, k): v for k, v in record.stage_s.items()}
        live_s = reply_time_s(live_stages(live))
        shadow_s = reply_time_s(shadow_stages)
        theirs = live_tools(live)
        ours = [tool_call(t.name, t.arguments_json) for t in record.tool_calls]
        agree = tools_agree(theirs, ours)
        result = events_pb2.ShadowTurnResult(
            event_id=str(uuid.uuid4()),
            occurred_at=_now(),
            context=call_context(info, live.context.turn_index),
            live_event_id=live.event_id,
            live_agent=call_pb2.AgentRef(
                name=live.context.agent.name, version=live.context.agent.version
            ),
            caller_transcript=live.caller_transcript,
            live_reply=live.agent_reply,
            shadow_reply=reply,
            live_reply_time=_duration(live_s),
            shadow_reply_time=_duration(shadow_s),
            live_response_time=live.response_time,
            live_tools=[t.name for t in theirs],
            shadow_tools=[t.name for t in ours],
            tools_agree=agree,
            shadow_reply_source=REPLY_SOURCES.get(
                record.reply_source, events_pb2.REPLY_SOURCE_UNSPECIFIED
            ),
            failed=bool(error),
            error=error,
            usage=usage_pb2.Usage(
                input_tokens=record.prompt_tokens, output_tokens=record.completion_tokens
            ),
        )
        labels = {"agent": self.profile.name, "version": self.profile.version}
        self.meters.turns.add(1, {**labels, "outcome": "failed" if error else "answered"})
        if not error:
            self.meters.reply_time.record(shadow_s, labels)
            self.meters.live_reply_time.record(live_s, labels)
            self.meters.tool_agreement.add(1, {**labels, "agreed": str(agree).lower()})
        redact_message(result)  # PII out of the bus, as every event (the history keeps it)
        return result

    async def handle(self, delivery: Delivery) -> None:
        try:
            live = delivery.decode(events_pb2.TurnCompleted)
        except BadPayloadError as exc:
            log.warning("shadow: dropping an undecodable mirrored turn: %s", exc)
            await delivery.term()
            return
        result = await self.answer(live)
        if result is not None:
            ctx = live.context
            subject = shadow_subject(
                "result", self.profile.name, self.profile.version, ctx.tenant_id, ctx.call_id
            )
            # one result per live turn and candidate, even when redelivered
            msg_id = f"{live.event_id}:{self.consumer.durable}:result"
            await self.bus.js_publish(subject, result, msg_id=msg_id)
            self.answered += 1
        await delivery.ack()

    async def run(self) -> None:
        """Answer the candidate's mirrored turns in order (one at a time: a call's turns build
        on each other's history) until cancelled, or until the operator stops shadowing the
        candidate (its entry leaves the candidates' bucket): then the runner stops reading and
        removes the consumer its reads may have re-created."""
        consume = asyncio.create_task(self._consume(), name="shadow-consume")
        if not isinstance(self.bus, Bus):
            await consume
            return
        candidates = ShadowCandidates(self.bus)
        watch = asyncio.create_task(self._until_unlisted(candidates), name="shadow-listed")
        try:
            await asyncio.wait((consume, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (consume, watch):
                task.cancel()
            await asyncio.gather(consume, watch, return_exceptions=True)
        if watch.done() and not watch.cancelled() and watch.exception() is None:
            await candidates.delete_consumer(self.profile.name, self.profile.version)
            log.info("shadow: %s is no longer shadowed; stopped", self.consumer.durable)

    async def _until_unlisted(self, candidates: ShadowCandidates) -> None:
        key = candidate_token(self.profile.name, self.profile.version)
        listed = False
        async with aclosing(candidates.watch()) as changes:
            async for change in changes:
                if change.key != key:
                    continue
                if change.candidate is not None:
                    listed = True
                elif listed:
                    return

    async def _consume(self) -> None:
        """Until cancelled, or until the candidate's consumer is deleted (the operator stopped
        shadowing it): then it stops, and is not re-created."""
        try:
            async with aclosing(self.bus.durable_messages(self.consumer)) as deliveries:
                async for delivery in deliveries:
                    try:
                        await self.handle(delivery)
                    except Exception:
                        log.exception("shadow: a mirrored turn failed; redelivered later")
                        await delivery.nak(5.0)
        except ConsumerDeletedError as exc:
            log.info("shadow: %s; stopped", exc)


def _duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp
