"""Smart Turn (its model read from the pipecat-ai wheel) on Piper-synthesized audio: plumbing.

The repository holds no recorded human speech, and on synthetic speech Smart Turn scores
almost any cut of a phrase as complete (``hours-joe-16k.wav`` cut at 30-80 % of its length
scored 0.90-0.98), so no convincing complete-vs-cut case can be built from it; accuracy is
measured (and reported as synthetic) by ``make bench-turn``. These tests hold the plumbing: the
packaged model loads, the input window is the last 8 s, scores are probabilities and stable,
and scoring runs off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import wave
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from trunkline.gateway.end_of_turn import MODEL_FILE, SmartTurnModel, smart_turn_model_path
from trunkline.gateway.smart_turn_features import SAMPLES, fit_window, log_mel

MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"

pytestmark = pytest.mark.integration

WAV = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio" / "hours-joe-16k.wav"
PAUSE = bytes(200 * 32)  # 200 ms of silence at 16 kHz PCM16


@pytest.fixture(scope="module")
def model() -> SmartTurnModel:
    return SmartTurnModel()


def phrase() -> bytes:
    with wave.open(str(WAV)) as w:
        assert w.getframerate() == 16000
        return bytes(w.readframes(w.getnframes()))


def test_the_model_comes_from_the_pipecat_wheel_and_the_notice_ships_with_the_gateway() -> None:
    path = smart_turn_model_path()
    assert path.parts[-6:] == ("pipecat", "audio", "turn", "smart_turn", "data", MODEL_FILE)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODEL_SHA256
    assert "pipecat" not in sys.modules  # found on disk, never imported
    notice = resources.files("trunkline.gateway").joinpath("data", "NOTICE").read_text("utf-8")
    assert "BSD 2-Clause License" in notice
    assert "Daily" in notice
    assert "THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS" in notice


def test_features_are_whisper_shaped_and_keep_the_last_8_seconds() -> None:
    tail = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    long = np.concatenate([np.full(SAMPLES, 0.3, dtype=np.float32), tail])
    assert fit_window(long).size == SAMPLES
    assert np.array_equal(fit_window(long)[-16000:], tail)
    assert np.all(fit_window(tail)[: SAMPLES - 16000] == 0)  # padded at the start
    features = log_mel(fit_window(tail))
    assert features.shape == (80, 800)
    assert features.dtype == np.float32
    with pytest.raises(ValueError, match="128000 samples"):
        log_mel(tail)


def test_a_finished_phrase_scores_complete_and_scores_are_stable(model: SmartTurnModel) -> None:
    audio = phrase() + PAUSE
    first = model.probability(audio)
    assert 0.9 <= first <= 1.0
    assert model.probability(audio) == pytest.approx(first, abs=1e-6)
    # only the last 8 s count: ten seconds of earlier noise change nothing
    noise = np.random.default_rng(0).normal(0, 2000, 160_000).astype("<i2").tobytes()
    padded = noise + bytes(SAMPLES * 2) + audio
    assert model.probability(padded[-SAMPLES * 2 :]) == pytest.approx(
        model.probability(padded), abs=1e-6
    )
    with pytest.raises(ValueError, match="even number of bytes"):
        model.probability(b"\x00")


async def test_scoring_runs_off_the_event_loop(model: SmartTurnModel) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    score = await model.score(phrase() + PAUSE)
    task.cancel()
    assert score.inference_s > 0
    assert 0.9 <= score.probability <= 1.0
    assert ticks >= 3  # the loop went on while the model ran on its worker thread
