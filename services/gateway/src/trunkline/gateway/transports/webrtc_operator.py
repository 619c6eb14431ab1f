"""The operator's leg of a handed-off call over aiortc (an :class:`OperatorLeg`), and the desk
where a call waiting for an operator meets the operator's WebRTC offer.

The operator's browser POSTs an offer with the ticket id and an operator token
(:func:`operator_token`: an HMAC over tenant, ``"operator"`` and ticket id with the tenant's
stream secret, minted by the gateway when it escalates). The handoff registers the ticket with
:meth:`OperatorDesk.expect` and awaits the leg; the endpoint answers the offer and hands the leg
over with :meth:`OperatorDesk.join`.

Audio: the operator's voice comes in as internal 16 kHz mono PCM16 20 ms frames; the caller's
voice goes out on a :class:`PacedTrack` at 16 kHz (Opus encodes it at 48 kHz). The caller's audio
never blocks the call: past ``max_backlog_frames`` queued, the stale backlog is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiortc import MediaStreamTrack, RTCPeerConnection

from trunkline.audio import INTERNAL_RATE
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.handoff import OperatorLeg
from trunkline.gateway.transports.webrtc_media import PacedTrack, peer_connection, read_frames
from trunkline.telephony import stream_token, valid_stream_token

log = logging.getLogger(__name__)


def operator_token(secret: str, tenant: str, ticket_id: str) -> str:
    """The token an operator's offer must carry for ``ticket_id`` of ``tenant``."""
    return stream_token(secret, tenant, "operator", ticket_id)


def valid_operator_token(secret: str, tenant: str, ticket_id: str, token: str) -> bool:
    return valid_stream_token(secret, tenant, "operator", ticket_id, token)


class WebRtcOperatorLeg(OperatorLeg):
    name = "webrtc-operator"

    def __init__(
        self,
        clock: Clock,
        pc: RTCPeerConnection | None = None,
        *,
        max_backlog_frames: int = 25,
    ) -> None:
        self.pc = pc or peer_connection()
        self.track = PacedTrack(clock, INTERNAL_RATE)
        self.max_backlog_frames = max_backlog_frames
        self.dropped_frames = 0
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._reader is None:
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        async for pcm in read_frames(track):
            self._frames.put_nowait(pcm)
        self._frames.put_nowait(None)  # the operator's track ended: they left

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._frames.put_nowait(None)

    async def frames(self) -> AsyncIterator[bytes]:
        while not self._closed:
            pcm = await self._frames.get()
            if pcm is None:
                return
            yield pcm

    async def send_caller_audio(self, pcm: bytes) -> None:
        if self._closed:
            return
        backlog = self.track.queued_frames
        if backlog > self.max_backlog_frames:  # the operator's side stalled: drop, never block
            self.dropped_frames += backlog
            self.track.clear()
        self.track.push(pcm)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._frames.put_nowait(None)
        self.track.stop()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.pc.close()


@dataclass(slots=True)
class _Waiting:
    tenant: str
    leg: asyncio.Future[OperatorLeg]


class OperatorDesk:
    """Calls waiting for their operator's audio, by ticket id (one process's calls)."""

    def __init__(self) -> None:
        self._waiting: dict[str, _Waiting] = {}

    def expect(self, ticket_id: str, tenant: str) -> asyncio.Future[OperatorLeg]:
        """Wait for the operator of ``ticket_id``: the future resolves with their leg. Call
        :meth:`cancel` when the call stops waiting (timeout, hang-up)."""
        old = self._waiting.pop(ticket_id, None)
        if old is not None and not old.leg.done():
            old.leg.cancel()
        future: asyncio.Future[OperatorLeg] = asyncio.get_running_loop().create_future()
        self._waiting[ticket_id] = _Waiting(tenant, future)
        return future

    def cancel(self, ticket_id: str) -> None:
        waiting = self._waiting.pop(ticket_id, None)
        if waiting is not None and not waiting.leg.done():
            waiting.leg.cancel()

    def tenant_of(self, ticket_id: str) -> str | None:
        """The tenant of a ticket whose call waits for an operator; None when none waits."""
        waiting = self._waiting.get(ticket_id)
        if waiting is None or waiting.leg.done():
            return None
        return waiting.tenant

    def join(self, ticket_id: str, leg: OperatorLeg) -> bool:
        """Hand the operator's leg to the waiting call; False when no call waits any more."""
        waiting = self._waiting.pop(ticket_id, None)
        if waiting is None or waiting.leg.done():
            return False
        waiting.leg.set_result(leg)
        return True
