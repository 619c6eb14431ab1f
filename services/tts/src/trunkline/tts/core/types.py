"""The small frozen event types of a synthesis stream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Clause:
    """Text to speak, queued behind earlier clauses. ``clause_id`` is unique in the stream."""

    clause_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop speaking: drop the clause in progress and every queued one (barge-in)."""

    reason: str = ""


TtsInput = Clause | Cancel


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """PCM16 mono audio at the stream's sample rate; ``sequence`` counts within the clause."""

    clause_id: str
    sequence: int
    pcm: bytes
    duration_s: float


@dataclass(frozen=True, slots=True)
class ClauseDone:
    """Every chunk of the clause was sent."""

    clause_id: str
    chunk_count: int
    audio_s: float
    time_to_first_audio_s: float
    synthesis_s: float
    characters: int


@dataclass(frozen=True, slots=True)
class Cancelled:
    """Acknowledges a ``Cancel``: no more audio follows for ``clause_ids``."""

    clause_ids: tuple[str, ...]
    cancel_s: float
    reason: str = ""


TtsOutput = SpeechChunk | ClauseDone | Cancelled


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    voice_id: str
    language: str
    native_sample_rate: int
    backend: str
    description: str = ""
