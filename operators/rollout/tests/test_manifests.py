"""Shadow runner Deployments, VoiceAgent statuses and the AgentRollout spec's validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from trunkline.rollout.manifests import (
    SecretMount,
    ShadowRunner,
    dns_name,
    shadow_deployment,
    shadow_durable,
    voiceagent_status,
)
from trunkline.rollout.resources import RolloutSpec, RolloutStatus, duration_seconds

pytestmark = pytest.mark.unit

ROLLOUT: dict[str, Any] = {
    "apiVersion": "trunkline.dev/v1alpha1",
    "kind": "AgentRollout",
    "metadata": {"name": "acme-next", "namespace": "voice", "uid": "u-1"},
}
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_shadow_deployment_is_owned_labelled_and_never_talks_to_callers() -> None:
    runner = ShadowRunner(image="registry/trunkline:1.2", nats_url="nats://nats.voice:4222")
    manifest = shadow_deployment(
        ROLLOUT, agent="acme-dental", version="1.1.0", replicas=2, sample_percent=12.5,
        runner=runner,
    )  # fmt: skip
    meta = manifest["metadata"]
    assert meta["name"] == "acme-dental-1-1-0-shadow"
    assert meta["namespace"] == "voice"
    assert meta["ownerReferences"][0]["uid"] == "u-1"
    assert meta["ownerReferences"][0]["controller"] is True
    spec = manifest["spec"]
    assert spec["replicas"] == 2
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SHADOW_DURABLE"] == "shadow-acme-dental_1-1-0"
    assert env["SHADOW_SAMPLE_PERCENT"] == "12.5"
    assert env["SHADOW_TOOLS_DRY_RUN"] == "true"
    assert "ports" not in container  # nothing can reach it: it only consumes NATS
    assert spec["template"]["spec"]["automountServiceAccountToken"] is False


def test_shadow_runners_mount_the_nats_secrets_their_env_names() -> None:
    runner = ShadowRunner(
        image="registry/trunkline:1.2",
        nats_url="tls://nats.voice:4222",
        env={"SHADOW_NATS_CA_FILE": "/etc/trunkline/tls/nats/ca.crt"},
        secret_mounts=(
            SecretMount("nats-ca", "trunkline-nats-ca", "ca.crt", "/etc/trunkline/tls/nats"),
        ),
    )
    manifest = shadow_deployment(
        ROLLOUT, agent="acme-dental", version="1.1.0", replicas=1, sample_percent=100,
        runner=runner,
    )  # fmt: skip
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SHADOW_NATS_CA_FILE"] == "/etc/trunkline/tls/nats/ca.crt"
    assert container["volumeMounts"] == [
        {"name": "nats-ca", "mountPath": "/etc/trunkline/tls/nats", "readOnly": True}
    ]
    assert pod["volumes"] == [
        {
            "name": "nats-ca",
            "secret": {
                "secretName": "trunkline-nats-ca",
                "defaultMode": 0o440,
                "items": [{"key": "ca.crt", "path": "ca.crt"}],
            },
        }
    ]


def test_each_candidate_has_its_own_durable_consumer() -> None:
    assert shadow_durable("acme-dental", "1.1.0") != shadow_durable("acme-dental", "1.2.0")


def test_dns_names_are_valid_labels() -> None:
    assert dns_name("Acme_Dental", "1.0.0+build.7") == "acme-dental-1-0-0-build-7"
    assert len(dns_name("a" * 80, "1")) == 63


def test_voiceagent_status_invalid_is_not_ready_and_not_active() -> None:
    status = voiceagent_status(
        None, generation=3, now=T0, agent="acme", version="2", problem="tools: duplicate",
        active=True, active_version="1",
    )  # fmt: skip
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Validated"]["status"] == "False"
    assert conditions["Validated"]["message"] == "tools: duplicate"
    assert conditions["Ready"]["status"] == "False"
    assert status["active"] is False
    assert status["observedGeneration"] == 3


def test_voiceagent_status_keeps_transition_time_while_unchanged() -> None:
    first = voiceagent_status(
        None, generation=1, now=T0, agent="acme", version="1", problem=None, active=True,
        active_version="1",
    )  # fmt: skip
    later = voiceagent_status(
        first, generation=2, now=T0 + timedelta(minutes=5), agent="acme", version="1",
        problem=None, active=False, active_version="2",
    )  # fmt: skip
    before = {c["type"]: c for c in first["conditions"]}
    after = {c["type"]: c for c in later["conditions"]}
    assert after["Validated"]["lastTransitionTime"] == before["Validated"]["lastTransitionTime"]
    assert after["Ready"]["reason"] == "Standby"
    assert after["Ready"]["message"] == "standby; 2 is active"


def _spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "agent": "acme-dental",
        "stableVersion": "1.0.0",
        "candidateVersion": "1.1.0",
        "analysis": {"metrics": [{"name": "cost_per_turn", "thresholdRange": {"max": 0.02}}]},
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"candidateVersion": "1.0.0"}, "stableVersion and candidateVersion are both 1.0.0"),
        ({"analysis": {"metrics": []}}, "at least 1 item"),
        ({"analysis": {"metrics": [{"name": "cost_per_turn", "thresholdRange": {}}]}},
         "thresholdRange needs min, max or both"),
        ({"analysis": {"metrics": [{"name": "latency", "thresholdRange": {"max": 1}}]}},
         "voice_to_voice_p95_ms"),
        ({"analysis": {"interval": "soon", "metrics": [
            {"name": "cost_per_turn", "thresholdRange": {"max": 1}}]}}, "String should match"),
        ({"analysis": {"metrics": [{"name": "cost_per_turn", "thresholdRange": {"max": 1}},
                                   {"name": "cost_per_turn", "thresholdRange": {"max": 2}}]}},
         "metrics named twice: cost_per_turn"),
    ],
)  # fmt: skip
def test_bad_rollout_specs_are_rejected_with_the_reason(
    changes: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ValidationError, match=needle):
        RolloutSpec.model_validate(_spec(**changes))


def test_durations() -> None:
    assert duration_seconds("1m30s") == 90
    assert duration_seconds("250ms") == 0.25
    assert duration_seconds("1.5h") == 5400
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("5 minutes")


def test_status_round_trips_and_ignores_foreign_keys() -> None:
    status = RolloutStatus.parse({"phase": "Shadowing", "failedChecks": 1, "kopf": {"x": 1}})
    assert status.failed_checks == 1
    dumped = status.dump()
    assert dumped["phase"] == "Shadowing"
    assert "kopf" not in dumped
    assert RolloutStatus.parse(dumped) == status
