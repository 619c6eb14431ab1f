from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.audio import (
    SILENCE_DBFS,
    int16_to_float32,
    mulaw_dbfs,
    mulaw_decode,
    mulaw_encode,
    mulaw_to_pcm16,
    pcm16_to_mulaw,
    rms_dbfs,
)

pytestmark = pytest.mark.unit

# (linear sample, G.711 mu-law code) from the ITU/Sun reference encoder
ENCODE_VECTORS = [
    (0, 0xFF),
    (1, 0xFF),
    (-1, 0x7E),
    (8, 0xFE),
    (-8, 0x7E),
    (100, 0xF2),
    (-100, 0x72),
    (1000, 0xCE),
    (-1000, 0x4E),
    (12345, 0x97),
    (-12345, 0x17),
    (31000, 0x81),
    (32767, 0x80),
    (-32768, 0x00),
]
DECODE_VECTORS = [(0x00, -32124), (0x7E, -8), (0x7F, 0), (0x80, 32124), (0xFE, 8), (0xFF, 0)]


@pytest.mark.parametrize(("sample", "code"), ENCODE_VECTORS)
def test_encode_known_vectors(sample: int, code: int) -> None:
    assert mulaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(("code", "sample"), DECODE_VECTORS)
def test_decode_known_vectors(code: int, sample: int) -> None:
    assert mulaw_decode(bytes([code])).tolist() == [sample]


def test_bit_exact_with_audioop_over_every_input() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # noqa: PLC0415 - the reference, still present on Python 3.11

    every = np.arange(-32768, 32768, dtype=np.int16)
    pcm = every.astype("<i2").tobytes()
    assert pcm16_to_mulaw(pcm) == audioop.lin2ulaw(pcm, 2)
    codes = bytes(range(256))
    assert mulaw_to_pcm16(codes) == audioop.ulaw2lin(codes, 2)


def test_every_code_word_survives_decode_encode() -> None:
    codes = bytes(c for c in range(256) if c != 0x7F)  # 0x7F is "negative zero": decodes to 0
    assert mulaw_encode(mulaw_decode(codes)) == codes


@given(st.lists(st.integers(-32768, 32767), min_size=1, max_size=200))
def test_round_trip_error_is_bounded(samples: list[int]) -> None:
    x = np.array(samples, dtype=np.int16)
    back = mulaw_decode(mulaw_encode(x)).astype(np.int64)
    expected = np.clip(x.astype(np.int64), -32124, 32124)
    assert np.all(np.abs(back - expected) <= np.abs(x.astype(np.int64)) / 32 + 8)


@given(st.binary(min_size=0, max_size=400))
def test_mulaw_level_is_the_level_of_the_decoded_samples(data: bytes) -> None:
    """The table look-up gives exactly what decoding and measuring give (squares are integers:
    the sum is exact), empty and digital silence included."""
    assert mulaw_dbfs(data) == rms_dbfs(int16_to_float32(mulaw_decode(data)))


def test_mulaw_level_of_silence_and_of_a_loud_tone() -> None:
    assert mulaw_dbfs(b"\xff" * 160) == SILENCE_DBFS
    tone = mulaw_encode((8000 * np.sin(np.arange(8000) * 0.1)).astype(np.int16))
    assert mulaw_dbfs(tone) == pytest.approx(20 * np.log10(8000 / 32768 / np.sqrt(2)), abs=0.2)
