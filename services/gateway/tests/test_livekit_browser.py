"""The LiveKit caller page in headless Chromium (Debian's, driven by Playwright) through a real
LiveKit server: the page served by the gateway asks for a room (``POST /livekit/join`` sends the
agent there), joins it with ``livekit-client`` (vendored by ``make tools``), publishes the fake
microphone — a WAV of the recorded caller asking for the opening hours, after a pause — and
records the agent's track. Whisper tiny.en transcribes the recording back: the greeting and the
answer, both spoken by Piper, are heard. STT, context and LLM are fakes (the answer is fixed).

A request for an unknown agent is refused on the page with the gateway's reason.
"""

from __future__ import annotations

import asyncio
import base64
import re
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider
from playwright.async_api import Browser, async_playwright

from trunkline.devservers.gotools import ToolMissingError, find_tool
from trunkline.devservers.livekit import LiveKitServer
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
from trunkline.gateway.livekit_dispatch import LiveKitDispatch
from trunkline.gateway.livekit_page import ASSETS, LiveKitPage
from trunkline.gateway.livekit_rooms import key_table
from trunkline.gateway.peers.base import PeerEnv, Synthesizer
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.stt.backends.whisper import WhisperRecognizer
from trunkline.tts.backends import StreamSettings
from trunkline.tts.backends.piper import PiperSynthesizer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / ".run" / "artifacts" / "livekit"
CALLER = ROOT / "tests" / "data" / "audio" / "hours-joe-16k.wav"
AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
GREETING = "Welcome to the dental clinic."
ANSWER = "We are open from nine to five."
RATE = 16_000


DIGITS = {"5": "five", "9": "nine"}  # Whisper writes numbers either way


def words(text: str) -> set[str]:
    return {DIGITS.get(w, w) for w in re.findall(r"[a-z0-9']+", text.lower())}


class PiperPeer(Synthesizer):
    def __init__(self, env: PeerEnv, piper: PiperSynthesizer, sample_rate: int) -> None:
        super().__init__(env, RetryPolicy(timeout_s=20.0))  # a busy 2-core machine
        self.piper = piper
        self.sample_rate = sample_rate

    async def _synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]:
        async for chunk in self.piper.synthesize(
            text, StreamSettings(sample_rate=self.sample_rate)
        ):
            yield chunk.pcm


@pytest.fixture(scope="module")
def livekit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    try:
        find_tool("livekit-server")
    except ToolMissingError as exc:
        pytest.fail(f"{exc} (make install builds it)")
    if not ASSETS["livekit-client.umd.js"].is_file():
        pytest.fail("livekit-client is not vendored (make tools fetches it from npm)")
    server = LiveKitServer(run_dir=tmp_path_factory.mktemp("livekit"))
    server.start()
    try:
        yield server
    finally:
        server.close()


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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(livekit: LiveKitServer, piper: PiperSynthesizer) -> AsyncIterator[TestServer]:
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")

    async def run_call(start: CallStart, transport: Transport) -> None:
        env = PeerEnv(clock, tracer)
        await CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, "v1"),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: "what are your hours"),
                FakeContext(env),
                FakeLanguageModel(env, lambda text: ANSWER),
                PiperPeer(env, piper, transport.out_rate),
            ),
            EnergyDetector(floor=300),
            RecordingSink(),
            clock=clock,
            tracer=tracer,
            config=SessionConfig(
                turn=TurnConfig(endpoint=EndpointConfig(onset_frames=3, endpoint_ms=500)),
                greeting=GREETING,
                grounding_texts=(ANSWER,),
                llm_prefill=False,
            ),
        ).run()

    web_ = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="")
    keys = key_table(livekit.api_key, livekit.api_secret, {"acme": ("", "")})
    dispatch = LiveKitDispatch(web_, livekit.url, keys, caller_timeout_s=30)
    app = web_.app()
    dispatch.add_routes(app)
    LiveKitPage(dispatch).add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield server
    await server.close()
    for task in list(web_.calls):
        task.cancel()
    await asyncio.gather(*web_.calls, return_exceptions=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    """The fake microphone: 6 s of silence (the greeting), the question, 20 s of silence."""
    with wave.open(str(CALLER)) as wav:
        question = wav.readframes(wav.getnframes())
    mic = tmp_path_factory.mktemp("mic") / "caller.wav"
    with wave.open(str(mic), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(RATE * 2 * 6) + question + bytes(RATE * 2 * 20))
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
                f"--use-file-for-fake-audio-capture={mic}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_page_calls_the_agent_and_hears_greeting_and_answer(
    browser: Browser, gateway: TestServer, whisper: WhisperRecognizer
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(str(gateway.make_url("/livekit/call?tenant=acme&agent=support")))
    await page.click("#call")
    await page.wait_for_function(
        "() => window.livekitCall.error || window.livekitCall.recording", timeout=30_000
    )
    assert await page.evaluate("window.livekitCall.error") is None
    await page.screenshot(path=ARTIFACTS / "livekit-call.png", full_page=True)
    # greeting (~2 s) during the 6 s pause, the question (~2 s), the answer: record 20 s
    await page.wait_for_function(
        "() => window.livekitCall.recording.seconds() >= 20", timeout=90_000
    )
    pcm = base64.b64decode(await page.evaluate("window.livekitCall.recording.pcm16Base64()"))
    await page.click("#hangup")
    await context.close()
    heard = await whisper.transcribe(pcm, sample_rate=RATE)
    (ARTIFACTS / "livekit-heard.txt").write_text(
        f"{len(pcm) / 2 / RATE:.1f} s recorded; heard: {heard.text}\n"
    )
    assert {"welcome", "dental", "clinic"} <= words(heard.text), heard.text
    assert {"open", "nine", "five"} <= words(heard.text), heard.text


async def test_an_unknown_agent_is_refused_on_the_page(
    browser: Browser, gateway: TestServer
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(str(gateway.make_url("/livekit/call?tenant=acme&agent=nobody")))
    await page.click("#call")
    await page.wait_for_function("() => window.livekitCall.error", timeout=20_000)
    assert "unknown agent 'nobody'" in await page.evaluate("window.livekitCall.error")
    assert "failed" in await page.inner_text("#call-state")
    await context.close()
