"""The turn pipeline runs the LLM's tool calls through the executor and generates again with
the results: spans, records, refusals and the round limit. Fakes implement the real ABCs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.events import Event, Message, ReplyAudio, StartWork
from trunkline.gateway.core.tool_answers import ToolAnswer
from trunkline.gateway.core.tools import ToolBook, ToolPolicy, ToolStatus
from trunkline.gateway.fakes import FakeContext, FakeSynthesizer, FakeTranscriber
from trunkline.gateway.peers.base import LanguageModel, PeerEnv
from trunkline.gateway.peers.types import (
    CallInfo,
    ContextResult,
    LlmEvent,
    LlmRequest,
    Prefilled,
    TextDelta,
    ToolCallRequested,
    Usage,
)
from trunkline.gateway.pipeline import Committed, Peers, TurnPipeline
from trunkline.gateway.records import TurnRecord
from trunkline.gateway.tools import ToolExecutor, ToolRunError, ToolRunner
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.unit

CALL = CallInfo("CA1", "acme", "acme-dental", "1.0.0", caller_role="caller")
LOOKUP = ToolPolicy(
    name="lookup_account",
    endpoint="http://crm/tools/lookup_account",
    parameters={
        "type": "object",
        "properties": {"account_id": {"type": "string"}},
        "required": ["account_id"],
    },
    allowed_roles=("caller",),
)
REFUND = ToolPolicy(name="issue_refund", endpoint="http://crm/refund", allowed_roles=("operator",))
BOOK = ToolPolicy(
    name="book_appointment", endpoint="http://crm/book", allowed_roles=("caller",), read_only=False
)
APPROVE = ToolPolicy(
    name="cancel_plan", endpoint="http://crm/cancel", allowed_roles=("caller",), high_risk=True
)


class ScriptedLlm(LanguageModel):
    """Round n of a turn yields ``rounds[n]``; remembers every request."""

    def __init__(self, env: PeerEnv, rounds: Sequence[Sequence[LlmEvent]]) -> None:
        super().__init__(env)
        self.rounds = rounds
        self.requests: list[LlmRequest] = []

    async def _generate(self, request: LlmRequest) -> AsyncIterator[LlmEvent]:
        self.requests.append(request)
        for event in self.rounds[min(len(self.requests), len(self.rounds)) - 1]:
            yield event

    async def _prefill(
        self,
        call: CallInfo,
        history: Sequence[Message],
        context: ContextResult | None,
        partial: str,
    ) -> Prefilled:
        raise AssertionError("the pipeline alone never prefills")


class FakeRunner(ToolRunner):
    def __init__(self, answers: dict[str, Any] | None = None, fail: bool = False) -> None:
        self.answers = answers or {}
        self.fail = fail
        self.ran: list[tuple[str, dict[str, Any]]] = []

    async def _run(self, call: CallInfo, tool: ToolPolicy, arguments: dict[str, Any]) -> Any:
        self.ran.append((tool.name, arguments))
        if self.fail:
            raise ToolRunError(f"{tool.name} answered HTTP 503: down")
        return self.answers[tool.name]


def lookup(account: str = "441729", call_id: str = "t1") -> ToolCallRequested:
    return ToolCallRequested(call_id, "lookup_account", json.dumps({"account_id": account}))


async def run_turn(
    recorder: SpanRecorder,
    rounds: Sequence[Sequence[LlmEvent]],
    runner: FakeRunner,
    *,
    max_rounds: int = 2,
    committed: Committed | None = None,
    tools: Sequence[ToolPolicy] = (LOOKUP, REFUND, APPROVE, BOOK),
) -> tuple[TurnRecord, ScriptedLlm, list[Event]]:
    env = PeerEnv(SystemClock(), recorder.provider.get_tracer("test"))
    llm = ScriptedLlm(env, rounds)
    peers = Peers(
        stt=FakeTranscriber(env, lambda _: "look up my account 441729"),
        context=FakeContext(env),
        llm=llm,
        tts=FakeSynthesizer(env, frames_per_word=1),
    )
    executor = ToolExecutor(
        ToolBook(tools, max_rounds=max_rounds),
        runner,
        clock=env.clock,
        tracer=env.tracer,
    )
    pipeline = TurnPipeline(
        peers,
        CALL,
        clock=env.clock,
        tracer=env.tracer,
        greeting="Hi.",
        tools=executor,
        entity_names=("account_id",),
    )
    record = TurnRecord(CALL, 1)
    events: list[Event] = []
    with env.tracer.start_as_current_span("turn"):
        work = StartWork(1, b"\x01\x00" * 320, (), speculative=committed is not None)
        await pipeline.run(work, record, events.append, committed)
    assert isinstance(peers.context, FakeContext)
    assert peers.context.entities == [{"account_id": "441729"}]  # said by the caller
    return record, llm, events


async def test_a_tool_result_goes_back_to_the_model_for_a_second_round(
    span_recorder: SpanRecorder,
) -> None:
    runner = FakeRunner({"lookup_account": {"name": "Dana Whitfield", "balance_usd": 45}})
    rounds: list[list[LlmEvent]] = [
        [TextDelta("Let me check."), lookup(), Usage(100, 12, 0.002)],
        [TextDelta("Dana, your balance is 45 dollars."), Usage(130, 9, 0.003)],
    ]
    record, llm, _ = await run_turn(span_recorder, rounds, runner)
    assert runner.ran == [("lookup_account", {"account_id": "441729"})]
    assert len(llm.requests) == 2
    (tool_round,) = llm.requests[1].tool_rounds
    assert tool_round.text == "Let me check."
    (result,) = tool_round.results
    assert (result.call_id, result.name) == ("t1", "lookup_account")
    assert json.loads(result.result_json) == {"name": "Dana Whitfield", "balance_usd": 45}
    assert record.generated_text == "Let me check.Dana, your balance is 45 dollars."
    (tool,) = record.tool_calls
    assert tool.status is ToolStatus.SUCCEEDED
    assert tool.duration_s >= 0.0
    assert (record.prompt_tokens, record.completion_tokens) == (230, 21)
    span = span_recorder.named("tool")
    turn = span_recorder.named("turn")
    assert span.parent is not None
    assert span.parent.span_id == turn.context.span_id
    attributes = dict(span.attributes or {})
    assert attributes["tool.name"] == "lookup_account"
    assert attributes["tool.status"] == "succeeded"
    assert attributes["tool.executed"] is True
    assert "tool.duration_ms" in attributes


async def test_a_forbidden_tool_is_refused_and_the_model_hears_why(
    span_recorder: SpanRecorder,
) -> None:
    runner = FakeRunner()
    refund = ToolCallRequested("t9", "issue_refund", '{"amount_usd": 50}')
    rounds: list[list[LlmEvent]] = [[refund], [TextDelta("I cannot do refunds on this call.")]]
    record, llm, _ = await run_turn(span_recorder, rounds, runner)
    assert runner.ran == []
    (tool,) = record.tool_calls
    assert tool.status is ToolStatus.FORBIDDEN
    result = json.loads(llm.requests[1].tool_rounds[0].results[0].result_json)
    assert result["error"] == "forbidden"
    assert "'caller' may not use issue_refund" in result["message"]
    assert dict(span_recorder.named("tool").attributes or {})["tool.status"] == "forbidden"


async def test_high_risk_needs_approval_and_invalid_arguments_are_reported(
    span_recorder: SpanRecorder,
) -> None:
    runner = FakeRunner()
    calls: list[LlmEvent] = [
        ToolCallRequested("a", "cancel_plan", "{}"),
        ToolCallRequested("b", "lookup_account", '{"account": "1"}'),
    ]
    rounds: list[list[LlmEvent]] = [calls, [TextDelta("A colleague will help with that.")]]
    record, llm, _ = await run_turn(span_recorder, rounds, runner)
    assert runner.ran == []
    assert [t.status for t in record.tool_calls] == [
        ToolStatus.NEEDS_APPROVAL,
        ToolStatus.INVALID,
    ]
    results = [json.loads(r.result_json) for r in llm.requests[1].tool_rounds[0].results]
    assert "needs human approval" in results[0]["message"]
    assert "'account_id' is a required property" in results[1]["message"]


async def test_a_failing_tool_is_a_failed_result_not_a_failed_turn(
    span_recorder: SpanRecorder,
) -> None:
    runner = FakeRunner(fail=True)
    rounds: list[list[LlmEvent]] = [[lookup()], [TextDelta("Our system is slow, sorry.")]]
    record, _, _ = await run_turn(span_recorder, rounds, runner)
    assert [t.status for t in record.tool_calls] == [ToolStatus.FAILED]
    assert "HTTP 503" in json.loads(record.tool_calls[0].result_json)["message"]
    assert record.generated_text == "Our system is slow, sorry."


async def test_tool_rounds_are_bounded(span_recorder: SpanRecorder) -> None:
    runner = FakeRunner({"lookup_account": {"ok": True}})
    rounds: list[list[LlmEvent]] = [[lookup(call_id="")]]  # the model asks again and again
    record, llm, _ = await run_turn(span_recorder, rounds, runner, max_rounds=2)
    assert len(llm.requests) == 3  # two rounds with results, then the limit ends the turn
    assert [t.status for t in record.tool_calls] == [
        ToolStatus.SUCCEEDED,
        ToolStatus.SUCCEEDED,
        ToolStatus.ROUND_LIMIT,
    ]
    assert len(runner.ran) == 2
    assert [t.call_id for t in record.tool_calls] == ["call_1_1", "call_1_2", "call_1_3"]


async def test_speculative_work_runs_lookups_but_holds_side_effects_until_commit(
    span_recorder: SpanRecorder,
) -> None:
    runner = FakeRunner({"lookup_account": {"ok": 1}, "book_appointment": {"booked": True}})
    booking = ToolCallRequested("b1", "book_appointment", "{}")
    rounds: list[list[LlmEvent]] = [[lookup(), booking], [TextDelta("Booked.")]]
    waiting, endpoint = asyncio.Event(), asyncio.Event()

    async def committed() -> None:
        waiting.set()
        await endpoint.wait()

    turn = asyncio.create_task(run_turn(span_recorder, rounds, runner, committed=committed))
    await asyncio.wait_for(waiting.wait(), 5)
    assert [name for name, _ in runner.ran] == ["lookup_account"]  # ran during the pause
    endpoint.set()  # the caller's turn ends: now the booking runs
    record, _, _ = await asyncio.wait_for(turn, 5)
    assert [name for name, _ in runner.ran] == ["lookup_account", "book_appointment"]
    assert [t.status for t in record.tool_calls] == [ToolStatus.SUCCEEDED] * 2


async def test_a_tool_called_when_heard_runs_before_the_model_which_reads_its_result(
    span_recorder: SpanRecorder,
) -> None:
    """The caller read out the account number: the gateway looks it up itself, and the model's
    first request already holds the result (a small model once invented an answer instead of
    calling the tool)."""
    runner = FakeRunner({"lookup_account": {"name": "Dana Whitfield", "balance_usd": 45}})
    rounds: list[list[LlmEvent]] = [[TextDelta("Dana, your balance is 45 dollars.")]]
    heard = replace(LOOKUP, call_when_heard=True)
    record, llm, _ = await run_turn(span_recorder, rounds, runner, tools=(heard, BOOK))
    assert runner.ran == [("lookup_account", {"account_id": "441729"})]
    (request,) = llm.requests
    (tool_round,) = request.tool_rounds
    assert tool_round.text == ""
    (result,) = tool_round.results
    assert (result.call_id, result.name) == ("heard_1_1", "lookup_account")
    assert json.loads(result.arguments_json) == {"account_id": "441729"}
    assert json.loads(result.result_json) == {"name": "Dana Whitfield", "balance_usd": 45}
    assert [t.status for t in record.tool_calls] == [ToolStatus.SUCCEEDED]
    assert record.generated_text == "Dana, your balance is 45 dollars."
    # the guard lets "Dana" and "45" through: the heard round's result supports them
    assert record.grounded
    assert record.guard_interventions == []
    turn = span_recorder.named("turn")
    assert [e.name for e in turn.events if e.name == "tool.heard"] == ["tool.heard"]


async def test_the_model_may_still_call_tools_after_the_heard_round(
    span_recorder: SpanRecorder,
) -> None:
    runner = FakeRunner({"lookup_account": {"ok": 1}, "book_appointment": {"booked": True}})
    booking = ToolCallRequested("b1", "book_appointment", "{}")
    rounds: list[list[LlmEvent]] = [[booking], [TextDelta("Booked.")]]
    heard = replace(LOOKUP, call_when_heard=True)
    record, llm, _ = await run_turn(span_recorder, rounds, runner, tools=(heard, BOOK))
    assert [name for name, _ in runner.ran] == ["lookup_account", "book_appointment"]
    assert [len(r.tool_rounds) for r in llm.requests] == [1, 2]
    assert record.generated_text == "Booked."


async def test_a_heard_tool_whose_answer_fits_is_said_in_the_specs_words_without_the_model(
    span_recorder: SpanRecorder,
) -> None:
    runner = FakeRunner({"lookup_account": {"found": True, "name": "Dana", "balance_usd": 45.0}})
    answers = (ToolAnswer("{name}, your balance is {balance_usd} dollars.", {"found": True}),)
    heard = replace(LOOKUP, call_when_heard=True, answers=answers)
    record, llm, events = await run_turn(span_recorder, [[TextDelta("never asked")]], runner,
                                         tools=(heard,))  # fmt: skip
    assert llm.requests == []
    assert record.reply_source == "tool"
    assert record.generated_text == "Dana, your balance is 45 dollars."
    spoken = " ".join(e.text for e in events if isinstance(e, ReplyAudio) and e.last)
    assert spoken == "Dana, your balance is 45 dollars."
    assert record.grounded


async def test_a_heard_tool_whose_answers_do_not_fit_goes_to_the_model(
    span_recorder: SpanRecorder,
) -> None:
    runner = FakeRunner({"lookup_account": {"found": False, "message": "no such account"}})
    answers = (ToolAnswer("{name}, your balance is {balance_usd} dollars.", {"found": True}),)
    heard = replace(LOOKUP, call_when_heard=True, answers=answers)
    rounds: list[list[LlmEvent]] = [[TextDelta("I could not find that account.")]]
    record, llm, _ = await run_turn(span_recorder, rounds, runner, tools=(heard,))
    assert len(llm.requests) == 1
    assert record.reply_source == "llm"


async def test_a_model_that_says_nothing_speakable_gets_the_fallback_not_silence(
    span_recorder: SpanRecorder,
) -> None:
    """SmolLM2-135M, handed a tool result, once answered only tags the parser drops: the caller
    heard the filler and then nothing."""
    rounds: list[list[LlmEvent]] = [[TextDelta("  "), Usage(100, 52, 0.002)]]
    record, _, events = await run_turn(span_recorder, rounds, FakeRunner(), tools=(LOOKUP,))
    spoken = [e.text for e in events if isinstance(e, ReplyAudio) and e.last]
    assert spoken, "nothing was said"
    assert record.reply_source == "fallback"
    assert not record.grounded
