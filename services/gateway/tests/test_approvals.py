"""High-risk tools ask a person: the turn pauses, the caller hears the approval line, the
request goes to the hitl queue; approve → run, edit → run with the edited (re-checked)
arguments, deny / expire / hitl down → not run, DENIED, and the model is told honestly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from trunkline.gateway.approvals import HitlApprover, Verdict
from trunkline.gateway.core.events import Event, Message, ReplyAudio, StartWork
from trunkline.gateway.core.tools import ToolBook, ToolPolicy, ToolStatus
from trunkline.gateway.fakes import FakeContext, FakeHumanLoop, FakeSynthesizer, FakeTranscriber
from trunkline.gateway.peers.base import LanguageModel, PeerEnv
from trunkline.gateway.peers.hitl import ApprovalRequest, Outcome, TicketState
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
from trunkline.testing.clock import FakeClock
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.unit

CALL = CallInfo("CA1", "acme", "acme-dental", "1.0.0", caller_role="caller")
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
ASKED = json.dumps({"account_id": "441729", "amount_usd": 80})
LINE = "One moment while I confirm that."


class ScriptedLlm(LanguageModel):
    def __init__(self, env: PeerEnv) -> None:
        super().__init__(env)
        self.requests: list[LlmRequest] = []

    async def _generate(self, request: LlmRequest) -> AsyncIterator[LlmEvent]:
        self.requests.append(request)
        if len(self.requests) == 1:
            yield TextDelta("Sure.")
            yield ToolCallRequested("r1", "issue_refund", ASKED)
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


async def turn(
    recorder: SpanRecorder, hitl: FakeHumanLoop, decide: Any, timeout_s: float = 30.0
) -> tuple[TurnRecord, Runner, list[Event], ScriptedLlm]:
    clock = FakeClock()
    env = PeerEnv(clock, recorder.provider.get_tracer("test"))
    llm = ScriptedLlm(env)
    runner = Runner()
    executor = ToolExecutor(
        ToolBook([REFUND]),
        runner,
        clock=clock,
        tracer=env.tracer,
        approver=HitlApprover(hitl, clock),
        approval_timeout_s=timeout_s,
        approval_line=LINE,
    )
    peers = Peers(
        stt=FakeTranscriber(env, lambda _: "please refund my 80 dollars"),
        context=FakeContext(env),
        llm=llm,
        tts=FakeSynthesizer(env, frames_per_word=1),
    )
    pipeline = TurnPipeline(
        peers, CALL, clock=clock, tracer=env.tracer, greeting="Hi.", tools=executor
    )
    record, events = TurnRecord(CALL, 1), []
    with env.tracer.start_as_current_span("turn"):
        work = asyncio.create_task(
            pipeline.run(StartWork(1, b"\x01\x00" * 320, (), False), record, events.append)
        )
        for _ in range(50):
            await asyncio.sleep(0)
        await decide(clock)
        await asyncio.wait_for(work, 5)
    return record, runner, events, llm


def spoken(events: list[Event]) -> list[str]:
    seen: list[str] = []
    for e in events:
        if isinstance(e, ReplyAudio) and e.last:
            seen.append(e.text)
    return seen


async def test_approved_runs_and_the_caller_heard_the_line(span_recorder: SpanRecorder) -> None:
    hitl = FakeHumanLoop()

    async def approve(clock: FakeClock) -> None:
        # The caller was told before the person decided.
        assert hitl.approvals[0].tool == "issue_refund"
        assert hitl.approvals[0].arguments_json == ASKED
        hitl.update("t-1", TicketState.DECIDED, outcome=Outcome.APPROVED, operator_id="op")

    record, runner, events, llm = await turn(span_recorder, hitl, approve)
    assert spoken(events)[:2] == ["Sure.", LINE]
    assert runner.ran == [{"account_id": "441729", "amount_usd": 80}]
    assert record.tool_calls[0].status is ToolStatus.SUCCEEDED
    assert "refunded_usd" in llm.requests[1].tool_rounds[0].results[0].result_json


async def test_edited_arguments_run_instead(span_recorder: SpanRecorder) -> None:
    hitl = FakeHumanLoop()
    edited = json.dumps({"account_id": "441729", "amount_usd": 40})

    async def edit(clock: FakeClock) -> None:
        hitl.update("t-1", TicketState.DECIDED, outcome=Outcome.APPROVED, arguments_json=edited)

    record, runner, _, _ = await turn(span_recorder, hitl, edit)
    assert runner.ran == [{"account_id": "441729", "amount_usd": 40}]
    assert record.tool_calls[0].arguments_json == edited


async def test_invalid_edited_arguments_are_not_run(span_recorder: SpanRecorder) -> None:
    hitl = FakeHumanLoop()

    async def edit(clock: FakeClock) -> None:
        bad = json.dumps({"account_id": "441729", "amount_usd": "forty"})
        hitl.update("t-1", TicketState.DECIDED, outcome=Outcome.APPROVED, arguments_json=bad)

    record, runner, _, _ = await turn(span_recorder, hitl, edit)
    assert runner.ran == []
    assert record.tool_calls[0].status is ToolStatus.DENIED
    assert "amount_usd" in record.tool_calls[0].result_json


async def test_denied_is_not_run_and_said_honestly(span_recorder: SpanRecorder) -> None:
    hitl = FakeHumanLoop()

    async def deny(clock: FakeClock) -> None:
        hitl.update(
            "t-1", TicketState.DECIDED, outcome=Outcome.DENIED, note="refunds over 50 need a form"
        )

    record, runner, _, llm = await turn(span_recorder, hitl, deny)
    assert runner.ran == []
    tool = record.tool_calls[0]
    assert tool.status is ToolStatus.DENIED
    result = json.loads(tool.result_json)
    assert "did not approve" in result["message"]
    assert "refunds over 50" in result["message"]
    assert "not done" in llm.requests[1].tool_rounds[0].results[0].result_json


async def test_nobody_decides_in_time(span_recorder: SpanRecorder) -> None:
    hitl = FakeHumanLoop()

    async def wait(clock: FakeClock) -> None:
        await clock.advance_and_settle(29.0)
        assert hitl.cancelled == []
        await clock.advance_and_settle(1.5)

    record, runner, _, _ = await turn(span_recorder, hitl, wait, timeout_s=30.0)
    assert runner.ran == []
    assert record.tool_calls[0].status is ToolStatus.DENIED
    assert "in time" in record.tool_calls[0].result_json
    assert hitl.cancelled == ["t-1"]  # the expired request is withdrawn


async def test_hitl_down_is_not_run(span_recorder: SpanRecorder) -> None:
    hitl = FakeHumanLoop(fail=True)

    async def nothing(clock: FakeClock) -> None:
        return None

    record, runner, _, _ = await turn(span_recorder, hitl, nothing)
    assert runner.ran == []
    assert record.tool_calls[0].status is ToolStatus.NEEDS_APPROVAL


async def test_approver_maps_every_verdict() -> None:
    clock = FakeClock()
    request = ApprovalRequest("r1", "issue_refund", ASKED, timeout_s=5.0)
    for outcome, verdict in [
        (Outcome.APPROVED, Verdict.APPROVED),
        (Outcome.DENIED, Verdict.DENIED),
    ]:
        hitl = FakeHumanLoop()
        task = asyncio.create_task(HitlApprover(hitl, clock).decide(CALL, request))
        await asyncio.sleep(0)
        hitl.update("t-1", TicketState.DECIDED, outcome=outcome)
        assert (await task).verdict is verdict
    hitl = FakeHumanLoop()
    task = asyncio.create_task(HitlApprover(hitl, clock).decide(CALL, request))
    await asyncio.sleep(0)
    hitl.update("t-1", TicketState.EXPIRED, outcome=Outcome.EXPIRED)
    assert (await task).verdict is Verdict.EXPIRED
