"""A rollout on the real local stack: ``trunkline stack up`` with a Kubernetes API (envtest), so
the stack starts the rollout operator; the gateway serves the VoiceAgents' active versions
(``GATEWAY_AGENTS_SOURCE=cluster``); simulated phone calls over the Twilio media-stream protocol.

The operator writes each candidate's shadow Deployment; with no kubelet here the test runs what
the pod would: ``python -m trunkline.gateway.shadow`` with the Deployment's environment (the
candidate's spec included), pointed at the stack's context and llm services.

1. Candidate 1.1.0 with +400 ms on every turn (``SHADOW_INJECT_DELAY_MS``) is shadowed on the
   calls, fails ``reply_time_delta_ms`` and is rolled back: Failed, Promoted=False, a Warning
   Event, its consumer gone; every turn any caller heard came from 1.0.0. The reaction (first
   slow shadow result stored -> Failed) is printed in analysis intervals.
2. Candidate 1.2.0 (a new greeting, no delay) passes, is promoted, and the next call is
   answered by 1.2.0 with its greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from trunkline.bus import Bus
from trunkline.bus.shadow import ShadowCandidates, read_results
from trunkline.cli.demo import DEMO_OPTIONS, DemoCall, component_url, place_call
from trunkline.cli.knowledge import ingest
from trunkline.cli.record import StackRecord, load
from trunkline.devservers.kube import KubeApiServer
from trunkline.proto.events.v1 import events_pb2
from trunkline.testing.kube_fixtures import admin_client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"
AGENT, TENANT = "acme-dental", "acme"
GROUP, VERSION = "trunkline.dev", "v1alpha1"
INTERVAL_S = 15.0
WINDOW_S = 90.0
MIN_TURNS = 2
INJECTED_MS = 400
NEW_GREETING = "Thanks for calling Acme Dental, Ava speaking. How can I help?"
SCENARIO = """
turns:
  - say: Hi, when are you open on Saturday?
  - say: Please look up account number four four one, seven two nine.
  - say: How much does teeth whitening cost?
  - say: Great, thank you. Goodbye!
"""


def stack_cli(run_dir: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "trunkline.cli.main", "stack", *args, "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=420, check=False, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, f"stack {args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Cluster:
    def __init__(self, api: Any, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)

    async def create(self, plural: str, body: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.create_namespaced_custom_object, GROUP, VERSION, self.namespace,
            plural, body,
        )  # fmt: skip

    async def get(self, plural: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = await asyncio.to_thread(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace, plural, name
        )
        return found

    async def events(self, name: str) -> list[tuple[str, str, str]]:
        listed = await asyncio.to_thread(
            self.core.list_namespaced_event, self.namespace,
            field_selector=f"involvedObject.name={name}",
        )  # fmt: skip
        items = sorted(listed.items, key=lambda e: e.metadata.name)
        return [(e.type, e.reason, e.message) for e in items]

    async def deployment_env(self, name: str) -> dict[str, str]:
        found = await asyncio.to_thread(self.apps.read_namespaced_deployment, name, self.namespace)
        return {e.name: e.value for e in found.spec.template.spec.containers[0].env}

    async def phase(self, name: str) -> str:
        with contextlib.suppress(ApiException):
            return str(((await self.get("agentrollouts", name)).get("status") or {}).get("phase"))
        return ""


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(ApiException):
            value = await check()
            if value:
                return value
        assert time.monotonic() < deadline, f"not {what} within {timeout_s:g}s"
        await asyncio.sleep(0.2)


def voiceagent(spec: dict[str, Any], version: str, **changes: Any) -> dict[str, Any]:
    data = {**spec, "version": version, **changes}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VoiceAgent",
        "metadata": {"name": f"{AGENT}-{version.replace('.', '-')}"},
        "spec": data,
    }


def rollout(name: str, candidate: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentRollout",
        "metadata": {"name": name},
        "spec": {
            "agent": AGENT,
            "stableVersion": "1.0.0",
            "candidateVersion": candidate,
            "replay": {"enabled": False},
            "shadow": {"samplePercent": 100, "replicas": 1},
            "analysis": {
                "interval": f"{INTERVAL_S:g}s",
                "minIterations": 2,
                "failureLimit": 2,
                "inconclusiveLimit": 30,
                "deadline": "15m",
                "metrics": [{"name": "reply_time_delta_ms", "thresholdRange": {"max": 250}}],
            },
        },
    }


@pytest.fixture
def stack(
    kube_apiserver: KubeApiServer, kube_crds: list[str], kube_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StackRecord]:  # fmt: skip
    run_dir = tmp_path_factory.mktemp("rollout") / "run"
    kubeconfig = str(kube_apiserver.kubeconfig)
    env = {
        "TRUNKLINE_STACK_AGENTS_DIR": str(AGENTS),
        "KUBECONFIG": kubeconfig,
        "ROLLOUT_NAMESPACES": json.dumps([kube_namespace]),
        "ROLLOUT_SHADOW_MIN_TURNS": str(MIN_TURNS),
        "ROLLOUT_SHADOW_WINDOW_S": str(WINDOW_S),  # shadow turns trickle in on 2 busy cores
        "GATEWAY_AGENTS_SOURCE": "cluster",
        "GATEWAY_KUBECONFIG": kubeconfig,
        "GATEWAY_AGENTS_NAMESPACE": kube_namespace,
    }
    try:
        out = stack_cli(run_dir, "up", env=env)
        assert "rollout" in out
        record = load(run_dir)
        assert record is not None
        assert record.get("rollout") is not None, out
        yield record
    finally:
        if (run_dir / "stack.json").exists():
            stack_cli(run_dir, "down", env=env)


def start_shadow_pod(
    record: StackRecord, env: dict[str, str], delay_ms: int
) -> subprocess.Popen[bytes]:
    """What a kubelet would run for the operator's shadow Deployment."""
    log = Path(record.run_dir) / f"shadow-{env['SHADOW_VERSION']}.log"  # appended per start
    pod_env = {
        **os.environ, **env,
        "SHADOW_CONTEXT_ADDR": component_url(record, "context"),
        "SHADOW_LLM_ADDR": component_url(record, "llm"),
        "SHADOW_GRPC_PORT": "0",
        "SHADOW_INJECT_DELAY_MS": str(delay_ms),
        "SHADOW_LOG_JSON": "false",
    }  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "trunkline.gateway.shadow"], env=pod_env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def versions_heard(call: DemoCall) -> set[str]:
    return {e["context"]["agent"]["version"] for e in call.events}


