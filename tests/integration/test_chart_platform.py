"""The chart as a platform runs it: liveness that never follows peers, a drain as long as a
call, autoscaling on live calls and queue depth, disruption budgets that match the replicas,
zone and node spread, network policies, TLS and credentials from Secrets, GPU node pools, the
OpenTelemetry Collector and the Prometheus Operator objects. Rendered in-process (Helm v4 as a
library); tests/integration/test_helm_cli.py runs the real helm CLI over the same values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from trunkline.gateway.settings import GatewaySettings
from trunkline.hitl.console.service import ConsoleSettings
from trunkline.hitl.settings import HitlSettings
from trunkline.ledger.settings import LedgerSettings
from trunkline.runtime import LIVENESS
from trunkline.telemetry.setup import OtlpTls
from trunkline.testing.charts import manifests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "trunkline"
PRODUCTION = ROOT / "tests" / "data" / "helm" / "production-values.yaml"
GPU = ROOT / "deploy" / "skaffold" / "gpu-values.yaml"
TRUNKLINE = ("gateway", "stt", "context", "llm", "tts", "hitl", "operator")
Manifest = dict[str, Any]


def render(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> list[Manifest]:
    return manifests(chart, values)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def component(doc: Manifest) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def kind(docs: list[Manifest], name: str) -> dict[str, Manifest]:
    return {component(d): d for d in docs if d["kind"] == name}


def pod(deployment: Manifest) -> Manifest:
    return dict(deployment["spec"]["template"]["spec"])


def container(deployment: Manifest) -> Manifest:
    return dict(pod(deployment)["containers"][0])


def env(deployment: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container(deployment).get("env", [])}


# -- health and drain ------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, PRODUCTION, GPU], ids=["default", "production", "gpu"])
def test_liveness_never_asks_the_status_that_follows_peers(
    chart: helm_python.Chart, values: Path | None
) -> None:
    deployments = kind(render(chart, load(values) if values else None), "Deployment")
    assert ("ledger" in deployments) == (values is not None)  # off by default
    for name in (*TRUNKLINE, "ledger") if values else TRUNKLINE:
        c = container(deployments[name])
        assert c["livenessProbe"]["grpc"]["service"] == LIVENESS, name
        assert c["startupProbe"]["grpc"]["service"] == LIVENESS, name
        assert c["readinessProbe"]["grpc"].get("service", "") == "", name  # models + peers


def test_the_schema_refuses_a_liveness_probe_on_readiness(chart: helm_python.Chart) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="/probes/liveness/service"):
        chart.validate_schema({"probes": {"liveness": {"service": ""}}})


def test_the_gateway_drains_for_ten_minutes_after_a_pre_stop_pause(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = kind(render(chart), "Deployment")["gateway"]
    drain = float(env(gateway)["GATEWAY_DRAIN_SECONDS"]["value"])
    assert drain >= 600
    pre_stop = container(gateway)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod(gateway)["terminationGracePeriodSeconds"] > drain + float(pre_stop[1])
    monkeypatch.setenv("GATEWAY_DRAIN_SECONDS", str(drain))
    assert GatewaySettings.load().drain_seconds == drain
    with pytest.raises(helm_python.HelmRenderError, match=r"drainSeconds \(600\) \+ common"):
        render(chart, {"services": {"gateway": {"terminationGracePeriodSeconds": 603}}})


# -- scaling and disruption --------------------------------------------------------------------


def test_the_gateway_scales_on_live_calls_per_pod(chart: helm_python.Chart) -> None:
    values = {"services": {"gateway": {"autoscaling": {"enabled": True}}}}
    hpa = kind(render(chart, values), "HorizontalPodAutoscaler")["gateway"]
    calls = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert calls == [{"type": "Pods", "pods": {
        "metric": {"name": "trunkline_gateway_calls_active"},
        "target": {"type": "AverageValue", "averageValue": "20"}}}]  # fmt: skip
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 600
    values["services"]["gateway"]["autoscaling"]["targetCPUUtilizationPercentage"] = None
    hpa = kind(render(chart, values), "HorizontalPodAutoscaler")["gateway"]
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Pods"]  # calls only


def test_gpu_servers_scale_on_their_queue(chart: helm_python.Chart) -> None:
    hpas = kind(render(chart, load(GPU)), "HorizontalPodAutoscaler")
    assert set(hpas) == {"gateway", "vllm"}
    (metric,) = hpas["vllm"]["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "trunkline_vllm_requests_waiting"
    deployments = kind(render(chart, load(GPU)), "Deployment")
    assert "replicas" not in deployments["vllm"]["spec"]  # the HPA owns it
    assert deployments["riva"]["spec"]["replicas"] == 1


@pytest.mark.parametrize("values", [None, PRODUCTION, GPU], ids=["default", "production", "gpu"])
def test_disruption_budgets_match_the_replicas(
    chart: helm_python.Chart, values: Path | None
) -> None:
    docs = render(chart, load(values) if values else None)
    budgets = kind(docs, "PodDisruptionBudget")
    hpas = kind(docs, "HorizontalPodAutoscaler")
    for name, deployment in kind(docs, "Deployment").items():
        replicas = (hpas[name]["spec"]["minReplicas"] if name in hpas
                    else deployment["spec"]["replicas"])  # fmt: skip
        if replicas < 2:
            assert name not in budgets, f"{name}: a budget on a single pod protects nothing"
        elif name not in {"operator", "otel-collector"}:
            assert budgets[name]["spec"]["maxUnavailable"] < replicas, name
    with pytest.raises(helm_python.HelmRenderError, match=r"maxUnavailable .* below"):
        render(chart, {"services": {"stt": {"replicas": 2, "pdb": {"maxUnavailable": 2}}}})


def test_pods_spread_over_zones_and_nodes(chart: helm_python.Chart) -> None:
    for name, deployment in kind(render(chart), "Deployment").items():
        constraints = pod(deployment)["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for c in constraints:
            assert c["labelSelector"]["matchLabels"].items() <= labels.items()
            assert c["matchLabelKeys"] == ["pod-template-hash"]  # a rollout spreads on its own


# -- network policies ---------------------------------------------------------------------------


def _selects(selector: Manifest, labels: dict[str, str]) -> bool:
    return bool(selector.get("matchLabels", {}).items() <= labels.items())


def _port_matches(rule_ports: list[Manifest] | None, port: int, names: dict[str, int]) -> bool:
    if not rule_ports:
        return True
    return any(names.get(str(p["port"]), p["port"]) == port for p in rule_ports)


class Net:
    """Kubernetes NetworkPolicy semantics for pods of one namespace and external addresses."""

    def __init__(self, docs: list[Manifest]) -> None:
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        self.pods = {component(d): (d["spec"]["template"]["metadata"]["labels"],
                                    {p["name"]: p["containerPort"] for p in container(d)["ports"]})
                     for d in docs if d["kind"] == "Deployment"}  # fmt: skip

    def _rules(self, labels: dict[str, str], direction: str) -> list[Manifest] | None:
        selecting = [p for p in self.policies if _selects(p["spec"]["podSelector"], labels)
                     and direction in p["spec"]["policyTypes"]]  # fmt: skip
        if not selecting:
            return None  # not isolated
        return [r for p in selecting for r in p["spec"].get(direction.lower(), [])]

    def _peer_ok(self, peers: list[Manifest] | None, labels: dict[str, str] | None) -> bool:
        if not peers:
            return True
        return labels is not None and any(
            "podSelector" in p
            and "namespaceSelector" not in p
            and _selects(p["podSelector"], labels)
            for p in peers
        )

    def allowed(self, src: str, dst: str | None, port: int | str) -> bool:
        src_labels, _ = self.pods[src]
        dst_labels, names = self.pods[dst] if dst is not None else (None, {})
        number = names[port] if isinstance(port, str) else port
        egress = self._rules(src_labels, "Egress")
        if egress is not None and not any(
            _port_matches(r.get("ports"), number, names) and self._peer_ok(r.get("to"), dst_labels)
            for r in egress
        ):
            return False
        if dst_labels is None:
            return True
        ingress = self._rules(dst_labels, "Ingress")
        return ingress is None or any(
            _port_matches(r.get("ports"), number, names)
            and self._peer_ok(r.get("from"), src_labels)
            for r in ingress
        )


def test_network_policies_allow_exactly_the_call_path(chart: helm_python.Chart) -> None:
    net = Net(render(chart, load(PRODUCTION)))
    for peer in ("stt", "context", "llm", "tts", "hitl"):
        assert net.allowed("gateway", peer, "grpc"), f"gateway -> {peer}"
        assert not net.allowed(peer, "gateway", "grpc"), f"{peer} -> gateway"
    assert not net.allowed("stt", "context", "grpc")
    assert net.allowed("stt", "riva", "grpc")
    assert net.allowed("tts", "riva", "grpc")
    assert not net.allowed("llm", "riva", "grpc")
    assert net.allowed("llm", "vllm", "http")
    assert not net.allowed("gateway", "vllm", "http")
    assert net.allowed("gateway", None, 6379)
    assert net.allowed("gateway", None, 4222)
    assert not net.allowed("stt", None, 6379)
    assert not net.allowed("tts", None, 4222)
    assert net.allowed("context", None, 19530)
    assert not net.allowed("gateway", None, 19530)
    assert net.allowed("operator", None, 443)
    assert not net.allowed("stt", None, 443)
    # the ledger: NATS and its PostgreSQL out, /metrics in, nothing else either way
    assert net.allowed("ledger", None, 4222)
    assert net.allowed("ledger", None, 5432)
    assert not net.allowed("gateway", None, 5432)
    assert not net.allowed("context", None, 5432)
    for port in (6379, 19530, 443, 80):
        assert not net.allowed("ledger", None, port), f"ledger -> :{port}"
    for peer in ("gateway", "stt", "context", "llm", "tts", "hitl"):
        assert not net.allowed("ledger", peer, "grpc"), f"ledger -> {peer}"
        assert not net.allowed(peer, "ledger", "grpc"), f"{peer} -> ledger"
    assert net.allowed("ledger", None, 53)
    ledger = next(p for p in net.policies if component(p) == "ledger")
    assert [r["ports"] for r in ledger["spec"]["ingress"]] == [
        [{"port": "metrics", "protocol": "TCP"}]
    ]
    for name in ("gateway", "stt", "vllm"):
        assert net.allowed(name, None, 53)
    (deny,) = [p for p in net.policies if p["metadata"]["name"].endswith("-default-deny")]
    assert deny["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/instance": "voice"}}
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]


# -- secrets, TLS, telemetry ----------------------------------------------------------------------


def _settings_from(deployment: Manifest, prefix: str, cls: type[Any],
                   monkeypatch: pytest.MonkeyPatch) -> Any:  # fmt: skip
    for key in [k for k in os.environ if k.startswith(prefix)]:
        monkeypatch.delenv(key)
    for name, entry in env(deployment).items():
        if name.startswith(prefix):
            value = entry.get("value", "from-secret").replace("$(OTLP_AUTHORIZATION)", "Bearer t")
            monkeypatch.setenv(name, value)
    return cls.load()


def test_tls_and_credentials_come_from_mounted_secrets(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = load(GPU)
    values["otelCollector"] = {
        "enabled": False
    }  # the services talk TLS to the collector themselves
    deployments = kind(render(chart, values), "Deployment")
    gateway = _settings_from(deployments["gateway"], "GATEWAY_", GatewaySettings, monkeypatch)
    hitl = _settings_from(deployments["hitl"], "HITL_", HitlSettings, monkeypatch)
    mounts = {m["mountPath"]: m for m in container(deployments["gateway"])["volumeMounts"]}
    volumes = {v["name"]: v for v in pod(deployments["gateway"])["volumes"]}
    expected = {
        gateway.nats_ca_file: ("trunkline-nats-ca", "ca.crt"),
        gateway.nats_creds_file: ("trunkline-nats-creds", "trunkline.creds"),
        gateway.redis_ca_file: ("trunkline-redis-ca", "ca.crt"),
        gateway.otlp_ca_file: ("trunkline-otlp-ca", "ca.crt"),
    }
    for path, (secret, key) in expected.items():
        assert path is not None
        mount = mounts[str(path.parent)]
        assert mount["readOnly"] is True
        volume = volumes[mount["name"]]["secret"]
        assert (volume["secretName"], volume["items"]) == (
            secret,
            [{"key": key, "path": path.name}],
        )
    assert hitl.nats_creds_file == gateway.nats_creds_file
    ledger = _settings_from(deployments["ledger"], "LEDGER_", LedgerSettings, monkeypatch)
    assert (ledger.nats_url, ledger.nats_ca_file, ledger.nats_creds_file) == (
        gateway.nats_url,
        gateway.nats_ca_file,
        gateway.nats_creds_file,
    )
    ledger_mounts = {m["mountPath"]: m for m in container(deployments["ledger"])["volumeMounts"]}
    ledger_volumes = {v["name"]: v for v in pod(deployments["ledger"])["volumes"]}
    for path in (ledger.nats_ca_file, ledger.nats_creds_file):
        assert path is not None
        mount = ledger_mounts[str(path.parent)]
        assert ledger_volumes[mount["name"]]["secret"]["items"] == [
            {"key": path.name, "path": path.name}
        ]
    assert "redis-ca" not in ledger_volumes
    assert gateway.nats_url.startswith("tls://")
    assert gateway.otlp_insecure is False
    assert gateway.otlp_headers is not None
    assert OtlpTls.parse_headers(gateway.otlp_headers.get_secret_value()) == (
        ("authorization", "Bearer t"),
    )
    auth = env(deployments["gateway"])["OTLP_AUTHORIZATION"]["valueFrom"]["secretKeyRef"]
    assert auth == {"name": "trunkline-otlp-auth", "key": "authorization"}
    assert "nats-creds" not in {v["name"] for v in pod(deployments["stt"])["volumes"]}


def test_the_collector_sits_between_the_services_and_jaeger(chart: helm_python.Chart) -> None:
    docs = render(chart, load(GPU))
    deployments = kind(docs, "Deployment")
    collector_service = kind(docs, "Service")["otel-collector"]
    endpoint = f"{collector_service['metadata']['name']}:4317"
    for name in TRUNKLINE:
        prefix = "ROLLOUT_" if name == "operator" else f"{name.upper()}_"
        assert env(deployments[name])[f"{prefix}OTLP_ENDPOINT"]["value"] == endpoint
        assert f"{prefix}OTLP_INSECURE" not in env(deployments[name])  # plaintext inside
    config = yaml.safe_load(kind(docs, "ConfigMap")["otel-collector"]["data"]["config.yaml"])
    exporter = config["exporters"]["otlp"]
    assert exporter["endpoint"] == "jaeger-collector.observability:4317"
    assert exporter["tls"] == {"insecure": False, "ca_file": "/etc/otel/tls/ca.crt"}
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp"]
    with pytest.raises(helm_python.HelmRenderError, match=r"needs externals\.otlp\.endpoint"):
        render(chart, {"otelCollector": {"enabled": True}})


def test_monitoring_objects_select_the_metrics_ports(chart: helm_python.Chart) -> None:
    docs = render(chart, load(GPU))
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    selected = [s for s in docs if s["kind"] == "Service"
                and _selects(monitor["spec"]["selector"], s["metadata"]["labels"])]  # fmt: skip
    scraped = {"gateway", "stt", "context", "llm", "tts", "hitl", "ledger", "vllm", "riva"}
    assert {component(s) for s in selected} >= scraped
    for service in selected:
        if component(service) not in scraped:
            continue  # the collector: no /metrics of its own
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert ports & {e["port"] for e in monitor["spec"]["endpoints"]}, component(service)
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    source = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == source
    assert not [d for d in render(chart) if d["kind"] in ("ServiceMonitor", "PrometheusRule")]


# -- GPU node pools -----------------------------------------------------------------------------


def test_gpu_servers_get_their_node_pool_shm_cache_and_a_long_startup(
    chart: helm_python.Chart,
) -> None:
    deployments = kind(render(chart, load(GPU)), "Deployment")
    for name in ("vllm", "riva"):
        spec = pod(deployments[name])
        assert spec["runtimeClassName"] == "nvidia"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["shm"]["emptyDir"]["medium"] == "Memory"
        assert volumes["shm"]["emptyDir"]["sizeLimit"]
        mounts = {m["mountPath"]: m["name"] for m in container(deployments[name])["volumeMounts"]}
        assert mounts["/dev/shm"] == "shm"
        assert mounts["/cache"] == "cache"
        startup = container(deployments[name])["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800  # 30 min to load
    assert pod(deployments["vllm"])["volumes"][-1] != {}
    cache = {v["name"]: v for v in pod(deployments["vllm"])["volumes"]}["cache"]
    assert cache["persistentVolumeClaim"] == {"claimName": "vllm-cache"}
    for name in TRUNKLINE:
        assert "runtimeClassName" not in pod(deployments[name])  # the services stay on CPU nodes


def test_slim_images_per_component(chart: helm_python.Chart) -> None:
    values = {"image": {"overrides": {"gateway": "registry.example/trunkline-gateway:1@sha256:"
                                      + "a" * 64}}}  # fmt: skip
    deployments = kind(render(chart, values), "Deployment")
    assert container(deployments["gateway"])["image"].endswith("@sha256:" + "a" * 64)
    assert container(deployments["stt"])["image"] == "ghcr.io/trunkline/trunkline:0.1.0"
    pinned = kind(render(chart, {"image": {"digest": "sha256:" + "b" * 64}}), "Deployment")
    assert container(pinned["llm"])["image"] == "ghcr.io/trunkline/trunkline@sha256:" + "b" * 64


# -- human in the loop ----------------------------------------------------------------------------


def test_the_console_and_the_join_secret_reach_hitl_and_the_gateway(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = load(PRODUCTION)
    hitl_values = values.setdefault("services", {}).setdefault("hitl", {})
    hitl_values["joinSecret"] = {"name": "trunkline-join", "key": "join-secret"}
    hitl_values["console"] = {
        "operatorsSecret": {"name": "trunkline-operators", "key": "operators.yaml"},
        "sessionSecret": {"name": "trunkline-console", "key": "session-secret"},
    }
    docs = render(chart, values)
    deployments = kind(docs, "Deployment")
    hitl, gateway = deployments["hitl"], deployments["gateway"]
    join = {"name": "trunkline-join", "key": "join-secret"}
    assert env(hitl)["HITL_JOIN_SECRET"]["valueFrom"]["secretKeyRef"] == join
    assert env(gateway)["GATEWAY_JOIN_SECRET"]["valueFrom"]["secretKeyRef"] == join
    session = env(hitl)["HITL_CONSOLE_SESSION_SECRET"]["valueFrom"]["secretKeyRef"]
    assert session == {"name": "trunkline-console", "key": "session-secret"}

    settings = _settings_from(hitl, "HITL_CONSOLE_", ConsoleSettings, monkeypatch)
    assert settings.enabled
    assert settings.https_only
    assert settings.host == "0.0.0.0"
    gateway_service = kind(docs, "Service")["gateway"]
    http_port = {p["name"]: p["port"] for p in gateway_service["spec"]["ports"]}["http"]
    assert settings.gateway_url == f"http://{gateway_service['metadata']['name']}:{http_port}"
    assert settings.operators_file is not None
    mounts = {m["mountPath"]: m for m in container(hitl)["volumeMounts"]}
    volume = {v["name"]: v for v in pod(hitl)["volumes"]}[
        mounts[str(settings.operators_file.parent)]["name"]
    ]["secret"]
    assert volume["secretName"] == "trunkline-operators"
    assert volume["items"] == [{"key": "operators.yaml", "path": "operators.yaml"}]

    ports = {p["name"]: p["containerPort"] for p in container(hitl)["ports"]}
    assert ports["console"] == settings.port
    service_ports = {p["name"] for p in kind(docs, "Service")["hitl"]["spec"]["ports"]}
    assert "console" in service_ports
    net = Net(docs)
    assert net.allowed("hitl", "gateway", "http")  # the console relays SDP offers
    assert not net.allowed("hitl", "gateway", "grpc")
    assert not net.allowed("stt", "hitl", "console")
