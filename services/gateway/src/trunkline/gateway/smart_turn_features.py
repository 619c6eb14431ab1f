"""Whisper-style log-mel features for Smart Turn v3 (numpy only).

The same numbers as ``transformers.WhisperFeatureExtractor(chunk_length=8)`` with
``do_normalize=True``: 8 s of 16 kHz audio -> (80 mel bands, 800 frames) float32. Follows
pipecat's ``_whisper_features.py`` (BSD-2-Clause, itself derived from Hugging Face Transformers,
Apache-2.0); see ``data/NOTICE``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE = 16_000
SECONDS = 8
SAMPLES = SAMPLE_RATE * SECONDS
N_FFT = 400
HOP = 160
N_MELS = 80


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    freq = np.atleast_1d(np.asarray(freq, dtype=np.float64))
    mels = 3.0 * freq / 200.0
    high = freq >= 1000.0
    mels[high] = 15.0 + np.log(freq[high] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.atleast_1d(np.asarray(mels, dtype=np.float64))
    freq = 200.0 * mels / 3.0
    high = mels >= 15.0
    freq[high] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[high] - 15.0))
    return freq


def _mel_filters() -> np.ndarray:
    """Slaney-normalised triangular filters, shape (N_FFT // 2 + 1, N_MELS)."""
    bins = N_FFT // 2 + 1
    low, high = _hz_to_mel(np.array([0.0, SAMPLE_RATE / 2]))
    edges = _mel_to_hz(np.linspace(low, high, N_MELS + 2))
    fft_freqs = np.linspace(0, SAMPLE_RATE // 2, bins)
    width = np.diff(edges)
    slopes = edges[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / width[:-1]
    up = slopes[:, 2:] / width[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    filters *= (2.0 / (edges[2 : N_MELS + 2] - edges[:N_MELS]))[None, :]
    return filters


_WINDOW = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window
_FILTERS = _mel_filters()


def fit_window(audio: np.ndarray) -> np.ndarray:
    """The last 8 s of ``audio``, zero-padded at the start when shorter (Smart Turn's input)."""
    if audio.size >= SAMPLES:
        return audio[-SAMPLES:]
    return np.pad(audio, (SAMPLES - audio.size, 0))


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(80, 800) float32 features of exactly 8 s of 16 kHz float audio in [-1, 1]."""
    if audio.ndim != 1 or audio.size != SAMPLES:
        raise ValueError(f"need 1-D audio of {SAMPLES} samples, got shape {audio.shape}")
    x = np.asarray(audio, dtype=np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]
    power = (np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2).T
    mel = np.log10(np.maximum(1e-10, _FILTERS.T @ power))[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    out: np.ndarray = ((mel + 4.0) / 4.0).astype(np.float32)
    return out
