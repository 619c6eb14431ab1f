"""NVIDIA Riva recognizer: one ``RivaSpeechRecognition.StreamingRecognize`` call per utterance,
over the protobufs that ``nvidia-riva-client`` ships, on a grpc.aio channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TypeAlias

import grpc
from riva.client.proto import riva_asr_pb2, riva_asr_pb2_grpc, riva_audio_pb2

from trunkline.runtime import status_lost
from trunkline.stt.backends.base import (
    RecognizerError,
    RecognizerOptions,
    RecognizerUnavailableError,
    SpeechRecognizer,
    SttTelemetry,
)
from trunkline.stt.core import Transcript, Vocabulary, combined_confidence

_TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}
)


@dataclass(frozen=True, slots=True)
class RivaConfig:
    address: str = "127.0.0.1:50051"
    language_code: str = "en-US"
    model: str = ""
    automatic_punctuation: bool = True
    interim_results: bool = True
    phrase_hints: tuple[str, ...] = ()
    """Phrases every stream favours (the process's own), besides each stream's vocabulary."""
    boost: float = 4.0
    """``SpeechContext.boost`` for a vocabulary that names none."""
    metadata: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class RivaRecognizer(SpeechRecognizer):
    backend_name = "riva"

    def __init__(
        self,
        config: RivaConfig | None = None,
        options: RecognizerOptions | None = None,
        telemetry: SttTelemetry | None = None,
    ) -> None:
        super().__init__(options, telemetry)
        self.config = config or RivaConfig()
        self._channel: grpc.aio.Channel | None = None
        self._stub: riva_asr_pb2_grpc.RivaSpeechRecognitionStub | None = None

    async def _start_impl(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.config.address)
        await self._channel.channel_ready()
        self._stub = riva_asr_pb2_grpc.RivaSpeechRecognitionStub(self._channel)

    async def _close_impl(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = None

    def streaming_config(
        self, sample_rate: int, vocabulary: Vocabulary | None = None
    ) -> riva_asr_pb2.StreamingRecognitionConfig:
        """The stream's first message: audio format, language, and one speech context per
        phrase list (the stream's vocabulary at its boost, the process's hints at the default
        boost), as ``riva.client.add_word_boosting_to_config`` builds them."""
        config = riva_asr_pb2.RecognitionConfig(
            encoding=riva_audio_pb2.AudioEncoding.LINEAR_PCM,
            sample_rate_hertz=sample_rate,
            language_code=self.config.language_code,
            max_alternatives=1,
            audio_channel_count=1,
            enable_automatic_punctuation=self.config.automatic_punctuation,
            model=self.config.model,
        )
        if vocabulary:
            config.speech_contexts.append(
                riva_asr_pb2.SpeechContext(
                    phrases=list(vocabulary.phrases), boost=vocabulary.boost or self.config.boost
                )
            )
        if self.config.phrase_hints:
            config.speech_contexts.append(
                riva_asr_pb2.SpeechContext(
                    phrases=list(self.config.phrase_hints), boost=self.config.boost
                )
            )
        return riva_asr_pb2.StreamingRecognitionConfig(
            config=config, interim_results=self.config.interim_results
        )

    async def _utterance_impl(
        self, audio: AsyncIterator[bytes], sample_rate: int, vocabulary: Vocabulary
    ) -> AsyncGenerator[Transcript, None]:
        """Riva's own streaming finals are the stable prefix: each ``is_final`` result is kept
        as Riva sends it while the caller speaks, so at the end only Riva's last segment is
        still open. A flush answers at once with those finals and the latest interim."""
        if self._stub is None:
            raise RuntimeError("RivaRecognizer.start() was not awaited")
        streaming_config = self.streaming_config(sample_rate, vocabulary)
        events: asyncio.Queue[_Event] = asyncio.Queue()  # Riva's responses and flushes, in order
        sent = 0

        async def requests() -> AsyncIterator[riva_asr_pb2.StreamingRecognizeRequest]:
            nonlocal sent
            yield riva_asr_pb2.StreamingRecognizeRequest(streaming_config=streaming_config)
            async for chunk in audio:
                if not chunk:  # FLUSH: answer with what Riva has settled so far
                    events.put_nowait(sent / 2 / sample_rate)
                    continue
                sent += len(chunk)
                yield riva_asr_pb2.StreamingRecognizeRequest(audio_content=chunk)

        call = self._stub.StreamingRecognize(requests(), metadata=self.config.metadata or None)
        reader = asyncio.create_task(_read(call, events))
        finals: list[str] = []
        confidences: list[float] = []
        interim = ""
        try:
            while (event := await events.get()) is not None:
                if isinstance(event, BaseException):
                    raise event
                if isinstance(event, float):
                    text = " ".join([*finals, interim]).strip()
                    yield Transcript(text=text, is_final=False, audio_s=event)
                    continue
                for result in event.results:
                    if not result.alternatives:
                        continue
                    best = result.alternatives[0]
                    if result.is_final:
                        finals.append(best.transcript.strip())
                        confidences.append(float(best.confidence))
                        interim = ""
                    else:
                        interim = best.transcript.strip()
                        text = " ".join([*finals, interim]).strip()
                        yield Transcript(text=text, is_final=False)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _TRANSIENT or status_lost(exc):
                raise RecognizerUnavailableError(
                    f"riva: {exc.code().name}: {exc.details()}"
                ) from exc
            raise RecognizerError(f"riva: {exc.code().name}: {exc.details()}") from exc
        finally:
            call.cancel()
            reader.cancel()
        text = " ".join(t for t in finals if t)
        yield Transcript(
            text=text,
            is_final=True,
            no_speech=not text,
            no_speech_prob=0.0 if text else 1.0,
            confidence=combined_confidence(finals, confidences) if text else 0.0,
        )


_Event: TypeAlias = riva_asr_pb2.StreamingRecognizeResponse | float | BaseException | None


async def _read(
    call: AsyncIterator[riva_asr_pb2.StreamingRecognizeResponse], events: asyncio.Queue[_Event]
) -> None:
    """Riva's responses into ``events``, then None (or the error that ended them)."""
    try:
        async for response in call:
            events.put_nowait(response)
    except Exception as exc:  # re-raised by the reading side
        events.put_nowait(exc)
        return
    events.put_nowait(None)
