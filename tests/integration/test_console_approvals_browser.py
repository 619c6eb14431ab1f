"""High-risk tool approvals end to end, decided by an operator in the console in headless
Chromium: the gateway's turn pipeline asks for approval through the real hitl gRPC service
(``HumanLoopService`` over a ``TicketQueue``); the request shows up live in the operator's queue
page; approved with edited arguments the tool runs with them, denied it does not run and the
model is told so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from playwright.async_api import Locator, Page, async_playwright

from trunkline.gateway.approvals import HitlApprover
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.events import Event, Message, StartWork
from trunkline.gateway.core.tools import ToolBook, ToolPolicy, ToolStatus
from trunkline.gateway.fakes import FakeContext, FakeSynthesizer, FakeTranscriber
from trunkline.gateway.peers.base import LanguageModel, PeerEnv
from trunkline.gateway.peers.grpc_hitl import GrpcHumanLoop
from trunkline.gateway.peers.types import (
    CallInfo,
    ContextResult,
    LlmEvent,
    LlmRequest,
    Prefilled,
    TextDelta,
    ToolCallRequested,
)
from trunkline.gateway.pipeline import Peers, TurnPipeline
from trunkline.gateway.records import TurnRecord
from trunkline.gateway.tools import ToolExecutor, ToolRunner
from trunkline.hitl.console.app import Console, ConsoleConfig
from trunkline.hitl.console.desk import Desk
from trunkline.hitl.console.fakes import MemoryFeed
from trunkline.hitl.console.operators import Operator, OperatorBook, hash_password
from trunkline.hitl.console.server import RunningConsole, start_console_app
from trunkline.hitl.fakes import MemoryTicketStore
from trunkline.hitl.queue import TicketQueue
from trunkline.hitl.server import HumanLoopService, register

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".run" / "artifacts" / "console"
REFUND = ToolPolicy(
    name="issue_refund",
    endpoint="http://crm/refund",
    parameters={
        "type": "object",
        "properties": {"account_id": {"type": "string"}, "amount_usd": {"type": "number"}},
        "required": ["account_id", "amount_usd"],
    },
    allowed_roles=("caller",),
    high_risk=True,
    read_only=False,
)
ASKED = {"account_id": "441729", "amount_usd": 80}


class ScriptedLlm(LanguageModel):
    """Asks for the refund, then answers from the tool's result."""

    def __init__(self, env: PeerEnv) -> None:
        super().__init__(env)
        self.requests: list[LlmRequest] = []

    async def _generate(self, request: LlmRequest) -> AsyncIterator[LlmEvent]:
        self.requests.append(request)
        if len(self.requests) == 1:
            yield TextDelta("Sure.")
            yield ToolCallRequested("r1", "issue_refund", json.dumps(ASKED))
        else:
            yield TextDelta("Done.")

    async def _prefill(
        self, call: CallInfo, history: Sequence[Message], context: ContextResult | None, p: str
    ) -> Prefilled:
        raise AssertionError("no prefill here")


class Runner(ToolRunner):
    def __init__(self) -> None:
        self.ran: list[dict[str, Any]] = []

    async def _run(self, call: CallInfo, tool: ToolPolicy, arguments: dict[str, Any]) -> Any:
        self.ran.append(arguments)
        return {"refunded_usd": arguments["amount_usd"]}


@pytest.fixture
async def hitl() -> AsyncIterator[tuple[TicketQueue, GrpcHumanLoop]]:
    queue = TicketQueue(MemoryTicketStore())
    await queue.start()
    server = grpc.aio.server()
    register(server, HumanLoopService(queue))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield queue, GrpcHumanLoop(channel)
    finally:
        await channel.close()
        await server.stop(1)
        await queue.close()


@pytest.fixture
async def console(hitl: tuple[TicketQueue, GrpcHumanLoop]) -> AsyncIterator[RunningConsole]:
    operators = OperatorBook([Operator("alice", "acme", "Alice", hash_password("pw-alice-2"))])
    app = Console(
        ConsoleConfig(session_secret="approvals"), operators, MemoryFeed(), Desk(hitl[0])
    ).app()
    running = await start_console_app(app, "127.0.0.1", 0)
    try:
        yield running
    finally:
        await running.stop()


