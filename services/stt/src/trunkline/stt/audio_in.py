"""Caller audio in a stream's wire format -> mono PCM16 at the backends' 16 kHz.

Streams use :class:`FirResampler` (under 2 ms of delay, nothing held back at an utterance's
end); whole utterances (``Recognize``) use soxr in one shot.
"""

from __future__ import annotations

from typing import Literal

from trunkline.audio import FirResampler, mulaw_to_pcm16, resample_pcm16

Encoding = Literal["pcm16", "mulaw"]
INPUT_RATES = (8000, 16000, 48000)
"""Input rates accepted: the ones with an integer ratio to the backends' 16 kHz."""
BACKEND_RATE = 16_000


def rate_problem(sample_rate: int) -> str | None:
    if sample_rate not in INPUT_RATES:
        return f"sample rate {sample_rate} Hz is not supported; supported: {INPUT_RATES}"
    return None


def input_seconds(nbytes: int, encoding: Encoding, sample_rate: int) -> float:
    """Playback length of ``nbytes`` of input audio."""
    width = 2 if encoding == "pcm16" else 1
    return nbytes / width / sample_rate


class AudioDecoder:
    """One per stream: ``push`` wire bytes of any length, get PCM16 at 16 kHz."""

    def __init__(self, encoding: Encoding, sample_rate: int) -> None:
        problem = rate_problem(sample_rate)
        if problem is not None:
            raise ValueError(problem)
        self.encoding: Encoding = encoding
        self.sample_rate = sample_rate
        self.received_bytes = 0
        self._odd = b""
        self._resampler = (
            FirResampler(sample_rate, BACKEND_RATE) if sample_rate != BACKEND_RATE else None
        )

    @property
    def received_s(self) -> float:
        return input_seconds(self.received_bytes, self.encoding, self.sample_rate)

    def push(self, data: bytes) -> bytes:
        self.received_bytes += len(data)
        if self.encoding == "mulaw":
            pcm = mulaw_to_pcm16(data)
        else:
            joined = self._odd + data
            cut = len(joined) - len(joined) % 2
            pcm, self._odd = joined[:cut], joined[cut:]
        if self._resampler is None:
            return pcm
        return self._resampler.process_pcm16(pcm)


def decode_whole(data: bytes, encoding: Encoding, sample_rate: int) -> bytes:
    """A whole utterance as PCM16 at 16 kHz (``ValueError`` on a bad rate or odd PCM16)."""
    problem = rate_problem(sample_rate)
    if problem is not None:
        raise ValueError(problem)
    if encoding == "pcm16" and len(data) % 2:
        raise ValueError(f"PCM16 audio must have an even number of bytes, got {len(data)}")
    pcm = mulaw_to_pcm16(data) if encoding == "mulaw" else data
    if sample_rate == BACKEND_RATE:
        return pcm
    return resample_pcm16(pcm, sample_rate, BACKEND_RATE)
