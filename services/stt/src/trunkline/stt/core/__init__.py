"""Pure speech-recognition logic: domain types, repeat cutting, no-speech decisions. No I/O."""

from trunkline.stt.core.confidence import combined_confidence, whisper_confidence
from trunkline.stt.core.gate import NoSpeechPolicy, apply_no_speech_threshold, rms_dbfs
from trunkline.stt.core.repeats import cut_repeats
from trunkline.stt.core.types import (
    AudioIn,
    CancelUtterance,
    EndOfUtterance,
    FlushUtterance,
    SttInput,
    Transcript,
    Vocabulary,
)
from trunkline.stt.core.vocabulary import prompt_text, vocabulary_of

__all__ = [
    "AudioIn",
    "CancelUtterance",
    "EndOfUtterance",
    "FlushUtterance",
    "NoSpeechPolicy",
    "SttInput",
    "Transcript",
    "Vocabulary",
    "apply_no_speech_threshold",
    "combined_confidence",
    "cut_repeats",
    "prompt_text",
    "rms_dbfs",
    "vocabulary_of",
    "whisper_confidence",
]
