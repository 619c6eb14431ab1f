"""A browser WebRTC call with real speech both ways: the STT (Whisper) and TTS (Piper) processes
behind the gateway, an aiortc peer as the browser speaking a recorded phrase. What the browser
hears (Opus, 48 kHz: Piper's audio resampled once, in TTS) is transcribed back by the STT
service and must say the greeting and the answer. Context and LLM are fakes (a fixed answer)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import grpc
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider

from trunkline.devservers import free_port
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.replies import GuardPolicy
from trunkline.gateway.fakes import FakeContext, FakeLanguageModel, RecordingSink
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.grpc_stt import GrpcTranscriber
from trunkline.gateway.peers.grpc_tts import GrpcSynthesizer
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.transports.webrtc_peer import BrowserPeer
from trunkline.gateway.vad import SileroDetector, SileroModel
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.proto.common.v1 import audio_pb2, call_pb2
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc
from trunkline.runtime import wait_healthy

pytestmark = pytest.mark.integration

AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
WAV = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio" / "hours-joe-16k.wav"
GREETING = "Thanks for calling Bright Dental, how can I help you today?"
ANSWER = "We are open from nine in the morning until five in the evening."
SLOW = RetryPolicy(timeout_s=30.0)  # first syntheses on a busy shared 2-core machine
PCM16_16K = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=16_000)


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    addr: str
    log: Path


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


@dataclass
class Rig:
    server: TestServer
    stt: stt_pb2_grpc.SpeechToTextStub
    sinks: list[RecordingSink] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def rig(processes: tuple[Process, Process]) -> AsyncIterator[Rig]:
    stt_proc, tts_proc = processes
    for process, service in (
        (stt_proc, "trunkline.stt.v1.SpeechToText"),
        (tts_proc, "trunkline.tts.v1.TextToSpeech"),
    ):
        try:
            await wait_healthy(process.addr, service, timeout=120)
        except TimeoutError as exc:
            raise AssertionError(process.log.read_text(errors="replace")) from exc
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")
    vad = SileroModel()
    async with (
        grpc.aio.insecure_channel(stt_proc.addr) as stt_channel,
        grpc.aio.insecure_channel(tts_proc.addr) as tts_channel,
    ):
        state = Rig(server=None, stt=stt_pb2_grpc.SpeechToTextStub(stt_channel))  # type: ignore[arg-type]

        async def run_call(start: CallStart, transport: Transport) -> None:
            env = PeerEnv(clock, tracer)
            sink = RecordingSink()
            state.sinks.append(sink)
            session = CallSession(
                CallInfo(start.call_id, start.tenant, start.agent, "v1"),
                transport,
                Peers(
                    GrpcTranscriber(env, stt_channel, policy=SLOW),
                    FakeContext(env),
                    FakeLanguageModel(env, lambda text: ANSWER),
                    GrpcSynthesizer(env, tts_channel, policy=SLOW, sample_rate=transport.out_rate),
                ),
                SileroDetector(vad),
                sink,
                clock=clock,
                tracer=tracer,
                config=SessionConfig(
                    greeting=GREETING, guard=GuardPolicy(enabled=False), llm_prefill=False
                ),
            )
            await session.run()

        web_ = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="https://gw.example")
        server = TestServer(web_.app(), host="127.0.0.1", port=0)
        await server.start_server()
        state.server = server
        yield state
        await server.close()
        for task in list(web_.calls):
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*web_.calls, return_exceptions=True), 10)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_match(heard: str, said: str) -> float:
    return SequenceMatcher(a=words(heard), b=words(said), autojunk=False).ratio()


async def transcribe(rig: Rig, pcm: bytes) -> str:
    reply = await rig.stt.Recognize(
        stt_pb2.RecognizeRequest(
            context=call_pb2.CallContext(tenant_id="acme", call_id="check"),
            config=stt_pb2.RecognitionConfig(audio_format=PCM16_16K),
            audio=pcm,
        )
    )
    return str(reply.transcript.text)


async def until(condition: object, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_the_browser_hears_the_greeting_and_the_answer_in_words(rig: Rig) -> None:
    peer = BrowserPeer()
    try:
        await peer.call(rig.url("/webrtc/offer"), tenant="acme", agent="support")
        await until(lambda: rig.sinks and rig.sinks[0].turns, 30, "the greeting")
        await asyncio.sleep(0.5)
        greeting = await transcribe(rig, bytes(peer.heard.pcm))
        assert word_match(greeting, GREETING) >= 0.6, greeting

        with wave.open(str(WAV)) as wav:
            phrase = wav.readframes(wav.getnframes())
        spoken_at = time.monotonic()
        speech_s = peer.mic.say(phrase)
        sink = rig.sinks[0]
        await until(lambda: len(sink.turns) >= 2, 30 + speech_s, "the answer")
        await asyncio.sleep(0.5)
        answer = await transcribe(rig, peer.heard.since(spoken_at + speech_s))
        assert word_match(answer, ANSWER) >= 0.6, answer
        turn = sink.turns[1]
        assert turn.user_text  # Whisper heard the recorded caller
        assert not turn.interrupted
        print(f"caller said {turn.user_text!r}; browser heard {greeting!r} / {answer!r}")
        print(f"voice-to-voice (gateway) {turn.voice_to_voice_s}")
    finally:
        await peer.close()
