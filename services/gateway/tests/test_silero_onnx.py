from __future__ import annotations

import numpy as np
import pytest

from trunkline.gateway.vad import SileroDetector, SileroModel

pytestmark = pytest.mark.integration

FRAME = 320  # 20 ms at 16 kHz


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def _frames(samples: np.ndarray) -> list[bytes]:
    pcm = samples.astype("<i2").tobytes()
    return [pcm[i : i + FRAME * 2] for i in range(0, len(pcm) - FRAME * 2 + 1, FRAME * 2)]


def _voice_like(seconds: float) -> np.ndarray:
    """A glottal-pulse train through vowel-like formants: Silero hears it as speech."""
    rate = 16000
    t = np.arange(int(rate * seconds)) / rate
    f0 = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    source = np.sign(np.sin(phase)) * 0.5 + 0.5 * np.sin(phase)
    out = np.zeros_like(t)
    for formant, gain in ((700, 1.0), (1200, 0.6), (2600, 0.3)):
        out += gain * np.sin(2 * np.pi * formant * t) * (0.6 + 0.4 * source)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return np.asarray(out * envelope / np.max(np.abs(out)) * 9000, dtype=np.float64)


def test_silence_scores_low(model: SileroModel) -> None:
    detector = SileroDetector(model)
    probs = [detector.probability(f) for f in _frames(np.zeros(16000))]
    assert max(probs) < 0.1


def test_state_is_per_detector_and_reset_forgets(model: SileroModel) -> None:
    loud = _frames(_voice_like(1.0))
    a, b = SileroDetector(model, phases=1), SileroDetector(model, phases=1)
    first = [a.probability(f) for f in loud]
    # b has seen nothing yet: its first window must score like a's first window did
    assert b.probability(loud[0]) == 0.0  # 20 ms < one 32 ms window: nothing scored yet
    second = [b.probability(f) for f in loud[1:]]
    assert second == pytest.approx(first[1:], abs=1e-5)
    a.reset()
    again = [a.probability(f) for f in loud]
    assert again == pytest.approx(first, abs=1e-5)


def test_scores_one_window_per_512_samples(model: SileroModel) -> None:
    detector = SileroDetector(model, phases=1)
    frames = _frames(_voice_like(0.2))
    values = [detector.probability(f) for f in frames]
    # windows complete at 512, 1024, 1536, 2048, 2560, 3072 samples: frame indexes 1, 3, 4, 6, 7, 9
    changed = [i for i in range(1, len(values)) if values[i] != values[i - 1]]
    assert changed
    assert set(changed) <= {1, 3, 4, 6, 7, 9}


def test_two_phases_take_the_higher_of_two_offset_window_streams(model: SileroModel) -> None:
    """Phase 2 scores the stream as if it had started 256 samples (half a window) later."""
    frames = _frames(np.concatenate([np.zeros(4000), _voice_like(0.6)]))
    early = SileroDetector(model, phases=1)
    late = SileroDetector(model, phases=1)
    late.probability(bytes(512))  # 256 samples of silence ahead: its windows fall later
    first = [early.probability(f) for f in frames]
    second = [late.probability(f) for f in frames]
    assert max(abs(a - b) for a, b in zip(first, second, strict=True)) > 0.05  # they differ
    both = SileroDetector(model, phases=2)
    expected = [max(a, b) for a, b in zip(first, second, strict=True)]
    assert [both.probability(f) for f in frames] == pytest.approx(expected, abs=1e-6)
    both.reset()
    assert [both.probability(f) for f in frames] == pytest.approx(expected, abs=1e-6)


def test_phases_must_be_sensible(model: SileroModel) -> None:
    with pytest.raises(ValueError, match="phases"):
        SileroDetector(model, phases=0)
