from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.audio.fir import FirResampler, lowpass_taps

pytestmark = pytest.mark.unit


def _sine(freq: float, rate: int, seconds: float = 0.5, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize(
    ("src", "dst"), [(8000, 16000), (16000, 8000), (16000, 48000), (48000, 16000)]
)
def test_sine_keeps_frequency_and_level(src: int, dst: int) -> None:
    x = _sine(440.0, src)
    r = FirResampler(src, dst)
    y = np.concatenate([r.process(x[i : i + 160]) for i in range(0, len(x), 160)] + [r.flush()])
    assert abs(len(y) - len(x) * dst / src) <= 64
    assert abs(_peak_hz(y, dst) - 440.0) < 5
    steady = y[len(y) // 4 : 3 * len(y) // 4].astype(np.float64)
    assert np.sqrt(np.mean(steady**2)) == pytest.approx(8000 / np.sqrt(2), rel=0.03)


def test_downsampling_rejects_aliases() -> None:
    # 6 kHz at 16 kHz would alias to 2 kHz at 8 kHz without the low-pass.
    y = FirResampler(16000, 8000).process(_sine(6000.0, 16000))
    assert np.sqrt(np.mean(y[100:].astype(np.float64) ** 2)) < 8000 * 0.02


def test_delay_is_a_couple_of_milliseconds() -> None:
    r = FirResampler(8000, 16000)
    assert r.delay_samples / 16000 < 0.0025
    # output for a 20 ms input chunk comes out at once: exactly 20 ms of output
    assert len(r.process(np.zeros(160, dtype=np.int16))) == 320


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=20),
    st.sampled_from([(8000, 16000), (16000, 8000), (48000, 16000)]),
)
def test_chunking_does_not_change_the_output(sizes: list[int], rates: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-20000, 20000, size=sum(sizes), dtype=np.int16)
    whole = FirResampler(*rates)
    expected = np.concatenate([whole.process(x), whole.flush()])
    chunked = FirResampler(*rates)
    parts, start = [], 0
    for size in sizes:
        parts.append(chunked.process(x[start : start + size]))
        start += size
    parts.append(chunked.flush())
    np.testing.assert_array_equal(np.concatenate(parts), expected)


def test_pcm16_odd_bytes_wait_for_the_next_chunk() -> None:
    r = FirResampler(8000, 16000)
    pcm = _sine(300.0, 8000, 0.1).tobytes()
    out = r.process_pcm16(pcm[:101]) + r.process_pcm16(pcm[101:]) + r.flush_pcm16()
    ref = FirResampler(8000, 16000)
    assert out == ref.process_pcm16(pcm) + ref.flush_pcm16()


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="integer ratio"):
        FirResampler(16000, 22050)
    with pytest.raises(ValueError, match="odd"):
        lowpass_taps(64, 0.5)
    r = FirResampler(8000, 16000)
    r.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        r.process(np.zeros(4, dtype=np.int16))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 700), st.booleans()), min_size=1, max_size=20),
    st.sampled_from([(8000, 16000), (16000, 8000), (48000, 16000), (16000, 48000)]),
)
def test_digital_silence_skips_the_convolution_and_changes_nothing(
    chunks: list[tuple[int, bool]], rates: tuple[int, int]
) -> None:
    """Runs of exact zeros (some long enough to empty the filter, some not) are not convolved,
    yet the output is exactly that of the whole signal filtered in one go (which starts loud,
    so it never takes the shortcut), decimation phase included."""
    rng = np.random.default_rng(3)
    parts = [rng.integers(-20000, 20000, 50, dtype=np.int16)]
    for size, loud in chunks:
        parts.append(
            rng.integers(-20000, 20000, size, dtype=np.int16) if loud else np.zeros(size, np.int16)
        )
    whole = FirResampler(*rates)
    expected = np.concatenate([whole.process(np.concatenate(parts)), whole.flush()])
    chunked = FirResampler(*rates)
    out = [chunked.process(part) for part in parts] + [chunked.flush()]
    np.testing.assert_array_equal(np.concatenate(out), expected)


def test_silence_after_silence_is_not_filtered() -> None:
    resampler = FirResampler(8000, 16000)
    assert not resampler.process(np.zeros(160, np.int16)).any()
    resampler._h = np.full_like(resampler._h, np.nan)  # a convolution now would give NaN
    assert resampler.process(np.zeros(160, np.int16)).tolist() == [0] * 320
