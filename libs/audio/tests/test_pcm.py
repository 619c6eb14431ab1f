from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.audio import (
    SILENCE_DBFS,
    float32_to_int16,
    float32_to_pcm16,
    int16_to_float32,
    int16_to_pcm16,
    pcm16_dbfs,
    pcm16_to_float32,
    pcm16_to_int16,
    rms_dbfs,
)

pytestmark = pytest.mark.unit


def test_pcm16_is_little_endian() -> None:
    assert int16_to_pcm16(np.array([1, -2], dtype=np.int16)) == b"\x01\x00\xfe\xff"
    assert pcm16_to_int16(b"\x01\x00\xfe\xff").tolist() == [1, -2]


def test_odd_byte_count_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        pcm16_to_int16(b"\x00\x01\x02")


@given(st.binary(max_size=400).filter(lambda b: len(b) % 2 == 0))
def test_bytes_int16_bytes_is_identity(pcm: bytes) -> None:
    assert int16_to_pcm16(pcm16_to_int16(pcm)) == pcm


@given(st.binary(max_size=400).filter(lambda b: len(b) % 2 == 0))
def test_float_round_trip_is_exact(pcm: bytes) -> None:
    floats = pcm16_to_float32(pcm)
    assert np.all(np.abs(floats) <= 1.0)
    assert float32_to_pcm16(floats) == pcm


def test_float_overload_clips_instead_of_wrapping() -> None:
    out = float32_to_int16(np.array([1.5, -1.5, 1.0, -1.0], dtype=np.float32))
    assert out.tolist() == [32767, -32768, 32767, -32768]
    assert int16_to_float32(np.array([-32768], dtype=np.int16)).tolist() == [-1.0]


def test_levels_in_dbfs_of_float_and_pcm16_audio() -> None:
    t = np.arange(16_000) / 16_000
    sine = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    assert rms_dbfs(sine) == pytest.approx(-9.03, abs=0.05)  # -6 dB peak, -3 dB for a sine
    assert pcm16_dbfs(float32_to_pcm16(sine)) == pytest.approx(-9.03, abs=0.05)
    assert rms_dbfs(np.zeros(100, np.float32)) == SILENCE_DBFS
    assert rms_dbfs(np.zeros(0, np.float32)) == SILENCE_DBFS
    assert pcm16_dbfs(b"") == SILENCE_DBFS
    assert rms_dbfs(np.full(10, 1e-9, np.float32)) == SILENCE_DBFS  # floored


@given(st.binary(min_size=0, max_size=1280).filter(lambda b: len(b) % 2 == 0))
def test_pcm16_level_is_the_level_of_the_float_samples(pcm: bytes) -> None:
    """Computed without the float conversion, and exactly the same number."""
    assert pcm16_dbfs(pcm) == rms_dbfs(pcm16_to_float32(pcm))
