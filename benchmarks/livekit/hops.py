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

import math

import numpy as np

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

    def _received(self, pcm: bytes, now: float) -> None:
        self.inbound.append((now, voiced(pcm)))
        super()._received(pcm, now)

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
