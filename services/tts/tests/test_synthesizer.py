"""The ABC's public methods around a fake backend: order, resampling, cancel, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import numpy as np
import pytest

from trunkline.tts.backends import (
    NativeAudio,
    StreamSettings,
    SynthesisOptions,
    Synthesizer,
    SynthesizerError,
    SynthesizerUnavailableError,
)
from trunkline.tts.core import (
    Cancel,
    Cancelled,
    Clause,
    ClauseDone,
    SpeechChunk,
    TtsInput,
    TtsOutput,
    VoiceInfo,
)

pytestmark = pytest.mark.unit

RATE = 8_000


class FakeSynthesizer(Synthesizer):
    """0.1 s of audio per word, one piece per word; can fail first or block on a gate."""

    backend_name = "fake"

    def __init__(self, *, fail_times: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_times = fail_times
        self.started: list[str] = []
        self.gate: asyncio.Event | None = None

    def voices(self) -> list[VoiceInfo]:
        return [VoiceInfo("fake-voice", "en-US", RATE, "fake")]

    async def _synthesize_impl(
        self, text: str, voice: VoiceInfo, speaking_rate: float
    ) -> AsyncGenerator[NativeAudio, None]:
        self.started.append(text)
        if len(self.started) <= self.fail_times:
            raise SynthesizerUnavailableError("down")
        for _ in text.split():
            if self.gate is not None:
                await self.gate.wait()
            yield NativeAudio(np.full(RATE // 10, 0.25, np.float32), RATE)


async def feed(items: list[TtsInput]) -> AsyncIterator[TtsInput]:
    for item in items:
        yield item


async def collect(synth: Synthesizer, items: list[TtsInput], **kw: Any) -> list[TtsOutput]:
    return [e async for e in synth.stream(feed(items), StreamSettings(**kw))]


async def test_clauses_are_spoken_in_order_with_a_done_each(recorded: Any) -> None:
    synth = FakeSynthesizer(telemetry=recorded.telemetry)
    out = await collect(synth, [Clause("a", "one two"), Clause("b", "three")], chunk_s=0.05)
    kinds = [(type(e).__name__, e.clause_id) for e in out if not isinstance(e, Cancelled)]
    assert kinds == [("SpeechChunk", "a")] * 4 + [("ClauseDone", "a")] + [
        ("SpeechChunk", "b")
    ] * 2 + [("ClauseDone", "b")]
    done_a = out[4]
    assert isinstance(done_a, ClauseDone)
    assert (done_a.chunk_count, done_a.audio_s, done_a.characters) == (4, pytest.approx(0.2), 7)
    chunk = out[0]
    assert isinstance(chunk, SpeechChunk)
    assert np.frombuffer(chunk.pcm, "<i2")[0] == 8192  # 0.25 full scale, PCM16
    spans = recorded.spans.get_finished_spans()
    assert [s.attributes["tts.clause_id"] for s in spans] == ["a", "b"]
    assert all("tts.time_to_first_audio_s" in s.attributes for s in spans)
    [ttfa] = recorded.metric_points("tts.time_to_first_audio")
    assert ttfa.count == 2


async def test_output_is_resampled_to_the_requested_rate() -> None:
    out = await collect(FakeSynthesizer(), [Clause("a", "one two three")], sample_rate=16_000)
    pcm = b"".join(e.pcm for e in out if isinstance(e, SpeechChunk))
    assert len(pcm) // 2 == pytest.approx(16_000 * 0.3, abs=2)
    done = out[-1]
    assert isinstance(done, ClauseDone)
    assert done.audio_s == pytest.approx(0.3, abs=0.001)


async def test_cancel_stops_within_one_chunk_and_queued_text_never_starts(
    recorded: Any,
) -> None:
    synth = FakeSynthesizer(telemetry=recorded.telemetry)
    synth.gate = asyncio.Event()
    synth.gate.set()
    inputs: asyncio.Queue[TtsInput | None] = asyncio.Queue()

    async def source() -> AsyncIterator[TtsInput]:
        while (item := await inputs.get()) is not None:
            yield item

    inputs.put_nowait(Clause("a", "one two three four five six"))
    inputs.put_nowait(Clause("b", "queued clause"))
    stream = synth.stream(source(), StreamSettings(chunk_s=0.1))
    first = await anext(stream)
    assert isinstance(first, SpeechChunk)
    synth.gate.clear()  # the backend is now stuck on word two
    inputs.put_nowait(Cancel("barge-in"))
    ack = await asyncio.wait_for(anext(stream), 2)
    assert isinstance(ack, Cancelled)
    assert ack.clause_ids == ("a", "b")
    assert ack.reason == "barge-in"
    inputs.put_nowait(Clause("c", "next turn"))
    synth.gate.set()
    inputs.put_nowait(None)
    rest = [e async for e in stream]
    assert {e.clause_id for e in rest if not isinstance(e, Cancelled)} == {"c"}
    assert synth.started == ["one two three four five six", "next turn"]
    [cancels] = recorded.metric_points("tts.cancellations")
    assert cancels.value == 1


async def test_a_temporary_failure_before_audio_is_retried() -> None:
    synth = FakeSynthesizer(fail_times=1, options=SynthesisOptions(retry_backoff_s=0.0))
    out = await collect(synth, [Clause("a", "hi")])
    assert isinstance(out[-1], ClauseDone)
    assert synth.started == ["hi", "hi"]


async def test_a_stalled_backend_hits_the_deadline() -> None:
    synth = FakeSynthesizer(options=SynthesisOptions(first_audio_timeout_s=0.05, retries=0))
    synth.gate = asyncio.Event()
    with pytest.raises(TimeoutError):
        await collect(synth, [Clause("a", "hi")])


async def test_an_unknown_voice_is_a_clear_error() -> None:
    with pytest.raises(SynthesizerError, match="unknown voice 'nope'"):
        await collect(FakeSynthesizer(), [Clause("a", "hi")], voice="nope")


async def test_synthesize_splits_a_text_into_clauses() -> None:
    synth = FakeSynthesizer()
    chunks = [c async for c in synth.synthesize("Hello there. How are you today?")]
    assert synth.started == ["Hello there.", "How are you today?"]
    assert {c.clause_id for c in chunks} == {"c0", "c1"}
