"""NVIDIA Riva recognizer: one ``RivaSpeechRecognition.StreamingRecognize`` call per utterance,
over the protobufs that ``nvidia-riva-client`` ships, on a grpc.aio channel."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

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
        if self._stub is None:
            raise RuntimeError("RivaRecognizer.start() was not awaited")
        streaming_config = self.streaming_config(sample_rate, vocabulary)

        async def requests() -> AsyncIterator[riva_asr_pb2.StreamingRecognizeRequest]:
            yield riva_asr_pb2.StreamingRecognizeRequest(streaming_config=streaming_config)
            async for chunk in audio:
                yield riva_asr_pb2.StreamingRecognizeRequest(audio_content=chunk)

        call = self._stub.StreamingRecognize(requests(), metadata=self.config.metadata or None)
        finals: list[str] = []
        confidences: list[float] = []
        try:
            async for response in call:
                for result in response.results:
                    if not result.alternatives:
                        continue
                    best = result.alternatives[0]
                    if result.is_final:
                        finals.append(best.transcript.strip())
                        confidences.append(float(best.confidence))
                    else:
                        text = " ".join([*finals, best.transcript.strip()]).strip()
                        yield Transcript(text=text, is_final=False)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _TRANSIENT or status_lost(exc):
                raise RecognizerUnavailableError(
                    f"riva: {exc.code().name}: {exc.details()}"
                ) from exc
            raise RecognizerError(f"riva: {exc.code().name}: {exc.details()}") from exc
        finally:
            call.cancel()
        text = " ".join(t for t in finals if t)
        yield Transcript(
            text=text,
            is_final=True,
            no_speech=not text,
            no_speech_prob=0.0 if text else 1.0,
            confidence=combined_confidence(finals, confidences) if text else 0.0,
        )
