# ruff: noqa: N802  (servicer methods carry the proto RPC names)
"""gRPC surface of hitl: ``trunkline.hitl.v1.HumanLoop`` (proto <-> domain only).

Every RPC calls the :class:`~trunkline.hitl.queue.TicketQueue`. Ticket errors become statuses
with the queue's message: unknown ticket NOT_FOUND, another tenant's ticket PERMISSION_DENIED,
a closed (decided, expired, ...) ticket or one another operator holds FAILED_PRECONDITION,
malformed input INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import NoReturn

import grpc
from google.protobuf.duration_pb2 import Duration

from trunkline.hitl import convert
from trunkline.hitl.core.tickets import (
    Closed,
    EscalationInfo,
    Held,
    InvalidRequest,
    NotFound,
    Ticket,
    TicketError,
    WrongState,
    WrongTenant,
    without_secrets,
)
from trunkline.hitl.queue import TicketQueue
from trunkline.hitl.store import StaleRevision
from trunkline.proto.common.v1 import handoff_pb2
from trunkline.proto.hitl.v1 import hitl_pb2, hitl_pb2_grpc
from trunkline.runtime import service_name
from trunkline.telephony.join import JoinGrant, sign_join

DEFAULT_PAGE = 100
MAX_PAGE = 1000

_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (WrongTenant, grpc.StatusCode.PERMISSION_DENIED),
    (Closed, grpc.StatusCode.FAILED_PRECONDITION),
    (Held, grpc.StatusCode.FAILED_PRECONDITION),
    (WrongState, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (StaleRevision, grpc.StatusCode.ABORTED),
]


def status_of(exc: Exception) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


class _Refused(Exception):  # noqa: N818
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def _ticket_errors() -> Iterator[None]:
    try:
        yield
    except (TicketError, StaleRevision) as exc:
        raise _Refused(status_of(exc), str(exc)) from exc


async def _abort(context: grpc.aio.ServicerContext[object, object], exc: _Refused) -> NoReturn:
    await context.abort(exc.code, str(exc))
    raise AssertionError("unreachable")  # pragma: no cover


def _seconds(value: Duration, what: str) -> float | None:
    seconds = value.ToNanoseconds() / 1e9
    if seconds < 0:
        raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, f"{what} must not be negative")
    return seconds or None


def _need(value: str, what: str) -> str:
    if not value:
        raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, f"{what} is required")
    return value


class HumanLoopService(hitl_pb2_grpc.HumanLoopServicer):
    """Escalations, approvals, claims, takeover and hand back over one ticket queue."""

    def __init__(
        self,
        queue: TicketQueue | Callable[[], TicketQueue | None],
        *,
        join_url: str = "",
        join_secret: bytes | None = None,
        join_ttl: float = 120.0,
        draining: asyncio.Event | None = None,
    ) -> None:
        """``queue``: the queue, or a getter returning None while it is still loading (RPCs
        then answer UNAVAILABLE). ``draining``: set at shutdown; open WaitDecision streams then
        end with UNAVAILABLE so the gateway follows the ticket on another replica."""
        self._get_queue = queue if callable(queue) else (lambda: queue)
        self._draining = draining or asyncio.Event()
        self._join_url = join_url
        self._join_secret = join_secret
        self._join_ttl = join_ttl

    @property
    def queue(self) -> TicketQueue:
        found = self._get_queue()
        if found is None:
            raise _Refused(
                grpc.StatusCode.UNAVAILABLE,
                "hitl is still connecting to NATS and loading its tickets; retry shortly",
            )
        return found

    # -- agent side ----------------------------------------------------------------------------

    async def Escalate(
        self, request: hitl_pb2.EscalateRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> hitl_pb2.EscalateResponse:
        try:
            _need(request.context.call_id, "context.call_id (the call to hand over)")
            expires_in = _seconds(request.timeout, "timeout")
            with _ticket_errors():
                ticket = await self.queue.escalate(
                    convert.call_of(request.context),
                    convert.escalation_of(request.escalation),
                    convert.lines_of(request.escalation.transcript),
                    expires_in=expires_in,
                    request_id=request.request_id,
                )
        except _Refused as exc:
            await _abort(context, exc)
        return hitl_pb2.EscalateResponse(ticket=convert.ticket_pb(ticket))

    async def RequestApproval(
        self,
        request: hitl_pb2.RequestApprovalRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> hitl_pb2.RequestApprovalResponse:
        try:
            _need(request.approval.tool_call.name, "approval.tool_call.name")
            expires_in = _seconds(request.timeout, "timeout")
            with _ticket_errors():
                ticket = await self.queue.request_approval(
                    convert.call_of(request.context),
                    convert.approval_of(request.approval),
                    convert.lines_of(request.approval.transcript),
                    expires_in=expires_in,
                    request_id=request.request_id,
                )
        except _Refused as exc:
            await _abort(context, exc)
        return hitl_pb2.RequestApprovalResponse(ticket=convert.ticket_pb(ticket))

    async def WaitDecision(
        self,
        request: hitl_pb2.WaitDecisionRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[hitl_pb2.WaitDecisionResponse]:
        try:
            ticket_id = _need(request.ticket_id, "ticket_id")
            with _ticket_errors():
                updates = self.queue.follow(request.context.tenant_id, ticket_id)
                async with contextlib.aclosing(updates):
                    while True:
                        ticket = await self._next_or_drain(updates)
                        if ticket is None:
                            return
                        yield hitl_pb2.WaitDecisionResponse(ticket=convert.ticket_pb(ticket))
        except _Refused as exc:
            await _abort(context, exc)

    async def _next_or_drain(self, updates: AsyncGenerator[Ticket, None]) -> Ticket | None:
        """The next update (None at the end); UNAVAILABLE once this replica drains."""
        following = asyncio.ensure_future(anext(updates, None))
        drained = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait({following, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the client goes away: the generator must be idle to be closed
            drained.cancel()
            if not following.done():
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await following
        if following.cancelled():
            raise _Refused(
                grpc.StatusCode.UNAVAILABLE,
                "hitl is shutting down; call WaitDecision again (the ticket is kept)",
            )
        return following.result()

    async def Cancel(
        self, request: hitl_pb2.CancelRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> hitl_pb2.CancelResponse:
        try:
            ticket_id = _need(request.ticket_id, "ticket_id")
            with _ticket_errors():
                ticket = await self.queue.cancel(
                    request.context.tenant_id, ticket_id, reason=request.reason
                )
        except _Refused as exc:
            await _abort(context, exc)
        return hitl_pb2.CancelResponse(ticket=convert.ticket_pb(ticket))

    async def OfferCallback(
        self,
        request: hitl_pb2.OfferCallbackRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> hitl_pb2.OfferCallbackResponse:
        try:
            ticket_id = _need(request.ticket_id, "ticket_id")
            with _ticket_errors():
                ticket = await self.queue.offer_callback(
                    request.context.tenant_id,
                    ticket_id,
                    accepted=request.accepted,
                    number=request.number,
                )
        except _Refused as exc:
            await _abort(context, exc)
        return hitl_pb2.OfferCallbackResponse(ticket=convert.ticket_pb(ticket))

    # -- operator side -------------------------------------------------------------------------

    async def ListQueue(
        self, request: hitl_pb2.ListQueueRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> hitl_pb2.ListQueueResponse:
        try:
            size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
            start = 0
            if request.page_token:
                if not request.page_token.isdigit():
                    raise _Refused(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"page_token {request.page_token!r} is not one this service issued",
                    )
                start = int(request.page_token)
            with _ticket_errors():
                tickets = await self.queue.list(
                    request.context.tenant_id,
                    kind=convert.kind_of(request.kind),
                    include_closed=request.include_closed,
                )
        except _Refused as exc:
            await _abort(context, exc)
        page = tickets[start : start + size]
        more = start + size < len(tickets)
        return hitl_pb2.ListQueueResponse(
            tickets=[convert.ticket_pb(t) for t in page],
            next_page_token=str(start + size) if more else "",
        )

    async def Claim(
        self, request: hitl_pb2.ClaimRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> hitl_pb2.ClaimResponse:
        try:
            ticket_id = _need(request.ticket_id, "ticket_id")
            with _ticket_errors():
                ticket = await self.queue.claim(
                    request.context.tenant_id, ticket_id, request.operator_id
                )
        except _Refused as exc:
            await _abort(context, exc)
        return hitl_pb2.ClaimResponse(ticket=convert.ticket_pb(without_secrets(ticket)))

    async def Decide(
        self, request: hitl_pb2.DecideRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> hitl_pb2.DecideResponse:
        try:
            ticket_id = _need(request.ticket_id, "ticket_id")
            outcomes = {
                handoff_pb2.DECISION_OUTCOME_APPROVED: "approved",
                handoff_pb2.DECISION_OUTCOME_DENIED: "denied",
            }
            if request.outcome not in outcomes:
                name = handoff_pb2.DecisionOutcome.Name(request.outcome)
                raise _Refused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"outcome must be DECISION_OUTCOME_APPROVED or _DENIED, not {name}",
                )
            with _ticket_errors():
                ticket = await self.queue.decide(
                    request.context.tenant_id,
                    ticket_id,
                    request.operator_id,
                    outcome=outcomes[request.outcome],
                    note=request.note,
                    arguments_json=request.arguments_json,
                )
        except _Refused as exc:
            await _abort(context, exc)
        return hitl_pb2.DecideResponse(ticket=convert.ticket_pb(without_secrets(ticket)))

    async def TakeOver(
        self, request: hitl_pb2.TakeOverRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> hitl_pb2.TakeOverResponse:
        tenant = request.context.tenant_id
        try:
            with _ticket_errors():
                ticket_id = request.ticket_id
                if not ticket_id:  # unprompted: a ticket for the record, accepted at once
                    call_id = _need(
                        request.context.call_id, "context.call_id (the call to take over)"
                    )
                    held = self.queue.on_the_line(tenant, call_id, request.operator_id)
                    if held is None:  # (a retry finds the first request's ticket)
                        held = await self.queue.escalate(
                            convert.call_of(request.context),
                            EscalationInfo(reason="policy", detail="taken over by an operator"),
                        )
                    ticket_id = held.ticket_id
                ticket = await self.queue.accept(tenant, ticket_id, request.operator_id)
        except _Refused as exc:
            await _abort(context, exc)
        return hitl_pb2.TakeOverResponse(
            ticket=convert.ticket_pb(ticket),
            transcript=[convert.entry_of(line) for line in ticket.transcript],
            join_url=self._join_url,
            join_token=self.join_token(ticket),
        )

    async def HandBack(
        self, request: hitl_pb2.HandBackRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> hitl_pb2.HandBackResponse:
        try:
            ticket_id = _need(request.ticket_id, "ticket_id")
            with _ticket_errors():
                ticket = await self.queue.hand_back(
                    request.context.tenant_id,
                    ticket_id,
                    request.operator_id,
                    note=request.note,
                    end_call=request.end_call,
                )
        except _Refused as exc:
            await _abort(context, exc)
        return hitl_pb2.HandBackResponse(ticket=convert.ticket_pb(without_secrets(ticket)))

    def join_token(self, ticket: Ticket) -> str:
        """The gateway's operator token for the ticket, else a short-lived one signed here
        (empty without a secret)."""
        if ticket.escalation is not None and ticket.escalation.operator_token:
            return ticket.escalation.operator_token
        if self._join_secret is None:
            return ""
        grant = JoinGrant(
            ticket.tenant_id,
            ticket.ticket_id,
            ticket.operator_id,
            int(self.queue.clock.now() + self._join_ttl),
        )
        return sign_join(self._join_secret, grant)


HUMAN_LOOP = service_name(HumanLoopService)


def register(server: grpc.aio.Server, servicer: HumanLoopService) -> None:
    hitl_pb2_grpc.add_HumanLoopServicer_to_server(servicer, server)
