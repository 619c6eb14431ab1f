"""Scoring, reports and the runner on calls described as data (no stack)."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from trunkline.evaluation import (
    AgentSources,
    CallDriver,
    CallSeen,
    EvalReport,
    Scenario,
    ScenarioScore,
    ScoringOptions,
    Status,
    ToolCallSeen,
    TurnEvent,
    TurnSeen,
    html_page,
    load_agent_sources,
    parse_scenarios,
    run_eval,
    score_scenario,
    table,
)
from trunkline.evaluation.facts import FactBase, checkable_facts
from trunkline.evaluation.observation import Intervention, assign_events
from trunkline.evaluation.scoring import verdicts, without_filler

pytestmark = pytest.mark.unit

AGENTS = Path(__file__).resolve().parents[3] / "agents"

SCENARIOS = """
agent: acme-dental
tenant: acme
latency_ms: 1000
scenarios:
  - name: hours-then-bye
    turns:
      - say: When are you open on Saturday?
        must_contain: [9 am, 1 pm]
        must_not_contain: [6 pm]
        not_actions: [deflection]
      - say: Thanks, goodbye.
        actions: [hang_up]
  - name: football
    turns:
      - say: Who won the world cup in 1966?
        actions: [deflection]
  - name: account
    turns:
      - say: Look up account four four one, seven two nine.
        actions:
          - tool: lookup_account
            arguments: {account_id: "441729"}
        must_contain: [45 dollars]
  - name: refund
    turns:
      - say: Refund me please.
        not_actions: [{tool: issue_refund}]
        actions: [escalation]
