import math

import pytest

from trunkline.stt.core import combined_confidence, whisper_confidence

pytestmark = pytest.mark.unit


def test_whisper_confidence_is_the_mean_token_probability_times_speech() -> None:
    assert whisper_confidence(0.0, 0.0) == 1.0
    assert whisper_confidence(math.log(0.8), 0.0) == pytest.approx(0.8)
    assert whisper_confidence(math.log(0.8), 0.5) == pytest.approx(0.4)
    assert whisper_confidence(0.3, 0.0) == 1.0  # a positive score is clamped
    assert whisper_confidence(-0.2, 1.5) == 0.0


def test_whisper_confidence_falls_as_the_model_grows_unsure() -> None:
    sure = whisper_confidence(-0.1, 0.01)
    unsure = whisper_confidence(-1.5, 0.01)
    silent = whisper_confidence(-0.1, 0.9)
    assert sure > 0.85
    assert unsure < 0.3
    assert silent < 0.15


def test_finals_joined_weigh_their_confidence_by_words() -> None:
    assert combined_confidence(["hello there", "how are you"], [0.8, 0.9]) == pytest.approx(0.86)
    assert combined_confidence(["one"], [1.7]) == 1.0  # clamped to 0 .. 1
    assert combined_confidence(["", ""], [0.9, 0.9]) == 0.0
    with pytest.raises(ValueError, match="one confidence per text"):
        combined_confidence(["a"], [])
