"""The operator against a real Kubernetes API server (etcd + kube-apiserver on loopback).

kopf runs in a thread of its own (as in the process) with the real handlers and controller;
only the metrics source and the replay gate are the in-memory ones, so each test decides what
the candidate's metrics read. Analysis runs every second. Assertions read back what the API
server stored: phases, conditions, Events, VoiceAgent statuses and the shadow Deployments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from trunkline.agents import AgentSpec, load_agent_spec
from trunkline.cli.main import main as cli_main
from trunkline.devservers.kube import KubeApiServer
from trunkline.rollout.cluster import KubeCluster
from trunkline.rollout.controller import Controller, RolloutMeters
from trunkline.rollout.manifests import ShadowRunner
from trunkline.rollout.metrics import MetricsSource, StaticSource
from trunkline.rollout.replay import FixedReplay
from trunkline.rollout.runner import OperatorThread
from trunkline.rollout.shadows import RecordingShadows, ShadowRegistry
from trunkline.testing.kube_fixtures import admin_client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "agents" / "acme-dental.yaml"
GROUP, VERSION = "trunkline.dev", "v1alpha1"
WAIT_S = 60.0


class Operator:
    """The rollout operator (kopf in its own thread, as in the process), watching one namespace."""

    def __init__(
        self,
        api: Any,
        namespace: str,
        shadows: ShadowRegistry | None = None,
        source: MetricsSource | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.metrics = StaticSource()
        self.shadows = shadows or RecordingShadows()
        self.replay = FixedReplay()
        self.reader = InMemoryMetricReader()
        self.controller = Controller(
            cluster=KubeCluster(api),
            metrics_source=source or self.metrics,
            replay_gate=self.replay,
            runner=ShadowRunner(image="trunkline:test"),
            meters=RolloutMeters(MeterProvider(metric_readers=[self.reader]).get_meter("t")),
            shadows=self.shadows,
        )
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.thread = OperatorThread(self.controller, api, namespaces=[namespace])

    async def start(self) -> None:
        self.thread.start()
        ready = await asyncio.to_thread(self.thread.wait_ready, WAIT_S)
        assert ready, f"the operator did not start: {self.thread.error}"

    async def stop(self) -> None:
        assert await asyncio.to_thread(self.thread.stop, WAIT_S), "the operator did not stop"
        assert self.thread.error is None, self.thread.error

    # -- the API, from the test's side ---------------------------------------------------
    async def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await asyncio.to_thread(
            self.custom.create_namespaced_custom_object, GROUP, VERSION, self.namespace,
            plural, body, field_validation="Strict",
        )  # fmt: skip
        return created

    async def get(self, plural: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = await asyncio.to_thread(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace, plural, name
        )
        return found

    async def wait_for(
        self, plural: str, name: str, ok: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + WAIT_S
        body: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(ApiException):
                body = await self.get(plural, name)
                if ok(body):
                    return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"{plural}/{name}: not {what} within {WAIT_S}s: {body.get('status')}")

    async def wait_phase(self, name: str, phase: str) -> dict[str, Any]:
        return await self.wait_for(
            "agentrollouts", name, lambda b: (b.get("status") or {}).get("phase") == phase, phase
        )

    async def events(self, name: str, until: str) -> list[tuple[str, str, str]]:
        """The object's Events in order, once one with reason ``until`` is there (the operator
        records Events right after the status it waited for)."""
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            listed = await asyncio.to_thread(
                self.core.list_namespaced_event, self.namespace,
                field_selector=f"involvedObject.name={name}",
            )  # fmt: skip
            items = sorted(listed.items, key=lambda e: e.metadata.name)
            found = [(e.type, e.reason, e.message) for e in items]
            if any(r == until for _, r, _ in found):
                return found
            assert asyncio.get_running_loop().time() < deadline, f"no {until} event: {found}"
            await asyncio.sleep(0.1)

    async def counted(self, name: str, expected: dict[tuple[tuple[str, Any], ...], int]) -> None:
        """Wait until the operator's counter ``name`` reads ``expected`` (it counts a step once
        the step's writes are done)."""
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while self.counter(name) != expected:
            assert asyncio.get_running_loop().time() < deadline, self.counter(name)
            await asyncio.sleep(0.1)

    async def deployment(self, name: str) -> client.V1Deployment | None:
        try:
            return await asyncio.to_thread(
                self.apps.read_namespaced_deployment, name, self.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def counter(self, name: str) -> dict[tuple[tuple[str, Any], ...], int]:
        data = self.reader.get_metrics_data()
        found: dict[tuple[tuple[str, Any], ...], int] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:  # type: ignore[union-attr]
                            found[tuple(sorted(point.attributes.items()))] = point.value
        return found


def voiceagent(spec: AgentSpec, **changes: Any) -> dict[str, Any]:
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data.update(changes)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VoiceAgent",
        "metadata": {"name": f"{data['name']}-{data['version'].replace('.', '-')}"},
        "spec": data,
    }


