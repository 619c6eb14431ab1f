"""The ``AgentRollout`` resource: its spec and status as typed models, and its CRD. Pure.

Shaped after Flagger's ``Canary`` and Argo Rollouts' analysis (DESIGN.md §5)::

    apiVersion: trunkline.dev/v1alpha1
    kind: AgentRollout
    metadata: {name: acme-dental-1-1-0}
    spec:
      agent: acme-dental              # VoiceAgents with spec.name acme-dental
      stableVersion: 1.0.0            # takes the live calls now
      candidateVersion: 1.1.0         # shadowed, then promoted
      replay: {enabled: true, seed: 7, minPassRate: 0.9}
      shadow: {samplePercent: 50, replicas: 1}
      analysis:
        interval: 1m
        minIterations: 5               # successful checks before promotion
        failureLimit: 2                # failed checks -> Failed, rolled back
        inconclusiveLimit: 3           # unreadable checks -> Paused
        deadline: 1h
        watchWindow: 10m               # keeps analysing after promotion; a breach reverts
        metrics:
          - name: voice_to_voice_p95_ms
            thresholdRange: {max: 900}
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from trunkline.agents.crd import AGE_COLUMN, CONDITIONS_SCHEMA, condition_column, crd_document
from trunkline.agents.openapi import openapi_schema

KIND = "AgentRollout"
PLURAL = "agentrollouts"

_SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,62}$"
_DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(text: str) -> float:
    """``90s``, ``1m30s``, ``1.5h``, ``250ms`` -> seconds; ``ValueError`` on anything else."""
    if not re.fullmatch(_DURATION, text):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h30m or 500ms")
    return sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(text))


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class MetricName(StrEnum):
    """What the analysis can judge; each has a default Prometheus query (``metrics.py``)."""

    VOICE_TO_VOICE_P95_MS = "voice_to_voice_p95_ms"
    LLM_TTFT_P95_MS = "llm_ttft_p95_ms"
    DROPPED_TURN_RATIO = "dropped_turn_ratio"  # dropped or failed turns / turns
    EVAL_PASS_RATE = "eval_pass_rate"  # the conversation eval on shadow turns
    FAITHFULNESS = "faithfulness"
    TOOL_CALL_AGREEMENT = "tool_call_agreement"  # with stable, on the same turns
    COST_PER_TURN = "cost_per_turn"
    REPLY_TIME_DELTA_MS = "reply_time_delta_ms"  # median shadow minus live, paired turns


class ThresholdRange(_Model):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("thresholdRange needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"thresholdRange min {self.min} is above max {self.max}")
        return self

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"[{self.min:g}, {self.max:g}]"
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


class Metric(_Model):
    name: MetricName
    threshold_range: ThresholdRange
    query: str | None = Field(
        default=None,
        description="PromQL overriding the default; {agent}, {version} and {window} are filled",
    )


class Analysis(_Model):
    interval: str = Field(default="1m", pattern=_DURATION, description="time between checks")
    min_iterations: int = Field(
        default=5, ge=1, le=1000, description="successful checks needed before promotion"
    )
    failure_limit: int = Field(
        default=2, ge=1, le=100, description="failed checks that fail the rollout (rollback)"
    )
    inconclusive_limit: int = Field(
        default=3, ge=1, le=100, description="inconclusive checks that pause the rollout"
    )
    deadline: str = Field(
        default="2h", pattern=_DURATION, description="the whole rollout, start to promotion"
    )
    watch_window: str = Field(
        default="0s",
        pattern=_DURATION,
        description="after promotion, keep analysing this long; a failure reverts",
    )
    metrics: tuple[Metric, ...] = Field(min_length=1)

    @field_validator("metrics")
    @classmethod
    def _unique(cls, value: tuple[Metric, ...]) -> tuple[Metric, ...]:
        names = [m.name.value for m in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"metrics named twice: {', '.join(duplicates)}")
        return value

    @property
    def interval_s(self) -> float:
        return duration_seconds(self.interval)

    @property
    def deadline_s(self) -> float:
        return duration_seconds(self.deadline)

    @property
    def watch_window_s(self) -> float:
        return duration_seconds(self.watch_window)

    @model_validator(mode="after")
    def _positive_interval(self) -> Self:
        if self.interval_s <= 0:
            raise ValueError("interval must be above zero")
        return self


class Replay(_Model):
    enabled: bool = Field(default=True, description="replay stored calls before shadowing")
    seed: int = 7
    min_pass_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    max_calls: int = Field(default=50, ge=1, le=10_000)


class Shadow(_Model):
    sample_percent: float = Field(
        default=100.0, gt=0.0, le=100.0, description="live turns mirrored (by call id)"
    )
    replicas: int = Field(default=1, ge=1, le=50, description="shadow runner pods")


class RolloutSpec(_Model):
    agent: str = Field(pattern=_SLUG, description="the agent name (VoiceAgent spec.name)")
    stable_version: str = Field(pattern=_VERSION)
    candidate_version: str = Field(pattern=_VERSION)
    replay: Replay = Replay()
    shadow: Shadow = Shadow()
    analysis: Analysis
    promote: bool = Field(default=False, description="promote now, skipping the remaining checks")
    abort: bool = Field(default=False, description="stop and roll back now")

    @model_validator(mode="after")
    def _two_versions(self) -> Self:
        if self.stable_version == self.candidate_version:
            raise ValueError(f"stableVersion and candidateVersion are both {self.stable_version}")
        return self


class Phase(StrEnum):
    PENDING = "Pending"
    REPLAYING = "Replaying"
    SHADOWING = "Shadowing"
    PROMOTING = "Promoting"  # candidate active; the watch window runs
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PAUSED = "Paused"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class Outcome(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


class MetricResult(_Model):
    name: str
    outcome: Outcome
    value: float | None = None
    message: str = ""


class Condition(_Model):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int | None = None


class RolloutStatus(_Model):
    """What the operator recorded; every field has a default so an empty status parses."""

    phase: Phase = Phase.PENDING
    observed_generation: int | None = None
    stable_version: str = ""
    candidate_version: str = ""
    active_version: str = ""
    iterations: int = Field(default=0, description="successful checks")
    failed_checks: int = 0
    inconclusive_checks: int = 0
    start_time: str = ""
    last_check_time: str = ""
    next_check_time: str = ""
    promoted_time: str = ""
    results: tuple[MetricResult, ...] = ()
    message: str = ""
    conditions: tuple[Condition, ...] = ()

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> RolloutStatus:
        """The operator's own fields of ``.status`` (anything else there is ignored)."""
        fields = {to_camel(n) for n in cls.model_fields} | set(cls.model_fields)
        return cls.model_validate({k: v for k, v in (raw or {}).items() if k in fields})

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _status_schema() -> dict[str, Any]:
    schema = openapi_schema(RolloutStatus)
    schema["properties"]["conditions"] = CONDITIONS_SCHEMA
    schema["description"] = "what the rollout operator recorded; written only by it"
    return schema


def agentrollout_crd() -> dict[str, Any]:
    return crd_document(
        kind=KIND,
        plural=PLURAL,
        singular="agentrollout",
        short_names=["ar"],
        spec=openapi_schema(RolloutSpec),
        status=_status_schema(),
        columns=[
            {"name": "Agent", "type": "string", "jsonPath": ".spec.agent"},
            {"name": "Stable", "type": "string", "jsonPath": ".spec.stableVersion"},
            {"name": "Candidate", "type": "string", "jsonPath": ".spec.candidateVersion"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Checks", "type": "integer", "jsonPath": ".status.iterations"},
            {"name": "Failed", "type": "integer", "jsonPath": ".status.failedChecks"},
            condition_column("Promoted", "Promoted"),
            AGE_COLUMN,
        ],
        description="AgentRollout: move an agent from a stable to a candidate version "
        "through replay, shadow analysis and promotion",
    )
