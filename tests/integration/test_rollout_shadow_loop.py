"""The whole rollout loop on real infrastructure, minus the voice: a real Kubernetes API server
(envtest), the real operator (kopf in its thread, NATS shadow registry, metrics from the
shadow results), real NATS JetStream, the gateway's real mirror and agent source (VoiceAgents
watched from the API), and the candidate's shadow runner started from the Deployment the
operator wrote (as a kubelet would: its env, its agent spec), with in-memory context and LLM
peers. Live turns are fed to the mirror as the gateway's event sink feeds it.

1. A candidate slowed by 400 ms (``SHADOW_INJECT_DELAY_MS``) fails its analysis and is rolled
   back: Failed, Promoted=False, a Warning Event, its shadow consumer and mirror entry gone,
   the stable version still the one the gateway serves. The reaction time is measured.
2. A healthy candidate is promoted, and the gateway's agent source serves it to new calls.
3. A VoiceAgent that fails validation (Validated=False) reaches none of the services that read
   agents from the API: gateway, context, llm warm-up, shadow runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from opentelemetry import trace

from trunkline.agents import AgentSpecError, parse_agent_spec
from trunkline.agents.cluster import ClusterAgents, api_client
from trunkline.bus import Bus
from trunkline.bus.shadow import ShadowCandidates
from trunkline.context.agents import Agents as ContextAgents
from trunkline.devservers import NatsServer
from trunkline.devservers.kube import KubeApiServer
from trunkline.gateway.agent_source import AgentSource
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.fakes import FakeContext, FakeLanguageModel
from trunkline.gateway.peers.base import ContextSource, PeerEnv
from trunkline.gateway.peers.types import ContextResult
from trunkline.gateway.profile import profile_of
from trunkline.gateway.settings import GatewaySettings
from trunkline.gateway.shadow.__main__ import candidate_spec
from trunkline.gateway.shadow.mirror import ShadowMirror, start_mirror
from trunkline.gateway.shadow.runner import DelayedContext, ShadowPeers, ShadowRunner
from trunkline.gateway.shadow.settings import ShadowSettings
from trunkline.llm.settings import LlmSettings
from trunkline.llm.warmup import agents_to_warm
from trunkline.proto.common.v1 import call_pb2, timing_pb2, tool_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.rollout.cluster import KubeCluster
from trunkline.rollout.controller import Controller
from trunkline.rollout.manifests import ShadowRunner as RunnerManifest
from trunkline.rollout.replay import FixedReplay
from trunkline.rollout.runner import OperatorThread
from trunkline.rollout.shadows import BusLink, NatsShadows, ShadowResultsSource
from trunkline.testing.kube_fixtures import admin_client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "trunkline.dev", "v1alpha1"
WAIT_S = 90.0
INTERVAL_S = 3.0
INJECTED_MS = 400


class Loop:
    def __init__(self, api: Any, namespace: str, nats_url: str, kubeconfig: Path) -> None:
        self.api = api
        self.namespace = namespace
        self.agent = f"loop-{uuid.uuid4().hex[:6]}"
        self.link = BusLink(nats_url)
        self.nats_url = nats_url
        self.controller = Controller(
            cluster=KubeCluster(api),
            metrics_source=ShadowResultsSource(self.link, min_turns=2),
            replay_gate=FixedReplay(),
            runner=RunnerManifest(image="trunkline:test", nats_url=nats_url),
            shadows=NatsShadows(self.link),
        )
        self.thread = OperatorThread(
            self.controller, api, namespaces=[namespace], on_exit=self.link.close
        )
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.gateway_agents = AgentSource(
            GatewaySettings(
                agents_source="cluster", kubeconfig=kubeconfig, agents_namespace=namespace
            )
        )
        self.tasks: list[asyncio.Task[Any]] = []

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

    async def until(self, check: Callable[[], Any], what: str) -> Any:
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            with contextlib.suppress(ApiException):
                value = await check()
                if value:
                    return value
            assert asyncio.get_running_loop().time() < deadline, f"not {what} in {WAIT_S}s"
            await asyncio.sleep(0.05)

    async def phase(self, name: str, phase: str) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            body = await self.get("agentrollouts", name)
            return body if (body.get("status") or {}).get("phase") == phase else None

        found: dict[str, Any] = await self.until(check, f"{name} {phase}")
        return found

    async def events(self, name: str) -> list[tuple[str, str]]:
        listed = await asyncio.to_thread(
            self.core.list_namespaced_event, self.namespace,
            field_selector=f"involvedObject.name={name}",
        )  # fmt: skip
        return [(e.type, e.reason) for e in sorted(listed.items, key=lambda e: e.metadata.name)]

    async def events_until(self, name: str, reason: str) -> list[tuple[str, str]] | None:
        """The object's Events once one with ``reason`` is there (posted after the status)."""
        found = await self.events(name)
        return found if any(r == reason for _, r in found) else None

    async def start_pod(self, version: str, delay_ms: int, bus: Bus) -> ShadowRunner:
        """What a kubelet does with the operator's shadow Deployment: its env into the runner's
        settings, the agent spec from there; the peers are in memory."""
        name = f"{self.agent}-{version.replace('.', '-')}-shadow"

        async def deployment() -> client.V1Deployment:
            return await asyncio.to_thread(
                self.apps.read_namespaced_deployment, name, self.namespace
            )

        found = await self.until(deployment, f"deployment {name}")
        env = {e.name: e.value for e in found.spec.template.spec.containers[0].env}
        assert env["SHADOW_TOOLS_DRY_RUN"] == "true"
        settings = ShadowSettings.model_validate(
            {k.removeprefix("SHADOW_").lower(): v for k, v in env.items()}
            | {"inject_delay_ms": delay_ms}
        )
        spec = parse_agent_spec(settings.agent_spec, "SHADOW_AGENT_SPEC")
        assert (spec.name, spec.version) == (self.agent, version)
        peer_env = PeerEnv(SystemClock(), trace.get_tracer("test"))
        llm = FakeLanguageModel(peer_env, lambda _t: "Let me check that for you.")
        context: ContextSource = FakeContext(
            peer_env, ContextResult(block="Acme Dental.", confidence=0.8)
        )
        if settings.inject_delay_ms:
            context = DelayedContext(peer_env, context, settings.inject_delay_ms / 1000)
        runner = ShadowRunner(
            bus, profile_of(spec), ShadowPeers(context, llm), clock=SystemClock(),
            tracer=trace.get_tracer("test"),
        )  # fmt: skip
        assert runner.consumer.durable == settings.durable
        self.tasks.append(asyncio.create_task(runner.run()))
        return runner


