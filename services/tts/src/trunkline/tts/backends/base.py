"""The synthesizer ABC: its public methods own clause queueing, cancellation, resampling,
chunking, deadlines, retries, metrics and tracing; a backend writes only ``_synthesize_impl``
(and ``_start_impl`` / ``_close_impl`` when it holds resources)."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode

from trunkline.tts.backends.resample import ClauseResampler
from trunkline.tts.backends.trim import LeadingSilence
from trunkline.tts.core import (
    Cancel,
    Cancelled,
    Clause,
    ClauseDone,
    SpeechChunk,
    TtsInput,
    TtsOutput,
    VoiceInfo,
    chunk_samples,
    split_clauses,
)


class SynthesizerUnavailableError(Exception):
    """A temporary backend failure (server unreachable, overloaded): worth one more try."""


class SynthesizerError(Exception):
    """The backend failed for good (bad voice, broken contract)."""


@dataclass(frozen=True, slots=True)
class NativeAudio:
    """Backend output: float32 mono samples in [-1, 1] at the backend's own rate."""

    samples: npt.NDArray[np.float32]
    sample_rate: int


@dataclass(frozen=True, slots=True)
class SynthesisOptions:
    """Behaviour the public methods enforce around any backend."""

    chunk_s: float = 0.04
    first_audio_timeout_s: float = 5.0
    retries: int = 1
    retry_backoff_s: float = 0.05
    trim_leading_dbfs: float | None = -40.0  # cut each clause's leading silence; None: keep it


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Per stream: output rate (None: the voice's native rate), voice, speaking rate."""

    sample_rate: int | None = None
    voice: str = ""
    speaking_rate: float = 1.0
    chunk_s: float | None = None


class TtsTelemetry:
    """The spans and instruments of the TTS stage (one per synthesizer, never module-global)."""

    def __init__(
        self, tracer: trace.Tracer | None = None, meter: metrics.Meter | None = None
    ) -> None:
        self.tracer = tracer or trace.get_tracer("trunkline.tts")
        meter = meter or metrics.get_meter("trunkline.tts")
        self.time_to_first_audio = meter.create_histogram(
            "tts.time_to_first_audio", unit="s", description="Clause arrival to first audio"
        )
        self.synthesis_time = meter.create_histogram(
            "tts.synthesis.time", unit="s", description="Wall time to synthesize a clause"
        )
        self.audio = meter.create_counter(
            "tts.audio", unit="s", description="Seconds of audio synthesized"
        )
        self.characters = meter.create_counter(
            "tts.characters", description="Characters synthesized"
        )
        self.cancellations = meter.create_counter(
            "tts.cancellations", description="Cancels handled (barge-in)"
        )


class _ClauseQueue:
    """Clauses waiting to be spoken; a cancel empties it and interrupts the clause in progress."""

    def __init__(self) -> None:
        self.pending: deque[tuple[Clause, float]] = deque()
        self.acks: deque[Cancelled] = deque()
        self.current: Clause | None = None
        self.interrupt = asyncio.Event()
        self.changed = asyncio.Event()
        self.ended = False

    def put(self, clause: Clause, now: float) -> None:
        self.pending.append((clause, now))
        self.changed.set()

    def cancel(self, request: Cancel, now: float) -> None:
        dropped = [self.current.clause_id] if self.current is not None else []
        dropped += [clause.clause_id for clause, _ in self.pending]
        self.pending.clear()
        self.acks.append(Cancelled(tuple(dropped), now, request.reason))
        self.interrupt.set()
        self.changed.set()

    def end(self) -> None:
        self.ended = True
        self.changed.set()


class Synthesizer(ABC):
    """Clauses in, audio chunks out, cancellable. One instance serves many concurrent streams."""

    backend_name: str = "base"

    def __init__(
        self, options: SynthesisOptions | None = None, telemetry: TtsTelemetry | None = None
    ) -> None:
        self.options = options or SynthesisOptions()
        self.telemetry = telemetry or TtsTelemetry()
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        await self._start_impl()
        self._ready = True

    async def close(self) -> None:
        self._ready = False
        await self._close_impl()

    @abstractmethod
    def voices(self) -> list[VoiceInfo]:
        """The voices this backend speaks with; the first is the default."""

    async def synthesize(
        self, text: str, settings: StreamSettings | None = None
    ) -> AsyncIterator[SpeechChunk]:
        """Audio of a whole text, split into clauses and synthesized one after another."""

        async def clauses() -> AsyncIterator[TtsInput]:
            for index, clause in enumerate(split_clauses(text)):
                yield Clause(f"c{index}", clause)

        async for event in self.stream(clauses(), settings):
            if isinstance(event, SpeechChunk):
                yield event

    async def stream(
        self, inputs: AsyncIterable[TtsInput], settings: StreamSettings | None = None
    ) -> AsyncGenerator[TtsOutput, None]:
        """Audio chunks and a ``ClauseDone`` per clause, in order. A ``Cancel`` overtakes the
        queue: the clause in progress stops between two chunks, queued clauses never start, and
        a ``Cancelled`` acknowledges it; the stream then waits for the next clause."""
        settings = settings or StreamSettings()
        voice = self._voice(settings.voice)
        out_rate = settings.sample_rate or voice.native_sample_rate
        queue = _ClauseQueue()
        pump = asyncio.create_task(self._pump(inputs, queue))
        try:
            while True:
                if queue.acks:
                    yield self._acknowledge(queue.acks.popleft())
                    continue
                if queue.pending:
                    clause, arrived = queue.pending.popleft()
                    queue.current = clause
                    queue.interrupt.clear()
                    async for event in self._speak(
                        clause,
                        arrived=arrived,
                        voice=voice,
                        settings=settings,
                        out_rate=out_rate,
                        queue=queue,
                    ):
                        yield event
                    queue.current = None
                    continue
                if queue.ended:
                    break
                queue.changed.clear()
                await queue.changed.wait()
            await pump
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def _acknowledge(self, ack: Cancelled) -> Cancelled:
        now = asyncio.get_running_loop().time()
        self.telemetry.cancellations.add(1, {"tts.backend": self.backend_name})
        return Cancelled(ack.clause_ids, max(now - ack.cancel_s, 0.0), ack.reason)

    @staticmethod
    async def _pump(inputs: AsyncIterable[TtsInput], queue: _ClauseQueue) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for item in inputs:
                if isinstance(item, Clause):
                    queue.put(item, loop.time())
                else:
                    queue.cancel(item, loop.time())
        finally:
            queue.end()

    def _voice(self, voice_id: str) -> VoiceInfo:
        voices = self.voices()
        if not voice_id:
            return voices[0]
        for voice in voices:
            if voice.voice_id == voice_id:
                return voice
        known = ", ".join(v.voice_id for v in voices)
        raise SynthesizerError(f"unknown voice {voice_id!r}; known: {known}")

    async def _speak(
        self,
        clause: Clause,
        *,
        arrived: float,
        voice: VoiceInfo,
        settings: StreamSettings,
        out_rate: int,
        queue: _ClauseQueue,
    ) -> AsyncIterator[TtsOutput]:
        loop = asyncio.get_running_loop()
        resampler = ClauseResampler(out_rate)
        started = max(arrived, loop.time())
        attrs = {"tts.backend": self.backend_name}
        span = self.telemetry.tracer.start_span(
            "tts.clause",
            attributes={**attrs, "tts.clause_id": clause.clause_id, "tts.chars": len(clause.text)},
        )
        chunk_s = settings.chunk_s or self.options.chunk_s
        sequence, audio_s, first_audio = 0, 0.0, None
        try:
            cut = self.options.trim_leading_dbfs
            trim = None if cut is None else LeadingSilence(voice.native_sample_rate, cut)
            async for native in self._native_audio(clause, voice, settings, queue, span):
                samples = native.samples if trim is None else trim.push(native.samples)
                if not samples.size:
                    continue
                pcm16 = resampler.push(samples, native.sample_rate)
                for piece in chunk_samples(pcm16, resampler.out_rate, chunk_s):
                    await asyncio.sleep(0)  # let a cancel that just arrived overtake the chunk
                    if queue.interrupt.is_set():
                        span.set_attribute("tts.cancelled", True)
                        return
                    if first_audio is None:
                        first_audio = loop.time() - started
                        span.add_event("tts.first_audio")
                    duration = piece.size / resampler.out_rate
                    audio_s += duration
                    yield SpeechChunk(clause.clause_id, sequence, piece.tobytes(), duration)
                    sequence += 1
            if queue.interrupt.is_set():
                span.set_attribute("tts.cancelled", True)
                return
            tail = resampler.flush()
            if tail.size:
                duration = tail.size / resampler.out_rate
                audio_s += duration
                yield SpeechChunk(clause.clause_id, sequence, tail.tobytes(), duration)
                sequence += 1
            synthesis_s = loop.time() - started
            ttfa = first_audio if first_audio is not None else synthesis_s
            self.telemetry.time_to_first_audio.record(ttfa, attrs)
            self.telemetry.synthesis_time.record(synthesis_s, attrs)
            self.telemetry.audio.add(audio_s, attrs)
            self.telemetry.characters.add(len(clause.text), attrs)
            span.set_attributes(
                {"tts.time_to_first_audio_s": ttfa, "tts.audio_s": audio_s, "tts.chunks": sequence}
            )
            yield ClauseDone(
                clause.clause_id, sequence, audio_s, ttfa, synthesis_s, len(clause.text)
            )
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, repr(exc)))
            raise
        finally:
            span.end()

    async def _native_audio(
        self,
        clause: Clause,
        voice: VoiceInfo,
        settings: StreamSettings,
        queue: _ClauseQueue,
        span: Span,
    ) -> AsyncIterator[NativeAudio]:
        """The backend's audio for a clause, retried while nothing was produced yet, each piece
        within the deadline, abandoned at once on cancel."""
        for attempt in range(self.options.retries + 1):
            produced = False
            audio = self._synthesize_impl(clause.text, voice, settings.speaking_rate or 1.0)
            try:
                while True:
                    piece = await self._next_or_interrupt(audio, queue, span)
                    if piece is None:
                        return
                    produced = True
                    yield piece
            except (SynthesizerUnavailableError, TimeoutError) as exc:
                span.add_event("tts.retry", {"attempt": attempt, "error": repr(exc)})
                if produced or attempt == self.options.retries:
                    raise
            finally:
                await audio.aclose()
            await asyncio.sleep(self.options.retry_backoff_s * (attempt + 1))

    async def _next_or_interrupt(
        self, audio: AsyncGenerator[NativeAudio, None], queue: _ClauseQueue, span: Span
    ) -> NativeAudio | None:
        """Next piece, or None at the end of the clause or when a cancel arrives first."""
        with trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            step = asyncio.ensure_future(anext(audio))
        interrupted = asyncio.ensure_future(queue.interrupt.wait())
        try:
            done, _ = await asyncio.wait(
                {step, interrupted},
                timeout=self.options.first_audio_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if step in done:
                try:
                    return step.result()
                except StopAsyncIteration:
                    return None
            if interrupted in done:
                return None
            raise TimeoutError(f"{self.backend_name}: no audio within the deadline")
        finally:
            for future in (step, interrupted):
                if not future.done():
                    future.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await future

    async def _start_impl(self) -> None:  # noqa: B027 - optional hook
        """Load models or open channels. Default: nothing to do."""

    async def _close_impl(self) -> None:  # noqa: B027 - optional hook
        """Release what ``_start_impl`` acquired. Default: nothing to do."""

    @abstractmethod
    def _synthesize_impl(
        self, text: str, voice: VoiceInfo, speaking_rate: float
    ) -> AsyncGenerator[NativeAudio, None]:
        """Yield the clause's audio as it is produced. Raise ``SynthesizerUnavailableError`` for a
        temporary failure."""
