"""The hitl service over gRPC (``trunkline.hitl.v1.HumanLoop``): Escalate, RequestApproval,
WaitDecision, OfferCallback, Cancel. Unary calls get ``timeout_s`` each; ``watch`` streams for as
long as the caller keeps reading (its deadlines are the handoff's and the approval's own). Every
failure becomes :class:`HumanLoopError`: the call never depends on this peer to stay up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from trunkline.gateway.peers.grpc_common import call_context
from trunkline.gateway.peers.hitl import (
    ApprovalRequest,
    EscalationRequest,
    HumanLoop,
    HumanLoopError,
    Line,
    Outcome,
    TicketState,
    TicketUpdate,
)
from trunkline.gateway.peers.types import CallInfo
from trunkline.proto.common.v1 import handoff_pb2, knowledge_pb2, tool_pb2, transcript_pb2
from trunkline.proto.hitl.v1 import hitl_pb2, hitl_pb2_grpc

log = logging.getLogger(__name__)
# A hitl replica restarting: refused (UNAVAILABLE), or the call in flight cut (CANCELLED) or
# never answered (DEADLINE_EXCEEDED). Requests carry request_id or are idempotent: retry.
RETRY = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
REASONS = {
    "caller_request": handoff_pb2.ESCALATION_REASON_CALLER_REQUEST,
    "frustration": handoff_pb2.ESCALATION_REASON_FRUSTRATION,
    "out_of_domain": handoff_pb2.ESCALATION_REASON_OUT_OF_DOMAIN,
    "low_confidence": handoff_pb2.ESCALATION_REASON_LOW_CONFIDENCE,
    "not_understood": handoff_pb2.ESCALATION_REASON_LOW_CONFIDENCE,
    "repeated_question": handoff_pb2.ESCALATION_REASON_LOW_CONFIDENCE,
    "tool_failures": handoff_pb2.ESCALATION_REASON_FAILURE,
}
SPEAKERS = {
    "caller": transcript_pb2.SPEAKER_CALLER,
    "agent": transcript_pb2.SPEAKER_AGENT,
    "operator": transcript_pb2.SPEAKER_OPERATOR,
}
STATES = {
    hitl_pb2.TICKET_STATE_QUEUED: TicketState.QUEUED,
    hitl_pb2.TICKET_STATE_CLAIMED: TicketState.CLAIMED,
    hitl_pb2.TICKET_STATE_DECIDED: TicketState.DECIDED,
    hitl_pb2.TICKET_STATE_EXPIRED: TicketState.EXPIRED,
    hitl_pb2.TICKET_STATE_CANCELLED: TicketState.CANCELLED,
    hitl_pb2.TICKET_STATE_TAKEN_OVER: TicketState.TAKEN_OVER,
    hitl_pb2.TICKET_STATE_HANDED_BACK: TicketState.HANDED_BACK,
    hitl_pb2.TICKET_STATE_ENDED: TicketState.ENDED,
}
OUTCOMES = {
    handoff_pb2.DECISION_OUTCOME_APPROVED: Outcome.APPROVED,
    handoff_pb2.DECISION_OUTCOME_DENIED: Outcome.DENIED,
    handoff_pb2.DECISION_OUTCOME_EXPIRED: Outcome.EXPIRED,
    handoff_pb2.DECISION_OUTCOME_CANCELLED: Outcome.CANCELLED,
}


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def _transcript(lines: tuple[Line, ...]) -> list[transcript_pb2.TranscriptEntry]:
    return [
        transcript_pb2.TranscriptEntry(
            speaker=SPEAKERS.get(line.speaker, transcript_pb2.SPEAKER_SYSTEM),
            text=line.text,
            turn_index=line.turn_index,
            truncated=line.truncated,
        )
        for line in lines
    ]


def escalate_request(call: CallInfo, request: EscalationRequest) -> hitl_pb2.EscalateRequest:
    escalation = hitl_pb2.Escalation(
        reason=REASONS.get(request.reason, handoff_pb2.ESCALATION_REASON_POLICY),
        detail=request.detail,
        sentiment=handoff_pb2.Sentiment(score=request.sentiment, frustration=request.frustration),
        transcript=_transcript(request.transcript),
        turns=[
            hitl_pb2.TurnContext(
                turn_index=turn.turn_index,
                query=turn.query,
                context_text=turn.context_text,
                citations=[
                    knowledge_pb2.Citation(
                        id=c.id,
                        knowledge_base=c.knowledge_base,
                        source_id=c.source_id,
                        title=c.title,
                        uri=c.uri,
                        score=c.score,
                    )
                    for c in turn.citations
                ],
            )
            for turn in request.turns
        ],
        customer=hitl_pb2.CustomerRecord(
            id=request.customer_id, source=request.customer_source, fields=dict(request.customer)
        ),
    )
    message = hitl_pb2.EscalateRequest(
        context=call_context(call), escalation=escalation, request_id=request.request_id
    )
    if request.timeout_s is not None:
        message.timeout.CopyFrom(_duration(request.timeout_s))
    return message


def ticket_update(ticket: hitl_pb2.Ticket) -> TicketUpdate:
    decision = ticket.decision
    return TicketUpdate(
        ticket_id=ticket.ticket_id,
        state=STATES.get(ticket.state, TicketState.QUEUED),
        outcome=OUTCOMES.get(decision.outcome, Outcome.NONE),
        operator_id=ticket.operator_id or decision.operator_id,
        note=decision.note,
        arguments_json=decision.arguments_json,
    )


class GrpcHumanLoop(HumanLoop):
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 2.0) -> None:
        self._stub = hitl_pb2_grpc.HumanLoopStub(channel)
        self._timeout_s = timeout_s

    async def escalate(self, call: CallInfo, request: EscalationRequest) -> str:
        response = await self._unary("Escalate", escalate_request(call, request))
        return str(response.ticket.ticket_id)

    async def request_approval(self, call: CallInfo, request: ApprovalRequest) -> str:
        message = hitl_pb2.RequestApprovalRequest(
            context=call_context(call),
            approval=hitl_pb2.Approval(
                tool_call=tool_pb2.ToolCall(
                    id=request.tool_call_id,
                    name=request.tool,
                    arguments_json=request.arguments_json,
                ),
                risk_level=tool_pb2.RISK_LEVEL_HIGH,
                justification=request.justification,
                transcript=_transcript(request.transcript),
            ),
            timeout=_duration(request.timeout_s),
            request_id=request.request_id,
        )
        response = await self._unary("RequestApproval", message)
        return str(response.ticket.ticket_id)

    async def _unary(self, name: str, message: Any) -> Any:
        """One unary call; a hitl restart (``RETRY``) is retried with the same request (its
        request_id makes the retry safe) until the caller's own deadline cancels it."""
        method = getattr(self._stub, name)
        delay = 0.1
        while True:
            try:
                return await method(message, timeout=self._timeout_s)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRY:
                    raise HumanLoopError(
                        f"hitl {name}: {exc.code().name}: {exc.details()}", exc.code().name
                    ) from exc
                log.info("hitl %s unavailable (%s); retrying", name, exc.details())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def watch(self, call: CallInfo, ticket_id: str) -> AsyncIterator[TicketUpdate]:
        request = hitl_pb2.WaitDecisionRequest(context=call_context(call), ticket_id=ticket_id)
        stream = self._stub.WaitDecision(request)
        try:
            async for response in stream:
                update = ticket_update(response.ticket)
                yield update
                if update.state.terminal:
                    return
        except grpc.aio.AioRpcError as exc:
            raise HumanLoopError(
                f"hitl WaitDecision: {exc.code().name}: {exc.details()}", exc.code().name
            ) from exc
        finally:
            stream.cancel()

    async def offer_callback(
        self, call: CallInfo, ticket_id: str, *, accepted: bool, number: str = ""
    ) -> None:
        message = hitl_pb2.OfferCallbackRequest(
            context=call_context(call), ticket_id=ticket_id, accepted=accepted, number=number
        )
        await self._unary("OfferCallback", message)

    async def cancel(self, call: CallInfo, ticket_id: str, reason: str) -> None:
        message = hitl_pb2.CancelRequest(
            context=call_context(call), ticket_id=ticket_id, reason=reason
        )
        await self._unary("Cancel", message)
