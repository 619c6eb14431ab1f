"""The replay gate of ``python -m trunkline.rollout``, wired from its settings: scenario files
(``ROLLOUT_REPLAY_SCENARIOS``) replayed through each candidate by the gateways' replay
responder over a real NATS server (the gateway's own ``ReplayResponder``, its turn pipeline
headless over fake context and LLM peers), scored by the conversation eval against the
agents folder. A candidate that states a wrong fact fails its replay: the rollout is Failed,
never shadowed, never promoted. One that answers right goes on to its shadow phase."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kubernetes import client
from opentelemetry.sdk.trace import TracerProvider

from trunkline.agents import load_agent_spec
from trunkline.bus import Bus
from trunkline.devservers import NatsServer, free_port
from trunkline.devservers.kube import KubeApiServer
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.fakes import FakeContext, FakeLanguageModel
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.types import ContextResult
from trunkline.gateway.profile import AgentProfile
from trunkline.gateway.shadow.replay import ReplayResponder, start_replays
from trunkline.gateway.shadow.runner import ShadowPeers
from trunkline.runtime import wait_healthy
from trunkline.testing.kube_fixtures import admin_client

KNOWN = ContextResult(block="Acme Dental, 120 Main Street.", confidence=0.8)
"""What the context service answers: the agent's own domain (nothing is deflected)."""
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GROUP, VERSION = "trunkline.dev", "v1alpha1"
WAIT_S = 90.0
SCENARIOS = """
agent: acme-dental
scenarios:
  - name: monday-open
    turns:
      - say: What time do you open on Monday morning?
        must_contain: [8 am]
  - name: sunday-closed
    turns:
      - say: Are you open on Sunday?
        must_contain: [[closed, not open]]
"""
ANSWERS = {
    # 1.1.0 gets Monday wrong (9 am is Saturday's opening: the guard cannot tell)
    "1.1.0": {"monday": "We open at 9 am on Monday.", "sunday": "Sorry, we are closed on Sunday."},
    "1.2.0": {"monday": "We open at 8 am on Monday.", "sunday": "Sorry, we are closed on Sunday."},
}


class CandidateLlms:
    """The LLM peer per candidate profile: each version's scripted answers; records seeds."""

    def __init__(self) -> None:
        self.env = PeerEnv(SystemClock(), TracerProvider().get_tracer("test"))
        self.seeds: dict[str, int | None] = {}

    def __call__(self, profile: AgentProfile) -> ShadowPeers:
        self.seeds[profile.version] = profile.model.sampling.seed
        answers = ANSWERS[profile.version]

        def reply(text: str) -> str:
            return answers["monday" if "monday" in text.lower() else "sunday"]

        return ShadowPeers(FakeContext(self.env, KNOWN), FakeLanguageModel(self.env, reply))


@pytest_asyncio.fixture
async def gateway_side(nats_server: NatsServer) -> AsyncIterator[tuple[ReplayResponder, Any]]:
    llms = CandidateLlms()
    bus = await Bus.connect(nats_server.url, name="test-gateway")
    responder = ReplayResponder(llms, clock=SystemClock(), tracer=llms.env.tracer)
    await start_replays(bus, responder)
    try:
        yield responder, llms
    finally:
        await bus.close()


def voiceagent(version: str) -> dict[str, Any]:
    spec = load_agent_spec(ROOT / "agents" / "acme-dental.yaml")
    data = spec.model_dump(mode="json", exclude_defaults=True) | {"version": version}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VoiceAgent",
            "metadata": {"name": f"acme-{version.replace('.', '-')}"}, "spec": data}  # fmt: skip


def rollout(name: str, candidate: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AgentRollout", "metadata": {"name": name},
        "spec": {"agent": "acme-dental", "stableVersion": "1.0.0", "candidateVersion": candidate,
                 "replay": {"enabled": True, "seed": 11, "minPassRate": 1.0},
                 "analysis": {"interval": "1s", "minIterations": 2, "metrics": [
                     {"name": "voice_to_voice_p95_ms", "thresholdRange": {"max": 900}}]}},
    }  # fmt: skip


