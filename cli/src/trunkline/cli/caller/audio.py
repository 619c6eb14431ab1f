"""Caller audio: WAV files -> mu-law 8 kHz, silence, and the energy test for voiced frames."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr
from numpy.typing import NDArray

from trunkline.audio import (
    MULAW_FRAME_BYTES,
    SUPPORTED_RATES,
    TELEPHONY_RATE,
    mulaw_dbfs,
    mulaw_encode,
    resample,
)

MULAW_SILENCE = b"\xff"  # mu-law code word of 0
FRAME_SECONDS = MULAW_FRAME_BYTES / TELEPHONY_RATE  # 0.02
DEFAULT_VOICE_DBFS = -45.0  # a 20 ms frame louder than this is speech, not silence


class AudioInputError(ValueError):
    """An audio input that cannot be used; the text says why."""


def _to_int16(raw: bytes, width: int) -> NDArray[np.int16]:
    if width == 1:  # 8-bit WAV is unsigned
        return ((np.frombuffer(raw, np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if width == 2:
        return np.frombuffer(raw, "<i2").astype(np.int16)
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value & 0x800000, value - 0x1000000, value)
        return (value >> 8).astype(np.int16)
    if width == 4:
        return (np.frombuffer(raw, "<i4") >> 16).astype(np.int16)
    raise AudioInputError(f"unsupported sample width {width} bytes")


def to_rate(samples: NDArray[np.int16], rate: int, out_rate: int) -> NDArray[np.int16]:
    """Resample a whole mono signal (trunkline.audio for the platform's rates, soxr otherwise)."""
    if rate == out_rate:
        return np.asarray(samples, dtype=np.int16)
    if rate in SUPPORTED_RATES and out_rate in SUPPORTED_RATES:
        return resample(samples, rate, out_rate)
    out: NDArray[np.int16] = soxr.resample(samples, rate, out_rate, quality="HQ")
    return out


def pcm16_to_mulaw8k(pcm: bytes, rate: int) -> bytes:
    """Mono PCM16 at ``rate`` -> mu-law 8 kHz."""
    return mulaw_encode(to_rate(np.frombuffer(pcm, "<i2").astype(np.int16), rate, TELEPHONY_RATE))


def read_wav_mulaw8k(path: Path) -> bytes:
    """Any PCM WAV (rate, channels, 8/16/24/32-bit) -> mono mu-law 8 kHz."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioInputError(f"{path}: not a PCM WAV file ({exc})") from None
    except OSError as exc:
        raise AudioInputError(f"{path}: {exc.strerror or exc}") from None
    samples = _to_int16(raw, width)
    if channels > 1:
        samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
        samples = samples.astype(np.int32).mean(axis=1).astype(np.int16)
    if not len(samples):
        raise AudioInputError(f"{path}: no audio")
    return mulaw_encode(to_rate(samples, rate, TELEPHONY_RATE))


def silence(ms: float) -> bytes:
    """``ms`` of mu-law silence, rounded to whole samples."""
    return MULAW_SILENCE * round(ms * TELEPHONY_RATE / 1000)


def level_dbfs(mulaw: bytes) -> float:
    """RMS level of mu-law audio in dBFS."""
    return mulaw_dbfs(mulaw)


def is_voiced(mulaw: bytes, threshold_dbfs: float = DEFAULT_VOICE_DBFS) -> bool:
    return level_dbfs(mulaw) > threshold_dbfs


def frames(mulaw: bytes) -> list[bytes]:
    """Cut into 20 ms frames; the last one padded with silence."""
    cut = [mulaw[i : i + MULAW_FRAME_BYTES] for i in range(0, len(mulaw), MULAW_FRAME_BYTES)]
    if cut and len(cut[-1]) < MULAW_FRAME_BYTES:
        cut[-1] = cut[-1].ljust(MULAW_FRAME_BYTES, MULAW_SILENCE)
    return cut


def voiced_span(mulaw: bytes, threshold_dbfs: float = DEFAULT_VOICE_DBFS) -> tuple[int, int] | None:
    """Indices of the first and last voiced 20 ms frame, or None when all of it is silence."""
    flags = [is_voiced(frame, threshold_dbfs) for frame in frames(mulaw)]
    if not any(flags):
        return None
    return flags.index(True), len(flags) - 1 - flags[::-1].index(True)
