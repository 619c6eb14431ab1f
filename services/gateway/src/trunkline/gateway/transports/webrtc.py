"""Browser WebRTC calls (aiortc): the caller's Opus audio in as internal 16 kHz frames, the
agent's audio out on a track that owns its pacing.

- Inbound: the caller's track is decoded by aiortc (Opus, 48 kHz) and resampled once to 16 kHz
  mono PCM16 frames of 20 ms (``AudioIn``).
- Outbound: reply audio comes at 48 kHz (TTS renders at ``out_rate``; Opus runs at 48 kHz, so
  nothing resamples it again) into a :class:`PacedTrack`; every 20 ms slot the track fills is a
  ``Played`` tick, so the reply goes out on the track's clock whether or not the caller sends
  anything. Marks are echoed when the frames before them have gone out; ``clear`` empties the
  track at once (barge-in).
- Gaps: a browser may send nothing while the caller is silent (Opus DTX) and packets get lost;
  once the caller's side has been mute for ``gap_s``, each outbound slot adds a silent caller
  frame, so VAD and endpointing still see the silence and the turn ends on time.
- Hang-up: the caller's track ending, or the connection failing or closing (ICE failure).

Signalling (offer in, answer out) is :func:`answer_offer`; the HTTP endpoint is in
``trunkline.gateway.webrtc_web``. Host candidates only: no STUN/TURN server is ever contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from trunkline.gateway.core.clock import Clock
from trunkline.gateway.transports.base import (
    AudioIn,
    Hangup,
    MarkEcho,
    Played,
    Transport,
    TransportEvent,
)
from trunkline.gateway.transports.webrtc_media import PacedTrack, peer_connection, read_frames

log = logging.getLogger(__name__)
OPUS_RATE = 48000
MAX_SDP = 64 * 1024
FRAME_S = 0.02
SILENT_FRAME = bytes(640)  # 20 ms of 16 kHz PCM16


class BadOfferError(ValueError):
    """An SDP offer that cannot be answered; the text says why (an HTTP 400)."""


def check_offer(sdp: object, kind: object) -> tuple[str, str]:
    """The offer's SDP and type, or ``BadOfferError`` naming what is wrong."""
    if kind != "offer":
        raise BadOfferError(f"type must be 'offer' (got {kind!r})")
    if not isinstance(sdp, str) or not sdp.strip():
        raise BadOfferError("sdp missing or not a string")
    if len(sdp) > MAX_SDP:
        raise BadOfferError(f"sdp too large ({len(sdp)} bytes, at most {MAX_SDP})")
    if not sdp.lstrip().startswith("v=0"):
        raise BadOfferError("sdp is not an SDP session description (no 'v=0' line)")
    if "m=audio" not in sdp:
        raise BadOfferError("the offer has no audio (m=audio) section")
    return sdp, kind


async def answer_offer(
    pc: RTCPeerConnection, sdp: str, track: MediaStreamTrack
) -> RTCSessionDescription:
    """Apply the offer, send ``track`` on its audio transceiver (Opus only) and return the
    answer with this side's ICE candidates in it. ``BadOfferError`` when it cannot be answered."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    except Exception as exc:  # aiortc raises ValueError/KeyError/... on malformed SDP
        raise BadOfferError(f"the offer could not be applied: {exc}") from None
    audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
    if not audio:
        raise BadOfferError("the offer has no audio transceiver")
    capabilities = RTCRtpSender.getCapabilities("audio")
    opus = [c for c in capabilities.codecs if c.mimeType.lower() == "audio/opus"]
    audio[0].setCodecPreferences(opus)
    pc.addTrack(track)
    try:
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
    except Exception as exc:
        reason = f"no answer to the offer (an Opus audio offer is needed): {exc}"
        raise BadOfferError(reason) from None
    local = pc.localDescription
    assert local is not None
    return local


class WebRtcTransport(Transport):
    """One browser call. Create it, :func:`answer_offer` with its ``track``, then run a session."""

    name = "webrtc"
    out_rate = OPUS_RATE

    def __init__(
        self, clock: Clock, pc: RTCPeerConnection | None = None, *, gap_s: float = 0.1
    ) -> None:
        self.clock = clock
        self.gap_s = gap_s
        self.filled_frames = 0  # silent caller frames added for gaps in the caller's audio
        self._heard_until: float | None = None  # the caller's audio is accounted for up to here
        self.pc = pc or peer_connection()
        self._events: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self.track = PacedTrack(
            clock, self.out_rate, on_played=self._played, on_mark=self._mark_echo
        )
        self._reader: asyncio.Task[None] | None = None
        self._ended = False
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _played(self) -> None:
        if self._ended:
            return
        self._events.put_nowait(Played(1))
        now = self.clock.now()
        if self._heard_until is not None and now - self._heard_until > self.gap_s:
            self._heard_until += FRAME_S
            self.filled_frames += 1
            self._events.put_nowait(AudioIn(SILENT_FRAME, now))

    def _mark_echo(self, name: str) -> None:
        self._events.put_nowait(MarkEcho(name))

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._reader is None:
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        async for pcm in read_frames(track):
            now = self.clock.now()
            self._heard_until = now
            self._events.put_nowait(AudioIn(pcm, now))
        self.hang_up("the caller's audio track ended")

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            self.hang_up(f"connection {state}")

    def hang_up(self, reason: str) -> None:
        if not self._ended:
            self._ended = True
            log.info("webrtc call: %s", reason)
            self._events.put_nowait(Hangup(reason))

    async def events(self) -> AsyncIterator[TransportEvent]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, Hangup):
                return

    async def send_audio(self, pcm: bytes) -> None:
        self.track.push(pcm)

    async def send_mark(self, name: str) -> None:
        self.track.mark(name)

    async def clear(self) -> None:
        self.track.clear()

    async def close(self) -> None:
        self.hang_up("closed by the gateway")
        self.track.stop()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.pc.close()
