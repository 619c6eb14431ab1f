"""Endpointing over per-frame speech probabilities (one value per 20 ms frame).

Hysteresis: speech starts after ``onset_frames`` frames at or above ``threshold``; a frame below
``release_threshold`` during speech is the *first silent frame* (a pause, where speculative work
begins); speech again during the pause resumes the utterance; ``endpoint_ms`` of silence ends it.
``onset_frames`` is also what keeps clicks and coughs from counting as speech; while the agent
speaks, ``barge_in_onset_frames`` (fewer) decide, so that the agent stops sooner when the caller
talks over it — a false start there costs only a stopped reply, never a lost word.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    threshold: float = 0.5
    release_threshold: float = 0.35
    onset_frames: int = 3
    endpoint_ms: int = 400
    barge_in_onset_frames: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.release_threshold <= self.threshold <= 1.0:
            raise ValueError("need 0 < release_threshold <= threshold <= 1")
        if self.onset_frames < 1:
            raise ValueError("onset_frames must be >= 1")
        if self.barge_in_onset_frames < 1:
            raise ValueError("barge_in_onset_frames must be >= 1")
        if self.endpoint_ms < FRAME_MS:
            raise ValueError(f"endpoint_ms must be >= {FRAME_MS}")


class Signal(enum.Enum):
    """What one frame changed, if anything."""

    NONE = "none"
    SPEECH_START = "speech_start"
    PAUSE = "pause"
    RESUME = "resume"
    ENDPOINT = "endpoint"


class Phase(enum.Enum):
    SILENCE = "silence"
    SPEECH = "speech"
    PAUSE = "pause"


class Endpointer:
    """Turns speech probabilities into speech start / pause / resume / endpoint signals."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.phase = Phase.SILENCE
        self._onset_run = 0
        self._speech_frames = 0
        self._silent_frames = 0

    @property
    def speech_ms(self) -> int:
        """Voiced duration of the current utterance."""
        return self._speech_frames * FRAME_MS

    @property
    def silence_ms(self) -> int:
        """Silence so far in the current pause (0 outside a pause)."""
        return self._silent_frames * FRAME_MS if self.phase is Phase.PAUSE else 0

    def reset(self) -> None:
        self.phase = Phase.SILENCE
        self._onset_run = 0
        self._speech_frames = 0
        self._silent_frames = 0

    def push(self, probability: float, *, agent_speaking: bool = False) -> Signal:
        """One frame's probability; ``agent_speaking``: a speech onset now is a barge-in."""
        cfg = self.config
        if self.phase is Phase.SILENCE:
            self._onset_run = self._onset_run + 1 if probability >= cfg.threshold else 0
            onset = cfg.onset_frames
            if agent_speaking:
                onset = min(cfg.barge_in_onset_frames, onset)
            if self._onset_run >= onset:
                self.phase = Phase.SPEECH
                self._speech_frames = self._onset_run
                self._onset_run = 0
                return Signal.SPEECH_START
            return Signal.NONE
        if self.phase is Phase.SPEECH:
            if probability < cfg.release_threshold:
                self._silent_frames = 1
                self.phase = Phase.PAUSE
                return self._maybe_endpoint(Signal.PAUSE)
            self._speech_frames += 1
            return Signal.NONE
        # PAUSE
        if probability >= cfg.threshold:
            self.phase = Phase.SPEECH
            self._speech_frames += 1
            self._silent_frames = 0
            return Signal.RESUME
        self._silent_frames += 1
        return self._maybe_endpoint(Signal.NONE)

    def _maybe_endpoint(self, otherwise: Signal) -> Signal:
        if self._silent_frames * FRAME_MS >= self.config.endpoint_ms:
            self.reset()
            return Signal.ENDPOINT
        return otherwise