class Namespace:
    """The test's view of the API server (as the admin)."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.namespace = namespace

    async def create(self, plural: str, body: dict[str, Any]) -> None:
        await asyncio.to_thread(self.custom.create_namespaced_custom_object, GROUP, VERSION,
                                self.namespace, plural, body)  # fmt: skip

    async def status_of(self, plural: str, name: str) -> dict[str, Any]:
        body = await asyncio.to_thread(self.custom.get_namespaced_custom_object, GROUP, VERSION,
                                       self.namespace, plural, name)  # fmt: skip
        return dict(body.get("status") or {})

    async def settled(self, name: str) -> dict[str, Any]:
        """The rollout's status once past replaying (or pending)."""
        deadline = asyncio.get_running_loop().time() + WAIT_S
        status: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            status = await self.status_of("agentrollouts", name)
            if status.get("phase") in ("Failed", "Shadowing", "Paused", "Succeeded"):
                return status
            await asyncio.sleep(0.1)
        raise AssertionError(f"{name}: still {status.get('phase')} after {WAIT_S}s: {status}")

    async def deployments(self) -> set[str]:
        listed = await asyncio.to_thread(self.apps.list_namespaced_deployment, self.namespace)
        return {d.metadata.name for d in listed.items}


def condition(status: dict[str, Any], kind: str) -> tuple[str, str, str]:
    for c in status.get("conditions", []):
        if c["type"] == kind:
            return c["status"], c.get("reason", ""), c.get("message", "")
    return "missing", "", ""


async def test_a_failing_replay_blocks_promotion_and_a_passing_one_shadows(
    kube_apiserver: KubeApiServer,
    kube_crds: list[str],
    kube_namespace: str,
    gateway_side: tuple[ReplayResponder, CandidateLlms],
    *,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    responder, llms = gateway_side
    (tmp_path / "replay.yaml").write_text(SCENARIOS)
    grpc_port = free_port()
    env = {
        **os.environ,
        "ROLLOUT_KUBECONFIG": str(kube_apiserver.kubeconfig),
        "ROLLOUT_NAMESPACES": json.dumps([kube_namespace]),
        "ROLLOUT_NATS_URL": nats_server.url,
        "ROLLOUT_REPLAY_SCENARIOS": json.dumps([str(tmp_path / "replay.yaml")]),
        "ROLLOUT_AGENTS_DIR": str(ROOT / "agents"),
        "ROLLOUT_REPLAY_TENANT": "acme",
        "ROLLOUT_METRICS_SOURCE": "shadow",
        "ROLLOUT_GRPC_PORT": str(grpc_port),
        "ROLLOUT_METRICS_PORT": str(free_port()),
        "ROLLOUT_LOG_JSON": "false",
        "ROLLOUT_DRAIN_SECONDS": "1",
    }
    log = (tmp_path / "operator.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline.rollout", env=env, stdout=log, stderr=log
    )
    api = admin_client(kube_apiserver)
    ns = Namespace(api, kube_namespace)
    try:
        await wait_healthy(f"127.0.0.1:{grpc_port}", timeout=60.0)
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            await ns.create("voiceagents", voiceagent(version))
        await ns.create("agentrollouts", rollout("acme-wrong", "1.1.0"))
        status = await ns.settled("acme-wrong")
        assert status["phase"] == "Failed", status
        assert condition(status, "ReplayPassed")[:2] == ("False", "Failed")
        assert "1/2 scenarios passed (not: monday-open)" in condition(status, "ReplayPassed")[2]
        assert condition(status, "Promoted")[:2] == ("False", "ReplayFailed")
        assert status["activeVersion"] == "1.0.0"
        assert (await ns.status_of("voiceagents", "acme-1-0-0")).get("active") is True
        assert (await ns.status_of("voiceagents", "acme-1-1-0")).get("active") is not True
        assert await ns.deployments() == set(), (
            "a candidate that failed its replay is never shadowed"
        )
        assert llms.seeds == {"1.1.0": 11}  # the rollout's seed reached the candidate's LLM
        assert responder.answered == 2

        await ns.create("agentrollouts", rollout("acme-right", "1.2.0"))
        status = await ns.settled("acme-right")
        assert status["phase"] == "Shadowing", status
        assert condition(status, "ReplayPassed")[:2] == ("True", "Passed")
        assert "2/2 scenarios passed" in condition(status, "ReplayPassed")[2]
        names = await ns.deployments()
        assert any("1-2-0" in n for n in names), names  # its shadow runners
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        api.close()
        print((tmp_path / "operator.log").read_text()[-3000:])
