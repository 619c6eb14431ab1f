"""The operator's I/O around the pure cores: gather inputs, call ``analysis``, apply outputs.

One :class:`Controller` per operator process, built by ``__main__`` (or a test) with its
collaborators: the cluster, the metrics source, the replay gate, the shadow runner settings and
a clock. The kopf handlers (``handlers.py``) only call its methods. Every method is idempotent:
it reads the object fresh, decides from what it reads, and writes the whole status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry import metrics, trace
from pydantic import ValidationError

from trunkline.agents import AgentSpecError
from trunkline.agents.loader import spec_from_resource
from trunkline.agents.spec import _describe
from trunkline.rollout import analysis
from trunkline.rollout.analysis import (
    Activate,
    Decision,
    ReplayReport,
    StartShadow,
    StopShadow,
    VersionInfo,
)
from trunkline.rollout.cluster import Cluster
from trunkline.rollout.manifests import (
    ShadowRunner,
    shadow_deployment,
    shadow_name,
    voiceagent_status,
)
from trunkline.rollout.metrics import MetricsSource
from trunkline.rollout.replay import ReplayGate
from trunkline.rollout.resources import Outcome, Phase, RolloutSpec, RolloutStatus
from trunkline.rollout.shadows import RecordingShadows, ShadowRegistry

log = logging.getLogger(__name__)
tracer = trace.get_tracer("trunkline.rollout")


class RolloutMeters:
    """The operator's own metrics (served on ``/metrics`` by the process shell)."""

    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("trunkline.rollout")
        self.transitions = meter.create_counter(
            "rollout.transitions", description="AgentRollout phase changes, by phase and reason"
        )
        self.checks = meter.create_counter(
            "rollout.checks", description="Analysis checks, by outcome"
        )
        self.rollbacks = meter.create_counter(
            "rollout.rollbacks", description="Rollbacks (shadow stopped or stable reinstated)"
        )


