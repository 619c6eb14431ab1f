"""The operator console in headless Chromium (Debian's, driven by Playwright) against real NATS
JetStream: a call placed by the simulated Twilio caller through an in-process gateway (fake
STT/LLM/TTS peers, the real event sink) shows up live for an operator of its tenant, with its
transcript and each turn's latency waterfall, and never for an operator of another tenant; a
forged action is refused. Screenshots are kept under ``.run/artifacts/console/``."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright
from redis.asyncio import Redis

from trunkline.audio import mulaw_encode
from trunkline.bus import Bus
from trunkline.cli.caller import (
    CallerTurn,
    CallIdentity,
    CallOptions,
    PreparedTurn,
    SimulatedCaller,
    direct_target,
)
from trunkline.devservers import NatsServer
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
)
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.sink import EventSink
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.hitl.console.app import Console, ConsoleConfig
from trunkline.hitl.console.desk import Desk
from trunkline.hitl.console.feed import JetStreamFeed
from trunkline.hitl.console.operators import Operator, OperatorBook, hash_password
from trunkline.hitl.console.server import RunningConsole, start_console_app
from trunkline.hitl.core.tickets import (
    ApprovalInfo,
    CallRef,
    CustomerRecord,
    EscalationInfo,
    Line,
    State,
)
from trunkline.hitl.queue import TicketQueue, WallClock
from trunkline.hitl.store import JetStreamTicketStore
from trunkline.state import CallStateStore

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / ".run" / "artifacts" / "console"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
PASSWORD = "console-pw-1"
AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
SAID = ["when are you open on saturday", "do you take dental insurance"]

if not CHROMIUM.exists() or shutil.which("chromium") is None:  # pragma: no cover
    pytest.fail("Debian chromium is missing: run `make tools` (installs it)", pytrace=False)


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    client = await Bus.connect(nats_server.url, name="console-test")
    try:
        yield client
    finally:
        await client.close()


@dataclass
class Gateway:
    server: TestServer

    @property
    def stream_url(self) -> str:
        return str(self.server.make_url("/twilio/stream")).replace("http://", "ws://")


def words(audio: bytes) -> str:
    """What the caller said, told apart by the tone's pitch (zero crossings per second)."""
    samples = np.frombuffer(audio, dtype=np.int16).astype(np.float64)
    crossings = np.count_nonzero(np.diff(np.signbit(samples)))
    hz = crossings / 2 / max(len(samples) / 16_000, 1e-3)
    return SAID[0] if hz < 450 else SAID[1]


