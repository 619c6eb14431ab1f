"""The Helm chart, offline: strict lint, render with default and production values, validate every
manifest against the Kubernetes 1.30 schemas, check the wiring that matters, reject bad values.

No cluster and no helm binary: Helm v4 runs in-process (``helm-python-sdk``) and the manifests are
checked with the bundled Kubernetes JSON schemas (``kubernetes-validate``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml

from trunkline.agents import load_agent_spec, parse_agent_spec
from trunkline.config import ServiceSettings
from trunkline.context.settings import ContextSettings
from trunkline.gateway.settings import GatewaySettings
from trunkline.hitl.console.service import ConsoleSettings
from trunkline.hitl.settings import HitlSettings
from trunkline.ledger.prices import load_price_dir
from trunkline.ledger.settings import LedgerSettings
from trunkline.llm.settings import LlmSettings
from trunkline.rollout.settings import RolloutSettings
from trunkline.stt.settings import SttSettings
from trunkline.testing.charts import manifests as rendered_manifests
from trunkline.tts.settings import TtsSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "trunkline"
PRODUCTION_VALUES = ROOT / "tests" / "data" / "helm" / "production-values.yaml"
SAMPLE_AGENT = ROOT / "agents" / "acme-dental.yaml"
KUBE_VERSION = "1.30.0"
SERVICES = ("gateway", "stt", "context", "llm", "tts", "hitl")
PREFIX = {
    **{name: f"{name.upper()}_" for name in SERVICES},
    "operator": "ROLLOUT_",
    "ledger": "LEDGER_",
}
OPTIONAL = {"ledger"}
"""Processes off by default (production values turn them on)."""
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)

SETTINGS: dict[str, type[ServiceSettings]] = {
    "gateway": GatewaySettings,
    "stt": SttSettings,
    "context": ContextSettings,
    "llm": LlmSettings,
    "tts": TtsSettings,
    "hitl": HitlSettings,
    "operator": RolloutSettings,
    "ledger": LedgerSettings,
}
AGENTS_ENV = {
    "gateway": "GATEWAY_AGENTS_PATH",
    "llm": "LLM_AGENTS_DIR",
    "context": "CONTEXT_AGENTS_DIR",
    "ledger": "LEDGER_AGENTS_DIR",
}
"""The pods that read the agents ConfigMap (the ledger: qualified outcomes), and the setting that
names the folder."""
GATEWAY_PRODUCTION_ENV = (
    "GATEWAY_HTTP_HOST",
    "GATEWAY_PUBLIC_URL",
    "GATEWAY_TENANTS_FILE",
    "GATEWAY_AGENTS_PATH",
)
"""Gateway settings whose defaults cannot work in a pod: production values must set them."""

Manifest = dict[str, Any]


def production_values() -> dict[str, Any]:
    values = yaml.safe_load(PRODUCTION_VALUES.read_text())
    assert isinstance(values, dict)
    return values


def render(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> list[Manifest]:
    return rendered_manifests(chart, values)


def notes(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> str:
    rendered = chart.render(values or {}, name="voice", namespace="calls")
    (text,) = [text for path, text in rendered.items() if path.endswith("NOTES.txt")]
    return str(text)


@pytest.fixture(scope="module", params=["default", "production"])
def manifests(request: pytest.FixtureRequest, chart: helm_python.Chart) -> list[Manifest]:
    values = production_values() if request.param == "production" else None
    return render(chart, values)


@pytest.fixture(scope="module")
def prod(chart: helm_python.Chart) -> list[Manifest]:
    return render(chart, production_values())


def of_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def component(doc: Manifest) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def trunkline_deployments(docs: list[Manifest]) -> dict[str, Manifest]:
    """The Deployments running the Trunkline image, by component (not vLLM/Riva)."""
    return {component(d): d for d in of_kind(docs, "Deployment").values() if component(d) in PREFIX}


def container(deployment: Manifest) -> Manifest:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_of(deployment: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container(deployment).get("env") or []}


def env_value(deployment: Manifest, name: str) -> str:
    value = env_of(deployment)[name]["value"]
    assert isinstance(value, str), f"{name} must be a string, got {value!r}"
    return value


def mount_of(deployment: Manifest, path: str | Path) -> tuple[Manifest, Manifest]:
    """The volumeMount holding ``path`` (the deepest one) and the pod volume it mounts."""
    target = PurePosixPath(path)
    mounts = [
        m
        for m in container(deployment).get("volumeMounts") or []
        if target == PurePosixPath(m["mountPath"])
        or PurePosixPath(m["mountPath"]) in target.parents
    ]
    assert mounts, f"{path} is on no volume of {deployment['metadata']['name']}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    return mount, volumes[mount["name"]]


def load_settings(
    name: str, deployment: Manifest, monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    """The component's settings as its process reads them from the rendered env.

    A value taken from a Secret stands in as a placeholder string naming the Secret and key.
    """
    prefix = PREFIX[name]
    for key in list(os.environ):
        if key.startswith(prefix):
            monkeypatch.delenv(key)
    for key, entry in env_of(deployment).items():
        if not key.startswith(prefix):
            continue
        if "value" in entry:
            monkeypatch.setenv(key, entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            monkeypatch.setenv(key, f"from-secret-{ref['name']}-{ref['key']}")
    return SETTINGS[name].load()


def gateway_settings(deployment: Manifest, monkeypatch: pytest.MonkeyPatch) -> GatewaySettings:
    settings = load_settings("gateway", deployment, monkeypatch)
    assert isinstance(settings, GatewaySettings)
    return settings


def port_named(ports: list[Manifest], name: str) -> Manifest:
    matches = [p for p in ports if p["name"] == name]
    assert len(matches) == 1, f"expected one port named {name!r} in {ports}"
    return matches[0]


def backing_deployment(docs: list[Manifest], address: str) -> tuple[Manifest, Manifest]:
    """The Service named by a ``host:port`` address and the one Deployment it selects.

    Asserts the Service exposes that port and its target is a container port of the Deployment.
    """
    host, _, port = address.rpartition(":")
    services = of_kind(docs, "Service")
    assert host in services, f"{address}: no Service named {host!r} (have {sorted(services)})"
    service = services[host]
    exposed = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    assert exposed, f"{address}: Service {host} does not expose port {port}"
    selector = service["spec"]["selector"]
    selected = [
        d
        for d in of_kind(docs, "Deployment").values()
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(selected) == 1, f"Service {host} selects {len(selected)} Deployments"
    target = exposed[0]["targetPort"]
    container_ports = container(selected[0])["ports"]
    assert any(p["name"] == target or p["containerPort"] == target for p in container_ports)
    return service, selected[0]


# -- lint and schema validity --------------------------------------------------------------------


@pytest.mark.parametrize("values_file", [None, PRODUCTION_VALUES], ids=["default", "production"])
def test_chart_lints_clean_in_strict_mode(values_file: Path | None) -> None:
    values = yaml.safe_load(values_file.read_text()) if values_file else None
    report = helm_python.lint(
        str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}", namespace="calls"
    )
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []
    assert report["total_charts_linted"] == 1


def test_every_rendered_manifest_is_valid_kubernetes(manifests: list[Manifest]) -> None:
    assert len(manifests) > 15
    for doc in manifests:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")


def test_every_object_carries_the_recommended_labels(manifests: list[Manifest]) -> None:
    for doc in manifests:
        labels = doc["metadata"].get("labels", {})
        missing = [key for key in RECOMMENDED_LABELS if key not in labels]
        assert missing == [], f"{doc['kind']}/{doc['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == "voice"


# -- deployments ---------------------------------------------------------------------------------


def test_one_deployment_and_service_per_process(manifests: list[Manifest]) -> None:
    deployments = trunkline_deployments(manifests)
    assert set(deployments) - OPTIONAL == set(PREFIX) - OPTIONAL
    for name, deployment in deployments.items():
        module = "rollout" if name == "operator" else name
        assert container(deployment)["command"] == ["python", "-m", f"trunkline.{module}"]
    services = {component(s) for s in of_kind(manifests, "Service").values()}
    assert set(SERVICES) <= services


def test_grpc_probes_target_the_port_the_process_listens_on(manifests: list[Manifest]) -> None:
    for name, deployment in trunkline_deployments(manifests).items():
        c = container(deployment)
        grpc_port = port_named(c["ports"], "grpc")["containerPort"]
        p = PREFIX[name]
        assert env_value(deployment, f"{p}GRPC_PORT") == str(grpc_port)
        assert env_value(deployment, f"{p}HOST") == "0.0.0.0"  # kubelet probes the pod IP
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert c[probe]["grpc"]["port"] == grpc_port, f"{name} {probe}"
        metrics_port = port_named(c["ports"], "metrics")["containerPort"]
        assert env_value(deployment, f"{p}METRICS_PORT") == str(metrics_port)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(metrics_port)


def test_every_prefixed_env_var_is_a_settings_field(manifests: list[Manifest]) -> None:
    for name, deployment in trunkline_deployments(manifests).items():
        prefix = PREFIX[name]
        fields = {f"{prefix}{field.upper()}" for field in SETTINGS[name].model_fields}
        if name == "hitl":  # the console inside the hitl process has its own settings
            fields |= {f"HITL_CONSOLE_{field.upper()}" for field in ConsoleSettings.model_fields}
        env = {key for key in env_of(deployment) if key.startswith(prefix)}
        unknown = env - fields
        assert unknown == set(), f"{name}: the chart sets env no settings field reads: {unknown}"


def test_the_rendered_env_loads_into_each_settings_class(
    manifests: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, deployment in trunkline_deployments(manifests).items():
        settings = load_settings(name, deployment, monkeypatch)
        c = container(deployment)
        assert settings.host == "0.0.0.0"
        assert settings.grpc_port == port_named(c["ports"], "grpc")["containerPort"]
        assert settings.metrics_port == port_named(c["ports"], "metrics")["containerPort"]
    gateway = trunkline_deployments(manifests)["gateway"]
    settings = gateway_settings(gateway, monkeypatch)
    assert settings.http_host == "0.0.0.0"  # Twilio/Plivo (via the Service) reach the pod IP
    assert settings.http_port == port_named(container(gateway)["ports"], "http")["containerPort"]
    assert settings.tenants == {}  # tenants are secrets: a mounted file, never env


def test_every_path_in_the_env_is_on_a_mounted_volume(manifests: list[Manifest]) -> None:
    """The root filesystem is read-only: every file or folder a setting names must be mounted."""
    for name, deployment in trunkline_deployments(manifests).items():
        for key, entry in env_of(deployment).items():
            value = entry.get("value", "")
            if value.startswith("/"):
                mount_of(deployment, value)  # asserts
            if key in AGENTS_ENV.values():
                assert value == mount_of(deployment, value)[0]["mountPath"], f"{name} {key}"


def test_production_gateway_gets_what_production_needs(
    prod: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = trunkline_deployments(prod)["gateway"]
    assert set(GATEWAY_PRODUCTION_ENV) <= set(env_of(gateway))
    settings = gateway_settings(gateway, monkeypatch)
    assert settings.http_host == "0.0.0.0"
    assert settings.public_url == "https://voice.example.com"  # the Ingress host
    assert settings.tenants_file is not None
    mount, volume = mount_of(gateway, settings.tenants_file)
    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == "trunkline-tenants"
    item = str(PurePosixPath(settings.tenants_file).relative_to(mount["mountPath"]))
    assert volume["secret"]["items"] == [{"key": "tenants.yaml", "path": item}]
    _, agents = mount_of(gateway, settings.agents_path)
    assert "configMap" in agents


def test_gateway_public_url_is_the_value_else_the_ingress_host(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = production_values()
    values["services"]["gateway"]["publicUrl"] = "https://calls.example.org/"
    gateway = trunkline_deployments(render(chart, values))["gateway"]
    assert gateway_settings(gateway, monkeypatch).public_url == "https://calls.example.org"
    assert "https://calls.example.org" in notes(chart, values)
    gateway = trunkline_deployments(render(chart))["gateway"]
    assert "GATEWAY_PUBLIC_URL" not in env_of(gateway)  # no Ingress, no URL: NOTES says so
    assert "WARNING: no public URL" in notes(chart)
    assert "WARNING: no public URL" not in notes(chart, production_values())


def test_without_a_tenants_secret_the_notes_warn(chart: helm_python.Chart) -> None:
    gateway = trunkline_deployments(render(chart))["gateway"]
    assert "GATEWAY_TENANTS_FILE" not in env_of(gateway)
    assert "tenants" not in {v["name"] for v in gateway["spec"]["template"]["spec"]["volumes"]}
    assert "WARNING: no tenants" in notes(chart)
    assert "WARNING: no tenants" not in notes(chart, production_values())


def test_termination_grace_exceeds_the_drain(manifests: list[Manifest]) -> None:
    for name, deployment in trunkline_deployments(manifests).items():
        drain = float(env_value(deployment, f"{PREFIX[name]}DRAIN_SECONDS"))
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > drain, f"{name}: grace {grace} <= drain {drain}"


def test_pods_run_non_root_read_only_with_resources(manifests: list[Manifest]) -> None:
    for name, deployment in trunkline_deployments(manifests).items():
        pod = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
        assert "memory" in c["resources"]["limits"], name
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts, name  # the only writable scratch space


def test_every_service_with_two_pods_or_more_has_a_disruption_budget(
    manifests: list[Manifest],
) -> None:
    budgets = {component(b): b for b in of_kind(manifests, "PodDisruptionBudget").values()}
    deployments = trunkline_deployments(manifests)
    hpas = {component(h): h for h in of_kind(manifests, "HorizontalPodAutoscaler").values()}
    several = {
        name for name in SERVICES
        if (hpas[name]["spec"]["minReplicas"] if name in hpas
            else deployments[name]["spec"]["replicas"]) >= 2
    }  # fmt: skip
    assert several, "no service runs two pods"
    assert set(budgets) & set(SERVICES) == several  # one pod: a budget would protect nothing
    for name, budget in budgets.items():
        if name not in SERVICES:
            continue
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


# -- wiring --------------------------------------------------------------------------------------


def test_gateway_peer_addresses_name_the_peer_services(manifests: list[Manifest]) -> None:
    gateway = trunkline_deployments(manifests)["gateway"]
    for peer in ("stt", "context", "llm", "tts", "hitl"):
        address = env_value(gateway, f"GATEWAY_{peer.upper()}_ADDR")
        _, target = backing_deployment(manifests, address)
        assert component(target) == peer
        peer_port = port_named(container(target)["ports"], "grpc")["containerPort"]
        assert address.endswith(f":{peer_port}")
        assert env_value(target, f"{peer.upper()}_GRPC_PORT") == str(peer_port)
    assert env_value(gateway, "GATEWAY_NATS_URL").startswith("nats://")
    http_port = port_named(container(gateway)["ports"], "http")["containerPort"]
    assert env_value(gateway, "GATEWAY_HTTP_PORT") == str(http_port)
    gateway_service = next(
        s for s in of_kind(manifests, "Service").values() if component(s) == "gateway"
    )
    assert port_named(gateway_service["spec"]["ports"], "http")["targetPort"] == "http"


def test_default_values_run_the_embedded_backends(chart: helm_python.Chart) -> None:
    deployments = trunkline_deployments(render(chart))
    assert env_value(deployments["stt"], "STT_BACKEND") == "whisper"
    assert env_value(deployments["tts"], "TTS_BACKEND") == "piper"
    assert env_value(deployments["llm"], "LLM_BACKEND") == "llamacpp"
    milvus = env_value(deployments["context"], "CONTEXT_MILVUS_URI")
    mount, volume = mount_of(deployments["context"], milvus)
    assert mount["name"] == "milvus-lite"  # the Milvus Lite file is on its own writable volume
    assert mount.get("readOnly") is not True
    assert volume["emptyDir"] == {}
    assert "CONTEXT_MILVUS_TOKEN" not in env_of(deployments["context"])
    assert "STT_RIVA_ADDR" not in env_of(deployments["stt"])
    assert "LLM_OPENAI_API_KEY" not in env_of(deployments["llm"])
    kinds = {d["kind"] for d in render(chart)}
    assert "HorizontalPodAutoscaler" not in kinds
    assert "Ingress" not in kinds


def test_milvus_lite_keeps_its_file_on_a_claim_or_warns(chart: helm_python.Chart) -> None:
    assert "Milvus Lite file on an emptyDir" in notes(chart)
    values = {"services": {"context": {"milvusLite": {"existingClaim": "context-kb"}}}}
    context = trunkline_deployments(render(chart, values))["context"]
    _, volume = mount_of(context, env_value(context, "CONTEXT_MILVUS_URI"))
    assert volume["persistentVolumeClaim"] == {"claimName": "context-kb"}
    assert "Milvus Lite file on an emptyDir" not in notes(chart, values)
    assert "Milvus Lite file on an emptyDir" not in notes(chart, production_values())


def test_production_backends_point_at_the_gpu_servers(prod: list[Manifest]) -> None:
    deployments = trunkline_deployments(prod)
    for name in ("stt", "tts"):
        p = PREFIX[name]
        assert env_value(deployments[name], f"{p}BACKEND") == "riva"
        _, riva = backing_deployment(prod, env_value(deployments[name], f"{p}RIVA_ADDR"))
        assert component(riva) == "riva"
    llm = deployments["llm"]
    assert env_value(llm, "LLM_BACKEND") == "openai"
    base_url = env_value(llm, "LLM_OPENAI_BASE_URL")
    assert base_url.startswith("http://")
    assert base_url.endswith("/v1")
    _, vllm = backing_deployment(prod, base_url.removeprefix("http://").removesuffix("/v1"))
    assert component(vllm) == "vllm"
    served = next(a for a in container(vllm)["args"] if a.startswith("--served-model-name="))
    assert env_value(llm, "LLM_MODEL") == served.split("=", 1)[1]
    context = deployments["context"]
    assert env_value(context, "CONTEXT_MILVUS_URI") == "http://milvus.vectors:19530"
    assert env_value(context, "CONTEXT_RERANK_URL") == "http://tei-reranker.inference:8080"
    for name, deployment in deployments.items():
        endpoint = env_value(deployment, f"{PREFIX[name]}OTLP_ENDPOINT")
        assert endpoint == "jaeger-collector.observability:4317"


def test_gpu_servers_land_on_gpu_nodes(prod: list[Manifest]) -> None:
    gpu = [d for d in of_kind(prod, "Deployment").values() if component(d) in ("vllm", "riva")]
    assert {component(d) for d in gpu} == {"vllm", "riva"}
    for deployment in gpu:
        pod = deployment["spec"]["template"]["spec"]
        assert container(deployment)["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert any(key.startswith("nvidia.com/gpu") for key in pod["nodeSelector"])
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "persistentVolumeClaim" in volumes["models"]  # weights mounted, never downloaded
    trunkline = trunkline_deployments(prod)
    for deployment in trunkline.values():
        limits = container(deployment)["resources"]["limits"]
        assert "nvidia.com/gpu" not in limits  # the gRPC services themselves stay on CPU nodes


def test_secrets_are_referenced_by_name_never_inlined(prod: list[Manifest]) -> None:
    assert of_kind(prod, "Secret") == {}
    deployments = trunkline_deployments(prod)
    api_key = env_of(deployments["llm"])["LLM_OPENAI_API_KEY"]
    assert "value" not in api_key
    assert api_key["valueFrom"]["secretKeyRef"] == {"name": "trunkline-llm", "key": "api-key"}
    redis = env_of(deployments["gateway"])["GATEWAY_REDIS_URL"]
    assert "value" not in redis
    assert redis["valueFrom"]["secretKeyRef"] == {"name": "trunkline-redis", "key": "url"}
    milvus_token = env_of(deployments["context"])["CONTEXT_MILVUS_TOKEN"]
    assert "value" not in milvus_token
    assert milvus_token["valueFrom"]["secretKeyRef"] == {"name": "trunkline-milvus", "key": "token"}
    assert "GATEWAY_TENANTS" not in env_of(deployments["gateway"])  # a mounted Secret instead
    database = env_of(deployments["ledger"])["LEDGER_DATABASE_URL"]
    assert "value" not in database
    assert database["valueFrom"]["secretKeyRef"] == {"name": "trunkline-ledger-db", "key": "url"}


def test_agents_ship_as_a_configmap_mounted_by_gateway_llm_and_context(
    prod: list[Manifest],
) -> None:
    configmaps = {component(c): c for c in of_kind(prod, "ConfigMap").values()}
    agents = configmaps["agents"]
    text = agents["data"]["acme-dental.yaml"]
    assert yaml.safe_load(text) == production_values()["agents"]["acme-dental"]
    assert parse_agent_spec(text, source="acme-dental.yaml").ref == "acme-dental@1.0.0"
    deployments = trunkline_deployments(prod)
    for name, setting in AGENTS_ENV.items():
        mount, volume = mount_of(deployments[name], env_value(deployments[name], setting))
        assert volume["configMap"]["name"] == agents["metadata"]["name"], name
        assert mount["readOnly"] is True
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert "checksum/agents" in annotations  # a changed agent rolls the pods
    for name in set(deployments) - set(AGENTS_ENV):
        assert "agents" not in {
            v["name"] for v in deployments[name]["spec"]["template"]["spec"]["volumes"]
        }


def test_the_sample_agent_as_a_value_renders_a_valid_spec(chart: helm_python.Chart) -> None:
    """agents/acme-dental.yaml through values and the ConfigMap is the spec the services load."""
    sample = yaml.safe_load(SAMPLE_AGENT.read_text())
    (agents,) = of_kind(render(chart, {"agents": {"acme-dental": sample}}), "ConfigMap").values()
    assert set(agents["data"]) == {"acme-dental.yaml"}
    spec = parse_agent_spec(agents["data"]["acme-dental.yaml"], source="configmap")
    assert spec == load_agent_spec(SAMPLE_AGENT)


def test_production_exposes_and_autoscales_the_gateway(prod: list[Manifest]) -> None:
    gateway = trunkline_deployments(prod)["gateway"]
    assert "replicas" not in gateway["spec"]  # owned by the HPA
    (hpa,) = of_kind(prod, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": gateway["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    (ingress,) = of_kind(prod, "Ingress").values()
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = of_kind(prod, "Service")[backend["name"]]
    port = port_named(service["spec"]["ports"], backend["port"]["name"])["port"]
    _, target = backing_deployment(prod, f"{backend['name']}:{port}")
    assert target is gateway
    assert port == port_named(container(gateway)["ports"], "http")["containerPort"]
    assert ingress["spec"]["tls"][0]["secretName"] == "voice-example-com-tls"


def test_operator_rbac_covers_its_resources_and_the_crds_ship(
    chart: helm_python.Chart, manifests: list[Manifest]
) -> None:
    # crds/ (generated by tools/gen_crds.py): installed by Helm before the templates, never
    # rendered as templates
    assert of_kind(manifests, "CustomResourceDefinition") == {}
    assert sorted(crd["name"] for crd in chart.crds) == [
        "crds/agentrollouts.trunkline.dev.yaml",
        "crds/voiceagents.trunkline.dev.yaml",
    ]
    (role,) = of_kind(manifests, "ClusterRole").values()
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for resource in ("voiceagents", "agentrollouts"):
        assert {"get", "list", "watch", "patch"} <= granted[("trunkline.dev", resource)]
        assert "patch" in granted[("trunkline.dev", f"{resource}/status")]
    assert {"create", "patch", "delete"} <= granted[("apps", "deployments")]
    assert "create" in granted[("", "events")]
    (binding,) = of_kind(manifests, "ClusterRoleBinding").values()
    operator = trunkline_deployments(manifests)["operator"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": operator["spec"]["template"]["spec"]["serviceAccountName"],
            "namespace": "calls",
        }
    ]


# -- the cost ledger ------------------------------------------------------------------------------


def ledger_values(**ledger: Any) -> dict[str, Any]:
    prices = {"acme": (ROOT / "prices" / "acme.yaml").read_text()}
    base = {"enabled": True, "database": {"secret": {"name": "ledger-db", "key": "url"}}}
    return {"ledger": {**base, "prices": prices, **ledger}}


def test_the_ledger_is_off_by_default(chart: helm_python.Chart) -> None:
    docs = render(chart)
    assert not [d for d in docs if component(d) in {"ledger", "prices"}]


def test_the_ledger_reads_its_database_from_a_secret_and_prices_from_a_configmap(
    chart: helm_python.Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(chart, ledger_values())
    ledger = trunkline_deployments(docs)["ledger"]
    settings = load_settings("ledger", ledger, monkeypatch)
    assert isinstance(settings, LedgerSettings)
    assert settings.database_url == "from-secret-ledger-db-url"
    assert settings.nats_url == "nats://nats:4222"
    assert settings.nats_creds_file is None
    configmaps = {component(c): c for c in of_kind(docs, "ConfigMap").values()}
    mount, volume = mount_of(ledger, settings.prices_dir)
    assert PurePosixPath(mount["mountPath"]) == PurePosixPath(settings.prices_dir)
    assert mount["readOnly"] is True
    assert volume["configMap"]["name"] == configmaps["prices"]["metadata"]["name"]
    assert settings.agents_dir is not None
    _, agents = mount_of(ledger, settings.agents_dir)
    assert agents["configMap"]["name"] == configmaps["agents"]["metadata"]["name"]
    # the ConfigMap's files are the price tables the process loads, to the last decimal
    for name, text in configmaps["prices"]["data"].items():
        (tmp_path / name).write_text(text)
    rendered, source = load_price_dir(tmp_path), load_price_dir(ROOT / "prices")
    assert {k: (v.currency, v.versions) for k, v in rendered.items()} == {
        k: (v.currency, v.versions) for k, v in source.items()
    }
    service, selected = backing_deployment(docs, f"{ledger['metadata']['name']}:9464")
    assert selected is ledger
    assert {p["name"] for p in service["spec"]["ports"]} == {"grpc", "metrics"}
    assert container(ledger)["command"] == ["python", "-m", "trunkline.ledger"]
    assert ledger["spec"]["replicas"] == 1


def test_the_ledger_mounts_an_existing_prices_configmap(chart: helm_python.Chart) -> None:
    values = ledger_values(prices={}, pricesConfigMap="tenant-prices")
    docs = render(chart, values)
    assert "prices" not in {component(c) for c in of_kind(docs, "ConfigMap").values()}
    ledger = trunkline_deployments(docs)["ledger"]
    _, volume = mount_of(ledger, env_value(ledger, "LEDGER_PRICES_DIR"))
    assert volume["configMap"]["name"] == "tenant-prices"


@pytest.mark.parametrize(
    ("ledger", "message"),
    [
        ({"database": {"secret": {"name": ""}}}, r"ledger\.database\.secret\.name"),
        ({"prices": {}}, r"ledger\.prices .*or ledger\.pricesConfigMap"),
    ],
    ids=["no-database-secret", "no-prices"],
)
def test_an_enabled_ledger_without_a_database_or_prices_fails_the_render(
    chart: helm_python.Chart, ledger: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=message):
        chart.render(ledger_values(**ledger), name="voice", namespace="calls")


# -- rejected values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"services": {"stt": {"replicas": -1}}}, r"/services/stt/replicas'?: minimum"),
        ({"services": {"stt": {"backend": "kaldi"}}}, r"/services/stt/backend'?: value must be"),
        ({"services": {"llm": {"backend": "anthropic"}}}, r"llamacpp.*openai"),
        ({"services": {"tts": {"grpcPort": 70000}}}, r"/services/tts/grpcPort'?: maximum"),
        (
            {"services": {"gateway": {"replica": 3}}},
            r"/services/gateway'?: additional properties 'replica' not allowed",
        ),
        ({"externals": {"otlp": {"endpoint": "http://jaeger:4317"}}}, r"/externals/otlp/endpoint"),
        ({"common": {"logLevel": "LOUD"}}, r"/common/logLevel"),
        ({"image": {"repository": ""}}, r"/image/repository"),
        (
            {"services": {"gateway": {"publicUrl": "voice.example.com"}}},
            r"/services/gateway/publicUrl",
        ),
        (
            {"services": {"gateway": {"tenantsSecret": {"name": "t", "key": ""}}}},
            r"/services/gateway/tenantsSecret/key",
        ),
        (
            {
                "agents": {
                    "acme": {"name": "acme", "version": 1.0, "system_prompt": "p", "greeting": "g"}
                }
            },
            r"/agents/acme/version",
        ),
        ({"agents": {"acme": {"name": "acme", "version": "1", "system_prompt": "p"}}}, r"greeting"),
        ({"ledger": {"prices": {"acme": {"tenant": "acme"}}}}, r"/ledger/prices/acme"),
        ({"ledger": {"database": {"url": "sqlite:///x.db"}}}, r"/ledger/database'?: additional"),
    ],
    ids=[
        "negative-replicas",
        "unknown-stt",
        "unknown-llm",
        "port",
        "typo",
        "otlp",
        "log",
        "image",
        "public-url-scheme",
        "tenants-key",
        "agent-version-number",
        "agent-greeting",
        "ledger-prices-as-text",
        "ledger-database-url-inline",
    ],
)
def test_schema_rejects_invalid_values(
    chart: helm_python.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=message):
        chart.validate_schema(values)
    with pytest.raises(helm_python.HelmValuesError, match=message):
        chart.render(values, name="voice", namespace="calls")


def test_schema_accepts_the_defaults_and_the_production_file(chart: helm_python.Chart) -> None:
    chart.validate_schema({})
    chart.validate_schema(production_values())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"common": {"drainSeconds": 30, "terminationGracePeriodSeconds": 30}},
            r"must be greater than drainSeconds",
        ),
        ({"services": {"stt": {"backend": "riva"}}}, r"services\.stt\.riva\.addr"),
        ({"services": {"llm": {"backend": "openai"}}}, r"services\.llm\.openai\.baseUrl"),
        ({"services": {"context": {"replicas": 2}}}, r"externals\.milvus\.uri"),
        ({"inference": {"vllm": {"enabled": True}}}, r"modelVolume\.existingClaim"),
    ],
    ids=["grace", "riva-addr", "openai-url", "milvus-lite-replicas", "vllm-weights"],
)
def test_inconsistent_values_fail_the_render_with_the_fix(
    chart: helm_python.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=message):
        chart.render(values, name="voice", namespace="calls")
