"""The replay gate: stored calls replayed through the candidate before any shadow runs.

A small ABC so the controller does not care how calls are replayed. :meth:`ReplayGate.run`
owns the timeout and turns an error into an *inconclusive* report (never a failure); an
implementation writes ``_run``. :class:`EvalReplayGate` runs the agent's conversation-eval
scenarios (``trunkline.evaluation``) through a :class:`~trunkline.evaluation.CallDriver` that
places the calls on the candidate, and passes at ``minPassRate``.

The operator process (``ROLLOUT_REPLAY_SCENARIOS`` set) uses :func:`bus_replay_gate`: its
:class:`BusReplayDriver` sends each scenario turn to the gateways over NATS
(``ReplayTurnRequest`` on ``trunkline.replay.turn``) with the candidate's spec and the seed; a
gateway answers it headless as the candidate (``trunkline.gateway.shadow.replay``: the live
turn pipeline, no audio, tools dry-run) and the eval scores the answers, facts against the
agent's sources (``ROLLOUT_AGENTS_DIR``). Latency is not scored there (no audio is made; the
shadow phase judges it), nor escalation (no human is asked). Without scenarios the process uses
:class:`NoReplayHarness`, whose reports are inconclusive with a message saying so: a rollout
with ``replay.enabled: true`` pauses rather than pretending the candidate passed.
"""

from __future__ import annotations

import abc
import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from trunkline.agents import AgentSpec
from trunkline.bus.streams import REPLAY_TURNS
from trunkline.evaluation import CallDriver, CallSeen, Scenario, TurnSeen, load_scenarios, run_eval
from trunkline.evaluation.events import turn_event
from trunkline.evaluation.scoring import ScoringOptions, Status
from trunkline.evaluation.sources import AgentSources, load_agent_sources
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.events.v1 import replay_pb2
from trunkline.rollout.analysis import ReplayReport
from trunkline.rollout.resources import Outcome, Replay
from trunkline.rollout.shadows import BusLink


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
            message="the operator has no replay scenarios (ROLLOUT_REPLAY_SCENARIOS); set "
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
        options: ScoringOptions | None = None,
    ) -> None:
        self.scenarios = tuple(scenarios)
        self.sources = dict(sources)
        self.driver_for = driver_for
        self.options = options

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
            self.options,
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


class ReplayTurnError(RuntimeError):
    """A replayed turn got no answer: the call could not run (says nothing of the candidate)."""


class BusReplayDriver(CallDriver):
    """Places each scenario's call on ``candidate`` through the gateways (see the module doc):
    one ``ReplayTurnRequest`` per caller turn, in order, on one call id."""

    def __init__(
        self,
        link: BusLink,
        candidate: AgentSpec,
        seed: int,
        *,
        default_tenant: str,
        turn_timeout_s: float = 60.0,
    ) -> None:
        self.link = link
        self.candidate = candidate
        self.spec_json = candidate.model_dump_json()
        self.seed = seed
        self.default_tenant = default_tenant
        self.turn_timeout_s = turn_timeout_s

    def tenant_of(self, scenario: Scenario) -> str:
        return scenario.tenant or self.default_tenant

    async def run_call(self, scenario: Scenario) -> CallSeen:
        bus = await self.link.get()
        call_id = f"replay-{uuid.uuid4().hex[:12]}"
        turns: list[TurnSeen] = []
        hung_up = False
        for index, step in enumerate(scenario.turns, start=1):
            if not step.text:
                raise ReplayTurnError(f"{step.where}: a replayed turn needs text (not audio)")
            request = replay_pb2.ReplayTurnRequest(
                agent_spec_json=self.spec_json,
                seed=self.seed,
                context=call_pb2.CallContext(
                    tenant_id=self.tenant_of(scenario),
                    call_id=call_id,
                    caller=call_pb2.Caller(role=scenario.caller_role or "caller"),
                    agent=call_pb2.AgentRef(
                        name=self.candidate.name, version=self.candidate.version
                    ),
                    shadow=True,
                    turn_index=index,
                ),
                caller_transcript=step.text,
                last=index == len(scenario.turns),
            )
            reply = await bus.request(
                REPLAY_TURNS, request, replay_pb2.ReplayTurnReply, timeout=self.turn_timeout_s
            )
            if reply.error:
                raise ReplayTurnError(f"{step.where}: {reply.error}")
            event = turn_event(reply.turn)
            turns.append(TurnSeen((event,), answered=bool(event.reply), voice_to_voice_ms=None))
            if event.hang_up:
                hung_up = True
                break
        return CallSeen(
            call_id=call_id,
            turns=tuple(turns),
            greeting=self.candidate.greeting,
            end_reason="agent_hangup" if hung_up else "caller_hangup",
            ended_by="agent" if hung_up else "caller",
        )


HEADLESS = ScoringOptions(escalation_supported=False, latency_measured=False)
"""What a headless replay can score: no audio (no latency), no human asked (no escalation)."""


def bus_replay_gate(
    scenario_paths: Sequence[Path],
    agents_dir: Path,
    link: BusLink,
    *,
    default_tenant: str,
    turn_timeout_s: float = 60.0,
    timeout_s: float = 600.0,
) -> EvalReplayGate:
    """The operator process's gate: scenarios and agent sources read now (a bad file is an
    error at start, naming file and line), calls placed through the gateways over ``link``."""
    scenarios = load_scenarios(scenario_paths)
    sources = load_agent_sources(agents_dir)

    def driver_for(candidate: AgentSpec, seed: int) -> CallDriver:
        return BusReplayDriver(
            link, candidate, seed, default_tenant=default_tenant, turn_timeout_s=turn_timeout_s
        )

    gate = EvalReplayGate(scenarios, sources, driver_for, HEADLESS)
    gate.timeout_s = timeout_s
    return gate
