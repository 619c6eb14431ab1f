"""The few small frozen event types that flow through a recognition stream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioIn:
    """A piece of caller audio: mono PCM16 little-endian at the stream's sample rate."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class EndOfUtterance:
    """The caller stopped talking (the gateway's endpointer decided): produce the final now."""


@dataclass(frozen=True, slots=True)
class CancelUtterance:
    """Drop the audio of the current utterance; no final is produced for it."""


@dataclass(frozen=True, slots=True)
class FlushUtterance:
    """Transcribe the utterance's audio so far now (a partial covering all of it); the utterance
    goes on."""


SttInput = AudioIn | EndOfUtterance | CancelUtterance | FlushUtterance


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Words and phrases a stream's caller is likely to say (the agent's names, products,
    weekdays), most useful first. Whisper takes them as its prompt, Riva as a speech context
    boosted by ``boost`` (0: the backend's default)."""

    phrases: tuple[str, ...] = ()
    boost: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.phrases)


@dataclass(frozen=True, slots=True)
class Transcript:
    """A partial (``is_final=False``) or final transcript of one utterance.

    ``no_speech`` is set on a final when the utterance held no speech (energy gate or the
    model's own no-speech probability); its ``text`` is then empty. ``processing_s`` is the time
    from the end of the utterance (or the request) to this result.
    """

    text: str
    is_final: bool
    utterance_index: int = 0
    no_speech: bool = False
    no_speech_prob: float = 0.0
    confidence: float = 0.0
    audio_offset_s: float = 0.0
    audio_s: float = 0.0
    processing_s: float = 0.0
