"""Filler/apology audio, rendered once through TTS and kept; a soft tone when TTS cannot."""

from __future__ import annotations

import logging

import numpy as np

from trunkline.audio import float32_to_pcm16
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.peers.base import Synthesizer
from trunkline.gateway.peers.retry import within
from trunkline.gateway.peers.types import CallInfo

log = logging.getLogger(__name__)
RATE = 16000


def tone(seconds: float = 0.25, hz: float = 440.0, level: float = 0.1, rate: int = RATE) -> bytes:
    """Two short soft beeps at ``rate`` (used when even the filler could not be synthesised)."""
    n = int(rate * seconds)
    t = np.arange(n, dtype=np.float32) / rate
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)  # 20 ms fades: no clicks
    beep = level * envelope * np.sin(2 * np.pi * hz * t)
    gap = np.zeros(int(rate * 0.1), dtype=np.float32)
    return float32_to_pcm16(np.concatenate([beep, gap, beep]))


class FillerCache:
    """One rendering per (agent, version, text, rate), shared by every call of this process."""

    def __init__(self, clock: Clock, deadline_s: float = 3.0) -> None:
        self._clock = clock
        self._deadline_s = deadline_s
        self._cache: dict[tuple[str, str, str, int], bytes] = {}

    def cached(self, tts: Synthesizer, call: CallInfo, text: str) -> bytes | None:
        """The rendering if there is one already (never waits for TTS)."""
        return self._cache.get((call.agent, call.agent_version, text, tts.sample_rate))

    async def get(self, tts: Synthesizer, call: CallInfo, text: str) -> bytes:
        key = (call.agent, call.agent_version, text, tts.sample_rate)
        if key in self._cache:
            return self._cache[key]
        try:
            pcm = await within(self._clock, self._deadline_s, _collect(tts, call, text))
        except Exception as exc:  # TTS down at start-up: the tone keeps the caller informed
            log.warning("filler not rendered (%s); using a tone", exc)
            return tone(rate=tts.sample_rate)
        if not pcm:
            return tone(rate=tts.sample_rate)
        self._cache[key] = pcm
        return pcm


async def _collect(tts: Synthesizer, call: CallInfo, text: str) -> bytes:
    out = bytearray()
    async for chunk in tts.synthesize(call, text):
        out += chunk
    return bytes(out)
