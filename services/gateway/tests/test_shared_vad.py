"""One Silero model shared by concurrent calls: each call's VAD state stays its own."""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from trunkline.gateway.vad import SileroDetector, SileroModel

pytestmark = pytest.mark.integration

WAV = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio" / "hours-joe-16k.wav"
FRAME_BYTES = 640


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def speech() -> bytes:
    with wave.open(str(WAV)) as w:
        return bytes(w.readframes(w.getnframes()))


def test_two_concurrent_calls_keep_their_own_state() -> None:
    model = SileroModel()
    talker = frames(bytes(16000) + speech() + bytes(32000))  # 0.5 s lead, then the phrase
    quiet = frames(
        (np.random.default_rng(1).normal(0, 30, len(talker) * 320)).astype("<i2").tobytes()
    )
    alone_talker = [d.probability(f) for d in [SileroDetector(model)] for f in talker]
    alone_quiet = [d.probability(f) for d in [SileroDetector(model)] for f in quiet]
    assert max(alone_talker) > 0.9  # the phrase is heard
    assert max(alone_quiet) < 0.2  # line noise is not

    # Two calls at once over the one model: frames interleaved on the event loop's thread...
    a, b = SileroDetector(model), SileroDetector(model)
    mixed_a, mixed_b = [], []
    for fa, fb in zip(talker, quiet, strict=True):
        mixed_a.append(a.probability(fa))
        mixed_b.append(b.probability(fb))
    assert mixed_a == pytest.approx(alone_talker, abs=1e-6)
    assert mixed_b == pytest.approx(alone_quiet, abs=1e-6)

    # ... and from two threads at the same time (onnxruntime sessions are thread-safe).
    results: dict[str, list[float]] = {}

    def run(name: str, stream: list[bytes]) -> None:
        detector = SileroDetector(model)
        results[name] = [detector.probability(f) for f in stream]

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", talker), ("b", quiet))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["a"] == pytest.approx(alone_talker, abs=1e-6)
    assert results["b"] == pytest.approx(alone_quiet, abs=1e-6)
