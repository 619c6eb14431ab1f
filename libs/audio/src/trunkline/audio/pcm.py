"""PCM16 (signed 16-bit little-endian, mono) bytes <-> int16 / float32 arrays."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

SAMPLE_WIDTH = 2  # bytes per PCM16 sample
SILENCE_DBFS = -120.0  # the level of digital silence (and of no samples at all)


def pcm16_to_int16(pcm: bytes) -> NDArray[np.int16]:
    """PCM16 bytes -> int16 array (a copy in native byte order)."""
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16)


def int16_to_pcm16(samples: NDArray[np.int16]) -> bytes:
    """int16 array -> PCM16 bytes."""
    return np.asarray(samples, dtype=np.int16).astype("<i2").tobytes()


def int16_to_float32(samples: NDArray[np.int16]) -> NDArray[np.float32]:
    """int16 -> float32 in [-1, 1) (divide by 32768)."""
    return np.asarray(samples, dtype=np.int16).astype(np.float32) / np.float32(32768.0)


def float32_to_int16(samples: NDArray[np.floating]) -> NDArray[np.int16]:
    """float32 in [-1, 1] -> int16, rounded and clipped (no wrap-around on overload)."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def pcm16_to_float32(pcm: bytes) -> NDArray[np.float32]:
    """PCM16 bytes -> float32 in [-1, 1)."""
    return int16_to_float32(pcm16_to_int16(pcm))


def float32_to_pcm16(samples: NDArray[np.floating]) -> bytes:
    """float32 in [-1, 1] -> PCM16 bytes."""
    return int16_to_pcm16(float32_to_int16(samples))


def rms_dbfs(samples: NDArray[np.floating]) -> float:
    """Root-mean-square level of float samples in [-1, 1], in dB relative to full scale
    (``SILENCE_DBFS`` at the lowest)."""
    if samples.size == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms <= 0.0:
        return SILENCE_DBFS
    return max(20.0 * math.log10(rms), SILENCE_DBFS)


def pcm16_dbfs(pcm: bytes) -> float:
    """RMS level of PCM16 audio in dBFS (the same value as ``rms_dbfs`` of the float samples:
    the squares are integers, so their sum is exact in float64 in any order; computed without
    the float conversion, as it runs on every 20 ms frame of every call)."""
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm)}")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return SILENCE_DBFS
    mean = float(np.dot(samples, samples)) / samples.size / 1073741824.0  # 32768 ** 2
    if mean <= 0.0:
        return SILENCE_DBFS
    return max(20.0 * math.log10(math.sqrt(mean)), SILENCE_DBFS)
