"""Run scenarios through a :class:`CallDriver` and score them into an :class:`EvalReport`.

The driver owns all I/O (placing the call, reading events, transcribing audio): the local stack
over the Twilio protocol (``trunkline eval``), or whatever a replay gate runs. This module only
sequences the calls and hands what they saw to the pure scoring.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trunkline.evaluation.facts import FactBase
from trunkline.evaluation.observation import CallSeen
from trunkline.evaluation.report import EvalReport
from trunkline.evaluation.scenario import Scenario
from trunkline.evaluation.scoring import ScenarioScore, ScoringOptions, score_scenario
from trunkline.evaluation.sources import AgentSources


class CallDriver(abc.ABC):
    """Places one scenario's call and reports what was seen."""

    @abc.abstractmethod
    async def run_call(self, scenario: Scenario) -> CallSeen:
        """Speak ``scenario``'s turns to its agent; raise only when the call could not be run."""

    def tenant_of(self, scenario: Scenario) -> str:
        """The tenant the call is placed for (a scenario without one: the driver's default)."""
        return scenario.tenant or ""


async def run_eval(
    scenarios: Sequence[Scenario],
    driver: CallDriver,
    sources: Mapping[str, AgentSources],
    options: ScoringOptions | None = None,
    *,
    on_score: Callable[[ScenarioScore], None] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> EvalReport:
    """Every scenario, one call at a time, scored as it finishes. A call the driver cannot run
    is an ``error`` scenario; the others go on."""
    missing = sorted({s.agent for s in scenarios} - set(sources))
    if missing:
        raise KeyError(f"no sources for agents {', '.join(missing)}")
    bases = {name: FactBase.of(src.texts) for name, src in sources.items()}
    scores: list[ScenarioScore] = []
    started = time.time()
    for scenario in scenarios:
        try:
            call = await driver.run_call(scenario)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one broken call never stops the eval
            call = CallSeen(call_id="", turns=(), error=f"{type(exc).__name__}: {exc}")
        score = score_scenario(
            scenario, call, sources[scenario.agent], options,
            base=bases[scenario.agent], tenant=driver.tenant_of(scenario),
        )  # fmt: skip
        scores.append(score)
        if on_score is not None:
            on_score(score)
    info = {"scenarios": len(scenarios), "duration_s": round(time.time() - started, 1),
            **(meta or {})}  # fmt: skip
    return EvalReport(tuple(scores), info)
