import numpy as np
import pytest

from trunkline.stt.core import NoSpeechPolicy, rms_dbfs

pytestmark = pytest.mark.unit


def test_level_of_full_scale_sine_is_minus_three_db() -> None:
    t = np.arange(16_000, dtype=np.float32) / 16_000
    sine = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    assert rms_dbfs(sine) == pytest.approx(-3.01, abs=0.05)


def test_level_of_digital_silence_and_empty_is_the_floor() -> None:
    assert rms_dbfs(np.zeros(100, np.float32)) == -120.0
    assert rms_dbfs(np.zeros(0, np.float32)) == -120.0


def test_gate_rejects_quiet_or_too_short_audio() -> None:
    policy = NoSpeechPolicy(gate_dbfs=-50.0, min_audio_s=0.1)
    assert policy.below_gate(-60.0, 1.0)
    assert policy.below_gate(-20.0, 0.05)
    assert not policy.below_gate(-20.0, 1.0)


def test_model_verdict_needs_high_probability_and_low_confidence() -> None:
    policy = NoSpeechPolicy(prob_threshold=0.6, logprob_threshold=-1.0)
    assert policy.model_says_silence(0.9, -1.7)
    assert not policy.model_says_silence(0.9, -0.2)  # a confident transcript wins
    assert not policy.model_says_silence(0.3, -1.7)
