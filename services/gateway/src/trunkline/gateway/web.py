"""The gateway's HTTP side (aiohttp): Twilio's TwiML webhook and the media-stream WebSockets.

- ``POST /twilio/voice/{tenant}/{agent}``: checks ``X-Twilio-Signature`` with the tenant's auth
  token (403 otherwise) and answers TwiML that connects the call to ``/twilio/stream`` with the
  tenant, agent and a per-call stream token as ``<Parameter>``s.
- ``GET /twilio/stream``: the Twilio media stream; the ``start`` message's custom parameters must
  carry a valid token, else the socket is closed with policy-violation (1008).
- ``GET /plivo/stream?tenant=&agent=&token=``: Plivo's stream; the token binds tenant and agent
  (Plivo's start message carries no custom parameters; the call id is not known beforehand).
- ``POST /webrtc/offer`` and ``POST /webrtc/operator``: WebRTC signalling for the browser
  softphone and the operator leg (see :mod:`trunkline.gateway.webrtc_web`).

Draining (SIGTERM, see :meth:`GatewayWeb.drain`): every new webhook and stream is refused with
503 while the live calls go on to their end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import WSCloseCode, web

from trunkline.gateway.core.clock import Clock
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.transports import twilio_protocol
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.transports.pacing import PlayoutClock
from trunkline.gateway.transports.websocket import PLIVO, TWILIO, Dialect, MediaStreamTransport
from trunkline.gateway.webrtc_web import OperatorCalls, WebRtcSignaling
from trunkline.telephony import (
    DEFAULT_ROLE,
    stream_token,
    valid_stream_token,
    valid_twilio_signature,
)

log = logging.getLogger(__name__)
MAX_WS_MESSAGE = 64 * 1024  # a 20 ms media message is ~300 bytes


@dataclass(frozen=True, slots=True)
class TenantAuth:
    twilio_auth_token: str
    stream_secret: str
    agents: frozenset[str]


CallRunner = Callable[[CallStart, Transport], Awaitable[None]]


class GatewayWeb:
    def __init__(
        self,
        tenants: Mapping[str, TenantAuth],
        run_call: CallRunner,
        *,
        clock: Clock,
        public_url: str,
        metrics: GatewayMetrics | None = None,
        operator_calls: OperatorCalls | None = None,
        join_secret: bytes | None = None,
    ) -> None:
        """``operator_calls``: the live calls (``LiveCalls``), where an operator's WebRTC leg
        finds the call whose handoff holds its ticket; ``join_secret`` checks the operator's join
        token (shared with hitl). Without either, operators cannot join by WebRTC."""
        self.tenants = tenants
        self.run_call = run_call
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.metrics = metrics
        self.calls: set[asyncio.Task[None]] = set()
        self.draining = False
        self.operator_calls = operator_calls
        self.join_secret = join_secret
        self.playout = PlayoutClock(clock)  # one 20 ms outbound clock for every media stream

    async def drain(self) -> None:
        """Take no new call from now on; return when every live call has ended."""
        self.draining = True
        log.info("draining: no new calls", extra={"live_calls": len(self.calls)})
        while self.calls:  # only shrinks: new calls are refused
            await asyncio.wait(set(self.calls))

    def _refused(self) -> web.Response | None:
        if not self.draining:
            return None
        return web.Response(status=503, text="draining: this gateway takes no new calls")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/twilio/voice/{tenant}/{agent}", self.twilio_voice)
        app.router.add_get("/twilio/stream", self.twilio_stream)
        app.router.add_get("/plivo/stream", self.plivo_stream)
        WebRtcSignaling(self, self.operator_calls, self.join_secret).add_routes(app)
        return app

    def _stream_url(self) -> str:
        base = self.public_url.replace("https://", "wss://").replace("http://", "ws://")
        return f"{base}/twilio/stream"

    async def twilio_voice(self, request: web.Request) -> web.Response:
        if (refused := self._refused()) is not None:
            return refused
        tenant, agent = request.match_info["tenant"], request.match_info["agent"]
        auth = self.tenants.get(tenant)
        if auth is None or agent not in auth.agents:
            return web.Response(status=404, text="unknown tenant or agent")
        form = {key: str(value) for key, value in (await request.post()).items()}
        url = self.public_url + request.path_qs
        if not valid_twilio_signature(
            auth.twilio_auth_token, url, form, request.headers.get("X-Twilio-Signature")
        ):
            log.warning("twilio webhook for %s refused: bad signature", tenant)
            return web.Response(status=403, text="invalid Twilio signature")
        call_sid = form.get("CallSid", "")
        if not call_sid:
            return web.Response(status=400, text="CallSid missing")
        params = {
            "tenant": tenant,
            "agent": agent,
            "token": stream_token(auth.stream_secret, tenant, agent, call_sid),
            "from": form.get("From", ""),
            "to": form.get("To", ""),
        }
        twiml = twilio_protocol.twiml_stream(self._stream_url(), params)
        return web.Response(text=twiml, content_type="application/xml")

    async def twilio_stream(self, request: web.Request) -> web.StreamResponse:
        return self._refused() or await self._stream(request, TWILIO, request.query)

    async def plivo_stream(self, request: web.Request) -> web.StreamResponse:
        return self._refused() or await self._stream(request, PLIVO, request.query)

    async def _stream(
        self, request: web.Request, dialect: Dialect, query: Mapping[str, str]
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE, heartbeat=30.0, timeout=2.0)
        await ws.prepare(request)
        transport = MediaStreamTransport(ws, dialect, self.clock, self.metrics, self.playout)
        start = await transport.wait_start()
        if start is None:
            return ws
        call = self._authorise(dialect, start.custom or dict(query), start.call_id)
        if call is None:
            log.warning("%s stream %s refused: bad or missing token", dialect.name, start.call_id)
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unauthenticated")
            return ws
        call = CallStart(
            call_id=start.call_id,
            stream_id=start.stream_id,
            tenant=call.tenant,
            agent=call.agent,
            caller=call.caller,
            callee=call.callee,
            parameters=call.parameters,
        )
        task = asyncio.current_task()
        if task is not None:
            self.calls.add(task)
        try:
            await self.run_call(call, transport)
        except Exception:  # one broken call never affects another
            log.exception("%s call %s failed", dialect.name, start.call_id)
        finally:
            if task is not None:
                self.calls.discard(task)
            await transport.close()
        return ws

    def _authorise(
        self, dialect: Dialect, params: Mapping[str, str], call_id: str
    ) -> CallStart | None:
        tenant, agent = params.get("tenant", ""), params.get("agent", "")
        token = params.get("token", "")
        auth = self.tenants.get(tenant)
        if auth is None or agent not in auth.agents:
            return None
        bound_call = call_id if dialect is TWILIO else ""
        role = params.get("caller_role") or DEFAULT_ROLE  # signed into the token when not default
        if not valid_stream_token(auth.stream_secret, tenant, agent, bound_call, token, role=role):
            return None
        return CallStart(
            call_id=call_id,
            stream_id="",
            tenant=tenant,
            agent=agent,
            caller=params.get("from", ""),
            callee=params.get("to", ""),
            parameters={k: v for k, v in params.items() if k != "token"},
        )
