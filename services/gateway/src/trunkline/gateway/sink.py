"""The production :class:`CallSink`: call/turn events on JetStream, per-call state in Redis.

Events (``events/v1``) go to ``trunkline.events.<kind>.<tenant>.<call_id>`` in the ``EVENTS``
stream with their ``event_id`` as ``Nats-Msg-Id`` (a retried publish is stored once) and the
call's trace context in the headers. The state document (``trunkline.state.CallState``) holds the
state-machine node and the history as the caller heard it, so another gateway instance (or this
one after a restart) can read where the call stands.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Protocol

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from trunkline.bus import BusBase
from trunkline.bus.streams import EVENTS, event_subject
from trunkline.gateway.core.events import Message, State
from trunkline.gateway.core.replies import ReplySource
from trunkline.gateway.core.tools import ToolStatus
from trunkline.gateway.peers.grpc_common import call_context
from trunkline.gateway.peers.grpc_hitl import SPEAKERS
from trunkline.gateway.peers.hitl import Line
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.records import CallSink, CallSummary, ToolRecord, TurnRecord
from trunkline.proto.common.v1 import call_pb2, timing_pb2, tool_pb2, transcript_pb2, usage_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.redaction import redact
from trunkline.redaction.messages import redact_message
from trunkline.state import CallNotFoundError, CallState, CallStateStoreBase, Turn, Updater

STAGE_NAMES = {
    "endpointing": "turn.endpointing",
    "stt": "stt.final",
    "context": "context.resolve",
    "prompt_compile": "llm.prompt_compile",
    "llm_ttft": "llm.time_to_first_token",
    "llm_first_clause": "llm.time_to_first_clause",
    "llm": "llm.total",
    "tts_ttfa": "tts.time_to_first_audio",
    "tools": "tools.total",
    "reply_ready": "turn.reply_ready",
}
TOOL_STATUSES = {
    ToolStatus.SUCCEEDED: events_pb2.TOOL_CALL_STATUS_SUCCEEDED,
    ToolStatus.FAILED: events_pb2.TOOL_CALL_STATUS_FAILED,
    ToolStatus.FORBIDDEN: events_pb2.TOOL_CALL_STATUS_FORBIDDEN,
    ToolStatus.UNKNOWN: events_pb2.TOOL_CALL_STATUS_FAILED,
    ToolStatus.INVALID: events_pb2.TOOL_CALL_STATUS_FAILED,
    ToolStatus.NEEDS_APPROVAL: events_pb2.TOOL_CALL_STATUS_NEEDS_APPROVAL,
    ToolStatus.DENIED: events_pb2.TOOL_CALL_STATUS_DENIED,
    ToolStatus.ROUND_LIMIT: events_pb2.TOOL_CALL_STATUS_FAILED,
    ToolStatus.RATE_LIMITED: events_pb2.TOOL_CALL_STATUS_FAILED,
}
# every reply source the gateway records, by name (an enum value missing in events.proto fails
# here at import, not as an UNSPECIFIED source on the wire: the "tool" source once went so)
REPLY_SOURCES = {
    source.value: events_pb2.ReplySource.Value(f"REPLY_SOURCE_{source.name}")
    for source in ReplySource
}
TRANSPORTS = {
    "twilio": call_pb2.TRANSPORT_TWILIO,
    "plivo": call_pb2.TRANSPORT_PLIVO,
    "livekit": call_pb2.TRANSPORT_LIVEKIT,
    "softphone": call_pb2.TRANSPORT_SOFTPHONE,
    "headless": call_pb2.TRANSPORT_HEADLESS,
}
CONNECTING = "connecting"
ENDED = "ended"


def end_reason(reason: str) -> events_pb2.EndReason.ValueType:
    """The session's end reason text -> ``EndReason``."""
    if reason.startswith(("handed off", "admin: transferred")):
        return events_pb2.END_REASON_TRANSFERRED
    if reason.startswith("admin"):
        return events_pb2.END_REASON_ADMIN_HANGUP
    if reason.startswith(("session error", "transport error")):
        return events_pb2.END_REASON_ERROR
    if reason.startswith("agent"):
        return events_pb2.END_REASON_AGENT_HANGUP
    if reason.startswith("handed off"):
        return events_pb2.END_REASON_TRANSFERRED
    return events_pb2.END_REASON_CALLER_HANGUP