def rollout(
    name: str, candidate: str = "1.1.0", stable: str = "1.0.0", **analysis: Any
) -> dict[str, Any]:
    replay = analysis.pop("replay", {"enabled": False})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentRollout",
        "metadata": {"name": name},
        "spec": {
            "agent": "acme-dental",
            "stableVersion": stable,
            "candidateVersion": candidate,
            "replay": replay,
            "shadow": {"samplePercent": 25, "replicas": 2},
            "analysis": {
                "interval": "1s",
                "minIterations": 2,
                "failureLimit": 2,
                "inconclusiveLimit": 2,
                "metrics": [
                    {"name": "voice_to_voice_p95_ms", "thresholdRange": {"max": 900}},
                    {"name": "tool_call_agreement", "thresholdRange": {"min": 0.9}},
                ],
                **analysis,
            },
        },
    }


def condition(body: dict[str, Any], kind: str) -> tuple[str, str]:
    for c in (body.get("status") or {}).get("conditions", []):
        if c["type"] == kind:
            return c["status"], c.get("reason", "")
    return ("missing", "")


@pytest_asyncio.fixture
async def operator(
    kube_apiserver: KubeApiServer, kube_crds: list[str], kube_namespace: str
) -> AsyncIterator[Operator]:
    """The operator with the admin's rights; the test drives the API as the admin too."""
    api = admin_client(kube_apiserver)
    op = Operator(api, kube_namespace)
    await op.start()
    try:
        yield op
    finally:
        await op.stop()
        api.close()


def chart_operator_role() -> dict[str, Any]:
    """The operator's ClusterRole exactly as the Helm chart renders it."""
    import helm_python  # noqa: PLC0415 - heavy; only this test needs it

    with helm_python.Chart.load(str(ROOT / "deploy" / "helm" / "trunkline")) as chart:
        rendered = chart.render({}, name="voice", namespace="calls")
    docs = [d for path, text in rendered.items() if not path.endswith("NOTES.txt")
            for d in yaml.safe_load_all(text) if d]  # fmt: skip
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    return dict(role)


@pytest.fixture(scope="module")
def acme() -> AgentSpec:
    return load_agent_spec(SAMPLE)


def is_active(body: dict[str, Any]) -> bool:
    return (body.get("status") or {}).get("active") is True


def is_standby(body: dict[str, Any]) -> bool:
    return condition(body, "Ready") == ("True", "Standby")


async def two_versions(op: Operator, acme: AgentSpec) -> None:
    await op.create("voiceagents", voiceagent(acme, version="1.0.0"))
    await op.wait_for("voiceagents", "acme-dental-1-0-0", is_active, "active")
    await op.create("voiceagents", voiceagent(acme, version="1.1.0", greeting="Hi, Acme here."))
    await op.wait_for("voiceagents", "acme-dental-1-1-0", is_standby, "standby")


