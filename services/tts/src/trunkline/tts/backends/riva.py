"""NVIDIA Riva synthesizer: ``RivaSpeechSynthesis.SynthesizeOnline`` per clause, over the
protobufs that ``nvidia-riva-client`` ships, on a grpc.aio channel."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import grpc
from riva.client.proto import riva_audio_pb2, riva_tts_pb2, riva_tts_pb2_grpc

from trunkline.audio.pcm import pcm16_to_float32
from trunkline.runtime import status_lost
from trunkline.tts.backends.base import (
    NativeAudio,
    SynthesisOptions,
    Synthesizer,
    SynthesizerError,
    SynthesizerUnavailableError,
    TtsTelemetry,
)
from trunkline.tts.core import VoiceInfo

_TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}
)


@dataclass(frozen=True, slots=True)
class RivaTtsConfig:
    address: str = "127.0.0.1:50051"
    voice_name: str = "English-US.Female-1"
    language_code: str = "en-US"
    sample_rate: int = 22_050
    metadata: tuple[tuple[str, str], ...] = ()


class RivaSynthesizer(Synthesizer):
    backend_name = "riva"

    def __init__(
        self,
        config: RivaTtsConfig | None = None,
        options: SynthesisOptions | None = None,
        telemetry: TtsTelemetry | None = None,
    ) -> None:
        super().__init__(options, telemetry)
        self.config = config or RivaTtsConfig()
        self._channel: grpc.aio.Channel | None = None
        self._stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub | None = None

    async def _start_impl(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.config.address)
        await self._channel.channel_ready()
        self._stub = riva_tts_pb2_grpc.RivaSpeechSynthesisStub(self._channel)

    async def _close_impl(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = None

    def voices(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(
                voice_id=self.config.voice_name,
                language=self.config.language_code,
                native_sample_rate=self.config.sample_rate,
                backend=self.backend_name,
                description="NVIDIA Riva voice",
            )
        ]

    def request(self, text: str, voice: VoiceInfo) -> riva_tts_pb2.SynthesizeSpeechRequest:
        return riva_tts_pb2.SynthesizeSpeechRequest(
            text=text,
            language_code=voice.language,
            encoding=riva_audio_pb2.AudioEncoding.LINEAR_PCM,
            sample_rate_hz=voice.native_sample_rate,
            voice_name=voice.voice_id,
        )

    async def _synthesize_impl(
        self, text: str, voice: VoiceInfo, speaking_rate: float
    ) -> AsyncGenerator[NativeAudio, None]:
        if self._stub is None:
            raise RuntimeError("RivaSynthesizer.start() was not awaited")
        request = self.request(text, voice)

        async def requests() -> AsyncIterator[riva_tts_pb2.SynthesizeSpeechRequest]:
            yield request

        call = self._stub.SynthesizeOnline(requests(), metadata=self.config.metadata or None)
        carry = b""
        try:
            async for response in call:
                data = carry + response.audio
                carry = data[len(data) - len(data) % 2 :]
                if len(data) >= 2:
                    pcm = data[: len(data) - len(carry)]
                    yield NativeAudio(pcm16_to_float32(pcm), voice.native_sample_rate)
        except grpc.aio.AioRpcError as exc:
            message = f"riva: {exc.code().name}: {exc.details()}"
            if exc.code() in _TRANSIENT or status_lost(exc):
                raise SynthesizerUnavailableError(message) from exc
            raise SynthesizerError(message) from exc
        finally:
            call.cancel()
