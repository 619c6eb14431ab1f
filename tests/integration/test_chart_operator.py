"""The rollout operator as the chart runs it: NATS TLS and credentials from the same Secrets as
the other NATS clients (in its pod and in the shadow runner pods it starts), and the replay
gate's scenario files from a ConfigMap (rendered from values, or an existing one by name).

Rendered in-process (the ``chart`` fixture of conftest.py); objects checked against the
Kubernetes schemas; the operator's and the shadow runner's settings loaded from the rendered
env, as their processes do.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml

from trunkline.evaluation import load_agent_sources, load_scenarios
from trunkline.gateway.settings import GatewaySettings
from trunkline.gateway.shadow.settings import ShadowSettings
from trunkline.rollout.manifests import ShadowRunner, shadow_deployment
from trunkline.rollout.settings import RolloutSettings
from trunkline.testing.charts import manifests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KUBE_VERSION = "1.30.0"
NATS = {
    "url": "tls://nats.messaging:4222",
    "credsSecret": {"name": "trunkline-nats-creds", "key": "trunkline.creds"},
    "tls": {"caSecret": {"name": "trunkline-nats-ca", "key": "ca.crt"}},
}
SCENARIO = """\
agent: acme-dental
scenarios:
  - name: opening-hours
    turns:
      - say: When are you open on Saturday?
        must_contain: [9 am]
