"""The browser softphone in headless Chromium (Debian's, driven by Playwright): the page served
by the hitl console calls the sample agent over WebRTC (the console relays the SDP offer to the
gateway's ``/webrtc/offer``; aiortc on the gateway side) and hears its greeting, spoken by Piper;
the audio the page received, recorded in the page, is transcribed back by Whisper tiny.en.

Then the whole escalation with two browsers (each's microphone a fake capture device playing a
WAV): the caller's line asks for a person; the gateway escalates through the real hitl service
(gRPC ``HumanLoopService`` over a ``TicketQueue``); the operator, logged into the console, sees
the ticket arrive live, accepts it, presses Talk (the console signs the join token the gateway
checks, and relays the offer to ``/webrtc/operator``), speaks — the caller's page records the
operator's voice, which Whisper transcribes back — and hands the call back with a note; the
caller's next question reaches the LLM with the note in the call's history.

A cross-service test (hitl, gateway, TTS and STT backends in one process): the gateway's STT,
context and LLM peers are fakes (the TTS is Piper for the greeting, tones in the handoff test: a
busy 2-core machine starved Piper); voices are Piper's. Screenshots go to
``.run/artifacts/console``.
"""

from __future__ import annotations

import asyncio
import base64
import re
import wave
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider
from playwright.async_api import Browser, Page, async_playwright

