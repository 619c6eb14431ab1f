"""Endpointing over per-frame speech probabilities (one value per 20 ms frame).

Hysteresis: speech starts after ``onset_frames`` frames at or above ``threshold``; a frame below
``release_threshold`` during speech is the *first silent frame* (a pause, where speculative work
begins); speech again during the pause resumes the utterance; ``endpoint_ms`` of silence ends it.
``onset_frames`` is also what keeps clicks and coughs from counting as speech; while the agent
speaks, ``barge_in_onset_frames`` (fewer) decide, so that the agent stops sooner when the caller
talks over it — a false start there costs only a stopped reply, never a lost word.

Quiet frames: Silero keeps its probability above ``release_threshold`` for ~100 ms after the last
word (its LSTM and 32 ms windows lag), and that delay is part of every reply's latency. So a
frame whose level is below ``quiet_dbfs`` and ``quiet_margin_db`` below the utterance's loudest
frame counts as silence during an utterance whatever the probability says, and no frame that
quiet resumes one. The margin keeps a quiet talker's words from being taken for silence; on a
line whose noise floor is above ``quiet_dbfs`` nothing changes. Measured once, ad hoc (not a
committed benchmark), over the voice benchmark's twelve caller phrases after 16 silences each:
the first silent frame came p50/p95 100/160 ms after the last voiced frame from the probability
alone, 20/60 ms with quiet frames at -50 dBFS.

Loud frames: at the start of a word Silero's probability over the phone band often hovers at
0.3-0.5 for several frames even at -10 dBFS (where its windows fall decides how long), so an
onset could come 0.3-0.6 s late — words lost beyond the pre-roll, a barge-in that stops the agent
late. A frame at or above ``loud_dbfs`` counts towards an onset from ``loud_threshold`` up.
Measured the same way, the barge-in onset (2 frames) came p50/p95/max 100/260/600 ms after the
first voiced frame, with loud frames 60/120/120; white noise at -40 to -20 dBFS stays below 0.16
and never counts.
Frames without a level (``None``) are judged by the probability alone.

Held pauses: :meth:`Endpointer.hold` gives the current pause a longer endpoint (the turn machine
does so when the pause's transcript ends mid-number); speech again ends the hold.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    threshold: float = 0.5
    release_threshold: float = 0.35
    onset_frames: int = 3
    endpoint_ms: int = 400
    barge_in_onset_frames: int = 2
    quiet_dbfs: float | None = -50.0  # None: the probability alone decides
    quiet_margin_db: float = 30.0
    loud_dbfs: float | None = -30.0  # None: the probability alone decides
    loud_threshold: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.release_threshold <= self.threshold <= 1.0:
            raise ValueError("need 0 < release_threshold <= threshold <= 1")
        if self.onset_frames < 1:
            raise ValueError("onset_frames must be >= 1")
        if self.barge_in_onset_frames < 1:
            raise ValueError("barge_in_onset_frames must be >= 1")
        if self.endpoint_ms < FRAME_MS:
            raise ValueError(f"endpoint_ms must be >= {FRAME_MS}")
        if self.quiet_dbfs is not None and self.quiet_dbfs >= 0:
            raise ValueError("quiet_dbfs must be below 0 dBFS (or None: off)")
        if self.quiet_margin_db < 0:
            raise ValueError("quiet_margin_db must be >= 0")
        if self.loud_dbfs is not None and self.loud_dbfs >= 0:
            raise ValueError("loud_dbfs must be below 0 dBFS (or None: off)")
        if not 0.0 < self.loud_threshold <= self.threshold:
            raise ValueError("need 0 < loud_threshold <= threshold")


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
        self._peak = -math.inf  # loudest frame of the utterance (or of the onset run)
        self._hold_ms = 0  # this pause's longer endpoint (0: none)

    @property
    def speech_ms(self) -> int:
        """Voiced duration of the current utterance."""
        return self._speech_frames * FRAME_MS

    @property
    def silence_ms(self) -> int:
        """Silence so far in the current pause (0 outside a pause)."""
        return self._silent_frames * FRAME_MS if self.phase is Phase.PAUSE else 0

    @property
    def held(self) -> bool:
        """This pause waits for a longer endpoint (:meth:`hold`)."""
        return self._hold_ms > 0

    def hold(self, endpoint_ms: int) -> None:
        """Until the caller speaks again, the pause ends the utterance at ``endpoint_ms`` of
        silence (when longer than the configured endpoint). Only during a pause."""
        if self.phase is Phase.PAUSE:
            self._hold_ms = max(self._hold_ms, endpoint_ms)

    def reset(self) -> None:
        self.phase = Phase.SILENCE
        self._onset_run = 0
        self._speech_frames = 0
        self._silent_frames = 0
        self._peak = -math.inf
        self._hold_ms = 0

    def _quiet(self, level: float | None) -> bool:
        cfg = self.config
        if cfg.quiet_dbfs is None or level is None:
            return False
        return level < cfg.quiet_dbfs and level < self._peak - cfg.quiet_margin_db

    def _voiced(self, probability: float, level: float | None) -> bool:
        """Does this frame count towards an onset?"""
        cfg = self.config
        if probability >= cfg.threshold:
            return True
        loud = cfg.loud_dbfs is not None and level is not None and level >= cfg.loud_dbfs
        return loud and probability >= cfg.loud_threshold

    def push(
        self, probability: float, *, level_dbfs: float | None = None, agent_speaking: bool = False
    ) -> Signal:
        """One frame's probability and level (dBFS, None: unknown); ``agent_speaking``: a speech
        onset now is a barge-in."""
        cfg = self.config
        if self.phase is Phase.SILENCE:
            if self._voiced(probability, level_dbfs):
                self._onset_run += 1
                if level_dbfs is not None:
                    self._peak = max(self._peak, level_dbfs) if self._onset_run > 1 else level_dbfs
            else:
                self._onset_run = 0
            onset = cfg.onset_frames
            if agent_speaking:
                onset = min(cfg.barge_in_onset_frames, onset)
            if self._onset_run >= onset:
                self.phase = Phase.SPEECH
                self._speech_frames = self._onset_run
                self._onset_run = 0
                return Signal.SPEECH_START
            return Signal.NONE
        quiet = self._quiet(level_dbfs)
        if level_dbfs is not None:
            self._peak = max(self._peak, level_dbfs)
        if self.phase is Phase.SPEECH:
            if probability < cfg.release_threshold or quiet:
                self._silent_frames = 1
                self.phase = Phase.PAUSE
                return self._maybe_endpoint(Signal.PAUSE)
            self._speech_frames += 1
            return Signal.NONE
        # PAUSE
        if self._voiced(probability, level_dbfs) and not quiet:
            self.phase = Phase.SPEECH
            self._speech_frames += 1
            self._silent_frames = 0
            self._hold_ms = 0
            return Signal.RESUME
        self._silent_frames += 1
        return self._maybe_endpoint(Signal.NONE)

    def _maybe_endpoint(self, otherwise: Signal) -> Signal:
        if self._silent_frames * FRAME_MS >= max(self.config.endpoint_ms, self._hold_ms):
            self.reset()
            return Signal.ENDPOINT
        return otherwise