async def test_voiceagent_round_trips_and_validates(operator: Operator, acme: AgentSpec) -> None:
    await operator.create("voiceagents", voiceagent(acme, version="1.0.0"))
    body = await operator.wait_for(
        "voiceagents", "acme-dental-1-0-0", lambda b: condition(b, "Ready")[0] == "True", "ready"
    )
    # the API server pruned nothing: what comes back is the same agent
    assert AgentSpec.model_validate(body["spec"]) == acme.model_copy(update={"version": "1.0.0"})
    assert condition(body, "Validated") == ("True", "Valid")
    assert condition(body, "Ready") == ("True", "Active")
    assert body["status"]["activeVersion"] == "1.0.0"
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]


async def test_invalid_voiceagent_is_marked_and_never_active(
    operator: Operator, acme: AgentSpec
) -> None:
    bad = voiceagent(acme, version="2.0.0", model={"sampling": {"max_reply_tokens": 4000}})
    await operator.create("voiceagents", bad)
    body = await operator.wait_for(
        "voiceagents", "acme-dental-2-0-0", lambda b: condition(b, "Validated")[0] == "False",
        "invalid",
    )  # fmt: skip
    assert body["status"]["active"] is False
    assert condition(body, "Ready") == ("False", "Invalid")
    assert (
        "max_reply_tokens must be smaller than token_budget.prompt_tokens"
        in (body["status"]["message"])
    )
    events = await operator.events("acme-dental-2-0-0", until="Invalid")
    assert any(t == "Warning" and r == "Invalid" and "max_reply_tokens" in m
               for t, r, m in events)  # fmt: skip


async def test_api_server_rejects_what_the_schema_forbids(
    operator: Operator, acme: AgentSpec
) -> None:
    typo = voiceagent(acme, version="3.0.0")
    typo["spec"]["voice"] = {"name": "x", "pitch": 2}
    with pytest.raises(ApiException) as unknown:
        await operator.create("voiceagents", typo)
    assert unknown.value.status == 400  # strict field validation (kubectl's default)
    assert 'unknown field "spec.voice.pitch"' in json.loads(unknown.value.body)["message"]
    risky = voiceagent(acme, version="3.0.1")
    risky["spec"]["tools"][0]["risk"] = "extreme"
    with pytest.raises(ApiException) as enum:
        await operator.create("voiceagents", risky)
    assert enum.value.status == 422
    assert "spec.tools[0].risk" in json.loads(enum.value.body)["message"]
    bad = rollout("bad", candidate="1.0.0")
    bad["spec"]["analysis"]["interval"] = "soon"
    with pytest.raises(ApiException) as interval:
        await operator.create("agentrollouts", bad)
    assert "spec.analysis.interval" in json.loads(interval.value.body)["message"]