"""
Manifest = dict[str, Any]
LABEL = "app.kubernetes.io/component"
AGENTS = {"acme-dental": yaml.safe_load((ROOT / "agents" / "acme-dental.yaml").read_text())}


def render(chart: helm_python.Chart, values: dict[str, Any]) -> list[Manifest]:
    docs = manifests(chart, values)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    return docs


def deployment(docs: list[Manifest], component: str) -> Manifest:
    (found,) = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["labels"][LABEL] == component
    ]
    return found


def pod(deployment: Manifest) -> Manifest:
    return dict(deployment["spec"]["template"]["spec"])


def env_of(deployment: Manifest) -> dict[str, str]:
    (container,) = pod(deployment)["containers"]
    return {e["name"]: e.get("value", "from-secret") for e in container.get("env") or []}


def settings_of(cls: Any, deployment: Manifest, prefix: str, mp: pytest.MonkeyPatch) -> Any:
    for key in [k for k in os.environ if k.startswith(prefix)]:
        mp.delenv(key)
    for key, value in env_of(deployment).items():
        if key.startswith(prefix):
            mp.setenv(key, value)
    return cls.load()


def mounted(deployment: Manifest, path: Path | str) -> Manifest:
    """The pod volume holding ``path`` (asserts the file is on a read-only mount)."""
    (container,) = pod(deployment)["containers"]
    target = PurePosixPath(path)
    mounts = [m for m in container.get("volumeMounts") or []
              if PurePosixPath(m["mountPath"]) in (target, *target.parents)]  # fmt: skip
    assert mounts, f"{path} is on no volume of {deployment['metadata']['name']}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    return dict(volumes[mount["name"]])


def secret_file(deployment: Manifest, path: Path | None) -> tuple[str, str]:
    """(Secret name, key) of the Secret file mounted at ``path``."""
    assert path is not None
    secret = mounted(deployment, path)["secret"]
    assert secret["items"] == [{"key": path.name, "path": path.name}]
    return str(secret["secretName"]), path.name


def test_the_operator_and_its_shadow_runners_use_the_nats_tls_and_credentials(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(chart, {"externals": {"nats": NATS}})
    operator = deployment(docs, "operator")
    rollout = settings_of(RolloutSettings, operator, "ROLLOUT_", monkeypatch)
    gateway = settings_of(GatewaySettings, deployment(docs, "gateway"), "GATEWAY_", monkeypatch)
    assert rollout.nats_url == gateway.nats_url == NATS["url"]
    assert rollout.nats_ca_file == gateway.nats_ca_file
    assert rollout.nats_creds_file == gateway.nats_creds_file
    assert secret_file(operator, rollout.nats_ca_file) == ("trunkline-nats-ca", "ca.crt")
    assert secret_file(operator, rollout.nats_creds_file) == (
        "trunkline-nats-creds",
        "trunkline.creds",
    )

    # the shadow runner Deployment the operator writes with these settings
    runner = ShadowRunner(
        image="trunkline:test", nats_url=rollout.nats_url, env=rollout.shadow_env,
        secret_mounts=rollout.shadow_secret_mounts,
    )  # fmt: skip
    rollout_object = {"metadata": {"name": "r", "namespace": "calls", "uid": "u-1"}}
    shadow = shadow_deployment(
        rollout_object, agent="acme-dental", version="1.1.0", replicas=1, sample_percent=50,
        runner=runner,
    )  # fmt: skip
    kubernetes_validate.validate(shadow, KUBE_VERSION, strict=True)
    runner_settings = settings_of(ShadowSettings, shadow, "SHADOW_", monkeypatch)
    assert runner_settings.nats_url == NATS["url"]
    assert secret_file(shadow, runner_settings.nats_ca_file) == ("trunkline-nats-ca", "ca.crt")
    assert secret_file(shadow, runner_settings.nats_creds_file) == (
        "trunkline-nats-creds",
        "trunkline.creds",
    )


def test_without_nats_secrets_nothing_is_mounted(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = deployment(render(chart, {}), "operator")
    rollout = settings_of(RolloutSettings, operator, "ROLLOUT_", monkeypatch)
    assert (rollout.nats_ca_file, rollout.nats_creds_file, rollout.shadow_secret_mounts) == (
        None,
        None,
        (),
    )
    assert {v["name"] for v in pod(operator)["volumes"]} == {"tmp"}
    assert rollout.replay_scenarios == ()  # no scenarios: no replay harness


def configmap_dir(configmap: Manifest, where: Path) -> Path:
    """``configmap`` laid out as the kubelet mounts it: links into a hidden timestamped folder."""
    stamp = where / "..2026_12_03_22_00_00.000000001"
    stamp.mkdir(parents=True)
    for key, text in configmap["data"].items():
        (stamp / key).write_text(text)
        (where / key).symlink_to(Path("..data") / key)
    (where / "..data").symlink_to(stamp.name)
    return where


def test_replay_scenarios_from_values_reach_the_operator_as_files(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    values = {
        "agents": AGENTS,
        "operator": {"replay": {"scenarios": {"acme": SCENARIO}, "tenant": "acme"}},
    }
    docs = render(chart, values)
    operator = deployment(docs, "operator")
    rollout = settings_of(RolloutSettings, operator, "ROLLOUT_", monkeypatch)
    assert rollout.replay_tenant == "acme"
    (scenarios,) = rollout.replay_scenarios
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    replay_map = configmaps[mounted(operator, scenarios)["configMap"]["name"]]
    agents_map = configmaps[mounted(operator, rollout.agents_dir)["configMap"]["name"]]
    assert agents_map["metadata"]["labels"][LABEL] == "agents"
    # what the operator reads at start (bus_replay_gate): the scenarios and the agents
    loaded = load_scenarios([configmap_dir(replay_map, tmp_path / "replay")])
    assert [(s.name, s.agent) for s in loaded] == [("opening-hours", "acme-dental")]
    assert set(load_agent_sources(configmap_dir(agents_map, tmp_path / "agents"))) == {
        "acme-dental"
    }
    annotations = pod_annotations(operator)
    changed = dict(values, operator={"replay": {"scenarios": {"acme": SCENARIO + "\n# v2\n"}}})
    assert pod_annotations(deployment(render(chart, changed), "operator")) != annotations


def pod_annotations(deployment: Manifest) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["annotations"])


def test_an_existing_scenarios_configmap_is_mounted_instead(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "agents": AGENTS,
        "operator": {"replay": {"scenariosConfigMap": "my-scenarios"}},
    }
    docs = render(chart, values)
    operator = deployment(docs, "operator")
    rollout = settings_of(RolloutSettings, operator, "ROLLOUT_", monkeypatch)
    (scenarios,) = rollout.replay_scenarios
    assert mounted(operator, scenarios)["configMap"]["name"] == "my-scenarios"
    assert not [d for d in docs if d["kind"] == "ConfigMap"
                and d["metadata"]["name"].endswith("replay-scenarios")]  # fmt: skip


def test_replay_without_agents_fails_the_render_saying_why(chart: helm_python.Chart) -> None:
    values = {"operator": {"replay": {"scenarios": {"acme": SCENARIO}}}}
    with pytest.raises(Exception, match=r"operator\.replay needs the agents value"):
        chart.render(values, name="voice", namespace="calls")
