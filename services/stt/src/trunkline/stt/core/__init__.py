"""Pure speech-recognition logic: domain types, repeat cutting, no-speech decisions. No I/O."""

from trunkline.stt.core.gate import NoSpeechPolicy, apply_no_speech_threshold, rms_dbfs
from trunkline.stt.core.repeats import cut_repeats
from trunkline.stt.core.types import (
    AudioIn,
    CancelUtterance,
    EndOfUtterance,
    SttInput,
    Transcript,
)

__all__ = [
    "AudioIn",
    "CancelUtterance",
    "EndOfUtterance",
    "NoSpeechPolicy",
    "SttInput",
    "Transcript",
    "apply_no_speech_threshold",
    "cut_repeats",
    "rms_dbfs",
]
