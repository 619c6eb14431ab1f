"""TTS over gRPC: one ``StreamingSynthesize`` stream per clause.

Config (voice, PCM16 at the transport's output rate) and the clause go in; audio chunks come
out until ``ClauseDone``.
Closing the iterator early (barge-in) cancels the RPC: the server drops the clause.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import grpc
from opentelemetry import trace

from trunkline.gateway.peers.base import PeerEnv, Synthesizer
from trunkline.gateway.peers.grpc_common import call_context, ms, rpc_errors
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.profile import VoiceProfile
from trunkline.proto.common.v1 import audio_pb2
from trunkline.proto.tts.v1 import tts_pb2, tts_pb2_grpc


class GrpcSynthesizer(Synthesizer):
    def __init__(
        self,
        env: PeerEnv,
        channel: grpc.aio.Channel,
        voice: VoiceProfile | None = None,
        policy: RetryPolicy | None = None,
        sample_rate: int = 16000,
    ) -> None:
        """``sample_rate``: the transport's output rate (8 kHz telephony, 48 kHz WebRTC)."""
        super().__init__(env, policy)
        self.sample_rate = sample_rate
        self._stub = tts_pb2_grpc.TextToSpeechStub(channel)
        voice = voice or VoiceProfile()
        audio_format = audio_pb2.AudioFormat(
            encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=sample_rate, channels=1
        )
        self._config = tts_pb2.SynthesisConfig(
            voice=voice.name, audio_format=audio_format, speaking_rate=voice.speaking_rate
        )
        self._ids = itertools.count(1)

    async def _synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]:
        clause_id = f"c{next(self._ids)}"
        requests = [
            tts_pb2.StreamingSynthesizeRequest(context=call_context(call), config=self._config),
            tts_pb2.StreamingSynthesizeRequest(
                text=tts_pb2.TextClause(clause_id=clause_id, text=text)
            ),
        ]
        stream = self._stub.StreamingSynthesize(iter(requests))
        carry = b""  # an odd byte split across chunks stays until its pair arrives
        try:
            with rpc_errors(self.stage):
                async for response in stream:
                    match response.WhichOneof("response"):
                        case "audio":
                            pcm = carry + response.audio.audio
                            cut = len(pcm) - len(pcm) % 2
                            carry = pcm[cut:]
                            if cut:
                                yield pcm[:cut]
                        case "clause_done":
                            _annotate(response.clause_done)
                            return
                        case "cancelled":
                            return
        finally:
            stream.cancel()  # no-op after the end; drops the clause when closed early


def _annotate(done: tts_pb2.ClauseDone) -> None:
    span = trace.get_current_span()
    span.set_attribute("tts.server_ttfa_ms", ms(done.time_to_first_audio))
    span.set_attribute("tts.synthesis_ms", ms(done.synthesis_time))
    span.set_attribute("tts.audio_ms", ms(done.audio_duration))
    span.set_attribute("tts.chunks", done.chunk_count)
