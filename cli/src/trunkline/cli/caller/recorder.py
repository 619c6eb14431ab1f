"""The call on a real timeline: caller audio where it was sent, agent audio where it was played.

Both tracks are kept as 8 kHz int16 from the stream start, with silence wherever nothing was
sent or played; written out as 16 kHz PCM16 WAV (agent alone, or both sides in stereo).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from trunkline.audio import INTERNAL_RATE, TELEPHONY_RATE, mulaw_decode, resample


class _Track:
    """Samples from the stream start. The buffer grows by doubling (a 20 ms frame is written
    in place, never a copy of the whole call so far: at 50 calls that copying was most of the
    simulated callers' CPU); past ``samples`` it is all zeros."""

    def __init__(self) -> None:
        self._buffer = np.zeros(8 * TELEPHONY_RATE, dtype=np.int16)
        self._length = 0

    @property
    def samples(self) -> NDArray[np.int16]:
        return self._buffer[: self._length]

    def put(self, at: int, data: NDArray[np.int16]) -> None:
        at = max(at, 0)
        end = at + len(data)
        if end > len(self._buffer):
            grown = np.zeros(max(end, 2 * len(self._buffer)), dtype=np.int16)
            grown[: self._length] = self._buffer[: self._length]
            self._buffer = grown
        self._buffer[at:end] = data
        self._length = max(self._length, end)

    def cut(self, at: int) -> None:
        self._buffer[max(at, 0) : self._length] = 0

    def padded(self, length: int) -> NDArray[np.int16]:
        out = np.zeros(length, dtype=np.int16)
        n = min(length, len(self.samples))
        out[:n] = self.samples[:n]
        return out


class CallRecorder:
    """Times are seconds on the caller's monotonic clock; ``t0`` is the stream start."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.caller = _Track()
        self.agent = _Track()
        self.end: float = t0

    def _sample(self, t: float) -> int:
        return round((t - self.t0) * TELEPHONY_RATE)

    def caller_frame(self, sample: int, mulaw: bytes) -> None:
        """Caller audio sent at stream sample ``sample`` (exact, from the pacing grid)."""
        self.caller.put(sample, mulaw_decode(mulaw))

    def agent_played(self, t: float, mulaw: bytes) -> None:
        """Agent audio whose playback started at ``t``."""
        self.agent.put(self._sample(t), mulaw_decode(mulaw))

    def agent_cut(self, t: float) -> None:
        """Playback stopped at ``t`` (a clear): nothing after it was heard."""
        self.agent.cut(self._sample(t))

    def finish(self, t: float) -> None:
        self.end = max(self.end, t)

    @property
    def length(self) -> int:
        return max(self._sample(self.end), len(self.caller.samples))

    def agent_16k(self) -> NDArray[np.int16]:
        return resample(self.agent.padded(self.length), TELEPHONY_RATE, INTERNAL_RATE)

    def caller_16k(self) -> NDArray[np.int16]:
        return resample(self.caller.padded(self.length), TELEPHONY_RATE, INTERNAL_RATE)

    def write_agent(self, path: Path) -> None:
        """The agent as the caller heard it: 16 kHz mono PCM16, silence where nothing played."""
        write_wav(path, self.agent_16k(), channels=1)

    def write_call(self, path: Path) -> None:
        """Both sides, 16 kHz stereo PCM16: caller left, agent right."""
        caller, agent = self.caller_16k(), self.agent_16k()
        n = min(len(caller), len(agent))
        write_wav(path, np.stack([caller[:n], agent[:n]], axis=1).reshape(-1), channels=2)


def write_wav(path: Path, samples: NDArray[np.int16], channels: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(INTERNAL_RATE)
        wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())
