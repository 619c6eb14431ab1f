"""The chart's transcript store (issue 13): with ``transcripts.enabled`` the gateway gets the
store's URL from an existing Secret (never a value), a CronJob purges what is past retention
with the very command it names (run here against a real SQLite store), and the network
policies let the gateway and the job reach PostgreSQL; nothing of it by default; enabling it
without the database Secret or the tenants Secret (the keys) fails the render with the reason.
Helm v4 in-process (``helm-python-sdk``), no cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest

from trunkline.redaction.transcripts import TranscriptStore, new_key, parse_key
from trunkline.testing.charts import manifests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "trunkline"
DB = {"name": "trunkline-transcripts-db", "key": "url"}
TENANTS = {"name": "trunkline-tenants", "key": "tenants.yaml"}
Manifest = dict[str, Any]


def render(chart: helm_python.Chart, values: dict[str, Any]) -> list[Manifest]:
    return manifests(chart, values)


def enabled(**transcripts: Any) -> dict[str, Any]:
    return {
        "services": {"gateway": {"tenantsSecret": TENANTS}},
        "transcripts": {"enabled": True, "database": {"secret": DB}, **transcripts},
    }


def of(docs: list[Manifest], kind: str, component: str) -> list[Manifest]:
    return [
        d
        for d in docs
        if d["kind"] == kind and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]


def gateway_env(docs: list[Manifest]) -> dict[str, Manifest]:
    (gateway,) = of(docs, "Deployment", "gateway")
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def egress_ports(docs: list[Manifest], component: str) -> set[int]:
    (policy,) = of(docs, "NetworkPolicy", component)
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}


def test_off_by_default(chart: helm_python.Chart) -> None:
    docs = render(chart, {})
    assert "GATEWAY_TRANSCRIPTS_URL" not in gateway_env(docs)
    assert of(docs, "CronJob", "transcripts") == []
    assert 5432 not in egress_ports(docs, "gateway")


def test_enabled_wires_the_gateway_the_purge_job_and_the_egress(chart: helm_python.Chart) -> None:
    docs = render(chart, enabled(purgeSchedule="5 */6 * * *"))
    url = gateway_env(docs)["GATEWAY_TRANSCRIPTS_URL"]
    assert "value" not in url  # the URL (with its password) only in the Secret
    assert url["valueFrom"]["secretKeyRef"] == DB
    (job,) = of(docs, "CronJob", "transcripts")
    kubernetes_validate.validate(job, "1.30.0", strict=True)
    assert job["spec"]["schedule"] == "5 */6 * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == [
        "python", "-m", "trunkline.redaction.cli", "purge", "--expired"
    ]  # fmt: skip
    assert container["env"] == [{"name": "TRANSCRIPTS_URL", "valueFrom": {"secretKeyRef": DB}}]
    assert pod["automountServiceAccountToken"] is False
    assert 5432 in egress_ports(docs, "gateway")
    assert 5432 in egress_ports(docs, "transcripts")


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"transcripts": {"enabled": True}}, "transcripts.database.secret.name"),
        (
            {"transcripts": {"enabled": True, "database": {"secret": DB}}},
            "services.gateway.tenantsSecret.name",
        ),
    ],
)
def test_enabled_without_its_secrets_fails_with_the_reason(
    chart: helm_python.Chart, values: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Exception, match=reason.replace(".", r"\.")):
        render(chart, values)


def test_the_purge_jobs_command_deletes_what_is_past_retention(tmp_path: Path) -> None:
    """The CronJob's command, run as the pod runs it (URL from the environment)."""
    url = f"sqlite:///{tmp_path}/transcripts.db"
    store = TranscriptStore(url)
    key = parse_key(new_key(), "acme")
    store.append("acme", "old", 0, {"caller": "hi"}, key, now=1_000.0, retention_s=60)
    store.append("acme", "new", 0, {"caller": "hi"}, key, now=4e9, retention_s=60)
    env = {**os.environ, "TRANSCRIPTS_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "trunkline.redaction.cli", "purge", "--expired"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "deleted 1 expired turns" in done.stdout
    assert [c for _, c, _ in store.calls()] == ["new"]
    store.close()
