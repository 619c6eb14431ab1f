"""The replay gate through the conversation eval: real scenarios, real scoring, a candidate
whose answers are scripted (what a replayed call heard)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from trunkline.agents import AgentSpec, load_agent_spec
from trunkline.evaluation import CallDriver, CallSeen, Scenario, TurnEvent, TurnSeen, load_scenarios
from trunkline.evaluation.sources import load_agent_sources
from trunkline.rollout.replay import EvalReplayGate
from trunkline.rollout.resources import Outcome, Replay

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = """
agent: acme-dental
scenarios:
  - name: monday-open
    turns:
      - say: What time do you open on Monday morning?
        must_contain: [8 am]
        not_actions: [deflection]
  - name: sunday-closed
    turns:
      - say: Are you open on Sunday?
        must_contain: [[closed, not open]]
        not_actions: [deflection]
"""


class ScriptedCandidate(CallDriver):
    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.seeds: list[int] = []

    async def run_call(self, scenario: Scenario) -> CallSeen:
        turns = []
        for turn in scenario.turns:
            reply = self.answers[turn.text or ""]
            event = TurnEvent(time.time(), turn.text or "", reply, reply_source="llm",
                              grounded=True)  # fmt: skip
            turns.append(TurnSeen(events=(event,), answered=True, voice_to_voice_ms=450.0))
        return CallSeen(call_id=f"replay-{scenario.name}", turns=tuple(turns))


class Unreachable(CallDriver):
    async def run_call(self, scenario: Scenario) -> CallSeen:
        raise ConnectionError("the candidate's gateway is down")


@pytest.fixture(scope="module")
def candidate() -> AgentSpec:
    return load_agent_spec(ROOT / "agents" / "acme-dental.yaml")


def gate(tmp_path: Path, driver: CallDriver, seeds: list[int]) -> EvalReplayGate:
    (tmp_path / "replay.yaml").write_text(SCENARIOS)

    def driver_for(spec: AgentSpec, seed: int) -> CallDriver:
        seeds.append(seed)
        return driver

    return EvalReplayGate(
        load_scenarios([tmp_path]), load_agent_sources(ROOT / "agents"), driver_for
    )


async def test_candidate_that_answers_right_passes(tmp_path: Path, candidate: AgentSpec) -> None:
    seeds: list[int] = []
    driver = ScriptedCandidate({
        "What time do you open on Monday morning?": "We open at 8 am on Monday.",
        "Are you open on Sunday?": "Sorry, we are closed on Sunday.",
    })  # fmt: skip
    report = await gate(tmp_path, driver, seeds).run(candidate, Replay(seed=11, min_pass_rate=1))
    assert report.outcome is Outcome.PASSED, report.message
    assert report.pass_rate == 1.0
    assert report.message == "2/2 scenarios passed"
    assert seeds == [11]


async def test_candidate_with_a_wrong_fact_fails(tmp_path: Path, candidate: AgentSpec) -> None:
    driver = ScriptedCandidate({
        "What time do you open on Monday morning?": "We open at 9 am on Monday.",
        "Are you open on Sunday?": "Sorry, we are closed on Sunday.",
    })  # fmt: skip
    report = await gate(tmp_path, driver, []).run(candidate, Replay(min_pass_rate=0.9))
    assert report.outcome is Outcome.FAILED
    assert report.pass_rate == 0.5
    assert report.message == "1/2 scenarios passed (not: monday-open)"


async def test_calls_that_cannot_run_are_inconclusive(tmp_path: Path, candidate: AgentSpec) -> None:
    report = await gate(tmp_path, Unreachable(), []).run(candidate, Replay())
    assert report.outcome is Outcome.INCONCLUSIVE
    assert report.message == "2 of 2 replayed calls could not run"


async def test_max_calls_and_agents_without_scenarios(tmp_path: Path, candidate: AgentSpec) -> None:
    driver = ScriptedCandidate({"What time do you open on Monday morning?": "At 8 am."})
    report = await gate(tmp_path, driver, []).run(candidate, Replay(max_calls=1))
    assert report.outcome is Outcome.PASSED
    other = candidate.model_copy(update={"name": "volt-energy"})
    report = await gate(tmp_path, driver, []).run(other, Replay())
    assert report.outcome is Outcome.INCONCLUSIVE
    assert report.message == "no eval scenarios for agent volt-energy"
