"""``python -m trunkline.rollout`` as a process: a real API server, Prometheus' HTTP API (served
by the test with the values it chooses), gRPC health and ``/metrics``, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from kubernetes import client

from trunkline.agents import load_agent_spec
from trunkline.devservers import NatsServer, free_port
from trunkline.devservers.kube import KubeApiServer
from trunkline.runtime import wait_healthy
from trunkline.testing.kube_fixtures import admin_client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GROUP, VERSION = "trunkline.dev", "v1alpha1"
WAIT_S = 90.0
"""Generous: a 2-core machine shared with other test runs took ~25 s for this rollout."""


class FakePrometheus:
    """``/api/v1/query`` answering an instant vector per metric family, recording the queries."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values
        self.queries: list[str] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def query(self, request: web.Request) -> web.Response:
        query = request.query["query"]
        self.queries.append(query)
        for needle, value in self.values.items():
            if needle in query:
                result = [{"metric": {}, "value": [0, str(value)]}]
                break
        else:
            result = []
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return web.json_response(body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/query", self.query)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture
async def prometheus() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus({"voice_to_voice": 640.0, "tool_call_agreement": 0.95})
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        return str(resp.read().decode())


def voiceagent(version: str) -> dict[str, Any]:
    spec = load_agent_spec(ROOT / "agents" / "acme-dental.yaml")
    data = spec.model_dump(mode="json", exclude_defaults=True) | {"version": version}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VoiceAgent",
            "metadata": {"name": f"acme-{version.replace('.', '-')}"}, "spec": data}  # fmt: skip


async def test_operator_process_promotes_and_exports_metrics(
    kube_apiserver: KubeApiServer,
    kube_crds: list[str],
    kube_namespace: str,
    prometheus: FakePrometheus,
    *,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "ROLLOUT_KUBECONFIG": str(kube_apiserver.kubeconfig),
        "ROLLOUT_NAMESPACES": json.dumps([kube_namespace]),
        "ROLLOUT_PROMETHEUS_URL": f"http://127.0.0.1:{prometheus.port}",
        "ROLLOUT_NATS_URL": nats_server.url,  # where shadowed candidates are listed
        "ROLLOUT_GRPC_PORT": str(grpc_port),
        "ROLLOUT_METRICS_PORT": str(metrics_port),
        "ROLLOUT_LOG_JSON": "false",
        "ROLLOUT_DRAIN_SECONDS": "1",
    }
    log = (tmp_path / "operator.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline.rollout", env=env, stdout=log, stderr=log
    )
    api = admin_client(kube_apiserver)
    custom = client.CustomObjectsApi(api)
    try:
        await wait_healthy(f"127.0.0.1:{grpc_port}", timeout=60.0)
        for version in ("1.0.0", "1.1.0"):
            await asyncio.to_thread(custom.create_namespaced_custom_object, GROUP, VERSION,
                                    kube_namespace, "voiceagents", voiceagent(version))  # fmt: skip
        rollout = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "AgentRollout",
            "metadata": {"name": "acme-next"},
            "spec": {"agent": "acme-dental", "stableVersion": "1.0.0", "candidateVersion": "1.1.0",
                     "replay": {"enabled": False},
                     "analysis": {"interval": "1s", "minIterations": 2, "metrics": [
                         {"name": "voice_to_voice_p95_ms", "thresholdRange": {"max": 900}},
                         {"name": "tool_call_agreement", "thresholdRange": {"min": 0.9}}]}},
        }  # fmt: skip
        await asyncio.to_thread(custom.create_namespaced_custom_object, GROUP, VERSION,
                                kube_namespace, "agentrollouts", rollout)  # fmt: skip
        phase = None
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            body = await asyncio.to_thread(
                custom.get_namespaced_custom_object, GROUP, VERSION, kube_namespace,
                "agentrollouts", "acme-next",
            )  # fmt: skip
            phase = (body.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                break
            await asyncio.sleep(0.1)
        assert phase == "Succeeded", body.get("status")
        assert any('agent="acme-dental",version="1.1.0"' in q for q in prometheus.queries)
        assert any("histogram_quantile(0.95" in q for q in prometheus.queries)
        # counted once the step's writes are done: scrape until the last one shows
        while True:
            text = await asyncio.to_thread(scrape, metrics_port)
            if "rollout_transitions_total" in text and 'phase="Succeeded"' in text:
                break
            assert asyncio.get_running_loop().time() < deadline, text
            await asyncio.sleep(0.2)
        checks = [line for line in text.splitlines() if line.startswith("rollout_checks_total")]
        assert checks == ['rollout_checks_total{outcome="Passed"} 2.0'], checks
        assert 'rollout_transitions_total{phase="Succeeded",reason="Succeeded"} 1.0' in text
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        api.close()
        print((tmp_path / "operator.log").read_text()[-3000:])