"""


@pytest.fixture(scope="module")
def acme() -> AgentSources:
    return load_agent_sources(AGENTS)["acme-dental"]


def scenarios() -> dict[str, Scenario]:
    return {s.name: s for s in parse_scenarios(SCENARIOS, "s.yaml")}


def event(reply: str, *, caller: str = "", source: str = "llm", **kw: object) -> TurnEvent:
    return TurnEvent(occurred_at=0.0, caller_transcript=caller, reply=reply,
                     reply_source=source, **kw)  # type: ignore[arg-type]  # fmt: skip


def turn(*events: TurnEvent, v2v: float | None = 600.0, heard: str | None = None) -> TurnSeen:
    return TurnSeen(events=events, answered=bool(events), voice_to_voice_ms=v2v, reply_heard=heard)


def failed(score_turn: object) -> list[str]:
    return [f"{c.kind}:{c.name}" for c in score_turn.checks if c.status is not Status.PASS]  # type: ignore[attr-defined]


def test_a_call_that_does_everything_right_passes(acme: AgentSources) -> None:
    call = CallSeen("CA1", (
        turn(event("We are open on Saturday from 9 a.m. to 1 p.m.",
                   caller="When are you open on set or day?", grounded=True),
             heard="We are open on Saturday from 9 am to 1 pm."),
        turn(event("Thank you for calling Acme Dental. Goodbye!", caller="Thanks, goodbye.",
                   source="goodbye", hang_up=True, grounded=True)),
    ), end_reason="agent_hangup")  # fmt: skip
    score = score_scenario(scenarios()["hours-then-bye"], call, acme)
    assert score.status is Status.PASS, [failed(t) for t in score.turns]
    first = score.turns[0]
    assert first.caller_wer is not None
    assert (first.caller_wer.edits, first.caller_wer.words) == (3, 6)
    assert first.reply_wer is not None
    assert first.reply_wer.edits == 0
    assert [v.facts for v in first.clauses] == [("weekday:saturday", "time:9:00am",
                                                  "time:1:00pm")]  # fmt: skip


def test_the_issue_9_saturday_answer_fails_on_facts_and_faithfulness(acme: AgentSources) -> None:
    reply = "We're thrilled to have you on set or day! Saturday is available until 12:30 PM."
    call = CallSeen("CA2", (
        turn(event(reply, source="cache", grounded=True)),
        turn(event("Our hours are Monday to Friday 8 am to 6 pm."), v2v=1500.0),
    ), end_reason="caller_hangup")  # fmt: skip
    score = score_scenario(scenarios()["hours-then-bye"], call, acme)
    assert score.status is Status.FAIL
    assert failed(score.turns[0]) == [
        "must_contain:9 am", "must_contain:1 pm", "faithful:spoken facts grounded",
    ]  # fmt: skip
    bye = score.turns[1]
    assert failed(bye) == ["action:hang_up", "must_not_contain:6 pm"[:0] or "latency:<= 1000 ms"]
    detail = next(c.detail for c in bye.checks if c.name == "hang_up")
    assert detail == "hang_up=false, call ended: caller_hangup"


def test_hang_up_needs_the_flag_and_an_agent_ended_call(acme: AgentSources) -> None:
    said_bye = turn(event("Goodbye!", source="goodbye", hang_up=True))
    ok = turn(event("We are open on Saturday from 9 am to 1 pm."))
    for reason, status in (("agent_hangup", Status.PASS), ("caller_hangup", Status.FAIL),
                           ("", Status.FAIL)):  # fmt: skip
        score = score_scenario(scenarios()["hours-then-bye"],
                               CallSeen("CA", (ok, said_bye), end_reason=reason), acme)  # fmt: skip
        check = next(c for c in score.turns[1].checks if c.name == "hang_up")
        assert check.status is status, reason


def test_a_call_cut_short_fails_the_turns_it_never_reached(acme: AgentSources) -> None:
    early = turn(event("Goodbye!", source="goodbye", hang_up=True))
    score = score_scenario(scenarios()["hours-then-bye"],
                           CallSeen("CA", (early,), end_reason="agent_hangup"), acme)  # fmt: skip
    assert not score.turns[1].reached
    assert score.turns[1].checks[0].detail == "the call ended (agent_hangup) before this turn"
    assert "not_action:deflection" not in failed(score.turns[0])


def test_deflection_is_read_from_the_reply_source(acme: AgentSources) -> None:
    football = scenarios()["football"]
    deflected = CallSeen("CA", (turn(event("Sorry, I can't help with that.",
                                           source="deflection")),))  # fmt: skip
    assert score_scenario(football, deflected, acme).status is Status.PASS
    invented = CallSeen("CA", (turn(event("In 1967 Mexico City won the championship.",
                                          caller="Who won the world cup in 1966?")),))  # fmt: skip
    score = score_scenario(football, invented, acme)
    assert failed(score.turns[0]) == ["action:deflection", "faithful:spoken facts grounded"]
    faithful = next(c for c in score.turns[0].checks if c.kind == "faithful")
    # 1966 was the caller's own number; 1967 and the names are the model's
    assert faithful.detail == (
        "number:1967, name:mexico, name:city in 'In 1967 Mexico City won the championship.'"
    )


def test_a_tool_call_is_matched_by_name_arguments_and_status(acme: AgentSources) -> None:
    account = scenarios()["account"]
    result = json.dumps({"found": True, "account_id": "441729", "name": "Dana Whitfield",
                         "balance_usd": 45.0})  # fmt: skip
    good = ToolCallSeen("lookup_account", {"account_id": "441-729"}, "succeeded", result)
    reply = "Dana Whitfield, your balance is 45 dollars and your next visit is on Tuesday."
    score = score_scenario(account, CallSeen("CA", (turn(event(reply, tool_calls=(good,))),)),
                           acme)  # fmt: skip
    assert score.status is Status.PASS, failed(score.turns[0])
    assert score.turns[0].tool_calls == ("lookup_account(account_id=441-729) -> succeeded",)
    wrong = ToolCallSeen("lookup_account", {"account_id": "441728"}, "succeeded", "{}")
    forbidden = ToolCallSeen("lookup_account", {"account_id": "441729"}, "forbidden", "")
    for bad in (wrong, forbidden):
        score = score_scenario(account, CallSeen("CA", (turn(event(reply, tool_calls=(bad,))),)),
                               acme)  # fmt: skip
        assert "action:tool lookup_account(account_id=441729)" in failed(score.turns[0])


def test_crm_records_of_an_account_the_caller_named_ground_the_reply(acme: AgentSources) -> None:
    account = scenarios()["account"]
    reply = "Your next appointment is on Tuesday December 8 at 10:30 am, and you owe 45 dollars."
    score = score_scenario(account, CallSeen("CA", (turn(event(reply)),)), acme)
    faithful = next(c for c in score.turns[0].checks if c.kind == "faithful")
    assert faithful.status is Status.PASS, faithful.detail
    # the tool was expected and not called, which is its own failure
    assert failed(score.turns[0]) == ["action:tool lookup_account(account_id=441729)"]


def test_a_missing_escalation_fails_unless_the_run_has_no_hitl(acme: AgentSources) -> None:
    refund = scenarios()["refund"]
    call = CallSeen("CA", (turn(event("Let me connect you with a colleague.")),))
    without_hitl = ScoringOptions(escalation_supported=False)
    assert score_scenario(refund, call, acme, without_hitl).status is Status.UNSUPPORTED
    supported = ScoringOptions()
    assert score_scenario(refund, call, acme, supported).status is Status.FAIL
    escalated = CallSeen("CA", (TurnSeen((event("One moment."),), True, 500.0, escalated=True),))
    assert score_scenario(refund, escalated, acme, supported).status is Status.PASS
    ran = ToolCallSeen("issue_refund", {"account_id": "1", "amount_usd": 95}, "succeeded")
    refunded = CallSeen("CA", (turn(event("Done.", tool_calls=(ran,))),))
    assert "not_action:tool issue_refund()" in failed(
        score_scenario(refund, refunded, acme).turns[0]
    )


def test_facts_weekday_ranges_and_caller_echoes() -> None:
    base = FactBase.of(["Open Monday to Friday 8 am to 6 pm, Saturday 9 am to 1 pm."])
    assert [str(f) for f in checkable_facts("We open at nine on Wednesday")] == [
        "number:9", "weekday:wednesday",
    ]  # fmt: skip
    assert base.unsupported(checkable_facts("We open at nine on Wednesday")) == []
    assert [str(f) for f in base.unsupported(checkable_facts("Sunday until 12:30 PM"))] == [
        "weekday:sunday", "time:12:30pm",
    ]  # fmt: skip
    echoed = base.merged([], ["Are you open on Sunday? My account is 441729, I'm Dana."])
    clauses = verdicts("Yes, we are open on Sunday, Dana. Account 441729 is fine.", echoed)
    assert [c.unsupported for c in clauses if c.unsupported] == [("weekday:sunday",)]


def test_the_gateway_interventions_and_flag_are_reported_not_trusted(acme: AgentSources) -> None:
    held = Intervention("It costs 350 dollars.", ("number:350",), "fallback")
    lying = event("Whitening costs 350 dollars.", grounded=True, interventions=(held,))
    score = score_scenario(scenarios()["football"], CallSeen("CA", (turn(lying),)), acme)
    report = run_report([score])
    faith = report["faithfulness"]
    assert faith["gateway"] == {
        "turns_with_reply": 1, "turns_marked_grounded": 1, "share_marked_grounded": 1.0,
        "interventions": 1, "marked_grounded_but_unsupported_here": 1,
    }  # fmt: skip
    assert faith["share_of_checkable"] == 0.0
    assert faith["unsupported_facts"] == {"number:350": 1}


def run_report(scores: list[ScenarioScore]) -> dict[str, Any]:
    return EvalReport(tuple(scores)).summary()


class ScriptedDriver(CallDriver):
    """Answers each scenario with a prepared call (or fails for those it has none for)."""

    def __init__(self, calls: dict[str, CallSeen]) -> None:
        self.calls = calls
        self.placed: list[str] = []

    async def run_call(self, scenario: Scenario) -> CallSeen:
        self.placed.append(scenario.name)
        if scenario.name not in self.calls:
            raise ConnectionError("gateway unreachable")
        return self.calls[scenario.name]


async def test_run_eval_scores_every_scenario_and_reports_them(acme: AgentSources) -> None:
    driver = ScriptedDriver({
        "hours-then-bye": CallSeen("CA1", (
            turn(event("Saturday 9 am to 1 pm.", caller="When are you open on Saturday?")),
            turn(event("Goodbye!", source="goodbye", hang_up=True), v2v=2500.0),
        ), end_reason="agent_hangup"),
        "football": CallSeen("CA2", (turn(event("Sorry, I can't help with that.",
                                                source="deflection")),)),
        "refund": CallSeen("CA3", (turn(event("Let me connect you with a colleague.")),)),
    })  # fmt: skip
    seen: list[str] = []
    no_hitl = ScoringOptions(escalation_supported=False)  # the refund's escalation: not scored
    report = await run_eval(list(scenarios().values()), driver, {"acme-dental": acme}, no_hitl,
                            on_score=lambda s: seen.append(s.status.value))  # fmt: skip
    assert driver.placed == ["hours-then-bye", "football", "account", "refund"]
    assert seen == ["fail", "pass", "error", "unsupported"]  # hours: the goodbye was slow
    summary = report.summary()
    assert summary["scenarios"] | {} == {
        "total": 4, "pass": 1, "fail": 1, "unsupported": 1, "error": 1, "pass_rate": 1 / 3,
    }  # fmt: skip
    assert summary["deflection"]["rate"] == 1.0
    assert summary["hang_up"]["done"] == 1
    assert summary["escalation"] | {} == {"expected": 1, "done": 0, "unsupported": 1,
                                         "rate": None}  # fmt: skip
    assert summary["latency"]["p95_ms"] == 2500.0
    assert summary["latency"]["within_budget"] == 3
    text = table(report)
    assert "account" in text
    assert "error: ConnectionError: gateway unreachable" in text
    assert "pass rate 33.3%" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["scenarios"][0]["turns"][1]["checks"][-2]["detail"] == "2500 ms"
    page = html_page(report)
    assert page.startswith("<!doctype html>")
    assert "hours-then-bye" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)  # self-contained
    assert "<script" not in page


def test_events_belong_to_the_turn_the_caller_had_started() -> None:
    greeting = TurnEvent(occurred_at=9.0, caller_transcript="", reply="Hi", reply_source="greeting")
    a = TurnEvent(occurred_at=14.0, caller_transcript="one", reply="A")
    a2 = TurnEvent(occurred_at=15.0, caller_transcript="more", reply="A2")
    late_greeting = TurnEvent(occurred_at=12.0, caller_transcript="", reply="!",
                              reply_source="greeting")  # fmt: skip
    b = TurnEvent(occurred_at=30.0, caller_transcript="two", reply="B")
    before, per_turn = assign_events([11.0, 20.0, 40.0], [b, a2, greeting, a, late_greeting])
    assert before == [greeting, late_greeting]
    assert per_turn == [[a, a2], [b], []]
    joined = TurnSeen(tuple(per_turn[0]), True, 400.0)
    assert (joined.caller_transcript, joined.reply) == ("one more", "A A2")


def test_the_filler_before_a_slow_reply_is_not_counted_against_the_reply() -> None:
    filler = "One moment, please."
    heard = "One moment please. For a power cut, call the outage line."
    assert without_filler(heard, filler) == "For a power cut, call the outage line."
    assert without_filler("For a power cut, call.", filler) == "For a power cut, call."
    assert without_filler("One more thing.", filler) == "One more thing."
    assert without_filler(heard, "") == heard


def test_words_capitalised_by_a_list_or_a_sentence_are_no_names() -> None:
    base = FactBase.of(["Step 1: tell us at least 2 days before you move."])
    reply = (
        "You'll need to do the following: 1. **Research**: Start by comparing options. "
        "2. **Plan**: Create a plan with Mexico City movers."
    )
    unsupported = [u for v in verdicts(reply, base) for u in v.unsupported]
    assert unsupported == ["name:mexico", "name:city"]


def test_a_driver_without_audio_gets_no_latency_check(acme: AgentSources) -> None:
    call = CallSeen("CA3", (
        turn(event("We are open on Saturday from 9 a.m. to 1 p.m.", grounded=True), v2v=None),
        turn(event("Thank you for calling Acme Dental. Goodbye!", source="goodbye",
                   hang_up=True, grounded=True), v2v=None),
    ), end_reason="agent_hangup")  # fmt: skip
    scenario = scenarios()["hours-then-bye"]
    heard = score_scenario(scenario, call, acme)
    assert heard.status is Status.FAIL
    assert {f.split(":")[0] for t in heard.turns for f in failed(t)} == {"latency"}
    headless = score_scenario(scenario, call, acme, ScoringOptions(latency_measured=False))
    assert headless.status is Status.PASS, [failed(t) for t in headless.turns]
    assert {c.kind for t in headless.turns for c in t.checks}.isdisjoint({"latency"})


def test_a_redacted_reply_is_checked_against_what_the_caller_heard(acme: AgentSources) -> None:
    """The gateway publishes the reply with ``[PHONE]`` where the caller heard the number: a
    phrase hidden by redaction is looked for in the reply audio transcribed back, and only
    then (an unredacted reply is judged on its own text, whatever the transcription says)."""
    scenario = parse_scenarios(
        "agent: acme-dental\ntenant: acme\nlatency_ms: 1000\nscenarios:\n"
        "  - name: phone\n    turns:\n      - say: What is your number?\n"
        "        must_contain: [555 0100]\n        must_not_contain: [555 0199]\n",
        "p.yaml",
    )[0]

    def checks(reply: str, heard: str | None) -> list[str]:
        call = CallSeen("CA", (turn(event(reply, source="knowledge"), heard=heard),))
        score = score_scenario(scenario, call, acme)
        return [c.name for c in score.turns[0].checks
                if c.kind.startswith("must") and c.status is not Status.PASS]  # fmt: skip

    assert checks("Call us on [PHONE].", "Call us on 555 0100.") == []
    assert checks("Call us on [PHONE].", "Call us on 555 0199.") == ["555 0100", "555 0199"]
    assert checks("Call us on [PHONE].", None) == ["555 0100"]
    assert checks("Call us on 555 0123.", "Call us on 555 0100.") == ["555 0100"]
