# ruff: noqa: N802  (servicer methods carry the proto RPC names)
"""gRPC surface of tts: ``trunkline.tts.v1.TextToSpeech`` (proto <-> domain only).

``StreamingSynthesize``: a config first (voice, output format, speaking rate, chunk size), then
text clauses and cancels. The synthesizer reads the requests in its own task while this
handler writes audio, so a cancel overtakes queued text even while audio flows. Bad input is
``INVALID_ARGUMENT`` naming the problem; a backend that is down or misses its deadline is
``UNAVAILABLE``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import grpc
from google.protobuf.duration_pb2 import Duration

from trunkline.audio import SUPPORTED_RATES, pcm16_to_mulaw
from trunkline.proto.common.v1 import audio_pb2, usage_pb2
from trunkline.proto.tts.v1 import tts_pb2, tts_pb2_grpc
from trunkline.runtime import service_name
from trunkline.runtime.streams import abort_invalid, config_first
from trunkline.tts.backends import (
    StreamSettings,
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

Ctx = grpc.aio.ServicerContext[Any, Any]
Encoding = Literal["pcm16", "mulaw"]

MULAW_DEFAULT_RATE = 8000
SPEAKING_RATES = (0.25, 4.0)
CHUNK_SECONDS = (0.01, 1.0)


class BadRequestError(Exception):
    """The client broke the stream's contract; answered INVALID_ARGUMENT with this message."""


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(max(seconds, 0.0) * 1e9))
    return value


@dataclass(frozen=True, slots=True)
class OutputFormat:
    encoding: Encoding
    settings: StreamSettings


def output_format(config: tts_pb2.SynthesisConfig, voice: VoiceInfo) -> OutputFormat:
    """The stream settings a config asks for, or ``BadRequestError`` naming what is wrong."""
    fmt = config.audio_format
    if fmt.encoding == audio_pb2.AUDIO_ENCODING_MULAW:
        encoding: Encoding = "mulaw"
        rate = fmt.sample_rate_hz or MULAW_DEFAULT_RATE
    elif fmt.encoding in (audio_pb2.AUDIO_ENCODING_PCM16, audio_pb2.AUDIO_ENCODING_UNSPECIFIED):
        encoding = "pcm16"
        rate = fmt.sample_rate_hz or voice.native_sample_rate
    else:
        raise BadRequestError(
            f"audio_format.encoding {_encoding_name(fmt.encoding)} is not supported; use "
            "AUDIO_ENCODING_PCM16 or AUDIO_ENCODING_MULAW"
        )
    if rate not in SUPPORTED_RATES:
        raise BadRequestError(
            f"audio_format.sample_rate_hz {rate} is not supported; supported: {SUPPORTED_RATES}"
        )
    if fmt.channels > 1:
        raise BadRequestError(f"audio_format.channels {fmt.channels}: only mono audio is supported")
    speaking_rate = config.speaking_rate or 1.0
    if not SPEAKING_RATES[0] <= speaking_rate <= SPEAKING_RATES[1]:
        raise BadRequestError(f"speaking_rate {speaking_rate} is outside {SPEAKING_RATES}")
    chunk_s = config.chunk_duration.ToNanoseconds() / 1e9 if config.chunk_duration else 0.0
    if chunk_s and not CHUNK_SECONDS[0] <= chunk_s <= CHUNK_SECONDS[1]:
        raise BadRequestError(f"chunk_duration {chunk_s}s is outside {CHUNK_SECONDS} seconds")
    settings = StreamSettings(
        sample_rate=rate, voice=voice.voice_id, speaking_rate=speaking_rate, chunk_s=chunk_s or None
    )
    return OutputFormat(encoding, settings)


def _encoding_name(value: audio_pb2.AudioEncoding.ValueType) -> str:
    if value in audio_pb2.AudioEncoding.values():
        return audio_pb2.AudioEncoding.Name(value)
    return str(value)


class _Inputs:
    """The stream's requests after the config, as domain inputs; keeps each clause's size."""

    def __init__(self, requests: AsyncIterator[tts_pb2.StreamingSynthesizeRequest]) -> None:
        self._requests = requests
        self.characters: dict[str, int] = {}
        self._seen: set[str] = set()
        self.error: str | None = None

    async def __aiter__(self) -> AsyncIterator[TtsInput]:
        async for request in self._requests:
            kind = request.WhichOneof("request")
            if kind == "text":
                clause_id = request.text.clause_id
                if not clause_id:
                    self._fail("text.clause_id is required")
                if clause_id in self._seen:
                    self._fail(f"text.clause_id {clause_id!r} was already used in this stream")
                self._seen.add(clause_id)
                self.characters[clause_id] = len(request.text.text)
                yield Clause(clause_id, request.text.text)
            elif kind == "cancel":
                yield Cancel(request.cancel.reason)
            elif kind == "config":
                self._fail("a second config: the config is sent once, on the first message")
            else:
                self._fail("a request carries none of config, text or cancel")

    def _fail(self, message: str) -> NoReturn:
        self.error = message
        raise BadRequestError(message)


