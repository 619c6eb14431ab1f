"""``events/v1`` protobuf messages as the eval's plain data (a thin adapter; no I/O)."""

from __future__ import annotations

import json

from trunkline.evaluation.observation import Intervention, ToolCallSeen, TurnEvent
from trunkline.proto.events.v1 import events_pb2


def _enum_name(prefix: str, name: str) -> str:
    value = name.removeprefix(prefix).lower()
    return "" if value == "unspecified" else value


def reply_source_name(value: int) -> str:
    """``REPLY_SOURCE_DEFLECTION`` -> ``"deflection"`` ("" for unspecified or unknown)."""
    try:
        name = events_pb2.ReplySource.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return ""
    return _enum_name("REPLY_SOURCE_", name)


def end_reason_name(value: int) -> str:
    """``END_REASON_AGENT_HANGUP`` -> ``"agent_hangup"``."""
    try:
        name = events_pb2.EndReason.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return ""
    return _enum_name("END_REASON_", name)


def _arguments(text: str) -> dict[str, object]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {"_unparsed": text}
    return value if isinstance(value, dict) else {"_value": value}


def tool_call(record: events_pb2.ToolCallRecord) -> ToolCallSeen:
    status = _enum_name("TOOL_CALL_STATUS_", events_pb2.ToolCallStatus.Name(record.status))
    return ToolCallSeen(
        name=record.call.name,
        arguments=_arguments(record.call.arguments_json),
        status=status,
        result_json=record.result_json,
    )


def turn_event(event: events_pb2.TurnCompleted) -> TurnEvent:
    return TurnEvent(
        occurred_at=event.occurred_at.seconds + event.occurred_at.nanos / 1e9,
        caller_transcript=event.caller_transcript,
        reply=event.agent_reply,
        generated=event.agent_reply_generated,
        truncated=event.truncated,
        reply_source=reply_source_name(event.reply_source),
        intent=event.intent,
        grounded=event.grounded,
        interventions=tuple(
            Intervention(i.clause, tuple(i.unsupported), i.action)
            for i in event.guard_interventions
        ),
        hang_up=event.hang_up,
        tool_calls=tuple(tool_call(t) for t in event.tool_calls),
        cache_hit=event.cache_hit,
        retrieval_confidence=event.retrieval_confidence,
        citations=tuple(c.id for c in event.citations),
    )
