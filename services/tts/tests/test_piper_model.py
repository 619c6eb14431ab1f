"""The embedded Piper backend with the real en_US joe voice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from trunkline.tts.backends import StreamSettings, SynthesisOptions
from trunkline.tts.backends.piper import PiperSynthesizer
from trunkline.tts.core import Cancel, Cancelled, Clause, ClauseDone, SpeechChunk, TtsInput

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def synthesizer() -> AsyncIterator[PiperSynthesizer]:
    synth = PiperSynthesizer()
    await synth.start()
    yield synth
    await synth.close()


async def test_the_voice_is_announced_at_its_native_rate(synthesizer: PiperSynthesizer) -> None:
    [voice] = synthesizer.voices()
    assert (voice.voice_id, voice.native_sample_rate, voice.backend) == (
        "en_US-joe-medium",
        22_050,
        "piper",
    )


async def test_a_clause_is_spoken_in_chunks_at_the_requested_rate(
    synthesizer: PiperSynthesizer,
) -> None:
    async def inputs() -> AsyncIterator[TtsInput]:
        yield Clause("t1.c1", "Thanks for calling.")

    settings = StreamSettings(sample_rate=8_000, chunk_s=0.02)
    out = [e async for e in synthesizer.stream(inputs(), settings)]
    chunks = [e for e in out if isinstance(e, SpeechChunk)]
    done = out[-1]
    assert isinstance(done, ClauseDone)
    assert done.chunk_count == len(chunks) > 10
    assert all(len(c.pcm) == 320 for c in chunks[:-2])  # 20 ms of 8 kHz PCM16
    total = sum(len(c.pcm) for c in chunks) / 2 / 8_000
    assert total == pytest.approx(done.audio_s)
    assert 0.5 < done.audio_s < 3.0
    assert 0 < done.time_to_first_audio_s <= done.synthesis_s


async def test_a_cancelled_stream_stops_within_one_chunk(synthesizer: PiperSynthesizer) -> None:
    inputs: asyncio.Queue[TtsInput | None] = asyncio.Queue()

    async def source() -> AsyncIterator[TtsInput]:
        while (item := await inputs.get()) is not None:
            yield item

    inputs.put_nowait(Clause("a", "Our office is open from nine to five on every weekday."))
    inputs.put_nowait(Clause("b", "We are closed on public holidays."))
    stream = synthesizer.stream(source(), StreamSettings(sample_rate=16_000))
    first = await anext(stream)
    assert isinstance(first, SpeechChunk)
    inputs.put_nowait(Cancel("barge-in"))
    inputs.put_nowait(None)
    after = [e async for e in stream]
    audio_after = [e for e in after if isinstance(e, SpeechChunk)]
    assert len(audio_after) <= 1
    cancelled = [e for e in after if isinstance(e, Cancelled)]
    assert [c.clause_ids for c in cancelled] == [("a", "b")]
    assert not any(isinstance(e, ClauseDone) for e in after)


async def test_a_clause_starts_with_its_sound_not_pipers_lead_in(
    synthesizer: PiperSynthesizer,
) -> None:
    """Piper starts a clause with ~40-60 ms of near-silence; the synthesizer cuts it to 10 ms, so
    the reply's first sound reaches the caller that much sooner (the trailing pause stays)."""
    untrimmed = PiperSynthesizer(options=SynthesisOptions(trim_leading_dbfs=None))
    await untrimmed.start()
    try:
        for text in ("We're open on", "The practice is", "Yes, we take"):
            cut = await first_sound_s(synthesizer, text)
            kept = await first_sound_s(untrimmed, text)
            assert cut <= 0.015, (text, cut)
            assert kept >= 0.035, (text, kept)
    finally:
        await untrimmed.close()


async def first_sound_s(synth: PiperSynthesizer, text: str) -> float:
    chunks = [c async for c in synth.synthesize(text, StreamSettings(sample_rate=8_000))]
    pcm = b"".join(c.pcm for c in chunks if isinstance(c, SpeechChunk))
    samples = np.frombuffer(pcm, "<i2")
    return int(np.flatnonzero(np.abs(samples) >= 0.01 * 32768)[0]) / 8_000
