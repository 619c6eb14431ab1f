# ruff: noqa: N802  (servicer methods carry the proto RPC names)
"""gRPC surface of stt: ``trunkline.stt.v1.SpeechToText`` (proto <-> domain only).

``StreamingRecognize``: a config first (audio format, partials, no-speech threshold, the
caller's likely vocabulary), then audio and control messages (end of utterance, cancel, flush:
a partial covering the audio so far, the utterance going on); transcripts stream back as the
recognizer produces them and a summary ends the stream after the client half-closes. Bad input
is ``INVALID_ARGUMENT`` naming the problem; a backend that is down or misses its deadline is
``UNAVAILABLE``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from google.protobuf.duration_pb2 import Duration
from opentelemetry import trace
from opentelemetry.trace import Span

from trunkline.proto.common.v1 import audio_pb2, usage_pb2
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc
from trunkline.runtime import service_name
from trunkline.runtime.streams import abort_invalid, config_first
from trunkline.stt.audio_in import BACKEND_RATE, AudioDecoder, Encoding, decode_whole, rate_problem
from trunkline.stt.backends import RecognizerError, RecognizerUnavailableError, SpeechRecognizer
from trunkline.stt.core import (
    AudioIn,
    CancelUtterance,
    EndOfUtterance,
    FlushUtterance,
    SttInput,
    Transcript,
    Vocabulary,
    apply_no_speech_threshold,
    vocabulary_of,
)
from trunkline.telemetry import extract_context

Ctx = grpc.aio.ServicerContext[Any, Any]

_ENCODINGS: dict[int, Encoding] = {
    audio_pb2.AUDIO_ENCODING_PCM16: "pcm16",
    audio_pb2.AUDIO_ENCODING_MULAW: "mulaw",
}
_CONTROLS: dict[int, SttInput] = {
    stt_pb2.CONTROL_ACTION_END_OF_UTTERANCE: EndOfUtterance(),
    stt_pb2.CONTROL_ACTION_CANCEL: CancelUtterance(),
    stt_pb2.CONTROL_ACTION_FLUSH: FlushUtterance(),
}


class BadRequestError(Exception):
    """The client broke the stream's contract; answered INVALID_ARGUMENT with this message."""


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(max(seconds, 0.0) * 1e9))
    return value


def audio_format(fmt: audio_pb2.AudioFormat) -> tuple[Encoding, int]:
    """The (encoding, rate) of a config's audio format, or ``BadRequestError``."""
    encoding = _ENCODINGS.get(fmt.encoding)
    if encoding is None:
        name = (
            audio_pb2.AudioEncoding.Name(fmt.encoding)
            if fmt.encoding in (audio_pb2.AudioEncoding.values())
            else str(fmt.encoding)
        )
        raise BadRequestError(
            f"audio_format.encoding {name} is not supported; use AUDIO_ENCODING_PCM16 or "
            "AUDIO_ENCODING_MULAW"
        )
    problem = rate_problem(fmt.sample_rate_hz)
    if problem is not None:
        raise BadRequestError(f"audio_format: {problem}")
    if fmt.channels > 1:
        raise BadRequestError(f"audio_format.channels {fmt.channels}: only mono audio is supported")
    return encoding, fmt.sample_rate_hz


def transcript_pb(result: Transcript) -> stt_pb2.Transcript:
    return stt_pb2.Transcript(
        utterance_index=result.utterance_index,
        is_final=result.is_final,
        text=result.text,
        confidence=result.confidence,
        no_speech_probability=result.no_speech_prob,
        audio_offset=duration(result.audio_offset_s),
        audio_duration=duration(result.audio_s),
        processing_time=duration(result.processing_s),
    )


class _FlushSpans:
    """One ``stt.flush`` span per FLUSH that carries the client's trace context, from the
    request until the transcript that covers its audio (or the final) goes back: the client's
    work (a gateway turn's ``stt`` span) continues here, whatever opened the stream."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._open: list[tuple[float, Span]] = []

    def start(self, carrier: dict[str, str], audio_s: float) -> None:
        if not carrier:
            return
        span = self._tracer.start_span(
            "stt.flush",
            context=extract_context(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={"stt.flush_audio_ms": round(audio_s * 1000, 1)},
        )
        self._open.append((audio_s, span))

    def answer(self, result: Transcript) -> None:
        """End the spans this transcript answers: it covers the audio sent before them."""
        keep: list[tuple[float, Span]] = []
        for need, span in self._open:
            if result.audio_offset_s + result.audio_s >= need - 0.001:
                span.set_attribute("stt.final", result.is_final)
                span.set_attribute("stt.processing_ms", round(result.processing_s * 1000, 1))
                span.set_attribute("stt.text_chars", len(result.text))
                span.end()
            else:
                keep.append((need, span))
        self._open = keep

    def close(self) -> None:
        for _, span in self._open:
            span.add_event("stream ended before a transcript answered the flush")
            span.end()
        self._open = []


class _Inputs:
    """The stream's requests after the config, as domain inputs (audio decoded to 16 kHz)."""

    def __init__(
        self,
        requests: AsyncIterator[stt_pb2.StreamingRecognizeRequest],
        decoder: AudioDecoder,
        flushes: _FlushSpans,
    ) -> None:
        self._requests = requests
        self.decoder = decoder
        self.flushes = flushes
        self.error: str | None = None

    async def __aiter__(self) -> AsyncIterator[SttInput]:
        async for request in self._requests:
            kind = request.WhichOneof("request")
            if kind == "audio":
                yield AudioIn(self.decoder.push(request.audio))
            elif kind == "control":
                control = _CONTROLS.get(request.control.action)
                if control is None:
                    self._fail(f"control.action {request.control.action} is not a known action")
                if isinstance(control, FlushUtterance):
                    self.flushes.start(dict(request.control.trace_context), self.decoder.received_s)
                yield control
            elif kind == "config":
                self._fail("a second config: the config is sent once, on the first message")
            else:
                self._fail("a request carries none of config, audio or control")

    def _fail(self, message: str) -> NoReturn:
        self.error = message
        raise BadRequestError(message)