async def calls_until(
    record: StackRecord, scenario: Path, done: Callable[[], Awaitable[bool]], limit: int
) -> list[DemoCall]:
    """Simulated calls, one after another, until ``done`` (checked after each) or ``limit``."""
    calls = []
    for _ in range(limit):
        call, _caller = await place_call(record, TENANT, AGENT, scenario, options=DEMO_OPTIONS)
        calls.append(call)
        if await done():
            break
    return calls


@dataclass
class Run:
    stack: StackRecord
    cluster: Cluster
    bus: Bus
    scenario: Path
    pods: list[subprocess.Popen[bytes]] = field(default_factory=list)

    async def shadow_pods(self, rollout_name: str, version: str, delay_ms: int) -> None:
        """The candidate's runner, and its baseline's (the stable version in shadow: the
        analysis compares the two on the same turns, under the same load)."""

        async def shadowing() -> bool:
            return await self.cluster.phase(rollout_name) in ("Shadowing", "Failed", "Succeeded")

        await until(shadowing, f"{rollout_name} shadowing")
        for shadowed, delay in ((version, delay_ms), ("1.0.0", 0)):
            name = f"{AGENT}-{shadowed.replace('.', '-')}-shadow"
            env = await self.cluster.deployment_env(name)
            self.pods.append(start_shadow_pod(self.stack, env, delay))

    def stop_pods(self) -> None:
        while self.pods:
            stop(self.pods.pop())

    async def results(self, version: str) -> list[events_pb2.ShadowTurnResult]:
        since = datetime.now(UTC) - timedelta(hours=1)
        raw = await read_results(self.bus, AGENT, version, since)
        return [events_pb2.ShadowTurnResult.FromString(r) for r in raw]


def paired_deltas_ms(
    results: list[events_pb2.ShadowTurnResult], baseline: list[events_pb2.ShadowTurnResult]
) -> list[int]:
    """Candidate minus baseline reply time per live turn both answered (what the analysis
    judges), in ms."""
    base = {b.live_event_id: b for b in baseline if not b.failed}
    return sorted(
        round(1000 * (r.shadow_reply_time.ToTimedelta()
                      - base[r.live_event_id].shadow_reply_time.ToTimedelta()).total_seconds())
        for r in results if not r.failed and r.live_event_id in base
    )  # fmt: skip