@dataclass
class Controller:
    cluster: Cluster
    metrics_source: MetricsSource
    replay_gate: ReplayGate
    runner: ShadowRunner
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    shadows: ShadowRegistry = field(default_factory=RecordingShadows)
    """Which candidates the gateways mirror live turns to (NATS in the process)."""
    meters: RolloutMeters = field(default_factory=RolloutMeters)
    _locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((namespace, name), asyncio.Lock())

    # -- VoiceAgent ----------------------------------------------------------------------
    async def sync_voiceagent(self, body: dict[str, Any]) -> None:
        """Validate one VoiceAgent and record Validated/Ready; a valid first version of an
        agent becomes its active version."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        problem: str | None = None
        try:
            spec = spec_from_resource(body)
            agent, version = spec.name, spec.version
        except AgentSpecError as exc:
            problem = str(exc)
            raw = body.get("spec") or {}
            agent, version = str(raw.get("name", "")), str(raw.get("version", ""))
        old = body.get("status") or {}
        siblings = [
            a
            for a in await self.cluster.list_voiceagents(namespace)
            if (a.get("spec") or {}).get("name") == agent and a["metadata"]["name"] != name
        ]
        others_active = [a for a in siblings if (a.get("status") or {}).get("active")]
        if others_active:
            active = False
            active_version = str(others_active[0]["status"].get("version", ""))
        else:
            # No version is active: the oldest valid one becomes it (the same answer for
            # every version of the agent, whichever is handled first).
            contenders = [
                body,
                *(a for a in siblings if _condition(a.get("status") or {}, "Validated") != "False"),
            ]
            first = min(contenders, key=_age)
            active = problem is None and first is body
            active_version = version if active else ""
        status = voiceagent_status(
            old,
            generation=meta.get("generation"),
            now=self.clock(),
            agent=agent,
            version=version,
            problem=problem,
            active=active,
            active_version=active_version,
        )
        await self.cluster.patch_voiceagent_status(namespace, name, status)
        was_valid = _condition(old, "Validated")
        if problem is not None and was_valid != "False":
            await self.cluster.post_event(body, "Warning", "Invalid", problem)
        elif problem is None and was_valid != "True":
            what = "active" if active else "standby"
            await self.cluster.post_event(body, "Normal", "Validated", f"{agent}@{version}: {what}")

    async def activate(self, namespace: str, agent: str, version: str) -> None:
        """Make ``version`` the agent's only active version (VoiceAgent status)."""
        for item in await self.cluster.list_voiceagents(namespace):
            spec = item.get("spec") or {}
            if spec.get("name") != agent:
                continue
            old = item.get("status") or {}
            mine = spec.get("version") == version
            invalid = _condition(old, "Validated") == "False"
            problem = str(old.get("message") or "invalid") if invalid else None
            status = voiceagent_status(
                old,
                generation=item["metadata"].get("generation"),
                now=self.clock(),
                agent=agent,
                version=str(spec.get("version", "")),
                problem=problem,
                active=mine,
                active_version=version,
            )
            await self.cluster.patch_voiceagent_status(namespace, item["metadata"]["name"], status)
            if bool(old.get("active")) != mine:
                reason = "Activated" if mine else "Deactivated"
                await self.cluster.post_event(
                    item, "Normal", reason, f"{agent}@{version} takes the live calls"
                )

    async def _versions(self, namespace: str, agent: str) -> dict[str, VersionInfo]:
        found: dict[str, VersionInfo] = {}
        for item in await self.cluster.list_voiceagents(namespace):
            spec = item.get("spec") or {}
            if spec.get("name") != agent:
                continue
            try:
                spec_from_resource(item)
            except AgentSpecError as exc:
                found[str(spec.get("version"))] = VersionInfo(True, False, str(exc))
            else:
                found[str(spec.get("version"))] = VersionInfo(True, True)
        return found

    async def _candidate_spec(self, namespace: str, spec: RolloutSpec) -> dict[str, Any] | None:
        return await self._version_item(namespace, spec.agent, spec.candidate_version)

    async def _version_item(
        self, namespace: str, agent: str, version: str
    ) -> dict[str, Any] | None:
        for item in await self.cluster.list_voiceagents(namespace):
            s = item.get("spec") or {}
            if s.get("name") == agent and s.get("version") == version:
                return item
        return None

    # -- AgentRollout --------------------------------------------------------------------
    async def reconcile_rollout(self, namespace: str, name: str) -> float | None:
        """One step of the rollout; returns seconds until it wants to look again (None: idle)."""
        async with self.lock(namespace, name):
            body = await self.cluster.get_rollout(namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return None
            with tracer.start_as_current_span(
                "rollout.reconcile", attributes={"rollout": f"{namespace}/{name}"}
            ):
                return await self._reconcile(body)

    async def _reconcile(self, body: dict[str, Any]) -> float | None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        generation = meta.get("generation")
        old_raw = body.get("status") or {}
        old = RolloutStatus.parse(old_raw)
        now = self.clock()
        try:
            spec = RolloutSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            await self._invalid(body, old, f"invalid spec:\n{_describe(exc)}", now)
            return None
        fresh = (old.candidate_version, old.stable_version) != (
            spec.candidate_version, spec.stable_version)  # fmt: skip
        versions = None
        if fresh or old.phase is Phase.PENDING:
            versions = await self._versions(namespace, spec.agent)
        replay: ReplayReport | None = None
        readings = None
        manual = spec.abort or spec.promote
        if not fresh and not manual and old.phase is Phase.REPLAYING:
            replay = await self._replay(namespace, spec)
        if not fresh and not manual and analysis.wants_readings(spec, old, now):
            window = max(spec.analysis.interval_s, self.metrics_source.min_window_s)
            readings = await self.metrics_source.read_all(
                spec.analysis.metrics,
                agent=spec.agent,
                version=spec.candidate_version,
                window_s=window,
                baseline=spec.stable_version,
            )
        decision = analysis.decide(
            spec,
            old,
            now=now,
            generation=generation,
            versions=versions,
            replay=replay,
            readings=readings,
        )
        await self._apply(body, spec, decision)
        if decision.status.dump() != old.dump() or old_raw.keys() - decision.status.dump().keys():
            await self.cluster.patch_rollout_status(namespace, name, decision.status.dump())
        for event in decision.events:
            await self.cluster.post_event(body, event.type, event.reason, event.message)
        self._count(spec, old, decision)
        return decision.requeue_s

    async def _replay(self, namespace: str, spec: RolloutSpec) -> ReplayReport:
        item = await self._candidate_spec(namespace, spec)
        if item is None:
            return ReplayReport(Outcome.FAILED, message="the candidate VoiceAgent is gone")
        try:
            candidate = spec_from_resource(item)
        except AgentSpecError as exc:
            return ReplayReport(Outcome.FAILED, message=str(exc))
        with tracer.start_as_current_span("rollout.replay", attributes={"agent": candidate.ref}):
            return await self.replay_gate.run(candidate, spec.replay)

    async def _apply(self, body: dict[str, Any], spec: RolloutSpec, decision: Decision) -> None:
        namespace = body["metadata"]["namespace"]
        for action in decision.actions:
            if isinstance(action, StartShadow):
                # the candidate, and the stable version as its baseline: both headless on the
                # same mirrored turns, so their reply times compare under the same load
                for version in (action.version, spec.stable_version):
                    item = await self._version_item(namespace, spec.agent, version)
                    manifest = shadow_deployment(
                        body,
                        agent=spec.agent,
                        version=version,
                        replicas=action.replicas,
                        sample_percent=action.sample_percent,
                        runner=self.runner,
                        agent_spec=(item or {}).get("spec"),
                    )
                    await self.cluster.apply_deployment(manifest)
                    await self.shadows.start(spec.agent, version, action.sample_percent)
            elif isinstance(action, StopShadow):
                for version in (action.version, spec.stable_version):
                    await self.shadows.stop(spec.agent, version)
                    await self.cluster.scale_deployment(
                        namespace, shadow_name(spec.agent, version), 0
                    )
            elif isinstance(action, Activate):
                await self.activate(namespace, spec.agent, action.version)

    async def _invalid(
        self, body: dict[str, Any], old: RolloutStatus, message: str, now: datetime
    ) -> None:
        meta = body["metadata"]
        if old.phase is Phase.FAILED and old.message == message:
            return
        status = old.model_copy(update={"phase": Phase.FAILED, "message": message})
        status = status.model_copy(
            update={
                "observed_generation": meta.get("generation"),
                "conditions": analysis.set_condition(
                    status.conditions,
                    analysis.PROGRESSING,
                    False,
                    "InvalidSpec",
                    message,
                    now=now,
                    generation=meta.get("generation"),
                ),
            }
        )
        await self.cluster.patch_rollout_status(meta["namespace"], meta["name"], status.dump())
        await self.cluster.post_event(body, "Warning", "InvalidSpec", message)

    def _count(self, spec: RolloutSpec, old: RolloutStatus, decision: Decision) -> None:
        new = decision.status
        if new.phase is not old.phase:
            reason = next((e.reason for e in decision.events if e.reason != "CheckFailed"), "")
            self.meters.transitions.add(1, {"phase": new.phase.value, "reason": reason})
        if decision.check is not None:
            self.meters.checks.add(1, {"outcome": decision.check.value})
        if decision.rolled_back:
            self.meters.rollbacks.add(1, {"agent": spec.agent})

    async def cleanup_rollout(self, body: dict[str, Any]) -> None:
        """The rollout is being deleted: stop mirroring to its candidate, remove the
        candidate's shadow consumer and its shadow runners."""
        spec, meta = body.get("spec") or {}, body["metadata"]
        agent = spec.get("agent")
        versions = [v for v in (spec.get("candidateVersion"), spec.get("stableVersion")) if v]
        if not agent:
            return
        async with self.lock(meta["namespace"], meta["name"]):  # not while a step runs
            for version in versions:  # the candidate and its baseline
                name = shadow_name(str(agent), str(version))
                if await self.shadows.stop(str(agent), str(version)):
                    log.info("stopped shadowing %s %s", agent, version)
                if await self.cluster.delete_deployment(meta["namespace"], name):
                    log.info("deleted shadow deployment %s", name)
        self._locks.pop((meta["namespace"], meta["name"]), None)


def _condition(status: dict[str, Any], kind: str) -> str | None:
    for item in status.get("conditions") or ():
        if item.get("type") == kind:
            return str(item.get("status"))
    return None


def _age(item: dict[str, Any]) -> tuple[str, str]:
    meta = item["metadata"]
    return (str(meta.get("creationTimestamp") or ""), str(meta["name"]))