def tool_call_record(tool: ToolRecord) -> events_pb2.ToolCallRecord:
    return events_pb2.ToolCallRecord(
        call=tool_pb2.ToolCall(id=tool.call_id, name=tool.name, arguments_json=tool.arguments_json),
        status=TOOL_STATUSES[tool.status],
        duration=duration(tool.duration_s),
        result_json=tool.result_json,
    )


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def history_turns(
    history: list[Message], agent_version: str, old: tuple[Turn, ...]
) -> tuple[Turn, ...]:
    """The history as state turns, keeping the stored turns (and their times) that still match."""
    turns: list[Turn] = []
    for index, message in enumerate(history):
        role = "user" if message.role == "user" else "assistant"
        if index < len(old) and (old[index].role, old[index].text) == (role, message.text):
            turns.append(old[index])
            continue
        turns.append(
            Turn(
                role=role,
                text=message.text,
                truncated=message.truncated,
                agent_version=agent_version if role == "assistant" else None,
            )
        )
    return tuple(turns)


@dataclass(slots=True)
class _Totals:
    turns: int = 0
    usage: usage_pb2.Usage = field(default_factory=usage_pb2.Usage)


class TurnMirror(Protocol):
    async def turn(self, event: events_pb2.TurnCompleted) -> int: ...


