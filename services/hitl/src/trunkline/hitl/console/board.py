"""The console's picture of a tenant's calls, folded from call and turn events (pure, no I/O).

The feed (:mod:`trunkline.hitl.console.feed`) replays a tenant's events from JetStream into a
:class:`Board`; each event changes one call's :class:`CallRow`, and a ``turn`` event also yields
a :class:`TurnView` (transcript lines and latency waterfall) for the call's live transcript.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from trunkline.hitl.console.waterfall import Stage, Waterfall, waterfall
from trunkline.proto.common.v1 import call_pb2, transcript_pb2
from trunkline.proto.events.v1 import events_pb2

EventMessage = (
    events_pb2.CallStarted
    | events_pb2.CallEnded
    | events_pb2.TurnCompleted
    | events_pb2.EscalationRequested
    | events_pb2.ApprovalRequested
    | events_pb2.ApprovalDecided
    | events_pb2.EscalationUpdated
    | events_pb2.HandoffLine
)

KINDS: dict[str, type[EventMessage]] = {
    "call_started": events_pb2.CallStarted,
    "call_ended": events_pb2.CallEnded,
    "turn": events_pb2.TurnCompleted,
    "escalation": events_pb2.EscalationRequested,
    "approval": events_pb2.ApprovalRequested,
    "approval_decided": events_pb2.ApprovalDecided,
    "escalation_updated": events_pb2.EscalationUpdated,
    "handoff_line": events_pb2.HandoffLine,
}
"""Event kinds the console reads (the subject's third token) and their payload types."""

LIVE = "live"
ESCALATED = "waiting for an operator"
WITH_OPERATOR = "with an operator"
APPROVAL = "waiting for an approval"
ENDED = "ended"
ESCALATION_STATES = {
    "accepted": WITH_OPERATOR,
    "handed_back": LIVE,
    "dismissed": LIVE,
    "callback": LIVE,
    "expired": LIVE,
    "cancelled": LIVE,
    "requeued": ESCALATED,
}
"""The call's state after an ``escalation_updated`` change (others leave it as it is)."""


def _enum_name(value: int, prefix: str, enum: object) -> str:
    name: str = enum.Name(value)  # type: ignore[attr-defined]
    return name.removeprefix(prefix).lower().replace("_", " ")


def _time(stamp: Timestamp) -> datetime | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    return stamp.ToDatetime(tzinfo=UTC)


@dataclass(frozen=True)
class TurnView:
    call_id: str
    index: int
    caller: str
    agent: str
    truncated: bool
    source: str
    intent: str
    response_ms: float | None
    waterfall: Waterfall
    tools: tuple[tuple[str, str], ...] = ()  # (tool name, status)
    citations: tuple[str, ...] = ()
    at: datetime | None = None


@dataclass(frozen=True)
class LineView:
    """A line said while an operator was on the call (caller or operator), live."""

    call_id: str
    speaker: str  # "caller", "operator"
    text: str
    at: datetime | None = None

    @property
    def key(self) -> str:
        """A stable element id: the same line replayed replaces itself."""
        stamp = int(self.at.timestamp() * 1000) if self.at is not None else 0
        return f"line-{self.speaker}-{stamp}"


def line_view(event: events_pb2.HandoffLine) -> LineView:
    return LineView(
        call_id=event.context.call_id,
        speaker=_enum_name(event.line.speaker, "SPEAKER_", transcript_pb2.Speaker),
        text=event.line.text,
        at=_time(event.line.spoken_at) or _time(event.occurred_at),
    )


@dataclass(frozen=True)
class CallRow:
    call_id: str
    tenant: str
    agent: str = ""
    agent_version: str = ""
    transport: str = ""
    caller: str = ""
    state: str = LIVE
    started_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str = ""
    turns: int = 0
    last_caller: str = ""
    last_agent: str = ""
    last_response_ms: float | None = None
    tickets: tuple[str, ...] = ()

    @property
    def live(self) -> bool:
        return self.state != ENDED


def _seconds(stamp: Timestamp) -> float | None:
    when = _time(stamp)
    return when.timestamp() if when is not None else None


def turn_view(event: events_pb2.TurnCompleted) -> TurnView:
    stages = [
        Stage(
            timing.stage, timing.duration.ToTimedelta().total_seconds(), _seconds(timing.started_at)
        )
        for timing in event.stages
    ]
    response = (
        event.response_time.ToTimedelta().total_seconds() * 1000
        if event.HasField("response_time")
        else None
    )
    return TurnView(
        call_id=event.context.call_id,
        index=event.context.turn_index,
        caller=event.caller_transcript,
        agent=event.agent_reply,
        truncated=event.truncated,
        source=_enum_name(event.reply_source, "REPLY_SOURCE_", events_pb2.ReplySource),
        intent=event.intent,
        response_ms=response,
        waterfall=waterfall(stages),
        tools=tuple(
            (
                record.call.name,
                _enum_name(record.status, "TOOL_CALL_STATUS_", events_pb2.ToolCallStatus),
            )
            for record in event.tool_calls
        ),
        citations=tuple(citation.id for citation in event.citations),
        at=_time(event.occurred_at),
    )


@dataclass
class Board:
    """One tenant's calls, newest first. Events of other tenants are ignored."""

    tenant: str
    calls: dict[str, CallRow] = field(default_factory=dict)

    def apply(self, event: EventMessage) -> CallRow | None:
        """Fold one event in; the changed row, or None when the event is not this tenant's."""
        context = event.context
        if context.tenant_id != self.tenant or not context.call_id:
            return None
        row = self.calls.get(context.call_id) or CallRow(context.call_id, self.tenant)
        row = _fold(row, event)
        self.calls[row.call_id] = row
        return row

    def rows(self) -> list[CallRow]:
        """Live calls first, then ended ones; newest first within each."""
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(
            self.calls.values(),
            key=lambda row: (row.live, row.started_at or epoch),
            reverse=True,
        )


def _fold(row: CallRow, event: EventMessage) -> CallRow:
    context = event.context
    row = replace(
        row,
        agent=context.agent.name or row.agent,
        agent_version=context.agent.version or row.agent_version,
        caller=context.caller.address or row.caller,
    )
    if isinstance(event, events_pb2.CallStarted):
        return replace(
            row,
            transport=_enum_name(event.transport, "TRANSPORT_", call_pb2.Transport),
            started_at=_time(event.occurred_at),
        )
    if isinstance(event, events_pb2.TurnCompleted):
        view = turn_view(event)
        return replace(
            row,
            turns=row.turns + 1,
            last_caller=view.caller or row.last_caller,
            last_agent=view.agent or row.last_agent,
            last_response_ms=view.response_ms,
        )
    if isinstance(event, events_pb2.CallEnded):
        return replace(
            row,
            state=ENDED,
            ended_at=_time(event.occurred_at),
            end_reason=_enum_name(event.reason, "END_REASON_", events_pb2.EndReason),
        )
    if isinstance(event, events_pb2.EscalationRequested):
        tickets = (*row.tickets, event.ticket_id) if event.ticket_id else row.tickets
        return replace(row, state=ESCALATED if row.live else row.state, tickets=tickets)
    if isinstance(event, events_pb2.EscalationUpdated) and row.live:
        return replace(row, state=ESCALATION_STATES.get(event.change, row.state))
    if isinstance(event, events_pb2.ApprovalRequested):
        return replace(row, state=APPROVAL if row.live else row.state)
    if isinstance(event, events_pb2.ApprovalDecided):
        return replace(row, state=LIVE if row.state == APPROVAL else row.state)
    return row
