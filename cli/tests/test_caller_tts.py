"""Text turns spoken by a TextToSpeech gRPC server on loopback (a scripted servicer)."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc import aio

from trunkline.audio import mulaw_decode
from trunkline.cli.caller import CallerTurn, prepare_script
from trunkline.cli.caller.tts import SynthesisError
from trunkline.proto.common.v1 import audio_pb2
from trunkline.proto.tts.v1 import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.integration


class ScriptedTts(tts_pb2_grpc.TextToSpeechServicer):
    """Speaks 10 ms of tone per character, in 40 ms chunks, at the configured rate."""

    def __init__(self) -> None:
        self.voices = ["agent-voice", "caller-voice"]
        self.configs: list[tts_pb2.SynthesisConfig] = []
        self.tenants: list[str] = []

    async def ListVoices(  # noqa: N802 - the gRPC method name
        self, request: Any, context: Any
    ) -> tts_pb2.ListVoicesResponse:
        return tts_pb2.ListVoicesResponse(voices=[tts_pb2.Voice(id=v) for v in self.voices])

    async def StreamingSynthesize(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[tts_pb2.StreamingSynthesizeRequest], context: Any
    ) -> AsyncIterator[tts_pb2.StreamingSynthesizeResponse]:
        rate = 0
        async for request in request_iterator:
            if request.WhichOneof("request") == "config":
                self.configs.append(request.config)
                self.tenants.append(request.context.tenant_id)
                rate = request.config.audio_format.sample_rate_hz
                continue
            clause = request.text
            if clause.text == "fail":
                await context.abort(grpc.StatusCode.INTERNAL, "synthesis failed")
            n = rate * len(clause.text) // 100
            pcm = (8000 * np.sin(2 * np.pi * 300 * np.arange(n) / rate)).astype("<i2").tobytes()
            step = rate * 2 * 40 // 1000
            chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
            for k, chunk in enumerate(chunks):
                yield tts_pb2.StreamingSynthesizeResponse(
                    audio=tts_pb2.AudioChunk(clause_id=clause.clause_id, sequence=k, audio=chunk)
                )
            yield tts_pb2.StreamingSynthesizeResponse(
                clause_done=tts_pb2.ClauseDone(clause_id=clause.clause_id, chunk_count=len(chunks))
            )


@pytest.fixture
async def tts() -> AsyncIterator[tuple[str, ScriptedTts]]:
    server = aio.server()
    servicer = ScriptedTts()
    tts_pb2_grpc.add_TextToSpeechServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", servicer
    await server.stop(None)


async def test_text_turns_are_synthesized_in_another_voice(
    tts: tuple[str, ScriptedTts], tmp_path: Path
) -> None:
    addr, servicer = tts
    wav_path = tmp_path / "w.wav"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00\x10" * 16000)
    turns = [CallerTurn(text="a" * 50), CallerTurn(wav=wav_path), CallerTurn(text="b" * 120)]
    script = await prepare_script(turns, tts_addr=addr, tenant="acme", agent_voice="agent-voice")
    (config,) = servicer.configs
    assert config.voice == "caller-voice"
    assert config.speaking_rate == 0.0
    assert config.audio_format.encoding == audio_pb2.AUDIO_ENCODING_PCM16
    assert servicer.tenants == ["acme"]
    assert [len(p.mulaw) for p in script] == [pytest.approx(n, abs=2) for n in (4000, 8000, 9600)]
    level = np.sqrt(np.mean(mulaw_decode(script[0].mulaw)[400:-400].astype(np.float64) ** 2))
    assert level == pytest.approx(8000 / np.sqrt(2), rel=0.05)


async def test_synthesis_failure_is_a_clear_error(tts: tuple[str, ScriptedTts]) -> None:
    addr, _ = tts
    with pytest.raises(SynthesisError, match="synthesis failed"):
        await prepare_script([CallerTurn(text="fail")], tts_addr=addr, voice="")


async def test_with_one_voice_the_caller_speaks_at_another_rate(
    tts: tuple[str, ScriptedTts],
) -> None:
    addr, servicer = tts
    servicer.voices = ["agent-voice"]
    await prepare_script([CallerTurn(text="hello")], tts_addr=addr, agent_voice="agent-voice")
    (config,) = servicer.configs
    assert config.voice == ""
    assert config.speaking_rate == pytest.approx(1.1)