class SpeechToTextService(stt_pb2_grpc.SpeechToTextServicer):
    """Streaming and unary speech recognition over one shared recognizer."""

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        *,
        language: str = "en-US",
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.language = language
        self.tracer = tracer or trace.get_tracer("trunkline.stt")

    async def ready(self) -> bool:
        """True once the recognizer's model is loaded (or its server reachable)."""
        return self.recognizer.ready

    async def close(self) -> None:
        await self.recognizer.close()

    async def StreamingRecognize(
        self, request_iterator: AsyncIterator[stt_pb2.StreamingRecognizeRequest], context: Ctx
    ) -> AsyncIterator[stt_pb2.StreamingRecognizeResponse]:
        await self._require_ready(context)
        first, requests = await config_first(request_iterator, context)
        if first is None:
            return
        config = first.config
        if config.HasField("endpoint_silence"):
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "endpoint_silence (endpointing in the stt service) is not built yet; end each "
                "utterance with CONTROL_ACTION_END_OF_UTTERANCE",
            )
        try:
            encoding, rate = audio_format(config.audio_format)
            vocabulary = self._check_config(config)
        except BadRequestError as exc:
            await abort_invalid(context, str(exc))
        flushes = _FlushSpans(self.tracer)
        inputs = _Inputs(requests, AudioDecoder(encoding, rate), flushes)
        finals = 0
        results = self.recognizer.stream(inputs, sample_rate=BACKEND_RATE, vocabulary=vocabulary)
        try:
            async for result in results:
                if inputs.error is not None:
                    break
                flushes.answer(result)
                if not result.is_final and not config.partial_results:
                    continue
                if result.is_final:
                    finals += 1
                sent = apply_no_speech_threshold(result, config.no_speech_threshold)
                yield stt_pb2.StreamingRecognizeResponse(transcript=transcript_pb(sent))
        except BadRequestError:
            pass  # reported below
        except (RecognizerUnavailableError, TimeoutError, RecognizerError) as exc:
            await _backend_failed(context, self.recognizer, exc)
        finally:
            flushes.close()
            with contextlib.suppress(BadRequestError):
                await results.aclose()
        if inputs.error is not None:
            await abort_invalid(context, inputs.error)
        usage = usage_pb2.Usage(audio_in_seconds=inputs.decoder.received_s)
        yield stt_pb2.StreamingRecognizeResponse(
            summary=stt_pb2.RecognitionSummary(usage=usage, utterance_count=finals)
        )

    async def Recognize(
        self, request: stt_pb2.RecognizeRequest, context: Ctx
    ) -> stt_pb2.RecognizeResponse:
        await self._require_ready(context)
        try:
            encoding, rate = audio_format(request.config.audio_format)
            vocabulary = self._check_config(request.config)
            pcm = decode_whole(request.audio, encoding, rate)
        except (BadRequestError, ValueError) as exc:
            await abort_invalid(context, str(exc))
        try:
            final = await self.recognizer.transcribe(
                pcm, sample_rate=BACKEND_RATE, vocabulary=vocabulary
            )
        except (RecognizerUnavailableError, TimeoutError, RecognizerError) as exc:
            await _backend_failed(context, self.recognizer, exc)
        final = apply_no_speech_threshold(final, request.config.no_speech_threshold)
        return stt_pb2.RecognizeResponse(
            transcript=transcript_pb(final),
            usage=usage_pb2.Usage(audio_in_seconds=final.audio_s),
        )

    def _check_config(self, config: stt_pb2.RecognitionConfig) -> Vocabulary:
        """The config's vocabulary; ``BadRequestError`` for anything the service cannot do."""
        if config.language and not _same_language(config.language, self.language):
            raise BadRequestError(
                f"language {config.language!r} is not supported; this service speaks "
                f"{self.language!r}"
            )
        if not 0 <= config.no_speech_threshold <= 1:
            raise BadRequestError(
                f"no_speech_threshold {config.no_speech_threshold} is outside 0 .. 1"
            )
        try:
            return vocabulary_of(config.phrase_hints, config.phrase_boost)
        except ValueError as exc:
            raise BadRequestError(str(exc)) from exc

    async def _require_ready(self, context: Ctx) -> None:
        if not self.recognizer.ready:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"stt backend {self.recognizer.backend_name} is not ready yet (model loading)",
            )


def _same_language(asked: str, spoken: str) -> bool:
    asked_l, spoken_l = asked.lower(), spoken.lower()
    return asked_l == spoken_l or asked_l == spoken_l.split("-")[0]


async def _backend_failed(context: Ctx, recognizer: SpeechRecognizer, exc: Exception) -> NoReturn:
    code = (
        grpc.StatusCode.INTERNAL
        if isinstance(exc, RecognizerError)
        else grpc.StatusCode.UNAVAILABLE
    )
    reason = str(exc) or f"no result within {recognizer.options.final_timeout_s}s"
    await context.abort(code, f"stt backend {recognizer.backend_name} failed: {reason}")
    raise AssertionError("unreachable")


SPEECH_TO_TEXT = service_name(SpeechToTextService)


def register(server: grpc.aio.Server, servicer: SpeechToTextService) -> None:
    stt_pb2_grpc.add_SpeechToTextServicer_to_server(servicer, server)