def voiceagent(agent: str, version: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "agents" / "acme-dental.yaml").read_text())
    data.update(name=agent, version=version)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VoiceAgent",
        "metadata": {"name": f"{agent}-{version.replace('.', '-')}"},
        "spec": data,
    }


def rollout(agent: str, name: str, candidate: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentRollout",
        "metadata": {"name": name},
        "spec": {
            "agent": agent,
            "stableVersion": "1.0.0",
            "candidateVersion": candidate,
            "replay": {"enabled": False},
            "shadow": {"samplePercent": 100, "replicas": 1},
            "analysis": {
                "interval": f"{INTERVAL_S:g}s",
                "minIterations": 2,
                "failureLimit": 2,
                "inconclusiveLimit": 6,
                "metrics": [
                    {"name": "reply_time_delta_ms", "thresholdRange": {"max": 200}},
                    {"name": "tool_call_agreement", "thresholdRange": {"min": 0.9}},
                ],
            },
        },
    }


def live_turn(agent: str, call_id: str, index: int) -> events_pb2.TurnCompleted:
    turn = events_pb2.TurnCompleted(
        event_id=str(uuid.uuid4()),
        context=call_pb2.CallContext(
            tenant_id="acme", call_id=call_id, turn_index=index,
            agent=call_pb2.AgentRef(name=agent, version="1.0.0"),
        ),
        caller_transcript=f"What is the balance on account 44172{index % 10}?",
        agent_reply="One moment.",
        stt_confidence=0.9,
        stages=[timing_pb2.StageTiming(stage="context.resolve")],
        # the spec's lookup_account is call_when_heard: the live gateway looked the account up
        tool_calls=[
            events_pb2.ToolCallRecord(
                call=tool_pb2.ToolCall(
                    id="heard_1_1",
                    name="lookup_account",
                    arguments_json=f'{{"account_id": "44172{index % 10}"}}',
                ),
                status=events_pb2.TOOL_CALL_STATUS_SUCCEEDED,
            )
        ],
    )  # fmt: skip
    turn.response_time.FromMilliseconds(500)
    return turn


