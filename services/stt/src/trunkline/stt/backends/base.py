"""The recognizer ABC: its public methods own deadlines, retries, metrics and tracing; a backend
writes only ``_utterance_impl`` (and ``_start_impl`` / ``_close_impl`` when it holds resources)."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass, replace

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode

from trunkline.stt.backends.utterance import UtteranceAudio
from trunkline.stt.core import (
    AudioIn,
    CancelUtterance,
    FlushUtterance,
    SttInput,
    Transcript,
    Vocabulary,
)

NO_VOCABULARY = Vocabulary()

BYTES_PER_SAMPLE = 2


class RecognizerUnavailableError(Exception):
    """A temporary backend failure (server unreachable, overloaded): worth one more try."""


class RecognizerError(Exception):
    """The backend broke its contract or failed for good."""


class _UtteranceCancelledError(Exception):
    """The client cancelled the utterance while the backend was working on it."""


@dataclass(frozen=True, slots=True)
class RecognizerOptions:
    """Behaviour the public methods enforce around any backend."""

    sample_rate: int = 16_000
    final_timeout_s: float = 5.0
    retries: int = 1
    retry_backoff_s: float = 0.05


class SttTelemetry:
    """The spans and instruments of the STT stage (one per recognizer, never module-global)."""

    def __init__(
        self,
        tracer: trace.Tracer | None = None,
        meter: metrics.Meter | None = None,
    ) -> None:
        self.tracer = tracer or trace.get_tracer("trunkline.stt")
        meter = meter or metrics.get_meter("trunkline.stt")
        self.final_latency = meter.create_histogram(
            "stt.final.latency",
            unit="s",
            description="End of utterance to final transcript",
        )
        self.decode_audio = meter.create_counter(
            "stt.audio", unit="s", description="Seconds of caller audio recognized"
        )
        self.utterances = meter.create_counter(
            "stt.utterances", description="Utterances finished, by outcome"
        )


class SpeechRecognizer(ABC):
    """Speech in, transcripts out. One instance serves many concurrent streams."""

    backend_name: str = "base"

    def __init__(
        self,
        options: RecognizerOptions | None = None,
        telemetry: SttTelemetry | None = None,
    ) -> None:
        self.options = options or RecognizerOptions()
        self.telemetry = telemetry or SttTelemetry()
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once models are loaded / the server is reachable."""
        return self._ready

    async def start(self) -> None:
        """Load models or connect; afterwards ``ready`` is true."""
        await self._start_impl()
        self._ready = True

    async def close(self) -> None:
        self._ready = False
        await self._close_impl()

    async def transcribe(
        self,
        pcm: bytes,
        *,
        sample_rate: int | None = None,
        vocabulary: Vocabulary = NO_VOCABULARY,
    ) -> Transcript:
        """The final transcript of one complete utterance (mono PCM16), biased towards
        ``vocabulary`` where the backend supports it."""
        audio = UtteranceAudio.complete(pcm)
        final: Transcript | None = None
        rate = sample_rate or self.options.sample_rate
        async for result in self._run_utterance(audio, rate, vocabulary):
            if result.is_final:
                final = result
        if final is None:  # _run_utterance always ends in a final or raises
            raise RecognizerError(f"{self.backend_name}: no final transcript")
        return final

    async def stream(
        self,
        inputs: AsyncIterable[SttInput],
        *,
        sample_rate: int | None = None,
        vocabulary: Vocabulary = NO_VOCABULARY,
    ) -> AsyncGenerator[Transcript, None]:
        """Partials and one final per utterance; an utterance ends at ``EndOfUtterance`` or
        at the end of ``inputs``; ``FlushUtterance`` asks for a partial covering the audio so far
        (backends that keep a stable prefix decode only what follows it). Audio keeps flowing in
        while an earlier utterance decodes.
        ``vocabulary`` biases every utterance of the stream."""
        rate = sample_rate or self.options.sample_rate
        utterances: asyncio.Queue[UtteranceAudio | None] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(inputs, utterances))
        try:
            while (utterance := await utterances.get()) is not None:
                async for result in self._run_utterance(utterance, rate, vocabulary):
                    yield result
            await pump  # re-raise an error of the input side
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    @staticmethod
    async def _pump(
        inputs: AsyncIterable[SttInput], utterances: asyncio.Queue[UtteranceAudio | None]
    ) -> None:
        current: UtteranceAudio | None = None
        last: UtteranceAudio | None = None
        index = offset = 0
        try:
            async for item in inputs:
                if current is None and isinstance(item, CancelUtterance):
                    if last is not None and not last.finished:
                        last.cancel()  # ended but still decoding: drop its final
                    continue
                if isinstance(item, FlushUtterance):
                    if current is not None:  # nothing heard yet: nothing to transcribe
                        current.flush()
                    continue
                if current is None:
                    current = last = UtteranceAudio(index, offset)
                    index += 1
                    utterances.put_nowait(current)
                if isinstance(item, AudioIn):
                    current.append(item.pcm)
                    offset += len(item.pcm)
                    continue
                if isinstance(item, CancelUtterance):
                    current.cancel()
                else:
                    current.close()
                current = None
        finally:
            if current is not None:
                current.close()
            utterances.put_nowait(None)

    async def _run_utterance(
        self, audio: UtteranceAudio, sample_rate: int, vocabulary: Vocabulary
    ) -> AsyncIterator[Transcript]:
        tele = self.telemetry
        attrs = {"stt.backend": self.backend_name}
        span = tele.tracer.start_span(
            "stt.utterance", attributes={**attrs, "stt.vocabulary": len(vocabulary.phrases)}
        )
        partials = 0
        try:
            for attempt in range(self.options.retries + 1):
                try:
                    async for result in self._attempt(audio, sample_rate, vocabulary, span):
                        if audio.cancelled:
                            raise _UtteranceCancelledError
                        if not result.is_final:
                            partials += 1
                            yield replace(
                                result,
                                utterance_index=audio.index,
                                audio_offset_s=self._seconds(audio.offset_bytes, sample_rate),
                            )
                            continue
                        audio.finished = True
                        yield self._finish(result, audio, sample_rate, span, partials)
                        return
                    if audio.cancelled:
                        raise _UtteranceCancelledError
                    raise RecognizerError(f"{self.backend_name}: stream ended without a final")
                except (RecognizerUnavailableError, TimeoutError) as exc:
                    if audio.cancelled:
                        raise _UtteranceCancelledError from exc
                    span.add_event("stt.retry", {"attempt": attempt, "error": repr(exc)})
                    if attempt == self.options.retries:
                        raise
                    await asyncio.sleep(self.options.retry_backoff_s * (attempt + 1))
        except _UtteranceCancelledError:
            tele.utterances.add(1, {**attrs, "outcome": "cancelled"})
            span.set_attribute("stt.cancelled", True)
        except Exception as exc:
            tele.utterances.add(1, {**attrs, "outcome": "error"})
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, repr(exc)))
            raise
        finally:
            span.end()

    async def _attempt(
        self, audio: UtteranceAudio, sample_rate: int, vocabulary: Vocabulary, span: Span
    ) -> AsyncIterator[Transcript]:
        """One backend call; the final must come within ``final_timeout_s`` of the end."""
        results = self._utterance_impl(audio.chunks(), sample_rate, vocabulary)
        try:
            while True:
                try:
                    result = await self._next_within_deadline(results, audio, span)
                except StopAsyncIteration:
                    return
                yield result
                if result.is_final:
                    return
        finally:
            await results.aclose()

    async def _next_within_deadline(
        self, results: AsyncGenerator[Transcript, None], audio: UtteranceAudio, span: Span
    ) -> Transcript:
        """Next result; no deadline while the caller talks, ``final_timeout_s`` after the end."""
        loop = asyncio.get_running_loop()

        def deadline_after_end() -> float:
            if audio.cancelled:  # stop waiting for the backend at once
                return loop.time()
            closed_at = audio.closed_at if audio.closed_at is not None else loop.time()
            return closed_at + self.options.final_timeout_s

        async with asyncio.timeout(None) as deadline:
            unregister = audio.on_close(lambda: deadline.reschedule(deadline_after_end()))
            try:
                with trace.use_span(
                    span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                ):
                    return await anext(results)
            finally:
                unregister()

    def _finish(
        self,
        result: Transcript,
        audio: UtteranceAudio,
        sample_rate: int,
        span: Span,
        partials: int,
    ) -> Transcript:
        loop = asyncio.get_running_loop()
        closed_at = audio.closed_at if audio.closed_at is not None else loop.time()
        audio_s = self._seconds(audio.nbytes, sample_rate)
        final = replace(
            result,
            utterance_index=audio.index,
            audio_offset_s=self._seconds(audio.offset_bytes, sample_rate),
            audio_s=audio_s,
            processing_s=max(loop.time() - closed_at, 0.0),
        )
        attrs = {"stt.backend": self.backend_name}
        outcome = "no_speech" if final.no_speech else "speech"
        self.telemetry.final_latency.record(final.processing_s, attrs)
        self.telemetry.decode_audio.add(audio_s, attrs)
        self.telemetry.utterances.add(1, {**attrs, "outcome": outcome})
        span.set_attributes(
            {
                "stt.audio_s": audio_s,
                "stt.latency_s": final.processing_s,
                "stt.no_speech": final.no_speech,
                "stt.no_speech_prob": final.no_speech_prob,
                "stt.confidence": final.confidence,
                "stt.partials": partials,
                "stt.chars": len(final.text),
            }
        )
        return final

    @staticmethod
    def _seconds(nbytes: int, sample_rate: int) -> float:
        return nbytes / BYTES_PER_SAMPLE / sample_rate

    async def _start_impl(self) -> None:  # noqa: B027 - optional hook
        """Load models or open channels. Default: nothing to do."""

    async def _close_impl(self) -> None:  # noqa: B027 - optional hook
        """Release what ``_start_impl`` acquired. Default: nothing to do."""

    @abstractmethod
    def _utterance_impl(
        self, audio: AsyncIterator[bytes], sample_rate: int, vocabulary: Vocabulary
    ) -> AsyncGenerator[Transcript, None]:
        """Read the utterance's PCM16 chunks (ending when it ends); yield partials and then
        exactly one final, with a ``confidence`` in 0 .. 1, biased towards ``vocabulary`` where
        the backend can be. An empty chunk (``FLUSH``) asks for a partial now whose
        ``audio_s`` covers every chunk before it. Raise ``RecognizerUnavailableError`` for a
        temporary failure."""
