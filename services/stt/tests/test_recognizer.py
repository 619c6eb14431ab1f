"""The ABC's public methods around a fake backend: streaming, deadlines, retries, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from trunkline.stt.backends import (
    RecognizerOptions,
    RecognizerUnavailableError,
    SpeechRecognizer,
)
from trunkline.stt.core import (
    AudioIn,
    CancelUtterance,
    EndOfUtterance,
    FlushUtterance,
    SttInput,
    Transcript,
    Vocabulary,
)

pytestmark = pytest.mark.unit

FRAME = b"\x01\x00" * 320  # 20 ms at 16 kHz


class FakeRecognizer(SpeechRecognizer):
    """Counts bytes; a partial per chunk; the final names the byte count. Can fail or stall."""

    backend_name = "fake"

    def __init__(self, *, fail_times: int = 0, stall: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_times = fail_times
        self.stall = stall
        self.calls = 0
        self.decoding = asyncio.Event()

    async def _utterance_impl(
        self, audio: AsyncIterator[bytes], sample_rate: int, vocabulary: Vocabulary
    ) -> AsyncGenerator[Transcript, None]:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise RecognizerUnavailableError("down")
        total = 0
        async for chunk in audio:
            total += len(chunk)
            yield Transcript(text=f"partial {total}", is_final=False)
        self.decoding.set()
        if self.stall:
            await asyncio.Event().wait()
        yield Transcript(text=f"final {total}", is_final=True, confidence=0.9)


async def feed(items: list[SttInput]) -> AsyncIterator[SttInput]:
    for item in items:
        yield item


async def collect(recognizer: SpeechRecognizer, items: list[SttInput]) -> list[Transcript]:
    return [t async for t in recognizer.stream(feed(items))]


async def test_stream_gives_partials_then_one_final_per_utterance(recorded: Any) -> None:
    rec = FakeRecognizer(telemetry=recorded.telemetry)
    out = await collect(
        rec,
        [AudioIn(FRAME), AudioIn(FRAME), EndOfUtterance(), AudioIn(FRAME), EndOfUtterance()],
    )
    assert [(t.text, t.is_final, t.utterance_index) for t in out] == [
        ("partial 640", False, 0),
        ("partial 1280", False, 0),
        ("final 1280", True, 0),
        ("partial 640", False, 1),
        ("final 640", True, 1),
    ]
    second_final = out[-1]
    assert second_final.audio_offset_s == pytest.approx(0.04)
    assert second_final.audio_s == pytest.approx(0.02)
    assert second_final.processing_s >= 0.0
    spans = recorded.spans.get_finished_spans()
    assert [s.name for s in spans] == ["stt.utterance", "stt.utterance"]
    assert spans[0].attributes["stt.partials"] == 2
    assert spans[0].attributes["stt.audio_s"] == pytest.approx(0.04)
    [latency] = recorded.metric_points("stt.final.latency")
    assert latency.count == 2
    outcomes = {p.attributes["outcome"]: p.value for p in recorded.metric_points("stt.utterances")}
    assert outcomes == {"speech": 2}


async def test_end_of_input_ends_the_last_utterance() -> None:
    out = await collect(FakeRecognizer(), [AudioIn(FRAME)])
    assert out[-1].is_final
    assert out[-1].text == "final 640"


async def test_transcribe_returns_the_final_of_a_whole_utterance() -> None:
    rec = FakeRecognizer()
    result = await rec.transcribe(FRAME * 3)
    assert (result.text, result.is_final) == ("final 1920", True)
    assert result.audio_s == pytest.approx(0.06)


async def test_a_temporary_failure_is_retried_and_replays_the_audio(recorded: Any) -> None:
    rec = FakeRecognizer(
        fail_times=1,
        options=RecognizerOptions(retries=1, retry_backoff_s=0.0),
        telemetry=recorded.telemetry,
    )
    result = await rec.transcribe(FRAME * 2)
    assert result.text == "final 1280"
    assert rec.calls == 2
    [span] = recorded.spans.get_finished_spans()
    assert [e.name for e in span.events] == ["stt.retry"]


async def test_failures_past_the_retry_budget_propagate(recorded: Any) -> None:
    rec = FakeRecognizer(
        fail_times=5,
        options=RecognizerOptions(retries=1, retry_backoff_s=0.0),
        telemetry=recorded.telemetry,
    )
    with pytest.raises(RecognizerUnavailableError):
        await rec.transcribe(FRAME)
    assert rec.calls == 2
    outcomes = {p.attributes["outcome"]: p.value for p in recorded.metric_points("stt.utterances")}
    assert outcomes == {"error": 1}


async def test_a_final_that_misses_its_deadline_raises_timeout() -> None:
    rec = FakeRecognizer(stall=True, options=RecognizerOptions(final_timeout_s=0.05, retries=0))
    with pytest.raises(TimeoutError):
        await rec.transcribe(FRAME)


async def test_cancel_drops_the_utterance_even_mid_decode(recorded: Any) -> None:
    rec = FakeRecognizer(stall=True, telemetry=recorded.telemetry)
    inputs: asyncio.Queue[SttInput | None] = asyncio.Queue()

    async def source() -> AsyncIterator[SttInput]:
        while (item := await inputs.get()) is not None:
            yield item

    for item in (AudioIn(FRAME), EndOfUtterance()):
        inputs.put_nowait(item)
    results: list[Transcript] = []

    async def consume() -> None:
        results.extend([t async for t in rec.stream(source())])

    task = asyncio.create_task(consume())
    await rec.decoding.wait()  # the backend is now stuck decoding utterance 0
    rec.stall = False
    inputs.put_nowait(CancelUtterance())  # cancels utterance 0 although it has ended
    inputs.put_nowait(AudioIn(FRAME))
    inputs.put_nowait(CancelUtterance())  # cancels the open utterance 1
    inputs.put_nowait(AudioIn(FRAME * 2))
    inputs.put_nowait(EndOfUtterance())
    inputs.put_nowait(None)
    await asyncio.wait_for(task, 5)
    finals = [t for t in results if t.is_final]
    assert [(t.text, t.utterance_index) for t in finals] == [("final 1280", 2)]
    outcomes = {p.attributes["outcome"]: p.value for p in recorded.metric_points("stt.utterances")}
    assert outcomes == {"cancelled": 2, "speech": 1}


async def test_a_flush_reaches_the_backend_in_order_with_the_audio_and_the_utterance_goes_on() -> (
    None
):
    async def spoken() -> AsyncIterator[SttInput]:
        yield FlushUtterance()  # nothing heard yet: dropped
        yield AudioIn(FRAME)
        yield FlushUtterance()
        await asyncio.sleep(0.05)  # the backend reads it before anything overtakes it
        yield AudioIn(FRAME)
        yield EndOfUtterance()

    out = [t async for t in FakeRecognizer().stream(spoken())]
    # the flush is an empty chunk the backend answers (here with a partial), and the utterance
    # keeps its index and takes more audio
    assert [(t.text, t.is_final, t.utterance_index) for t in out] == [
        ("partial 640", False, 0),
        ("partial 640", False, 0),
        ("partial 1280", False, 0),
        ("final 1280", True, 0),
    ]


async def test_a_flush_overtaken_by_a_later_one_or_the_end_is_not_read() -> None:
    items: list[SttInput] = [AudioIn(FRAME), FlushUtterance(), AudioIn(FRAME), FlushUtterance()]
    out = await collect(FakeRecognizer(), [*items, AudioIn(FRAME), EndOfUtterance()])
    # all sent before the backend read any: both flushes are overtaken, the final answers
    assert [t.text for t in out] == ["partial 640", "partial 1280", "partial 1920", "final 1920"]
