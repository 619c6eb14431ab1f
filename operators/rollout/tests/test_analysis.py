"""The rollout's decisions step by step, with a fake clock and no cluster."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trunkline.rollout.analysis import (
    Activate,
    Decision,
    Reading,
    ReplayReport,
    StartShadow,
    StopShadow,
    VersionInfo,
    check_due,
    decide,
    judge,
)
from trunkline.rollout.resources import Metric, Outcome, Phase, RolloutSpec, RolloutStatus

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
BOTH = {"1.0.0": VersionInfo(True, True), "1.1.0": VersionInfo(True, True)}
GOOD = {"voice_to_voice_p95_ms": Reading(620.0), "tool_call_agreement": Reading(0.97)}
SLOW = {"voice_to_voice_p95_ms": Reading(1240.0), "tool_call_agreement": Reading(0.97)}
UNREAD = {"voice_to_voice_p95_ms": Reading(None, "prometheus down"),
          "tool_call_agreement": Reading(0.97)}  # fmt: skip


def make_spec(**analysis: Any) -> RolloutSpec:
    replay = analysis.pop("replay", False)
    extra = {k: analysis.pop(k) for k in ("promote", "abort") if k in analysis}
    return RolloutSpec.model_validate(
        {
            "agent": "acme-dental",
            "stableVersion": "1.0.0",
            "candidateVersion": "1.1.0",
            "replay": {"enabled": replay, "minPassRate": 0.9},
            "shadow": {"samplePercent": 50, "replicas": 2},
            "analysis": {
                "interval": "30s",
                "minIterations": 3,
                "failureLimit": 2,
                "inconclusiveLimit": 2,
                "deadline": "10m",
                "metrics": [
                    {"name": "voice_to_voice_p95_ms", "thresholdRange": {"max": 900}},
                    {"name": "tool_call_agreement", "thresholdRange": {"min": 0.9}},
                ],
                **analysis,
            },
            **extra,
        }
    )


class Run:
    """A rollout driven step by step: ``clock`` only moves when the test moves it."""

    def __init__(self, spec: RolloutSpec) -> None:
        self.spec = spec
        self.now = T0
        self.status = RolloutStatus()
        self.decisions: list[Decision] = []

    def step(self, **inputs: Any) -> Decision:
        decision = decide(self.spec, self.status, now=self.now, generation=1, **inputs)
        self.status = decision.status
        self.decisions.append(decision)
        return decision

    def check(self, readings: Mapping[str, Reading], seconds: float = 30) -> Decision:
        self.now += timedelta(seconds=seconds)
        assert check_due(self.spec, self.status, self.now)
        return self.step(readings=readings)

    def condition(self, kind: str) -> tuple[str, str]:
        found = self.status.condition(kind)
        assert found is not None, kind
        return found.status, found.reason


def test_start_goes_to_shadow_and_starts_the_candidates_runners() -> None:
    run = Run(make_spec())
    decision = run.step(versions=BOTH)
    assert run.status.phase is Phase.SHADOWING
    assert decision.actions == (StartShadow("1.1.0", 2, 50.0),)
    assert run.condition("Progressing") == ("True", "Shadowing")
    assert run.condition("Promoted") == ("False", "NotPromoted")
    assert run.condition("ReplayPassed") == ("Unknown", "Disabled")
    assert run.status.next_check_time == "2026-03-01T12:00:30Z"
    assert decision.requeue_s == 30
    assert [e.reason for e in decision.events] == ["Shadowing"]


def test_check_not_due_before_the_interval() -> None:
    run = Run(make_spec())
    run.step(versions=BOTH)
    run.now += timedelta(seconds=29)
    assert not check_due(run.spec, run.status, run.now)
    decision = run.step()
    assert decision.check is None
    assert decision.status.iterations == 0
    assert decision.requeue_s == pytest.approx(1.0)


def test_min_iterations_promote_and_activate_the_candidate() -> None:
    run = Run(make_spec())
    run.step(versions=BOTH)
    run.check(GOOD)
    run.check(GOOD)
    assert run.status.phase is Phase.SHADOWING
    assert run.status.iterations == 2
    assert run.status.message.startswith("2/3 successful checks")
    decision = run.check(GOOD)
    assert run.status.phase is Phase.SUCCEEDED
    assert decision.actions == (Activate("1.1.0"), StopShadow("1.1.0"))
    assert run.status.active_version == "1.1.0"
    assert run.condition("Promoted") == ("True", "AnalysisPassed")
    assert run.condition("Progressing") == ("False", "Succeeded")
    # terminal: nothing more happens
    run.now += timedelta(hours=1)
    assert run.step(readings=SLOW).actions == ()


def test_latency_breach_rolls_back_within_failure_limit_checks() -> None:
    run = Run(make_spec())
    run.step(versions=BOTH)
    run.check(GOOD)
    first = run.check(SLOW)  # the breach begins
    assert first.check is Outcome.FAILED
    assert run.status.phase is Phase.SHADOWING
    assert run.status.failed_checks == 1
    assert [e.reason for e in first.events] == ["CheckFailed"]
    assert first.events[0].type == "Warning"
    assert "voice_to_voice_p95_ms 1240 outside <= 900" in first.events[0].message
    second = run.check(SLOW)
    assert run.status.phase is Phase.FAILED
    assert second.actions == (StopShadow("1.1.0"),)
    assert second.rolled_back
    assert run.status.active_version == "1.0.0"
    assert run.condition("Promoted") == ("False", "FailureLimit")
    assert run.condition("Progressing") == ("False", "FailureLimit")
    warnings = [e for e in second.events if e.type == "Warning"]
    assert [e.reason for e in warnings] == ["CheckFailed", "FailureLimit"]
    assert "1.0.0 stays active" in run.status.message
    # reaction: two intervals after the breach began (the check at which it was first seen
    # counts as the first)
    breach_seen = T0 + timedelta(seconds=60)
    assert run.now - breach_seen <= timedelta(seconds=2 * 30)


def test_unreadable_metrics_are_inconclusive_never_failures_and_pause() -> None:
    run = Run(make_spec())
    run.step(versions=BOTH)
    assert run.check(UNREAD).check is Outcome.INCONCLUSIVE
    assert run.status.failed_checks == 0
    assert run.status.inconclusive_checks == 1
    result = {r.name: r for r in run.status.results}["voice_to_voice_p95_ms"]
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.message == "prometheus down"
    decision = run.check(UNREAD)
    assert run.status.phase is Phase.PAUSED
    assert run.condition("Paused") == ("True", "TooManyInconclusive")
    assert run.condition("Progressing")[0] == "False"
    assert decision.actions == ()  # the shadow keeps running while a human decides
    assert decision.requeue_s is None


def test_paused_rollout_promoted_by_hand() -> None:
    run = Run(make_spec())
    run.step(versions=BOTH)
    run.check(UNREAD)
    run.check(UNREAD)
    run.spec = make_spec(promote=True)
    decision = run.step()
    assert run.status.phase is Phase.SUCCEEDED
    assert decision.actions == (Activate("1.1.0"), StopShadow("1.1.0"))
    assert run.condition("Promoted") == ("True", "ManualPromotion")
    assert run.condition("Paused") == ("False", "")


def test_abort_stops_the_shadow_and_fails() -> None:
    run = Run(make_spec())
    run.step(versions=BOTH)
    run.check(GOOD)
    run.spec = make_spec(abort=True)
    decision = run.step()
    assert run.status.phase is Phase.FAILED
    assert decision.actions == (StopShadow("1.1.0"),)
    assert run.condition("Promoted") == ("False", "Aborted")


@pytest.mark.parametrize(
    ("versions", "needle"),
    [
        ({"1.0.0": VersionInfo(True, True)}, "agent acme-dental has no version 1.1.0"),
        ({"1.1.0": VersionInfo(True, True)}, "agent acme-dental has no version 1.0.0"),
        (
            {**BOTH, "1.1.0": VersionInfo(True, False, "tools: duplicate tool names: x")},
            "version 1.1.0 is not valid: tools: duplicate tool names: x",
        ),
    ],
)
def test_missing_or_invalid_version_fails_with_a_clear_message(
    versions: dict[str, VersionInfo], needle: str
) -> None:
    run = Run(make_spec())
    decision = run.step(versions=versions)
    assert run.status.phase is Phase.FAILED
    assert needle in run.status.message
    assert decision.actions == ()
    assert decision.events[-1].type == "Warning"
    assert decision.events[-1].reason == "MissingVersion"


def test_replay_gate_first_then_shadow() -> None:
    run = Run(make_spec(replay=True))
    decision = run.step(versions=BOTH)
    assert run.status.phase is Phase.REPLAYING
    assert decision.actions == ()
    assert decision.requeue_s == 0
    decision = run.step(replay=ReplayReport(Outcome.PASSED, 0.95, "12 calls"))
    assert run.status.phase is Phase.SHADOWING
    assert run.condition("ReplayPassed") == ("True", "Passed")
    assert decision.actions == (StartShadow("1.1.0", 2, 50.0),)


def test_failed_replay_fails_and_never_shadows() -> None:
    run = Run(make_spec(replay=True))
    run.step(versions=BOTH)
    decision = run.step(replay=ReplayReport(Outcome.FAILED, 0.5, "12 calls"))
    assert run.status.phase is Phase.FAILED
    assert run.condition("ReplayPassed") == ("False", "Failed")
    assert not any(isinstance(a, StartShadow) for d in run.decisions for a in d.actions)
    assert decision.actions == ()
    assert "pass rate 50%" in run.status.message


def test_inconclusive_replay_pauses_at_the_limit() -> None:
    run = Run(make_spec(replay=True))
    run.step(versions=BOTH)
    run.step(replay=ReplayReport(Outcome.INCONCLUSIVE, message="harness down"))
    assert run.status.phase is Phase.REPLAYING
    run.step(replay=ReplayReport(Outcome.INCONCLUSIVE, message="harness down"))
    assert run.status.phase is Phase.PAUSED
    assert run.condition("ReplayPassed") == ("Unknown", "Inconclusive")


def test_deadline_fails_a_slow_rollout() -> None:
    run = Run(make_spec(minIterations=100))
    run.step(versions=BOTH)
    for _ in range(19):
        run.check(GOOD)
    assert run.status.phase is Phase.SHADOWING
    run.check(GOOD)  # 10 minutes after the start
    assert run.status.phase is Phase.FAILED
    assert run.condition("Progressing") == ("False", "DeadlineExceeded")


def test_watch_window_reverts_on_a_breach_after_promotion() -> None:
    run = Run(make_spec(minIterations=1, watchWindow="5m"))
    run.step(versions=BOTH)
    run.check(GOOD)
    assert run.status.phase is Phase.PROMOTING
    assert run.condition("Promoted") == ("True", "AnalysisPassed")
    assert run.condition("Progressing") == ("True", "AnalysisPassed")
    run.check(SLOW)
    decision = run.check(SLOW)
    assert run.status.phase is Phase.FAILED
    assert decision.actions == (Activate("1.0.0"),)
    assert decision.rolled_back
    assert run.condition("Promoted") == ("False", "Reverted")
    assert run.status.active_version == "1.0.0"


def test_watch_window_ends_in_success() -> None:
    run = Run(make_spec(minIterations=1, watchWindow="1m"))
    run.step(versions=BOTH)
    run.check(GOOD)
    run.check(GOOD)
    assert run.status.phase is Phase.PROMOTING
    run.check(GOOD)
    assert run.status.phase is Phase.SUCCEEDED
    assert "watch window passed" in run.status.message


def test_new_candidate_restarts_a_finished_rollout() -> None:
    run = Run(make_spec())
    run.step(versions={"1.0.0": VersionInfo(True, True)})
    assert run.status.phase is Phase.FAILED
    run.spec = run.spec.model_copy(update={"candidate_version": "1.2.0"})
    decision = run.step(versions={**BOTH, "1.2.0": VersionInfo(True, True)})
    assert run.status.phase is Phase.SHADOWING
    assert run.status.candidate_version == "1.2.0"
    assert decision.events[0].reason == "Restarted"
    assert decision.actions == (StartShadow("1.2.0", 2, 50.0),)


def test_condition_transition_time_moves_only_when_status_changes() -> None:
    run = Run(make_spec())
    run.step(versions=BOTH)
    promoted = run.status.condition("Promoted")
    assert promoted is not None
    run.check(GOOD, seconds=45)
    again = run.status.condition("Promoted")
    assert again is not None
    assert again.last_transition_time == promoted.last_transition_time == "2026-03-01T12:00:00Z"


@pytest.mark.parametrize(
    ("bounds", "value", "outcome"),
    [
        ({"max": 900}, 900.0, Outcome.PASSED),
        ({"max": 900}, 900.5, Outcome.FAILED),
        ({"min": 0.9}, 0.89, Outcome.FAILED),
        ({"min": 0.5, "max": 2}, 1.0, Outcome.PASSED),
        ({"max": 900}, float("nan"), Outcome.INCONCLUSIVE),
        ({"max": 900}, None, Outcome.INCONCLUSIVE),
    ],
)
def test_judge_threshold_ranges(
    bounds: dict[str, float], value: float | None, outcome: Outcome
) -> None:
    metric = Metric.model_validate({"name": "cost_per_turn", "thresholdRange": bounds})
    assert judge(metric, Reading(value)).outcome is outcome


def delta_spec(**analysis: Any) -> RolloutSpec:
    return make_spec(metrics=[{"name": "reply_time_delta_ms", "thresholdRange": {"max": 250}}],
                     **analysis)  # fmt: skip


def delta(value: float | None, turns: int, need: int = 2) -> dict[str, Reading]:
    why = f"{turns} answered shadow turns (need {need})" if turns < need else ""
    return {"reply_time_delta_ms": Reading(value, why, provisional=turns < need)}


def test_a_check_without_enough_samples_waits_for_data_not_an_interval() -> None:
    run = Run(delta_spec())
    run.step(versions=BOTH)
    waiting = run.check(delta(None, 0))
    assert waiting.check is None  # no check recorded: nothing counted
    assert (run.status.iterations, run.status.inconclusive_checks) == (0, 0)
    assert waiting.requeue_s == 3.0  # a tenth of the 30 s interval (at least 1 s)
    assert (
        run.status.message == "waiting for data (reply_time_delta_ms: 0 answered shadow "
        "turns (need 2))"
    )
    assert check_due(run.spec, run.status, run.now)  # still due: the next step reads again
    passing = run.check(delta(120.0, 1), seconds=3)
    assert passing.check is None  # a provisional value never passes a check
    judged = run.check(delta(120.0, 2), seconds=3)  # enough: judged 6 s after it was due
    assert judged.check is Outcome.PASSED
    assert run.status.iterations == 1
    assert run.status.next_check_time == "2026-03-01T12:01:06Z"  # an interval from the judging


def test_an_interval_without_enough_data_counts_as_inconclusive() -> None:
    run = Run(delta_spec())
    run.step(versions=BOTH)
    run.check(delta(None, 0))
    for _ in range(9):
        assert run.check(delta(90.0, 1), seconds=3).check is None
    decision = run.check(delta(90.0, 1), seconds=3)  # 30 s past due
    assert decision.check is Outcome.INCONCLUSIVE
    assert run.status.inconclusive_checks == 1
    (result,) = run.status.results
    assert (result.outcome, result.message) == (
        Outcome.INCONCLUSIVE, "1 answered shadow turns (need 2)")  # fmt: skip


def test_a_provisional_breach_fails_a_check_but_never_decides_the_rollback() -> None:
    run = Run(delta_spec())
    run.step(versions=BOTH)
    first = run.check(delta(412.0, 1))  # the first slow shadow turn: the breach begins
    breach = run.now
    assert first.check is Outcome.FAILED
    assert run.status.failed_checks == 1
    assert first.events[0].message == (
        "reply_time_delta_ms 412 outside <= 250 (1 answered shadow turns (need 2)) (1 failed)"
    )
    # an interval later still the one slow turn: it cannot decide the rollback alone
    assert run.check(delta(412.0, 1)).check is None
    assert run.status.phase is Phase.SHADOWING
    last = run.check(delta(405.0, 2), seconds=3)  # the second slow turn comes
    assert last.check is Outcome.FAILED
    assert run.status.phase is Phase.FAILED
    assert run.condition("Promoted") == ("False", "FailureLimit")
    assert last.actions == (StopShadow("1.1.0"),)
    assert run.now - breach <= timedelta(seconds=30 + 3)  # one interval and one look


def test_a_firm_breach_does_not_wait_for_a_provisional_metric() -> None:
    run = Run(make_spec(failureLimit=1))
    run.step(versions=BOTH)
    readings = {"voice_to_voice_p95_ms": Reading(1240.0),
                "tool_call_agreement": Reading(1.0, "1 answered shadow turns (need 2)",
                                               provisional=True)}  # fmt: skip
    decision = run.check(readings)
    assert decision.check is Outcome.FAILED
    assert run.status.phase is Phase.FAILED
    results = {r.name: r.outcome for r in run.status.results}
    assert results == {"voice_to_voice_p95_ms": Outcome.FAILED,
                       "tool_call_agreement": Outcome.INCONCLUSIVE}  # fmt: skip


def look(run: Run, readings: Mapping[str, Reading], seconds: float) -> Decision:
    """A step between checks (the daemon's wake-ups while the candidate is shadowed)."""
    run.now += timedelta(seconds=seconds)
    return run.step(readings=readings)


def test_between_checks_a_beginning_breach_fails_a_check_at_once() -> None:
    run = Run(make_spec())
    run.step(versions=BOTH)
    quiet = look(run, GOOD, 3)  # passing readings wait for the check
    assert quiet.check is None
    assert quiet.requeue_s == 3.0  # a tenth of the interval
    assert run.status.iterations == 0
    first = look(run, SLOW, 3)  # the breach begins 6 s into the interval
    breach = run.now
    assert first.check is Outcome.FAILED
    assert run.status.failed_checks == 1
    assert run.status.next_check_time == "2026-03-01T12:00:36Z"  # an interval from now
    for _ in range(9):  # confirming it waits the interval
        assert look(run, SLOW, 3).check is None
    assert run.status.phase is Phase.SHADOWING
    last = look(run, SLOW, 3)
    assert last.check is Outcome.FAILED
    assert run.status.phase is Phase.FAILED
    assert run.now - breach == timedelta(seconds=30)  # one interval after the breach began
    assert last.actions == (StopShadow("1.1.0"),)
