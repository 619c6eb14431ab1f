"""STT over gRPC: one ``StreamingRecognize`` stream per utterance.

The utterance (speculatively, at the caller's first silent frame) is streamed in 100 ms chunks,
then ``END_OF_UTTERANCE``; the first final transcript is the answer. No final means no speech.
The agent's vocabulary (``trunkline.agents.vocabulary``) goes in the config as phrase hints.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
from opentelemetry import trace

from trunkline.gateway.peers.base import PeerEnv, Transcriber
from trunkline.gateway.peers.grpc_common import call_context, ms, rpc_errors
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo, Transcript
from trunkline.proto.common.v1 import audio_pb2
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc

CHUNK_BYTES = 3200  # 100 ms of 16 kHz PCM16
PCM16_16K = audio_pb2.AudioFormat(
    encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=16000, channels=1
)


class GrpcTranscriber(Transcriber):
    def __init__(
        self,
        env: PeerEnv,
        channel: grpc.aio.Channel,
        *,
        language: str = "",
        phrase_hints: Sequence[str] = (),
        phrase_boost: float = 0.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(env, policy)
        self._stub = stt_pb2_grpc.SpeechToTextStub(channel)
        self._config = stt_pb2.RecognitionConfig(
            audio_format=PCM16_16K,
            language=language,
            phrase_hints=list(phrase_hints),
            phrase_boost=phrase_boost,
        )

    async def _transcribe(self, call: CallInfo, audio: bytes) -> Transcript:
        stream = self._stub.StreamingRecognize(self._requests(call, audio))
        try:
            with rpc_errors(self.stage):
                async for response in stream:
                    if response.WhichOneof("response") != "transcript":
                        continue
                    transcript = response.transcript
                    if transcript.is_final:
                        _annotate(transcript)
                        return Transcript(str(transcript.text), float(transcript.confidence))
        finally:
            stream.cancel()  # no-op once the stream is over; else we no longer need it
        trace.get_current_span().add_event("no final transcript (no speech)")
        return Transcript("", 0.0)

    async def _requests(
        self, call: CallInfo, audio: bytes
    ) -> AsyncIterator[stt_pb2.StreamingRecognizeRequest]:
        yield stt_pb2.StreamingRecognizeRequest(context=call_context(call), config=self._config)
        for start in range(0, len(audio), CHUNK_BYTES):
            yield stt_pb2.StreamingRecognizeRequest(audio=audio[start : start + CHUNK_BYTES])
        end = stt_pb2.RecognitionControl(action=stt_pb2.CONTROL_ACTION_END_OF_UTTERANCE)
        yield stt_pb2.StreamingRecognizeRequest(control=end)


def _annotate(transcript: stt_pb2.Transcript) -> None:
    span = trace.get_current_span()
    span.set_attribute("stt.processing_ms", ms(transcript.processing_time))
    span.set_attribute("stt.audio_ms", ms(transcript.audio_duration))
    span.set_attribute("stt.confidence", float(transcript.confidence))
    span.set_attribute("stt.no_speech_probability", float(transcript.no_speech_probability))
