"""How sure a recognizer is of a final transcript, as one number in 0 .. 1."""

from __future__ import annotations

import math
from collections.abc import Sequence


def whisper_confidence(avg_logprob: float, no_speech_prob: float) -> float:
    """Whisper's confidence: the geometric mean of its tokens' probabilities
    (``exp(avg_logprob)``), lowered by the chance the audio held no speech at all."""
    token_p = math.exp(min(avg_logprob, 0.0))
    speech_p = 1.0 - min(max(no_speech_prob, 0.0), 1.0)
    return token_p * speech_p


def combined_confidence(texts: Sequence[str], confidences: Sequence[float]) -> float:
    """One confidence for finals joined into one transcript (Riva ends an utterance in
    several): their confidences weighed by word count, each clamped to 0 .. 1."""
    if len(texts) != len(confidences):
        raise ValueError("one confidence per text")
    weights = [len(text.split()) for text in texts]
    total = sum(weights)
    if total == 0:
        return 0.0
    clamped = [min(max(c, 0.0), 1.0) for c in confidences]
    return sum(w * c for w, c in zip(weights, clamped, strict=True)) / total