from trunkline.agents.loader import load_agent_file
from trunkline.gateway.calls import LiveCalls
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.escalation import EscalationPolicy
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.escalations import HandoffTexts, HumanSide, Sentiment
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
    RecordingSink,
)
from trunkline.gateway.peers.base import PeerEnv, Synthesizer
from trunkline.gateway.peers.grpc_hitl import GrpcHumanLoop
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo, ContextResult
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.hitl.console.app import Console, ConsoleConfig
from trunkline.hitl.console.desk import Desk as ConsoleDesk
from trunkline.hitl.console.fakes import MemoryFeed
from trunkline.hitl.console.operators import Operator, OperatorBook, hash_password
from trunkline.hitl.console.server import RunningConsole, start_console_app
from trunkline.hitl.console.signaling import GatewaySignaling
from trunkline.hitl.fakes import MemoryTicketStore
from trunkline.hitl.queue import TicketQueue
from trunkline.hitl.server import HumanLoopService, register
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
        super().__init__(env, RetryPolicy(timeout_s=20.0))  # a busy 2-core machine
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
    # the greeting lasts ~5 s; Piper on a loaded machine may start it late: record 20 s
    await page.wait_for_function(
        "() => window.softphone.handle && window.softphone.handle.recording"
        " && window.softphone.handle.recording.seconds() >= 20",
        timeout=60_000,
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


# -- the whole escalation, two browser contexts -------------------------------------------------

PERSON = "I want to talk to a real person."
QUESTION = "So when does my refund arrive?"
OPERATOR_SAYS = "Hello, this is Sam from the billing team. Your refund was approved."
NOTE = "Sam approved the refund; it arrives within five days."
HANDOFF_TEXTS = HandoffTexts(
    handoff="One moment, I am getting a colleague for you.",
    callback="Nobody is free right now, we will call you back.",
    resume="I am back with you.",
    unavailable="I cannot reach a colleague right now.",
)


class TopicContext(FakeContext):
    """The context service's intent: a request for a person is 'human', the rest a question."""

    async def _resolve(
        self,
        call: CallInfo,
        query: str,
        entities: Mapping[str, str],
        prefer_first: tuple[str, ...] = (),
    ) -> ContextResult:
        self.queries.append(query)
        if "person" in query:
            return ContextResult(intent="human", intent_score=0.95, confidence=0.1)
        return ContextResult(intent="question", intent_score=0.9, confidence=0.9)


async def speech(piper: PiperSynthesizer, text: str) -> bytes:
    chunks = piper.synthesize(text, StreamSettings(sample_rate=RATE))
    return b"".join([chunk.pcm async for chunk in chunks])


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    return path


@dataclass
class Rig:
    """The whole path: gateway (fake STT/context/LLM, Piper TTS, real hitl over gRPC), the hitl
    queue and its gRPC service, the console serving both browsers."""

    console: RunningConsole
    queue: TicketQueue
    llm: FakeLanguageModel
    handed_back: bool = False


@pytest_asyncio.fixture(loop_scope="module")
async def rig(piper: PiperSynthesizer) -> AsyncIterator[Rig]:
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")
    queue = TicketQueue(MemoryTicketStore())
    await queue.start()
    hitl_server = grpc.aio.server()
    register(hitl_server, HumanLoopService(queue))
    hitl_port = hitl_server.add_insecure_port("127.0.0.1:0")
    await hitl_server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{hitl_port}")
    human = HumanSide(
        GrpcHumanLoop(channel),
        Sentiment(),
        EscalationPolicy(),
        HANDOFF_TEXTS,
        operator_timeout_s=90,
    )
    env = PeerEnv(clock, tracer)
    llm = FakeLanguageModel(env, lambda text: "It is on its way.")
    calls = LiveCalls()
    state: list[Rig] = []

    async def run_call(start: CallStart, transport: Transport) -> None:
        session = CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, SAMPLE.version),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: QUESTION if state[0].handed_back else PERSON),
                TopicContext(env),
                llm,
                FakeSynthesizer(env, 2, sample_rate=transport.out_rate),  # tones: Piper is busy
            ),
            EnergyDetector(floor=300),
            RecordingSink(),
            clock=clock,
            tracer=tracer,
            config=SessionConfig(
                turn=TurnConfig(endpoint=EndpointConfig(onset_frames=3, endpoint_ms=400)),
                greeting="Acme Dental, hello.",
                llm_prefill=False,
            ),
            human=human,
        )
        calls.add(session)
        try:
            await session.run()
        finally:
            calls.remove(session)

    web = GatewayWeb(
        {"acme": AUTH},
        run_call,
        clock=clock,
        public_url="https://gw.example",
        operator_calls=calls,
        join_secret=JOIN_SECRET,  # shared by hitl (signs operators' join tokens) and the gateway
    )
    gateway = TestServer(web.app(), host="127.0.0.1", port=0)
    await gateway.start_server()
    operators = OperatorBook([Operator("alice", "acme", "Alice", hash_password("pw-alice-1"))])
    async with httpx.AsyncClient() as http:
        app = Console(
            ConsoleConfig(session_secret="flow-test"),
            operators,
            MemoryFeed(),
            ConsoleDesk(queue, join_secret=JOIN_SECRET),
            GatewaySignaling(http, str(gateway.make_url("/")).rstrip("/")),
        ).app()
        running = await start_console_app(app, "127.0.0.1", 0)
        state.append(Rig(running, queue, llm))
        try:
            yield state[0]
        finally:
            await running.stop()
            for task in list(web.calls):
                task.cancel()
            await asyncio.gather(*web.calls, return_exceptions=True)
            await gateway.close()
            await channel.close()
            await hitl_server.stop(1)
            await queue.close()


JOIN_SECRET = b"join-secret-for-the-test"
QUESTION_AT_S = 50.0
"""When the caller's line asks its second question (after the operator handed the call back)."""


async def test_a_caller_asks_for_a_person_and_an_operator_takes_the_call_and_hands_it_back(
    rig: Rig, piper: PiperSynthesizer, whisper: WhisperRecognizer, tmp_path: Path
) -> None:
    person = await speech(piper, PERSON)
    gap = bytes(int(QUESTION_AT_S * RATE) * 2 - 4 * RATE * 2 - len(person))
    caller_wav = write_wav(
        tmp_path / "caller.wav",
        bytes(4 * RATE * 2) + person + gap + await speech(piper, QUESTION) + bytes(RATE * 2 * 20),
    )
    operator_wav = write_wav(
        tmp_path / "operator.wav",
        bytes(RATE * 2) + await speech(piper, OPERATOR_SAYS) + bytes(RATE * 2 * 30),
    )
    async with async_playwright() as playwright:
        browsers = [
            await playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-audio-capture={wav}%noloop",
                    "--autoplay-policy=no-user-gesture-required",
                ],
            )
            for wav in (caller_wav, operator_wav)
        ]
        try:
            await _flow(browsers[0], browsers[1], rig, whisper)
        finally:
            for browser in browsers:
                await browser.close()


