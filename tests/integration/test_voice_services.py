"""The stt and tts processes (``python -m trunkline.stt`` / ``python -m trunkline.tts``) with
their real models, spoken to over gRPC only: what TTS says, STT hears; a cancel stops speech
mid-clause and is acknowledged; each turns SERVING once its model is loaded."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import grpc
import pytest

from trunkline.devservers import free_port
from trunkline.proto.common.v1 import audio_pb2, call_pb2
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc
from trunkline.proto.tts.v1 import tts_pb2, tts_pb2_grpc
from trunkline.runtime import wait_healthy

pytestmark = pytest.mark.integration

SPEECH_TO_TEXT = "trunkline.stt.v1.SpeechToText"
TEXT_TO_SPEECH = "trunkline.tts.v1.TextToSpeech"
TENANT = call_pb2.CallContext(tenant_id="acme", call_id="call-7")
MULAW_8K = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_MULAW, sample_rate_hz=8000)
PCM16_16K = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=16_000)


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    addr: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def launch(module: str, prefix: str, log: Path) -> Process:
    port = free_port()
    env = {
        **os.environ,
        f"{prefix}_GRPC_PORT": str(port),
        f"{prefix}_LOG_JSON": "false",
        f"{prefix}_DRAIN_SECONDS": "2",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=out, stderr=out)
    return Process(proc, f"127.0.0.1:{port}", log)


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Process]]:
    logs = tmp_path_factory.mktemp("voice")
    stt = launch("trunkline.stt", "STT", logs / "stt.log")
    tts = launch("trunkline.tts", "TTS", logs / "tts.log")
    try:
        yield stt, tts
    finally:
        for process in (stt, tts):
            if process.proc.poll() is None:
                process.proc.terminate()
            process.proc.wait(15)


@pytest.fixture
async def stubs(
    processes: tuple[Process, Process],
) -> AsyncIterator[tuple[stt_pb2_grpc.SpeechToTextStub, tts_pb2_grpc.TextToSpeechStub]]:
    stt, tts = processes
    for process, service in ((stt, SPEECH_TO_TEXT), (tts, TEXT_TO_SPEECH)):
        try:
            await wait_healthy(process.addr, service, timeout=60)
        except TimeoutError as exc:
            raise AssertionError(process.log_text()) from exc
    async with (
        grpc.aio.insecure_channel(stt.addr) as stt_channel,
        grpc.aio.insecure_channel(tts.addr) as tts_channel,
    ):
        yield stt_pb2_grpc.SpeechToTextStub(stt_channel), tts_pb2_grpc.TextToSpeechStub(tts_channel)


def word_match(heard: str, said: str) -> float:
    """Share of words matched in order; Piper samples its noise, so tiny.en may mishear a word."""
    return SequenceMatcher(a=words(heard), b=words(said), autojunk=False).ratio()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


async def speak(
    tts: tts_pb2_grpc.TextToSpeechStub, clauses: list[str], fmt: audio_pb2.AudioFormat
) -> list[bytes]:
    """The audio chunks of ``clauses``, in order, from one synthesis stream."""

    async def requests() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
        yield tts_pb2.StreamingSynthesizeRequest(
            context=TENANT, config=tts_pb2.SynthesisConfig(audio_format=fmt)
        )
        for index, clause in enumerate(clauses):
            yield tts_pb2.StreamingSynthesizeRequest(
                text=tts_pb2.TextClause(clause_id=f"t0.c{index}", text=clause)
            )

    chunks: list[bytes] = []
    done: list[str] = []
    async for response in tts.StreamingSynthesize(requests()):
        if response.HasField("audio"):
            chunks.append(response.audio.audio)
        elif response.HasField("clause_done"):
            done.append(response.clause_done.clause_id)
            assert response.clause_done.time_to_first_audio.ToNanoseconds() > 0
    assert done == [f"t0.c{i}" for i in range(len(clauses))]
    return chunks


async def test_what_tts_says_stt_hears_over_mulaw_8k(stubs: Any) -> None:
    stt, tts = stubs
    clauses = ["Thanks for calling Bright Dental,", "how can I help you today?"]
    chunks = await speak(tts, clauses, MULAW_8K)

    async def requests() -> AsyncIterator[stt_pb2.StreamingRecognizeRequest]:
        yield stt_pb2.StreamingRecognizeRequest(
            context=TENANT, config=stt_pb2.RecognitionConfig(audio_format=MULAW_8K)
        )
        for chunk in chunks:
            yield stt_pb2.StreamingRecognizeRequest(audio=chunk)
        yield stt_pb2.StreamingRecognizeRequest(
            control=stt_pb2.RecognitionControl(action=stt_pb2.CONTROL_ACTION_END_OF_UTTERANCE)
        )

    responses = [r async for r in stt.StreamingRecognize(requests())]
    final = responses[0].transcript
    assert final.is_final
    assert word_match(final.text, " ".join(clauses)) >= 0.8, final.text
    assert final.confidence > 0.3
    spoken_s = sum(len(chunk) for chunk in chunks) / 8000
    assert responses[-1].summary.usage.audio_in_seconds == pytest.approx(spoken_s)
    assert responses[-1].summary.utterance_count == 1


async def test_recognize_hears_a_pcm16_utterance(stubs: Any) -> None:
    stt, tts = stubs
    text = "Please transfer me to a human agent."
    audio = b"".join(await speak(tts, [text], PCM16_16K))
    reply = await stt.Recognize(
        stt_pb2.RecognizeRequest(
            context=TENANT, config=stt_pb2.RecognitionConfig(audio_format=PCM16_16K), audio=audio
        )
    )
    assert word_match(reply.transcript.text, text) >= 0.8, reply.transcript.text
    assert reply.usage.audio_in_seconds == pytest.approx(len(audio) / 2 / 16_000)


async def test_cancel_cuts_a_clause_mid_speech_and_is_acknowledged(stubs: Any) -> None:
    _, tts = stubs
    long_clause = (
        "Our office is open. We are closed on weekends and on public holidays. "
        "Holidays follow the state calendar, which is posted on our website. "
        "Emergencies go to the hotline, which is answered around the clock."
    )
    full_s = sum(len(c) for c in await speak(tts, [long_clause], MULAW_8K)) / 8000
    requests: asyncio.Queue[tts_pb2.StreamingSynthesizeRequest | None] = asyncio.Queue()

    async def send() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
        while (request := await requests.get()) is not None:
            yield request

    requests.put_nowait(
        tts_pb2.StreamingSynthesizeRequest(
            context=TENANT, config=tts_pb2.SynthesisConfig(audio_format=MULAW_8K)
        )
    )
    requests.put_nowait(
        tts_pb2.StreamingSynthesizeRequest(text=tts_pb2.TextClause(clause_id="a", text=long_clause))
    )
    requests.put_nowait(
        tts_pb2.StreamingSynthesizeRequest(text=tts_pb2.TextClause(clause_id="b", text="Bye."))
    )
    call = tts.StreamingSynthesize(send())
    first = await call.read()
    assert first.audio.clause_id == "a"
    requests.put_nowait(
        tts_pb2.StreamingSynthesizeRequest(cancel=tts_pb2.CancelSynthesis(reason="barge-in"))
    )
    heard_s = len(first.audio.audio) / 8000
    while (response := await call.read()) is not grpc.aio.EOF:
        if response.HasField("cancelled"):
            break
        assert response.HasField("audio"), "no clause may finish after a cancel"
        assert response.audio.clause_id == "a"
        heard_s += len(response.audio.audio) / 8000
    assert list(response.cancelled.clause_ids) == ["a", "b"]
    assert response.cancelled.usage.audio_out_seconds == pytest.approx(heard_s)
    assert heard_s < full_s / 2  # cut mid-clause: most of it was never synthesized
    requests.put_nowait(None)
    assert await call.read() is grpc.aio.EOF  # nothing follows the acknowledgement
    assert await call.code() == grpc.StatusCode.OK


async def test_voices_are_listed(stubs: Any) -> None:
    _, tts = stubs
    reply = await tts.ListVoices(tts_pb2.ListVoicesRequest(language="en-US"))
    assert [(v.id, v.native_sample_rate_hz, v.backend) for v in reply.voices] == [
        ("en_US-joe-medium", 22_050, "piper")
    ]


async def test_both_processes_logged_their_model_ready(
    stubs: Any, processes: tuple[Process, Process]
) -> None:
    stt, tts = processes
    assert "stt backend whisper ready" in stt.log_text()
    assert "tts backend piper ready" in tts.log_text()
