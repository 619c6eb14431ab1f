"""Recognizer backends behind one ABC: ``whisper`` (embedded, CPU) and ``riva`` (NVIDIA Riva).

The SDK-bound modules (``whisper``, ``riva``) are imported only by whoever builds them.
"""

from trunkline.stt.backends.base import (
    RecognizerError,
    RecognizerOptions,
    RecognizerUnavailableError,
    SpeechRecognizer,
    SttTelemetry,
)

__all__ = [
    "RecognizerError",
    "RecognizerOptions",
    "RecognizerUnavailableError",
    "SpeechRecognizer",
    "SttTelemetry",
]