class EventSink(CallSink):
    """Publishes call facts on ``bus`` and keeps the call's state in ``store``.

    Call :meth:`start` once (it declares the ``EVENTS`` stream) before the first call.
    """

    def __init__(
        self,
        bus: BusBase,
        store: CallStateStoreBase,
        gateway_id: str,
        mirror: TurnMirror | None = None,
    ) -> None:
        """``mirror``: live turns also go to shadowed candidate versions (gateway.shadow)."""
        self.bus = bus
        self.store = store
        self.gateway_id = gateway_id
        self.mirror = mirror
        self._totals: dict[tuple[str, str], _Totals] = {}

    async def start(self) -> None:
        await self.bus.ensure_stream(EVENTS)

    # ---- CallSink -------------------------------------------------------------------------

    async def call_started(self, call: CallInfo, transport: str) -> None:
        self._totals[(call.tenant, call.call_id)] = _Totals()
        await self._upsert(call, lambda s: s.model_copy(update={"node": CONNECTING}))
        event = events_pb2.CallStarted(
            event_id=_event_id(),
            occurred_at=_now(),
            context=call_context(call),
            transport=TRANSPORTS.get(transport, call_pb2.TRANSPORT_UNSPECIFIED),
            dialed=call.dialed,
            gateway_id=self.gateway_id,
        )
        await self._publish("call_started", call, event)

    async def state_changed(self, call: CallInfo, state: State, history: list[Message]) -> None:
        said = [replace(m, text=redact(m.text)) for m in history]  # Redis holds no PII either

        def change(current: CallState) -> CallState:
            turns = history_turns(said, call.agent_version, current.history)
            return current.model_copy(update={"node": state.value, "history": turns})

        await self._upsert(call, change)

    async def turn_completed(self, record: TurnRecord) -> None:
        call = record.call
        totals = self._totals.setdefault((call.tenant, call.call_id), _Totals())
        usage = usage_pb2.Usage(
            input_tokens=record.prompt_tokens,
            output_tokens=record.completion_tokens,
            audio_in_seconds=record.caller_audio_s,
            audio_out_seconds=record.tts_audio_s,
            characters=len(record.agent_text),  # spoken: what the cost ledger prices TTS by
            cached_input_tokens=record.cached_prompt_tokens,
        )
        totals.usage = _sum(totals.usage, usage)
        stages = [
            timing_pb2.StageTiming(stage=STAGE_NAMES.get(name, name), duration=duration(value))
            for name, value in record.stage_s.items()
        ]
        event = events_pb2.TurnCompleted(
            event_id=_event_id(),
            occurred_at=_now(),
            context=call_context(call, totals.turns),
            caller_transcript=record.user_text,
            agent_reply=record.agent_text,
            agent_reply_generated=record.generated_text,
            truncated=record.interrupted,
            stages=stages,
            usage=usage,
            cache_hit=record.cached,
            retrieval_confidence=record.retrieval_confidence,
            tool_calls=[tool_call_record(tool) for tool in record.tool_calls],
            reply_source=REPLY_SOURCES.get(
                record.reply_source, events_pb2.REPLY_SOURCE_UNSPECIFIED
            ),
            intent=record.intent,
            grounded=record.grounded,
            guard_interventions=[
                events_pb2.GuardIntervention(
                    clause=g.clause, unsupported=list(g.unsupported), action=g.action
                )
                for g in record.guard_interventions
            ],
            hang_up=record.hang_up,
            stt_confidence=record.stt_confidence,
        )
        if record.voice_to_voice_s is not None:
            event.response_time.CopyFrom(duration(record.voice_to_voice_s))
            event.stages.append(
                timing_pb2.StageTiming(
                    stage="turn.response", duration=duration(record.voice_to_voice_s)
                )
            )
        for citation in record.citations:
            event.citations.add(id=citation)
        totals.turns += 1
        said = events_pb2.TurnCompleted()
        said.CopyFrom(event)  # the shadow mirror's copy, redacted there (shadow/mirror.py)
        await self._publish("turn", call, event)
        if self.mirror is not None:
            await self.mirror.turn(said)

    async def call_ended(self, summary: CallSummary) -> None:
        call = summary.call
        totals = self._totals.pop((call.tenant, call.call_id), _Totals())
        event = events_pb2.CallEnded(
            event_id=_event_id(),
            occurred_at=_now(),
            context=call_context(call, totals.turns),
            reason=end_reason(summary.reason),
            detail=summary.reason,
            duration=duration(summary.duration_s),
            usage=totals.usage,
            turn_count=totals.turns,
        )
        try:
            await self._upsert(call, lambda s: s.model_copy(update={"node": ENDED}))
        finally:
            await self._publish("call_ended", call, event)

    async def handoff_line(
        self, call: CallInfo, ticket_id: str, operator_id: str, line: Line, spoken_at: float
    ) -> None:
        stamp = Timestamp()
        stamp.FromNanoseconds(int(spoken_at * 1e9))
        event = events_pb2.HandoffLine(
            event_id=_event_id(),
            occurred_at=_now(),
            context=call_context(call),
            ticket_id=ticket_id,
            line=transcript_pb2.TranscriptEntry(
                speaker=SPEAKERS.get(line.speaker, transcript_pb2.SPEAKER_SYSTEM),
                text=line.text,
                spoken_at=stamp,
            ),
            operator_id=operator_id,
        )
        await self._publish("handoff_line", call, event)

    # ---- helpers --------------------------------------------------------------------------

    async def _publish(self, kind: str, call: CallInfo, event: _Event) -> None:
        redact_message(event)  # PII out of every event
        subject = event_subject(kind, call.tenant, call.call_id)
        await self.bus.js_publish(subject, event, msg_id=event.event_id)

    async def _upsert(self, call: CallInfo, change: Updater) -> None:
        try:
            await self.store.update(call.tenant, call.call_id, change)
        except CallNotFoundError:
            fresh = CallState(
                call_id=call.call_id,
                tenant_id=call.tenant,
                agent_name=call.agent,
                agent_version=call.agent_version,
                node=CONNECTING,
                data={"gateway_id": self.gateway_id},
            )
            await self.store.create(change(fresh))


_Event = (
    events_pb2.CallStarted
    | events_pb2.TurnCompleted
    | events_pb2.CallEnded
    | events_pb2.HandoffLine
)


def _sum(a: usage_pb2.Usage, b: usage_pb2.Usage) -> usage_pb2.Usage:
    return usage_pb2.Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        audio_in_seconds=a.audio_in_seconds + b.audio_in_seconds,
        audio_out_seconds=a.audio_out_seconds + b.audio_out_seconds,
        characters=a.characters + b.characters,
        cached_input_tokens=a.cached_input_tokens + b.cached_input_tokens,
    )


def _event_id() -> str:
    return str(uuid.uuid4())


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp
