"""gRPC surface of the gateway: ``trunkline.gateway.v1.GatewayAdmin`` (proto <-> domain only).

``ListCalls``, ``GetCall`` and ``HangUp`` read and act on this replica's live sessions;
``Transfer`` redirects a Twilio call to a phone number or SIP URI (``<Dial>`` TwiML through
:class:`~trunkline.gateway.transfer.CallControl`); the session then ends as transferred. An
operator target goes through the hitl escalation instead (FAILED_PRECONDITION here).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from trunkline.gateway.calls import LiveCalls
from trunkline.gateway.core.events import State
from trunkline.gateway.peers.grpc_common import call_context
from trunkline.gateway.records import TurnRecord
from trunkline.gateway.session import CallSession
from trunkline.gateway.sink import STAGE_NAMES, TRANSPORTS, duration
from trunkline.gateway.transfer import CallControl, TransferError, dial_twiml
from trunkline.proto.common.v1 import call_pb2, timing_pb2, usage_pb2
from trunkline.proto.gateway.v1 import admin_pb2, admin_pb2_grpc
from trunkline.runtime import service_name

TRANSFER_SAY = "Please hold while I transfer your call."
DEFAULT_PAGE = 100
STATES = {
    State.LISTENING: admin_pb2.CALL_STATE_LISTENING,
    State.THINKING: admin_pb2.CALL_STATE_THINKING,
    State.SPEAKING: admin_pb2.CALL_STATE_SPEAKING,
    State.HANDED_OFF: admin_pb2.CALL_STATE_HANDED_OFF,
}
Context = grpc.aio.ServicerContext[Any, Any]


def call_summary(session: CallSession) -> admin_pb2.CallSummary:
    started = Timestamp()
    started.FromDatetime(session.started_at)
    return admin_pb2.CallSummary(
        context=call_context(session.call),
        transport=TRANSPORTS.get(session.transport.name, call_pb2.TRANSPORT_UNSPECIFIED),
        state=STATES[session.machine.state],
        started_at=started,
        turn_count=len(session.turns),
        dialed=session.call.dialed,
    )


def turn(index: int, record: TurnRecord) -> admin_pb2.Turn:
    message = admin_pb2.Turn(
        turn_index=index,
        caller_text=record.user_text,
        agent_text=record.agent_text,
        truncated=record.interrupted,
        cache_hit=record.cached,
        stages=[
            timing_pb2.StageTiming(stage=STAGE_NAMES.get(name, name), duration=duration(value))
            for name, value in record.stage_s.items()
        ],
        tool_names=[tool.name for tool in record.tool_calls],
    )
    if record.voice_to_voice_s is not None:
        message.response_time.CopyFrom(duration(record.voice_to_voice_s))
    return message


def call_detail(session: CallSession) -> admin_pb2.Call:
    turns = session.turns
    usage = usage_pb2.Usage(
        input_tokens=sum(t.prompt_tokens for t in turns),
        output_tokens=sum(t.completion_tokens for t in turns),
        audio_in_seconds=sum(t.caller_audio_s for t in turns),
        audio_out_seconds=sum(t.tts_audio_s for t in turns),
    )
    return admin_pb2.Call(
        summary=call_summary(session),
        turns=[turn(i, r) for i, r in enumerate(turns)],
        usage=usage,
    )


class GatewayAdminService(admin_pb2_grpc.GatewayAdminServicer):
    """Operations on this replica's live calls (tenant-scoped: a call is found only under its
    own tenant)."""

    def __init__(self, calls: LiveCalls, control: CallControl | None = None) -> None:
        """``control``: the telephony provider's call control (None: Transfer is refused)."""
        self.calls = calls
        self.control = control

    async def Transfer(  # noqa: N802 - grpc method name
        self, request: admin_pb2.TransferRequest, context: Context
    ) -> admin_pb2.TransferResponse:
        session = await self._find(request.context, context)
        target = request.WhichOneof("target")
        if target == "operator_id":
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "an operator joins a call through the hitl escalation (the call stays on this "
                "gateway), not by Transfer",
            )
        if target is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "give a phone_number or a sip_uri to dial"
            )
        if session.transport.name != "twilio":
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"only Twilio calls can be transferred; call {session.call.call_id!r} is on "
                f"{session.transport.name!r}",
            )
        if self.control is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "this gateway has no telephony call control"
            )
        assert self.control is not None
        where = request.phone_number or request.sip_uri
        try:
            twiml = dial_twiml(
                number=request.phone_number, sip_uri=request.sip_uri, say=TRANSFER_SAY
            )
            await self.control.redirect(session.call.tenant, session.call.call_id, twiml)
        except TransferError as exc:
            code = (
                grpc.StatusCode.UNAVAILABLE
                if exc.retryable
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            if "E.164" in str(exc) or "SIP URI" in str(exc):
                code = grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, str(exc))
        why = f" ({request.reason})" if request.reason else ""
        session.hang_up(f"transferred to {where}{why}")  # Twilio now runs the <Dial>
        summary = call_summary(session)
        summary.state = admin_pb2.CALL_STATE_HANDED_OFF
        return admin_pb2.TransferResponse(call=summary)

    async def ListCalls(  # noqa: N802 - grpc method name
        self, request: admin_pb2.ListCallsRequest, context: Context
    ) -> admin_pb2.ListCallsResponse:
        sessions = [
            s
            for s in self.calls.of_tenant(request.context.tenant_id)
            if request.state in (admin_pb2.CALL_STATE_UNSPECIFIED, STATES[s.machine.state])
        ]
        try:
            offset = int(request.page_token or "0")
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token")
        size = request.page_size or DEFAULT_PAGE
        page = sessions[offset : offset + size]
        more = offset + size < len(sessions)
        return admin_pb2.ListCallsResponse(
            calls=[call_summary(s) for s in page],
            next_page_token=str(offset + size) if more else "",
        )

    async def GetCall(  # noqa: N802 - grpc method name
        self, request: admin_pb2.GetCallRequest, context: Context
    ) -> admin_pb2.GetCallResponse:
        session = await self._find(request.context, context)
        return admin_pb2.GetCallResponse(call=call_detail(session))

    async def HangUp(  # noqa: N802 - grpc method name
        self, request: admin_pb2.HangUpRequest, context: Context
    ) -> admin_pb2.HangUpResponse:
        session = await self._find(request.context, context)
        session.hang_up(request.reason or "operator")
        summary = call_summary(session)
        summary.state = admin_pb2.CALL_STATE_ENDED
        return admin_pb2.HangUpResponse(call=summary)

    async def _find(self, call: call_pb2.CallContext, context: Context) -> CallSession:
        session = self.calls.get(call.tenant_id, call.call_id)
        if session is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no live call {call.call_id!r} of tenant {call.tenant_id!r} on this gateway",
            )
        return session


GATEWAY_ADMIN = service_name(GatewayAdminService)


def register(server: grpc.aio.Server, servicer: GatewayAdminService) -> None:
    admin_pb2_grpc.add_GatewayAdminServicer_to_server(servicer, server)
