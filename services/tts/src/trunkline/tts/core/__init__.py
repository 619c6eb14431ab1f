"""Pure speech-synthesis logic: domain events, clause splitting, chunking. No I/O."""

from trunkline.tts.core.chunking import chunk_samples
from trunkline.tts.core.clauses import ClauseSplitter, split_clauses
from trunkline.tts.core.types import (
    Cancel,
    Cancelled,
    Clause,
    ClauseDone,
    SpeechChunk,
    TtsInput,
    TtsOutput,
    VoiceInfo,
)

__all__ = [
    "Cancel",
    "Cancelled",
    "Clause",
    "ClauseDone",
    "ClauseSplitter",
    "SpeechChunk",
    "TtsInput",
    "TtsOutput",
    "VoiceInfo",
    "chunk_samples",
    "split_clauses",
]
