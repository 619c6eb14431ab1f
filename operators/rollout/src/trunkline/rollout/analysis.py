"""The rollout's decisions, as pure functions: no I/O, no clock, no Kubernetes client.

One call of :func:`decide` is one step of an ``AgentRollout``: given its spec, the status it
had, the time, and what the controller gathered (the versions found, the replay report, the
metric readings of a due check), it returns the next status, the actions to take (start or stop
the candidate's shadow, make a version the active one) and the Events to record. The kopf
handlers only gather inputs and apply outputs (``controller.py``), so every rule below is tested
step by step with a fake clock and no cluster.

Rules (DESIGN.md §5):
- a metric outside its ``thresholdRange`` is a failed check; one that could not be read (no data,
  NaN, the source down) is *inconclusive* and never counts as a failure;
- between checks the step still looks (a tenth of the interval, at least 1 s): a breach that
  begins fails a check at once instead of at the next scheduled one, unless the last check
  failed (the one confirming it comes an interval later); passing readings wait for the check;
- a due check whose source has too few samples yet (a *provisional* reading) waits for data:
  the step looks again within seconds (not an interval later), and only an interval without
  enough data counts as inconclusive. A provisional value outside its range fails a check at
  once, except the one that would reach ``failureLimit``: no rollback rests on fewer samples
  than the source needs, and none waits longer than the data takes to come;
- ``failureLimit`` failed checks: Failed, shadow stopped (scaled to zero), stable stays active;
- ``inconclusiveLimit`` inconclusive checks: Paused (``promote`` or ``abort`` decides);
- ``minIterations`` successful checks: the candidate becomes active (Promoted=True); with a
  ``watchWindow`` the analysis goes on (phase Promoting) and failed checks there revert to
  the stable version;
- the replay gate comes first: a failed replay fails the rollout before any shadow runs;
- ``deadline`` past before promotion: Failed; ``abort``: Failed and rolled back; ``promote``:
  promoted now; new stable/candidate versions restart the rollout from Pending.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from trunkline.rollout.resources import (
    Condition,
    Metric,
    MetricResult,
    Outcome,
    Phase,
    RolloutSpec,
    RolloutStatus,
)

PROGRESSING = "Progressing"
PROMOTED = "Promoted"
REPLAY_PASSED = "ReplayPassed"
PAUSED = "Paused"
CONDITION_TYPES = (PROGRESSING, PROMOTED, REPLAY_PASSED, PAUSED)


# -- inputs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    """One metric as read: a value, or None with the reason it could not be read."""

    value: float | None
    error: str = ""
    provisional: bool = False
    """From fewer samples than the source needs (None: none yet; ``error`` says how many): it
    can fail a check that leaves the failure limit unreached, never pass one or decide one."""


DATA_POLL_S = 1.0
"""How soon a due check that waits for data looks again (at most every tenth of the interval)."""


@dataclass(frozen=True)
class VersionInfo:
    """What the controller found for one agent version (a VoiceAgent)."""

    found: bool
    validated: bool = False
    message: str = ""


@dataclass(frozen=True)
class ReplayReport:
    outcome: Outcome
    pass_rate: float | None = None
    message: str = ""


# -- outputs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartShadow:
    """Run the version's shadow runners (create or scale up its Deployment)."""

    version: str
    replicas: int
    sample_percent: float


@dataclass(frozen=True)
class StopShadow:
    """Scale the version's shadow runners to zero."""

    version: str


@dataclass(frozen=True)
class Activate:
    """Make ``version`` the agent's active version (the one taking live calls)."""

    version: str


Action = StartShadow | StopShadow | Activate


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_s: float | None = None
    """Look again after this many seconds (None: only when the resource changes)."""
    rolled_back: bool = False
    check: Outcome | None = None
    """The outcome of the analysis check this step ran (None: none ran)."""


