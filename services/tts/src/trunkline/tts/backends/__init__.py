"""Synthesizer backends behind one ABC: ``piper`` (embedded, CPU) and ``riva`` (NVIDIA Riva).

The SDK-bound modules (``piper``, ``riva``) are imported only by whoever builds them.
"""

from trunkline.tts.backends.base import (
    NativeAudio,
    StreamSettings,
    SynthesisOptions,
    Synthesizer,
    SynthesizerError,
    SynthesizerUnavailableError,
    TtsTelemetry,
)

__all__ = [
    "NativeAudio",
    "StreamSettings",
    "SynthesisOptions",
    "Synthesizer",
    "SynthesizerError",
    "SynthesizerUnavailableError",
    "TtsTelemetry",
]
