"""The operator's leg of a handed-off call over aiortc (an :class:`OperatorLeg`).

The operator's browser POSTs an offer with the ticket id and the join token the hitl service
signed at ``TakeOver`` (``trunkline.telephony.join``); the endpoint
(``trunkline.gateway.webrtc_web``) answers it and attaches the leg to the live call whose handoff
holds that ticket (``CallSession.attach_operator``).

Audio: the operator's voice comes in as internal 16 kHz mono PCM16 20 ms frames; the caller's
voice goes out on a :class:`PacedTrack` at 16 kHz (Opus encodes it at 48 kHz). The caller's audio
never blocks the call: past ``max_backlog_frames`` queued, the stale backlog is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiortc import MediaStreamTrack, RTCPeerConnection

from trunkline.audio import INTERNAL_RATE
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.handoff import OperatorLeg
from trunkline.gateway.transports.webrtc_media import PacedTrack, peer_connection, read_frames

log = logging.getLogger(__name__)


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
        self.track = PacedTrack(clock, INTERNAL_RATE, drop_late=True)
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
