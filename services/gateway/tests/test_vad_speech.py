"""Silero VAD + the endpointer on real speech: onset and endpoint within 100 ms of the truth.

``tests/data/audio/hours-joe-16k.wav`` was synthesized once with Piper (en_US-joe-medium) and
resampled to 16 kHz; the test pads it with a second of silence on each side.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from trunkline.gateway.core.endpointing import FRAME_MS, EndpointConfig, Endpointer, Signal
from trunkline.gateway.vad import SileroDetector

pytestmark = pytest.mark.integration

WAV = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio" / "hours-joe-16k.wav"
RATE = 16000
FRAME = RATE * FRAME_MS // 1000
PAD_S = 1.0
TOLERANCE_S = 0.1


def speech() -> np.ndarray:
    with wave.open(str(WAV), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    pad = np.zeros(int(PAD_S * RATE), dtype=np.int16)
    return np.concatenate([pad, samples, pad])


def true_bounds(samples: np.ndarray) -> tuple[float, float]:
    """First and last sample louder than 2 % of the peak, in seconds."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 0.02 * np.abs(samples).max())
    return loud[0] / RATE, loud[-1] / RATE


@pytest.mark.parametrize("endpoint_ms", [400, 300])  # 300: the stack's default
def test_silero_endpointer_finds_the_speech_bounds(endpoint_ms: int) -> None:
    samples = speech()
    start, end = true_bounds(samples)
    config = EndpointConfig(endpoint_ms=endpoint_ms)
    endpointer = Endpointer(config)
    detector = SileroDetector()
    onset_at: float | None = None
    pause_at: float | None = None
    endpoints: list[float] = []
    for index in range(len(samples) // FRAME):
        frame = samples[index * FRAME : (index + 1) * FRAME].tobytes()
        signal = endpointer.push(detector.probability(frame))
        frame_start = index * FRAME_MS / 1000
        if signal is Signal.SPEECH_START and onset_at is None:
            onset_at = frame_start - (config.onset_frames - 1) * FRAME_MS / 1000
        elif signal is Signal.PAUSE:
            pause_at = frame_start
        elif signal is Signal.ENDPOINT:
            endpoints.append(frame_start)
    assert onset_at is not None
    assert pause_at is not None
    assert len(endpoints) == 1, f"one utterance expected, endpoints at {endpoints}"
    assert abs(onset_at - start) <= TOLERANCE_S, (onset_at, start)
    assert abs(pause_at - end) <= TOLERANCE_S, (pause_at, end)
    assert endpoints[0] - pause_at == pytest.approx(
        (config.endpoint_ms - FRAME_MS) / 1000, abs=1e-9
    )
