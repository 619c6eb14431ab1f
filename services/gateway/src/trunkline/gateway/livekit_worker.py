"""LiveKit agent dispatch: the gateway registers with the LiveKit server as an agent worker, so a
room is also served when LiveKit sends it a job — an explicit dispatch (``livekit-api``'s
``AgentDispatchService.create_dispatch(agent_name=..., room=...)``), a caller token whose room
configuration names the agent, or a SIP dispatch rule that does — not only from webhooks.

The worker speaks LiveKit's agent protocol (``livekit.protocol.agent``: protobuf over a WebSocket
to ``<url>/agent``, authorised by a token with the ``agent`` grant): it registers once per API key
under ``agent_name`` (every gateway under the same name: LiveKit spreads jobs between them),
answers each job offer, and runs an assigned job as any dispatched room
(:meth:`LiveKitDispatch.dispatch` with the job's token), reporting success or failure back.

An offer is refused (logged with the reason) for a room not named ``<tenant>.<agent>.<call id>``,
an unknown tenant or agent, a tenant whose rooms this key may not serve, a room already served,
or a draining gateway. A lost connection is retried with a growing delay (at most 10 s); jobs
already running go on. A termination from the server ends that room's call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from urllib.parse import urlparse

import aiohttp
from livekit import api as livekit_api
from livekit.protocol import agent, models

from trunkline.gateway.livekit_dispatch import AGENT_IDENTITY, LiveKitDispatch
from trunkline.gateway.livekit_rooms import LiveKitKey, RoomRefusedError, RoomTarget, parse_room

log = logging.getLogger(__name__)
AGENT_NAME = "trunkline"
MAX_RETRY_S = 10.0


def worker_url(url: str) -> str:
    """The agent endpoint of a LiveKit URL (``ws(s)://host[/path]/agent``)."""
    parsed = urlparse(url)
    scheme = parsed.scheme.replace("http", "ws")
    return f"{scheme}://{parsed.netloc}{parsed.path.rstrip('/')}/agent"


@dataclass
class WorkerState:
    """What the worker did (logs say the same; tests read it)."""

    worker_id: str = ""
    registered: asyncio.Event = field(default_factory=asyncio.Event)
    refused: list[str] = field(default_factory=list)  # each refused offer's reason
    assigned: list[str] = field(default_factory=list)  # rooms of assigned jobs


class LiveKitWorker:
    def __init__(
        self, dispatch: LiveKitDispatch, key: LiveKitKey, *, agent_name: str = AGENT_NAME
    ) -> None:
        self.dispatch = dispatch
        self.key = key
        self.agent_name = agent_name
        self.state = WorkerState()
        self._offered: dict[str, RoomTarget] = {}  # job id -> its room, accepted, not assigned
        self._jobs: dict[str, str] = {}  # job id -> room, running
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._updates: set[asyncio.Future[None]] = set()  # job status updates being sent

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"livekit-worker:{self.key.api_key}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        """Stay registered until cancelled."""
        failures = 0
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    await self._connection(http)
                except Exception as exc:  # refused, dropped, garbled: retried, never fatal
                    # a connection that had registered starts the delays over
                    failures = 1 if self.state.registered.is_set() else failures + 1
                    log.warning("livekit worker (%s): %r", self.key.api_key, exc)
                self.state.registered.clear()
                await asyncio.sleep(min(MAX_RETRY_S, 0.5 * 2**failures))

    async def _connection(self, http: aiohttp.ClientSession) -> None:
        grant = livekit_api.VideoGrants(agent=True)
        token = livekit_api.AccessToken(self.key.api_key, self.key.api_secret)
        headers = {"Authorization": f"Bearer {token.with_grants(grant).to_jwt()}"}
        url = worker_url(self.dispatch.url)
        async with http.ws_connect(url, headers=headers, heartbeat=15.0) as ws:
            register = agent.RegisterWorkerRequest(
                type=agent.JobType.JT_ROOM,
                agent_name=self.agent_name,
                version="trunkline",
                allowed_permissions=models.ParticipantPermission(
                    can_publish=True, can_subscribe=True, can_publish_data=True, agent=True
                ),
            )
            await ws.send_bytes(agent.WorkerMessage(register=register).SerializeToString())
            first = agent.ServerMessage.FromString(await ws.receive_bytes(timeout=10))
            if not first.HasField("register"):
                raise ConnectionError(f"{url}: no register answer ({first.WhichOneof('message')})")
            self.state.worker_id = first.register.worker_id
            self.state.registered.set()
            log.info(
                "livekit worker registered as %r (%s, id %s)",
                self.agent_name,
                self.key.api_key,
                self.state.worker_id,
            )
            async for message in ws:
                if message.type != aiohttp.WSMsgType.BINARY:
                    continue
                await self._handle(ws, agent.ServerMessage.FromString(message.data))
            raise ConnectionError(f"{url}: the server closed the worker connection")

    async def _send(
        self, ws: aiohttp.ClientWebSocketResponse, message: agent.WorkerMessage
    ) -> None:
        async with self._send_lock:
            await ws.send_bytes(message.SerializeToString())

    async def _handle(
        self, ws: aiohttp.ClientWebSocketResponse, message: agent.ServerMessage
    ) -> None:
        match message.WhichOneof("message"):
            case "availability":
                await self._offer(ws, message.availability.job)
            case "assignment":
                self._assigned(ws, message.assignment)
            case "termination":
                room = self._jobs.get(message.termination.job_id)
                task = self.dispatch.rooms.get(room or "")
                log.info(
                    "livekit worker: job %s terminated by the server", message.termination.job_id
                )
                if task is not None:
                    task.cancel()
            case _:
                pass  # pong, go_away: nothing to do

    def _refusal(self, job: agent.Job) -> str | RoomTarget:
        if self.dispatch.web.draining:
            return "draining: this gateway takes no new calls"
        try:
            target = parse_room(job.room.name, self.dispatch.agents())
        except RoomRefusedError as exc:
            return str(exc)
        if target.tenant not in self.key.tenants:
            return f"API key {self.key.api_key!r} may not serve rooms of tenant {target.tenant!r}"
        if target.room in self.dispatch.rooms:
            return f"room {target.room!r} is already served"
        return target

    async def _offer(self, ws: aiohttp.ClientWebSocketResponse, job: agent.Job) -> None:
        verdict = self._refusal(job)
        answer = agent.AvailabilityResponse(job_id=job.id, available=False)
        if isinstance(verdict, str):
            self.state.refused.append(verdict)
            log.warning("livekit job %s for room %r refused: %s", job.id, job.room.name, verdict)
        else:
            self._offered[job.id] = verdict
            answer.available = True
            answer.participant_identity = AGENT_IDENTITY
            answer.participant_name = "Trunkline agent"
        await self._send(ws, agent.WorkerMessage(availability=answer))

    def _assigned(
        self, ws: aiohttp.ClientWebSocketResponse, assignment: agent.JobAssignment
    ) -> None:
        job = assignment.job
        target = self._offered.pop(job.id, None)
        if target is None:
            log.warning("livekit worker: assignment for a job never accepted (%s)", job.id)
            return

        def done(ok: bool) -> None:
            self._jobs.pop(job.id, None)
            status = agent.JobStatus.JS_SUCCESS if ok else agent.JobStatus.JS_FAILED
            update = agent.UpdateJobStatus(job_id=job.id, status=status)
            if not ws.closed:
                sent = asyncio.ensure_future(self._send(ws, agent.WorkerMessage(update_job=update)))
                self._updates.add(sent)
                sent.add_done_callback(self._updates.discard)

        if self.dispatch.dispatch(target, token=assignment.token, url=assignment.url, done=done):
            self._jobs[job.id] = target.room
            self.state.assigned.append(target.room)
            log.info(
                "livekit job %s: room %s (%s/%s)", job.id, target.room, target.tenant, target.agent
            )
