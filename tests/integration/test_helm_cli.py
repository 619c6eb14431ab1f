"""The real helm CLI (helm v4, built from the Go module proxy by ``make install``) over a matrix
of values files: ``helm lint --strict`` and ``helm template``, every rendered manifest checked
against the Kubernetes 1.30 schemas (kubernetes-validate), the Prometheus Operator objects
against the fields their CRDs require; and ``helm install --dry-run=server`` against a real
kube-apiserver (the operator tests' envtest)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml

from trunkline.devservers.gotools import HELM, ToolMissingError, find_tool
from trunkline.devservers.kube import KubeApiServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "trunkline"
KUBE_VERSION = "1.30.0"
MATRIX = {
    "default": [],
    "production": [ROOT / "tests/data/helm/production-values.yaml"],
    "skaffold-dev": [ROOT / "deploy/skaffold/dev-values.yaml"],
    "skaffold-gpu": [ROOT / "deploy/skaffold/gpu-values.yaml"],
    "skaffold-ci": [ROOT / "deploy/skaffold/ci-values.yaml"],
    "everything-off": [ROOT / "tests/data/helm/minimal-values.yaml"],
}
CUSTOM_KINDS = {
    "ServiceMonitor": ("monitoring.coreos.com/v1", ("selector", "endpoints")),
    "PrometheusRule": ("monitoring.coreos.com/v1", ("groups",)),
}
"""Custom resources the chart renders: apiVersion and the spec fields their CRDs require."""


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return find_tool("helm")
    except ToolMissingError as exc:
        pytest.fail(str(exc))


def run(helm: Path, *args: str) -> str:
    done = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def values_args(files: list[Path]) -> list[str]:
    return [arg for f in files for arg in ("-f", str(f))]


def test_the_cli_is_the_pinned_helm(helm: Path) -> None:
    out = run(helm, "version", "--template", "{{.Version}}")
    assert out.strip() == HELM.version


@pytest.mark.parametrize("name", list(MATRIX))
def test_lint_strict_passes(helm: Path, name: str) -> None:
    out = run(helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION,
              *values_args(MATRIX[name]))  # fmt: skip
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[ERROR]" not in out
    assert "[WARNING]" not in out


@pytest.mark.parametrize("name", list(MATRIX))
def test_every_rendered_manifest_validates(helm: Path, name: str) -> None:
    out = run(helm, "template", "voice", str(CHART), "--namespace", "calls",
              "--kube-version", KUBE_VERSION, *values_args(MATRIX[name]))  # fmt: skip
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(out) if d]
    assert len(docs) >= 10
    seen = set()
    for doc in docs:
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        seen.add(doc["kind"])
        if doc["kind"] in CUSTOM_KINDS:
            api_version, required = CUSTOM_KINDS[doc["kind"]]
            assert doc["apiVersion"] == api_version, where
            assert all(doc["spec"].get(field) for field in required), where
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")
    assert {"Deployment", "Service"} <= seen


def test_bad_values_fail_with_the_path(helm: Path) -> None:
    done = subprocess.run(
        [str(helm), "template", "voice", str(CHART), "--set", "probes.liveness.service="],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "/probes/liveness/service" in done.stderr


@pytest.mark.parametrize("name", ["production", "skaffold-ci"])
def test_install_dry_run_against_a_real_api_server(
    helm: Path, kube_apiserver: KubeApiServer, name: str
) -> None:
    """``helm install --dry-run=server``: the API server (envtest: kube-apiserver + etcd, RBAC
    on) admits every object the chart would create, defaults and validation included. Prometheus
    Operator objects are left out: the envtest has no CRDs for them."""
    values = list(MATRIX[name])
    extra = ["--set", "metrics.serviceMonitor.enabled=false",
             "--set", "metrics.prometheusRule.enabled=false"]  # fmt: skip
    out = run(helm, "install", f"voice-{name}", str(CHART), "--namespace", f"calls-{name}",
              "--create-namespace", "--dry-run=server", "--kubeconfig",
              str(kube_apiserver.kubeconfig), *values_args(values), *extra)  # fmt: skip
    assert "STATUS: pending-install" in out
    manifest = out.split("MANIFEST:", 1)[1].split("\nNOTES:", 1)[0]
    kinds = {d["kind"] for d in yaml.safe_load_all(manifest) if d}
    assert {"Deployment", "Service", "NetworkPolicy"} <= kinds
