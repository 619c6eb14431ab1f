"""Digital silence scored from the shared table gives exactly what running Silero gives."""

from __future__ import annotations

import base64
import wave
from pathlib import Path

import numpy as np
import pytest

from trunkline.audio.mulaw import pcm16_to_mulaw
from trunkline.audio.telephony import InboundMulaw8k
from trunkline.gateway.vad import SileroDetector, SileroModel

pytestmark = pytest.mark.integration

AUDIO = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio"
SILENCE_8K = b"\xff" * 160  # 20 ms of mu-law digital silence


def caller_line() -> list[bytes]:
    """A call as the gateway's VAD gets it: mu-law 8 kHz frames through the inbound resampler;
    digital silence of several lengths (shorter and longer than the 1 s state reset) around
    the caller's phrase, and a stretch of faint line noise (never zero)."""
    with wave.open(str(AUDIO / "where-caller-8k.wav"), "rb") as w:
        phrase = pcm16_to_mulaw(w.readframes(w.getnframes()))
    noise = np.random.default_rng(7).normal(0, 20, 8000).astype("<i2").tobytes()
    mulaw = b"".join(
        [
            SILENCE_8K * 150,  # 3 s: the greeting plays
            phrase,
            SILENCE_8K * 30,  # 0.6 s: a pause shorter than the reset
            phrase,
            SILENCE_8K * 120,
            pcm16_to_mulaw(noise),
            SILENCE_8K * 80,
            phrase,
            SILENCE_8K * 200,
        ]
    )
    inbound = InboundMulaw8k()
    return [
        frame.pcm
        for i in range(0, len(mulaw) - 159, 160)
        for frame in inbound.push(base64.b64encode(mulaw[i : i + 160]).decode())
    ]


def test_silence_table_is_bit_identical_to_the_model_and_skips_most_quiet_windows() -> None:
    frames = caller_line()
    model = SileroModel()
    table = SileroDetector(model)
    reference = SileroDetector(model, silence_table=False)
    looked_up = [table.probability(f) for f in frames]
    scored = [reference.probability(f) for f in frames]
    assert looked_up == scored  # exactly: same inputs, same states, same numbers
    assert sum(p >= 0.5 for p in scored) > 30  # the phrase is heard
    assert reference.windows_looked_up == 0
    total = table.windows_scored + table.windows_looked_up
    assert total == reference.windows_scored
    # Silence is ~70 % of this line; the first second after speech is still scored (its state
    # is not the reset state until the reset), and the noise never leaves the model.
    assert table.windows_looked_up > 0.4 * total, (table.windows_looked_up, total)

    # A second call over the same model reads the table the first one filled.
    again = SileroDetector(model)
    assert [again.probability(f) for f in frames] == scored


def test_a_frame_that_is_not_all_zero_leaves_the_table() -> None:
    model = SileroModel()
    table, reference = SileroDetector(model), SileroDetector(model, silence_table=False)
    quiet = bytes(640)
    one_sample = bytes(638) + b"\x01\x00"  # a single LSB: not digital silence any more
    frames = [quiet] * 100 + [one_sample] + [quiet] * 100
    assert [table.probability(f) for f in frames] == [reference.probability(f) for f in frames]
    assert table.windows_scored >= 2  # the windows holding that sample (both streams) ran