async def test_healthy_candidate_is_promoted(operator: Operator, acme: AgentSpec) -> None:
    await two_versions(operator, acme)
    operator.metrics.set("1.1.0", "voice_to_voice_p95_ms", 610.0)
    operator.metrics.set("1.1.0", "tool_call_agreement", 0.96)
    await operator.create("agentrollouts", rollout("acme-next"))
    shadow = "acme-dental-1-1-0-shadow"
    body = await operator.wait_phase("acme-next", "Succeeded")
    status = body["status"]
    assert condition(body, "Promoted") == ("True", "AnalysisPassed")
    assert condition(body, "Progressing") == ("False", "Succeeded")
    assert status["iterations"] == 2
    assert status["failedChecks"] == 0
    assert status["activeVersion"] == "1.1.0"
    assert {r["name"]: r["value"] for r in status["results"]} == {
        "voice_to_voice_p95_ms": 610.0, "tool_call_agreement": 0.96}  # fmt: skip
    new = await operator.get("voiceagents", "acme-dental-1-1-0")
    old = await operator.get("voiceagents", "acme-dental-1-0-0")
    assert (new["status"]["active"], old["status"]["active"]) == (True, False)
    assert old["status"]["activeVersion"] == new["status"]["activeVersion"] == "1.1.0"
    deployment = await operator.deployment(shadow)
    assert deployment is not None
    assert deployment.spec.replicas == 0  # shadow runners stop once the candidate is live
    assert deployment.metadata.owner_references[0].name == "acme-next"
    reasons = [r for _, r, _ in await operator.events("acme-next", until="Succeeded")]
    assert reasons == ["Shadowing", "Succeeded"]
    activated = await operator.events("acme-dental-1-1-0", until="Activated")
    assert ("Normal", "Activated") in [(t, r) for t, r, _ in activated]
    await operator.counted("rollout.checks", {(("outcome", "Passed"),): 2})


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
async def test_kubectl_wait_get_and_describe(
    operator: Operator, acme: AgentSpec, kube_apiserver: KubeApiServer
) -> None:
    """What a platform engineer types: wait for Promoted, list with the printer columns, and
    describe with conditions and Events."""
    await two_versions(operator, acme)
    operator.metrics.set("1.1.0", "voice_to_voice_p95_ms", 610.0)
    operator.metrics.set("1.1.0", "tool_call_agreement", 0.96)
    await operator.create("agentrollouts", rollout("acme-kubectl"))
    base = ["kubectl", "--kubeconfig", str(kube_apiserver.kubeconfig), "-n", operator.namespace]

    async def kubectl(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *base, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
        return out.decode()

    waited = await kubectl(
        "wait", "--for=condition=Promoted", "agentrollout/acme-kubectl", f"--timeout={WAIT_S:g}s"
    )
    assert "condition met" in waited
    table = (await kubectl("get", "agentrollouts")).splitlines()
    assert table[0].split() == [
        "NAME", "AGENT", "STABLE", "CANDIDATE", "PHASE", "CHECKS", "FAILED", "PROMOTED", "AGE"
    ]  # fmt: skip
    assert table[1].split()[:8] == [
        "acme-kubectl", "acme-dental", "1.0.0", "1.1.0", "Succeeded", "2", "0", "True"
    ]  # fmt: skip
    agents = (await kubectl("get", "voiceagents")).splitlines()
    assert agents[0].split()[:6] == ["NAME", "AGENT", "VERSION", "ACTIVE", "VALIDATED", "READY"]
    await operator.events("acme-kubectl", until="Succeeded")
    described = await kubectl("describe", "agentrollout", "acme-kubectl")
    assert "Promoted" in described
    assert "AnalysisPassed" in described
    assert "Succeeded: 1.1.0 is active (2 successful checks)" in described


async def test_latency_breach_rolls_back(operator: Operator, acme: AgentSpec) -> None:
    await two_versions(operator, acme)
    operator.metrics.set("1.1.0", "voice_to_voice_p95_ms", 1240.0)  # +400 ms and more
    operator.metrics.set("1.1.0", "tool_call_agreement", 0.96)
    await operator.create("agentrollouts", rollout("acme-slow"))
    body = await operator.wait_phase("acme-slow", "Failed")
    assert condition(body, "Promoted") == ("False", "FailureLimit")
    assert body["status"]["failedChecks"] == 2
    assert body["status"]["iterations"] == 0
    assert "voice_to_voice_p95_ms 1240 outside <= 900" in body["status"]["message"]
    deployment = await operator.deployment("acme-dental-1-1-0-shadow")
    assert deployment is not None
    assert deployment.spec.replicas == 0
    stable = await operator.get("voiceagents", "acme-dental-1-0-0")
    assert stable["status"]["active"] is True
    events = await operator.events("acme-slow", until="FailureLimit")
    assert [r for _, r, _ in events] == ["Shadowing", "CheckFailed", "CheckFailed", "FailureLimit"]
    assert {t for t, r, _ in events if r != "Shadowing"} == {"Warning"}
    # two reads per check: exactly two checks, i.e. rolled back at the second breach
    assert len(operator.metrics.reads) == 4
    await operator.counted("rollout.rollbacks", {(("agent", "acme-dental"),): 1})


async def test_missing_candidate_fails_with_a_clear_message(
    operator: Operator, acme: AgentSpec
) -> None:
    await two_versions(operator, acme)
    await operator.create("agentrollouts", rollout("acme-typo", candidate="1.9.0"))
    body = await operator.wait_phase("acme-typo", "Failed")
    assert "agent acme-dental has no version 1.9.0" in body["status"]["message"]
    assert condition(body, "Promoted") == ("False", "MissingVersion")
    assert await operator.deployment("acme-dental-1-9-0-shadow") is None
    events = await operator.events("acme-typo", until="MissingVersion")
    assert events[-1][:2] == ("Warning", "MissingVersion")


async def test_failed_replay_never_shadows(operator: Operator, acme: AgentSpec) -> None:
    await two_versions(operator, acme)
    operator.replay.pass_rates["1.1.0"] = 0.5
    await operator.create(
        "agentrollouts", rollout("acme-replay", replay={"enabled": True, "minPassRate": 0.9})
    )
    body = await operator.wait_phase("acme-replay", "Failed")
    assert condition(body, "ReplayPassed") == ("False", "Failed")
    assert "pass rate 50%" in body["status"]["message"]
    assert operator.replay.runs == ["1.1.0"]
    assert await operator.deployment("acme-dental-1-1-0-shadow") is None


def trunkline(*args: str) -> int:
    """The ``trunkline`` command, in this process."""
    try:
        cli_main(list(args))
    except SystemExit as done:
        return int(done.code or 0)
    return 0


async def test_inconclusive_pauses_then_promote_by_hand(
    operator: Operator, acme: AgentSpec, kube_apiserver: KubeApiServer
) -> None:
    await two_versions(operator, acme)  # no metric values: every check is inconclusive
    await operator.create("agentrollouts", rollout("acme-quiet"))
    body = await operator.wait_phase("acme-quiet", "Paused")
    assert condition(body, "Paused") == ("True", "TooManyInconclusive")
    assert body["status"]["failedChecks"] == 0
    where = ("-n", operator.namespace, "--kubeconfig", str(kube_apiserver.kubeconfig))
    code = await asyncio.to_thread(
        trunkline, "rollout", "promote", "acme-quiet", *where, "--wait", str(WAIT_S)
    )
    assert code == 0  # --wait: returned once the operator had promoted it
    body = await operator.get("agentrollouts", "acme-quiet")
    assert body["status"]["phase"] == "Succeeded"
    assert condition(body, "Promoted") == ("True", "ManualPromotion")
    assert condition(body, "Paused")[0] == "False"


async def test_abort_mid_analysis_rolls_back(
    operator: Operator, acme: AgentSpec, kube_apiserver: KubeApiServer
) -> None:
    await two_versions(operator, acme)
    operator.metrics.set("1.1.0", "voice_to_voice_p95_ms", 600.0)
    operator.metrics.set("1.1.0", "tool_call_agreement", 0.99)
    await operator.create("agentrollouts", rollout("acme-stop", minIterations=1000))
    await operator.wait_phase("acme-stop", "Shadowing")
    where = ("-n", operator.namespace, "--kubeconfig", str(kube_apiserver.kubeconfig))
    code = await asyncio.to_thread(
        trunkline, "rollout", "abort", "acme-stop", *where, "--wait", str(WAIT_S)
    )
    assert code == 0
    body = await operator.get("agentrollouts", "acme-stop")
    assert condition(body, "Promoted") == ("False", "Aborted")
    deployment = await operator.deployment("acme-dental-1-1-0-shadow")
    assert deployment is not None
    assert deployment.spec.replicas == 0
    assert (await operator.get("voiceagents", "acme-dental-1-0-0"))["status"]["active"] is True


async def test_deleted_mid_analysis_removes_its_shadow(operator: Operator, acme: AgentSpec) -> None:
    await two_versions(operator, acme)
    operator.metrics.set("1.1.0", "voice_to_voice_p95_ms", 600.0)
    operator.metrics.set("1.1.0", "tool_call_agreement", 0.99)
    await operator.create("agentrollouts", rollout("acme-gone", minIterations=1000))
    await operator.wait_phase("acme-gone", "Shadowing")
    shadow = "acme-dental-1-1-0-shadow"
    assert (await operator.deployment(shadow)) is not None
    shadows = operator.shadows
    assert isinstance(shadows, RecordingShadows)
    # the gateways mirror 25 % of the calls to the candidate and to its baseline (stable)
    assert shadows.active == {("acme-dental", "1.1.0"): 25.0, ("acme-dental", "1.0.0"): 25.0}
    assert (await operator.deployment("acme-dental-1-0-0-shadow")) is not None
    await asyncio.to_thread(
        operator.custom.delete_namespaced_custom_object, GROUP, VERSION, operator.namespace,
        "agentrollouts", "acme-gone",
    )  # fmt: skip
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while await operator.deployment(shadow) is not None:
        assert asyncio.get_running_loop().time() < deadline, "shadow deployment not removed"
        await asyncio.sleep(0.1)
    # the finalizer is released right after the cleanup: then the rollout is gone
    status = 200
    while status != 404:
        assert asyncio.get_running_loop().time() < deadline, "the rollout was never deleted"
        try:
            await operator.get("agentrollouts", "acme-gone")
        except ApiException as exc:
            status = exc.status
        await asyncio.sleep(0.1)
    assert shadows.active == {}  # no longer mirrored, the consumers removed
    assert shadows.log[-2:] == [("stop", "acme-dental", "1.1.0"), ("stop", "acme-dental", "1.0.0")]
    assert await operator.deployment("acme-dental-1-0-0-shadow") is None


async def test_chart_rbac_is_enough_and_no_more(
    kube_apiserver: KubeApiServer, kube_crds: list[str], kube_namespace: str, acme: AgentSpec
) -> None:
    """The operator runs as an unprivileged user bound to the chart's ClusterRole only."""
    admin = admin_client(kube_apiserver)
    rbac = client.RbacAuthorizationV1Api(admin)
    role = chart_operator_role()
    name = f"trunkline-operator-{kube_namespace}"
    await asyncio.to_thread(rbac.create_cluster_role, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name}, "rules": role["rules"]})  # fmt: skip
    await asyncio.to_thread(rbac.create_cluster_role_binding, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "User", "name": "envtest-user",
                      "apiGroup": "rbac.authorization.k8s.io"}]})  # fmt: skip
    user = config.new_client_from_config(config_file=str(kube_apiserver.user_kubeconfig))
    restricted = Operator(user, kube_namespace)
    driver = Operator(admin, kube_namespace)  # the test's own calls, as the admin
    try:
        # the user can do what the role grants and not more
        with pytest.raises(ApiException) as denied:
            await asyncio.to_thread(client.CoreV1Api(user).list_namespaced_secret, kube_namespace)
        assert denied.value.status == 403
        await restricted.start()
        await two_versions(driver, acme)
        restricted.metrics.set("1.1.0", "voice_to_voice_p95_ms", 500.0)
        restricted.metrics.set("1.1.0", "tool_call_agreement", 1.0)
        await driver.create("agentrollouts", rollout("acme-rbac"))
        body = await driver.wait_phase("acme-rbac", "Succeeded")
        assert condition(body, "Promoted")[0] == "True"
        reasons = [r for _, r, _ in await driver.events("acme-rbac", until="Succeeded")]
        assert reasons == ["Shadowing", "Succeeded"]
        back = rollout("acme-rbac-2", candidate="1.0.0", stable="1.1.0", minIterations=1000)
        await driver.create("agentrollouts", back)
        await driver.wait_phase("acme-rbac-2", "Shadowing")
        await asyncio.to_thread(
            driver.custom.delete_namespaced_custom_object, GROUP, VERSION, kube_namespace,
            "agentrollouts", "acme-rbac-2",
        )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while await driver.deployment("acme-dental-1-0-0-shadow") is not None:
            assert asyncio.get_running_loop().time() < deadline, "shadow not deleted"
            await asyncio.sleep(0.1)
    finally:
        await restricted.stop()
        await asyncio.to_thread(rbac.delete_cluster_role_binding, name)
        await asyncio.to_thread(rbac.delete_cluster_role, name)
        user.close()
        admin.close()
