"""agentsSource: cluster — the chart lets the gateway, llm and context list and watch the
VoiceAgents of the release namespace (their own ServiceAccount, its token mounted in them
only, a Role with exactly those verbs, egress to the API server) and points their settings at
the API; the default (files) grants nothing. Rendered in-process (Helm as a library), linted
in strict mode, and the rendered RBAC applied to a real API server, where the services' agent
watcher runs as that ServiceAccount."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest

from trunkline.agents import load_agent_spec
from trunkline.agents.cluster import ClusterAgents
from trunkline.agents.loader import GROUP, PLURAL, VERSION
from trunkline.config import ServiceSettings
from trunkline.context.settings import ContextSettings
from trunkline.devservers.kube import KubeApiServer
from trunkline.gateway.settings import GatewaySettings
from trunkline.llm.settings import LlmSettings
from trunkline.testing.charts import manifests
from trunkline.testing.kube_fixtures import admin_client

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "trunkline"
Manifest = dict[str, Any]
SAMPLE_AGENT = CHART.parents[2] / "agents" / "acme-dental.yaml"

READERS: dict[str, tuple[str, type[ServiceSettings]]] = {
    "gateway": ("GATEWAY_", GatewaySettings),
    "llm": ("LLM_", LlmSettings),
    "context": ("CONTEXT_", ContextSettings),
}
CLUSTER = {"agentsSource": "cluster"}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(str(CHART)) as loaded:
        yield loaded


def render(
    chart: helm_python.Chart, values: dict[str, Any] | None = None, namespace: str = "calls"
) -> list[Manifest]:
    return manifests(chart, values, namespace=namespace)


def component(doc: Manifest) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def kind(docs: list[Manifest], name: str) -> dict[str, Manifest]:
    return {component(d): d for d in docs if d["kind"] == name}


def pod(deployment: Manifest) -> Manifest:
    return dict(deployment["spec"]["template"]["spec"])


def container(deployment: Manifest) -> Manifest:
    return dict(pod(deployment)["containers"][0])


def env(deployment: Manifest) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(deployment).get("env", [])}


def grants(role: Manifest) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}  # fmt: skip


def test_by_default_no_service_reads_the_api(chart: helm_python.Chart) -> None:
    docs = render(chart)
    assert [d for d in docs if d["kind"] in ("Role", "RoleBinding")] == []
    for name, deployment in kind(docs, "Deployment").items():
        if name in READERS:
            assert pod(deployment)["automountServiceAccountToken"] is False, name
            assert f"{READERS[name][0]}AGENTS_SOURCE" not in env(deployment)


def test_cluster_agents_get_list_and_watch_on_voiceagents_and_nothing_more(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(chart, CLUSTER)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert grants(role) == {("trunkline.dev", "voiceagents", "list"),
                            ("trunkline.dev", "voiceagents", "watch")}  # fmt: skip
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}  # fmt: skip
    (subject,) = binding["subjects"]
    assert (subject["kind"], subject["namespace"]) == ("ServiceAccount", "calls")
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    assert subject["name"] in accounts
    assert accounts[subject["name"]]["automountServiceAccountToken"] is False  # pods opt in

    deployments = kind(docs, "Deployment")
    for name, deployment in deployments.items():
        spec = pod(deployment)
        if name in READERS:
            assert spec["serviceAccountName"] == subject["name"], name
            assert spec["automountServiceAccountToken"] is True, name
            prefix, settings_class = READERS[name]
            for key, value in env(deployment).items():
                if key.startswith(prefix):
                    monkeypatch.setenv(key, value)
            settings = settings_class.load()
            assert settings.agents_source == "cluster", name  # type: ignore[attr-defined]
            assert settings.agents_namespace == "calls", name  # type: ignore[attr-defined]
            assert settings.kubeconfig is None, name  # type: ignore[attr-defined]  # in-cluster
        else:  # stt, tts, hitl, the operator (its own ClusterRole): not bound to the Role
            assert spec.get("serviceAccountName") != subject["name"], name
            if name != "operator":
                assert spec["automountServiceAccountToken"] is False, name


def test_cluster_agents_reach_the_api_server_through_the_network_policies(
    chart: helm_python.Chart,
) -> None:
    def api_egress(docs: list[Manifest]) -> set[str]:
        policies = {component(d): d for d in docs if d["kind"] == "NetworkPolicy"}
        return {
            name
            for name, policy in policies.items()
            for rule in policy["spec"].get("egress", [])
            if {p["port"] for p in rule.get("ports", [])} == {443, 6443}
        }

    assert api_egress(render(chart)) == {"operator"}
    assert api_egress(render(chart, CLUSTER)) == {"operator", *READERS}


def test_without_a_created_service_account_the_role_binds_the_named_one(
    chart: helm_python.Chart,
) -> None:
    values: dict[str, Any] = {**CLUSTER, "serviceAccount": {"create": False, "name": "voice-sa"}}
    docs = render(chart, values)
    assert [d for d in docs if d["kind"] == "ServiceAccount" and component(d) != "operator"] == []
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["subjects"][0]["name"] == "voice-sa"
    assert pod(kind(docs, "Deployment")["gateway"])["serviceAccountName"] == "voice-sa"


def test_cluster_agents_lint_clean_in_strict_mode() -> None:
    report = helm_python.lint(
        str(CHART), CLUSTER, strict=True, kube_version="v1.30.0", namespace="calls"
    )
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_schema_names_a_wrong_agents_source(chart: helm_python.Chart) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="agentsSource"):
        chart.validate_schema({"agentsSource": "crds"})


def test_as_the_rendered_service_account_the_agent_watcher_sees_voiceagents_and_no_more(
    chart: helm_python.Chart, kube_apiserver: KubeApiServer, kube_crds: list[str],
    kube_namespace: str,
) -> None:  # fmt: skip
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    docs = render(chart, CLUSTER, namespace=kube_namespace)
    admin = admin_client(kube_apiserver)
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount" and component(d) == "agents"]
    core.create_namespaced_service_account(kube_namespace, account)
    for doc in docs:
        if doc["kind"] == "Role":
            rbac.create_namespaced_role(kube_namespace, doc)
        elif doc["kind"] == "RoleBinding":
            rbac.create_namespaced_role_binding(kube_namespace, doc)
    custom = client.CustomObjectsApi(admin)
    spec = load_agent_spec(SAMPLE_AGENT)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VoiceAgent",
            "metadata": {"name": "acme-dental-1-0-0"},
            "spec": spec.model_dump(mode="json", exclude_defaults=True)}  # fmt: skip

    reader = admin_client(kube_apiserver)  # the admin, impersonating the gateway's account
    name = account["metadata"]["name"]
    reader.set_default_header("Impersonate-User", f"system:serviceaccount:{kube_namespace}:{name}")
    seen: queue.Queue[list[str]] = queue.Queue()
    watcher = ClusterAgents(reader, kube_namespace)
    thread = watcher.start_thread(
        lambda items: seen.put(sorted(i["metadata"]["name"] for i in items))
    )
    try:
        assert seen.get(timeout=10) == []  # the list is allowed (an empty namespace)
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
        assert seen.get(timeout=10) == ["acme-dental-1-0-0"]  # ... and the watch
    finally:
        watcher.stop()  # seen at the watch's next event: the other version's creation

    body["metadata"]["name"], body["spec"]["version"] = "acme-dental-1-1-0", "1.1.0"
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    thread.join(timeout=10)
    assert not thread.is_alive()

    denied = client.CustomObjectsApi(reader)
    forbidden = [
        lambda: denied.get_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "acme-dental-1-0-0"),
        lambda: denied.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "acme-dental-1-0-0", {"spec": {}}),
        lambda: denied.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL),
        lambda: denied.list_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, "agentrollouts"),
        lambda: client.CoreV1Api(reader).list_namespaced_secret(kube_namespace),
    ]  # fmt: skip
    for attempt in forbidden:
        with pytest.raises(ApiException) as refused:
            attempt()
        assert refused.value.status == 403
    admin.close()
    reader.close()


def test_the_operator_reaches_nats_and_runs_shadows_on_the_charts_image(
    chart: helm_python.Chart,
) -> None:
    values = {"externals": {"nats": {"url": "nats://nats.messaging:4222"}},
              "image": {"repository": "registry.example/trunkline", "tag": "7.1"}}  # fmt: skip
    docs = render(chart, values)
    operator_env = env(kind(docs, "Deployment")["operator"])
    assert operator_env["ROLLOUT_NATS_URL"] == "nats://nats.messaging:4222"
    assert operator_env["ROLLOUT_SHADOW_IMAGE"] == "registry.example/trunkline:7.1"
    policy = kind(docs, "NetworkPolicy")["operator"]
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
    assert {4222, 443, 6443} <= ports


def test_shadow_runners_reach_context_and_llm(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trunkline.rollout.settings import RolloutSettings  # noqa: PLC0415

    docs = render(chart)
    for key, value in env(kind(docs, "Deployment")["operator"]).items():
        if key.startswith("ROLLOUT_"):
            monkeypatch.setenv(key, value)
    services = kind(docs, "Service")
    shadow_env = RolloutSettings.load().shadow_env
    for peer in ("context", "llm"):
        host, port = shadow_env[f"SHADOW_{peer.upper()}_ADDR"].rsplit(":", 1)
        assert host.split(".")[0] == services[peer]["metadata"]["name"]
        assert int(port) in {p["port"] for p in services[peer]["spec"]["ports"]}
        policy = kind(docs, "NetworkPolicy")[peer]
        sources = [peer_ for rule in policy["spec"]["ingress"] for peer_ in rule.get("from", [])]
        shadow = {"app.kubernetes.io/component": "shadow-runner",
                  "app.kubernetes.io/managed-by": "trunkline-rollout"}  # fmt: skip
        assert {"podSelector": {"matchLabels": shadow}} in sources, peer
    for other in ("stt", "tts", "hitl"):
        policy = kind(docs, "NetworkPolicy")[other]
        assert "shadow-runner" not in str(policy["spec"]["ingress"])
