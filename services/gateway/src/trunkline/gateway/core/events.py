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


@dataclass(frozen=True, slots=True)
class EndOfTurnVerdict:
    """The semantic end-of-turn model's answer to :class:`CheckEndOfTurn` ``check_id``: the
    probability that the caller's turn is complete, and what the inference cost."""

    check_id: int
    probability: float
    inference_s: float = 0.0


@dataclass(frozen=True, slots=True)
class PlayoutTick:
    """The transport's outbound clock moved on by ``frames`` 20 ms frames: the far end played
    (or is ready for) that many. Reply audio is paced by these, never by the caller's frames."""

    frames: int = 1


Event = (
    InboundFrame
    | TranscriptReady
    | ReplyAudio
    | WorkDone
    | MarkPlayed
    | HandOff
    | EndOfTurnVerdict
    | PlayoutTick
)


# ---- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartWork:
    """Start a turn's pipeline: STT on ``audio`` then context, LLM and TTS (or the greeting)."""

    turn_id: int
    audio: bytes
    history: tuple[Message, ...]
    speculative: bool
    greeting: bool = False
    line: str = ""  # a fixed line to say (a keypad menu's): no STT, context or LLM


@dataclass(frozen=True, slots=True)
class Prefetch:
    """The caller is still speaking: read what they said so far (STT), look up its context and
    have the LLM evaluate it behind the history, so the turn's prompt is mostly ready when they
    stop. Best effort; nothing of it reaches the caller."""

    audio: bytes
    history: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class CheckEndOfTurn:
    """The caller paused: ask the semantic end-of-turn model whether ``audio`` (the utterance so
    far, ending in the pause, padded with silence to the decision time) is a complete turn;
    answer with :class:`EndOfTurnVerdict`.
    ``turn_id``: the speculative turn started at the same pause, if any."""

    check_id: int
    audio: bytes
    turn_id: int | None


@dataclass(frozen=True, slots=True)
class EndOfTurnJudged:
    """What the machine made of a verdict. ``outcome``: ``complete`` (the turn ends once
    ``after_ms`` of silence has passed, at once if it has), ``incomplete`` (the silence endpoint
    decides) or ``stale`` (the caller spoke again or the silence endpoint came first)."""

    check_id: int
    turn_id: int | None
    probability: float
    inference_s: float
    outcome: Literal["complete", "incomplete", "stale"]


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
class EndpointHeld:
    """The pause's speculative transcript ends in a number read out (``digits`` of it): the
    silence endpoint of this pause is ``endpoint_ms`` instead of the usual one."""

    turn_id: int
    digits: int
    endpoint_ms: int


@dataclass(frozen=True, slots=True)
class TurnCommitted:
    """The endpoint was reached; ``last_voice_at`` is when the caller's voice stopped; ``by``:
    the silence endpoint or the semantic end-of-turn verdict."""

    turn_id: int
    last_voice_at: float
    committed_at: float
    by: Literal["silence", "semantic"] = "silence"


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
    | CheckEndOfTurn
    | EndOfTurnJudged
    | EndpointHeld
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
