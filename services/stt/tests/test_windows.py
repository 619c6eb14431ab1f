"""Cutting long audio into Whisper-sized windows at its quietest points."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trunkline.stt.core.windows import window_bounds

pytestmark = pytest.mark.unit

RATE = 16_000


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE), dtype=np.float32) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_short_audio_is_one_window() -> None:
    assert window_bounds(tone(3.0), RATE) == [(0, 3 * RATE)]
    assert window_bounds(np.zeros(0, np.float32), RATE) == [(0, 0)]


def test_long_audio_is_cut_in_the_pause_and_every_window_fits() -> None:
    gap = np.zeros(int(0.4 * RATE), np.float32)
    samples = np.concatenate([tone(26.0), gap, tone(20.0)])  # a pause at 26.0-26.4 s
    bounds = window_bounds(samples, RATE, max_s=29.0, search_s=5.0)
    assert len(bounds) == 2
    (s0, cut), (s1, end) = bounds
    assert (s0, s1, end) == (0, cut, samples.size)
    assert 26.0 * RATE <= cut <= 26.4 * RATE
    assert all(e - s <= 29 * RATE for s, e in bounds)


def test_without_pauses_windows_still_stay_under_the_limit() -> None:
    samples = tone(95.0)
    bounds = window_bounds(samples, RATE, max_s=29.0, search_s=5.0)
    assert bounds[0][0] == 0
    assert bounds[-1][1] == samples.size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert all(0 < e - s <= 29 * RATE for s, e in bounds)
    assert len(bounds) == 4


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="search_s"):
        window_bounds(tone(1.0), RATE, max_s=5.0, search_s=6.0)
