"""WebRTC signalling on the gateway's web app: an SDP offer in (JSON), the answer out.

- ``POST /webrtc/offer`` ``{"sdp", "type": "offer", "tenant", "agent"}``: a browser softphone
  calls an agent. The answer ``{"sdp", "type": "answer", "call_id"}`` comes back once this side's
  ICE candidates are gathered (host candidates only, no trickle); the call then runs like any
  other (``run_call``) until the browser hangs up or the connection fails.
- ``POST /webrtc/operator`` ``{"sdp", "type": "offer", "ticket_id", "token"}``: an operator's
  audio joins the live call whose handoff holds that ticket (``CallSession.attach_operator``);
  ``token`` is the join token hitl signed at TakeOver (``trunkline.telephony.join``, the secret
  shared as ``GATEWAY_JOIN_SECRET``), naming the tenant and that ticket, not expired.

Bad input gets a 400 naming the problem (not JSON, a missing field, not an offer, SDP that cannot
be applied or has no Opus audio); an unknown tenant/agent or a ticket no call waits on a 404; a
forged, expired or other ticket's join token a 403 (so does any when no join secret is set); a
draining gateway a 503. Responses carry
``Access-Control-Allow-Origin: *`` so pages served elsewhere (the console) can call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from trunkline.gateway.handoff import OperatorLeg
from trunkline.gateway.transports.base import CallStart
from trunkline.gateway.transports.webrtc import (
    BadOfferError,
    WebRtcTransport,
    answer_offer,
    check_offer,
)
from trunkline.gateway.transports.webrtc_operator import WebRtcOperatorLeg
from trunkline.telephony import verify_join

if TYPE_CHECKING:
    from trunkline.gateway.web import GatewayWeb

log = logging.getLogger(__name__)
MAX_BODY = 128 * 1024
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
}


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status, headers=CORS)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadOfferError(f"body too large ({request.content_length} bytes, at most {MAX_BODY})")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise BadOfferError(f"body too large (at most {MAX_BODY} bytes)")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadOfferError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadOfferError("body must be a JSON object")
    return data


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise BadOfferError(f"field {name!r} missing or not a non-empty string")
    return value


class OperatorTarget(Protocol):
    async def attach_operator(self, ticket_id: str, leg: OperatorLeg) -> None: ...


class OperatorCalls(Protocol):
    """The live calls, found by the ticket their handoff holds (``LiveCalls``)."""

    def by_ticket(self, tenant: str, ticket_id: str) -> OperatorTarget | None: ...


class WebRtcSignaling:
    def __init__(
        self, web_: GatewayWeb, operator_calls: OperatorCalls | None, join_secret: bytes | None
    ) -> None:
        self.web = web_
        self.operator_calls = operator_calls
        self.join_secret = join_secret

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/webrtc/offer", self.caller_offer)
        app.router.add_post("/webrtc/operator", self.operator_offer)
        app.router.add_route("OPTIONS", "/webrtc/offer", self.preflight)
        app.router.add_route("OPTIONS", "/webrtc/operator", self.preflight)

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=CORS)

    async def caller_offer(self, request: web.Request) -> web.Response:
        if self.web.draining:
            return _error(503, "draining: this gateway takes no new calls")
        try:
            data = await _body(request)
            sdp, _ = check_offer(data.get("sdp"), data.get("type"))
            tenant, agent = _field(data, "tenant"), _field(data, "agent")
        except BadOfferError as exc:
            return _error(400, str(exc))
        auth = self.web.tenants.get(tenant)
        if auth is None:
            return _error(404, f"unknown tenant {tenant!r}")
        if agent not in auth.agents:
            return _error(404, f"unknown agent {agent!r} for tenant {tenant!r}")
        transport = WebRtcTransport(self.web.clock)
        try:
            answer = await answer_offer(transport.pc, sdp, transport.track)
        except BadOfferError as exc:
            await transport.close()
            return _error(400, str(exc))
        call_id = f"webrtc-{uuid.uuid4().hex[:16]}"
        start = CallStart(
            call_id=call_id,
            stream_id=call_id,
            tenant=tenant,
            agent=agent,
            caller=request.remote or "",
            parameters={"transport": "webrtc"},
        )
        task = asyncio.create_task(self._run(start, transport))
        self.web.calls.add(task)
        task.add_done_callback(self.web.calls.discard)
        body = {"sdp": answer.sdp, "type": answer.type, "call_id": call_id}
        return web.json_response(body, headers=CORS)

    async def _run(self, start: CallStart, transport: WebRtcTransport) -> None:
        try:
            await self.web.run_call(start, transport)
        except Exception:  # one broken call never affects another
            log.exception("webrtc call %s failed", start.call_id)
        finally:
            await transport.close()

    async def operator_offer(self, request: web.Request) -> web.Response:
        try:
            data = await _body(request)
            sdp, _ = check_offer(data.get("sdp"), data.get("type"))
            ticket_id, token = _field(data, "ticket_id"), _field(data, "token")
        except BadOfferError as exc:
            return _error(400, str(exc))
        if self.join_secret is None:
            return _error(403, "operators cannot join by WebRTC: no join secret is set")
        try:
            grant = verify_join(self.join_secret, token, time.time())
        except ValueError as exc:
            log.warning("operator offer for ticket %s refused: %s", ticket_id, exc)
            return _error(403, f"invalid join token for ticket {ticket_id!r}: {exc}")
        if grant.ticket_id != ticket_id:
            return _error(
                403, f"the join token is for ticket {grant.ticket_id!r}, not {ticket_id!r}"
            )
        target = self._by_ticket(grant.tenant_id, ticket_id)
        if target is None:
            return _error(404, f"no call waits for an operator on ticket {ticket_id!r}")
        leg = WebRtcOperatorLeg(self.web.clock)
        try:
            answer = await answer_offer(leg.pc, sdp, leg.track)
        except BadOfferError as exc:
            await leg.close()
            return _error(400, str(exc))
        try:
            await target.attach_operator(ticket_id, leg)
        except (LookupError, RuntimeError) as exc:  # the handoff ended meanwhile
            await leg.close()
            return _error(404, f"no call waits for an operator on ticket {ticket_id!r}: {exc}")
        return web.json_response({"sdp": answer.sdp, "type": answer.type}, headers=CORS)

    def _by_ticket(self, tenant: str, ticket_id: str) -> OperatorTarget | None:
        return (
            None
            if self.operator_calls is None
            else self.operator_calls.by_ticket(tenant, ticket_id)
        )
