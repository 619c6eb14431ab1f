"""Kubernetes objects and patches the operator writes, as plain dicts. Pure: no I/O.

- the candidate's **shadow runner** Deployment: headless runners fed mirrored live turns over
  NATS (one durable consumer per candidate, named by :func:`shadow_durable`), tools in dry-run,
  never connected to a caller;
- the ``VoiceAgent`` status patches: Validated/Ready conditions, which version is active.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trunkline.agents.loader import API_VERSION as AGENT_API_VERSION
from trunkline.bus.streams import shadow_turns
from trunkline.rollout.analysis import set_condition
from trunkline.rollout.resources import KIND, Condition

ROLLOUT_API_VERSION = AGENT_API_VERSION
LABEL_AGENT = "trunkline.dev/agent"
LABEL_VERSION = "trunkline.dev/version"
LABEL_ROLLOUT = "trunkline.dev/rollout"
LABEL_COMPONENT = "app.kubernetes.io/component"
SHADOW_COMPONENT = "shadow-runner"
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class SecretMount:
    """One key of an existing Secret mounted read-only in the shadow runner pods at
    ``mount_path/key`` (the NATS CA and credentials file, as the operator's own pod has them)."""

    volume: str
    secret: str
    key: str
    mount_path: str


@dataclass(frozen=True)
class ShadowRunner:
    """How shadow runner pods are run (operator settings, read once)."""

    image: str
    command: tuple[str, ...] = ("python", "-m", "trunkline.gateway.shadow")
    nats_url: str = "nats://nats:4222"
    service_account: str = ""
    env: Mapping[str, str] | None = None
    secret_mounts: tuple[SecretMount, ...] = ()


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label from ``parts`` (``acme-dental``, ``1.1.0`` -> ``acme-dental-1-1-0``)."""
    joined = "-".join(parts).lower()
    name = _NOT_NAME.sub("-", joined).strip("-")
    return name[:limit].rstrip("-")


def shadow_name(agent: str, version: str) -> str:
    return dns_name(agent, version, "shadow")


def shadow_durable(agent: str, version: str) -> str:
    """The JetStream durable consumer of one candidate's shadow runners (never shared)."""
    return shadow_turns(agent, version).durable


def owner_reference(rollout: Mapping[str, Any]) -> dict[str, Any]:
    meta = rollout["metadata"]
    return {
        "apiVersion": ROLLOUT_API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def shadow_deployment(
    rollout: Mapping[str, Any],
    *,
    agent: str,
    version: str,
    replicas: int,
    sample_percent: float,
    runner: ShadowRunner,
    agent_spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The candidate's shadow runner Deployment, owned by the rollout. ``agent_spec`` (the
    candidate VoiceAgent's spec) travels in ``SHADOW_AGENT_SPEC``: the pod needs no API
    access."""
    name = shadow_name(agent, version)
    labels = {
        "app.kubernetes.io/name": "trunkline",
        LABEL_COMPONENT: SHADOW_COMPONENT,
        "app.kubernetes.io/managed-by": "trunkline-rollout",
        LABEL_AGENT: agent,
        LABEL_VERSION: dns_name(version),
        LABEL_ROLLOUT: rollout["metadata"]["name"],
    }
    selector = {k: labels[k] for k in (LABEL_COMPONENT, LABEL_AGENT, LABEL_VERSION)}
    env = {
        "SHADOW_AGENT": agent,
        "SHADOW_VERSION": version,
        "SHADOW_SAMPLE_PERCENT": f"{sample_percent:g}",
        "SHADOW_DURABLE": shadow_durable(agent, version),
        "SHADOW_NATS_URL": runner.nats_url,
        "SHADOW_TOOLS_DRY_RUN": "true",
        **dict(runner.env or {}),
    }
    if agent_spec is not None:
        env["SHADOW_AGENT_SPEC"] = json.dumps(agent_spec, sort_keys=True, separators=(",", ":"))
    pod: dict[str, Any] = {
        "containers": [
            {
                "name": "shadow",
                "image": runner.image,
                "command": list(runner.command),
                "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "automountServiceAccountToken": False,
    }
    if runner.service_account:
        pod["serviceAccountName"] = runner.service_account
    if runner.secret_mounts:
        pod["containers"][0]["volumeMounts"] = [
            {"name": m.volume, "mountPath": m.mount_path, "readOnly": True}
            for m in runner.secret_mounts
        ]
        pod["volumes"] = [
            {
                "name": m.volume,
                "secret": {
                    "secretName": m.secret,
                    "defaultMode": 0o440,
                    "items": [{"key": m.key, "path": m.key}],
                },
            }
            for m in runner.secret_mounts
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": rollout["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(rollout)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def scale_patch(replicas: int) -> dict[str, Any]:
    return {"spec": {"replicas": replicas}}


def _conditions(raw: Sequence[Mapping[str, Any]] | None) -> tuple[Condition, ...]:
    return tuple(Condition.model_validate(c) for c in raw or ())


def _dump(conditions: Sequence[Condition]) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in conditions]


def voiceagent_status(
    old_status: Mapping[str, Any] | None,
    *,
    generation: int | None,
    now: datetime,
    agent: str,
    version: str,
    problem: str | None,
    active: bool,
    active_version: str,
) -> dict[str, Any]:
    """The VoiceAgent's whole status: Validated (with the problem) and Ready, active or not."""
    conditions = _conditions((old_status or {}).get("conditions"))
    valid = problem is None
    conditions = set_condition(
        conditions,
        "Validated",
        valid,
        "Valid" if valid else "Invalid",
        problem or "the spec is a valid agent spec",
        now=now,
        generation=generation,
    )
    if not valid:
        ready = (False, "Invalid", "not valid: services never load it")
    elif active:
        ready = (True, "Active", f"{version} takes {agent}'s live calls")
    else:
        standby = f"standby; {active_version} is active" if active_version else "standby"
        ready = (True, "Standby", standby)
    conditions = set_condition(conditions, "Ready", *ready, now=now, generation=generation)
    return {
        "observedGeneration": generation,
        "agent": agent,
        "version": version,
        "active": bool(active and valid),
        "activeVersion": active_version,
        "message": problem or "",
        "conditions": _dump(conditions),
    }
