"""Ticket changes as NATS events on the EVENTS JetStream stream (events/v1 payloads).

requested escalation -> ``escalation`` (EscalationRequested); any later escalation change ->
``escalation_updated`` (EscalationUpdated); requested approval -> ``approval``
(ApprovalRequested); approval approved/denied/expired/cancelled -> ``approval_decided``
(ApprovalDecided). Each has a fresh event_id, also its Nats-Msg-Id. What is published is
redacted (summary, detail, notes, arguments, caller address: ``trunkline.redaction``); the
tickets themselves keep what the operator needs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from google.protobuf.message import Message

from trunkline.bus import BusBase
from trunkline.bus.streams import event_subject
from trunkline.hitl.convert import OUTCOMES, context_of, duration, reason_value, risk_value
from trunkline.hitl.convert import timestamp as ts
from trunkline.hitl.core.tickets import Kind, Ticket
from trunkline.proto.common.v1 import handoff_pb2, tool_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.redaction.messages import redact_message

DECIDED = frozenset({"approved", "denied", "expired", "cancelled"})


def event_for(
    ticket: Ticket, change: str, now: float, new_id: Callable[[], str] = lambda: str(uuid.uuid4())
) -> tuple[str, Message] | None:
    """(kind, payload) for a change, or None when the change is not published."""
    event_id, at, context = new_id(), ts(now), context_of(ticket.call)
    waited = duration(max(0.0, now - ticket.created_at))
    if ticket.kind is Kind.ESCALATION and ticket.escalation is not None:
        e = ticket.escalation
        if change == "requested":
            return "escalation", events_pb2.EscalationRequested(
                event_id=event_id,
                occurred_at=at,
                context=context,
                ticket_id=ticket.ticket_id,
                reason=handoff_pb2.EscalationReason.ValueType(reason_value(e.reason)),
                detail=e.detail,
                sentiment=handoff_pb2.Sentiment(score=e.sentiment, frustration=e.frustration),
                summary=ticket.summary,
                expires_at=ts(ticket.expires_at),
            )
        decision = ticket.decision
        return "escalation_updated", events_pb2.EscalationUpdated(
            event_id=event_id,
            occurred_at=at,
            context=context,
            ticket_id=ticket.ticket_id,
            change=change,
            operator_id=ticket.operator_id if change not in {"requeued", "expired"} else "",
            wait_time=waited,
            note=decision.note if decision else "",
        )
    if ticket.approval is None:
        return None
    a = ticket.approval
    call = tool_pb2.ToolCall(id=a.tool_call_id, name=a.tool_name, arguments_json=a.arguments_json)
    if change == "requested":
        return "approval", events_pb2.ApprovalRequested(
            event_id=event_id,
            occurred_at=at,
            context=context,
            ticket_id=ticket.ticket_id,
            tool_call=call,
            risk_level=tool_pb2.RiskLevel.ValueType(risk_value(a.risk)),
            justification=a.justification,
            expires_at=ts(ticket.expires_at),
        )
    if change in DECIDED and ticket.decision is not None:
        d = ticket.decision
        return "approval_decided", events_pb2.ApprovalDecided(
            event_id=event_id,
            occurred_at=at,
            context=context,
            ticket_id=ticket.ticket_id,
            tool_call_id=a.tool_call_id,
            outcome=OUTCOMES[d.outcome],
            operator_id=d.operator_id,
            note=d.note,
            wait_time=duration(max(0.0, d.decided_at - ticket.created_at)),
            arguments_json=d.arguments_json,
        )
    return None


class TicketEvents:
    """A :class:`~trunkline.hitl.queue.TicketListener` publishing to JetStream."""

    def __init__(self, bus: BusBase, now: Callable[[], float]) -> None:
        self._bus = bus
        self._now = now

    async def changed(self, before: Ticket | None, after: Ticket, change: str) -> None:
        found = event_for(after, change, self._now())
        if found is None:
            return
        kind, payload = found
        redact_message(payload)  # PII out of the bus, as the gateway's events (issue 13)
        subject = event_subject(kind, after.tenant_id, after.call.call_id or "-")
        await self._bus.js_publish(subject, payload, msg_id=getattr(payload, "event_id", None))
