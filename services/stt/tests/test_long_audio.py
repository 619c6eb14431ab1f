"""Recognize over more than Whisper's 30 s window, with the real model, over gRPC."""

from __future__ import annotations

import wave
from pathlib import Path

import grpc
import pytest

from trunkline.config import ServiceSettings
from trunkline.proto.common.v1 import audio_pb2, call_pb2
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc
from trunkline.runtime import ServiceShell
from trunkline.stt.backends.whisper import WhisperRecognizer
from trunkline.stt.server import SPEECH_TO_TEXT, SpeechToTextService, register

pytestmark = pytest.mark.integration

WAV = (
    Path(__file__).resolve().parents[3] / "tests" / "data" / "audio" / "hours-joe-16k.wav"
)  # Piper: "...hours..." 2.7 s


def long_utterance(repeats: int) -> bytes:
    with wave.open(str(WAV)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16_000, 2, 1)
        speech = bytes(wav.readframes(wav.getnframes()))
    pause = bytes(int(0.4 * 16_000) * 2)
    return (speech + pause) * repeats


async def test_recognize_over_30_seconds_joins_the_windows_texts() -> None:
    audio = long_utterance(12)  # about 37 s
    assert len(audio) / 32_000 > 30
    recognizer = WhisperRecognizer()
    await recognizer.start()
    servicer = SpeechToTextService(recognizer)
    shell = ServiceShell(
        ServiceSettings(grpc_port=0, drain_seconds=1.0),
        services=[SPEECH_TO_TEXT],
        ready=servicer.ready,
        recheck_seconds=0.05,
    )
    port = await shell.start(lambda server: register(server, servicer))
    fmt = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=16_000)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await stt_pb2_grpc.SpeechToTextStub(channel).Recognize(
                stt_pb2.RecognizeRequest(
                    context=call_pb2.CallContext(tenant_id="acme", call_id="call-long"),
                    config=stt_pb2.RecognitionConfig(audio_format=fmt),
                    audio=audio,
                ),
                timeout=60,
            )
    finally:
        await shell.shutdown()
        await recognizer.close()
    text = reply.transcript.text.lower()
    assert reply.transcript.is_final
    assert reply.usage.audio_in_seconds == pytest.approx(len(audio) / 32_000)
    # Both windows were decoded (the repeat-cut keeps one copy of the phrase per window;
    # before windowing, a final over 30 s failed with INTERNAL).
    assert text.count("opening hours") >= 2, text
