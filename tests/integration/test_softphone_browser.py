"""The browser softphone in headless Chromium (Debian's, driven by Playwright): the page served
by the hitl console calls the sample agent over WebRTC (the console relays the SDP offer to the
gateway's ``/webrtc/offer``; aiortc on the gateway side) and hears its greeting, spoken by Piper;
the audio the page received, recorded in the page, is transcribed back by Whisper tiny.en.

A cross-service test (hitl console, gateway, TTS and STT backends in one process): the gateway's
STT and LLM peers are fakes, the greeting's TTS is the real Piper voice. The browser's microphone
is a fake capture device playing a WAV of silence. Screenshots go to ``.run/artifacts/console``.
"""

from __future__ import annotations

import asyncio
import base64
import re
import wave
from collections.abc import AsyncIterator
from difflib import SequenceMatcher
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider
from playwright.async_api import Browser, async_playwright

from trunkline.agents.loader import load_agent_file
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeTranscriber,
    RecordingSink,
)
from trunkline.gateway.peers.base import PeerEnv, Synthesizer
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.hitl.console.app import Console, ConsoleConfig
from trunkline.hitl.console.fakes import MemoryFeed
from trunkline.hitl.console.operators import OperatorBook
from trunkline.hitl.console.server import RunningConsole, start_console_app
from trunkline.hitl.console.signaling import GatewaySignaling
from trunkline.stt.backends.whisper import WhisperRecognizer
from trunkline.tts.backends import StreamSettings
from trunkline.tts.backends.piper import PiperSynthesizer

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / ".run" / "artifacts" / "console"
SAMPLE = load_agent_file(ROOT / "agents" / "acme-dental.yaml")
AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({SAMPLE.name}))
RATE = 16_000


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


class PiperPeer(Synthesizer):
    """The gateway's TTS peer calling the Piper backend in process."""

    def __init__(self, env: PeerEnv, piper: PiperSynthesizer, sample_rate: int) -> None:
        super().__init__(env)
        self.piper = piper
        self.sample_rate = sample_rate

    async def _synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]:
        async for chunk in self.piper.synthesize(
            text, StreamSettings(sample_rate=self.sample_rate)
        ):
            yield chunk.pcm


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def piper() -> AsyncIterator[PiperSynthesizer]:
    synth = PiperSynthesizer()
    await synth.start()
    yield synth
    await synth.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def whisper() -> AsyncIterator[WhisperRecognizer]:
    recognizer = WhisperRecognizer()
    await recognizer.start()
    yield recognizer
    await recognizer.close()


@pytest_asyncio.fixture(loop_scope="module")
async def gateway(piper: PiperSynthesizer) -> AsyncIterator[TestServer]:
    """The sample agent's greeting in Piper's voice; fake STT/LLM behind it."""
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")

    async def run_call(start: CallStart, transport: Transport) -> None:
        env = PeerEnv(clock, tracer)
        session = CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, SAMPLE.version),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: "hello"),
                FakeContext(env),
                FakeLanguageModel(env, lambda text: "Sure."),
                PiperPeer(env, piper, transport.out_rate),
            ),
            EnergyDetector(),
            RecordingSink(),
            clock=clock,
            tracer=tracer,
            config=SessionConfig(
                turn=TurnConfig(endpoint=EndpointConfig(onset_frames=3, endpoint_ms=400)),
                greeting=SAMPLE.greeting,
            ),
        )
        await session.run()

    web = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="https://gw.example")
    server = TestServer(web.app(), host="127.0.0.1", port=0)
    await server.start_server()
    yield server
    await server.close()


@pytest_asyncio.fixture(loop_scope="module")
async def console(gateway: TestServer) -> AsyncIterator[RunningConsole]:
    async with httpx.AsyncClient() as http:
        base = str(gateway.make_url("/")).rstrip("/")
        app = Console(
            ConsoleConfig(session_secret="softphone-test"),
            OperatorBook([]),
            MemoryFeed(),
            None,
            GatewaySignaling(http, base),
        ).app()
        running = await start_console_app(app, "127.0.0.1", 0)
        try:
            yield running
        finally:
            await running.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    silence = tmp_path / "silence.wav"
    with wave.open(str(silence), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(RATE * 2 * 30))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={silence}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_softphone_calls_the_sample_agent_and_hears_its_greeting(
    browser: Browser, console: RunningConsole, whisper: WhisperRecognizer
) -> None:
    context = await browser.new_context(viewport={"width": 1000, "height": 600})
    page = await context.new_page()
    await page.goto(f"{console.url}/softphone?tenant=acme&agent={SAMPLE.name}")
    await page.click("#call")
    await page.wait_for_function(
        "() => window.softphone.error || document.getElementById('call-state')"
        ".textContent === 'connected'",
        timeout=20_000,
    )
    assert await page.evaluate("window.softphone.error") is None
    await page.screenshot(path=ARTIFACTS / "softphone-connected.png", full_page=True)
    # the greeting lasts ~5 s; record until 9 s of audio came in
    await page.wait_for_function(
        "() => window.softphone.handle && window.softphone.handle.recording"
        " && window.softphone.handle.recording.seconds() >= 9",
        timeout=40_000,
    )
    rate = await page.evaluate("window.softphone.handle.recording.sampleRate")
    pcm = base64.b64decode(await page.evaluate("window.softphone.handle.recording.pcm16Base64()"))
    await page.click("#hangup")
    await context.close()
    heard = await whisper.transcribe(pcm, sample_rate=int(rate))
    (ARTIFACTS / "softphone-heard.txt").write_text(
        f"{len(pcm) / 2 / rate:.1f} s recorded at {rate} Hz; heard: {heard.text}\n"
    )
    said = words(SAMPLE.greeting)
    match = SequenceMatcher(a=words(heard.text), b=said, autojunk=False).ratio()
    assert match >= 0.6, f"heard {heard.text!r} for {SAMPLE.greeting!r}"
    assert {"calling", "help", "today"} <= set(words(heard.text))


async def test_a_bad_call_request_is_refused_with_a_clear_error(
    browser: Browser, console: RunningConsole
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{console.url}/softphone?tenant=acme&agent=nobody")
    await page.click("#call")
    await page.wait_for_function("() => window.softphone.error", timeout=20_000)
    error = await page.evaluate("window.softphone.error")
    assert "unknown agent 'nobody'" in error
    assert "failed" in await page.inner_text("#call-state")
    await asyncio.sleep(0)
    await context.close()
