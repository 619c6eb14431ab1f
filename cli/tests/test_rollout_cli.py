"""``trunkline rollout status|promote|abort`` against a real API server (no operator: the test
writes the status an operator would have written)."""

from __future__ import annotations

import pytest
from kubernetes import client

from trunkline.cli.main import main
from trunkline.devservers.kube import KubeApiServer
from trunkline.testing.kube_fixtures import admin_client

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "trunkline.dev", "v1alpha1", "agentrollouts"


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["rollout", *args])
    return int(done.value.code or 0)


@pytest.fixture
def custom(kube_apiserver: KubeApiServer, kube_crds: list[str]) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(admin_client(kube_apiserver))


def make_rollout(custom: client.CustomObjectsApi, namespace: str, name: str, phase: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentRollout",
        "metadata": {"name": name},
        "spec": {
            "agent": "acme-dental",
            "stableVersion": "1.0.0",
            "candidateVersion": "1.1.0",
            "analysis": {
                "minIterations": 5,
                "metrics": [{"name": "voice_to_voice_p95_ms", "thresholdRange": {"max": 900}}],
            },
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    status = {
        "phase": phase,
        "iterations": 3,
        "failedChecks": 1,
        "inconclusiveChecks": 0,
        "activeVersion": "1.0.0",
        "message": "3/5 successful checks, 1 failed, 0 inconclusive",
        "results": [{"name": "voice_to_voice_p95_ms", "outcome": "Passed", "value": 640.0}],
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": "Shadowing",
             "lastTransitionTime": "2026-03-01T12:00:00Z"},
            {"type": "Promoted", "status": "False", "reason": "NotPromoted",
             "lastTransitionTime": "2026-03-01T12:00:00Z"},
        ],
    }  # fmt: skip
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status}
    )


def test_status_shows_phase_checks_conditions_and_results(
    custom: client.CustomObjectsApi,
    kube_apiserver: KubeApiServer,
    kube_namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_rollout(custom, kube_namespace, "acme-next", "Shadowing")
    kubeconfig = str(kube_apiserver.kubeconfig)
    assert cli("status", "acme-next", "-n", kube_namespace, "--kubeconfig", kubeconfig) == 0
    out = capsys.readouterr().out
    assert f"AgentRollout {kube_namespace}/acme-next: agent acme-dental 1.0.0 -> 1.1.0" in out
    assert "phase     Shadowing" in out
    assert "checks    3 passed, 1 failed, 0 inconclusive (promote at 5)" in out
    assert "Promoted      False    NotPromoted" in out
    assert "voice_to_voice_p95_ms" in out
    assert "640" in out


def test_promote_and_abort_set_the_spec_and_refuse_finished_rollouts(
    custom: client.CustomObjectsApi,
    kube_apiserver: KubeApiServer,
    kube_namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubeconfig = str(kube_apiserver.kubeconfig)
    make_rollout(custom, kube_namespace, "live", "Paused")
    assert cli("promote", "live", "-n", kube_namespace, "--kubeconfig", kubeconfig) == 0
    body = custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "live")
    assert body["spec"]["promote"] is True
    make_rollout(custom, kube_namespace, "done", "Failed")
    assert cli("abort", "done", "-n", kube_namespace, "--kubeconfig", kubeconfig) == 1
    assert "done is already Failed; nothing to abort" in capsys.readouterr().err
    body = custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "done")
    assert "abort" not in body["spec"]


def test_unknown_rollout_and_unreachable_cluster_are_one_clear_line(
    kube_apiserver: KubeApiServer,
    kube_crds: list[str],
    kube_namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubeconfig = str(kube_apiserver.kubeconfig)
    assert cli("status", "nope", "-n", kube_namespace, "--kubeconfig", kubeconfig) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        f"trunkline rollout: no AgentRollout 'nope' in namespace {kube_namespace!r}"
    )
    assert cli("status", "x", "--kubeconfig", "/nonexistent/kubeconfig") == 1
    assert "no Kubernetes configuration" in capsys.readouterr().err