async def _operator_logs_in(browser: Browser, url: str) -> Page:
    operator = await (await browser.new_context(viewport={"width": 1200, "height": 900})).new_page()
    await operator.goto(url + "/login")
    await operator.fill("input[name=operator]", "alice")
    await operator.fill("input[name=password]", "pw-alice-1")
    async with operator.expect_navigation(url="**/calls"):
        await operator.click("button[type=submit]")
    await operator.goto(url + "/queue")
    return operator


async def _flow(
    caller_browser: Browser, operator_browser: Browser, rig: Rig, whisper: WhisperRecognizer
) -> None:
    url = rig.console.url
    operator = await _operator_logs_in(operator_browser, url)
    caller = await (await caller_browser.new_context()).new_page()
    await caller.goto(f"{url}/softphone?tenant=acme&agent={SAMPLE.name}")
    await caller.click("#call")
    called_at = asyncio.get_running_loop().time()
    await caller.wait_for_function(
        "() => document.getElementById('call-state').textContent === 'connected'", timeout=20_000
    )
    # The caller's line says PERSON 4 s in: the ticket appears live in the operator's queue.
    ticket = operator.locator("#escalations li.ticket")
    await ticket.wait_for(timeout=30_000)
    ticket_id = (await ticket.get_attribute("id") or "").removeprefix("ticket-")
    await operator.screenshot(path=ARTIFACTS / "flow-queue.png", full_page=True)
    async with operator.expect_navigation(url=f"**/tickets/{ticket_id}"):
        await ticket.locator("button.accept").click()
    await operator.click("#talk-start")
    await operator.wait_for_function(
        "() => window.operatorLine.error"
        " || document.getElementById('talk-state').textContent === 'connected'",
        timeout=20_000,
    )
    assert await operator.evaluate("window.operatorLine.error") is None
    heard_from = await caller.evaluate("window.softphone.handle.recording.seconds()")
    await asyncio.sleep(10.0)  # the operator's line: 1 s of silence, then the phrase
    await operator.screenshot(path=ARTIFACTS / "flow-handoff-talking.png", full_page=True)
    rate = int(await caller.evaluate("window.softphone.handle.recording.sampleRate"))
    recorded = base64.b64decode(
        await caller.evaluate("window.softphone.handle.recording.pcm16Base64()")
    )
    heard = await whisper.transcribe(recorded[int(heard_from * rate) * 2 :], sample_rate=rate)
    (ARTIFACTS / "flow-caller-heard-operator.txt").write_text(heard.text + "\n")
    # Opus both ways through the gateway's bridge on a loaded machine: most words survive
    # (one run heard "Hello, it's the sound from the Bill 19 your refend was").
    match = SequenceMatcher(a=words(heard.text), b=words(OPERATOR_SAYS), autojunk=False).ratio()
    assert match >= 0.4, heard.text

    await operator.fill("form.handback input[name=note]", NOTE)
    async with operator.expect_navigation(url="**/queue"):
        await operator.click("form.handback button.handback")
    assert (await rig.queue.get("acme", ticket_id)).state.value == "handed_back"
    rig.handed_back = True
    asked = len(rig.llm.requests)
    left = QUESTION_AT_S - (asyncio.get_running_loop().time() - called_at)
    assert left > 3, "the operator's part took too long for the caller's scripted line"
    deadline = asyncio.get_running_loop().time() + left + 30
    while len(rig.llm.requests) == asked:
        assert asyncio.get_running_loop().time() < deadline, "the agent never answered"
        await asyncio.sleep(0.1)
    request = rig.llm.requests[-1]
    assert request.user_text == QUESTION
    said = " ".join(message.text for message in request.history)
    assert "five days" in said, said  # the agent knows what the person told the caller
    await caller.screenshot(path=ARTIFACTS / "flow-caller.png", full_page=True)
    await caller.click("#hangup")