async def slow_candidate_rolls_back(run: Run) -> None:
    cluster = run.cluster
    await cluster.create("agentrollouts", rollout("slow", "1.1.0"))
    await run.shadow_pods("slow", "1.1.0", INJECTED_MS)
    failed_at: list[float] = []

    async def slow_failed() -> bool:
        if await cluster.phase("slow") == "Failed":
            failed_at.append(time.monotonic())
            return True
        return False

    calls = await calls_until(run.stack, run.scenario, slow_failed, limit=8)
    if not failed_at:
        await until(slow_failed, "slow Failed", timeout_s=3 * INTERVAL_S)
    seen_wall = datetime.now(UTC) - timedelta(seconds=time.monotonic() - failed_at[0])
    body = await cluster.get("agentrollouts", "slow")
    # when the operator failed it: the deciding check's time, not when this test looked (it
    # looks between calls, which take a minute here); the end of that second, an upper bound
    checked = datetime.strptime(body["status"]["lastCheckTime"], "%Y-%m-%dT%H:%M:%SZ")
    failed_wall = checked.replace(tzinfo=UTC) + timedelta(seconds=1)
    conditions = {c["type"]: (c["status"], c["reason"]) for c in body["status"]["conditions"]}
    assert conditions["Promoted"] == ("False", "FailureLimit"), body["status"]
    (delta,) = [r for r in body["status"]["results"] if r["name"] == "reply_time_delta_ms"]
    assert delta["value"] > INJECTED_MS - 150, delta
    events = await cluster.events("slow")
    assert ("Warning", "FailureLimit") in [(t, r) for t, r, _ in events]
    assert not await ShadowCandidates(run.bus).consumer_exists(AGENT, "1.1.0")
    # nobody heard the candidate: every turn of every call came from 1.0.0
    heard = [versions_heard(c) for c in calls]
    assert set().union(*heard) == {"1.0.0"}, heard
    results = await run.results("1.1.0")
    assert results, "no shadow results of 1.1.0"
    assert all(r.context.shadow and r.live_agent.version == "1.0.0" for r in results)
    stored = sorted(r.occurred_at.ToDatetime(tzinfo=UTC) for r in results)
    first, enough = stored[0], stored[MIN_TURNS - 1]  # a check needs MIN_TURNS in its window
    reaction = (failed_wall - first).total_seconds()
    measurable = (failed_wall - enough).total_seconds()
    print(
        f"\nslow candidate: Failed {reaction:.1f} s after its first shadow result "
        f"({reaction / INTERVAL_S:.2f} intervals of {INTERVAL_S:g} s), {measurable:.1f} s "
        f"({measurable / INTERVAL_S:.2f} intervals) after result {MIN_TURNS}; {len(calls)} calls, "
        f"{len(results)} shadow turns (the test saw Failed "
        f"{(seen_wall - failed_wall).total_seconds():.1f} s after it), deltas to baseline ms "
        f"{paired_deltas_ms(results, await run.results('1.0.0'))}"
    )


async def healthy_candidate_is_promoted(run: Run) -> None:
    cluster = run.cluster
    await cluster.create("agentrollouts", rollout("good", "1.2.0"))
    await run.shadow_pods("good", "1.2.0", 0)

    async def good_done() -> bool:
        return await cluster.phase("good") in ("Succeeded", "Failed")

    calls = await calls_until(run.stack, run.scenario, good_done, limit=8)
    await until(good_done, "good decided", timeout_s=3 * INTERVAL_S)
    body = await cluster.get("agentrollouts", "good")
    deltas = paired_deltas_ms(await run.results("1.2.0"), await run.results("1.0.0"))
    print(f"healthy candidate: {body['status'].get('message')}; deltas to baseline ms {deltas}")
    assert body["status"]["phase"] == "Succeeded", body["status"]
    # each call keeps the version it started with: 1.0.0 until the promotion, then 1.2.0
    # (a call may start between the promotion and the test's look at the phase)
    heard = [sorted(versions_heard(c)) for c in calls]
    assert all(len(v) <= 1 for v in heard), heard
    order = [v[0] for v in heard if v]
    assert order == sorted(order), heard  # never back to 1.0.0 once 1.2.0 answered
    assert order[0] == "1.0.0", heard
    after, _ = await place_call(run.stack, TENANT, AGENT, run.scenario, options=DEMO_OPTIONS)
    assert versions_heard(after) == {"1.2.0"}  # new calls get the promoted version
    greetings = [e for e in after.events if e.get("replySource") == "REPLY_SOURCE_GREETING"]
    assert all(e["agentReply"] == NEW_GREETING for e in greetings), greetings


async def test_slow_candidate_rolled_back_then_a_healthy_one_promoted(
    stack: StackRecord, kube_apiserver: KubeApiServer, kube_namespace: str, tmp_path: Path
) -> None:
    api = admin_client(kube_apiserver)
    cluster = Cluster(api, kube_namespace)
    scenario = tmp_path / "call.yaml"
    scenario.write_text(SCENARIO)
    rendered = yaml.safe_load((Path(stack.agents_dir) / f"{AGENT}.yaml").read_text())
    await cluster.create("voiceagents", voiceagent(rendered, "1.0.0"))
    await cluster.create("voiceagents", voiceagent(rendered, "1.1.0"))
    await cluster.create("voiceagents", voiceagent(rendered, "1.2.0", greeting=NEW_GREETING))

    async def stable_active() -> bool:
        found = await cluster.get("voiceagents", f"{AGENT}-1-0-0")
        return bool((found.get("status") or {}).get("active"))

    await until(stable_active, "1.0.0 active")
    summary = await ingest(component_url(stack, "context"), TENANT, AGENTS / AGENT / "knowledge")
    assert not summary.failed
    run = Run(stack, cluster, await Bus.connect(component_url(stack, "nats")), scenario)
    try:
        await slow_candidate_rolls_back(run)
        run.stop_pods()
        await healthy_candidate_is_promoted(run)
    finally:
        run.stop_pods()
        await run.bus.close()
        api.close()
