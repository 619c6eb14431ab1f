"""LiveKit rooms dispatched to the gateway: a webhook endpoint on its web app, one agent per room.

- ``POST /livekit/webhook``: LiveKit's webhook (``Authorization``: a JWT signed with an API key,
  carrying the body's SHA-256), checked with ``livekit-api``'s ``WebhookReceiver`` against the
  secret of the key that signed it (:mod:`trunkline.gateway.livekit_rooms`). ``room_started`` and
  ``participant_joined`` dispatch the room: the agent joins it (a token minted with the tenant's
  key) and runs the call (``run_call``) with a :class:`LiveKitTransport`. Other events are
  answered 200 and ignored. A second event for a room already served changes nothing.
- Refusals are logged with the reason and answered: 401 (no/unknown key, bad signature, body
  hash mismatch, expired), 403 (a tenant's own key dispatching another tenant's room), 404 (room
  not named ``<tenant>.<agent>.<call id>``, unknown tenant or agent), 503 (draining).
- :meth:`LiveKitDispatch.dispatch` is the same without the webhook: LiveKit's agent dispatch
  (:mod:`~trunkline.gateway.livekit_worker`, with the job's token) and the browser page's
  ``/livekit/join`` (:mod:`~trunkline.gateway.livekit_page`) use it.

Each room runs in its own task: one that fails is logged and closed; the others go on.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import jwt
from aiohttp import web
from livekit import api as livekit_api
from livekit import rtc
from livekit.protocol import models

from trunkline.gateway.livekit_rooms import (
    LiveKitKey,
    RoomRefusedError,
    RoomTarget,
    key_for_tenant,
    key_table,
    parse_room,
)
from trunkline.gateway.settings import TenantConfig
from trunkline.gateway.transports.base import CallStart
from trunkline.gateway.transports.livekit import LiveKitTransport

if TYPE_CHECKING:
    from trunkline.gateway.web import GatewayWeb

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
DISPATCH_EVENTS = frozenset({"room_started", "participant_joined"})
AGENT_IDENTITY = "trunkline-agent"


def livekit_keys(
    settings_key: str, settings_secret: str, tenants: Mapping[str, TenantConfig]
) -> dict[str, LiveKitKey]:
    """The API keys of the gateway's settings: the default pair and tenants' own."""
    return key_table(
        settings_key,
        settings_secret,
        {
            name: (cfg.livekit_api_key, cfg.livekit_api_secret.get_secret_value())
            for name, cfg in tenants.items()
        },
    )


def room_token(
    key: LiveKitKey,
    room: str,
    identity: str,
    *,
    agent: bool = False,
    ttl: datetime.timedelta = datetime.timedelta(hours=6),
) -> str:
    """A token to join ``room`` as ``identity`` (the agent's: kind ``agent``)."""
    grants = livekit_api.VideoGrants(room_join=True, room=room, agent=agent or None)
    token = livekit_api.AccessToken(key.api_key, key.api_secret).with_identity(identity)
    if agent:
        token = token.with_kind("agent").with_name("Trunkline agent")
    return token.with_grants(grants).with_ttl(ttl).to_jwt()


class LiveKitDispatch:
    def __init__(
        self,
        web_: GatewayWeb,
        url: str,
        keys: Mapping[str, LiveKitKey],
        *,
        connect_timeout_s: float = 20.0,
        max_connecting: int = 4,
        caller_timeout_s: float = 30.0,
        transport_class: type[LiveKitTransport] = LiveKitTransport,
    ) -> None:
        self.web = web_
        self.transport_class = transport_class  # (a benchmark's subclass times each hop)
        self.url = url
        self.keys = keys
        self.connect_timeout_s = connect_timeout_s
        # Rooms joining at once (a burst of callers): each SDK connect watches every FFI event
        # of the process until it completes, so many at once slow each other past the timeout.
        self._connecting = asyncio.Semaphore(max_connecting)
        self.caller_timeout_s = caller_timeout_s
        self.rooms: dict[str, asyncio.Task[None]] = {}
        self.transports: dict[str, LiveKitTransport] = {}  # live rooms' transports (tests)
        self._leaving: set[asyncio.Future[None]] = set()  # rooms whose connect came too late

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/livekit/webhook", self.webhook)

    def agents(self) -> dict[str, frozenset[str]]:
        """Tenant -> the agents it has (the rooms this gateway serves)."""
        return {tenant: auth.agents for tenant, auth in self.web.tenants.items()}

    def _refuse(self, status: int, reason: str) -> web.Response:
        log.warning("livekit webhook refused (%d): %s", status, reason)
        return web.json_response({"error": reason}, status=status)

    async def webhook(self, request: web.Request) -> web.Response:
        if self.web.draining:
            return self._refuse(503, "draining: this gateway takes no new calls")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return self._refuse(413, f"body too large (at most {MAX_BODY} bytes)")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token:
            return self._refuse(401, "no Authorization token")
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss", "")
        except jwt.PyJWTError as exc:
            return self._refuse(401, f"Authorization is not a JWT: {exc}")
        key = self.keys.get(str(issuer))
        if key is None:
            return self._refuse(401, f"unknown API key {issuer!r}")
        verifier = livekit_api.TokenVerifier(key.api_key, key.api_secret)
        try:
            event = livekit_api.WebhookReceiver(verifier).receive(raw.decode(), token)
        except Exception as exc:  # signature, expiry, hash mismatch, bad JSON
            return self._refuse(401, f"webhook not verified with key {key.api_key!r}: {exc}")
        if event.event not in DISPATCH_EVENTS:
            return web.json_response({"ignored": event.event})
        if event.event == "participant_joined" and (
            event.participant.kind == models.ParticipantInfo.Kind.AGENT
        ):
            return web.json_response({"ignored": "an agent joined"})
        try:
            target = parse_room(event.room.name, self.agents())
        except RoomRefusedError as exc:
            return self._refuse(404, str(exc))
        if target.tenant not in key.tenants:
            reason = f"API key {key.api_key!r} may not dispatch rooms of tenant {target.tenant!r}"
            return self._refuse(403, reason)
        joined = self.dispatch(target)
        return web.json_response({"room": target.room, "call_id": target.call_id, "new": joined})

    def caller_token(
        self, target: RoomTarget, identity: str, ttl: datetime.timedelta
    ) -> str | None:
        """A token for a caller to join ``target``'s room (None: the tenant has no key)."""
        key = key_for_tenant(self.keys, target.tenant)
        return None if key is None else room_token(key, target.room, identity, ttl=ttl)

    def dispatch(
        self,
        target: RoomTarget,
        *,
        token: str = "",
        url: str = "",
        done: Callable[[bool], object] | None = None,
    ) -> bool:
        """Join ``target``'s room and run its call (False: already served). ``token``/``url``:
        the ones LiveKit's agent dispatch assigned (default: a token minted with the tenant's
        key, this gateway's URL); ``done(ok)`` is called when the room's task ends."""
        if target.room in self.rooms:
            return False
        key = key_for_tenant(self.keys, target.tenant)
        if key is None:
            log.warning(
                "livekit room %s refused: tenant %s has no API key", target.room, target.tenant
            )
            return False
        token = token or room_token(key, target.room, AGENT_IDENTITY, agent=True)
        run = self._room(target, token, url or self.url, done)
        task = asyncio.create_task(run, name=f"livekit:{target.room}")
        self.rooms[target.room] = task
        self.web.calls.add(task)
        task.add_done_callback(self.web.calls.discard)
        task.add_done_callback(lambda _t: self.rooms.pop(target.room, None))
        return True

    async def _room(
        self, target: RoomTarget, token: str, url: str, done: Callable[[bool], object] | None
    ) -> None:
        ok = False
        try:
            ok = await self._run(target, token, url)
        finally:
            if done is not None:
                done(ok)

    async def _connect(
        self, room: rtc.Room, url: str, token: str, options: rtc.RoomOptions
    ) -> None:
        """``room.connect`` within ``connect_timeout_s`` (at most ``max_connecting`` rooms at a
        time; the wait for a turn is not counted), never cancelled midway: cancelling the
        SDK's connect (livekit 1.2.1) can leave its native side waiting for a signal that never
        comes, and it then aborts the whole process. A late or abandoned connect is left to
        finish and the room is left at once."""
        async with self._connecting:
            connecting = asyncio.ensure_future(room.connect(url, token, options))
            try:
                await asyncio.wait_for(asyncio.shield(connecting), self.connect_timeout_s)
            except BaseException:
                connecting.add_done_callback(lambda done: self._leave_late(room, done))
                raise

    def _leave_late(self, room: rtc.Room, connecting: asyncio.Future[None]) -> None:
        if connecting.cancelled() or connecting.exception() is not None:
            return
        leaving = asyncio.ensure_future(room.disconnect())
        self._leaving.add(leaving)
        leaving.add_done_callback(self._leaving.discard)

    async def _run(self, target: RoomTarget, token: str, url: str) -> bool:
        """The room's call; False when it failed (logged)."""
        room = rtc.Room()
        transport = self.transport_class(
            room,
            self.web.clock,
            label=target.room,
            caller_timeout_s=self.caller_timeout_s,
            playout=self.web.playout,  # one 20 ms clock task for every room and media stream
        )
        self.transports[target.room] = transport
        try:
            await self._connect(room, url, token, transport.room_options())
            await transport.start()
            log.info("livekit room %s joined (%s/%s)", target.room, target.tenant, target.agent)
            if not await transport.wait_caller():
                return True
            assert transport.caller is not None
            start = CallStart(
                call_id=target.call_id,
                stream_id=target.room,
                tenant=target.tenant,
                agent=target.agent,
                caller=transport.caller.identity,
                parameters={"transport": "livekit", "room": target.room},
            )
            await self.web.run_call(start, transport)
            return True
        except Exception:  # one broken room never affects another
            log.exception("livekit room %s failed", target.room)
            return False
        finally:
            await transport.close()
            self.transports.pop(target.room, None)
