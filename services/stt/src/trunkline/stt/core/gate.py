"""No-speech decisions: an energy gate before the model and the model's own verdict after it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from trunkline.audio import rms_dbfs
from trunkline.stt.core.types import Transcript

__all__ = ["NoSpeechPolicy", "apply_no_speech_threshold", "rms_dbfs"]


@dataclass(frozen=True, slots=True)
class NoSpeechPolicy:
    """When an utterance counts as holding no speech.

    ``gate_dbfs``: below this level the model is not even run. After decoding, Whisper's own
    rule: no-speech probability above ``prob_threshold`` while the average token log
    probability is below ``logprob_threshold`` (a confident transcript wins over the flag).
    """

    gate_dbfs: float = -50.0
    prob_threshold: float = 0.6
    logprob_threshold: float = -1.0
    min_audio_s: float = 0.1

    def below_gate(self, level_dbfs: float, audio_s: float) -> bool:
        return audio_s < self.min_audio_s or level_dbfs < self.gate_dbfs

    def model_says_silence(self, no_speech_prob: float, avg_logprob: float) -> bool:
        return no_speech_prob > self.prob_threshold and avg_logprob < self.logprob_threshold


def apply_no_speech_threshold(result: Transcript, threshold: float) -> Transcript:
    """A stream's own no-speech rule on top of the backend's (partials pass): a final whose
    no-speech probability is above ``threshold`` counts as no speech and loses its text
    (``threshold`` 0: the backend's verdict alone). Such finals are still sent, so a client
    that ended an utterance always hears back about it."""
    if not result.is_final or result.no_speech or not 0 < threshold < result.no_speech_prob:
        return result
    return replace(result, text="", no_speech=True, confidence=0.0)