# -- helpers -------------------------------------------------------------------------------
def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second (what Kubernetes writes)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def set_condition(
    conditions: Sequence[Condition],
    kind: str,
    status: bool | None,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> tuple[Condition, ...]:
    """``conditions`` with ``kind`` set; its transition time moves only when its status does."""
    value = "Unknown" if status is None else ("True" if status else "False")
    old = next((c for c in conditions if c.type == kind), None)
    since = old.last_transition_time if old is not None and old.status == value else ""
    new = Condition(
        type=kind,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since or timestamp(now),
        observed_generation=generation,
    )
    kept = [c for c in conditions if c.type != kind]
    return tuple(sorted([*kept, new], key=lambda c: _order(c.type)))


def _order(kind: str) -> int:
    return CONDITION_TYPES.index(kind) if kind in CONDITION_TYPES else len(CONDITION_TYPES)


def judge(metric: Metric, reading: Reading | None) -> MetricResult:
    """One metric's check: passed, failed (outside its range) or inconclusive (unreadable)."""
    name = metric.name.value
    if reading is None:
        return MetricResult(name=name, outcome=Outcome.INCONCLUSIVE, message="not read")
    value = reading.value
    if value is None or math.isnan(value) or math.isinf(value):
        why = reading.error or ("no data" if value is None else f"value {value}")
        return MetricResult(name=name, outcome=Outcome.INCONCLUSIVE, message=why)
    bounds = metric.threshold_range
    below = bounds.min is not None and value < bounds.min
    above = bounds.max is not None and value > bounds.max
    if below or above:
        return MetricResult(
            name=name,
            value=value,
            outcome=Outcome.FAILED,
            message=f"{name} {value:g} outside {bounds.describe()}",
        )
    return MetricResult(name=name, value=value, outcome=Outcome.PASSED)


def check_outcome(results: Sequence[MetricResult]) -> Outcome:
    """A check fails if any metric failed; else it is inconclusive if any was unreadable."""
    outcomes = {r.outcome for r in results}
    if Outcome.FAILED in outcomes:
        return Outcome.FAILED
    if Outcome.INCONCLUSIVE in outcomes:
        return Outcome.INCONCLUSIVE
    return Outcome.PASSED


def wants_readings(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> bool:
    """True when the step should get metric readings: a check is due, or the candidate is
    shadowed (between checks a breach that begins fails a check at once)."""
    return status.phase is Phase.SHADOWING or check_due(spec, status, now)


def check_due(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> bool:
    """True when an analysis check should run now (phase Shadowing or Promoting)."""
    if status.phase not in (Phase.SHADOWING, Phase.PROMOTING):
        return False
    due = parse_time(status.next_check_time)
    return due is None or now >= due


# -- the step ------------------------------------------------------------------------------
@dataclass
class _Step:
    spec: RolloutSpec
    status: RolloutStatus
    now: datetime
    generation: int | None
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_s: float | None = None
    rolled_back: bool = False
    check: Outcome | None = None

    def update(self, **changes: object) -> None:
        self.status = self.status.model_copy(update=changes)

    def condition(self, kind: str, status: bool | None, reason: str, message: str = "") -> None:
        conditions = set_condition(
            self.status.conditions, kind, status, reason, message, now=self.now,
            generation=self.generation,
        )  # fmt: skip
        self.update(conditions=conditions)

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))

    def enter(self, phase: Phase, reason: str, message: str) -> None:
        """Move to ``phase``: status message, Progressing/Paused conditions and an Event."""
        warning = phase in (Phase.FAILED, Phase.PAUSED)
        self.update(phase=phase, message=message)
        if phase.terminal or phase is Phase.PAUSED:
            self.condition(PROGRESSING, False, reason, message)
        else:
            self.condition(PROGRESSING, True, reason, message)
        self.condition(PAUSED, phase is Phase.PAUSED, reason if phase is Phase.PAUSED else "", "")
        self.event(reason, f"{phase.value}: {message}", warning=warning)

    def schedule(self, seconds: float) -> None:
        self.update(next_check_time=timestamp(self.now + timedelta(seconds=seconds)))
        self.requeue_s = seconds

    def decision(self) -> Decision:
        self.update(observed_generation=self.generation)
        return Decision(
            status=self.status,
            actions=tuple(self.actions),
            events=tuple(self.events),
            requeue_s=self.requeue_s,
            rolled_back=self.rolled_back,
            check=self.check,
        )


def initial_status(spec: RolloutSpec, now: datetime, generation: int | None) -> RolloutStatus:
    step = _Step(spec, RolloutStatus(), now, generation)
    step.update(
        phase=Phase.PENDING,
        stable_version=spec.stable_version,
        candidate_version=spec.candidate_version,
        active_version=spec.stable_version,
        start_time=timestamp(now),
        message="waiting to start",
    )
    step.condition(PROGRESSING, True, "Pending", "waiting to start")
    step.condition(PROMOTED, False, "NotPromoted", f"{spec.stable_version} is active")
    step.condition(REPLAY_PASSED, None, "Pending", "")
    step.condition(PAUSED, False, "", "")
    return step.status


def decide(
    spec: RolloutSpec,
    status: RolloutStatus,
    *,
    now: datetime,
    generation: int | None = None,
    versions: Mapping[str, VersionInfo] | None = None,
    replay: ReplayReport | None = None,
    readings: Mapping[str, Reading] | None = None,
) -> Decision:
    """One step of the rollout (see the module doc). ``versions`` by version string; ``replay``
    when the phase is Replaying and the gate ran; ``readings`` by metric name when a check was
    due (:func:`check_due`) and the controller read the metrics."""
    restarted = bool(status.candidate_version) and (
        status.candidate_version != spec.candidate_version
        or status.stable_version != spec.stable_version
    )
    if not status.candidate_version or restarted:
        status = initial_status(spec, now, generation)
    step = _Step(spec, status, now, generation)
    if restarted:
        step.event(
            "Restarted",
            f"new versions: stable {spec.stable_version}, candidate {spec.candidate_version}",
        )
    phase = step.status.phase
    if phase.terminal:
        return step.decision()
    if spec.abort:
        _fail(step, "Aborted", "aborted (spec.abort); the stable version stays active")
        return step.decision()
    if spec.promote and phase in (Phase.REPLAYING, Phase.SHADOWING, Phase.PAUSED):
        _promote(step, "ManualPromotion", "promoted by hand (spec.promote)")
        return step.decision()
    if phase is Phase.PENDING:
        _start(step, versions or {})
    elif phase is Phase.REPLAYING:
        _replaying(step, replay)
    elif phase is Phase.SHADOWING:
        _shadowing(step, readings)
    elif phase is Phase.PROMOTING:
        _watching(step, readings)
    return step.decision()


def _missing(spec: RolloutSpec, version: str, info: VersionInfo | None) -> str | None:
    if info is None or not info.found:
        return (
            f"agent {spec.agent} has no version {version}: no VoiceAgent with spec.name "
            f"{spec.agent} and spec.version {version} in this namespace"
        )
    if not info.validated:
        return f"{spec.agent} version {version} is not valid: {info.message or 'Validated=False'}"
    return None


def _start(step: _Step, versions: Mapping[str, VersionInfo]) -> None:
    spec = step.spec
    for version in (spec.stable_version, spec.candidate_version):
        problem = _missing(spec, version, versions.get(version))
        if problem is not None:
            _fail(step, "MissingVersion", problem)
            return
    if spec.replay.enabled:
        step.enter(
            Phase.REPLAYING, "Replaying", f"replaying stored calls through {spec.candidate_version}"
        )
        step.requeue_s = 0.0
        return
    step.condition(REPLAY_PASSED, None, "Disabled", "spec.replay.enabled is false")
    _begin_shadow(step)


def _begin_shadow(step: _Step) -> None:
    spec = step.spec
    step.actions.append(
        StartShadow(spec.candidate_version, spec.shadow.replicas, spec.shadow.sample_percent)
    )
    step.update(iterations=0, failed_checks=0, inconclusive_checks=0)
    step.enter(
        Phase.SHADOWING,
        "Shadowing",
        f"{spec.candidate_version} gets {spec.shadow.sample_percent:g}% of live turns in shadow",
    )
    step.schedule(spec.analysis.interval_s)


def _replaying(step: _Step, replay: ReplayReport | None) -> None:
    spec = step.spec
    if replay is None:
        step.requeue_s = spec.analysis.interval_s
        return
    rate = f" (pass rate {replay.pass_rate:.0%})" if replay.pass_rate is not None else ""
    detail = f"{replay.message}{rate}".strip()
    if replay.outcome is Outcome.PASSED:
        step.condition(REPLAY_PASSED, True, "Passed", detail)
        step.event("ReplayPassed", detail or "replay passed")
        _begin_shadow(step)
    elif replay.outcome is Outcome.FAILED:
        step.condition(REPLAY_PASSED, False, "Failed", detail)
        _fail(step, "ReplayFailed", f"the replay gate failed: {detail}; never shadowed")
    else:
        count = step.status.inconclusive_checks + 1
        step.update(inconclusive_checks=count)
        step.condition(REPLAY_PASSED, None, "Inconclusive", detail)
        if count >= spec.analysis.inconclusive_limit:
            _pause(step, f"the replay was inconclusive {count} times: {detail}")
        else:
            step.requeue_s = spec.analysis.interval_s


def _judged(step: _Step, readings: Mapping[str, Reading]) -> tuple[MetricResult, ...] | None:
    """The due check's results, or None while it waits for data (see the module doc)."""
    spec = step.spec
    deciding = step.status.failed_checks + 1 >= spec.analysis.failure_limit
    due = parse_time(step.status.next_check_time) or step.now
    waited_out = step.now - due >= timedelta(seconds=spec.analysis.interval_s)
    results: list[MetricResult] = []
    failed = waiting = False
    for metric in spec.analysis.metrics:
        reading = readings.get(metric.name.value)
        result = judge(metric, reading)
        if reading is not None and reading.provisional:
            if result.outcome is Outcome.FAILED and not deciding:
                result = result.model_copy(
                    update={"message": f"{result.message} ({reading.error})"}
                )
            else:  # not enough samples to pass, or to decide a rollback
                waiting = True
                result = MetricResult(
                    name=metric.name.value, value=result.value,
                    outcome=Outcome.INCONCLUSIVE, message=reading.error or "too few samples",
                )  # fmt: skip
        failed |= result.outcome is Outcome.FAILED
        results.append(result)
    if waiting and not failed and not waited_out:
        return None
    return tuple(results)


def _poll_s(spec: RolloutSpec) -> float:
    interval = spec.analysis.interval_s
    return min(interval, max(DATA_POLL_S, interval / 10))


def _early_breach(step: _Step, readings: Mapping[str, Reading]) -> tuple[MetricResult, ...] | None:
    """Between checks: a breach that begins is a failed check at once (not at the next
    scheduled one), unless the last check already failed (confirming it waits an interval).
    Passing readings wait for the scheduled check."""
    if check_outcome(step.status.results) is Outcome.FAILED:
        return None
    results = _judged(step, readings)
    if results is None or check_outcome(results) is not Outcome.FAILED:
        return None
    return results


def _wait_for_data(step: _Step, readings: Mapping[str, Reading]) -> None:
    step.requeue_s = _poll_s(step.spec)
    short = "; ".join(
        f"{name}: {r.error}" for name, r in readings.items() if r.provisional and r.error
    )
    step.update(message=f"waiting for data ({short or 'too few samples'})")


def _record_check(step: _Step, results: tuple[MetricResult, ...]) -> Outcome:
    outcome = check_outcome(results)
    step.check = outcome
    status = step.status
    step.update(results=results, last_check_time=timestamp(step.now))
    if outcome is Outcome.FAILED:
        step.update(failed_checks=status.failed_checks + 1)
        failed = "; ".join(r.message for r in results if r.outcome is Outcome.FAILED)
        step.event("CheckFailed", f"{failed} ({status.failed_checks + 1} failed)", warning=True)
    elif outcome is Outcome.INCONCLUSIVE:
        step.update(inconclusive_checks=status.inconclusive_checks + 1)
        unread = "; ".join(
            f"{r.name}: {r.message}" for r in results if r.outcome is Outcome.INCONCLUSIVE
        )
        step.event("CheckInconclusive", f"{unread} ({status.inconclusive_checks + 1} inconclusive)")
    else:
        step.update(iterations=status.iterations + 1)
    return outcome


def _failed_metrics(step: _Step) -> str:
    return "; ".join(r.message for r in step.status.results if r.outcome is Outcome.FAILED)


def _shadowing(step: _Step, readings: Mapping[str, Reading] | None) -> None:
    spec = step.spec
    analysis = spec.analysis
    started = parse_time(step.status.start_time) or step.now
    if step.now - started >= timedelta(seconds=analysis.deadline_s):
        _fail(step, "DeadlineExceeded", f"not promoted within {analysis.deadline}")
        return
    due = parse_time(step.status.next_check_time)
    to_due = max(0.0, (due - step.now).total_seconds()) if due else 0.0
    if readings is None:
        step.requeue_s = to_due
        return
    if check_due(spec, step.status, step.now):
        results = _judged(step, readings)
        if results is None:
            _wait_for_data(step, readings)
            return
    else:
        results = _early_breach(step, readings)
        if results is None:
            step.requeue_s = min(to_due, _poll_s(spec))
            return
    _record_check(step, results)
    status = step.status
    if status.failed_checks >= analysis.failure_limit:
        _fail(
            step,
            "FailureLimit",
            f"{status.failed_checks} failed checks (limit {analysis.failure_limit}), last: "
            f"{_failed_metrics(step)}; rolled back, {spec.stable_version} stays active",
        )
    elif status.inconclusive_checks >= analysis.inconclusive_limit:
        _pause(step, f"{status.inconclusive_checks} inconclusive checks (limit "
                     f"{analysis.inconclusive_limit}): promote or abort")  # fmt: skip
    elif status.iterations >= analysis.min_iterations:
        _promote(step, "AnalysisPassed", f"{status.iterations} successful checks")
    else:
        step.update(
            message=f"{status.iterations}/{analysis.min_iterations} successful checks, "
            f"{status.failed_checks} failed, {status.inconclusive_checks} inconclusive"
        )
        step.schedule(analysis.interval_s)


def _promote(step: _Step, reason: str, why: str) -> None:
    spec = step.spec
    step.actions.extend((Activate(spec.candidate_version), StopShadow(spec.candidate_version)))
    step.update(
        active_version=spec.candidate_version,
        promoted_time=timestamp(step.now),
        failed_checks=0,
        inconclusive_checks=0,
    )
    step.condition(PROMOTED, True, reason, f"{spec.candidate_version} is active: {why}")
    window = spec.analysis.watch_window_s
    if window > 0:
        step.enter(
            Phase.PROMOTING,
            reason,
            f"{spec.candidate_version} is active ({why}); watching it for "
            f"{spec.analysis.watch_window}",
        )
        step.schedule(min(spec.analysis.interval_s, window))
    else:
        step.enter(Phase.SUCCEEDED, "Succeeded", f"{spec.candidate_version} is active ({why})")


def _watching(step: _Step, readings: Mapping[str, Reading] | None) -> None:
    spec = step.spec
    promoted = parse_time(step.status.promoted_time) or step.now
    end = promoted + timedelta(seconds=spec.analysis.watch_window_s)
    results = None
    if readings is not None and check_due(spec, step.status, step.now):
        results = _judged(step, readings)
        if results is None and step.now < end:
            _wait_for_data(step, readings)
            return
    if results is not None:
        _record_check(step, results)
        if step.status.failed_checks >= spec.analysis.failure_limit:
            step.actions.append(Activate(spec.stable_version))
            step.update(active_version=spec.stable_version)
            step.rolled_back = True
            message = (
                f"{step.status.failed_checks} failed checks in the watch window, last: "
                f"{_failed_metrics(step)}; reverted to {spec.stable_version}"
            )
            step.condition(PROMOTED, False, "Reverted", message)
            step.enter(Phase.FAILED, "Reverted", message)
            return
    if step.now >= end:
        step.enter(
            Phase.SUCCEEDED,
            "Succeeded",
            f"{spec.candidate_version} is active; the {spec.analysis.watch_window} watch "
            "window passed",
        )
        return
    due = parse_time(step.status.next_check_time)
    if due is None or step.now >= due:
        step.schedule(min(spec.analysis.interval_s, (end - step.now).total_seconds()))
    else:
        step.requeue_s = (due - step.now).total_seconds()


def _pause(step: _Step, message: str) -> None:
    step.enter(Phase.PAUSED, "TooManyInconclusive", message)


def _fail(step: _Step, reason: str, message: str) -> None:
    spec = step.spec
    if step.status.phase in (Phase.SHADOWING, Phase.PAUSED):
        step.actions.append(StopShadow(spec.candidate_version))
        step.rolled_back = True
    elif step.status.phase is Phase.PROMOTING:
        step.actions.append(Activate(spec.stable_version))
        step.rolled_back = True
    step.update(active_version=spec.stable_version)
    step.condition(PROMOTED, False, reason, message)
    step.enter(Phase.FAILED, reason, message)
