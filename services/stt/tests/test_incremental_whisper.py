"""Incremental recognition with the real model: reads ahead settle a stable prefix, and the final
that decodes only the audio after it says what a decode of the whole utterance says."""

from __future__ import annotations

import asyncio
import re
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soxr

from trunkline.stt.backends.whisper import WhisperRecognizer
from trunkline.stt.core import AudioIn, EndOfUtterance, FlushUtterance, SttInput

pytestmark = pytest.mark.integration

AUDIO = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio"
STEP = 12_800  # 400 ms of 16 kHz PCM16: the gateway reads ahead every 400 ms of speech


def pcm16k(name: str) -> bytes:
    with wave.open(str(AUDIO / name)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
        rate = wav.getframerate()
    if rate != 16_000:
        samples = soxr.resample(samples.astype(np.float32), rate, 16_000).astype("<i2")
    return samples.tobytes()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@pytest.fixture(scope="module")
def long_utterance() -> bytes:
    """Two caller sentences with a 0.4 s pause: about 5.8 s."""
    return pcm16k("hours-joe-16k.wav") + bytes(STEP) + pcm16k("acme-main-street-caller-8k.wav")


async def test_reads_ahead_settle_a_prefix_and_the_final_matches_a_whole_decode(
    long_utterance: bytes,
) -> None:
    recognizer = WhisperRecognizer()
    await recognizer.start()
    try:
        whole = await recognizer.transcribe(long_utterance)

        async def spoken() -> AsyncIterator[SttInput]:
            for start in range(0, len(long_utterance), STEP):
                yield AudioIn(long_utterance[start : start + STEP])
                yield FlushUtterance()
                await asyncio.sleep(0.4)  # the caller speaks in real time
            yield EndOfUtterance()

        out = [t async for t in recognizer.stream(spoken())]
    finally:
        await recognizer.close()
    partials, final = out[:-1], out[-1]
    assert final.is_final
    assert words(final.text) == words(whole.text)
    assert "saturday" in words(final.text)
    assert "springfield" in words(final.text)
    # flushes are answered in order, each partial covering the audio sent before its flush
    # (flushes a later one or the end overtook while a read decoded are not answered: on a
    # busy machine the reads fall behind the caller and catch up)
    covered = [round(t.audio_s, 3) for t in partials]
    assert len(covered) >= 2
    assert covered == sorted(covered)
    assert all(round(c / 0.4, 3).is_integer() for c in covered[:-1])
    # by the end the first sentence is settled: its words lead every late partial
    assert words(partials[-1].text)[:4] == ["please", "tell", "me", "you're"]
