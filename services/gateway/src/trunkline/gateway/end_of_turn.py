"""Semantic end of turn: Smart Turn v3.2 scores whether the caller has finished speaking.

The model (a Whisper-tiny encoder with a classifier head, 8.7 MB ONNX, BSD-2-Clause, see
``data/NOTICE``) reads the last 8 s of the utterance as audio, prosody included, and returns the
probability that the turn is complete. The file is read from the installed ``pipecat-ai`` 1.14.0
wheel (a locked dependency installed without any of its own: pipecat is never imported) and is
never downloaded. One inference costs ~100-150 ms of one core, so it runs on a thread pool shared by
every call (:class:`SmartTurnModel`), never on the event loop; the turn machine receives its
verdict as an event (``EndOfTurnVerdict``) and the silence endpoint stays the fallback.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import onnxruntime as ort

from trunkline.gateway.smart_turn_features import fit_window, log_mel

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_DIR = ("audio", "turn", "smart_turn", "data")  # inside the pipecat package


def smart_turn_model_path() -> Path:
    """The Smart Turn ONNX file inside the installed ``pipecat-ai`` wheel (found, not imported)."""
    spec = find_spec("pipecat")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location).joinpath(*MODEL_DIR, MODEL_FILE)
        if path.is_file():
            return path
    raise RuntimeError(
        f"Smart Turn model {MODEL_FILE} not found: the pipecat-ai 1.14.0 wheel that carries it "
        "is not installed (run `make install`)"
    )


@dataclass(frozen=True, slots=True)
class EndOfTurnScore:
    probability: float  # that the caller's turn is complete
    inference_s: float  # features + model, on the worker thread


class EndOfTurnDetector(ABC):
    """Scores an utterance (16 kHz PCM16, ending in the silence so far) for completeness."""

    @abstractmethod
    def probability(self, pcm: bytes) -> float:
        """Blocking: the probability that the utterance is a complete turn."""

    async def score(self, pcm: bytes) -> EndOfTurnScore:
        """Off the event loop (the default executor unless a subclass owns a pool)."""
        return await asyncio.to_thread(self._timed, pcm)

    def _timed(self, pcm: bytes) -> EndOfTurnScore:
        started = time.perf_counter()
        probability = self.probability(pcm)
        return EndOfTurnScore(probability, time.perf_counter() - started)


class SmartTurnModel(EndOfTurnDetector):
    """One loaded Smart Turn session for the whole process, with its own worker threads
    (``workers``: inferences that may run at once; more queue, and a verdict that comes after
    the silence endpoint is simply ignored). onnxruntime uses one intra-op thread that does not
    spin (PACKAGES.md: spinning threads slow every other model in the process)."""

    def __init__(self, path: Path | None = None, *, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(path or smart_turn_model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smart-turn")

    def probability(self, pcm: bytes) -> float:
        if len(pcm) % 2:
            raise ValueError("PCM16 audio must have an even number of bytes")
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        features = log_mel(fit_window(audio))[None, :, :]
        (out,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(out).ravel()[0])  # the model ends in a sigmoid

    async def score(self, pcm: bytes) -> EndOfTurnScore:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._timed, pcm)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
