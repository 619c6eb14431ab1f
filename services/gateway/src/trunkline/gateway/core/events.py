"""The turn machine's inputs (events) and outputs (actions): small frozen types."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class State(enum.Enum):
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    HANDED_OFF = "handed_off"


@dataclass(frozen=True, slots=True)
class Message:
    """One line of the history; an agent line holds only what the caller heard, and
    ``truncated`` says barge-in cut it short."""

    role: Literal["user", "agent"]
    text: str
    truncated: bool = False


# ---- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundFrame:
    """One 20 ms caller frame (16 kHz PCM16), its speech probability and its level (dBFS; None:
    not measured, the probability alone decides)."""

    pcm: bytes
    probability: float
    level_dbfs: float | None = None


@dataclass(frozen=True, slots=True)
class TranscriptReady:
    turn_id: int
    text: str


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    """Audio for clause ``clause`` of a turn's reply; ``last`` closes the clause."""

    turn_id: int
    clause: int
    text: str
    pcm: bytes
    last: bool


@dataclass(frozen=True, slots=True)
class WorkDone:
    """The turn's pipeline has produced everything it will (possibly nothing)."""

    turn_id: int


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    name: str


@dataclass(frozen=True, slots=True)
class HandOff:
    """A human takes the call: the orchestrator stops speaking and listening."""


Event = InboundFrame | TranscriptReady | ReplyAudio | WorkDone | MarkPlayed | HandOff


# ---- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartWork:
    """Start a turn's pipeline: STT on ``audio`` then context, LLM and TTS (or the greeting)."""

    turn_id: int
    audio: bytes
    history: tuple[Message, ...]
    speculative: bool
    greeting: bool = False


@dataclass(frozen=True, slots=True)
class Prefetch:
    """The caller is still speaking: read what they said so far (STT), look up its context and
    have the LLM evaluate it behind the history, so the turn's prompt is mostly ready when they
    stop. Best effort; nothing of it reaches the caller."""

    audio: bytes
    history: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class CancelWork:
    turn_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class SendAudio:
    pcm: bytes


@dataclass(frozen=True, slots=True)
class SendMark:
    name: str


@dataclass(frozen=True, slots=True)
class ClearPlayback:
    """Tell the transport to drop audio it has buffered (barge-in)."""

    turn_id: int


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: State
    new: State


@dataclass(frozen=True, slots=True)
class TurnCommitted:
    """The endpoint was reached; ``last_voice_at`` is when the caller's voice stopped."""

    turn_id: int
    last_voice_at: float
    committed_at: float


@dataclass(frozen=True, slots=True)
class FirstAudio:
    """The first reply frame of a turn went out (voice-to-voice ends here)."""

    turn_id: int
    voice_to_voice_s: float | None


@dataclass(frozen=True, slots=True)
class FillerStarted:
    turn_id: int
    waited_s: float


@dataclass(frozen=True, slots=True)
class TurnFinished:
    turn_id: int
    user_text: str
    agent_text: str  # what the caller actually heard
    interrupted: bool
    greeting: bool
    voice_to_voice_s: float | None
    fillers: int


@dataclass(frozen=True, slots=True)
class TurnDropped:
    """A turn ended with nothing said: speculation discarded, no speech recognised, call ended."""

    turn_id: int
    reason: str


Action = (
    StartWork
    | Prefetch
    | CancelWork
    | SendAudio
    | SendMark
    | ClearPlayback
    | StateChanged
    | TurnCommitted
    | FirstAudio
    | FillerStarted
    | TurnFinished
    | TurnDropped
)
