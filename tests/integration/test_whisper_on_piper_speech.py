"""The embedded Whisper backend with the real tiny.en model, against Piper speech (a cross-service
test: it lives here because it imports both trunkline.stt and trunkline.tts)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from difflib import SequenceMatcher

import numpy as np
import pytest
import pytest_asyncio

from trunkline.stt.backends.whisper import WhisperRecognizer
from trunkline.stt.core import AudioIn, EndOfUtterance, SttInput
from trunkline.tts.backends import StreamSettings
from trunkline.tts.backends.piper import PiperSynthesizer

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

RATE = 16_000


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_match(heard: str, said: str) -> float:
    """Share of words matched in order (1.0 = identical). Piper samples its noise, so the same
    sentence sounds slightly different each run and tiny.en sometimes mishears one word of it
    ("please" -> "place")."""
    return SequenceMatcher(a=words(heard), b=words(said), autojunk=False).ratio()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def recognizer() -> AsyncIterator[WhisperRecognizer]:
    rec = WhisperRecognizer()
    await rec.start()
    yield rec
    await rec.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def synthesizer() -> AsyncIterator[PiperSynthesizer]:
    synth = PiperSynthesizer()
    await synth.start()
    yield synth
    await synth.close()


async def speak(synth: PiperSynthesizer, text: str) -> bytes:
    settings = StreamSettings(sample_rate=RATE)
    return b"".join([chunk.pcm async for chunk in synth.synthesize(text, settings)])


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for calling, how can I help you today?",
        "Please transfer me to a human agent.",
    ],
)
async def test_tts_sentence_transcribed_back_gives_the_same_words(
    recognizer: WhisperRecognizer, synthesizer: PiperSynthesizer, text: str
) -> None:
    result = await recognizer.transcribe(await speak(synthesizer, text), sample_rate=RATE)
    assert word_match(result.text, text) >= 0.8, result.text
    assert not result.no_speech
    assert result.confidence > 0.3


async def test_streamed_frames_give_the_same_final(
    recognizer: WhisperRecognizer, synthesizer: PiperSynthesizer
) -> None:
    pcm = await speak(synthesizer, "I would like to check my account.")

    async def frames() -> AsyncIterator[SttInput]:
        for start in range(0, len(pcm), 640):
            yield AudioIn(pcm[start : start + 640])
        yield EndOfUtterance()

    results = [t async for t in recognizer.stream(frames(), sample_rate=RATE)]
    assert [t.is_final for t in results] == [True]
    assert word_match(results[0].text, "I would like to check my account.") >= 0.8


async def test_silence_is_empty_and_flagged(recognizer: WhisperRecognizer) -> None:
    result = await recognizer.transcribe(bytes(RATE * 2), sample_rate=RATE)
    assert (result.text, result.no_speech) == ("", True)


async def test_noise_is_empty_and_flagged(recognizer: WhisperRecognizer) -> None:
    noise = np.random.default_rng(7).normal(0.0, 0.05, RATE * 2)
    pcm = (noise * 32767).astype("<i2").tobytes()
    result = await recognizer.transcribe(pcm, sample_rate=RATE)
    assert (result.text, result.no_speech) == ("", True)
    assert result.no_speech_prob > 0.6


async def test_audio_at_another_rate_is_resampled(
    recognizer: WhisperRecognizer, synthesizer: PiperSynthesizer
) -> None:
    text = "Our office is open on weekdays."
    pcm = b"".join(
        [c.pcm async for c in synthesizer.synthesize(text, StreamSettings(sample_rate=8_000))]
    )
    result = await recognizer.transcribe(pcm, sample_rate=8_000)
    assert "open" in words(result.text)
    assert "weekdays" in words(result.text)