async def feed(mirror: ShadowMirror, agent: str, sent: list[float]) -> None:
    """Live calls, one turn every 100 ms, as the gateway's sink mirrors them."""
    index = 0
    while True:
        index += 1
        if await mirror.turn(live_turn(agent, f"CA{index // 4}-{uuid.uuid4().hex[:4]}", index)):
            sent.append(time.monotonic())
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def loop(
    kube_apiserver: KubeApiServer, kube_crds: list[str], kube_namespace: str,
    nats_server: NatsServer,
) -> AsyncIterator[Loop]:  # fmt: skip
    api = admin_client(kube_apiserver)
    setup = Loop(api, kube_namespace, nats_server.url, kube_apiserver.kubeconfig)
    setup.thread.start()
    assert await asyncio.to_thread(setup.thread.wait_ready, WAIT_S), setup.thread.error
    try:
        yield setup
    finally:
        for task in setup.tasks:
            task.cancel()
        await asyncio.gather(*setup.tasks, return_exceptions=True)
        setup.gateway_agents.close()
        assert await asyncio.to_thread(setup.thread.stop, 30.0)
        api.close()


async def test_slow_candidate_rolls_back_and_a_healthy_one_is_promoted(
    loop: Loop, nats_server: NatsServer
) -> None:
    agent = loop.agent
    bus = await Bus.connect(nats_server.url, name="loop-test")
    mirror = await start_mirror(bus, loop.tasks)
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        await loop.create("voiceagents", voiceagent(agent, version))
    profiles = loop.gateway_agents.profiles
    await loop.gateway_agents.start()

    async def serving(version: str) -> bool:
        return agent in profiles and profiles[agent].version == version

    await loop.until(lambda: serving("1.0.0"), "1.0.0 served by the gateway")
    sent: list[float] = []
    loop.tasks.append(asyncio.create_task(feed(mirror, agent, sent)))

    # 1. +400 ms: rolled back
    await loop.create("agentrollouts", rollout(agent, "slow", "1.1.0"))
    started = time.monotonic()
    slow = await loop.start_pod("1.1.0", INJECTED_MS, bus)

    async def first_result() -> bool:
        return slow.answered > 0

    await loop.until(first_result, "a shadow result of 1.1.0")
    breach = time.monotonic()  # the candidate's first slow turn is stored: the breach begins
    body = await loop.phase("slow", "Failed")
    failed = time.monotonic()
    status = body["status"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Promoted"] == ("False", "FailureLimit")
    assert status["failedChecks"] == 2
    delta = next(r for r in status["results"] if r["name"] == "reply_time_delta_ms")
    assert delta["outcome"] == "Failed"
    assert delta["value"] > INJECTED_MS - 50, delta
    events = await loop.until(lambda: loop.events_until("slow", "FailureLimit"), "the Event")
    assert ("Warning", "FailureLimit") in events
    assert [r for _, r in events].count("CheckFailed") == 2
    candidates = ShadowCandidates(bus)
    assert not await candidates.consumer_exists(agent, "1.1.0")
    assert all(c.version != "1.1.0" for c in await candidates.listed())
    await loop.until(lambda: _async(not mirror.targets.of(agent)), "mirror entry removed")
    stable = await loop.get("voiceagents", f"{agent}-1-0-0")
    assert stable["status"]["active"] is True
    assert profiles[agent].version == "1.0.0"
    reaction = failed - breach
    print(
        f"\nrollback: {reaction:.2f} s after the first slow shadow result "
        f"({reaction / INTERVAL_S:.2f} intervals of {INTERVAL_S:g} s); "
        f"{failed - started:.2f} s after the rollout was created; "
        f"{slow.answered} slow shadow turns"
    )
    assert reaction <= 2 * INTERVAL_S + 1.0, reaction  # 2 intervals (+1 s: 1 s timestamps)

    # 2. a healthy candidate is promoted and new calls get it
    await loop.create("agentrollouts", rollout(agent, "good", "1.2.0"))
    good = await loop.start_pod("1.2.0", 0, bus)
    body = await loop.phase("good", "Succeeded")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in body["status"]["conditions"]}
    assert conditions["Promoted"] == ("True", "AnalysisPassed")
    assert good.answered >= 3
    await loop.until(lambda: serving("1.2.0"), "1.2.0 served by the gateway")
    assert not await candidates.consumer_exists(agent, "1.2.0")
    print(json.dumps({"slow_answered": slow.answered, "good_answered": good.answered,
                      "turns_sent": len(sent)}))  # fmt: skip
    await bus.close()


