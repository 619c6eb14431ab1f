from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from trunkline.audio import SUPPORTED_RATES, Resampler, resample, resample_pcm16

pytestmark = pytest.mark.unit


def sine(freq: float, rate: int, seconds: float = 0.5, amp: float = 10000) -> NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def peak_hz(samples: NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


PAIRS = [(a, b) for a, b in itertools.permutations(SUPPORTED_RATES, 2)]


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_resampled_sine_keeps_its_frequency(in_rate: int, out_rate: int) -> None:
    out = resample(sine(1000.0, in_rate), in_rate, out_rate)
    assert abs(len(out) - out_rate * 0.5) <= 1
    assert abs(peak_hz(out, out_rate) - 1000.0) <= 2.0


def stream(resampler: Resampler, x: NDArray[np.int16], sizes: list[int]) -> NDArray[np.int16]:
    outs, start = [], 0
    for size in itertools.cycle(sizes):
        if start >= len(x):
            break
        outs.append(resampler.process(x[start : start + size]))
        start += size
    outs.append(resampler.flush())
    return np.concatenate(outs)


@settings(max_examples=25, deadline=None)
@given(
    pair=st.sampled_from([(8000, 16000), (16000, 8000), (22050, 8000), (24000, 16000)]),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=5),
)
def test_streaming_equals_one_shot(pair: tuple[int, int], sizes: list[int]) -> None:
    in_rate, out_rate = pair
    x = sine(440.0, in_rate, seconds=0.3)
    streamed = stream(Resampler(in_rate, out_rate), x, sizes)
    whole = resample(x, in_rate, out_rate)
    assert len(streamed) == len(whole)
    assert np.max(np.abs(streamed.astype(np.int32) - whole.astype(np.int32))) <= 4


def test_no_clicks_at_20ms_chunk_boundaries() -> None:
    x = sine(440.0, 8000, seconds=1.0)
    out = stream(Resampler(8000, 16000), x, [160]).astype(np.float64)
    # a 440 Hz sine at amplitude 10000 moves at most 2*pi*440*10000/16000 per sample
    steady = out[200:-200]
    assert np.max(np.abs(np.diff(steady))) <= 2 * np.pi * 440 * 10000 / 16000 * 1.05


def test_pcm16_stream_accepts_odd_byte_chunks() -> None:
    pcm = sine(300.0, 16000, seconds=0.2).astype("<i2").tobytes()
    resampler = Resampler(16000, 8000)
    chunks = [pcm[i : i + 333] for i in range(0, len(pcm), 333)]
    streamed = b"".join(resampler.process_pcm16(c) for c in chunks) + resampler.flush_pcm16()
    whole = resample_pcm16(pcm, 16000, 8000)
    assert len(streamed) == len(whole)
    diff = np.frombuffer(streamed, "<i2").astype(int) - np.frombuffer(whole, "<i2").astype(int)
    assert np.max(np.abs(diff)) <= 4


def test_same_rate_passes_through_and_bad_rates_are_refused() -> None:
    x = sine(100.0, 16000, seconds=0.05)
    assert np.array_equal(resample(x, 16000, 16000), x)
    assert np.array_equal(Resampler(16000, 16000).process(x), x)
    with pytest.raises(ValueError, match="unsupported sample rate 44100"):
        Resampler(44100, 16000)


def test_process_after_flush_is_an_error() -> None:
    resampler = Resampler(8000, 16000)
    resampler.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        resampler.process(np.zeros(10, dtype=np.int16))