async def a_turn(
    hitl: GrpcHumanLoop, call_id: str
) -> tuple[asyncio.Task[None], TurnRecord, Runner, ScriptedLlm]:
    """One caller turn of call ``call_id`` whose LLM asks for the refund (running)."""
    call = CallInfo(call_id, "acme", "acme-dental", "1.0.0", caller_role="caller")
    clock = SystemClock()
    env = PeerEnv(clock, TracerProvider().get_tracer("test"))
    llm, runner = ScriptedLlm(env), Runner()
    executor = ToolExecutor(
        ToolBook([REFUND]),
        runner,
        clock=clock,
        tracer=env.tracer,
        approver=HitlApprover(hitl, clock),
        approval_timeout_s=60.0,
        approval_line="One moment while I confirm that.",
    )
    peers = Peers(
        stt=FakeTranscriber(env, lambda _: "please refund my 80 dollars"),
        context=FakeContext(env),
        llm=llm,
        tts=FakeSynthesizer(env, frames_per_word=1),
    )
    pipeline = TurnPipeline(
        peers, call, clock=clock, tracer=env.tracer, greeting="Hi.", tools=executor
    )
    record = TurnRecord(call, 1)
    events: list[Event] = []
    work = asyncio.create_task(
        pipeline.run(StartWork(1, b"\x01\x00" * 320, (), False), record, events.append)
    )
    return work, record, runner, llm


async def log_in(page: Page, url: str) -> None:
    await page.goto(url + "/login")
    await page.fill("input[name=operator]", "alice")
    await page.fill("input[name=password]", "pw-alice-2")
    async with page.expect_navigation(url="**/calls"):
        await page.click("button[type=submit]")
    await page.goto(url + "/queue")


async def a_refused_approval(item: Locator, work: asyncio.Task[None]) -> None:
    """Approving arguments that are not JSON: the reason shows in the ticket, the edit stays for
    the operator to mend, the turn still waits."""
    await item.locator("textarea").fill('{"amount_usd": 50')
    await item.locator("button.approve").click()
    refusal = item.locator("p.error")
    await refusal.wait_for(timeout=10_000)
    assert "not valid JSON" in await refusal.inner_text()
    assert await item.locator("textarea").input_value() == '{"amount_usd": 50'
    assert not work.done()


async def test_an_operator_approves_one_refund_with_an_edit_and_denies_another(
    hitl: tuple[TicketQueue, GrpcHumanLoop], console: RunningConsole
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page()
            await log_in(page, console.url)

            work, record, runner, llm = await a_turn(hitl[1], "CA-approve-1")
            item = page.locator("#approvals li.ticket")
            await item.wait_for(timeout=20_000)  # live, while the turn waits
            assert "issue_refund" in await item.inner_text()
            assert json.loads(await item.locator("textarea").input_value()) == ASKED
            await a_refused_approval(item, work)
            await item.locator("textarea").fill(json.dumps({**ASKED, "amount_usd": 50}))
            await page.screenshot(path=ARTIFACTS / "approval-requested.png", full_page=True)
            await item.locator("button.approve").click()
            await asyncio.wait_for(work, 20)
            await item.wait_for(state="detached", timeout=10_000)
            assert runner.ran == [{**ASKED, "amount_usd": 50}]
            assert record.tool_calls[0].status is ToolStatus.SUCCEEDED
            assert "refunded_usd" in llm.requests[1].tool_rounds[0].results[0].result_json

            work, record, runner, llm = await a_turn(hitl[1], "CA-approve-2")
            item = page.locator('#approvals li.ticket[data-call="CA-approve-2"]')
            await item.wait_for(timeout=20_000)
            await item.locator("input[name=note]").fill("refunds over 50 need a form")
            # Another request arrives while the operator types: the list refreshes, and what
            # they typed stays (it was once lost that way: the denial reached the model
            # without its note).
            work3, record3, runner3, _ = await a_turn(hitl[1], "CA-approve-3")
            third = page.locator('#approvals li.ticket[data-call="CA-approve-3"]')
            await third.wait_for(timeout=20_000)
            note = await item.locator("input[name=note]").input_value()
            assert note == "refunds over 50 need a form"
            # a note typed in the third ticket survives deciding the second (a full-page POST
            # once reloaded the queue and dropped it)
            await third.locator("input[name=note]").fill("ask for the receipt")
            await item.locator("button.deny").click()
            await asyncio.wait_for(work, 20)
            await item.wait_for(state="detached", timeout=10_000)
            assert await third.locator("input[name=note]").input_value() == "ask for the receipt"
            assert page.url.endswith("/queue")
            assert runner.ran == []
            tool = record.tool_calls[0]
            assert tool.status is ToolStatus.DENIED
            assert "refunds over 50 need a form" in json.loads(tool.result_json)["message"]
            assert "not done" in llm.requests[1].tool_rounds[0].results[0].result_json
            await third.locator("button.deny").click()
            await asyncio.wait_for(work3, 20)
            assert runner3.ran == []
            assert "ask for the receipt" in json.loads(record3.tool_calls[0].result_json)["message"]
            await third.wait_for(state="detached", timeout=10_000)
            assert await page.locator("#approvals li.ticket").count() == 0
        finally:
            await browser.close()
