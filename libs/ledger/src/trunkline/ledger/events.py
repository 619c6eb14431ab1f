"""``events/v1`` messages -> ledger facts (the one place protobuf meets the ledger).

The kind is the subject's third token (``trunkline.events.<kind>.<tenant>.<call_id>``, or
``trunkline.shadow.result.<candidate>.<tenant>.<call_id>`` for a candidate's shadow turn, whose
usage is priced as a shadow turn of the candidate version); kinds the ledger does not use give
None.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from trunkline.bus.delivery import decode
from trunkline.bus.streams import SHADOW_PREFIX
from trunkline.ledger.facts import (
    CallEndFact,
    CallKey,
    CostFact,
    EscalationFact,
    Fact,
    TurnFact,
)
from trunkline.ledger.outcomes import EndReason
from trunkline.ledger.pricing import Usage, seconds
from trunkline.proto.common.v1 import call_pb2, usage_pb2
from trunkline.proto.events.v1 import events_pb2

USED_KINDS = ("turn", "call_ended", "escalation", "cost", "result")
RAN = (events_pb2.TOOL_CALL_STATUS_SUCCEEDED, events_pb2.TOOL_CALL_STATUS_FAILED)
"""Tool calls that executed (and are paid for); forbidden, denied or dry-run ones did not."""
END_REASONS = {
    events_pb2.END_REASON_CALLER_HANGUP: EndReason.CALLER_HANGUP,
    events_pb2.END_REASON_AGENT_HANGUP: EndReason.AGENT_HANGUP,
    events_pb2.END_REASON_TRANSFERRED: EndReason.TRANSFERRED,
    events_pb2.END_REASON_ADMIN_HANGUP: EndReason.ADMIN_HANGUP,
    events_pb2.END_REASON_TIMEOUT: EndReason.TIMEOUT,
    events_pb2.END_REASON_ERROR: EndReason.ERROR,
}
REPLY_SOURCES = {
    value: name.removeprefix("REPLY_SOURCE_").lower()
    for name, value in events_pb2.ReplySource.items()
}


def kind(subject: str) -> str:
    parts = subject.split(".")
    return parts[2] if len(parts) > 2 else ""


def when(stamp: Timestamp) -> datetime:
    if stamp.seconds == 0 and stamp.nanos == 0:
        return datetime.now(UTC)
    return stamp.ToDatetime(tzinfo=UTC)


def call_key(context: call_pb2.CallContext) -> CallKey:
    if not context.tenant_id or not context.call_id:
        raise ValueError("event without tenant_id or call_id")
    return CallKey(
        tenant=context.tenant_id,
        call_id=context.call_id,
        agent_name=context.agent.name or "-",
        agent_version=context.agent.version or "-",
        shadow=context.shadow,
    )


def usage_of(usage: usage_pb2.Usage, tools: tuple[str, ...] = ()) -> Usage:
    return Usage(
        stt_seconds=seconds(usage.audio_in_seconds),
        prompt_tokens=usage.input_tokens,
        cached_tokens=min(usage.cached_input_tokens, usage.input_tokens),
        completion_tokens=usage.output_tokens,
        tts_characters=usage.characters,
        tts_seconds=seconds(usage.audio_out_seconds),
        tools=tools,
    )


def fact_from(subject: str, data: bytes) -> Fact | None:
    """The fact an event carries; None for kinds the ledger ignores. Raises
    ``BadPayloadError``/``ValueError`` for a payload that cannot be a valid event."""
    match kind(subject):
        case "turn":
            turn = decode(data, events_pb2.TurnCompleted, subject)
            ran = tuple(t.call.name for t in turn.tool_calls if t.status in RAN)
            succeeded = tuple(
                t.call.name
                for t in turn.tool_calls
                if t.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
            )
            return TurnFact(
                event_id=_event_id(turn.event_id, subject),
                occurred_at=when(turn.occurred_at),
                call=call_key(turn.context),
                turn_index=turn.context.turn_index,
                usage=usage_of(turn.usage, ran),
                reply_source=REPLY_SOURCES.get(turn.reply_source, ""),
                intent=turn.intent,
                hang_up=turn.hang_up,
                succeeded_tools=succeeded,
            )
        case "call_ended":
            ended = decode(data, events_pb2.CallEnded, subject)
            duration = Decimal(ended.duration.seconds) + Decimal(ended.duration.nanos).scaleb(-9)
            return CallEndFact(
                event_id=_event_id(ended.event_id, subject),
                occurred_at=when(ended.occurred_at),
                call=call_key(ended.context),
                end_reason=END_REASONS.get(ended.reason, EndReason.UNKNOWN),
                duration_seconds=seconds(duration),
                turn_count=ended.turn_count,
                marked_qualified=ended.qualified,
            )
        case "escalation":
            escalation = decode(data, events_pb2.EscalationRequested, subject)
            return EscalationFact(
                event_id=_event_id(escalation.event_id, subject),
                occurred_at=when(escalation.occurred_at),
                call=call_key(escalation.context),
            )
        case "result" if subject.startswith(SHADOW_PREFIX + "."):
            result = decode(data, events_pb2.ShadowTurnResult, subject)
            key = call_key(result.context)
            return TurnFact(
                event_id=_event_id(result.event_id, subject),
                occurred_at=when(result.occurred_at),
                call=CallKey(key.tenant, key.call_id, key.agent_name, key.agent_version, True),
                turn_index=result.context.turn_index,
                usage=usage_of(result.usage),  # tools ran dry: nothing to pay for
                reply_source=REPLY_SOURCES.get(result.shadow_reply_source, ""),
            )
        case "cost":
            entry = decode(data, events_pb2.CostEntry, subject)
            return CostFact(
                event_id=_event_id(entry.event_id, subject),
                occurred_at=when(entry.occurred_at),
                call=call_key(entry.context),
                component=entry.component,
                resource=entry.resource,
                usage=usage_of(entry.usage),
            )
    return None


def _event_id(event_id: str, subject: str) -> str:
    if not event_id:
        raise ValueError(f"event on {subject!r} has no event_id")
    return event_id
