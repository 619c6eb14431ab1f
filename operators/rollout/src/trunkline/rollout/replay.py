"""The replay gate: stored calls replayed through the candidate before any shadow runs.

A small ABC so the controller does not care how calls are replayed. :meth:`ReplayGate.run`
owns the timeout and turns an error into an *inconclusive* report (never a failure); an
implementation writes ``_run``. :class:`EvalReplayGate` runs the agent's conversation-eval
scenarios (``trunkline.evaluation``) through a :class:`~trunkline.evaluation.CallDriver` that
places the calls on the candidate, and passes at ``minPassRate``. No driver that places calls on
a candidate version exists yet (the gateway routes by agent, not by version), so the operator
process uses :class:`NoReplayHarness`, whose reports are inconclusive with a message saying so:
a rollout with ``replay.enabled: true`` pauses rather than pretending the candidate passed.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping, Sequence

from trunkline.agents import AgentSpec
from trunkline.evaluation import CallDriver, Scenario, run_eval
from trunkline.evaluation.scoring import Status
from trunkline.evaluation.sources import AgentSources
from trunkline.rollout.analysis import ReplayReport
from trunkline.rollout.resources import Outcome, Replay


class ReplayGate(abc.ABC):
    timeout_s: float = 600.0

    async def run(self, candidate: AgentSpec, settings: Replay) -> ReplayReport:
        try:
            return await asyncio.wait_for(self._run(candidate, settings), self.timeout_s)
        except TimeoutError:
            return ReplayReport(Outcome.INCONCLUSIVE, message=f"no result in {self.timeout_s:g}s")
        except Exception as exc:  # the harness's own failure is not the candidate's
            return ReplayReport(Outcome.INCONCLUSIVE, message=f"replay error: {exc}")

    @abc.abstractmethod
    async def _run(self, candidate: AgentSpec, settings: Replay) -> ReplayReport: ...


class NoReplayHarness(ReplayGate):
    async def _run(self, candidate: AgentSpec, settings: Replay) -> ReplayReport:
        return ReplayReport(
            Outcome.INCONCLUSIVE,
            message="no replay harness is wired into the operator yet; set "
            "spec.replay.enabled: false or promote by hand",
        )


class FixedReplay(ReplayGate):
    """Pass rates set by hand per agent version (tests, local runs): passes at
    ``settings.minPassRate`` or above; a version without a rate is inconclusive."""

    def __init__(self, pass_rates: Mapping[str, float] | None = None) -> None:
        self.pass_rates = dict(pass_rates or {})
        self.runs: list[str] = []

    async def _run(self, candidate: AgentSpec, settings: Replay) -> ReplayReport:
        self.runs.append(candidate.version)
        rate = self.pass_rates.get(candidate.version)
        if rate is None:
            return ReplayReport(Outcome.INCONCLUSIVE, message=f"no replay of {candidate.ref}")
        passed = rate >= settings.min_pass_rate
        return ReplayReport(
            Outcome.PASSED if passed else Outcome.FAILED,
            pass_rate=rate,
            message=f"{candidate.ref} replayed (seed {settings.seed}, needs "
            f"{settings.min_pass_rate:.0%})",
        )


DriverFactory = Callable[[AgentSpec, int], CallDriver]
"""A driver placing calls on this candidate, with this sampling seed."""


class EvalReplayGate(ReplayGate):
    """The agent's eval scenarios (``maxCalls`` of them) through the candidate, scored by the
    conversation eval: passes when the share of scenarios whose every check passed is at least
    ``minPassRate``. Calls that could not be run at all make the report inconclusive, not
    failed: the harness's trouble is not the candidate's."""

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        sources: Mapping[str, AgentSources],
        driver_for: DriverFactory,
    ) -> None:
        self.scenarios = tuple(scenarios)
        self.sources = dict(sources)
        self.driver_for = driver_for

    async def _run(self, candidate: AgentSpec, settings: Replay) -> ReplayReport:
        chosen = [s for s in self.scenarios if s.agent == candidate.name][: settings.max_calls]
        if not chosen or candidate.name not in self.sources:
            return ReplayReport(
                Outcome.INCONCLUSIVE, message=f"no eval scenarios for agent {candidate.name}"
            )
        report = await run_eval(
            chosen,
            self.driver_for(candidate, settings.seed),
            {candidate.name: self.sources[candidate.name]},
            meta={"agent": candidate.ref, "seed": settings.seed},
        )
        counts = report.summary()["scenarios"]
        rate, errors, total = counts["pass_rate"], counts.get("error", 0), counts["total"]
        if rate is None or errors == total:
            return ReplayReport(
                Outcome.INCONCLUSIVE, message=f"{errors} of {total} replayed calls could not run"
            )
        failed = sorted(s.name for s in report.scenarios if s.status is not Status.PASS)
        detail = f"{counts.get('pass', 0)}/{total} scenarios passed" + (
            f" (not: {', '.join(failed[:5])})" if failed else ""
        )
        passed = rate >= settings.min_pass_rate
        return ReplayReport(Outcome.PASSED if passed else Outcome.FAILED, rate, detail)
