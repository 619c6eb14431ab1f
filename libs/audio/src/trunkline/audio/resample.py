"""Resampling between the rates the platform meets (8k, 16k, 22.05k, 24k, 48k), via soxr.

``resample`` converts a whole signal; ``Resampler`` converts a stream chunk by chunk with state
kept between chunks, so the concatenated output equals the one-shot result (within a couple of
LSB) and has no clicks at chunk boundaries. soxr buffers internally: with ``quality="HQ"`` output
arrives in bursts about 100 ms behind the input (``"QQ"``, cubic, has almost no delay but does
not filter aliases).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import soxr
from numpy.typing import NDArray

from trunkline.audio.pcm import SAMPLE_WIDTH, int16_to_pcm16, pcm16_to_int16

SUPPORTED_RATES = (8000, 16000, 22050, 24000, 48000)

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]


def _check_rate(rate: int) -> None:
    if rate not in SUPPORTED_RATES:
        raise ValueError(f"unsupported sample rate {rate} Hz; supported: {SUPPORTED_RATES}")


def resample(
    samples: NDArray[np.int16], in_rate: int, out_rate: int, quality: Quality = "HQ"
) -> NDArray[np.int16]:
    """Resample a whole int16 signal from ``in_rate`` to ``out_rate``."""
    _check_rate(in_rate)
    _check_rate(out_rate)
    data = np.asarray(samples, dtype=np.int16)
    if in_rate == out_rate:
        return data.copy()
    out: NDArray[np.int16] = soxr.resample(data, in_rate, out_rate, quality=quality)
    return out


def resample_pcm16(pcm: bytes, in_rate: int, out_rate: int, quality: Quality = "HQ") -> bytes:
    """Resample whole PCM16 bytes."""
    return int16_to_pcm16(resample(pcm16_to_int16(pcm), in_rate, out_rate, quality))


class Resampler:
    """Streaming int16 resampler: feed chunks with ``process``, end with ``flush``."""

    def __init__(self, in_rate: int, out_rate: int, quality: Quality = "HQ") -> None:
        _check_rate(in_rate)
        _check_rate(out_rate)
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = (
            soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
            if in_rate != out_rate
            else None
        )
        self._odd = b""  # a trailing half sample from process_pcm16
        self._flushed = False

    def process(self, samples: NDArray[np.int16]) -> NDArray[np.int16]:
        """Resample one chunk; soxr may hold samples back until later chunks or ``flush``."""
        if self._flushed:
            raise RuntimeError("Resampler already flushed; create a new one for a new stream")
        data = np.ascontiguousarray(samples, dtype=np.int16)
        if self._stream is None:
            return data.copy()
        out: NDArray[np.int16] = self._stream.resample_chunk(data)
        return out

    def flush(self) -> NDArray[np.int16]:
        """Return what soxr still holds; the resampler cannot be used afterwards."""
        if self._flushed:
            return np.zeros(0, dtype=np.int16)
        self._flushed = True
        self._odd = b""
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        out: NDArray[np.int16] = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        return out

    def process_pcm16(self, pcm: bytes) -> bytes:
        """Resample PCM16 bytes of any length (an odd trailing byte waits for the next chunk)."""
        data = self._odd + pcm
        cut = len(data) - len(data) % SAMPLE_WIDTH
        self._odd = data[cut:]
        return int16_to_pcm16(self.process(pcm16_to_int16(data[:cut])))

    def flush_pcm16(self) -> bytes:
        """Flush as PCM16 bytes (a dangling half sample is dropped)."""
        return int16_to_pcm16(self.flush())
