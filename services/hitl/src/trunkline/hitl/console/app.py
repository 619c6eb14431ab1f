"""The operator console and the browser softphone: a Starlette app served by the hitl process.

Pages (Jinja2 templates, plain JavaScript with ``EventSource`` and ``RTCPeerConnection``):

- ``/login``: operators of the operators file; the session cookie is signed.
- ``/calls``: the tenant's live calls and their state, streamed (SSE) from JetStream.
- ``/calls/{id}``: one call's live transcript, each turn with its latency waterfall (SVG).
- ``/queue``: the escalation and approval queues with their actions.
- ``/tickets/{id}``: the handoff panel (summary, transcript, context, record; talk, hand back,
  end) or the approval form (approve, approve with edited arguments, deny).
- ``/softphone``: anyone calls an agent from the browser over WebRTC.

Every POST is CSRF-checked (:mod:`trunkline.hitl.console.security`); every view reads the tenant
from the session alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from trunkline.hitl.console.board import Board, line_view, turn_view
from trunkline.hitl.console.desk import Desk, QueueUnavailableError
from trunkline.hitl.console.feed import EventFeed, valid_token
from trunkline.hitl.console.operators import OperatorBook
from trunkline.hitl.console.security import (
    ActionError,
    SessionOperator,
    Submitted,
    action,
    csrf_token,
    current_operator,
    log_in,
    log_out,
)
from trunkline.hitl.console.signaling import Signaling, SignalingError, check_offer
from trunkline.hitl.core.tickets import (
    Closed,
    Held,
    InvalidRequest,
    NotFound,
    State,
    TicketError,
    WrongState,
    WrongTenant,
)
from trunkline.proto.events.v1 import events_pb2

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "trunkline_console"
TICKET_ERRORS: dict[type[TicketError], int] = {
    InvalidRequest: 400,
    WrongTenant: 403,
    NotFound: 404,
    Closed: 409,
    Held: 409,
    WrongState: 409,
}


@dataclass(frozen=True)
class ConsoleConfig:
    session_secret: str
    https_only: bool = False
    session_max_age_s: int = 8 * 3600
    lookback: timedelta = timedelta(hours=2)
    title: str = "Trunkline console"
    livekit_call_url: str = ""  # the gateway's LiveKit caller page, offered beside the softphone


@dataclass
class Console:
    """The console's collaborators; :meth:`app` builds the ASGI app."""

    config: ConsoleConfig
    operators: OperatorBook
    feed: EventFeed
    desk: Desk | None = None
    signaling: Signaling | None = None

    def app(self) -> Starlette:
        templates = Jinja2Templates(directory=HERE / "templates")
        _filters(templates.env)
        self.templates = templates
        routes = [
            Route("/", self.home),
            Route("/healthz", self.healthz),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/calls", self.calls_page),
            Route("/calls/stream", self.calls_stream),
            Route("/calls/{call_id}", self.call_page),
            Route("/calls/{call_id}/stream", self.call_stream),
            Route("/queue", self.queue_page),
            Route("/queue/items", self.queue_items),
            Route("/queue/stream", self.queue_stream),
            Route("/tickets/{ticket_id}", self.ticket_page),
            Route("/tickets/{ticket_id}/claim", self.claim, methods=["POST"]),
            Route("/tickets/{ticket_id}/accept", self.accept, methods=["POST"]),
            Route("/tickets/{ticket_id}/decide", self.decide, methods=["POST"]),
            Route("/tickets/{ticket_id}/handback", self.hand_back, methods=["POST"]),
            Route("/tickets/{ticket_id}/talk", self.talk, methods=["POST"]),
            Route("/softphone", self.softphone_page),
            Route("/softphone/offer", self.softphone_offer, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        middleware = [
            Middleware(
                SessionMiddleware,
                secret_key=self.config.session_secret,
                session_cookie=SESSION_COOKIE,
                max_age=self.config.session_max_age_s,
                same_site="strict",
                https_only=self.config.https_only,
            )
        ]
        handlers: dict[Any, Any] = {ActionError: self._action_error, 404: self._not_found}
        return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)

    # ---- helpers ----------------------------------------------------------------------------

    def _page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.update(
            operator=current_operator(request),
            csrf_token=csrf_token(request),
            title=self.config.title,
        )
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def _wants_json(self, request: Request) -> bool:
        return "application/json" in request.headers.get("accept", "") or (
            request.headers.get("content-type", "").startswith("application/json")
        )

    async def _action_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ActionError)
        if self._wants_json(request):
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return self._page(request, "error.html", status=exc.status, message=exc.message)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        return self._page(request, "error.html", status=404, message=f"no such page: {detail}")

    def _operator(self, request: Request) -> SessionOperator | None:
        return current_operator(request)

    def _since(self) -> datetime:
        return datetime.now(UTC) - self.config.lookback

    def _desk(self) -> Desk:
        if self.desk is None:
            raise ActionError(503, "the ticket queues are not available in this process")
        return self.desk

    async def _ticket_call(self, coro: Any) -> Any:
        try:
            return await coro
        except QueueUnavailableError as exc:
            raise ActionError(503, str(exc)) from exc
        except TicketError as exc:
            status = next((s for t, s in TICKET_ERRORS.items() if isinstance(exc, t)), 400)
            raise ActionError(status, str(exc)) from exc

    # ---- pages ------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        target = "/calls" if self._operator(request) else "/login"
        return RedirectResponse(target, status_code=303)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def login_page(self, request: Request) -> Response:
        return self._page(request, "login.html", error="")

    @action(login=False)
    async def login(self, request: Request, form: Submitted) -> Response:
        name = form.text("operator", max_length=200).strip()
        password = form.text("password", max_length=1000)
        operator = self.operators.authenticate(name, password)
        if operator is None:
            return self._page(
                request, "login.html", status=401, error="unknown operator or wrong password"
            )
        log_in(request, SessionOperator(operator.id, operator.tenant, operator.display_name))
        log.info("operator %s of tenant %s logged in", operator.id, operator.tenant)
        return RedirectResponse("/calls", status_code=303)

    @action(login=False)
    async def logout(self, request: Request, form: Submitted) -> Response:
        log_out(request)
        return RedirectResponse("/login", status_code=303)

    def _require(self, request: Request) -> SessionOperator:
        operator = self._operator(request)
        if operator is None:
            raise ActionError(401, "log in first")
        return operator

    async def calls_page(self, request: Request) -> Response:
        if self._operator(request) is None:
            return RedirectResponse("/login", status_code=303)
        return self._page(request, "calls.html")

    async def calls_stream(self, request: Request) -> Response:
        operator = self._require(request)
        board = Board(operator.tenant)
        templates = self.templates

        async def events() -> AsyncIterator[ServerSentEvent]:
            async for event in self.feed.events(operator.tenant, self._since()):
                row = board.apply(event.message)
                if row is None:
                    continue
                html = templates.get_template("_call_row.html").render(row=row)
                yield ServerSentEvent(data=html, event="call", id=row.call_id)

        return EventSourceResponse(events(), ping=10)

    async def call_page(self, request: Request) -> Response:
        operator = self._operator(request)
        if operator is None:
            return RedirectResponse("/login", status_code=303)
        call_id = request.path_params["call_id"]
        if not valid_token(call_id):
            raise ActionError(400, f"{call_id!r} is not a valid call id")
        if not await self.feed.call_exists(operator.tenant, call_id):
            raise ActionError(404, f"no call {call_id!r} in tenant {operator.tenant!r}")
        return self._page(request, "call.html", call_id=call_id)

    async def call_stream(self, request: Request) -> Response:
        operator = self._require(request)
        call_id = request.path_params["call_id"]
        if not valid_token(call_id):
            raise ActionError(400, f"{call_id!r} is not a valid call id")
        board = Board(operator.tenant)
        templates = self.templates

        async def events() -> AsyncIterator[ServerSentEvent]:
            async for event in self.feed.events(operator.tenant, self._since(), call_id):
                row = board.apply(event.message)
                if row is None:
                    continue
                if isinstance(event.message, events_pb2.TurnCompleted):
                    turn = turn_view(event.message)
                    html = templates.get_template("_turn.html").render(turn=turn)
                    yield ServerSentEvent(data=html, event="turn", id=f"turn-{turn.index}")
                elif isinstance(event.message, events_pb2.HandoffLine):
                    line = line_view(event.message)
                    html = templates.get_template("_line.html").render(line=line)
                    yield ServerSentEvent(data=html, event="line", id=line.key)
                status = templates.get_template("_call_status.html").render(row=row)
                yield ServerSentEvent(data=status, event="status")

        return EventSourceResponse(events(), ping=10)

    async def queue_page(self, request: Request) -> Response:
        operator = self._operator(request)
        if operator is None:
            return RedirectResponse("/login", status_code=303)
        tickets = await self._ticket_call(self._desk().open_tickets(operator.tenant))
        return self._page(request, "queue.html", tickets=tickets)

    async def queue_items(self, request: Request) -> Response:
        operator = self._require(request)
        tickets = await self._ticket_call(self._desk().open_tickets(operator.tenant))
        return self._page(request, "_queue_items.html", tickets=tickets)

    async def queue_stream(self, request: Request) -> Response:
        """``ready`` once subscribed (the page then reloads its queue lists: a ticket made
        between the page's rendering and now is in that list, one made after it comes as an
        event), then one ``changed`` event per change of the tenant's tickets."""
        operator = self._require(request)
        desk = self._desk()

        async def events() -> AsyncIterator[ServerSentEvent]:
            async with desk.changes(operator.tenant) as changes:
                yield ServerSentEvent(data="", event="ready")
                async for kind in changes:
                    yield ServerSentEvent(data=str(kind), event="changed")

        return EventSourceResponse(events(), ping=10)

    async def ticket_page(self, request: Request) -> Response:
        operator = self._operator(request)
        if operator is None:
            return RedirectResponse("/login", status_code=303)
        ticket_id = request.path_params["ticket_id"]
        ticket = await self._ticket_call(self._desk().ticket(operator.tenant, ticket_id))
        return self._page(request, "ticket.html", ticket=ticket)

    # ---- ticket actions ---------------------------------------------------------------------

    @action()
    async def claim(self, request: Request, form: Submitted) -> Response:
        operator = self._require(request)
        ticket_id = request.path_params["ticket_id"]
        await self._ticket_call(self._desk().claim(operator.tenant, ticket_id, operator.id))
        return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)

    @action()
    async def accept(self, request: Request, form: Submitted) -> Response:
        operator = self._require(request)
        ticket_id = request.path_params["ticket_id"]
        await self._ticket_call(self._desk().take_over(operator.tenant, ticket_id, operator.id))
        return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)

    @action()
    async def decide(self, request: Request, form: Submitted) -> Response:
        operator = self._require(request)
        ticket_id = request.path_params["ticket_id"]
        outcome = form.text("outcome", max_length=20)
        if outcome not in ("approved", "denied"):
            raise ActionError(400, f"outcome must be 'approved' or 'denied', not {outcome!r}")
        arguments = form.text("arguments_json", "", max_length=20_000).strip()
        if outcome == "denied":
            arguments = ""  # the form always carries the arguments; they go only with approving
        if arguments:
            try:
                parsed = json.loads(arguments)
            except ValueError as exc:
                raise ActionError(400, f"the edited arguments are not valid JSON: {exc}") from exc
            if not isinstance(parsed, dict):
                raise ActionError(400, "the edited arguments must be a JSON object")
        await self._ticket_call(
            self._desk().decide(
                operator.tenant,
                ticket_id,
                operator.id,
                outcome,
                note=form.text("note", "", max_length=2000),
                arguments_json=arguments,
            )
        )
        return RedirectResponse("/queue", status_code=303)

    @action()
    async def hand_back(self, request: Request, form: Submitted) -> Response:
        operator = self._require(request)
        ticket_id = request.path_params["ticket_id"]
        end_call = form.text("end_call", "false", max_length=10) == "true"
        await self._ticket_call(
            self._desk().hand_back(
                operator.tenant,
                ticket_id,
                operator.id,
                note=form.text("note", "", max_length=2000),
                end_call=end_call,
            )
        )
        return RedirectResponse("/queue", status_code=303)

    @action()
    async def talk(self, request: Request, form: Submitted) -> Response:
        """The operator's browser offer for a taken-over call's audio -> the gateway's answer."""
        operator = self._require(request)
        ticket_id = request.path_params["ticket_id"]
        desk = self._desk()
        ticket = await self._ticket_call(desk.ticket(operator.tenant, ticket_id))
        if ticket.state != State.TAKEN_OVER or ticket.operator_id != operator.id:
            holder = f" by {ticket.operator_id}" if ticket.operator_id else ""
            raise ActionError(
                409, f"accept ticket {ticket_id} before talking (it is {ticket.state}{holder})"
            )
        token = desk.join_token(operator.tenant, ticket_id, operator.id)
        if not token:
            raise ActionError(503, "no join secret is configured: operators cannot join calls")
        return await self._relay(form, {"ticket_id": ticket_id, "token": token})

    async def softphone_page(self, request: Request) -> Response:
        return self._page(request, "softphone.html", livekit_call_url=self.config.livekit_call_url)

    @action(login=False)
    async def softphone_offer(self, request: Request, form: Submitted) -> Response:
        tenant = form.text("tenant", max_length=200)
        agent = form.text("agent", max_length=200)
        if not valid_token(tenant) or not valid_token(agent):
            raise ActionError(400, "tenant and agent must be plain names (no dots or spaces)")
        return await self._relay(form, {"tenant": tenant, "agent": agent})

    async def _relay(self, form: Submitted, extra: dict[str, str]) -> Response:
        if self.signaling is None:
            raise ActionError(503, "WebRTC signaling is not configured (no gateway URL)")
        try:
            sdp, kind = check_offer(form.fields.get("sdp"), form.fields.get("type"))
            answer = await self.signaling.answer({"sdp": sdp, "type": kind, **extra})
        except SignalingError as exc:
            raise ActionError(exc.status, str(exc)) from exc
        return JSONResponse(answer)


def _filters(env: Environment) -> None:
    def clock(value: object) -> str:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%H:%M:%S")
        if isinstance(value, int | float) and value:
            return datetime.fromtimestamp(float(value), UTC).strftime("%H:%M:%S")
        return ""

    env.filters["clock"] = clock
