"""The replay gate: stored calls replayed through the candidate before any shadow runs.

A small ABC so the controller does not care how calls are replayed. :meth:`ReplayGate.run`
owns the timeout and turns an error into an *inconclusive* report (never a failure); an
implementation writes ``_run``. The conversation-eval harness (stored ``turn.completed``
transcripts and scenario files, fixed seed) plugs in here; until it is wired the operator uses
:class:`NoReplayHarness`, whose reports are inconclusive with a message saying so, so a rollout
with ``replay.enabled: true`` pauses rather than pretending the candidate passed.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping

from trunkline.agents import AgentSpec
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