@pytest.fixture
async def gateway(bus: Bus, redis_url: str) -> AsyncIterator[Gateway]:
    """A gateway with fake peers and the real event sink (JetStream + Redis)."""
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")
    redis = Redis.from_url(redis_url)
    sink = EventSink(bus, CallStateStore(redis, ttl_seconds=60), "gw-console-test")
    await sink.start()

    async def run_call(start: CallStart, transport: Transport) -> None:
        env = PeerEnv(clock, tracer)
        session = CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, "v7"),
            transport,
            Peers(
                FakeTranscriber(env, words),
                FakeContext(env),
                FakeLanguageModel(env, lambda text: "Sure, I can help with that."),
                FakeSynthesizer(env, frames_per_word=2, sample_rate=transport.out_rate),
            ),
            EnergyDetector(),
            sink,
            clock=clock,
            tracer=tracer,
            config=SessionConfig(
                turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=200)),
                greeting="Welcome to Acme Dental.",
            ),
        )
        await session.run()

    web = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="https://gw.example")
    server = TestServer(web.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield Gateway(server)
    finally:
        await server.close()
        await redis.aclose()


@pytest.fixture
async def queue(bus: Bus) -> AsyncIterator[TicketQueue]:
    """The hitl ticket queue on a fresh JetStream KV bucket, as the hitl process runs it."""
    started = TicketQueue(
        JetStreamTicketStore(bus, bucket=f"T_{uuid.uuid4().hex[:10]}"), clock=WallClock()
    )
    await started.start()
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def console(bus: Bus, queue: TicketQueue) -> AsyncIterator[RunningConsole]:
    operators = OperatorBook(
        [
            Operator("alice", "acme", "Alice", hash_password(PASSWORD)),
            Operator("gus", "globex", "Gus", hash_password(PASSWORD)),
        ]
    )
    app = Console(
        ConsoleConfig(session_secret="browser-test"),
        operators,
        JetStreamFeed(bus.client),
        Desk(queue),
    ).app()
    running = await start_console_app(app, "127.0.0.1", 0)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def operator_page(browser: Browser, console: RunningConsole, name: str) -> Page:
    context: BrowserContext = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    await page.goto(console.url + "/calls")
    assert page.url.endswith("/login")
    await page.fill("input[name=operator]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/calls")
    return page


def tone(seconds: float, hz: float = 300.0) -> bytes:
    t = np.arange(round(seconds * 8000)) / 8000
    return mulaw_encode((8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16))


async def place_call(gateway: Gateway) -> tuple[str, asyncio.Task[object]]:
    identity = CallIdentity()
    target = direct_target(
        gateway.stream_url,
        identity,
        tenant="acme",
        agent="support",
        stream_secret=AUTH.stream_secret,
    )
    caller = SimulatedCaller(target, identity, CallOptions(reply_quiet_ms=600))
    script = [
        PreparedTurn(CallerTurn(text=text, pause_ms=400), tone(1.2, 300 + 300 * i))
        for i, text in enumerate(SAID)
    ]
    return identity.call_sid, asyncio.create_task(caller.run(script))


async def test_a_live_call_streams_to_its_tenants_operator_only(
    browser: Browser, console: RunningConsole, gateway: Gateway
) -> None:
    alice = await operator_page(browser, console, "alice")
    gus = await operator_page(browser, console, "gus")
    assert "Alice · acme" in await alice.inner_text("#operator")
    call_sid, call = await place_call(gateway)
    row = alice.locator(f"#call-{call_sid}")
    await row.wait_for(timeout=15_000)
    assert "support" in await row.inner_text()
    await alice.screenshot(path=ARTIFACTS / "calls-live.png", full_page=True)
    # the same call, opened mid-call: the transcript replays, then follows live
    call_page = await alice.context.new_page()
    await call_page.goto(f"{console.url}/calls/{call_sid}")
    first = call_page.locator(".turn", has_text=SAID[0])
    await first.wait_for(timeout=20_000)
    second = call_page.locator(".turn", has_text=SAID[1])
    await second.wait_for(timeout=20_000)
    assert "Sure, I can help with that." in await second.inner_text()
    bars = second.locator("svg.waterfall g.stage")
    stages = [await bar.get_attribute("data-stage") for bar in await bars.all()]
    assert stages[0] == "turn.endpointing"
    assert "stt.final" in stages
    assert stages[-1] == "turn.response"
    for bar in await bars.all():
        width = float(await bar.locator("rect").get_attribute("width") or 0)
        assert width > 0
        assert float(await bar.get_attribute("data-ms") or -1) >= 0
    box = await second.locator("svg.waterfall").bounding_box()
    assert box is not None
    assert box["width"] > 200
    assert box["height"] > 40
    await call_page.screenshot(path=ARTIFACTS / "call-transcript-waterfall.png", full_page=True)
    await asyncio.wait_for(call, 60)
    await call_page.locator("#status", has_text="ended").wait_for(timeout=15_000)
    await alice.locator(f"#call-{call_sid}.ended").wait_for(timeout=15_000)
    # the other tenant's operator saw nothing of it, live or replayed
    assert await gus.locator(f"#call-{call_sid}").count() == 0
    await gus.reload()
    await asyncio.sleep(1.5)
    assert await gus.locator("#calls tbody tr").count() == 0
    assert SAID[0] not in await gus.content()
    response = await gus.goto(f"{console.url}/calls/{call_sid}")
    assert response is not None
    assert response.status == 404
    assert f"no call '{call_sid}' in tenant 'globex'" in await gus.inner_text("main")
    streamed = await gus.evaluate(
        """url => new Promise(resolve => {
            const got = [];
            const source = new EventSource(url);
            source.onmessage = e => got.push(e.data);
            source.addEventListener("turn", e => got.push(e.data));
            source.addEventListener("status", e => got.push(e.data));
            setTimeout(() => { source.close(); resolve(got); }, 2000);
        })""",
        f"/calls/{call_sid}/stream",
    )
    assert streamed == []  # the subject filter is globex's: acme's events never come
    await gus.screenshot(path=ARTIFACTS / "other-tenant.png", full_page=True)


async def test_a_forged_action_is_refused_in_the_browser(
    browser: Browser, console: RunningConsole
) -> None:
    alice = await operator_page(browser, console, "alice")
    status = await alice.evaluate(
        """async () => {
            const body = new URLSearchParams({outcome: "approved"});
            const reply = await fetch("/tickets/T1/decide", {method: "POST", body});
            return [reply.status, await reply.text()];
        }"""
    )
    assert status[0] == 403
    assert "CSRF" in status[1]
    # a form whose token was tampered with (as a cross-site page would have to guess it)
    await alice.eval_on_selector("form.who input[name=csrf_token]", "e => e.value = 'guess'")
    await alice.click("form.who button[type=submit]")
    assert "CSRF token is missing or stale" in await alice.inner_text("main")
    await alice.screenshot(path=ARTIFACTS / "csrf-refused.png", full_page=True)
    await alice.goto(console.url + "/calls")
    assert alice.url.endswith("/calls")  # still logged in: the forged logout did nothing


async def test_an_escalation_appears_live_and_is_accepted_and_handed_back(
    browser: Browser, console: RunningConsole, queue: TicketQueue
) -> None:
    alice = await operator_page(browser, console, "alice")
    gus = await operator_page(browser, console, "gus")
    await alice.goto(console.url + "/queue")
    await gus.goto(console.url + "/queue")
    assert "Escalations (0)" in await alice.inner_text("#escalations h2")
    call = CallRef("acme", "CA-queue-1", caller_address="+15550123", agent_name="acme-dental")
    escalation = await queue.escalate(
        call,
        EscalationInfo(
            reason="caller_request",
            customer=CustomerRecord("c-7", "crm", (("name", "Dana Reyes"), ("plan", "gold"))),
        ),
        [
            Line("agent", "Thank you for calling Acme Dental."),
            Line("caller", "This is the third time I am calling about my refund."),
            Line("caller", "I want to talk to a real person."),
        ],
    )
    item = alice.locator(f"#ticket-{escalation.ticket_id}")
    await item.wait_for(timeout=10_000)  # no reload: the page follows the queue's changes
    assert "caller_request" in await item.inner_text()
    await alice.screenshot(path=ARTIFACTS / "queue-escalation.png", full_page=True)
    async with alice.expect_navigation(url=f"**/tickets/{escalation.ticket_id}"):
        await item.locator("button.accept").click()
    panel = await alice.inner_text("main")
    assert "taken_over" in panel
    assert "I want to talk to a real person." in panel
    assert "Dana Reyes" in panel
    assert await alice.locator("#talk-start").is_visible()
    await alice.screenshot(path=ARTIFACTS / "handoff-panel.png", full_page=True)
    await alice.fill("form.handback input[name=note]", "refund goes out today")
    async with alice.expect_navigation(url="**/queue"):
        await alice.click("form.handback button.handback")
    handed = await queue.get("acme", escalation.ticket_id)
    assert handed.state is State.HANDED_BACK
    assert handed.decision is not None
    assert handed.decision.note == "refund goes out today"
    assert await gus.locator(f"#ticket-{escalation.ticket_id}").count() == 0
    await gus.reload()
    assert "Escalations (0)" in await gus.inner_text("#escalations h2")
    response = await gus.goto(f"{console.url}/tickets/{escalation.ticket_id}")
    assert response is not None
    assert response.status == 403
    assert "does not belong to tenant 'globex'" in await gus.inner_text("main")


async def test_approvals_are_approved_with_edits_and_denied_in_the_browser(
    browser: Browser, console: RunningConsole, queue: TicketQueue
) -> None:
    alice = await operator_page(browser, console, "alice")
    gus = await operator_page(browser, console, "gus")
    await alice.goto(console.url + "/queue")
    call = CallRef("acme", "CA-queue-2", caller_address="+15550123", agent_name="acme-dental")
    refund = await queue.request_approval(
        call,
        ApprovalInfo("tc-1", "issue_refund", '{"amount": 120}', justification="double charge"),
    )
    wire = await queue.request_approval(
        call, ApprovalInfo("tc-2", "wire_transfer", '{"amount": 5000}', justification="asked")
    )
    await alice.locator(f"#ticket-{wire.ticket_id}").wait_for(timeout=10_000)
    first = alice.locator(f"#ticket-{refund.ticket_id}")
    await first.locator("textarea[name=arguments_json]").fill('{"amount": 100}')
    # another approval comes in while alice edits: the list reloads, her edit, the focus and
    # the caret stay
    late = await queue.request_approval(
        call, ApprovalInfo("tc-3", "send_voucher", '{"amount": 10}', justification="late")
    )
    await alice.locator(f"#ticket-{late.ticket_id}").wait_for(timeout=10_000)
    edited = first.locator("textarea[name=arguments_json]")
    assert await edited.input_value() == '{"amount": 100}'
    assert await edited.evaluate("f => f === document.activeElement && f.selectionStart") == 15
    await alice.screenshot(path=ARTIFACTS / "approvals.png", full_page=True)
    # decisions go without leaving the page: each ticket leaves the list as it is decided
    for ticket_id, button in (
        (refund.ticket_id, "approve"),
        (wire.ticket_id, "deny"),
        (late.ticket_id, "deny"),
    ):
        item = alice.locator(f"#ticket-{ticket_id}")
        await item.locator(f"button.{button}").click()
        await item.wait_for(state="detached", timeout=10_000)
    assert alice.url.endswith("/queue")
    approved = await queue.get("acme", refund.ticket_id)
    denied = await queue.get("acme", wire.ticket_id)
    assert approved.decision is not None
    assert denied.decision is not None
    assert approved.decision.outcome == "approved"
    assert json.loads(approved.decision.arguments_json) == {"amount": 100}
    assert denied.decision.outcome == "denied"
    assert "Approvals (0)" in await alice.inner_text("#approvals h2")
    # globex's operator saw none of it, and cannot act on it
    await gus.goto(console.url + "/queue")
    assert "Approvals (0)" in await gus.inner_text("#approvals h2")
    response = await gus.goto(f"{console.url}/tickets/{refund.ticket_id}")
    assert response is not None
    assert response.status == 403


async def test_an_older_list_that_comes_back_late_does_not_hide_a_new_ticket(
    browser: Browser, console: RunningConsole, queue: TicketQueue
) -> None:
    """The page's first list (asked for at the stream's ``ready``, before the ticket) is held
    back until after the list a ticket's ``changed`` asked for: the ticket stays on the page."""
    alice = await operator_page(browser, console, "alice")
    asked: list[int] = []
    first_held = asyncio.Event()
    release_first = asyncio.Event()

    async def items(route: Route) -> None:
        asked.append(len(asked))
        if len(asked) == 1:
            reply = await route.fetch()  # the list as it is now: no ticket yet
            first_held.set()
            await release_first.wait()
            await route.fulfill(response=reply)
        else:
            await route.continue_()

    await alice.route("**/queue/items", items)
    await alice.goto(console.url + "/queue")
    await asyncio.wait_for(first_held.wait(), 10)
    call = CallRef("acme", "CA-queue-late", caller_address="+15550123", agent_name="acme-dental")
    ticket = await queue.request_approval(
        call, ApprovalInfo("tc-9", "issue_refund", '{"amount": 20}', justification="late list")
    )
    shown = alice.locator(f"#ticket-{ticket.ticket_id}")
    await shown.wait_for(timeout=10_000)  # drawn from the second list
    release_first.set()  # the stale first list lands now
    await alice.wait_for_timeout(1000)
    assert len(asked) >= 2
    assert await shown.count() == 1, "the stale list replaced the newer one"