class _Responses:
    """Domain events -> responses, encoding audio and keeping the audio sent per clause."""

    def __init__(self, encoding: Encoding, inputs: _Inputs) -> None:
        self._encoding = encoding
        self._inputs = inputs
        self._audio_s: dict[str, float] = {}

    def convert(self, event: TtsOutput) -> tts_pb2.StreamingSynthesizeResponse:
        if isinstance(event, SpeechChunk):
            self._audio_s[event.clause_id] = self._audio_s.get(event.clause_id, 0.0) + (
                event.duration_s
            )
            audio = pcm16_to_mulaw(event.pcm) if self._encoding == "mulaw" else event.pcm
            return tts_pb2.StreamingSynthesizeResponse(
                audio=tts_pb2.AudioChunk(
                    clause_id=event.clause_id,
                    sequence=event.sequence,
                    audio=audio,
                    duration=duration(event.duration_s),
                )
            )
        if isinstance(event, ClauseDone):
            self._forget(event.clause_id)
            return tts_pb2.StreamingSynthesizeResponse(
                clause_done=tts_pb2.ClauseDone(
                    clause_id=event.clause_id,
                    chunk_count=event.chunk_count,
                    audio_duration=duration(event.audio_s),
                    time_to_first_audio=duration(event.time_to_first_audio_s),
                    synthesis_time=duration(event.synthesis_s),
                    usage=usage_pb2.Usage(
                        characters=event.characters, audio_out_seconds=event.audio_s
                    ),
                )
            )
        return tts_pb2.StreamingSynthesizeResponse(cancelled=self._cancelled(event))

    def _cancelled(self, event: Cancelled) -> tts_pb2.SynthesisCancelled:
        audio_s, characters = 0.0, 0
        for clause_id in event.clause_ids:
            spoken = self._audio_s.get(clause_id, 0.0)
            audio_s += spoken
            characters += self._inputs.characters.get(clause_id, 0) if spoken else 0
            self._forget(clause_id)
        return tts_pb2.SynthesisCancelled(
            clause_ids=list(event.clause_ids),
            cancel_time=duration(event.cancel_s),
            usage=usage_pb2.Usage(characters=characters, audio_out_seconds=audio_s),
        )

    def _forget(self, clause_id: str) -> None:
        self._audio_s.pop(clause_id, None)
        self._inputs.characters.pop(clause_id, None)


class TextToSpeechService(tts_pb2_grpc.TextToSpeechServicer):
    """Streaming synthesis and the voice list over one shared synthesizer."""

    def __init__(self, synthesizer: Synthesizer, *, default_voice: str = "") -> None:
        self.synthesizer = synthesizer
        self.default_voice = default_voice

    async def ready(self) -> bool:
        """True once the voice model is loaded (or the synthesis server reachable)."""
        return self.synthesizer.ready

    async def close(self) -> None:
        await self.synthesizer.close()

    async def StreamingSynthesize(
        self, request_iterator: AsyncIterator[tts_pb2.StreamingSynthesizeRequest], context: Ctx
    ) -> AsyncIterator[tts_pb2.StreamingSynthesizeResponse]:
        await self._require_ready(context)
        first, requests = await config_first(request_iterator, context)
        if first is None:
            return
        try:
            fmt = output_format(first.config, self._voice(first.config.voice))
        except BadRequestError as exc:
            await abort_invalid(context, str(exc))
        inputs = _Inputs(requests)
        responses = _Responses(fmt.encoding, inputs)
        events = self.synthesizer.stream(inputs, fmt.settings)
        try:
            async for event in events:
                if inputs.error is not None:
                    break
                yield responses.convert(event)
        except BadRequestError:
            pass  # reported below
        except (SynthesizerUnavailableError, TimeoutError, SynthesizerError) as exc:
            await _backend_failed(context, self.synthesizer, exc)
        finally:
            with contextlib.suppress(BadRequestError):
                await events.aclose()
        if inputs.error is not None:
            await abort_invalid(context, inputs.error)

    async def ListVoices(
        self, request: tts_pb2.ListVoicesRequest, context: Ctx
    ) -> tts_pb2.ListVoicesResponse:
        await self._require_ready(context)
        voices = [
            tts_pb2.Voice(
                id=voice.voice_id,
                language=voice.language,
                native_sample_rate_hz=voice.native_sample_rate,
                backend=voice.backend,
                description=voice.description,
            )
            for voice in self.synthesizer.voices()
            if _language_matches(request.language, voice.language)
        ]
        return tts_pb2.ListVoicesResponse(voices=voices)

    def _voice(self, voice_id: str) -> VoiceInfo:
        voices = self.synthesizer.voices()
        wanted = voice_id or self.default_voice
        if not wanted:
            return voices[0]
        for voice in voices:
            if voice.voice_id == wanted:
                return voice
        known = ", ".join(voice.voice_id for voice in voices)
        raise BadRequestError(f"unknown voice {wanted!r}; known voices: {known}")

    async def _require_ready(self, context: Ctx) -> None:
        if not self.synthesizer.ready:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"tts backend {self.synthesizer.backend_name} is not ready yet (model loading)",
            )


def _language_matches(asked: str, language: str) -> bool:
    """Empty asks for all; "en" matches "en-US"; "en-US" matches only "en-US"."""
    if not asked:
        return True
    asked_l, language_l = asked.lower(), language.lower()
    return asked_l == language_l or ("-" not in asked_l and language_l.split("-")[0] == asked_l)


async def _backend_failed(context: Ctx, synthesizer: Synthesizer, exc: Exception) -> NoReturn:
    code = (
        grpc.StatusCode.INTERNAL
        if isinstance(exc, SynthesizerError)
        else grpc.StatusCode.UNAVAILABLE
    )
    reason = str(exc) or f"no audio within {synthesizer.options.first_audio_timeout_s}s"
    await context.abort(code, f"tts backend {synthesizer.backend_name} failed: {reason}")
    raise AssertionError("unreachable")


TEXT_TO_SPEECH = service_name(TextToSpeechService)


def register(server: grpc.aio.Server, servicer: TextToSpeechService) -> None:
    tts_pb2_grpc.add_TextToSpeechServicer_to_server(servicer, server)
