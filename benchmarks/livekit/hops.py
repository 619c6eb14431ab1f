"""Where a LiveKit turn's voice-to-voice time goes: the agent's transport timed at each hop.

``ProbedTransport`` is the gateway's :class:`LiveKitTransport` that also notes when each caller
frame reached the agent (and whether it was voiced), when the turn machine handed it reply audio,
and when each frame went to the agent's ``AudioSource``. :func:`turn_hops` cuts one turn, from the
caller's last voiced frame leaving its source (A) to the first voiced reply frame reaching the
caller (E), into:

- ``upstream``: A -> the agent receives the last voiced frame (B): Opus, server, jitter buffer;
- ``turn``: B -> the first reply audio handed to the transport (C): endpointing and the peers;
- ``pacer``: C -> the first voiced reply frame captured into the source (D): the 20 ms slots;
- ``downstream``: D -> E: the source's queue, Opus, server, the caller's jitter buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

import numpy as np
from livekit import rtc

from trunkline.gateway.transports.livekit import LiveKitTransport

VOICED_DBFS = -45.0


def voiced(pcm: bytes) -> bool:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
    return 20.0 * math.log10(max(rms, 1e-9) / 32768) > VOICED_DBFS


class ProbedTransport(LiveKitTransport):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.inbound: list[tuple[float, bool]] = []  # (arrival, voiced) per caller frame
        self.sent: list[float] = []  # each send_audio call
        self.captured: list[tuple[float, bool]] = []  # (time, voiced) per frame to the source

        self.jitter: dict[str, float] = {}  # the agent's jitter buffer for the caller's track
        self._stats: asyncio.Task[None] | None = None

    def _received(self, pcm: bytes, now: float) -> None:
        self.inbound.append((now, voiced(pcm)))
        if self._stats is None:
            self._stats = asyncio.ensure_future(self._poll_stats())
        super()._received(pcm, now)

    async def _poll_stats(self) -> None:
        while not self._ended:
            with contextlib.suppress(Exception):  # the track may be gone
                self.jitter = await jitter_buffer(self.caller_track) or self.jitter
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._stats is not None:
            self._stats.cancel()
        await super().close()

    async def send_audio(self, pcm: bytes) -> None:
        self.sent.append(self.clock.now())
        await super().send_audio(pcm)

    async def _capture(self, pcm: bytes) -> None:
        self.captured.append((self.clock.now(), voiced(pcm)))
        await super()._capture(pcm)


def turn_hops(said_end: float, heard_at: float, probe: ProbedTransport) -> dict[str, float]:
    """Milliseconds per hop of the turn whose last voiced caller frame left at ``said_end`` and
    whose reply was first heard at ``heard_at`` (empty when the agent's side is missing)."""
    c = next((t for t in probe.sent if t > said_end), None)
    if c is None:
        return {}
    b = max((t for t, loud in probe.inbound if loud and said_end <= t <= c), default=None)
    d = next((t for t, loud in probe.captured if loud and t >= c), None)
    if b is None or d is None:
        return {}
    return {
        "upstream_ms": round(1000 * (b - said_end), 1),
        "turn_ms": round(1000 * (c - b), 1),
        "pacer_ms": round(1000 * (d - c), 1),
        "downstream_ms": round(1000 * (heard_at - d), 1),
    }


async def jitter_buffer(track: object) -> dict[str, float]:
    """The receiving side's WebRTC jitter buffer for ``track`` (a subscribed ``RemoteAudioTrack``):
    mean and target delay (ms) over the samples it played, and the share concealed."""
    if not isinstance(track, rtc.RemoteAudioTrack):
        return {}
    for stats in await track.get_stats():
        if stats.WhichOneof("stats") != "inbound_rtp":
            continue
        inbound = stats.inbound_rtp.inbound
        emitted = inbound.jitter_buffer_emitted_count
        if emitted:
            return {
                "mean_delay_ms": round(1000 * inbound.jitter_buffer_delay / emitted, 1),
                "target_delay_ms": round(1000 * inbound.jitter_buffer_target_delay / emitted, 1),
                "minimum_delay_ms": round(1000 * inbound.jitter_buffer_minimum_delay / emitted, 1),
                "concealed_share": round(inbound.concealed_samples / emitted, 3),
                "rtp_jitter_ms": round(1000 * stats.inbound_rtp.received.jitter, 1),
            }
    return {}
