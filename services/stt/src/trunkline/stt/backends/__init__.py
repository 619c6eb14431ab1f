"""Recognizer backends behind one ABC: ``whisper`` (embedded, CPU) and ``riva`` (NVIDIA Riva).

The SDK-bound modules (``whisper``, ``riva``) are imported only by whoever builds them.
"""

from trunkline.stt.backends.base import (
    RecognizerError,
    RecognizerOptions,
    RecognizerUnavailable,
    SpeechRecognizer,
    SttTelemetry,
)

__all__ = [
    "RecognizerError",
    "RecognizerOptions",
    "RecognizerUnavailable",
    "SpeechRecognizer",
    "SttTelemetry",
]