async def _async(value: bool) -> bool:
    return value


async def test_an_invalid_voiceagent_never_reaches_the_services(loop: Loop) -> None:
    agent, other = loop.agent, f"{loop.agent}-b"
    bad_sampling = {"sampling": {"max_reply_tokens": 4000}}  # passes the CRD, not the spec
    await loop.create("voiceagents", voiceagent(agent, "1.0.0"))
    invalid = voiceagent(agent, "2.0.0")
    invalid["spec"]["model"] = bad_sampling
    await loop.create("voiceagents", invalid)
    lone = voiceagent(other, "1.0.0")
    lone["spec"]["model"] = bad_sampling
    await loop.create("voiceagents", lone)

    async def marked(name: str) -> bool:
        conditions = (await loop.get("voiceagents", name)).get("status", {}).get("conditions", [])
        return any(c["type"] == "Validated" and c["status"] == "False" for c in conditions)

    await loop.until(lambda: marked(f"{agent}-2-0-0"), "2.0.0 Validated=False")
    await loop.until(lambda: marked(f"{other}-1-0-0"), f"{other} Validated=False")
    body = await loop.get("voiceagents", f"{agent}-2-0-0")
    assert "max_reply_tokens" in body["status"]["message"]

    # the gateway, the context service, the llm warm-up and a shadow runner all read the API
    kubeconfig, namespace = loop.gateway_agents.settings.kubeconfig, loop.namespace
    profiles = await loop.gateway_agents.start()
    await loop.until(lambda: _async(agent in profiles), f"{agent} served")
    assert profiles[agent].version == "1.0.0"
    assert other not in profiles
    source = ClusterAgents(api_client(kubeconfig), namespace)
    context_agents = await asyncio.to_thread(ContextAgents.watch_cluster, source)
    try:
        assert {n: s.version for n, s in context_agents.specs.items()
                if n in (agent, other)} == {agent: "1.0.0"}  # fmt: skip
    finally:
        context_agents.close()
    warmed = await agents_to_warm(
        LlmSettings(agents_source="cluster", kubeconfig=kubeconfig, agents_namespace=namespace)
    )
    assert {(s.name, s.version) for s in warmed if s.name in (agent, other)} == {(agent, "1.0.0")}
    shadow = ShadowSettings(
        agent=agent, version="2.0.0", agents_source="cluster", kubeconfig=kubeconfig,
        agents_namespace=namespace,
    )  # fmt: skip
    with pytest.raises(AgentSpecError, match="no validated VoiceAgent"):
        await candidate_spec(shadow)
    # and a rollout to it fails at once, saying why
    await loop.create("agentrollouts", rollout(agent, "to-invalid", "2.0.0"))
    failed = await loop.phase("to-invalid", "Failed")
    assert "is not valid" in failed["status"]["message"]
    assert "max_reply_tokens" in failed["status"]["message"]
