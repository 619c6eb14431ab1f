"""``trunkline stack up|status|down`` with every service as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from trunkline.devservers import (
    NatsServer,
    RedisServer,
    nats_ping,
    pid_alive,
    redis_ping,
    start_on_free_port,
)
from trunkline.runtime import LIVENESS, health_status

pytestmark = pytest.mark.e2e

# The rollout operator starts only where a Kubernetes API is configured (KUBECONFIG): not here.
SERVICES = ("stt", "context", "llm", "tts", "hitl", "ledger", "gateway")
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


def trunkline(
    run_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trunkline.cli.main", "stack", *args, "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **(env or {})},
    )


def status_rows(run_dir: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    done = trunkline(run_dir, "status", "--json")
    return done.returncode, {row["name"]: row for row in json.loads(done.stdout)}


@pytest.fixture
def own_servers() -> Iterator[tuple[NatsServer, RedisServer]]:
    """A NATS and a Redis started by the test, not by the stack: `down` must leave them be."""
    nats = start_on_free_port(NatsServer)
    redis = start_on_free_port(RedisServer)
    try:
        yield nats, redis
    finally:
        nats.close()
        redis.close()


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    run = tmp_path / "run"
    try:
        yield run
    finally:
        if (run / "stack.json").exists():
            trunkline(run, "down")


async def exited(pid: int) -> None:
    """Wait for the process to end: a pidfd becomes readable when it does."""
    fd = os.pidfd_open(pid)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, done.set)
    try:
        await done.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _watch_until(addr: str, wanted: int, limit_s: float) -> None:
    async with asyncio.timeout(limit_s), grpc.aio.insecure_channel(addr) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        while (await watch.read()).status != wanted:
            pass
        watch.cancel()


async def test_stack_up_status_drain_and_down(
    own_servers: tuple[NatsServer, RedisServer], run_dir: Path
) -> None:
    nats, redis = own_servers
    up = trunkline(
        run_dir, "up", "--nats-url", nats.url, "--redis-url", redis.url, "--drain-seconds", "3"
    )
    assert up.returncode == 0, up.stdout + up.stderr

    code, rows = status_rows(run_dir)
    assert code == 0
    assert set(rows) == {
        "nats", "redis", "otlp-sink", "jaeger", "crm", "livekit", "livekit-sip", *SERVICES
    }  # fmt: skip
    assert {row["health"] for row in rows.values()} == {"SERVING"}
    assert not rows["nats"]["owned"]
    assert not rows["redis"]["owned"]
    owned = ("otlp-sink", "jaeger", "livekit", "livekit-sip", *SERVICES)
    assert all(rows[name]["owned"] for name in owned)
    ports = [row["port"] for row in rows.values()]
    assert len(set(ports)) == len(ports)
    assert not {4222, 6379} & set(ports)

    again = trunkline(run_dir, "up")
    assert again.returncode == 0
    assert "already up" in again.stdout

    # SIGTERM one service: its health says NOT_SERVING first, the open Watch ends cleanly.
    hitl = rows["hitl"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hitl['port']}") as channel:
        watch: Any = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING
        os.kill(hitl["pid"], signal.SIGTERM)
        async with asyncio.timeout(10):
            assert (await watch.read()).status == NOT_SERVING
            assert await watch.read() is grpc.aio.EOF
            assert await watch.code() == grpc.StatusCode.OK
            await exited(hitl["pid"])
    # The gateway's readiness follows its peers: without hitl it is NOT_SERVING; its liveness
    # does not (a Kubernetes liveness probe on it would restart the pod and drop its calls).
    gateway = f"127.0.0.1:{rows['gateway']['port']}"
    await _watch_until(gateway, NOT_SERVING, limit_s=20)
    for _ in range(5):
        assert await health_status(gateway, service=LIVENESS) == "SERVING"
        assert await health_status(gateway) == "NOT_SERVING"
        await asyncio.sleep(0.2)
    code, rows_after = status_rows(run_dir)
    assert code == 1
    assert rows_after["hitl"]["health"] == "DOWN"
    assert rows_after["gateway"]["health"] == "NOT_SERVING"
    assert rows_after["stt"]["health"] == "SERVING"

    down = trunkline(run_dir, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    stopped = [row["pid"] for row in rows.values() if row["owned"]]
    assert not [pid for pid in stopped if pid_alive(pid)]
    assert nats_ping(nats.url)
    assert redis_ping(redis.url)
    assert not (run_dir / "stack.json").exists()
    after_down = trunkline(run_dir, "status")
    assert after_down.returncode == 1
    assert "not up" in after_down.stdout


def test_a_service_that_cannot_start_fails_up_with_its_log_and_rolls_back(
    run_dir: Path,
) -> None:
    up = trunkline(run_dir, "up", env={"STT_MAX_MESSAGE_BYTES": "0"})  # invalid: must be > 0
    assert up.returncode == 1
    assert "stt exited during start-up" in up.stdout
    assert "invalid settings" in up.stdout
    assert "max_message_bytes" in up.stdout
    pids = [int(word) for line in up.stdout.splitlines() if " pid " in line
            for word in [line.rsplit(" pid ", 1)[1]]]  # fmt: skip
    assert len(pids) >= 3  # NATS, Redis and the sink were started by the stack, then stopped
    assert not [pid for pid in pids if pid_alive(pid)]
    assert not (run_dir / "stack.json").exists()
