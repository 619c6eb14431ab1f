"""The browser caller for LiveKit rooms, served by the gateway's web app beside the webhook.

- ``GET /livekit/call[?tenant=&agent=]``: a page that calls an agent from the browser with
  LiveKit's own browser SDK (``livekit-client``, vendored by ``make tools``, served from
  ``/livekit/static/``): it asks for a room, joins it, publishes the microphone and plays the
  agent's track. With ``softphone_url`` it links the console's WebRTC softphone.
- ``POST /livekit/join`` ``{"tenant", "agent"}``: a new room ``<tenant>.<agent>.<id>``, a caller
  token for it (the tenant's API key, 15 minutes) and the agent sent into it at once
  (:meth:`LiveKitDispatch.dispatch`); answers ``{"url", "token", "room"}``. An unknown tenant or
  agent is 404 with the reason, a body that is not that JSON 400, a draining gateway 503.
"""

from __future__ import annotations

import datetime
import html
import json
import logging
import uuid
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from aiohttp import web

from trunkline.gateway.livekit_rooms import RoomRefusedError, parse_room

if TYPE_CHECKING:
    from trunkline.gateway.livekit_dispatch import LiveKitDispatch

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static" / "livekit"
ASSETS = {
    "call.js": STATIC / "call.js",
    "livekit-client.umd.js": STATIC / "vendor" / "livekit-client.umd.js",
}
CALLER_TTL = datetime.timedelta(minutes=15)
MAX_BODY = 4096


class LiveKitPage:
    def __init__(
        self, dispatch: LiveKitDispatch, *, public_url: str = "", softphone_url: str = ""
    ) -> None:
        self.dispatch = dispatch
        self.public_url = public_url or dispatch.url  # what the browser connects to
        self.softphone_url = softphone_url
        self._template = Template((STATIC / "call.html").read_text())

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/livekit/call", self.page)
        app.router.add_get("/livekit/static/{name}", self.asset)
        app.router.add_post("/livekit/join", self.join)

    async def page(self, request: web.Request) -> web.Response:
        link = ""
        if self.softphone_url:
            href = html.escape(self.softphone_url, quote=True)
            link = f'Or call over plain WebRTC: <a href="{href}">the softphone</a>.'
        body = self._template.substitute(
            tenant=html.escape(request.query.get("tenant", ""), quote=True),
            agent=html.escape(request.query.get("agent", ""), quote=True),
            softphone=link,
        )
        return web.Response(text=body, content_type="text/html")

    async def asset(self, request: web.Request) -> web.StreamResponse:
        path = ASSETS.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound(text=f"no asset {request.match_info['name']!r}")
        if not path.is_file():
            reason = f"{path.name} is not vendored: `make tools` fetches livekit-client from npm"
            log.warning("livekit page: %s", reason)
            raise web.HTTPNotFound(text=reason)
        return web.FileResponse(path, headers={"Content-Type": "text/javascript"})

    def _error(self, status: int, reason: str) -> web.Response:
        log.warning("livekit join refused (%d): %s", status, reason)
        return web.json_response({"error": reason}, status=status)

    async def join(self, request: web.Request) -> web.Response:
        if self.dispatch.web.draining:
            return self._error(503, "draining: this gateway takes no new calls")
        raw = await request.content.read(MAX_BODY + 1)
        try:
            body = json.loads(raw) if len(raw) <= MAX_BODY else None
        except ValueError as exc:
            return self._error(400, f"body is not JSON: {exc}")
        if not isinstance(body, dict):
            return self._error(
                400, f'body must be a JSON object {{"tenant", "agent"}} (<= {MAX_BODY} bytes)'
            )
        tenant, agent = body.get("tenant"), body.get("agent")
        if not isinstance(tenant, str) or not isinstance(agent, str) or not tenant or not agent:
            return self._error(400, '"tenant" and "agent" must be non-empty strings')
        room = f"{tenant}.{agent}.{uuid.uuid4().hex[:12]}"
        try:
            target = parse_room(room, self.dispatch.agents())
        except RoomRefusedError as exc:
            return self._error(404, str(exc))
        identity = f"caller-{uuid.uuid4().hex[:8]}"
        token = self.dispatch.caller_token(target, identity, CALLER_TTL)
        if token is None:
            return self._error(404, f"tenant {target.tenant!r} has no LiveKit API key")
        self.dispatch.dispatch(target)
        log.info("livekit room %s opened for a browser caller (%s)", room, identity)
        return web.json_response({"url": self.public_url, "token": token, "room": room})
