"""Domain tickets <-> protobuf (``hitl.v1.Ticket``), used by the gRPC surface and the store."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from trunkline.hitl.core.tickets import (
    ApprovalInfo,
    Callback,
    CallRef,
    Citation,
    CustomerRecord,
    Decision,
    EscalationInfo,
    InvalidRequest,
    Kind,
    Line,
    Outcome,
    State,
    Ticket,
    TurnContext,
)
from trunkline.proto.common.v1 import (
    call_pb2,
    handoff_pb2,
    knowledge_pb2,
    tool_pb2,
    transcript_pb2,
)
from trunkline.proto.hitl.v1 import hitl_pb2

STATES = {
    State.QUEUED: hitl_pb2.TICKET_STATE_QUEUED,
    State.CLAIMED: hitl_pb2.TICKET_STATE_CLAIMED,
    State.TAKEN_OVER: hitl_pb2.TICKET_STATE_TAKEN_OVER,
    State.HANDED_BACK: hitl_pb2.TICKET_STATE_HANDED_BACK,
    State.ENDED: hitl_pb2.TICKET_STATE_ENDED,
    State.DECIDED: hitl_pb2.TICKET_STATE_DECIDED,
    State.EXPIRED: hitl_pb2.TICKET_STATE_EXPIRED,
    State.CANCELLED: hitl_pb2.TICKET_STATE_CANCELLED,
}
OUTCOMES = {
    Outcome.APPROVED: handoff_pb2.DECISION_OUTCOME_APPROVED,
    Outcome.DENIED: handoff_pb2.DECISION_OUTCOME_DENIED,
    Outcome.EXPIRED: handoff_pb2.DECISION_OUTCOME_EXPIRED,
    Outcome.CANCELLED: handoff_pb2.DECISION_OUTCOME_CANCELLED,
}
KINDS = {
    Kind.ESCALATION: hitl_pb2.TICKET_KIND_ESCALATION,
    Kind.APPROVAL: hitl_pb2.TICKET_KIND_APPROVAL,
}
SPEAKERS = {
    "caller": transcript_pb2.SPEAKER_CALLER,
    "agent": transcript_pb2.SPEAKER_AGENT,
    "operator": transcript_pb2.SPEAKER_OPERATOR,
    "system": transcript_pb2.SPEAKER_SYSTEM,
}


_STATE_OF = {v: k for k, v in STATES.items()}
_OUTCOME_OF = {v: k for k, v in OUTCOMES.items()}
_KIND_OF = {v: k for k, v in KINDS.items()}
_SPEAKER_OF = {v: k for k, v in SPEAKERS.items()}


def reason_name(value: int) -> str:
    """``ESCALATION_REASON_CALLER_REQUEST`` -> ``caller_request``."""
    name = handoff_pb2.EscalationReason.Name(handoff_pb2.EscalationReason.ValueType(value))
    return name.removeprefix("ESCALATION_REASON_").lower()


def reason_value(name: str) -> int:
    return handoff_pb2.EscalationReason.Value(f"ESCALATION_REASON_{name.upper()}")


def risk_name(value: int) -> str:
    return (
        tool_pb2.RiskLevel.Name(tool_pb2.RiskLevel.ValueType(value))
        .removeprefix("RISK_LEVEL_")
        .lower()
    )


def risk_value(name: str) -> int:
    return tool_pb2.RiskLevel.Value(f"RISK_LEVEL_{name.upper()}")


def outcome_of(value: int) -> Outcome:
    found = _OUTCOME_OF.get(handoff_pb2.DecisionOutcome.ValueType(value))
    if found is None:
        raise InvalidRequest(f"unknown decision outcome {value}")
    return found


def kind_of(value: int) -> Kind | None:
    """None for TICKET_KIND_UNSPECIFIED (all kinds)."""
    if value == hitl_pb2.TICKET_KIND_UNSPECIFIED:
        return None
    found = _KIND_OF.get(hitl_pb2.TicketKind.ValueType(value))
    if found is None:
        raise InvalidRequest(f"unknown ticket kind {value}")
    return found


def timestamp(seconds: float) -> Timestamp:
    value = Timestamp()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def seconds_of(value: Timestamp) -> float:
    return float(value.ToNanoseconds()) / 1e9


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


# -- CallContext ---------------------------------------------------------------------------


def call_of(context: call_pb2.CallContext) -> CallRef:
    return CallRef(
        tenant_id=context.tenant_id,
        call_id=context.call_id,
        caller_id=context.caller.id,
        caller_address=context.caller.address,
        caller_name=context.caller.display_name,
        caller_role=context.caller.role,
        caller_verified=context.caller.verified,
        agent_name=context.agent.name,
        agent_version=context.agent.version,
        turn_index=context.turn_index,
        shadow=context.shadow,
    )


def context_of(call: CallRef) -> call_pb2.CallContext:
    return call_pb2.CallContext(
        tenant_id=call.tenant_id,
        call_id=call.call_id,
        caller=call_pb2.Caller(
            id=call.caller_id,
            address=call.caller_address,
            display_name=call.caller_name,
            role=call.caller_role,
            verified=call.caller_verified,
        ),
        agent=call_pb2.AgentRef(name=call.agent_name, version=call.agent_version),
        turn_index=call.turn_index,
        shadow=call.shadow,
    )


# -- pieces --------------------------------------------------------------------------------


def lines_of(entries: object) -> tuple[Line, ...]:
    return tuple(
        Line(
            speaker=_SPEAKER_OF.get(e.speaker, "system"),
            text=e.text,
            turn_index=e.turn_index,
            spoken_at=seconds_of(e.spoken_at) if e.HasField("spoken_at") else 0.0,
            truncated=e.truncated,
        )
        for e in entries  # type: ignore[attr-defined]
    )


def entry_of(line: Line) -> transcript_pb2.TranscriptEntry:
    entry = transcript_pb2.TranscriptEntry(
        speaker=SPEAKERS.get(line.speaker, transcript_pb2.SPEAKER_SYSTEM),
        text=line.text,
        turn_index=line.turn_index,
        truncated=line.truncated,
    )
    if line.spoken_at:
        entry.spoken_at.CopyFrom(timestamp(line.spoken_at))
    return entry


def _citation_of(c: knowledge_pb2.Citation) -> Citation:
    return Citation(c.id, c.title, c.uri, c.source_id, c.knowledge_base, c.score)


def _citation_pb(c: Citation) -> knowledge_pb2.Citation:
    return knowledge_pb2.Citation(
        id=c.id,
        title=c.title,
        uri=c.uri,
        source_id=c.source_id,
        knowledge_base=c.knowledge_base,
        score=c.score,
    )


def escalation_of(message: hitl_pb2.Escalation) -> EscalationInfo:
    customer = None
    if message.HasField("customer"):
        customer = CustomerRecord(
            id=message.customer.id,
            source=message.customer.source,
            fields=tuple(sorted(message.customer.fields.items())),
        )
    return EscalationInfo(
        reason=reason_name(message.reason),
        detail=message.detail,
        sentiment=message.sentiment.score,
        frustration=message.sentiment.frustration,
        turns=tuple(
            TurnContext(
                t.turn_index,
                t.query,
                t.context_text,
                tuple(_citation_of(c) for c in t.citations),
            )
            for t in message.turns
        ),
        customer=customer,
        operator_token=message.operator_token,
    )


def approval_of(message: hitl_pb2.Approval) -> ApprovalInfo:
    call = message.tool_call
    return ApprovalInfo(
        tool_call_id=call.id,
        tool_name=call.name,
        arguments_json=call.arguments_json or "{}",
        risk=risk_name(message.risk_level),
        justification=message.justification,
    )


# -- Ticket --------------------------------------------------------------------------------


def ticket_pb(ticket: Ticket) -> hitl_pb2.Ticket:
    message = hitl_pb2.Ticket(
        ticket_id=ticket.ticket_id,
        kind=KINDS[ticket.kind],
        state=STATES[ticket.state],
        context=context_of(ticket.call),
        created_at=timestamp(ticket.created_at),
        expires_at=timestamp(ticket.expires_at),
        operator_id=ticket.operator_id,
        summary=ticket.summary,
        requeues=ticket.requeues,
    )
    transcript = [entry_of(line) for line in ticket.transcript]
    if ticket.escalation is not None:
        e = ticket.escalation
        escalation = message.escalation
        escalation.reason = handoff_pb2.EscalationReason.ValueType(reason_value(e.reason))
        escalation.detail = e.detail
        escalation.sentiment.score = e.sentiment
        escalation.sentiment.frustration = e.frustration
        escalation.transcript.extend(transcript)
        for turn in e.turns:
            escalation.turns.add(
                turn_index=turn.turn_index,
                query=turn.query,
                context_text=turn.context_text,
                citations=[_citation_pb(c) for c in turn.citations],
            )
        escalation.operator_token = e.operator_token
        if e.customer is not None:
            escalation.customer.id = e.customer.id
            escalation.customer.source = e.customer.source
            escalation.customer.fields.update(dict(e.customer.fields))
    if ticket.approval is not None:
        a = ticket.approval
        approval = message.approval
        approval.tool_call.CopyFrom(
            tool_pb2.ToolCall(id=a.tool_call_id, name=a.tool_name, arguments_json=a.arguments_json)
        )
        approval.risk_level = tool_pb2.RiskLevel.ValueType(risk_value(a.risk))
        approval.justification = a.justification
        approval.transcript.extend(transcript)
    if ticket.decision is not None:
        d = ticket.decision
        message.decision.CopyFrom(
            hitl_pb2.Decision(
                outcome=OUTCOMES[d.outcome],
                operator_id=d.operator_id,
                note=d.note,
                decided_at=timestamp(d.decided_at),
                arguments_json=d.arguments_json,
            )
        )
    if ticket.claim_expires_at is not None:
        message.claim_expires_at.CopyFrom(timestamp(ticket.claim_expires_at))
    if ticket.accepted_at is not None:
        message.accepted_at.CopyFrom(timestamp(ticket.accepted_at))
    if ticket.callback is not None:
        c = ticket.callback
        message.callback.CopyFrom(
            hitl_pb2.Callback(
                accepted=c.accepted, number=c.number, offered_at=timestamp(c.offered_at)
            )
        )
    return message


def ticket_of(message: hitl_pb2.Ticket) -> Ticket:
    subject = message.WhichOneof("subject")
    escalation = escalation_of(message.escalation) if subject == "escalation" else None
    approval = approval_of(message.approval) if subject == "approval" else None
    entries = (
        message.escalation.transcript if subject == "escalation" else message.approval.transcript
    )
    decision = None
    if message.HasField("decision"):
        d = message.decision
        decision = Decision(
            outcome=outcome_of(d.outcome),
            operator_id=d.operator_id,
            note=d.note,
            decided_at=seconds_of(d.decided_at),
            arguments_json=d.arguments_json,
        )
    callback = None
    if message.HasField("callback"):
        c = message.callback
        callback = Callback(c.accepted, c.number, seconds_of(c.offered_at))
    return Ticket(
        ticket_id=message.ticket_id,
        kind=_KIND_OF[message.kind],
        call=call_of(message.context),
        created_at=seconds_of(message.created_at),
        expires_at=seconds_of(message.expires_at),
        state=_STATE_OF[message.state],
        operator_id=message.operator_id,
        claim_expires_at=(
            seconds_of(message.claim_expires_at) if message.HasField("claim_expires_at") else None
        ),
        accepted_at=seconds_of(message.accepted_at) if message.HasField("accepted_at") else None,
        requeues=message.requeues,
        summary=message.summary,
        transcript=lines_of(entries),
        escalation=escalation,
        approval=approval,
        decision=decision,
        callback=callback,
    )
